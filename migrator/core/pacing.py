"""Pacing: GCRA request spacing per tenant, tenant-wide pauses, budgets learned from headers, AIMD,
and the sliding-window limit on token requests shared by every tenant behind one client address.

Pure: every method takes `now` (monotonic seconds) and returns how long to wait; the client's
async shell does the sleeping. See docs/retry-and-pacing.md for the math.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Window:
    """One quota from a RateLimit-Limit header: `quota` requests per `seconds`."""

    quota: int
    seconds: float


def parse_ratelimit_limit(value: str | None) -> list[Window]:
    """Parse `2250000, 50000;w=60, 2250000;w=3600` into its windows (the bare first number is skipped)."""
    if not value:
        return []
    windows: list[Window] = []
    for part in value.split(","):
        fields = [f.strip() for f in part.split(";")]
        seconds: float | None = None
        for f in fields[1:]:
            name, _, raw = f.partition("=")
            if name.strip().lower() == "w":
                try:
                    seconds = float(raw.strip())
                except ValueError:
                    seconds = None
        if seconds is None or not math.isfinite(seconds) or seconds <= 0:
            continue
        try:
            quota = int(fields[0])
        except ValueError:
            continue
        if quota > 0:
            windows.append(Window(quota, seconds))
    return windows


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.split(",")[0].strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


class Pacer:
    """GCRA (a leaky bucket as a schedule): hands each request the earliest slot it may start.

    `interval` = seconds per request; `burst` requests may start back to back. With no rate
    (unconfigured and not yet learned) only tenant-wide pauses apply.
    """

    def __init__(
        self,
        requests_per_minute: float | None = None,
        *,
        burst: int = 1,
        max_pause: float = math.inf,
    ) -> None:
        self.configured = requests_per_minute is not None
        # The longest pause a server may impose (settings.max_wait): one answer asking for a
        # day must not stall the tenant for a day.
        self.max_pause = max_pause
        self.burst = max(1, burst)
        self.interval: float | None = 60.0 / requests_per_minute if requests_per_minute else None
        self._learned: float | None = None  # interval learned from the minute-ish window
        self._tat = -math.inf  # theoretical arrival time of the next request
        self.paused_until = -math.inf

    @property
    def tau(self) -> float:
        return (self.interval or 0.0) * (self.burst - 1)

    def reserve(self, now: float) -> float:
        """Take the next slot; return how long to wait (≥ 0) before sending."""
        earliest = max(now, self.paused_until)
        if self.interval is None:
            return earliest - now
        start = max(earliest, self._tat - self.tau)
        self._tat = max(self._tat, start) + self.interval
        return start - now

    def wait_for_pause(self, now: float) -> float:
        """After sleeping on a slot: the remainder of any pause imposed meanwhile."""
        return max(0.0, self.paused_until - now)

    def penalize(self, until: float) -> None:
        """Pause the whole tenant until `until` (a 429/503 Retry-After); resume without a burst."""
        if until > self.paused_until:
            self.paused_until = until
        self._tat = max(self._tat, until + self.tau)

    def pause(self, now: float, seconds: float) -> float:
        """Pause the whole tenant for `seconds` from `now`, capped at `max_pause`; the pause applied."""
        applied = max(0.0, min(seconds, self.max_pause))
        self.penalize(now + applied)
        return applied

    def observe(self, headers: Mapping[str, str], now: float) -> float | None:
        """Learn the budget from RateLimit-* headers (lower-case keys) unless one is configured.

        Returns the pause the headers asked for (an exhausted window's reset, before the cap),
        or None when they asked for none.
        """
        remaining = _number(headers.get("ratelimit-remaining"))
        reset = _number(headers.get("ratelimit-reset"))
        requested: float | None = None
        if remaining is not None and remaining <= 0 and reset is not None:
            # The window nearest exhaustion is empty: nothing goes out until it resets.
            requested = reset
            self.pause(now, reset)
        if self.configured:
            return requested
        windows = parse_ratelimit_limit(headers.get("ratelimit-limit"))
        if windows:
            shortest = min(windows, key=lambda w: w.seconds)
            self._learned = shortest.seconds / shortest.quota
        interval = self._learned
        if remaining is not None and remaining > 0 and reset is not None and reset > 0:
            # Spread what is left of the tightest window over the time until it resets.
            spread = reset / remaining
            interval = spread if interval is None else max(interval, spread)
        if interval is not None:
            self.interval = interval
        return requested


class WindowLimiter:
    """At most `limit` starts in any rolling `window` seconds: the first `limit` go at once.

    A sliding log of the last `limit` start times (bounded memory): a request starts at the
    earliest moment that keeps every `window`-long span at `limit` starts or fewer, so a fleet
    gets its first `limit` tokens in one go instead of a burst and a trickle. A server-imposed
    pause (`penalize`) holds every later start and then resumes at the steady rate, one start
    per `window / limit`, not in a burst that would meet the same 429 again.
    """

    def __init__(self, limit: int, window: float = 60.0) -> None:
        if limit < 1 or not math.isfinite(window) or window <= 0:
            raise ValueError("a window limiter needs limit >= 1 and a positive window")
        self.limit = limit
        self.window = window
        self.paused_until = -math.inf
        self._starts: deque[float] = deque(maxlen=limit)  # oldest first, non-decreasing

    def reserve(self, now: float) -> float:
        """Take the next start; return how long to wait (>= 0) before sending."""
        start = max(now, self.paused_until)
        if self._starts:
            start = max(start, self._starts[-1])  # starts stay in order, whatever the clock did
        if len(self._starts) == self.limit:
            start = max(start, self._starts[0] + self.window)
        self._starts.append(start)  # the oldest of the full log falls out
        return start - now

    def penalize(self, until: float) -> None:
        """Hold every start until `until` (a 429's Retry-After), then go one per `window / limit`."""
        if until <= self.paused_until:
            return
        self.paused_until = until
        step = self.window / self.limit
        # As if the whole allowance had been spent, evenly, in the window ending at `until`:
        # merged with the real log (the later of the two, position by position), so nothing
        # already granted is forgotten. Both are sorted, so the merge is sorted too.
        spread = [until - self.window + k * step for k in range(self.limit)]
        real = [-math.inf] * (self.limit - len(self._starts)) + list(self._starts)
        self._starts.clear()
        self._starts.extend(max(a, b) for a, b in zip(real, spread, strict=True))


class AdaptiveLimit:
    """AIMD concurrency limit: halve on a 429, add one after `grow_after` successes in a row."""

    def __init__(
        self, maximum: int, *, start: int | None = None, grow_after: int | None = None
    ) -> None:
        self.maximum = max(1, maximum)
        self.limit = min(self.maximum, max(1, start if start is not None else self.maximum))
        self.grow_after = grow_after
        self._successes = 0
        self.epoch = 0  # bumped on every cut; a request remembers the epoch it was sent in

    def on_success(self) -> None:
        self._successes += 1
        # By default grow after a full "round" at the current limit: additive increase per RTT.
        needed = self.grow_after if self.grow_after is not None else self.limit
        if self._successes >= needed and self.limit < self.maximum:
            self.limit += 1
            self._successes = 0

    def on_throttle(self, sent_epoch: int | None = None) -> None:
        """Halve the limit, once per generation: 429s for requests sent before the last cut are ignored.

        Without this, a burst of N in-flight requests all answered 429 would halve N times.
        """
        if sent_epoch is not None and sent_epoch != self.epoch:
            return
        self.limit = max(1, self.limit // 2)
        self._successes = 0
        self.epoch += 1
