"""GCRA pacing, tenant-wide pauses, budgets learned from RateLimit-* headers, and AIMD, with a fake clock."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from migrator.core.pacing import AdaptiveLimit, Pacer, Window, parse_ratelimit_limit


def schedule(pacer: Pacer, arrivals: list[float]) -> list[float]:
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
