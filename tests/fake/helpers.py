"""Shared helpers for the fake's tests: a tiny HTTP caller over aiohttp and sample documents.

Deliberately not migrator's client: the fake is tested on its own terms, over real HTTP.
"""

from __future__ import annotations

import copy
import gzip
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from migrator.fake import FakeConfig, FakeTenant, RunningFake, serve


def sample_document(name: str = "Sample", *, version: str | None = None) -> dict[str, Any]:
    """A small real-shaped export: Export → Iterate over its file → Email, ids 4/3/2."""
    wf: dict[str, Any] = {
        "id": 7,
        "name": name,
        "type": "Workflow::Setup",
        "description": "d",
        "ondemand_trigger": True,
        "callout_trigger": False,
        "scheduled_trigger": False,
        "interval": None,
        "timezone": None,
        "priority": "Medium",
        "parameters": {"fields": []},
    }
    if version is not None:
        wf["version"] = version
    return {
        "workflow": wf,
        "tasks": [
            {
                "id": 4,
                "name": "Export",
                "action_type": "Export",
                "object": "Subscription",
                "task_id": None,
                "parameters": {"fields": {"Subscription": {"Id": "true"}}, "limit": "2000"},
            },
            {
                "id": 3,
                "name": "Iterate",
                "action_type": "Iterate",
                "object": "Subscription__4.csv.zip",
                "task_id": 4,
                "parameters": {"iteration_type": "Default", "note": "line\r\nbreak {{Data.X}}"},
            },
            {
                "id": 2,
                "name": "Email",
                "action_type": "Email",
                "task_id": 3,
                "parameters": {"files": {"Subscription__4.csv.zip": {"a": 1}}},
            },
        ],
        "linkages": [
            {
                "source_workflow_id": 7,
                "source_task_id": None,
                "target_task_id": 4,
                "linkage_type": "Start",
            },
            {
                "source_workflow_id": None,
                "source_task_id": 4,
                "target_task_id": 3,
                "linkage_type": "Success",
            },
            {
                "source_workflow_id": None,
                "source_task_id": 3,
                "target_task_id": 2,
                "linkage_type": "For Each",
            },
        ],
    }


@dataclass
class Answer:
    status: int
    headers: Any
    body: Any
    raw: bytes


class Caller:
    """One tenant's view of the fake: fetches a token, then speaks JSON."""

    def __init__(self, session: aiohttp.ClientSession, fake: RunningFake, tenant: FakeTenant):
        self.session = session
        self.fake = fake
        self.tenant = tenant
        self.token: str | None = None

    async def login(self) -> Answer:
        async with self.session.post(
            self.fake.base_url + "/oauth/token",
            data={
                "client_id": self.tenant.client_id,
                "client_secret": self.tenant.client_secret,
                "grant_type": "client_credentials",
            },
        ) as resp:
            raw = await resp.read()
            answer = Answer(resp.status, resp.headers, orjson.loads(raw), raw)
        if answer.status == 200:
            self.token = answer.body["access_token"]
        return answer

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        gzip_body: bool = False,
        **params: Any,
    ) -> Answer:
        if self.token is None:
            await self.login()
        hdrs = {"Authorization": f"Bearer {self.token}"}
        hdrs.update(headers or {})
        data = None
        if body is not None:
            data = orjson.dumps(body)
            hdrs["Content-Type"] = "application/json"
            if gzip_body:
                data = gzip.compress(data)
                hdrs["Content-Encoding"] = "gzip"
        url = path if path.startswith("http") else self.fake.base_url + path
        query = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()}
        async with self.session.request(
            method, url, data=data, headers=hdrs, params=query or None
        ) as resp:
            raw = await resp.read()
            try:
                parsed = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                parsed = None
            return Answer(resp.status, resp.headers, parsed, raw)

    async def import_new(self, document: dict[str, Any], **params: Any) -> Answer:
        return await self.call("POST", "/workflows/import", document, **params)


@asynccontextmanager
async def running(
    config: FakeConfig | None = None,
) -> AsyncIterator[tuple[RunningFake, list[Caller]]]:
    """A served fake plus one Caller per tenant over a shared session."""
    config = config or FakeConfig.demo(2)
    async with serve(config) as fake, aiohttp.ClientSession() as session:
        yield fake, [Caller(session, fake, t) for t in config.tenants]


def strip_ids(document: dict[str, Any]) -> dict[str, Any]:
    """The document with task ids renumbered by position, so two copies compare up to ids."""
    doc = copy.deepcopy(document)
    order = {t["id"]: i for i, t in enumerate(doc["tasks"])}

    def fix(value: Any) -> Any:
        if isinstance(value, str):
            import re

            return re.sub(
                r"(?<=[A-Za-z0-9])__(\d+)(?=\.|__)",
                lambda m: f"__T{order.get(int(m.group(1)), m.group(1))}",
                value,
            )
        if isinstance(value, list):
            return [fix(v) for v in value]
        if isinstance(value, dict):
            return {fix(k): fix(v) for k, v in value.items()}
        return value

    for t in doc["tasks"]:
        t["id"] = order[t["id"]]
        if t.get("task_id") is not None:
            t["task_id"] = order[t["task_id"]]
    for link in doc["linkages"]:
        link["target_task_id"] = order[link["target_task_id"]]
        if link.get("source_task_id") is not None:
            link["source_task_id"] = order[link["source_task_id"]]
        if link.get("source_workflow_id") is not None:
            link["source_workflow_id"] = "WF"
    doc["tasks"] = fix(doc["tasks"])
    for key in ("id", "version", "type"):
        doc["workflow"].pop(key, None)
    doc["linkages"].sort(key=lambda x: orjson.dumps(x, option=orjson.OPT_SORT_KEYS))
    return doc
