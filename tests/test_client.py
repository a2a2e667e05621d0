"""ZuoraClient over real HTTP on 127.0.0.1 against small scripted aiohttp.web servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
from aiohttp import web

from migrator.core.config import Secret, Settings, TenantConfig
from migrator.core.errors import AuthError, ZuoraError
from migrator.fake import FaultConfig
from migrator.zuora import AttemptInfo, ZuoraClient, open_session, valid_track_id
from tests.helpers import (
    SECRET,
    TOKEN,
    Script,
    client_for,
    json_response,
    make_settings,
    serve_app,
)

pytestmark = pytest.mark.anyio


async def test_token_form_and_api_headers() -> None:
    """The token is fetched once with the documented form and no Authorization; API calls carry bearer, track id and gzip."""
    script = Script()

    async def get_wf(request: web.Request) -> web.Response:
        await script.record(request)
        return json_response({"id": 7, "name": "A"})

    async with client_for([("GET", "/workflows/7", get_wf)], script, entity_ids="e-1") as (
        client,
        script,
        _,
    ):
        assert await client.get_workflow(7) == {"id": 7, "name": "A"}
        assert await client.get_workflow(7) == {"id": 7, "name": "A"}
    assert len(script.token_requests) == 1
    token_req = script.token_requests[0]
    assert token_req["form"] == {
        "client_id": "client-id-1",
        "client_secret": SECRET,
        "grant_type": "client_credentials",
    }
    assert "Authorization" not in token_req["headers"]
    assert token_req["headers"]["Content-Type"].startswith("application/x-www-form-urlencoded")
    for request in script.requests:
        assert request.headers["Authorization"] == f"Bearer {TOKEN}1"
        assert "gzip" in request.headers["Accept-Encoding"]
        assert request.headers["Zuora-Entity-Ids"] == "e-1"
        assert valid_track_id(request.headers["Zuora-Track-Id"])
        assert "Idempotency-Key" not in request.headers
    track_ids = [r.headers["Zuora-Track-Id"] for r in script.requests]
    assert len(set(track_ids)) == len(track_ids)


async def test_list_workflows_follows_page_numbers() -> None:
    """Listing pages by number until next_page is absent, ignoring the host in the absolute next_page URL."""
    pages = {1: [{"id": 3}, {"id": 2}], 2: [{"id": 1}]}
    seen: list[str] = []

    async def list_wf(request: web.Request) -> web.Response:
        page = int(request.query["page"])
        seen.append(request.query["page"])
        pagination: dict[str, Any] = {"page": page, "page_length": 2}
        if page < 2:
            pagination["next_page"] = (
                f"https://rest.zuora.com/workflows?page={page + 1}&page_length=2"
            )
        return json_response({"data": pages[page], "pagination": pagination})

    async with client_for([("GET", "/workflows", list_wf)]) as (client, _, _):
        assert [w["id"] for w in await client.list_workflows()] == [3, 2, 1]
    assert seen == ["1", "2"]


async def test_list_workflows_stops_on_empty_data() -> None:
    """A server that always offers a next_page still ends the listing when a page comes back empty."""

    async def list_wf(request: web.Request) -> web.Response:
        page = int(request.query["page"])
        data = [{"id": page}] if page <= 3 else []
        return json_response({"data": data, "pagination": {"next_page": "x", "page": page}})

    async with client_for([("GET", "/workflows", list_wf)]) as (client, _, _):
        assert [w["id"] for w in await client.list_workflows()] == [1, 2, 3]


async def test_import_sends_params_key_and_gzipped_body() -> None:
    """An import carries version/activate query params and the Idempotency-Key; a large body is gzipped."""
    script = Script()

    async def do_import(request: web.Request) -> web.Response:
        await script.record(request)
        return json_response({"id": 99, "version": request.query.get("version")})

    payload = {
        "workflow": {"name": "Big", "description": "x" * 20_000},
        "tasks": [],
        "linkages": [],
    }
    async with client_for([("POST", "/workflows/import", do_import)], script) as (
        client,
        script,
        _,
    ):
        result = await client.import_workflow(
            payload, version="0.0.2", activate=True, idempotency_key="key-1"
        )
    assert result.fields == {"id": 99, "version": "0.0.2"}
    request = script.requests[0]
    assert request.query["version"] == "0.0.2" and request.query["activate"] == "true"
    assert request.headers["Idempotency-Key"] == "key-1"
    assert request.headers["Content-Encoding"] == "gzip"
    assert orjson.loads(script.bodies[0]) == payload


async def test_an_import_given_serialised_sends_those_bytes() -> None:
    """An import given its payload already serialised (as tenants sharing a prepared payload
    do) sends exactly those bytes, gzipped when large, plain JSON when small."""
    script = Script()

    async def handler(request: web.Request) -> web.Response:
        await script.record(request)
        return json_response({"id": 7, "version": request.query.get("version")})

    big = orjson.dumps({"workflow": {"name": "Big", "description": "y" * 20_000}, "tasks": []})
    small = b'{"workflow":{"name":"Small"},"tasks":[]}'
    routes = [
        ("POST", "/workflows/import", handler),
        ("POST", "/workflows/7/versions/import", handler),
    ]
    async with client_for(routes, script) as (client, script, _):
        await client.import_workflow(big, version="1", activate=False, idempotency_key="k1")
        await client.import_version(7, small, version="2", activate=False, idempotency_key="k2")
    assert script.requests[0].headers["Content-Encoding"] == "gzip"
    assert "Content-Encoding" not in script.requests[1].headers
    assert script.bodies == [big, small]


async def test_import_version_and_update_workflow() -> None:
    """Version import and PATCH reach their documented paths with the key and a small plain-JSON body."""
    script = Script()

    async def handler(request: web.Request) -> web.Response:
        await script.record(request)
        return json_response(
            {"id": 5, "path": request.path, "activate": request.query.get("activate")}
        )

    routes = [("POST", "/workflows/5/versions/import", handler), ("PATCH", "/workflows/5", handler)]
    async with client_for(routes, script) as (client, script, _):
        imported = await client.import_version(
            5, {"tasks": []}, version="1.0", activate=False, idempotency_key="k2"
        )
        patched = await client.update_workflow(
            5, {"active_workflow_version_id": 9}, idempotency_key="k3"
        )
    assert imported.fields["path"] == "/workflows/5/versions/import"
    assert imported.fields["activate"] == "false"
    assert patched["path"] == "/workflows/5"
    assert [r.headers["Idempotency-Key"] for r in script.requests] == ["k2", "k3"]
    assert "Content-Encoding" not in script.requests[0].headers
    assert orjson.loads(script.bodies[1]) == {"active_workflow_version_id": 9}


async def test_overlong_idempotency_key_is_rejected_before_sending() -> None:
    """A key over 255 characters is a clear ZuoraError and nothing is sent."""
    script = Script()

    async def do_import(request: web.Request) -> web.Response:
        await script.record(request)
        return json_response({"id": 1})

    async with client_for([("POST", "/workflows/import", do_import)], script) as (
        client,
        script,
        _,
    ):
        with pytest.raises(ZuoraError, match="idempotency key"):
            await client.import_workflow(
                {}, version=None, activate=False, idempotency_key="k" * 256
            )
    assert script.requests == []


async def test_429_retry_after_is_honoured_and_pauses_tenant() -> None:
    """A 429 with Retry-After is retried after at least that long, counted as throttled, and pauses the tenant."""
    calls = 0

    async def get_wf(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return json_response({"message": "slow down"}, 429, {"Retry-After": "7"})
        return json_response({"id": 1})

    async with client_for([("GET", "/workflows/1", get_wf)]) as (client, _, slept):
        assert await client.get_workflow(1) == {"id": 1}
        assert client.stats.throttled == 1 and client.stats.retries == 1
        assert client.pacer.paused_until > 0
        assert client.limiter.adaptive.limit == 4  # halved from 8
    assert slept and slept[0] >= 7


async def test_5xx_retried_then_400_gives_up_with_clear_message() -> None:
    """A 503 is retried; a 400 is not, and its message names tenant, method, path, status and reason."""
    calls = 0

    async def do_import(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return json_response({}, 503)
        return json_response(
            {
                "errors": [
                    {
                        "title": "version 0.0.1 must be greater than 0.0.2",
                        "code": "invalid",
                        "status": 400,
                    }
                ]
            },
            400,
        )

    async with client_for([("POST", "/workflows/import", do_import)]) as (client, _, _):
        with pytest.raises(ZuoraError) as info:
            await client.import_workflow(
                {"a": 1}, version="0.0.1", activate=False, idempotency_key="k"
            )
    assert calls == 2
    assert str(info.value).startswith(
        "tenant prod: POST /workflows/import: 400 version 0.0.1 must be greater than 0.0.2"
    )
    assert info.value.status == 400
    assert info.value.in_doubt  # the 503 answer may have come after the import was applied


async def test_404_on_export_is_a_status_error() -> None:
    """A 404 on export raises ZuoraError(status=404) at once, leaving the decision to the caller."""
    calls = 0

    async def export(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return json_response(
            {"errors": [{"title": "not found", "code": "invalid", "status": 404}]}, 404
        )

    async with client_for([("GET", "/workflows/4/export", export)]) as (client, _, _):
        with pytest.raises(ZuoraError) as info:
            await client.export_workflow(4, "latest")
    assert info.value.status == 404 and not info.value.in_doubt and calls == 1
    assert "GET /workflows/4/export: 404 not found" in str(info.value)


async def test_401_refreshes_token_once() -> None:
    """A 401 drops the token, fetches a new one and retries once; a second 401 gives up."""
    script = Script()

    async def get_wf(request: web.Request) -> web.Response:
        await script.record(request)
        if request.headers["Authorization"] == f"Bearer {TOKEN}1":
            return json_response({"errors": [{"title": "expired"}]}, 401)
        return json_response({"id": 1})

    async def always_401(request: web.Request) -> web.Response:
        return json_response({}, 401)

    routes = [("GET", "/workflows/1", get_wf), ("GET", "/workflows/2", always_401)]
    async with client_for(routes, script) as (client, script, _):
        assert await client.get_workflow(1) == {"id": 1}
        assert len(script.token_requests) == 2 and client.stats.refreshes == 1
        with pytest.raises(ZuoraError) as info:
            await client.get_workflow(2)
    assert info.value.status == 401
    assert len(script.token_requests) == 3  # one refresh per call, not a storm


async def test_token_expiry_triggers_refresh() -> None:
    """A token is reused until its refresh time (half the lifetime for short tokens) and then renewed."""
    script = Script(expires_in=10)
    now = [1000.0]

    async def get_wf(request: web.Request) -> web.Response:
        await script.record(request)
        return json_response({"id": 1})

    app = web.Application()
    app.router.add_post("/oauth/token", script.token)
    app.router.add_get("/workflows/1", get_wf)
    async with serve_app(app) as base:
        settings = make_settings(base)
        async with open_session(settings) as session:
            client = ZuoraClient(settings.tenants["prod"], session, settings, clock=lambda: now[0])
            await client.get_workflow(1)
            now[0] += 4.9
            await client.get_workflow(1)
            now[0] += 0.2
            await client.get_workflow(1)
    assert [r.headers["Authorization"] for r in script.requests] == [
        f"Bearer {TOKEN}1",
        f"Bearer {TOKEN}1",
        f"Bearer {TOKEN}2",
    ]


async def test_concurrent_first_calls_share_one_token_fetch() -> None:
    """Many calls starting at once wait for a single token request."""
    script = Script(token_delay=0.05)

    async def get_wf(request: web.Request) -> web.Response:
        return json_response({"id": 1})

    async with client_for([("GET", "/workflows/1", get_wf)], script) as (client, script, _):
        await asyncio.gather(*(client.get_workflow(1) for _ in range(20)))
    assert len(script.token_requests) == 1


async def test_rejected_credentials_fail_fast_without_the_secret() -> None:
    """A 401 from the token endpoint is one AuthError, after one request, whose text hides the secret."""
    script = Script(token_status=401)

    async def get_wf(request: web.Request) -> web.Response:
        return json_response({"id": 1})

    async with client_for([("GET", "/workflows/1", get_wf)], script) as (client, script, _):
        with pytest.raises(AuthError) as info:
            await client.get_workflow(1)
    assert len(script.token_requests) == 1
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)
    assert str(info.value).startswith("tenant prod: POST /oauth/token: credentials rejected (401")


async def test_token_429_honours_retry_after() -> None:
    """A 429 on the token endpoint is retried after its Retry-After."""
    script = Script()
    calls = 0
    original = script.token

    async def token(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return json_response({}, 429, {"Retry-After": "3"})
        return await original(request)

    script.token = token  # type: ignore[method-assign]

    async def get_wf(request: web.Request) -> web.Response:
        return json_response({"id": 1})

    async with client_for([("GET", "/workflows/1", get_wf)], script) as (client, _, slept):
        assert await client.get_workflow(1) == {"id": 1}
    assert calls == 2 and slept and max(slept) >= 3


async def test_409_with_result_is_success_and_without_is_retried() -> None:
    """On a keyed write, 409 carrying an id is the stored result; 409 without one is retried later."""
    calls = 0

    async def do_import(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return json_response({"errors": [{"title": "request in progress"}]}, 409)
        return json_response({"id": 42, "name": "A"}, 409)

    async with client_for([("POST", "/workflows/import", do_import)]) as (client, _, _):
        result = await client.import_workflow(
            {"a": 1}, version=None, activate=False, idempotency_key="k"
        )
    assert result.fields == {"id": 42, "name": "A"} and calls == 2


async def test_lost_answer_resent_with_same_key_imports_once() -> None:
    """A write whose connection drops after sending is resent with the same key, and the server imports once."""
    imports: dict[str, dict[str, Any]] = {}
    seen_keys: list[str] = []

    async def do_import(request: web.Request) -> web.StreamResponse:
        key = request.headers["Idempotency-Key"]
        seen_keys.append(key)
        await request.read()
        if key in imports:
            return json_response(imports[key])
        imports[key] = {"id": len(imports) + 1}
        # Applied, then the answer is lost: drop the connection without a response.
        assert request.transport is not None
        request.transport.close()
        await asyncio.sleep(0.05)
        return json_response({})

    async with client_for([("POST", "/workflows/import", do_import)]) as (client, _, _):
        result = await client.import_workflow(
            {"a": 1}, version=None, activate=False, idempotency_key="same"
        )
    assert result.fields == {"id": 1}
    assert seen_keys == ["same", "same"] and len(imports) == 1


async def test_concurrency_cap_is_respected() -> None:
    """Exactly max_concurrency requests are in flight at once: the cap is reached, never passed."""
    in_flight = 0
    peak = 0
    full = asyncio.Event()

    async def get_wf(request: web.Request) -> web.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight == 3:
            full.set()
        # Each answer waits until the cap is full once: a cap below 3 would time out here.
        async with asyncio.timeout(30):
            await full.wait()
        in_flight -= 1
        return json_response({"id": 1})

    async with client_for([("GET", "/workflows/1", get_wf)], max_concurrency=3) as (client, _, _):
        await asyncio.gather(*(client.get_workflow(1) for _ in range(12)))
    assert peak == 3 and client.stats.requests == 12


async def test_on_attempt_reports_each_attempt() -> None:
    """The on_attempt callback sees every attempt with its status and the decision taken."""
    calls = 0
    seen: list[AttemptInfo] = []

    async def get_wf(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return json_response({}, 502) if calls == 1 else json_response({"id": 1})

    async with client_for([("GET", "/workflows/1", get_wf)], on_attempt=seen.append) as (
        client,
        _,
        _,
    ):
        await client.get_workflow(1)
    assert [(a.attempt, a.status, a.action) for a in seen] == [(1, 502, "retry"), (2, 200, "done")]
    assert all(a.tenant == "prod" and a.path == "/workflows/1" for a in seen)


# ---- against the project's fake Zuora ---------------------------------------------------------


@asynccontextmanager
async def fake_client(
    fake_knobs: dict[str, Any] | None = None, **tenant_knobs: Any
) -> AsyncIterator[tuple[ZuoraClient, Any, list[AttemptInfo], Callable[[float], Awaitable[None]]]]:
    """A ZuoraClient on one tenant of the built-in fake, both on a shared fake clock that sleeps advance.

    Yields the client, the running fake, every AttemptInfo, and the sleep that moves the clock.
    """
    from migrator.fake import FakeConfig, serve
    from migrator.fake._config import demo_tenant

    now = [1_800_000_000.0]
    attempts: list[AttemptInfo] = []
    slept: list[float] = []

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)
        now[0] += max(0.0, delay)
        await asyncio.sleep(0)

    fake_tenant = demo_tenant(1, **(fake_knobs or {}))
    config = FakeConfig(tenants=[fake_tenant], clock=lambda: now[0])
    async with serve(config) as fake:
        tenant = TenantConfig(
            name=fake_tenant.name,
            base_url=fake.base_url,
            client_id=fake_tenant.client_id,
            client_secret=Secret(fake_tenant.client_secret),
            **tenant_knobs,
        )
        settings = Settings(
            file="test.toml", tenants={tenant.name: tenant}, read_timeout=5.0, backoff_base=0.01
        )
        async with open_session(settings) as session:
            client = ZuoraClient(
                tenant,
                session,
                settings,
                clock=lambda: now[0],
                wall=lambda: now[0],
                sleep=fake_sleep,
                on_attempt=attempts.append,
            )
            yield client, fake, attempts, fake_sleep


def sample_payload() -> dict[str, Any]:
    from tests.conftest import SAMPLES

    data: dict[str, Any] = orjson.loads((SAMPLES / "01-welcome-new-account.json").read_bytes())
    return data


async def test_fake_expired_token_is_refreshed() -> None:
    """Against the fake: a token the server has forgotten gives one 401, one refresh, and the call succeeds."""
    async with fake_client() as (client, fake, attempts, _):
        assert await client.list_workflows() == []
        fake.expire_tokens()
        assert await client.list_workflows() == []
    assert client.stats.refreshes == 1 and client.auth.fetches == 2
    assert [a.status for a in attempts] == [200, 401, 200]


async def test_fake_token_renewed_before_expiry() -> None:
    """Against the fake: a short-lived token is renewed before it expires, so no call ever sees a 401."""
    async with fake_client({"token_ttl": 100}) as (client, _, attempts, advance):
        await client.list_workflows()
        await advance(60)
        await client.list_workflows()
    assert client.auth.fetches == 2 and client.stats.refreshes == 0
    assert all(a.status == 200 for a in attempts)


async def test_fake_429_retry_after_pauses_and_is_respected() -> None:
    """Against the fake's concurrency limit: every 429 is retried no sooner than its Retry-After and all calls succeed."""
    faults = FaultConfig(latency=0.02)
    async with fake_client({"max_concurrency": 1, "faults": faults}, max_concurrency=4) as (
        client,
        _,
        attempts,
        _,
    ):
        results = await asyncio.gather(*(client.list_workflows() for _ in range(4)))
    assert results == [[]] * 4
    throttled = [a for a in attempts if a.status == 429]
    assert throttled and client.stats.throttled == len(throttled)
    assert all(a.action == "retry" and a.delay >= 1.0 for a in throttled)
    assert client.limiter.adaptive.limit < 4


async def test_fake_lost_response_resent_with_same_key_imports_once() -> None:
    """Against the fake: an import applied but whose answer was lost is resent with its key and lands exactly once."""
    async with fake_client({"faults": FaultConfig(lost_response_rate=1.0)}) as (
        client,
        fake,
        attempts,
        _,
    ):
        tenant = client.tenant.name

        def heal(info: AttemptInfo) -> None:
            attempts.append(info)
            fake.set_faults(tenant, FaultConfig())

        client._on_attempt = heal
        result = await client.import_workflow(
            sample_payload(), version="0.0.1", activate=False, idempotency_key="once-1"
        )
        ledger = fake.ledger(tenant)
    assert isinstance(result.id, int)
    assert [a.error for a in attempts] == ["server disconnected", None]
    assert len(ledger) == 1 and ledger[0]["idempotency_key"] == "once-1"


async def test_fake_learned_budget_avoids_429s() -> None:
    """Against the fake with no configured rate: the budget learned from RateLimit-* headers keeps every call under it."""
    async with fake_client({"requests_per_minute": 5}) as (client, _, attempts, _):
        for _ in range(12):
            await client.list_workflows()
    assert client.stats.throttled == 0
    assert len(attempts) == 12 and all(a.status == 200 for a in attempts)


async def test_open_session_settings() -> None:
    """The run's session uses a dummy cookie jar, per-socket timeouts only, and the configured pool size."""
    settings = make_settings(
        "http://127.0.0.1:1", max_connections=7, connect_timeout=3.0, read_timeout=9.0
    )
    async with open_session(settings) as session:
        import aiohttp

        assert isinstance(session.cookie_jar, aiohttp.DummyCookieJar)
        assert session.timeout.total is None and session.timeout.connect is None
        assert session.timeout.sock_connect == 3.0 and session.timeout.sock_read == 9.0
        assert isinstance(session.connector, aiohttp.TCPConnector) and session.connector.limit == 7


async def _fleet_token_sleeps(
    tenants: int, token: Any, *, per_minute: int | None = None, first_alone: bool = False
) -> tuple[list[float], list[float]]:
    """Start `tenants` tenants at once on one session (clock frozen at 0, sleeps recorded but
    not slept; with `first_alone` the first tenant finishes before the others start); each
    makes one call twice. The sleeps, and the clock at each token request."""
    app = web.Application()
    now = [0.0]
    asked: list[float] = []

    async def recorded_token(request: web.Request) -> web.StreamResponse:
        asked.append(now[0])
        response: web.StreamResponse = await token(request)
        return response

    async def get_wf(request: web.Request) -> web.Response:
        return json_response({"id": 1})

    app.router.add_post("/oauth/token", recorded_token)
    app.router.add_get("/workflows/1", get_wf)
    slept: list[float] = []

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)
        await asyncio.sleep(0)

    async with serve_app(app) as base:
        extra = {} if per_minute is None else {"token_requests_per_minute": per_minute}
        settings = make_settings(base, **extra)
        async with open_session(settings) as session:
            clients = [
                ZuoraClient(
                    TenantConfig(
                        name=f"t{i}",
                        base_url=base,
                        client_id=f"id-{i}",
                        client_secret=Secret(SECRET),
                    ),
                    session,
                    settings,
                    clock=lambda: now[0],
                    sleep=fake_sleep,
                )
                for i in range(tenants)
            ]
            if first_alone:
                await clients[0].get_workflow(1)
            await asyncio.gather(*(c.get_workflow(1) for c in clients))
            await asyncio.gather(*(c.get_workflow(1) for c in clients))
    return slept, asked


async def test_many_tenants_share_the_token_budget() -> None:
    """Fifteen tenants starting at once on one session fetch one token each, all at once: the
    whole allowance of a rolling minute may go together, not a burst of ten and a trickle.

    (Issue 25 changed this from "ten at once, then 2/3 s apart".)"""
    script = Script()
    slept, asked = await _fleet_token_sleeps(15, script.token)
    assert len(script.token_requests) == 15 and len(asked) == 15
    assert slept == []


async def test_token_requests_beyond_the_allowance_wait_for_the_window() -> None:
    """With `token_requests_per_minute = 10`, ten of fifteen tenants get their tokens at once and
    the other five wait until a minute after the first ten, never sooner."""
    script = Script()
    slept, _ = await _fleet_token_sleeps(15, script.token, per_minute=10)
    assert len(script.token_requests) == 15
    assert sorted(slept) == pytest.approx([60.0] * 5)


async def test_a_429_at_the_token_endpoint_holds_every_tenant() -> None:
    """A 429 with Retry-After at the token endpoint pauses the token requests of every tenant
    sharing the session, not only the one that was refused; after it they go one at a time at
    the steady rate (60 s ÷ 90), not in a burst."""
    script = Script()
    refused = 0

    async def token(request: web.Request) -> web.Response:
        nonlocal refused
        if refused == 0:
            refused += 1
            return json_response({}, 429, {"Retry-After": "30"})
        return await script.token(request)

    slept, _ = await _fleet_token_sleeps(4, token, first_alone=True)
    assert refused == 1 and len(script.token_requests) == 4
    # The refused tenant's retry waits 30 s (Retry-After); the clock stands still, so the three
    # tenants starting after it wait for the pause and then the steady spacing.
    step = 60.0 / 90
    assert sorted(slept)[-3:] == pytest.approx([30.0 + step, 30.0 + 2 * step, 30.0 + 3 * step])


async def test_attempts_of_one_call_share_a_track_id() -> None:
    """All attempts of one call carry the same Zuora-Track-Id; different calls carry different ones."""
    script = Script()
    calls = 0

    async def get_wf(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        await script.record(request)
        return json_response({}, 500) if calls == 1 else json_response({"id": 1})

    async with client_for([("GET", "/workflows/1", get_wf)], script) as (client, script, _):
        await client.get_workflow(1)
        await client.get_workflow(1)
    first, retry, other = (r.headers["Zuora-Track-Id"] for r in script.requests)
    assert first == retry != other


async def test_rejected_credentials_are_asked_once_per_run() -> None:
    """After a tenant's credentials are rejected, later and concurrent calls fail at once without asking again."""
    script = Script(token_status=401)

    async def get_wf(request: web.Request) -> web.Response:
        return json_response({"id": 1})

    async with client_for([("GET", "/workflows/1", get_wf)], script) as (client, script, _):
        results = await asyncio.gather(
            *(client.get_workflow(1) for _ in range(10)), return_exceptions=True
        )
        with pytest.raises(AuthError):
            await client.get_workflow(1)
    assert all(isinstance(r, AuthError) for r in results)
    assert len(script.token_requests) == 1
    assert str(results[1]) == str(results[0]) and results[1] is not results[0]
    assert (
        isinstance(results[1], AuthError)
        and results[1].status == 401
        and results[1].tenant == "prod"
    )


async def test_tenants_share_one_cap_sized_to_the_pool() -> None:
    """Across tenants, exactly as many requests are in flight as the session's connection pool holds: reached, never passed."""
    in_flight = 0
    peak = 0
    full = asyncio.Event()
    script = Script()

    async def get_wf(request: web.Request) -> web.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight == 3:
            full.set()
        async with asyncio.timeout(30):  # a pool below 3 would never fill: fail, not hang
            await full.wait()
        in_flight -= 1
        return json_response({"id": 1})

    app = web.Application()
    app.router.add_post("/oauth/token", script.token)
    app.router.add_get("/workflows/1", get_wf)
    async with serve_app(app) as base:
        settings = make_settings(base, max_connections=3)
        async with open_session(settings) as session:
            clients = [
                ZuoraClient(
                    TenantConfig(
                        name=f"t{i}",
                        base_url=base,
                        client_id=f"id-{i}",
                        client_secret=Secret(SECRET),
                    ),
                    session,
                    settings,
                )
                for i in range(4)
            ]
            await asyncio.gather(*(c.get_workflow(1) for c in clients for _ in range(5)))
    assert peak == 3
