"""ZuoraClient: one tenant's Workflow API calls over the run's shared aiohttp session.

The async shell around retry.decide, the Pacer and the AdaptiveLimit: it queues in its own
limiters, sends, reads bodies fully with a cap, and turns every failure into a ZuoraError.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import anyio
import orjson
import structlog

from migrator.core.config import Settings, TenantConfig
from migrator.core.errors import ProtocolError, ZuoraError
from migrator.core.logs import redact_text
from migrator.core.pacing import AdaptiveLimit, Pacer
from migrator.core.paging import MAX_PAGES, PAGE_LENGTH, ListingStopped
from migrator.core.profile import TenantProfile, versions_list_missing
from migrator.core.retry import (
    Action,
    Decision,
    NetError,
    Outcome,
    Policy,
    decide,
    describe_net_error,
)
from migrator.core.retry import classify as classify_status
from migrator.zuora.auth import TokenCache
from migrator.zuora.calls import (
    AttemptInfo,
    ClientStats,
    ImportAnswer,
    list_shape,
    object_shape,
    valid_track_id,
    validate_idempotency_key,
)
from migrator.zuora.http import (
    GZIP_THRESHOLD,
    BodyTooLarge,
    classify,
    error_detail,
    gzip_body,
    open_session,
    parse_json,
    read_capped,
    request_headers,
)
from migrator.zuora.limiter import Limiter, session_limiters
from migrator.zuora.listing import read_pages

__all__ = [
    "MAX_PAGES",
    "PAGE_LENGTH",
    "AttemptInfo",
    "ClientStats",
    "ImportAnswer",
    "ZuoraClient",
    "open_session",
    "valid_track_id",
    "validate_idempotency_key",
]

_THREAD_GZIP_BYTES = 256 * 1024

_log = structlog.get_logger("migrator.zuora")


def session_limiter(session: aiohttp.ClientSession) -> Limiter:
    """The run-wide cap shared by every tenant on `session`, sized to its connection pool.

    Requests wait here, in FIFO order, rather than inside aiohttp's pool.
    """
    limiter = session_limiters.get(session)
    if limiter is None:
        connector = session.connector
        size = connector.limit if connector is not None and connector.limit else 1_000_000
        limiter = Limiter(AdaptiveLimit(size))
        session_limiters[session] = limiter
    return limiter


@dataclass(slots=True)
class _Reply:
    status: int | None = None
    headers: Mapping[str, str] | None = None
    raw: bytes = b""
    error: NetError | None = None
    location: str | None = None
    too_large: bool = False


class ZuoraClient:
    """One tenant's Workflow API, paced, retried and authenticated."""

    def __init__(
        self,
        tenant: TenantConfig,
        session: aiohttp.ClientSession,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_attempt: Callable[[AttemptInfo], None] | None = None,
        run_id: str | None = None,
        auth: TokenCache | None = None,
        stopping: anyio.Event | None = None,
        profile: TenantProfile | None = None,
    ) -> None:
        """`stopping` is the run's first-Ctrl-C event: once set, no call waits any longer on a
        pause or a backoff (it fails as retryable, keeping its in-doubt flag). `profile` is what
        `migrator doctor --save` learned about the tenant: requests it proves useless are not
        sent (`versions_list = false`)."""
        self.tenant = tenant
        self.profile = profile
        self._session = session
        self._settings = settings
        self._clock = clock
        self._rand = rand
        self._wall = wall
        self._sleep = sleep
        self._on_attempt = on_attempt
        run = run_id if run_id is not None else secrets.token_hex(4)
        self._track_prefix = f"migrator-{run}"[:40]
        if not valid_track_id(self._track_prefix):
            raise ValueError("run id must be printable ASCII without : ; \" '")
        self._counter = itertools.count(1)
        self._policy = Policy(
            settings.max_attempts, settings.backoff_base, settings.backoff_cap, settings.max_wait
        )
        self.pacer = Pacer(tenant.requests_per_minute, max_pause=settings.max_wait)
        self._stopping = stopping
        self._capped_until = -math.inf  # the capped pause already reported in the log
        self.limiter = Limiter(AdaptiveLimit(tenant.max_concurrency))
        self._connections = session_limiter(session)
        self.auth = auth or TokenCache(
            tenant,
            session,
            settings,
            clock=clock,
            rand=rand,
            track_id=self._next_track_id,
            sleep=sleep,
        )
        self.stats = ClientStats()
        self._log = _log.bind(tenant=tenant.name)

    def __repr__(self) -> str:
        return f"ZuoraClient(tenant={self.tenant.name!r}, base_url={self.tenant.base_url!r})"

    # ---- the Workflow API -------------------------------------------------------------------

    async def list_workflows(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every workflow definition, all pages (stops at a missing/null next_page or empty data).

        `name` is passed as the server's filter to save pages; its semantics are undocumented
        (exact or substring), so callers still compare names themselves.
        """
        found: list[dict[str, Any]] = []
        async for page in self.workflow_pages(name):
            found.extend(page)
        return found

    async def workflow_pages(self, name: str | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        """`list_workflows` a page at a time, for tenants too large to list in memory at once.

        An entry listed again (a definition created while paging shifts one onto the next page)
        is left out. A page that brings nothing but entries already listed means the server's
        pagination loops (the same page again, whatever the page number): a one-line ZuoraError,
        not ten thousand pages. Pages are asked for by number, so a `next_page` that repeats is
        no loop of ours; only its presence is read.
        """

        async def fetch(params: dict[str, str]) -> tuple[Mapping[str, Any], list[Any]]:
            body = await self._call("GET", "/workflows", params=params, shape=list_shape)
            return body, self._list_field(body, "GET", "/workflows")

        try:
            async for page in read_pages(fetch, name):
                yield page.fresh
        except ListingStopped as exc:
            raise ZuoraError(f"GET /workflows: {exc}", tenant=self.tenant.name) from None

    async def get_workflow(self, definition_id: int) -> dict[str, Any]:
        path = f"/workflows/{int(definition_id)}"
        return self._object(await self._call("GET", path, shape=object_shape), "GET", path)

    async def find_workflow(self, definition_id: int) -> dict[str, Any] | None:
        """The definition, or None when the tenant has none of that id: a 404 the caller expects
        (a rollback reading what it deleted), so it is not logged as a failed call."""
        path = f"/workflows/{int(definition_id)}"
        try:
            body = await self._call("GET", path, shape=object_shape)
        except ZuoraError as exc:
            if exc.status == 404:
                return None
            raise
        return self._object(body, "GET", path)

    @property
    def asks_versions_list(self) -> bool:
        """False when the saved profile says the tenant has no versions list (issue 23)."""
        return not versions_list_missing(self.profile)

    async def list_versions(self, definition_id: int) -> list[dict[str, Any]]:
        """§3.8. On a tenant whose saved profile says the versions list is missing, the 404 it
        would answer, without the request: every caller reads the listing then."""
        path = f"/workflows/{int(definition_id)}/versions"
        if not self.asks_versions_list:
            raise ZuoraError(
                f"GET {path}: missing on this tenant (doctor's saved profile), not asked",
                status=404,
                tenant=self.tenant.name,
            )
        return self._list_field(await self._call("GET", path, shape=list_shape), "GET", path)

    async def export_workflow(
        self, definition_id: int, version: str | None = None
    ) -> dict[str, Any]:
        path = f"/workflows/{int(definition_id)}/export"
        params = {"version": version} if version is not None else None
        body = await self._call("GET", path, params=params, shape=object_shape)
        return self._object(body, "GET", path)

    async def import_workflow(
        self,
        payload: Mapping[str, Any] | bytes,
        *,
        version: str | None,
        activate: bool,
        idempotency_key: str,
    ) -> ImportAnswer:
        """§3.6: a new definition with its first version; the answer read as `ImportAnswer`.
        `payload` may be given already serialised (the bytes of `orjson.dumps(payload)`)."""
        path = "/workflows/import"
        params = {"activate": "true" if activate else "false"}
        if version is not None:
            params["version"] = version
        body = await self._call(
            "POST",
            path,
            params=params,
            json=payload,
            idempotency_key=idempotency_key,
            shape=object_shape,
        )
        return ImportAnswer.read(self._object(body, "POST", path, in_doubt=True), new_version=False)

    async def import_version(
        self,
        definition_id: int,
        payload: Mapping[str, Any] | bytes,
        *,
        version: str,
        activate: bool,
        idempotency_key: str,
    ) -> ImportAnswer:
        """§3.7: a new version of `definition_id`; the answer read as `ImportAnswer` (`payload`
        as for `import_workflow`)."""
        path = f"/workflows/{int(definition_id)}/versions/import"
        params = {"version": version, "activate": "true" if activate else "false"}
        body = await self._call(
            "POST",
            path,
            params=params,
            json=payload,
            idempotency_key=idempotency_key,
            shape=object_shape,
        )
        return ImportAnswer.read(self._object(body, "POST", path, in_doubt=True), new_version=True)

    async def update_workflow(
        self, definition_id: int, fields: Mapping[str, Any], *, idempotency_key: str
    ) -> dict[str, Any]:
        path = f"/workflows/{int(definition_id)}"
        body = await self._call(
            "PATCH", path, json=dict(fields), idempotency_key=idempotency_key, shape=object_shape
        )
        return self._object(body, "PATCH", path, in_doubt=True)

    async def delete_workflow(self, definition_id: int) -> dict[str, Any]:
        """§3.4: the definition and all its versions (a rollback's `--delete-created`); a 404
        (gone already: a retry after a lost answer) raises but is not logged."""
        path = f"/workflows/{int(definition_id)}"
        return self._object(await self._call("DELETE", path), "DELETE", path)

    async def run_workflow(
        self, definition_id: int, parameters: Mapping[str, Any], *, idempotency_key: str
    ) -> dict[str, Any]:
        """§3.10: start a run of the definition's active version (a rollout's smoke run)."""
        path = f"/workflows/{int(definition_id)}/run"
        body = await self._call(
            "POST", path, json=dict(parameters), idempotency_key=idempotency_key
        )
        return self._object(body, "POST", path, in_doubt=True)

    async def get_workflow_run(self, run_id: int) -> dict[str, Any]:
        """§3.11: a run's status and its task counts."""
        path = f"/workflows/workflow_runs/{int(run_id)}"
        return self._object(await self._call("GET", path), "GET", path)

    # ---- a tenant's data model (the reference check, docs/references.md) --------------------

    async def describe_object(self, name: str) -> bytes:
        """`GET /v1/describe/{Object}`: the XML answer as it came (parsed in core/references)."""
        path = f"/v1/describe/{quote(name, safe='')}"
        body = await self._call("GET", path, raw=True)
        assert isinstance(body, bytes)
        return body

    async def custom_object_definitions(self) -> dict[str, Any]:
        """`GET /objects/definitions/default`: every custom object definition of the tenant."""
        path = "/objects/definitions/default"
        body = await self._call("GET", path, shape=object_shape)
        return self._object(body, "GET", path)

    # ---- shapes ---------------------------------------------------------------------------

    def _object(
        self, body: Any, method: str, path: str, *, in_doubt: bool = False
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise self._error(method, path, "response is not a JSON object", in_doubt=in_doubt)
        return body

    def _list_field(self, body: Any, method: str, path: str) -> list[dict[str, Any]]:
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise self._error(method, path, "response has no list of objects under 'data'")
        return data

    def _protocol_error(
        self, method: str, path: str, status: int | None, problem: str, is_write: bool
    ) -> ProtocolError:
        # Asking again gets the same answer (a keyed write is replayed): never retried here. A
        # write may have landed, so it stays in doubt; a read fails for good.
        self.stats.errors += 1
        what = f"{status} answer, but {problem}" if status is not None else problem
        return ProtocolError(
            self._scrub(f"{method} {path}: {what} (a protocol error: not retried)"),
            tenant=self.tenant.name,
            status=status,
            in_doubt=is_write,
        )

    def _error(self, method: str, path: str, text: str, **kwargs: Any) -> ZuoraError:
        self.stats.errors += 1
        return ZuoraError(
            self._scrub(f"{method} {path}: {text}"), tenant=self.tenant.name, **kwargs
        )

    def _scrub(self, text: str) -> str:
        for secret in self.auth.known_secrets():
            text = text.replace(secret, "***")
        return redact_text(text)  # every other form of them (URL-encoded, base64, ...)

    def _next_track_id(self) -> str:
        return f"{self._track_prefix}-{next(self._counter)}"

    # ---- one call, all its attempts ---------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
        shape: Callable[[Any], str | None] | None = None,
        raw: bool = False,
    ) -> Any:
        """Every attempt of one call; `shape` says what is wrong with a 2xx body (None if fine);
        a failure is the caller's to report, so it is logged at debug only; `raw` returns a 2xx
        body as bytes, unparsed (an XML answer); `json` given as bytes is already serialised."""
        is_write = method in ("POST", "PATCH")
        if idempotency_key is not None:
            try:
                validate_idempotency_key(idempotency_key)
            except ValueError as exc:
                raise self._error(method, path, str(exc)) from None
        body: bytes | None = None
        gzipped = False
        if isinstance(json, bytes):
            body = json
        elif json is not None:
            try:
                body = orjson.dumps(json)
            except TypeError as exc:
                raise self._error(method, path, f"payload cannot be serialised: {exc}") from None
        if body is not None and len(body) > GZIP_THRESHOLD:
            # Multi-MB templates would stall every tenant's loop while compressing: use a thread.
            if len(body) > _THREAD_GZIP_BYTES:
                body = await anyio.to_thread.run_sync(gzip_body, body)
            else:
                body = gzip_body(body)
            gzipped = True
        url = self.tenant.base_url + path
        # One Track-Id per business operation (Zuora's advice), shared by all its attempts.
        track_id = self._next_track_id()
        attempt = 0
        in_doubt = False
        refreshed = False
        while True:
            attempt += 1
            try:
                token = await self.auth.token()
            except ZuoraError:
                self.stats.errors += 1
                raise
            headers = request_headers(
                token,
                track_id,
                entity_ids=self.tenant.entity_ids,
                idempotency_key=idempotency_key if is_write else None,
                json_body=body is not None,
                gzipped=gzipped,
                accept="application/xml, text/xml" if raw else "application/json",
            )
            # Tenant slot, then the tenant's pace, then a run-wide connection slot: pacing sleeps
            # never hold a connection slot another tenant could use.
            await self.limiter.acquire()
            try:
                await self._pace(method, path, in_doubt)
                await self._connections.acquire()
                try:
                    self.stats.requests += 1
                    epoch = self.limiter.adaptive.epoch
                    reply = await self._send(method, url, params, headers, body)
                finally:
                    self._connections.release()
            finally:
                self.limiter.release()
            parsed: Any = None
            outcome, parsed = self._outcome(reply, is_write, idempotency_key is not None, raw)
            if reply.too_large or reply.location is not None:
                decision = Decision(
                    Action.GIVE_UP, in_doubt=in_doubt or (is_write and reply.too_large)
                )
            else:
                decision = decide(
                    attempt,
                    outcome,
                    now=self._wall(),
                    policy=self._policy,
                    rand=self._rand,
                    in_doubt=in_doubt,
                    refreshed=refreshed,
                )
            in_doubt = decision.in_doubt
            self._learn(reply, decision, epoch)
            self._report(method, path, attempt, reply, outcome, decision, track_id)
            if decision.action is Action.DONE:
                problem = shape(parsed) if shape is not None else None
                if problem is not None:
                    raise self._protocol_error(method, path, reply.status, problem, is_write)
                return parsed
            if decision.action is Action.REFRESH:
                refreshed = True
                self.stats.refreshes += 1
                self.auth.invalidate(token)
                continue
            if decision.action is Action.RETRY:
                self.stats.retries += 1
                if not await self._wait(decision.delay):
                    raise self._stopped(method, path, decision.delay, in_doubt)
                continue
            raise self._failure(method, path, reply, outcome, decision, attempt)

    async def _pace(self, method: str, path: str, in_doubt: bool) -> None:
        delay = self.pacer.reserve(self._clock())
        while delay > 0:
            if not await self._wait(delay):
                raise self._stopped(method, path, delay, in_doubt)
            # A 429 elsewhere may have paused the tenant while we slept on our slot.
            delay = self.pacer.wait_for_pause(self._clock())

    async def _wait(self, seconds: float) -> bool:
        """Sleep `seconds`; False at once when the run is stopping (first Ctrl-C) meanwhile."""
        stopping = self._stopping
        if stopping is None:
            await self._sleep(seconds)
            return True
        if stopping.is_set():
            return False
        if self._sleep is asyncio.sleep:
            # The usual case, without a watcher task per sleep (a paced tenant sleeps before
            # most of its requests): wait for `stopping` at most `seconds`.
            with anyio.move_on_after(seconds):
                await stopping.wait()
            return not stopping.is_set()
        slept = False
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                await stopping.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            await self._sleep(seconds)
            slept = True
            tg.cancel_scope.cancel()
        return slept

    def _stopped(self, method: str, path: str, delay: float, in_doubt: bool) -> ZuoraError:
        return self._error(
            method,
            path,
            f"stopped (the run is stopping) while waiting {delay:.0f} s to send",
            in_doubt=in_doubt,
            retryable=True,
        )

    async def _send(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        headers: dict[str, str],
        body: bytes | None,
    ) -> _Reply:
        reply = _Reply()
        # A whole-request deadline: read_timeout is per socket read, so a server dribbling a
        # byte at a time would otherwise hold the call (and its slots) for ever.
        deadline = asyncio.timeout(self._settings.request_timeout)
        try:
            async with (
                deadline,
                self._session.request(
                    method, url, params=params, headers=headers, data=body, allow_redirects=False
                ) as resp,
            ):
                reply.status = resp.status
                reply.headers = {k.lower(): v for k, v in resp.headers.items()}
                if 300 <= resp.status < 400:
                    reply.location = resp.headers.get("Location", "")
                    return reply
                reply.raw = await read_capped(resp, self._settings.max_response_bytes)
        except BodyTooLarge:
            reply.too_large = True
        except TimeoutError as exc:
            # Sent (or maybe sent) and no complete answer: a lost answer, in doubt for a write.
            reply.error = NetError.DEADLINE if deadline.expired() else classify(exc)
        except Exception as exc:
            kind = classify(exc)
            if kind is None:
                raise
            reply.error = kind
        return reply

    def _outcome(
        self, reply: _Reply, is_write: bool, keyed: bool, raw: bool = False
    ) -> tuple[Outcome, Any]:
        parsed: Any = None
        error = reply.error
        status = reply.status
        readable = error is None and not reply.too_large and reply.location is None
        if raw and readable and status is not None and 200 <= status < 300:
            parsed = reply.raw
        elif readable and status is not None and (200 <= status < 300 or status == 409):
            try:
                parsed = parse_json(reply.raw)
            except ValueError:
                parsed = None
                if 200 <= status < 300:
                    error, status = NetError.BAD_BODY, None
        body_has_id = isinstance(parsed, dict) and parsed.get("id") is not None
        outcome = Outcome(
            status=status,
            error=error,
            headers=reply.headers,
            is_write=is_write,
            idempotency_key=keyed,
            body_has_id=body_has_id,
        )
        return outcome, parsed

    def _learn(self, reply: _Reply, decision: Decision, epoch: int) -> None:
        now = self._clock()
        requested: float | None = None
        if reply.headers:
            requested = self.pacer.observe(reply.headers, now)
        if reply.status == 429:
            self.stats.throttled += 1
            self.limiter.adaptive.on_throttle(epoch)
        elif reply.status is not None and 200 <= reply.status < 300:
            self.limiter.adaptive.on_success()
        if reply.status in (429, 503) and decision.retry_after is not None:
            # The whole tenant waits, not just this request.
            self.pacer.pause(now, decision.retry_after)
            requested = max(requested or 0.0, decision.retry_after)
        if requested is not None and requested > self.pacer.max_pause and now >= self._capped_until:
            self._capped_until = self.pacer.paused_until
            self._log.warning(
                f"server asked to pause tenant {self.tenant.name} for {requested:.0f} s; "
                f"pausing {self.pacer.max_pause:.0f} s (settings.max_wait) instead",
                requested=round(requested, 3),
                max_wait=self.pacer.max_pause,
            )

    def _report(
        self,
        method: str,
        path: str,
        attempt: int,
        reply: _Reply,
        outcome: Outcome,
        decision: Decision,
        track_id: str,
    ) -> None:
        error = (
            outcome.error.value
            if outcome.error
            else ("body too large" if reply.too_large else None)
        )
        self._log.debug(
            "zuora attempt",
            method=method,
            path=path,
            attempt=attempt,
            status=reply.status,
            error=error,
            action=decision.action.value,
            delay=round(decision.delay, 3),
            track_id=track_id,
            request_id=(reply.headers or {}).get("zuora-request-id"),
        )
        if self._on_attempt is not None:
            info = AttemptInfo(
                self.tenant.name,
                method,
                path,
                attempt,
                reply.status,
                error,
                decision.action.value,
                decision.delay,
                track_id,
            )
            try:
                self._on_attempt(info)
            except Exception:
                # A broken progress display must not turn a good import into a failed one.
                self._log.warning("on_attempt callback failed", exc_info=True)

    def _failure(
        self,
        method: str,
        path: str,
        reply: _Reply,
        outcome: Outcome,
        decision: Decision,
        attempt: int,
    ) -> ZuoraError:
        doubt = decision.in_doubt
        if reply.location is not None:
            where = self._scrub(reply.location)[:200] or "(no Location)"
            return self._error(
                method,
                path,
                f"{reply.status} unexpected redirect to {where}",
                status=reply.status,
                in_doubt=doubt,
            )
        if reply.too_large:
            return self._error(
                method,
                path,
                f"response body larger than {self._settings.max_response_bytes} bytes",
                status=reply.status,
                in_doubt=doubt,
            )
        suffix = f" (after {attempt} attempts)" if attempt > 1 else ""
        if decision.retry_after is not None and decision.retry_after > self._policy.max_wait:
            suffix += f"; server asks to wait {decision.retry_after:.0f} s"
        if outcome.error is not None:
            return self._error(
                method,
                path,
                describe_net_error(outcome.error, self.tenant.base_url) + suffix,
                in_doubt=doubt,
                retryable=True,
            )
        status = outcome.status
        detail = error_detail(reply.raw, self._scrub)
        text = f"{status} {detail}".rstrip() + suffix
        retryable = classify_status(status).retried
        error = self._error(method, path, text, status=status, in_doubt=doubt, retryable=retryable)
        # The caller says the failure (an item's error, a command's one line): logged for --debug.
        self._log.debug(
            "zuora call failed", method=method, path=path, status=status, in_doubt=doubt
        )
        return error
