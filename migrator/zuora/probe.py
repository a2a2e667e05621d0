"""Probe: single, unretried Workflow API requests that show everything the server answered.

For `migrator doctor`, which must see what ZuoraClient hides on purpose: statuses the client
retries, headers (RateLimit-*, Content-Encoding, Retry-After) and the body of every answer.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from migrator.core.config import Settings, TenantConfig
from migrator.core.pacing import Pacer
from migrator.zuora.auth import TokenCache
from migrator.zuora.http import classify, gzip_body, read_capped

_MAX_RETRY_AFTER = 30.0  # a probe waits out a 429 this long at most, then reports it
_THROTTLE_RETRIES = 3


@dataclass(frozen=True, slots=True)
class Answer:
    """What one request got: status (None: no answer), lower-cased headers, parsed body."""

    status: int | None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    size: int = 0  # bytes of the (decompressed) body
    error: str | None = None  # the network failure, when there was no answer

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Probe:
    """One tenant's API, one request at a time, paced to its configured budget."""

    def __init__(
        self, tenant: TenantConfig, session: aiohttp.ClientSession, settings: Settings
    ) -> None:
        self.tenant = tenant
        self._session = session
        self._settings = settings
        self._track = f"migrator-doctor-{secrets.token_hex(4)}"
        self._counter = itertools.count(1)
        self.auth = TokenCache(tenant, session, settings, track_id=self._track_id)
        self._pacer = Pacer(tenant.requests_per_minute)
        self.throttles: list[bool] = []  # per 429 seen: did it carry Retry-After?
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
    ) -> Answer:
        """One request (a 429 is waited out and sent again, a few times); never raises for an
        HTTP status or a network failure. `token` overrides the tenant's (to see a 401)."""
        for _ in range(_THROTTLE_RETRIES):
            answer = await self._once(
                method, path, params, json, idempotency_key, gzip_request, token
            )
            if answer.status != 429:
                return answer
            retry_after = _seconds(answer.headers.get("retry-after"))
            self.throttles.append(retry_after is not None)
            wait = (
                retry_after
                if retry_after is not None
                else _seconds(answer.headers.get("ratelimit-reset"))
            )
            await asyncio.sleep(min(wait if wait is not None else 2.0, _MAX_RETRY_AFTER))
        return answer

    async def _once(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        json: Any,
        idempotency_key: str | None,
        gzip_request: bool,
        token: str | None,
    ) -> Answer:
        delay = self._pacer.reserve(asyncio.get_running_loop().time())
        if delay > 0:
            await asyncio.sleep(delay)
        bearer = token if token is not None else await self.auth.token()
        headers = {
            "Authorization": f"Bearer {bearer}",
            "Accept": "application/json",
            "Accept-Encoding": "gzip",
            "Zuora-Track-Id": self._track_id(),
        }
        if self.tenant.entity_ids:
            headers["Zuora-Entity-Ids"] = self.tenant.entity_ids
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        data: bytes | None = None
        if json is not None:
            data = orjson.dumps(json)
            headers["Content-Type"] = "application/json"
            if gzip_request:
                data = gzip_body(data)
                headers["Content-Encoding"] = "gzip"
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


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return max(0.0, number) if number == number else None
