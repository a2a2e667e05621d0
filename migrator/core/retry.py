"""The retry decision: (attempt, outcome, now) → done / retry after N s / refresh token / give up.

Pure: no I/O, no clock of its own, randomness passed in. The whole rule set is documented in
docs/retry-and-pacing.md; the HTTP shell (client.py) only carries the decisions out.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit


class NetError(Enum):
    """A failure with no HTTP status: what went wrong on the wire."""

    CONNECT = "connect error"  # never reached the server: always safe to resend
    CONNECT_TIMEOUT = "connect timeout"  # likewise never sent
    TIMEOUT = "read timeout"  # sent, answer lost (stall mid-body included)
    DEADLINE = "no complete answer within request_timeout"  # sent, answer dribbling or lost
    RESET = "connection reset"  # sent, answer lost
    DISCONNECTED = "server disconnected"  # sent (stale keep-alive or crash), answer lost
    BAD_BODY = "malformed response body"  # 2xx whose body is not the JSON we need
    BROKEN_BODY = "response body cut short or undecodable"  # truncated, or bad gzip
    NOT_HTTP = "invalid HTTP response"  # the peer does not speak HTTP (wrong port, proxy, ...)
    TLS = "TLS handshake or certificate verification failed"  # never sent; retrying cannot help


# What to check when the wire fails before any answer: said once, in the error a person reads.
_NET_HINTS = {
    NetError.CONNECT: "is the host up and the config's base_url right? check the network",
    NetError.CONNECT_TIMEOUT: "no answer to connect: a firewall, a proxy or a wrong base_url",
    NetError.TLS: "check the certificate and that base_url is the tenant's https URL",
    NetError.NOT_HTTP: "the port does not speak HTTP: check base_url (scheme and port)",
}


def describe_net_error(error: NetError, base_url: str) -> str:
    """A failure with no answer, for people: what happened; when the server was never reached
    (connect, TLS, not HTTP), also which host and what to check."""
    hint = _NET_HINTS.get(error)
    if hint is None:
        return error.value
    return f"{error.value} to {urlsplit(base_url).netloc or base_url} ({hint})"


# Errors after which the server may have applied the request although we saw no answer.
_ANSWER_LOST = frozenset(
    {
        NetError.TIMEOUT,
        NetError.DEADLINE,
        NetError.RESET,
        NetError.DISCONNECTED,
        NetError.BAD_BODY,
        NetError.BROKEN_BODY,
        NetError.NOT_HTTP,
    }
)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Statuses that come from a gateway/server after the request body was received: for a write the
# backend may have acted on it (a 504 is the gateway giving up, not the application refusing).
_WRITE_DOUBT_STATUSES = frozenset({500, 502, 503, 504})


class Kind(Enum):
    """What an answer's status says about the request, for every retry and transient decision
    (the client's retry, a failed item deferred or failed for good, a backup's skip, a token
    request failing fast): one `classify`, so they never disagree."""

    OK = "ok"  # 2xx
    NO_ANSWER = "no answer"  # no status: the wire failed (NetError)
    CREDENTIALS = "credentials"  # 401, 403
    THROTTLED = "throttled"  # 429
    UNAVAILABLE = "unavailable"  # 500, 502, 503, 504: retried
    SERVER = "server error"  # any other 5xx: not retried, but the server's fault
    CONFLICT = "conflict"  # 409: an idempotent write still in flight (or done)
    REFUSED = "refused"  # any other 4xx: this request's own fault
    OTHER = "other"  # 1xx, 3xx: not an answer the API gives

    @property
    def transient(self) -> bool:
        """A later run may succeed without anything changed on our side."""
        return self in (Kind.NO_ANSWER, Kind.THROTTLED, Kind.UNAVAILABLE, Kind.SERVER)

    @property
    def retried(self) -> bool:
        """The client resends (within its attempts) and a give-up is reported as retryable."""
        return self in (Kind.THROTTLED, Kind.UNAVAILABLE, Kind.CONFLICT)

    @property
    def this_request(self) -> bool:
        """A refusal of this one request (4xx but credentials and throttling), not the tenant."""
        return self in (Kind.REFUSED, Kind.CONFLICT)


def classify(status: int | None) -> Kind:
    """The kind of an answer's status (None: no answer at all)."""
    if status is None:
        return Kind.NO_ANSWER
    if 200 <= status < 300:
        return Kind.OK
    if status in (401, 403):
        return Kind.CREDENTIALS
    if status == 429:
        return Kind.THROTTLED
    if status == 409:
        return Kind.CONFLICT
    if status in RETRY_STATUSES:
        return Kind.UNAVAILABLE
    if 500 <= status < 600:
        return Kind.SERVER
    if 400 <= status < 500:
        return Kind.REFUSED
    return Kind.OTHER


class Action(Enum):
    DONE = "done"
    RETRY = "retry"
    REFRESH = "refresh"  # drop the token, fetch a new one, resend at once
    GIVE_UP = "give_up"


@dataclass(frozen=True, slots=True)
class Policy:
    """How hard to try; built from Settings by the client."""

    max_attempts: int = 6
    base: float = 0.5
    cap: float = 60.0
    # A server asking us to wait longer than this is treated as "not today": give up (retryable).
    max_wait: float = 900.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt produced, as far as the decision needs to know."""

    status: int | None = None
    error: NetError | None = None
    headers: Mapping[str, str] | None = None  # keys lower-case
    is_write: bool = False
    idempotency_key: bool = False  # the write carries an Idempotency-Key
    body_has_id: bool = False  # the parsed body is an object with an "id" (the 409 rule)


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    delay: float = 0.0
    in_doubt: bool = False  # a write may have been applied although we never saw the answer
    reason: str = ""
    retry_after: float | None = None  # server-requested pause (seconds), for tenant-wide pacing


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or HTTP-date), None if unusable."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        return max(0.0, when.timestamp() - now)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def server_wait(headers: Mapping[str, str] | None, now: float, *, throttled: bool) -> float | None:
    """The pause the server asked for: Retry-After, else (on 429) an exhausted ratelimit-reset."""
    if not headers:
        return None
    wait = parse_retry_after(headers.get("retry-after"), now)
    if wait is not None or not throttled:
        return wait
    reset = headers.get("ratelimit-reset")
    if reset is None:
        return None
    try:
        seconds = float(reset.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def backoff(attempt: int, policy: Policy, rand: Callable[[], float]) -> float:
    """Full jitter: uniform in [0, min(cap, base · 2^(attempt-1)))."""
    ceiling = min(policy.cap, policy.base * (2.0 ** min(attempt - 1, 62)))
    return max(0.0, min(ceiling, rand() * ceiling))


def decide(
    attempt: int,
    outcome: Outcome,
    *,
    now: float,
    policy: Policy,
    rand: Callable[[], float],
    in_doubt: bool = False,
    refreshed: bool = False,
) -> Decision:
    """Decide what follows attempt number `attempt` (1-based).

    `now` is wall-clock seconds (for HTTP-date Retry-After); `in_doubt` says an earlier attempt
    of this call already lost a write's answer; `refreshed` says the token was refreshed once.
    """
    decision = _decide(
        attempt, outcome, now=now, policy=policy, rand=rand, in_doubt=in_doubt, refreshed=refreshed
    )
    resend = decision.action in (Action.RETRY, Action.REFRESH)
    if resend and decision.in_doubt and outcome.is_write and not outcome.idempotency_key:
        # However we got here, a write that may have landed is never resent without a key.
        return Decision(
            Action.GIVE_UP,
            in_doubt=True,
            reason=f"{decision.reason}; not resent without an Idempotency-Key",
        )
    return decision


def _decide(
    attempt: int,
    outcome: Outcome,
    *,
    now: float,
    policy: Policy,
    rand: Callable[[], float],
    in_doubt: bool,
    refreshed: bool,
) -> Decision:
    status, error = outcome.status, outcome.error
    doubt = in_doubt
    if error is not None:
        if error is NetError.TLS:
            return Decision(
                Action.GIVE_UP,
                in_doubt=doubt,
                reason=f"{error.value} (check the base_url's certificate)",
            )
        lost = error in _ANSWER_LOST
        if outcome.is_write and lost:
            doubt = True
            if not outcome.idempotency_key:
                return _unkeyed_write(error.value)
        return _retry_or_give_up(attempt, policy, rand, doubt, error.value, wait=None)
    assert status is not None
    kind = classify(status)
    if kind is Kind.OK:
        return Decision(Action.DONE, in_doubt=False)
    if status == 401:
        if refreshed:
            return Decision(Action.GIVE_UP, in_doubt=doubt, reason="401 after a token refresh")
        return Decision(Action.REFRESH, in_doubt=doubt, reason="401: token refresh")
    if kind is Kind.CONFLICT and outcome.is_write and outcome.idempotency_key:
        # Spec §1.8 contradiction: 409 is either "first request still in flight" or "already
        # done, here is the stored result". A body carrying an id is a stored import result.
        if outcome.body_has_id:
            return Decision(Action.DONE, in_doubt=False, reason="409 replay of a completed request")
        wait = server_wait(outcome.headers, now, throttled=False)
        return _retry_or_give_up(
            attempt, policy, rand, True, "409 request still in flight", wait=wait
        )
    if kind in (Kind.THROTTLED, Kind.UNAVAILABLE):
        throttled = status in (429, 503)
        wait = server_wait(outcome.headers, now, throttled=status == 429) if throttled else None
        if outcome.is_write and status in _WRITE_DOUBT_STATUSES:
            doubt = True
            if not outcome.idempotency_key:
                return _unkeyed_write(str(status))
        return _retry_or_give_up(attempt, policy, rand, doubt, str(status), wait=wait)
    return Decision(Action.GIVE_UP, in_doubt=doubt, reason=str(status))


def _unkeyed_write(reason: str) -> Decision:
    """A write that may have landed, with no Idempotency-Key to resend it safely under."""
    return Decision(
        Action.GIVE_UP, in_doubt=True, reason=f"{reason}; not resent without an Idempotency-Key"
    )


def _retry_or_give_up(
    attempt: int,
    policy: Policy,
    rand: Callable[[], float],
    doubt: bool,
    reason: str,
    *,
    wait: float | None,
) -> Decision:
    if attempt >= policy.max_attempts:
        return Decision(
            Action.GIVE_UP,
            in_doubt=doubt,
            reason=f"{reason} (after {attempt} attempts)",
            retry_after=wait,
        )
    if wait is not None and wait > policy.max_wait:
        return Decision(
            Action.GIVE_UP,
            in_doubt=doubt,
            reason=f"{reason}; server asks to wait {wait:.0f} s",
            retry_after=wait,
        )
    jitter = backoff(attempt, policy, rand)
    delay = jitter if wait is None else max(wait, jitter)
    return Decision(Action.RETRY, delay=delay, in_doubt=doubt, reason=reason, retry_after=wait)
