"""OAuth client-credentials tokens: one lazily fetched, cached, single-flight token per tenant.

Owns the only place the client secret is revealed (the token form) and the limit on token
requests shared by every tenant of the run (Zuora allows 100 per minute per client IP).
"""

from __future__ import annotations

import asyncio
import copy
import math
import random
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import structlog

from migrator.core import logs
from migrator.core.config import Settings, TenantConfig
from migrator.core.errors import AuthError, ZuoraError
from migrator.core.pacing import WindowLimiter
from migrator.core.retry import Action, Kind, NetError, Outcome, Policy, decide, describe_net_error
from migrator.core.retry import classify as classify_status
from migrator.zuora.http import classify, error_detail

TOKEN_PATH = "/oauth/token"
# Zuora refreshes 300 s early; short-lived tokens refresh at half their lifetime instead.
REFRESH_MARGIN = 300.0
TOKEN_WINDOW = 60.0  # seconds: Zuora's per-IP allowance is counted per minute
_MAX_TOKEN_BODY = 64 * 1024

_log = structlog.get_logger("migrator.zuora.auth")
_token_limiters: weakref.WeakKeyDictionary[aiohttp.ClientSession, WindowLimiter] = (
    weakref.WeakKeyDictionary()
)


def token_limiter(session: aiohttp.ClientSession, per_minute: int) -> WindowLimiter:
    """The token-request limit shared by every tenant on this session (one session = the run's
    client address): at most `per_minute` in any rolling minute, the first of them at once."""
    limiter = _token_limiters.get(session)
    if limiter is None:
        limiter = WindowLimiter(per_minute, TOKEN_WINDOW)
        _token_limiters[session] = limiter
    return limiter


def refresh_at(obtained: float, expires_in: float, margin: float = REFRESH_MARGIN) -> float:
    """When to stop using a token: `margin` before expiry, capped at half the lifetime."""
    return obtained + expires_in - min(margin, expires_in / 2.0)


@dataclass(slots=True)
class _Token:
    value: str
    refresh_at: float

    def __repr__(self) -> str:
        return f"_Token('***', refresh_at={self.refresh_at})"


class TokenCache:
    """One tenant's bearer token: fetched on first use, reused until near expiry, one fetch at a time."""

    def __init__(
        self,
        tenant: TenantConfig,
        session: aiohttp.ClientSession,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] | None = None,
        margin: float = REFRESH_MARGIN,
        track_id: Callable[[], str] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._tenant = tenant
        self._session = session
        self._clock = clock
        self._rand = rand or random.random
        self._margin = margin
        self._track_id = track_id
        self._sleep = sleep
        self._policy = Policy(
            settings.max_attempts, settings.backoff_base, settings.backoff_cap, settings.max_wait
        )
        self._request_timeout = settings.request_timeout
        self._tokens_per_minute = settings.token_requests_per_minute
        # Whatever this tenant's token endpoint echoes of the form, in whatever encoding, is
        # redacted from every log line and message from here on.
        logs.register_credentials(tenant.client_id, tenant.client_secret.reveal())
        self._token: _Token | None = None
        self._retired: list[str] = []  # recent tokens, still scrubbed from server-echoed text
        self._lock = asyncio.Lock()
        self._rejected: AuthError | None = None
        self.fetches = 0

    def __repr__(self) -> str:
        return f"TokenCache(tenant={self._tenant.name!r})"

    def known_secrets(self) -> list[str]:
        """Values that must never be shown (for scrubbing messages)."""
        values = [self._tenant.client_secret.reveal(), *self._retired]
        if self._token is not None:
            values.append(self._token.value)
        return [v for v in values if v]

    async def token(self) -> str:
        """A valid bearer token; concurrent callers share one fetch."""
        current = self._token
        if current is not None and self._clock() < current.refresh_at:
            return current.value
        async with self._lock:
            if self._rejected is not None:
                # Rejected credentials stay rejected for this run: callers queued behind the
                # first failure must not each ask again (the per-IP token budget is shared).
                raise copy.copy(
                    self._rejected
                )  # a fresh object: tracebacks must not pile up on one
            current = self._token
            if current is not None and self._clock() < current.refresh_at:
                return current.value
            if current is not None:
                self._retire(current.value)
                self._token = None
            try:
                self._token = await self._fetch()
            except AuthError as exc:
                self._rejected = exc
                raise
            return self._token.value

    def invalidate(self, value: str) -> None:
        """Forget `value` after a 401, unless a newer token already replaced it."""
        if self._token is not None and self._token.value == value:
            self._token = None
            self._retire(value)

    def _retire(self, value: str) -> None:
        self._retired = [*self._retired[-3:], value]

    async def _fetch(self) -> _Token:
        tenant = self._tenant.name
        url = self._tenant.base_url + TOKEN_PATH
        form = {
            "client_id": self._tenant.client_id,
            "client_secret": self._tenant.client_secret.reveal(),
            "grant_type": "client_credentials",
        }
        limiter = token_limiter(self._session, self._tokens_per_minute)
        attempt = 0
        while True:
            attempt += 1
            delay = limiter.reserve(self._clock())
            if delay > 0:
                await self._sleep(delay)
            headers = {"Accept": "application/json"}
            if self._track_id is not None:
                headers["Zuora-Track-Id"] = self._track_id()
            if self._tenant.entity_ids:
                headers["Zuora-Entity-Ids"] = self._tenant.entity_ids
            status: int | None = None
            error: NetError | None = None
            resp_headers: dict[str, str] = {}
            raw = b""
            self.fetches += 1
            deadline = asyncio.timeout(self._request_timeout)
            try:
                # The same whole-request deadline as every API call (a dribbling token endpoint).
                async with (
                    deadline,
                    self._session.post(
                        url, data=form, headers=headers, allow_redirects=False
                    ) as resp,
                ):
                    status = resp.status
                    resp_headers = {k.lower(): v for k, v in resp.headers.items()}
                    raw = await _read_some(resp, _MAX_TOKEN_BODY + 1)
            except Exception as exc:
                error = NetError.DEADLINE if deadline.expired() else classify(exc)
                if error is None:
                    raise
                status, raw = None, b""  # whatever status came first, the answer is incomplete
            if status is not None and 200 <= status < 300:
                return self._parse(raw)
            if status is not None and (300 <= status < 400 or status in (400, 401, 403)):
                # Rejected credentials (or a misrouted URL): fail fast, no retry storm.
                detail = _short_reason(
                    raw, resp_headers.get("location") if status < 400 else None, self._scrub
                )
                message = f"POST {TOKEN_PATH}: credentials rejected ({status}{': ' + detail if detail else ''})"
                if 300 <= status < 400:
                    message = f"POST {TOKEN_PATH}: unexpected redirect ({status} {detail})"
                raise AuthError(self._scrub(message), status=status, tenant=tenant)
            # Sending the form again is harmless: a token request creates nothing lasting.
            outcome = Outcome(status=status, error=error, headers=resp_headers)
            decision = decide(
                attempt, outcome, now=time.time(), policy=self._policy, rand=self._rand
            )
            if decision.retry_after is not None:
                # Capped like every server-requested pause (settings.max_wait).
                limiter.penalize(self._clock() + min(decision.retry_after, self._policy.max_wait))
            # Each attempt only with --debug: the give-up is the error a person reads, once.
            _log.debug(
                "token attempt",
                tenant=tenant,
                attempt=attempt,
                status=status,
                error=error.value if error else None,
                action=decision.action.value,
                delay=round(decision.delay, 3),
            )
            if decision.action is not Action.RETRY:
                what = (
                    str(status)
                    if status is not None
                    else (describe_net_error(error, self._tenant.base_url) if error else "failed")
                )
                detail = _short_reason(raw, None, self._scrub) if status is not None else ""
                suffix = f" (after {attempt} attempts)" if attempt > 1 else ""
                message = self._scrub(
                    f"POST {TOKEN_PATH}: token request failed: {what}{' ' + detail if detail else ''}{suffix}"
                )
                if classify_status(status) in (Kind.CREDENTIALS, Kind.CONFLICT, Kind.REFUSED):
                    # Any other 4xx (404: wrong base_url, ...) is a configuration problem: fail fast.
                    raise AuthError(message, status=status, tenant=tenant)
                raise ZuoraError(message, status=status, tenant=tenant, retryable=True)
            await self._sleep(decision.delay)

    def _parse(self, raw: bytes) -> _Token:
        try:
            body: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        token = body.get("access_token") if isinstance(body, dict) else None
        expires = body.get("expires_in") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise ZuoraError(
                f"POST {TOKEN_PATH}: 200 without an access_token", tenant=self._tenant.name
            )
        if (
            isinstance(expires, bool)
            or not isinstance(expires, (int, float))
            or not math.isfinite(expires)
            or expires <= 0
        ):
            expires = 3600.0
        logs.register_secret(token)  # whatever logs, from here on, never shows it
        return _Token(token, refresh_at(self._clock(), float(expires), self._margin))

    def _scrub(self, text: str) -> str:
        for secret in self.known_secrets():
            text = text.replace(secret, "***")
        return logs.redact_text(text)  # every other form of them (URL-encoded, base64, ...)


async def _read_some(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """Up to `limit` bytes of the body (a single read() may return only what has arrived)."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await resp.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _short_reason(raw: bytes, location: str | None, scrub: Callable[[str], str]) -> str:
    if location:
        return f"to {scrub(location)[:200]}"
    return error_detail(raw, scrub)
