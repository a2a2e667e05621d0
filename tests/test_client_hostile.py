"""Hostile servers and leaked secrets (issue 8): every bad answer is one clear ZuoraError, no hang, no secret."""

from __future__ import annotations

import asyncio
import gzip
import logging
import socket
from typing import Any

import orjson
import pytest
import structlog
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from migrator.core.errors import AuthError, ZuoraError
from migrator.zuora import ZuoraClient, open_session
from migrator.zuora.http import MAX_DETAIL, error_detail
from tests.helpers import SECRET, TOKEN, Script, client_for, json_response, make_settings

pytestmark = pytest.mark.anyio

# Few attempts, and timeouts no loaded machine reaches on an answer that comes at once.
FAST: dict[str, Any] = {"max_attempts": 3, "read_timeout": 30.0, "connect_timeout": 30.0}
# Only for the tests of a server that stalls: the read timeout is what they are about.
STALLING: dict[str, Any] = {**FAST, "read_timeout": 0.3}


async def test_html_error_page_is_summarised_and_retried() -> None:
    """A 502 HTML page is retried, then reported by its title, without HTML in the message."""
    calls = 0

    async def get_wf(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        page = (
            "<html><head><title>502 Bad Gateway</title></head><body><h1>nginx</h1>"
            + "x" * 5000
            + "</body></html>"
        )
        return web.Response(text=page, status=502, content_type="text/html")

    async with client_for([("GET", "/workflows/1", get_wf)], **FAST) as (client, _, _):
        with pytest.raises(ZuoraError) as info:
            await client.get_workflow(1)
    message = str(info.value)
    assert calls == 3 and info.value.status == 502 and info.value.retryable
    assert (
        message
        == "tenant prod: GET /workflows/1: 502 HTML page: 502 Bad Gateway (after 3 attempts)"
    )
    assert "<" not in message and "\n" not in message


async def test_empty_and_plain_text_error_bodies() -> None:
    """An empty 500 and a multi-line text 403 become one-line messages with the status."""

    async def empty(request: web.Request) -> web.Response:
        return web.Response(status=500)

    async def text(request: web.Request) -> web.Response:
        return web.Response(text="forbidden\nby policy\n" + "y" * 1000, status=403)

    async with client_for(
        [("GET", "/workflows/1", empty), ("GET", "/workflows/2", text)], **FAST
    ) as (client, _, _):
        with pytest.raises(ZuoraError) as first:
            await client.get_workflow(1)
        with pytest.raises(ZuoraError) as second:
            await client.get_workflow(2)
    assert str(first.value) == "tenant prod: GET /workflows/1: 500 (after 3 attempts)"
    assert str(second.value).startswith(
        "tenant prod: GET /workflows/2: 403 forbidden by policy yyy"
    )
    assert "\n" not in str(second.value) and len(str(second.value)) < 400


async def test_malformed_2xx_on_a_read_is_retried() -> None:
    """A 200 with a non-JSON body on a GET is retried; if it persists it is a clear error."""
    calls = 0

    async def flaky(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return (
            web.Response(text="{truncated", content_type="application/json")
            if calls == 1
            else json_response({"id": 1})
        )

    async def broken(request: web.Request) -> web.Response:
        return web.Response(text="<html>oops</html>", content_type="text/html")

    routes = [("GET", "/workflows/1", flaky), ("GET", "/workflows/2", broken)]
    async with client_for(routes, **FAST) as (client, _, _):
        assert await client.get_workflow(1) == {"id": 1}
        with pytest.raises(ZuoraError) as info:
            await client.get_workflow(2)
    assert (
        str(info.value)
        == "tenant prod: GET /workflows/2: malformed response body (after 3 attempts)"
    )
    assert not info.value.in_doubt


async def test_malformed_2xx_on_an_import_is_in_doubt() -> None:
    """A 200 import answer that is not JSON is resent with the same key and, if it persists, in doubt."""
    keys: list[str] = []

    async def do_import(request: web.Request) -> web.Response:
        keys.append(request.headers["Idempotency-Key"])
        return web.Response(body=b"\x00\x01not json", content_type="application/json")

    async with client_for([("POST", "/workflows/import", do_import)], **FAST) as (client, _, _):
        with pytest.raises(ZuoraError) as info:
            await client.import_workflow(
                {"a": 1}, version=None, activate=False, idempotency_key="k-1"
            )
    assert info.value.in_doubt and keys == ["k-1"] * 3


async def test_json_that_is_not_an_object_on_import_is_in_doubt() -> None:
    """A 200 import answer that is valid JSON but not an object is an in-doubt error."""

    async def do_import(request: web.Request) -> web.Response:
        return json_response([1, 2, 3])

    async with client_for([("POST", "/workflows/import", do_import)], **FAST) as (client, _, _):
        with pytest.raises(ZuoraError, match="not a JSON object") as info:
            await client.import_workflow(
                {"a": 1}, version=None, activate=False, idempotency_key="k-1"
            )
    assert info.value.in_doubt


async def test_redirect_is_not_followed() -> None:
    """A redirect is an error naming the target, and the target is never requested."""
    followed = 0

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/elsewhere")

    async def elsewhere(request: web.Request) -> web.Response:
        nonlocal followed
        followed += 1
        return json_response({"id": 1})

    routes = [("GET", "/workflows/1", moved), ("GET", "/elsewhere", elsewhere)]
    async with client_for(routes, **FAST) as (client, _, _):
        with pytest.raises(ZuoraError) as info:
            await client.get_workflow(1)
    assert str(info.value) == "tenant prod: GET /workflows/1: 302 unexpected redirect to /elsewhere"
    assert followed == 0


async def test_oversized_body_is_refused() -> None:
    """A body over max_response_bytes is an error, also when it only grows that large after gunzip."""

    async def big(request: web.Request) -> web.Response:
        return json_response({"data": ["x" * 100 for _ in range(200)]})

    async def bomb(request: web.Request) -> web.Response:
        body = gzip.compress(b'{"data": "' + b"0" * 2_000_000 + b'"}')
        return web.Response(
            body=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
        )

    routes = [("GET", "/workflows/1", big), ("GET", "/workflows/2", bomb)]
    async with client_for(routes, max_response_bytes=4096, **FAST) as (client, _, _):
        for wf in (1, 2):
            with pytest.raises(ZuoraError) as info:
                await client.get_workflow(wf)
            assert (
                str(info.value)
                == f"tenant prod: GET /workflows/{wf}: response body larger than 4096 bytes"
            )


async def test_stall_mid_body_times_out_and_is_retried() -> None:
    """A server that stalls mid-body hits the read timeout, is retried, and a write is left in doubt."""
    calls = 0

    async def stall(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        resp = web.StreamResponse(
            headers={"Content-Type": "application/json", "Content-Length": "100"}
        )
        await resp.prepare(request)
        await resp.write(b'{"id": ')
        await asyncio.sleep(30)
        return resp

    routes = [("GET", "/workflows/1", stall), ("POST", "/workflows/import", stall)]
    async with client_for(routes, **STALLING) as (client, _, _):
        with pytest.raises(ZuoraError) as read:
            await client.get_workflow(1)
        with pytest.raises(ZuoraError) as write:
            await client.import_workflow(
                {"a": 1}, version=None, activate=False, idempotency_key="k"
            )
    assert str(read.value) == "tenant prod: GET /workflows/1: read timeout (after 3 attempts)"
    assert not read.value.in_doubt and write.value.in_doubt and calls == 6


async def test_connection_refused_is_retried_and_not_in_doubt() -> None:
    """A refused connection is retried, then reported as a connect error that is not in doubt,
    naming the host it could not reach and what to check."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = make_settings(f"http://127.0.0.1:{port}", **FAST)

    async def no_sleep(delay: float) -> None:
        await asyncio.sleep(0)

    class Fixed:
        """A token source that needs no server."""

        def known_secrets(self) -> list[str]:
            return [SECRET]

        async def token(self) -> str:
            return TOKEN

        def invalidate(self, value: str) -> None:
            pass

    async with open_session(settings) as session:
        client = ZuoraClient(
            settings.tenants["prod"], session, settings, sleep=no_sleep, auth=Fixed()
        )  # type: ignore[arg-type]
        with pytest.raises(ZuoraError) as info:
            await client.import_workflow(
                {"a": 1}, version=None, activate=False, idempotency_key="k"
            )
    assert str(info.value) == (
        f"tenant prod: POST /workflows/import: connect error to 127.0.0.1:{port} (is the host up "
        "and the config's base_url right? check the network) (after 3 attempts)"
    )
    assert not info.value.in_doubt and client.stats.requests == 3


async def test_canary_secret_and_token_never_leak(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """A distinctive secret and token appear in no log event, printed output, exception text or repr."""
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    with structlog.testing.capture_logs() as events:
        calls = 0

        async def noisy(request: web.Request) -> web.Response:
            nonlocal calls
            calls += 1
            auth = request.headers.get("Authorization", "")
            if calls == 1:
                return json_response({"message": f"expired {auth}"}, 401)
            if calls == 2:
                return json_response({}, 429, {"Retry-After": "1"})
            return json_response({"errors": [{"title": f"bad request from {auth}"}]}, 400)

        async with client_for([("POST", "/workflows/import", noisy)]) as (client, _script, _):
            with pytest.raises(ZuoraError) as info:
                await client.import_workflow(
                    {"a": 1}, version=None, activate=False, idempotency_key="k"
                )
            texts += [
                str(info.value),
                repr(info.value),
                repr(client),
                repr(client.auth),
                repr(client.tenant),
            ]
            texts.append(repr(client.auth._token))
        rejected = Script(token_status=401)
        async with client_for([("GET", "/workflows/1", noisy)], rejected) as (client, _, _):
            with pytest.raises(AuthError) as denied:
                await client.get_workflow(1)
            texts += [str(denied.value), repr(denied.value), repr(client.auth)]
    texts += [repr(event) for event in events]
    captured = capsys.readouterr()
    texts += [captured.out, captured.err, caplog.text]
    assert events, "expected structlog events to inspect"
    blob = "\n".join(texts)
    assert SECRET not in blob
    assert TOKEN not in blob
    assert "***" in str(info.value)  # the server echoed the token; it was scrubbed


async def test_stall_before_headers_on_a_write_is_in_doubt() -> None:
    """A write whose server goes silent before any header is resent with the same key and left in doubt."""
    keys: list[str] = []

    async def silent(request: web.Request) -> web.Response:
        keys.append(request.headers["Idempotency-Key"])
        await asyncio.sleep(30)
        return json_response({"id": 1})

    async with client_for([("POST", "/workflows/import", silent)], **STALLING) as (client, _, _):
        with pytest.raises(ZuoraError) as info:
            await client.import_workflow(
                {"a": 1}, version=None, activate=False, idempotency_key="k-9"
            )
    assert info.value.in_doubt and keys == ["k-9"] * 3
    assert str(info.value) == "tenant prod: POST /workflows/import: read timeout (after 3 attempts)"


async def test_token_endpoint_failures_are_told_apart() -> None:
    """A 404 token endpoint is an AuthError at once; a token endpoint that keeps failing with 503 is a retryable ZuoraError."""
    for status, expected, requests in ((404, AuthError, 1), (503, ZuoraError, 3)):
        script = Script(token_status=status)
        async with client_for([], script, **FAST) as (client, script, _):
            with pytest.raises(ZuoraError) as info:
                await client.get_workflow(1)
        assert type(info.value) is expected and len(script.token_requests) == requests
        assert str(info.value).startswith(
            f"tenant prod: POST /oauth/token: token request failed: {status}"
        )
        assert SECRET not in str(info.value)


async def test_overlong_retry_after_gives_up_saying_so() -> None:
    """A 429 asking for a day's pause ends the call at once with the requested wait in the message."""

    async def throttled(request: web.Request) -> web.Response:
        return json_response({}, 429, {"Retry-After": "86400"})

    async with client_for([("GET", "/workflows/1", throttled)], **FAST) as (client, _, _):
        with pytest.raises(ZuoraError) as info:
            await client.get_workflow(1)
    assert info.value.status == 429 and info.value.retryable
    assert str(info.value) == "tenant prod: GET /workflows/1: 429; server asks to wait 86400 s"


async def test_cancelled_calls_release_their_slots() -> None:
    """Cancelling calls that hold or wait for a concurrency slot leaves no slot leaked."""
    release = asyncio.Event()
    both_in = asyncio.Event()
    arrived = 0

    async def slow(request: web.Request) -> web.Response:
        nonlocal arrived
        arrived += 1
        if arrived == 2:
            both_in.set()
        await release.wait()
        return json_response({"id": 1})

    async with client_for([("GET", "/workflows/1", slow)], max_concurrency=2, **FAST) as (
        client,
        _,
        _,
    ):
        tasks = [asyncio.ensure_future(client.get_workflow(1)) for _ in range(5)]
        async with asyncio.timeout(30):  # the server saw both slots' requests: a safety limit
            await both_in.wait()
        assert client.limiter.in_flight == 2 and arrived == 2
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert client.limiter.in_flight == 0
        release.set()
        assert await client.get_workflow(1) == {"id": 1}


async def test_corrupt_gzip_body_is_a_clear_error() -> None:
    """A body claiming gzip that is not gzip is retried and then reported, never a traceback."""

    async def corrupt(request: web.Request) -> web.Response:
        return web.Response(
            body=b"this is not gzip at all",
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    async with client_for([("GET", "/workflows/1", corrupt)], **FAST) as (client, _, _):
        with pytest.raises(ZuoraError) as info:
            await client.get_workflow(1)
    assert (
        str(info.value)
        == "tenant prod: GET /workflows/1: response body cut short or undecodable (after 3 attempts)"
    )
    assert info.value.retryable


async def test_a_server_that_does_not_speak_http() -> None:
    """A peer answering garbage instead of HTTP is retried and reported as a network failure."""
    hits = 0

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal hits
        hits += 1
        await reader.read(65536)
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\x00\xff garbage\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = make_settings(f"http://127.0.0.1:{port}", **FAST)

    class Fixed:
        """A token source that needs no server."""

        def known_secrets(self) -> list[str]:
            return [SECRET]

        async def token(self) -> str:
            return TOKEN

        def invalidate(self, value: str) -> None:
            pass

    async def no_sleep(delay: float) -> None:
        await asyncio.sleep(0)

    try:
        async with open_session(settings) as session:
            client = ZuoraClient(
                settings.tenants["prod"], session, settings, sleep=no_sleep, auth=Fixed()
            )  # type: ignore[arg-type]
            with pytest.raises(ZuoraError) as info:
                await client.get_workflow(1)
    finally:
        server.close()
        await server.wait_closed()
    assert hits == 3 and info.value.status is None
    # Issue 22: the error names the host and what to check (it said only "invalid HTTP response").
    assert str(info.value).startswith(
        "tenant prod: GET /workflows/1: invalid HTTP response to 127.0.0.1:"
    )
    assert str(info.value).endswith(
        "(the port does not speak HTTP: check base_url (scheme and port)) (after 3 attempts)"
    )


@given(raw=st.binary(max_size=2000) | st.text(max_size=2000).map(str.encode))
def test_error_detail_is_always_one_short_line(raw: bytes) -> None:
    """Whatever an error body holds, its summary is one printable line of bounded length."""
    text = error_detail(raw)
    assert "\n" not in text and "\r" not in text and len(text) <= MAX_DETAIL
    assert all(c.isprintable() for c in text)


@given(
    body=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=50),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    ["errors", "Errors", "reasons", "message", "error", "title", "code", "x"]
                ),
                children,
                max_size=4,
            )
        ),
        max_leaves=20,
    )
)
def test_error_detail_survives_any_json_shape(body: object) -> None:
    """Error bodies of any JSON shape are summarised without raising."""
    import json

    text = error_detail(json.dumps(body).encode())
    assert "\n" not in text and len(text) <= MAX_DETAIL


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # The spec's table (§1.12, the `spec-error-bodies` variant).
        ({"errors": [{"title": "No tasks", "code": "invalid", "status": 400}]}, "No tasks"),
        ({"Errors": ["Workflow 9 not found"]}, "Workflow 9 not found"),
        ({"success": False, "reasons": [{"title": "bad", "fieldName": "name"}]}, "name: bad"),
        # The official SDK's models (the fake's default since issue 23).
        ({"code": 50000020, "message": "No tasks"}, "No tasks (code 50000020)"),
        ({"message": "Authentication error"}, "Authentication error"),
    ],
)
def test_error_detail_reads_the_spec_and_the_sdk_shapes(body: object, expected: str) -> None:
    """The error text is read from the spec's bodies and from the SDK's (issue 23 #6)."""
    assert error_detail(orjson.dumps(body)) == expected
