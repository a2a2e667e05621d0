"""The fake's pure bookkeeping around requests: tokens, rate windows, the idempotency store.

Each class takes `now` as an argument and holds bounded memory: expired tokens, past windows and
expired idempotency entries are dropped as time moves on.
"""

from __future__ import annotations

import math
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

# ---------------------------------------------------------------------------------------------
# OAuth tokens (§1.2, §7.9)


@dataclass(frozen=True)
class Token:
    tenant: str
    expires_at: float


class TokenStore:
    """Opaque 32-hex bearer tokens per tenant; unknown or expired → None (the shell answers 401)."""

    def __init__(self, max_tokens: int = 100_000) -> None:
        self._tokens: OrderedDict[str, Token] = OrderedDict()
        self._max = max_tokens

    def issue(self, tenant: str, ttl: float, now: float) -> str:
        self._purge(now)
        value = secrets.token_hex(16)
        self._tokens[value] = Token(tenant, now + ttl)
        while len(self._tokens) > self._max:
            self._tokens.popitem(last=False)
        return value

    def lookup(self, value: str, now: float) -> str | None:
        token = self._tokens.get(value)
        if token is None or now >= token.expires_at:
            return None
        return token.tenant

    def expire_all(self, tenant: str | None = None) -> None:
        """Make every token (of one tenant) unknown: forces the client's refresh path."""
        for key in [k for k, t in self._tokens.items() if tenant is None or t.tenant == tenant]:
            del self._tokens[key]

    def _purge(self, now: float) -> None:
        # Tokens are issued in time order but TTLs differ per tenant, so scan a bounded prefix.
        for key in list(self._tokens)[:64]:
            if self._tokens[key].expires_at <= now:
                del self._tokens[key]

    def __len__(self) -> int:
        return len(self._tokens)


# ---------------------------------------------------------------------------------------------
# Rate windows (§1.5)


@dataclass
class _Window:
    seconds: int
    quota: int
    start: float = 0.0
    used: int = 0


@dataclass(frozen=True)
class RateDecision:
    """The outcome of counting one request, with what the `RateLimit-*` headers should say."""

    allowed: bool
    limit_header: str
    remaining: int
    reset: int  # seconds until the window nearest exhaustion resets
    retry_after: int  # seconds; meaningful when not allowed


class RateWindows:
    """Fixed windows (minute, hour, day) aligned to the clock; failed requests count too [D]."""

    def __init__(self, quotas: list[tuple[int, int]]) -> None:
        self._windows = [_Window(seconds, quota) for seconds, quota in quotas]

    def hit(self, now: float) -> RateDecision:
        for w in self._windows:
            start = math.floor(now / w.seconds) * w.seconds
            if start != w.start:
                w.start, w.used = start, 0
        # The window nearest exhaustion is the one the headers describe (§1.5).
        nearest = min(self._windows, key=lambda w: (w.quota - w.used) / w.quota)
        full = [w for w in self._windows if w.used >= w.quota]
        if full:
            wait = max(w.start + w.seconds - now for w in full)
            worst = max(full, key=lambda w: w.start + w.seconds)
            return RateDecision(
                False,
                self._limit_header(worst),
                0,
                max(1, math.ceil(worst.start + worst.seconds - now)),
                max(1, math.ceil(wait)),
            )
        for w in self._windows:
            w.used += 1
        reset = max(1, math.ceil(nearest.start + nearest.seconds - now))
        return RateDecision(
            True, self._limit_header(nearest), nearest.quota - nearest.used, reset, 0
        )

    def _limit_header(self, first: _Window) -> str:
        pairs = ", ".join(f"{w.quota};w={w.seconds}" for w in self._windows)
        return f"{first.quota}, {pairs}"


# ---------------------------------------------------------------------------------------------
# Idempotency (§1.8, §7.8)


@dataclass
class Stored:
    """A finished request's answer, replayed to later requests with the same key."""

    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class _Entry:
    method: str
    url: str
    created: float
    result: Stored | None = None  # None while the first request is in flight


@dataclass(frozen=True)
class Begin:
    """What to do with a request carrying an Idempotency-Key.

    kind: "new" (run it, then `finish`), "in_flight" (409), "mismatch" (422), "done" (replay).
    """

    kind: str
    stored: Stored | None = None


@dataclass
class IdempotencyStore:
    """Entries per (tenant, key), expiring `ttl` seconds after they were set; oldest first out."""

    ttl: float = 24 * 3600.0
    max_entries: int = 100_000
    _entries: OrderedDict[tuple[str, str], _Entry] = field(default_factory=OrderedDict)

    def begin(self, tenant: str, key: str, method: str, url: str, now: float) -> Begin:
        self._expire(now)
        entry = self._entries.get((tenant, key))
        if entry is None:
            self._entries[(tenant, key)] = _Entry(method, url, now)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
            return Begin("new")
        if entry.method != method or entry.url != url:
            return Begin("mismatch")
        if entry.result is None:
            return Begin("in_flight")
        return Begin("done", entry.result)

    def finish(self, tenant: str, key: str, result: Stored) -> None:
        entry = self._entries.get((tenant, key))
        if entry is not None:
            entry.result = result

    def abandon(self, tenant: str, key: str) -> None:
        """Forget a key whose request never produced an answer (a fault before the work)."""
        entry = self._entries.get((tenant, key))
        if entry is not None and entry.result is None:
            del self._entries[(tenant, key)]

    def _expire(self, now: float) -> None:
        while self._entries:
            first_key = next(iter(self._entries))
            if now - self._entries[first_key].created < self.ttl:
                break
            del self._entries[first_key]

    def __len__(self) -> int:
        return len(self._entries)

    def snapshot(self) -> dict[str, Any]:
        return {"entries": len(self._entries)}
