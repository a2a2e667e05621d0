"""The pure retry decision: plain values and hypothesis, no I/O, no clock."""

from __future__ import annotations

import email.utils

from hypothesis import given
from hypothesis import strategies as st

from migrator.core.retry import (
    Action,
    Decision,
    NetError,
    Outcome,
    Policy,
    backoff,
    decide,
    parse_retry_after,
    server_wait,
)

POLICY = Policy(max_attempts=6, base=0.5, cap=60.0)
NOW = 1_800_000_000.0


def half() -> float:
    return 0.5


def run(
    attempt: int, outcome: Outcome, *, in_doubt: bool = False, refreshed: bool = False
) -> Decision:
    return decide(
        attempt, outcome, now=NOW, policy=POLICY, rand=half, in_doubt=in_doubt, refreshed=refreshed
    )


statuses = st.integers(min_value=100, max_value=599)
# Transient wire errors; a TLS failure is permanent and has its own test.
errors = st.sampled_from([e for e in NetError if e is not NetError.TLS])
attempts = st.integers(min_value=1, max_value=20)
rands = st.floats(min_value=0.0, max_value=0.999999)


def test_2xx_is_done() -> None:
    """Any 2xx answer ends the call as done and not in doubt."""
    d = decide(1, Outcome(status=200), now=NOW, policy=POLICY, rand=half, in_doubt=True)
    assert d.action is Action.DONE and not d.in_doubt


def test_retry_after_seconds_on_429() -> None:
    """A 429 waits max(Retry-After, jitter) and reports the server's wait for tenant-wide pacing."""
    d = decide(
        1, Outcome(status=429, headers={"retry-after": "12"}), now=NOW, policy=POLICY, rand=half
    )
    assert d.action is Action.RETRY and d.delay == 12.0 and d.retry_after == 12.0


def test_retry_after_http_date() -> None:
    """Retry-After as an HTTP-date is measured from the wall-clock `now`."""
    date = email.utils.formatdate(NOW + 30, usegmt=True)
    d = decide(
        1, Outcome(status=503, headers={"retry-after": date}), now=NOW, policy=POLICY, rand=half
    )
    assert d.action is Action.RETRY and abs(d.delay - 30.0) < 1.0


def test_ratelimit_reset_used_when_no_retry_after() -> None:
    """A 429 without Retry-After falls back to ratelimit-reset."""
    d = decide(
        1,
        Outcome(status=429, headers={"ratelimit-remaining": "0", "ratelimit-reset": "20"}),
        now=NOW,
        policy=POLICY,
        rand=half,
    )
    assert d.delay == 20.0


def test_jitter_wins_over_a_short_retry_after() -> None:
    """When the jitter is longer than Retry-After, the jitter is used (max of the two)."""
    policy = Policy(max_attempts=10, base=10.0, cap=60.0)
    d = decide(
        3,
        Outcome(status=429, headers={"retry-after": "1"}),
        now=NOW,
        policy=policy,
        rand=lambda: 0.9,
    )
    assert d.delay == 0.9 * 40.0


def test_server_wait_beyond_max_wait_gives_up() -> None:
    """A server asking for a pause longer than the policy allows ends the call (retryable later)."""
    d = run(1, Outcome(status=429, headers={"retry-after": "86400"}))
    assert d.action is Action.GIVE_UP


def test_401_refreshes_once() -> None:
    """A 401 asks for a token refresh, and a second 401 after the refresh gives up."""
    assert run(1, Outcome(status=401)).action is Action.REFRESH
    assert run(2, Outcome(status=401), refreshed=True).action is Action.GIVE_UP


def test_other_4xx_give_up_at_once() -> None:
    """400, 403, 404 and 422 are never retried."""
    for status in (400, 403, 404, 422):
        d = run(1, Outcome(status=status, is_write=True, idempotency_key=True))
        assert d.action is Action.GIVE_UP and not d.in_doubt


def test_lost_write_answer_is_in_doubt_and_resent_only_with_key() -> None:
    """A write whose answer was lost is in doubt: resent with an Idempotency-Key, never without."""
    keyed = run(1, Outcome(error=NetError.DISCONNECTED, is_write=True, idempotency_key=True))
    assert keyed.action is Action.RETRY and keyed.in_doubt
    bare = run(1, Outcome(error=NetError.TIMEOUT, is_write=True, idempotency_key=False))
    assert bare.action is Action.GIVE_UP and bare.in_doubt


def test_connect_error_is_not_in_doubt() -> None:
    """A write that never reached the server is resent freely and is not in doubt."""
    d = run(1, Outcome(error=NetError.CONNECT, is_write=True, idempotency_key=False))
    assert d.action is Action.RETRY and not d.in_doubt


def test_in_doubt_survives_until_attempts_run_out() -> None:
    """When attempts run out after a lost answer, the give-up is marked in doubt."""
    d = run(6, Outcome(status=502, is_write=True, idempotency_key=True), in_doubt=True)
    assert d.action is Action.GIVE_UP and d.in_doubt


def test_409_rule() -> None:
    """On a keyed write, 409 with an id is success; 409 without one is retried and in doubt."""
    done = run(2, Outcome(status=409, is_write=True, idempotency_key=True, body_has_id=True))
    assert done.action is Action.DONE
    later = run(2, Outcome(status=409, is_write=True, idempotency_key=True, body_has_id=False))
    assert later.action is Action.RETRY and later.in_doubt
    read = run(1, Outcome(status=409))
    assert read.action is Action.GIVE_UP


def test_parse_retry_after_rejects_garbage() -> None:
    """Unparseable, negative or non-finite Retry-After values are ignored."""
    for value in (None, "", "soon", "-3", "nan", "inf", "Mon, 99 Foo 2020"):
        assert parse_retry_after(value, NOW) is None
    assert parse_retry_after(" 2.5 ", NOW) == 2.5
    assert server_wait({"ratelimit-reset": "9"}, NOW, throttled=False) is None


@given(attempt=attempts, rand=rands)
def test_backoff_is_full_jitter_within_cap(attempt: int, rand: float) -> None:
    """Backoff lies in [0, min(cap, base·2^(attempt-1))]."""
    delay = backoff(attempt, POLICY, lambda: rand)
    assert 0.0 <= delay <= min(POLICY.cap, POLICY.base * 2 ** (attempt - 1))


@given(
    attempt=attempts,
    status=statuses,
    error=st.none() | errors,
    write=st.booleans(),
    keyed=st.booleans(),
    has_id=st.booleans(),
    doubt=st.booleans(),
    refreshed=st.booleans(),
    rand=rands,
    retry_after=st.none() | st.integers(min_value=0, max_value=2000).map(str),
)
def test_decision_invariants(
    attempt: int,
    status: int,
    error: NetError | None,
    write: bool,
    keyed: bool,
    has_id: bool,
    doubt: bool,
    refreshed: bool,
    rand: float,
    retry_after: str | None,
) -> None:
    """Whatever happens: no retry past max attempts, delays bounded, doubt never lost, unkeyed doubt never resent."""
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    outcome = Outcome(
        status=None if error else status,
        error=error,
        headers=headers,
        is_write=write,
        idempotency_key=keyed,
        body_has_id=has_id,
    )
    d = decide(
        attempt,
        outcome,
        now=NOW,
        policy=POLICY,
        rand=lambda: rand,
        in_doubt=doubt,
        refreshed=refreshed,
    )
    if d.action is Action.RETRY:
        assert attempt < POLICY.max_attempts
        assert 0.0 <= d.delay <= max(POLICY.cap, POLICY.max_wait)
        assert not (d.in_doubt and write and not keyed)
    if d.action is Action.REFRESH:
        assert not refreshed
    if d.action in (Action.RETRY, Action.REFRESH):
        assert not (d.in_doubt and write and not keyed)
    if d.action is not Action.DONE and doubt:
        assert d.in_doubt
    if error is None and 400 <= status < 500 and status not in (401, 409, 429):
        assert d.action is Action.GIVE_UP
    if error is None and 200 <= status < 300:
        assert d.action is Action.DONE


@given(attempt=attempts, error=errors)
def test_reads_are_always_retried_until_attempts_run_out(attempt: int, error: NetError) -> None:
    """A read (GET) with a network error is retried while attempts remain and is never in doubt."""
    d = run(attempt, Outcome(error=error))
    assert (d.action is Action.RETRY) == (attempt < POLICY.max_attempts)
    assert not d.in_doubt


def test_tls_failure_gives_up_at_once() -> None:
    """A certificate that fails verification is never retried: nothing was sent and nothing will change."""
    d = run(1, Outcome(error=NetError.TLS))
    assert d.action is Action.GIVE_UP and not d.in_doubt and "certificate" in d.reason


def test_classify_is_the_one_reading_of_a_status() -> None:
    """`classify` sorts every status into one kind, and the decisions built on it agree with the
    rules the client, the engine, backup and the token request each used to spell out."""
    from migrator.core.retry import RETRY_STATUSES, Kind, classify

    for status in [None, *range(100, 600)]:
        kind = classify(status)
        # the engine: a later run may succeed (no answer, 429, any 5xx)
        assert kind.transient == (status is None or status == 429 or status >= 500)
        # the client: a give-up is retryable for 409, 429 and the retried 5xx
        assert kind.retried == (status in (409, 429, 500, 502, 503, 504))
        # backup: a refusal of this one workflow (4xx but 401, 403, 429) is skipped
        this_request = status is not None and 400 <= status < 500
        assert kind.this_request == (this_request and status not in (401, 403, 429))
        # the retry decision retries exactly RETRY_STATUSES among answers
        if status is not None:
            assert (kind in (Kind.THROTTLED, Kind.UNAVAILABLE)) == (status in RETRY_STATUSES)
