"""Hostile pacing and hanging answers (issue 14, items 7 and 8): capped pauses, a stop that is
prompt, a whole-request deadline, and a 429 that makes the tenant's siblings wait too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
import structlog
from aiohttp import web

from migrator.core.config import Secret, Settings, TenantConfig
from migrator.core.errors import ProtocolError, ZuoraError
from migrator.fake import FakeConfig, FaultConfig, serve
from migrator.zuora import AttemptInfo, ZuoraClient, open_session
from tests.helpers import Script, client_for, json_response, make_settings, serve_app

pytestmark = pytest.mark.anyio


async def test_429_retry_after_pauses_the_tenant_for_exactly_that_long() -> None:
    """A 429 with Retry-After: 7 at clock 1000 pauses the whole tenant until exactly 1007."""
    calls = 0

    async def get_wf(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return json_response({"message": "slow down"}, 429, {"Retry-After": "7"})
        return json_response({"id": 1})

    async with client_for([("GET", "/workflows/1", get_wf)]) as (client, _, slept):
        assert await client.get_workflow(1) == {"id": 1}
        assert client.pacer.paused_until == 1007.0
    assert slept == [7.0]


async def test_retry_after_of_a_day_pauses_the_tenant_at_most_max_wait_and_says_so() -> None:
    """Retry-After: 86400 fails that call as retryable, pauses the tenant max_wait (900 s), not a day, and logs it once."""

    async def get_wf(request: web.Request) -> web.Response:
        return json_response({"message": "come back tomorrow"}, 429, {"Retry-After": "86400"})

    with structlog.testing.capture_logs() as events:
        async with client_for([("GET", "/workflows/1", get_wf)]) as (client, _, _):
            with pytest.raises(ZuoraError) as info:
                await client.get_workflow(1)
            assert client.pacer.paused_until == 1000.0 + 900.0
    assert info.value.retryable and "server asks to wait 86400 s" in str(info.value)
    capped = [e for e in events if "pausing 900 s" in e["event"]]
    assert len(capped) == 1 and "86400 s" in capped[0]["event"], events
    assert capped[0]["log_level"] == "warning"


async def test_exhausted_ratelimit_reset_of_a_day_is_capped_and_logged() -> None:
    """A 200 saying RateLimit-Remaining: 0, RateLimit-Reset: 86400 pauses the tenant max_wait, not a day, and says so."""

    async def get_wf(request: web.Request) -> web.Response:
        headers = {"RateLimit-Remaining": "0", "RateLimit-Reset": "86400"}
        return json_response({"id": 1}, 200, headers)

    with structlog.testing.capture_logs() as events:
        async with client_for([("GET", "/workflows/1", get_wf)], max_wait=60.0) as (client, _, _):
            assert await client.get_workflow(1) == {"id": 1}
            assert client.pacer.paused_until == 1000.0 + 60.0
    capped = [e for e in events if "pausing 60 s" in e["event"]]
    assert len(capped) == 1 and "86400 s" in capped[0]["event"], events


@asynccontextmanager
async def stoppable_client(
    routes: list[tuple[str, str, Any]],
    stopping: anyio.Event,
    sleeping: anyio.Event,
    **overrides: Any,
) -> AsyncIterator[ZuoraClient]:
    """A client on real time whose sleeps announce themselves on `sleeping`."""
    script = Script()
    app = web.Application()
    app.router.add_post("/oauth/token", script.token)
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)

    async def announced_sleep(delay: float) -> None:
        sleeping.set()
        await asyncio.sleep(delay)

    async with serve_app(app) as base:
        settings = make_settings(base, **overrides)
        async with open_session(settings) as session:
            yield ZuoraClient(
                settings.tenants["prod"],
                session,
                settings,
                sleep=announced_sleep,
                run_id="t1",
                stopping=stopping,
            )


async def test_first_stop_ends_a_long_server_pause_promptly() -> None:
    """A call waiting out a 600 s Retry-After ends as a retryable error as soon as the run starts stopping."""

    async def get_wf(request: web.Request) -> web.Response:
        return json_response({"message": "slow down"}, 429, {"Retry-After": "600"})

    stopping, sleeping = anyio.Event(), anyio.Event()
    async with stoppable_client([("GET", "/workflows/1", get_wf)], stopping, sleeping) as client:
        with anyio.fail_after(60):  # a hang guard, far below the 600 s pause
            async with anyio.create_task_group() as tg:
                failures: list[ZuoraError] = []

                async def call() -> None:
                    try:
                        await client.get_workflow(1)
                    except ZuoraError as exc:
                        failures.append(exc)

                tg.start_soon(call)
                await sleeping.wait()
                stopping.set()
    assert len(failures) == 1
    assert failures[0].retryable and "stopped" in str(failures[0])
    assert "600 s" in str(failures[0])


async def test_a_call_queued_behind_a_tenant_pause_stops_at_once_when_already_stopping() -> None:
    """Once the run is stopping, a call meeting a tenant pause fails at once instead of waiting it out."""

    async def get_wf(request: web.Request) -> web.Response:
        return json_response({"id": 1})

    stopping, sleeping = anyio.Event(), anyio.Event()
    async with stoppable_client([("GET", "/workflows/1", get_wf)], stopping, sleeping) as client:
        client.pacer.pause(asyncio.get_running_loop().time(), 500.0)
        client._clock = asyncio.get_running_loop().time
        stopping.set()
        with anyio.fail_after(60), pytest.raises(ZuoraError) as info:
            await client.get_workflow(1)
    assert "stopped" in str(info.value) and not sleeping.is_set()


# ---- a 429 pauses the siblings too, end to end over HTTP to the fake ------------------------


async def test_fake_429_makes_a_concurrent_sibling_of_the_tenant_wait_too() -> None:
    """Against the fake: after one request's 429 (Retry-After 1), a sibling call of the same tenant waits that second before sending."""
    from migrator.fake._config import demo_tenant

    base = 1_800_000_000.0
    # Virtual time per task: one task's sleep never moves another's clock, so what a task waits
    # is exactly what the pacer asked of it, however the tasks interleave.
    times: dict[str, float] = {}
    # What each task did, in order: ("sleep", seconds) or ("attempt", status).
    events: dict[str, list[tuple[str, float | int | None]]] = {}

    def task_name() -> str:
        task = asyncio.current_task()
        return task.get_name() if task else "?"

    def task_clock() -> float:
        return times.get(task_name(), base)

    def task_events() -> list[tuple[str, float | int | None]]:
        return events.setdefault(task_name(), [])

    async def fake_sleep(delay: float) -> None:
        task_events().append(("sleep", delay))
        times[task_name()] = task_clock() + max(0.0, delay)
        await asyncio.sleep(0)

    # One request at a time on the fake, each held a second: the second of two gets a 429.
    fake_tenant = demo_tenant(1, max_concurrency=1, faults=FaultConfig(latency=1.0))
    config = FakeConfig(tenants=[fake_tenant], clock=lambda: base)
    throttled = asyncio.Event()
    attempts: list[AttemptInfo] = []

    def on_attempt(info: AttemptInfo) -> None:
        attempts.append(info)
        task_events().append(("attempt", info.status))
        if info.status == 429:
            throttled.set()

    async with serve(config) as fake:
        tenant = TenantConfig(
            name=fake_tenant.name,
            base_url=fake.base_url,
            client_id=fake_tenant.client_id,
            client_secret=Secret(fake_tenant.client_secret),
            max_concurrency=8,  # halved to 4 by the 429: the sibling gets a slot at once
        )
        settings = Settings(
            file="test.toml", tenants={tenant.name: tenant}, read_timeout=30.0, backoff_base=0.0
        )
        async with open_session(settings) as session:
            client = ZuoraClient(
                tenant,
                session,
                settings,
                clock=task_clock,
                wall=task_clock,
                sleep=fake_sleep,
                on_attempt=on_attempt,
            )
            await client.auth.token()  # both first calls then leave together

            async def sibling() -> list[dict[str, Any]]:
                await throttled.wait()
                return await client.list_workflows()

            with anyio.fail_after(120):
                results = await asyncio.gather(
                    asyncio.create_task(client.list_workflows(), name="first"),
                    asyncio.create_task(client.list_workflows(), name="second"),
                    asyncio.create_task(sibling(), name="sibling"),
                )
    assert results == [[], [], []]
    assert [a.delay for a in attempts if a.status == 429][:1] == [1.0]
    # Before its own first attempt (so before any 429 of its own) the sibling waited out the pause.
    sibling = events["sibling"]
    first_attempt = sibling.index(next(e for e in sibling if e[0] == "attempt"))
    waited = sum(float(v or 0) for kind, v in sibling[:first_attempt] if kind == "sleep")
    assert waited >= 1.0, events


# ---- a whole-request deadline ---------------------------------------------------------------


async def dribble(request: web.Request) -> web.StreamResponse:
    """Headers at once, then one byte of a never-ending body every 0.2 s."""
    resp = web.StreamResponse(
        headers={"Content-Type": "application/json", "Content-Length": "100000"}
    )
    await resp.prepare(request)
    while True:
        await resp.write(b" ")
        await asyncio.sleep(0.2)


DEADLINE: dict[str, Any] = {"max_attempts": 2, "read_timeout": 10.0, "request_timeout": 1.0}


async def test_a_dribbling_answer_hits_the_request_deadline() -> None:
    """A server sending one byte every 0.2 s (each read in time) fails the call at request_timeout: a read retried, an import in doubt."""
    routes = [("GET", "/workflows/1", dribble), ("POST", "/workflows/import", dribble)]
    async with client_for(routes, **DEADLINE) as (client, _, _):
        with anyio.fail_after(60):
            with pytest.raises(ZuoraError) as read:
                await client.get_workflow(1)
            with pytest.raises(ZuoraError) as write:
                await client.import_workflow(
                    {"a": 1}, version=None, activate=False, idempotency_key="k"
                )
    assert str(read.value) == (
        "tenant prod: GET /workflows/1: no complete answer within request_timeout (after 2 attempts)"
    )
    assert read.value.retryable and not read.value.in_doubt
    assert write.value.in_doubt
    assert client.stats.requests == 4


async def test_a_dribbling_token_endpoint_hits_the_request_deadline() -> None:
    """A token endpoint that dribbles its answer fails the token fetch at request_timeout instead of hanging."""
    app = web.Application()
    app.router.add_post("/oauth/token", dribble)
    async with serve_app(app) as base:
        settings = make_settings(base, **DEADLINE)
        async with open_session(settings) as session:
            client = ZuoraClient(settings.tenants["prod"], session, settings, run_id="t1")
            with anyio.fail_after(60), pytest.raises(ZuoraError) as info:
                await client.get_workflow(1)
    assert "no complete answer within request_timeout" in str(info.value)


# ---- a 2xx whose JSON is not the documented shape -------------------------------------------


async def test_a_read_answered_with_json_that_is_not_an_object_fails_for_good_at_once() -> None:
    """A GET answered 200 `[]` (or a listing without its data list) is a permanent protocol error, asked once, not in doubt."""

    async def not_object(request: web.Request) -> web.Response:
        return json_response([])

    async def no_data(request: web.Request) -> web.Response:
        return json_response({"data": "x"})

    routes = [("GET", "/workflows/1", not_object), ("GET", "/workflows", no_data)]
    async with client_for(routes, max_attempts=5) as (client, _, _):
        with pytest.raises(ProtocolError) as read:
            await client.get_workflow(1)
        with pytest.raises(ProtocolError) as listing:
            await client.list_workflows()
        assert client.stats.requests == 2 and client.stats.retries == 0
    assert str(read.value) == (
        "tenant prod: GET /workflows/1: 200 answer, but response is not a JSON object"
        " (a protocol error: not retried)"
    )
    for error in (read.value, listing.value):
        assert error.status == 200 and not error.in_doubt and not error.retryable
    assert "no list of objects under 'data'" in str(listing.value)


async def test_an_import_answered_with_json_that_is_not_an_object_is_in_doubt_and_not_resent() -> (
    None
):
    """A POST import answered 200 `"x"` is in doubt (it may have landed) and is sent once, not resent with its key."""
    keys: list[str | None] = []

    async def do_import(request: web.Request) -> web.Response:
        keys.append(request.headers.get("Idempotency-Key"))
        return json_response("x")

    async with client_for([("POST", "/workflows/import", do_import)], max_attempts=5) as (
        client,
        _,
        _,
    ):
        with pytest.raises(ProtocolError) as info:
            await client.import_workflow(
                {"a": 1}, version=None, activate=False, idempotency_key="k-1"
            )
    assert keys == ["k-1"]
    assert info.value.in_doubt and not info.value.retryable and info.value.status == 200
