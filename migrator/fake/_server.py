"""The fake Zuora's HTTP shell: routing, auth, limits, faults, idempotency, gzip, inspection.

One catch-all aiohttp handler walks each request through the gateway steps in the order a real
gateway would (request id, track id, auth, rate, concurrency, faults, idempotency) and hands the
work to the pure `FakeState`.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import random
import re
import socket
import struct
import uuid
import zlib
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from migrator.fake._config import FakeConfig, FakeTenant, FaultConfig
from migrator.fake._endpoints import Call, Handler, Reply, route
from migrator.fake._errors import ApiError, errors_list, sdk_shape
from migrator.fake._limits import (
    Begin,
    IdempotencyStore,
    RateDecision,
    RateWindows,
    Stored,
    TokenStore,
)
from migrator.fake._state import FakeState

log = logging.getLogger("migrator.fake")
JSON = "application/json"
TRACK_ID_BAD = re.compile(r"[:;\"']")
IDEMPOTENT_METHODS = frozenset({"POST", "PATCH"})
UNAUTHORIZED_CHALLENGE = "Basic realm=Zuora API, ZSession realm=Zuora API, Bearer realm=Zuora API"


class _Dropped(Exception):
    """The fault plan dropped the connection; nothing more is written."""


class RunningFake:
    """A configured fake: its state, limits and fault plan; `serve` binds it to a socket."""

    def __init__(self, config: FakeConfig) -> None:
        self.config = config
        self.clock = config.clock
        self.tenants: dict[str, FakeTenant] = {t.name: t for t in config.tenants}
        self.by_client_id: dict[str, FakeTenant] = {t.client_id: t for t in config.tenants}
        self.state = FakeState(self.tenants, clock=config.clock, switches=config)
        self.tokens = TokenStore()
        self.idempotency = IdempotencyStore(
            ttl=config.idempotency_ttl, max_entries=config.idempotency_max_entries
        )
        self._rates = {t.name: self._windows(t) for t in config.tenants}
        self._ip_rates: dict[str, RateWindows] = {}
        self._inflight = dict.fromkeys(self.tenants, 0)
        self._rngs = {name: random.Random(f"{config.seed}:{name}") for name in self.tenants}
        self.base_url = ""
        self.requests = 0  # total API calls answered (bench)
        # API calls per (tenant, handler name, e.g. "export_workflow"), 429s included: what a
        # client spent of the tenant's budget (tests and the request-efficiency bench count them).
        self.calls: Counter[tuple[str, str]] = Counter()

    @staticmethod
    def _windows(t: FakeTenant) -> RateWindows:
        quotas = [(60, t.requests_per_minute)]
        if t.requests_per_hour:
            quotas.append((3600, t.requests_per_hour))
        if t.requests_per_day:
            quotas.append((86400, t.requests_per_day))
        return RateWindows(quotas)

    # -- knobs for tests -----------------------------------------------------------------------

    def ledger(self, tenant: str | None = None) -> list[dict[str, Any]]:
        """Every committed import (of one tenant), oldest first; what `/_fake/ledger` shows."""
        return self.state.ledger(tenant)

    def set_faults(self, tenant: str, faults: FaultConfig) -> None:
        """Change one tenant's fault plan while serving."""
        self.tenants[tenant] = replace(self.tenants[tenant], faults=faults)

    def set_tenant(self, tenant: str, **knobs: Any) -> None:
        """Change one tenant's knobs while serving: limits (requests_per_minute, max_concurrency,
        token_ttl, requests_per_hour/day), `failing_runs`, `reject_imports`."""
        updated = replace(self.tenants[tenant], **knobs)
        self.tenants[tenant] = updated
        self.by_client_id[updated.client_id] = updated
        self._rates[tenant] = self._windows(updated)

    def expire_tokens(self, tenant: str | None = None) -> None:
        """Invalidate every issued token (of one tenant): the next API call gets 401."""
        self.tokens.expire_all(tenant)

    # -- the gateway ---------------------------------------------------------------------------

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        headers = {"Zuora-Request-Id": str(uuid.uuid4())}
        track = request.headers.get("Zuora-Track-Id")
        if track is not None:
            if len(track) > 64 or not track.isascii() or TRACK_ID_BAD.search(track):
                return self._refuse(
                    request,
                    400,
                    "Zuora-Track-Id must be at most 64 US-ASCII characters without : ; \" '",
                    headers,
                )
            headers["Zuora-Track-Id"] = track
        path = request.path
        if path.startswith("/_fake/"):
            return self._respond(request, await self._inspect(request), headers)
        if path == "/oauth/token":
            if request.method != "POST":
                return self._refuse(request, 405, "Method not allowed", headers)
            return self._respond(request, await self._token(request), headers)
        found = route(request.method, path)
        if isinstance(found, Reply):
            return self._respond(request, found, headers)
        operation, handler, params = found
        return await self._api(request, Call(request, "", params, operation), handler, headers)

    async def _api(
        self, request: web.Request, call: Call, handler: Handler, headers: dict[str, str]
    ) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        tenant = None
        if auth[:7].lower() == "bearer ":
            tenant = self.tokens.lookup(auth[7:].strip(), self.clock())
        if tenant is None:
            # [S] every workflow operation's 401 carries this WWW-Authenticate (zuora-sdk docs).
            headers["WWW-Authenticate"] = UNAUTHORIZED_CHALLENGE
            body = errors_list(401, "Unauthorized: missing, unknown or expired access token").body
            if self.config.error_bodies == "sdk":
                body = sdk_shape(call.operation, 401, body)
            return self._respond(request, Reply(401, body), headers)
        call.tenant = tenant
        conf = self.tenants[tenant]
        self.calls[(tenant, handler.__name__)] += 1
        rate = self._rates[tenant].hit(self.clock())
        if self.config.rate_limit_headers:
            headers.update(_rate_headers(rate))
        if not rate.allowed:
            if self.config.retry_after == "always":
                headers["Retry-After"] = str(rate.retry_after)
            return self._refuse(
                request, 429, "Request exceeded limit: requests per window", headers
            )
        if self._inflight[tenant] >= conf.max_concurrency:
            # [D] category 70 → 429 with Retry-After; one second is the smallest honest answer.
            if self.config.retry_after != "never":
                headers["Retry-After"] = "1"
            return self._refuse(
                request, 429, "Request exceeded limit: concurrent requests", headers
            )
        self._inflight[tenant] += 1
        try:
            return await self._faulty(request, handler, call, conf, headers)
        finally:
            self._inflight[tenant] -= 1
            self.requests += 1

    async def _faulty(
        self,
        request: web.Request,
        handler: Handler,
        call: Call,
        conf: FakeTenant,
        headers: dict[str, str],
    ) -> web.StreamResponse:
        faults = conf.faults
        rng = self._rngs[call.tenant]
        # Draw every number for this request up front, in a fixed order: the plan depends only
        # on the seed and the order requests arrive, not on which branch runs.
        u_reset, u_error, u_lost, u_jitter, u_status = (rng.random() for _ in range(5))
        # Keys count on POST and PATCH only (§1.8); elsewhere the header is ignored.
        key = (
            request.headers.get("Idempotency-Key") if request.method in IDEMPOTENT_METHODS else None
        )
        if key is not None and (not key or len(key) > 255):
            return self._refuse(request, 400, "Idempotency-Key must be 1..255 characters", headers)
        begin: Begin | None = None
        if key is not None:
            # Registered on arrival, before any latency: a duplicate arriving while this one is
            # still being handled must see it in flight (§1.8 409).
            begin = self.idempotency.begin(
                call.tenant, key, request.method, str(request.rel_url), self.clock()
            )
        try:
            return await self._keyed(
                request,
                handler,
                call,
                faults,
                headers,
                key,
                begin,
                (u_reset, u_error, u_lost, u_jitter, u_status),
            )
        except BaseException:
            if key is not None and begin is not None and begin.kind == "new":
                # The work never produced an answer (a fault at the gateway, a cancelled
                # request): the key is not consumed, so a retry does the work.
                self.idempotency.abandon(call.tenant, key)
            raise

    async def _keyed(
        self,
        request: web.Request,
        handler: Handler,
        call: Call,
        faults: FaultConfig,
        headers: dict[str, str],
        key: str | None,
        begin: Begin | None,
        draws: tuple[float, float, float, float, float],
    ) -> web.StreamResponse:
        u_reset, u_error, u_lost, u_jitter, u_status = draws
        delay = faults.latency + (2 * u_jitter - 1) * faults.latency_jitter
        if delay > 0:
            await asyncio.sleep(delay)
        if u_reset < faults.reset_rate:
            _drop(request, reset=True)
            raise _Dropped
        if u_error < faults.error_rate and faults.error_statuses:
            status = faults.error_statuses[int(u_status * len(faults.error_statuses))]
            if key is not None and begin is not None and begin.kind == "new":
                self.idempotency.abandon(call.tenant, key)  # injected before the work
            return self._refuse(
                request, status, "Injected server error (work not done)", headers, faults.slow_body
            )
        if key is None or begin is None:
            reply = await self._run(handler, call)
            if u_lost < faults.lost_response_rate:
                _drop(request, reset=False)
                raise _Dropped
            return self._respond(request, reply, headers, faults.slow_body)
        if begin.kind == "in_flight":
            return self._refuse(
                request,
                409,
                "A request with this Idempotency-Key is still being processed",
                headers,
            )
        if begin.kind == "mismatch":
            return self._refuse(
                request, 422, "Idempotency-Key was used with another URL or method", headers
            )
        if begin.kind == "done" and begin.stored is not None:
            stored = begin.stored
            status = 409 if self.config.idempotent_replay == "409" else stored.status
            # §1.8: the stored status, headers and body; the gateway's own headers (rate,
            # track id) describe this request, the stored ones (request id) the first.
            replayed = {**headers, **stored.headers}
            return self._send(request, status, stored.body, replayed, faults.slow_body)
        reply = await self._run(handler, call, idempotency_key=key)
        body = orjson.dumps(reply.body)
        # [D] the stored result is kept whether the call succeeded or failed.
        kept_headers = {**reply.headers, "Zuora-Request-Id": headers["Zuora-Request-Id"]}
        self.idempotency.finish(call.tenant, key, Stored(reply.status, kept_headers, body))
        if u_lost < faults.lost_response_rate:
            _drop(request, reset=False)
            raise _Dropped
        return self._send(
            request, reply.status, body, {**headers, **reply.headers}, faults.slow_body
        )

    async def _run(
        self, handler: Handler, call: Call, *, idempotency_key: str | None = None
    ) -> Reply:
        call.idempotency_key = idempotency_key
        try:
            return await handler(self, call)
        except ApiError as exc:
            body = exc.body
            if self.config.error_bodies == "sdk":
                body = sdk_shape(call.operation, exc.status, body)
            return Reply(exc.status, body)

    # -- responses -----------------------------------------------------------------------------

    def _refuse(
        self,
        request: web.Request,
        status: int,
        message: str,
        headers: dict[str, str],
        slow: float = 0.0,
    ) -> web.StreamResponse:
        """A gateway error answer, in the `{errors: [...]}` shape."""
        return self._respond(
            request, Reply(status, errors_list(status, message).body), headers, slow
        )

    def _respond(
        self, request: web.Request, reply: Reply, headers: dict[str, str], slow: float = 0.0
    ) -> web.StreamResponse:
        # A bytes body is sent as it is (the describe endpoint's XML), anything else as JSON.
        body = reply.body if isinstance(reply.body, bytes) else orjson.dumps(reply.body)
        return self._send(request, reply.status, body, {**headers, **reply.headers}, slow)

    def _send(
        self,
        request: web.Request,
        status: int,
        body: bytes,
        headers: dict[str, str],
        slow: float = 0.0,
    ) -> web.StreamResponse:
        out = dict(headers)
        out["Content-Type"] = headers.get("Content-Type", JSON)
        # §1.10: gzip only when asked and only above the size threshold.
        if "gzip" in request.headers.get("Accept-Encoding", "").lower() and (
            len(body) > self.config.gzip_min_bytes
        ):
            body = gzip.compress(body, compresslevel=5)
            out["Content-Encoding"] = "gzip"
        if slow > 0:
            return _Slow(status, body, out, slow)
        return web.Response(status=status, body=body, headers=out)

    # -- token endpoint ------------------------------------------------------------------------

    async def _token(self, request: web.Request) -> Reply:
        ip = request.remote or "?"
        windows = self._ip_rates.get(ip)
        if windows is None:
            if len(self._ip_rates) > 10_000:
                self._ip_rates.clear()
            windows = self._ip_rates[ip] = RateWindows(
                [(60, self.config.token_requests_per_minute_per_ip)]
            )
        rate = windows.hit(self.clock())
        if not rate.allowed:
            limited = _rate_headers(rate) if self.config.rate_limit_headers else {}
            if self.config.retry_after == "always":
                limited["Retry-After"] = str(rate.retry_after)
            return _oauth_error(429, "too_many_requests", "Token requests per IP exceeded", limited)
        try:
            form = await request.post()
        except Exception:
            return _oauth_error(400, "invalid_request", "Expected a form-encoded body")
        client_id = form.get("client_id")
        client_secret = form.get("client_secret")
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(
                400, "unsupported_grant_type", "grant_type must be client_credentials"
            )
        tenant = self.by_client_id.get(client_id) if isinstance(client_id, str) else None
        if tenant is None or client_secret != tenant.client_secret:
            return _oauth_error(401, "invalid_client", "Bad client credentials")
        token = self.tokens.issue(tenant.name, tenant.token_ttl, self.clock())
        return Reply(
            200,
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": int(tenant.token_ttl),
                "scope": f"user.fake tenant.{tenant.name}",
                "jti": uuid.uuid4().hex,
            },
        )

    # -- inspection (not Zuora) ----------------------------------------------------------------

    async def _inspect(self, request: web.Request) -> Reply:
        path, method = request.path, request.method
        if path == "/_fake/ledger" and method == "GET":
            tenant = request.query.get("tenant")
            return Reply(200, {"imports": self.ledger(tenant)})
        if path == "/_fake/reset" and method == "POST":
            self.state.reset()
            self.idempotency = IdempotencyStore(
                ttl=self.config.idempotency_ttl, max_entries=self.config.idempotency_max_entries
            )
            return Reply(200, {"reset": True})
        if path == "/_fake/stats" and method == "GET":
            return Reply(
                200,
                {
                    "requests": self.requests,
                    "tokens": len(self.tokens),
                    "idempotency_entries": len(self.idempotency),
                    "ledger": len(self.state.ledger_entries),
                },
            )
        return Reply(404, errors_list(404, f"No such inspection endpoint {path}").body)


def _oauth_error(
    status: int, error: str, description: str, headers: dict[str, str] | None = None
) -> Reply:
    """The token endpoint's refusal, in OAuth's `{error, error_description}` shape."""
    return Reply(status, {"error": error, "error_description": description}, headers or {})


class _Slow(web.StreamResponse):
    """A response whose body trickles out over `seconds` (the slow-body fault)."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str], seconds: float) -> None:
        super().__init__(status=status, headers=headers)
        self.content_length = len(body)
        self._slow_body = body
        self._seconds = seconds

    async def prepare_and_trickle(self, request: web.Request) -> None:
        chunks = 10
        step = max(1, -(-len(self._slow_body) // chunks))
        # A client that gives up mid-body is an expected outcome of this fault, not an error.
        with suppress(ConnectionError):
            await self.prepare(request)
            for i in range(0, len(self._slow_body), step):
                await asyncio.sleep(self._seconds / chunks)
                await self.write(self._slow_body[i : i + step])
            await self.write_eof()


def _drop(request: web.Request, *, reset: bool) -> None:
    """Close the connection without an answer; `reset` sends RST instead of a clean FIN."""
    transport = request.transport
    if transport is None:
        return
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()


def _rate_headers(rate: RateDecision) -> dict[str, str]:
    return {
        "RateLimit-Limit": rate.limit_header,
        "RateLimit-Remaining": str(rate.remaining),
        "RateLimit-Reset": str(rate.reset),
    }


# ---------------------------------------------------------------------------------------------
# Serving


def build_app(fake: RunningFake) -> web.Application:
    """The aiohttp application: one catch-all route into `RunningFake.dispatch`."""

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            response = await fake.dispatch(request)
        except _Dropped:
            # The transport is gone; aiohttp needs a response object but nothing reaches the wire.
            return web.Response(status=499)
        except web.HTTPRequestEntityTooLarge:
            response = fake._refuse(
                request, 413, "Request body too large", {"Zuora-Request-Id": str(uuid.uuid4())}
            )
        except (zlib.error, OSError, EOFError) as exc:
            response = fake._refuse(
                request,
                400,
                f"Unreadable request body: {type(exc).__name__}",
                {"Zuora-Request-Id": str(uuid.uuid4())},
            )
        except Exception:
            # A bug in the fake must look like a Zuora 500, not a hung or half-written answer.
            log.exception("fake zuora: unhandled error on %s %s", request.method, request.path)
            response = fake._refuse(
                request, 500, "Internal error in the fake", {"Zuora-Request-Id": str(uuid.uuid4())}
            )
        if isinstance(response, _Slow):
            await response.prepare_and_trickle(request)
        return response

    app = web.Application(client_max_size=fake.config.max_body_bytes)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def _load_files(fake: RunningFake) -> None:
    config = fake.config
    if config.state_file and Path(config.state_file).exists():
        fake.state.load_json(orjson.loads(Path(config.state_file).read_bytes()))
        return
    if config.seed_file:
        from migrator.fake._seed import load_seed_file

        load_seed_file(fake.state, config.seed_file)


def save_state(fake: RunningFake) -> None:
    """Write the state file atomically (when one is configured)."""
    if not fake.config.state_file:
        return
    path = Path(fake.config.state_file)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(orjson.dumps(fake.state.to_json()))
    tmp.replace(path)


@asynccontextmanager
async def serve(
    config: FakeConfig, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningFake]:
    """Run the fake on the current event loop for the duration of the block."""
    fake = RunningFake(config)
    _load_files(fake)
    runner = web.AppRunner(
        build_app(fake), access_log=None, handle_signals=False, shutdown_timeout=0.5
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        server = site._server
        assert server is not None
        bound = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        fake.base_url = f"http://{host}:{bound}"
        yield fake
    finally:
        try:
            save_state(fake)
        finally:
            await runner.cleanup()
