"""GCRA pacing, tenant-wide pauses, budgets learned from RateLimit-* headers, AIMD and the
sliding-window token limiter, with a fake clock."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from migrator.core.pacing import AdaptiveLimit, Pacer, Window, WindowLimiter, parse_ratelimit_limit


def schedule(pacer: Pacer | WindowLimiter, arrivals: list[float]) -> list[float]:
    """Start times the pacer hands out for requests arriving at `arrivals`."""
    return [t + pacer.reserve(t) for t in arrivals]


def test_configured_rate_spaces_requests() -> None:
    """At 60 requests/minute, ten simultaneous requests start one second apart."""
    starts = schedule(Pacer(60), [0.0] * 10)
    assert starts == [float(i) for i in range(10)]


def test_burst_allows_back_to_back_starts() -> None:
    """With burst 3, three requests go at once and the rest follow at the rate."""
    starts = schedule(Pacer(60, burst=3), [0.0] * 5)
    assert starts == [0.0, 0.0, 0.0, 1.0, 2.0]


def test_idle_time_is_not_banked_beyond_burst() -> None:
    """After a long idle period, only `burst` requests may go back to back."""
    pacer = Pacer(60)
    schedule(pacer, [0.0, 0.0])
    assert schedule(pacer, [100.0, 100.0, 100.0]) == [100.0, 101.0, 102.0]


def test_unconfigured_pacer_only_applies_pauses() -> None:
    """With no rate known, requests go at once unless the tenant is paused."""
    pacer = Pacer(None)
    assert schedule(pacer, [0.0, 0.0]) == [0.0, 0.0]
    pacer.penalize(5.0)
    assert pacer.reserve(1.0) == 4.0


def test_penalize_pauses_whole_tenant_and_resumes_without_burst() -> None:
    """A Retry-After pause delays every later request, which then resume at the configured rate."""
    pacer = Pacer(60, burst=4)
    pacer.penalize(10.0)
    starts = schedule(pacer, [1.0] * 4)
    assert starts == [10.0, 11.0, 12.0, 13.0]
    assert pacer.wait_for_pause(3.0) == 7.0


def test_penalize_never_shortens_a_pause() -> None:
    """An earlier `until` does not cut short a longer pause already in force."""
    pacer = Pacer(None)
    pacer.penalize(20.0)
    pacer.penalize(5.0)
    assert pacer.paused_until == 20.0


def test_parse_ratelimit_limit() -> None:
    """The documented header format yields one window per `N;w=S` pair; junk parts are skipped."""
    assert parse_ratelimit_limit("2250000, 50000;w=60, 2250000;w=3600, 27000000;w=86400") == [
        Window(50000, 60.0),
        Window(2250000, 3600.0),
        Window(27000000, 86400.0),
    ]
    assert parse_ratelimit_limit("abc;w=60, 5;w=zero, 10;w=-1, 7;W=10") == [Window(7, 10.0)]
    assert parse_ratelimit_limit(None) == []


def test_budget_learned_from_headers() -> None:
    """With no configured rate, the shortest window's quota sets the spacing."""
    pacer = Pacer(None)
    pacer.observe({"ratelimit-limit": "120, 120;w=60, 5000;w=3600"}, now=0.0)
    assert pacer.interval == 0.5


def test_remaining_spreads_over_reset() -> None:
    """A nearly exhausted window slows the pace to spread what is left until it resets."""
    pacer = Pacer(None)
    pacer.observe(
        {"ratelimit-limit": "600;w=60", "ratelimit-remaining": "10", "ratelimit-reset": "50"},
        now=0.0,
    )
    assert pacer.interval == 5.0


def test_exhausted_window_pauses_until_reset() -> None:
    """ratelimit-remaining 0 pauses the tenant for ratelimit-reset seconds, even with a configured rate."""
    pacer = Pacer(6000)
    pacer.observe({"ratelimit-remaining": "0", "ratelimit-reset": "30"}, now=100.0)
    assert pacer.reserve(100.0) == 30.0


def test_configured_rate_is_not_overridden() -> None:
    """A configured requests_per_minute wins over anything the headers say."""
    pacer = Pacer(60)
    pacer.observe(
        {"ratelimit-limit": "6000;w=60", "ratelimit-remaining": "5999", "ratelimit-reset": "60"},
        now=0.0,
    )
    assert pacer.interval == 1.0


@given(
    rpm=st.integers(min_value=1, max_value=100_000),
    burst=st.integers(min_value=1, max_value=50),
    gaps=st.lists(st.floats(min_value=0.0, max_value=5.0), min_size=1, max_size=200),
)
def test_gcra_never_exceeds_rate_plus_burst(rpm: int, burst: int, gaps: list[float]) -> None:
    """In any window of length L, at most burst + L/interval requests start."""
    pacer = Pacer(rpm, burst=burst)
    t = 0.0
    starts: list[float] = []
    for gap in gaps:
        t += gap
        delay = pacer.reserve(t)
        assert delay >= 0.0
        starts.append(t + delay)
    interval = 60.0 / rpm
    starts.sort()
    for i in range(len(starts)):
        for j in range(i, len(starts)):
            span = starts[j] - starts[i]
            assert j - i + 1 <= burst + span / interval + 1e-6


def test_aimd_halves_on_throttle_and_grows_on_success() -> None:
    """The limit halves on a 429 (never below 1) and grows by one after a round of successes."""
    limit = AdaptiveLimit(8)
    limit.on_throttle()
    assert limit.limit == 4
    for _ in range(4):
        limit.on_success()
    assert limit.limit == 5
    for _ in range(10):
        limit.on_throttle()
    assert limit.limit == 1


@given(
    events=st.lists(st.booleans(), max_size=300),
    maximum=st.integers(min_value=1, max_value=64),
    grow_after=st.none() | st.integers(min_value=1, max_value=10),
)
def test_aimd_stays_within_bounds(events: list[bool], maximum: int, grow_after: int | None) -> None:
    """Whatever the sequence of successes and throttles, 1 ≤ limit ≤ maximum."""
    limit = AdaptiveLimit(maximum, grow_after=grow_after)
    for ok in events:
        limit.on_success() if ok else limit.on_throttle()
        assert 1 <= limit.limit <= maximum


def test_aimd_halves_once_per_generation() -> None:
    """Several 429s for requests sent before the same cut halve the limit only once."""
    limit = AdaptiveLimit(16)
    sent = limit.epoch
    for _ in range(5):
        limit.on_throttle(sent)
    assert limit.limit == 8
    limit.on_throttle(limit.epoch)  # a request sent after the cut, throttled again
    assert limit.limit == 4


# -- the sliding-window token limiter ------------------------------------------------------------


def test_window_limiter_lets_the_whole_allowance_go_at_once() -> None:
    """With a limit of 90 a minute, 90 simultaneous requests all start at once; the 91st waits a minute."""
    starts = schedule(WindowLimiter(90), [0.0] * 92)
    assert starts[:90] == [0.0] * 90
    assert starts[90:] == [60.0, 60.0]


def test_window_limiter_frees_each_slot_a_window_after_it_was_used() -> None:
    """A slot comes back exactly one window after the start that used it, not earlier."""
    limiter = WindowLimiter(3, window=10.0)
    assert schedule(limiter, [0.0, 2.0, 4.0]) == [0.0, 2.0, 4.0]
    assert schedule(limiter, [5.0, 5.0, 5.0, 5.0]) == [10.0, 12.0, 14.0, 20.0]


def test_window_limiter_pause_holds_every_start_then_resumes_at_the_steady_rate() -> None:
    """After a 429's Retry-After the next starts wait for it, then go one per window ÷ limit."""
    limiter = WindowLimiter(4, window=60.0)
    limiter.penalize(30.0)
    assert schedule(limiter, [1.0] * 5) == [30.0, 45.0, 60.0, 75.0, 90.0]
    limiter.penalize(10.0)  # an earlier end never shortens the pause in force
    assert limiter.paused_until == 30.0


def test_window_limiter_pause_forgets_no_start_already_granted() -> None:
    """A pause shorter than the window still counts the starts made before it."""
    limiter = WindowLimiter(2, window=60.0)
    assert schedule(limiter, [0.0, 0.0]) == [0.0, 0.0]
    limiter.penalize(5.0)
    assert schedule(limiter, [6.0, 6.0]) == [60.0, 60.0]


def test_window_limiter_rejects_a_meaningless_limit() -> None:
    """A limit below one or a window that is not a positive number is a programming error."""
    for limit, window in ((0, 60.0), (1, 0.0), (1, math.inf)):
        with pytest.raises(ValueError):
            WindowLimiter(limit, window)


_window_steps = st.lists(
    st.one_of(
        st.tuples(st.just("wait"), st.floats(min_value=0.0, max_value=30.0)),
        st.tuples(st.just("ask"), st.integers(min_value=1, max_value=40)),
        st.tuples(st.just("429"), st.floats(min_value=0.0, max_value=120.0)),
    ),
    min_size=1,
    max_size=60,
)


@given(
    limit=st.integers(min_value=1, max_value=30),
    window=st.floats(min_value=0.5, max_value=120.0),
    steps=_window_steps,
)
def test_window_limiter_never_exceeds_its_limit_in_any_window(
    limit: int, window: float, steps: list[tuple[str, float]]
) -> None:
    """Whatever the arrivals and pauses, no `window`-long span holds more than `limit` starts, no
    start precedes its request or a pause in force, and without a pause no request waits longer
    than the window requires."""
    limiter = WindowLimiter(limit, window)
    now = 0.0
    starts: list[float] = []
    paused = -math.inf
    for kind, value in steps:
        if kind == "wait":
            now += value
        elif kind == "429":
            paused = max(paused, now + value)
            limiter.penalize(now + value)
        else:
            for _ in range(int(value)):
                delay = limiter.reserve(now)
                start = now + delay
                assert delay >= 0.0 and start >= paused - 1e-9 * max(1.0, abs(paused))
                if paused == -math.inf and start > now and (not starts or start > starts[-1]):
                    # Never paused, it waited for the window alone: the start `limit` back was
                    # exactly a window ago.
                    assert len(starts) >= limit
                    assert start == pytest.approx(starts[-limit] + window)
                starts.append(start)
    for a, b in itertools.pairwise(starts):
        assert b >= a - 1e-9 * max(1.0, abs(a))
    for i in range(len(starts) - limit):
        assert starts[i + limit] - starts[i] >= window - 1e-9 * max(1.0, abs(starts[i]))
