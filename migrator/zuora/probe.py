"""Probe: single, unretried Workflow API requests that show everything the server answered.

For `migrator doctor`, which must see what ZuoraClient hides on purpose: statuses the client
retries, headers (RateLimit-*, Content-Encoding, Retry-After) and the body of every answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from migrator.core.config import Settings, TenantConfig
from migrator.core.pacing import Pacer
from migrator.core.paging import Page
from migrator.core.retry import parse_retry_after, server_wait
from migrator.zuora.auth import TokenCache
from migrator.zuora.http import classify, gzip_body, read_capped, request_headers
from migrator.zuora.listing import read_pages

_THROTTLE_RETRIES = 3
_NO_HINT_WAIT = 2.0  # a 429 with neither Retry-After nor RateLimit-Reset: wait this long


class ListingRefused(Exception):
    """Raised by `Probe.pages` when a page is not a 2xx answer with a list under "data"."""

    def __init__(self, number: int, answer: Answer) -> None:
        super().__init__(number)
        self.number = number
        self.answer = answer


def retry_after_form(value: str | None) -> str | None:
    """How a Retry-After value is written: "seconds", "http-date", "unusable"; None if absent."""
    if value is None:
        return None
    if parse_retry_after(value, 0.0) is None:
        return "unusable"
    try:
        float(value.strip())
    except ValueError:
        return "http-date"
    return "seconds"


@dataclass(frozen=True, slots=True)
class Answer:
    """What one request got: status (None: no answer), lower-cased headers, parsed body."""

    status: int | None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    size: int = 0  # bytes of the (decompressed) body
    error: str | None = None  # the network failure, when there was no answer
    # A 429 whose asked-for pause (seconds) is longer than settings.max_wait: not waited out.
    refused_wait: float | None = None
    wait_limit: float | None = None  # the max_wait it was measured against

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Probe:
    """One tenant's API, one request at a time, paced to its configured budget."""

    def __init__(
        self,
        tenant: TenantConfig,
        session: aiohttp.ClientSession,
        settings: Settings,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.tenant = tenant
        self._session = session
        self._settings = settings
        self._track = f"migrator-doctor-{secrets.token_hex(4)}"
        self._counter = itertools.count(1)
        self.auth = TokenCache(tenant, session, settings, track_id=self._track_id)
        self._pacer = Pacer(tenant.requests_per_minute, max_pause=settings.max_wait)
        self._sleep = sleep
        self._wall = wall
        # Per 429 seen: how its Retry-After was written ("seconds", "http-date", "unusable"),
        # None when it carried none.
        self.throttles: list[str | None] = []
        self.answers: list[Answer] = []  # every API answer, in order

    def _track_id(self) -> str:
        return f"{self._track}-{next(self._counter)}"

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
        gzip_request: bool = False,
        token: str | None = None,
        accept: str = "application/json",
    ) -> Answer:
        """One request (a 429 is waited out and sent again, a few times); never raises for an
        HTTP status or a network failure. `token` overrides the tenant's (to see a 401)."""
        for _ in range(_THROTTLE_RETRIES):
            answer = await self._once(
                method, path, params, json, idempotency_key, gzip_request, token, accept
            )
            if answer.status != 429:
                return answer
            self.throttles.append(retry_after_form(answer.headers.get("retry-after")))
            # The client's reading of the pause (seconds or HTTP-date; else RateLimit-Reset).
            wait = server_wait(answer.headers, self._wall(), throttled=True)
            if wait is not None and wait > self._settings.max_wait:
                # As the client does: a pause beyond max_wait is not waited out; say so.
                return dataclasses.replace(
                    answer, refused_wait=wait, wait_limit=self._settings.max_wait
                )
            await self._sleep(
                wait if wait is not None else min(_NO_HINT_WAIT, self._settings.max_wait)
            )
        return answer

    async def pages(self, name: str | None = None) -> AsyncIterator[Page]:
        """Every page of `GET /workflows` through the one listing reader (its repeat guard
        included); ListingRefused for a page that is not a listing, ListingStopped for a loop."""

        async def fetch(params: dict[str, str]) -> tuple[Mapping[str, Any], list[Any]]:
            answer = await self.send("GET", "/workflows", params=params)
            data = answer.body.get("data") if isinstance(answer.body, dict) else None
            if not answer.ok or not isinstance(data, list):
                raise ListingRefused(int(params["page"]), answer)
            return answer.body, data

        async for page in read_pages(fetch, name):
            yield page

    async def _once(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        json: Any,
        idempotency_key: str | None,
        gzip_request: bool,
        token: str | None,
        accept: str = "application/json",
    ) -> Answer:
        delay = self._pacer.reserve(asyncio.get_running_loop().time())
        if delay > 0:
            await asyncio.sleep(delay)
        bearer = token if token is not None else await self.auth.token()
        data: bytes | None = None
        if json is not None:
            data = orjson.dumps(json)
            if gzip_request:
                data = gzip_body(data)
        headers = request_headers(
            bearer,
            self._track_id(),
            entity_ids=self.tenant.entity_ids,
            idempotency_key=idempotency_key,
            json_body=data is not None,
            gzipped=gzip_request,
            accept=accept,
        )
        try:
            async with (
                asyncio.timeout(self._settings.request_timeout),
                self._session.request(
                    method,
                    self.tenant.base_url + path,
                    params=params,
                    headers=headers,
                    data=data,
                    allow_redirects=False,
                ) as resp,
            ):
                lowered = {k.lower(): v for k, v in resp.headers.items()}
                raw = await read_capped(resp, self._settings.max_response_bytes)
                status = resp.status
        except Exception as exc:
            kind = classify(exc)
            if kind is None:
                raise
            return Answer(None, error=kind.value)
        try:
            body: Any = orjson.loads(raw) if raw.strip() else None
        except orjson.JSONDecodeError:
            body = None
        answer = Answer(status, lowered, body, len(raw))
        self.answers.append(answer)
        return answer
