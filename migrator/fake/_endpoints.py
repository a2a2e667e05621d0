"""The fake Zuora's workflow endpoints (§3): routing, request parsing, and one handler each.

Each handler turns a routed `Call` into a `Reply` through the pure `FakeState`; the gateway in
`_server` (auth, limits, faults, idempotency) runs before any of them.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode
from xml.sax.saxutils import escape

import orjson
from aiohttp import web, web_protocol

from migrator.fake._config import FakeConfig, FakeTenant
from migrator.fake._document import timestamp
from migrator.fake._errors import errors_list
from migrator.fake._state import FakeState


class RunningFake(Protocol):
    """What an endpoint needs of the running server (`_server.RunningFake` is one)."""

    config: FakeConfig
    tenants: dict[str, FakeTenant]
    state: FakeState


@dataclass
class Call:
    """One routed API call: the request, its tenant, the path parameters."""

    request: web.Request
    tenant: str
    params: dict[str, str]
    operation: str = ""
    idempotency_key: str | None = None

    async def json(self, *, empty: Any = ...) -> Any:
        """The JSON body; `empty` (when given) stands for an empty body."""
        try:
            raw = await self.request.read()
        except web_protocol.RequestPayloadError:
            raise errors_list(400, "The request body cannot be decoded") from None
        if not raw.strip() and empty is not ...:
            return empty
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise errors_list(400, "The request body is not valid JSON") from None

    def query_flag(self, name: str) -> bool:
        value = self.request.query.get(name, "false").lower()
        if value not in ("true", "false"):
            raise errors_list(400, f"Query parameter {name} must be true or false")
        return value == "true"


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[RunningFake, Call], Awaitable[Reply]]


def _int_param(value: str | None, name: str) -> int:
    try:
        out = int(value) if value is not None else 0
    except ValueError:
        raise errors_list(400, f"Query parameter {name} must be an integer") from None
    return out


async def list_workflows(fake: RunningFake, call: Call) -> Reply:
    q = call.request.query
    page = _int_param(q.get("page", "1"), "page")
    length = _int_param(q.get("page_length", "20"), "page_length")
    if page < 1 or length < 1:
        raise errors_list(400, "page and page_length must be positive integers")
    length = min(length, fake.config.page_length_max)  # [I] clamp rather than refuse
    filters = {
        k: q[k]
        for k in ("name", "callout_trigger", "ondemand_trigger", "scheduled_trigger", "interval")
        if k in q
    }
    ids = fake.state.list_definitions(call.tenant, filters)
    chunk = ids[(page - 1) * length : page * length]
    data = [fake.state.definition_json(call.tenant, i, inactive_list=True) for i in chunk]
    pagination: dict[str, Any] = {"page": page, "page_length": length}
    if page * length < len(ids):
        query = dict(q)
        query.update(page=str(page + 1), page_length=str(length))
        url = call.request.url
        pagination["next_page"] = (
            f"{url.scheme}://{url.host}:{url.port}{url.path}?{urlencode(query)}"
        )
    return Reply(200, {"data": data, "pagination": pagination})


def _id(call: Call, name: str = "id") -> int:
    return int(call.params[name])


async def get_workflow(fake: RunningFake, call: Call) -> Reply:
    return Reply(200, fake.state.definition_json(call.tenant, _id(call)))


async def patch_workflow(fake: RunningFake, call: Call) -> Reply:
    fake.state._definition(call.tenant, _id(call), capital=True)  # 404 before body errors
    return Reply(200, fake.state.patch_definition(call.tenant, _id(call), await call.json()))


async def put_workflow(fake: RunningFake, call: Call) -> Reply:
    """§3.6 [O]: settings by a flat camelCase body, only with `put_settings` (else 405)."""
    if not fake.config.put_settings:
        raise errors_list(405, f"Method PUT not allowed on {call.request.path}")
    fake.state._definition(call.tenant, _id(call), capital=True)  # 404 before body errors
    return Reply(200, fake.state.put_settings(call.tenant, _id(call), await call.json()))


async def delete_workflow(fake: RunningFake, call: Call) -> Reply:
    return Reply(200, fake.state.delete_definition(call.tenant, _id(call)))


async def export_workflow(fake: RunningFake, call: Call) -> Reply:
    return Reply(200, fake.state.export(call.tenant, _id(call), call.request.query.get("version")))


async def list_versions(fake: RunningFake, call: Call) -> Reply:
    if not fake.config.versions_list:  # a tenant whose versions list is missing (issue 23 #5)
        raise errors_list(404, f"No such endpoint {call.request.path}")
    return Reply(200, {"data": fake.state.list_versions(call.tenant, _id(call))})


async def delete_version(fake: RunningFake, call: Call) -> Reply:
    return Reply(200, fake.state.delete_version(call.tenant, _id(call)))


def _import_reply(
    fake: RunningFake, tenant: str, definition_id: int, version_id: int
) -> dict[str, Any]:
    stored = fake.state.tenants[tenant].versions[version_id]
    d = fake.state.tenants[tenant].definitions[definition_id]
    wf = stored.document["workflow"]
    if fake.config.import_answer == "created-object":
        # §3.6 [O]: the created workflow object, no envelope, read as `definitionId ?? id`.
        created = fake.state._version_summary(tenant, stored, full=True)
        return {**created, "definitionId": definition_id}
    return {
        "id": definition_id if fake.config.import_response_id == "definition" else version_id,
        "name": d.name,
        "description": d.description,
        "type": "Workflow::Setup",
        "version": stored.version,
        "ondemandTrigger": bool(wf.get("ondemand_trigger")),
        "calloutTrigger": bool(wf.get("callout_trigger")),
        "scheduledTrigger": bool(wf.get("scheduled_trigger")),
        "interval": wf.get("interval"),
        "timezone": wf.get("timezone"),
        "createdAt": timestamp(stored.created_at),
        "updatedAt": timestamp(stored.updated_at),
    }


def _refuse_named_imports(
    fake: RunningFake, tenant: str, payload: Any, definition_name: str | None = None
) -> None:
    """The tenant's `reject_imports` knob: a 400 as from a tenant lacking a custom field."""
    refused = fake.tenants[tenant].reject_imports
    if not refused:
        return
    wf = payload.get("workflow") if isinstance(payload, dict) else None
    name = wf.get("name") if isinstance(wf, dict) else None
    for candidate in (name, definition_name):
        if isinstance(candidate, str) and candidate in refused:
            raise errors_list(
                400,
                f"Failed to import workflow {candidate}: a task refers to the custom field "
                "Account.MigratorRegion__c, which is not defined in this tenant",
            )


async def import_workflow(fake: RunningFake, call: Call) -> Reply:
    q = call.request.query
    activate = call.query_flag("activate")
    definition_id = (
        _int_param(q["workflow_definition_id"], "workflow_definition_id")
        if ("workflow_definition_id" in q)
        else None
    )
    payload = await call.json()
    _refuse_named_imports(fake, call.tenant, payload)
    d, v = fake.state.import_workflow(
        call.tenant,
        payload,
        version=q.get("version"),
        activate=activate,
        definition_id=definition_id,
        idempotency_key=call.idempotency_key,
    )
    return Reply(200, _import_reply(fake, call.tenant, d.id, v.id))


async def import_version(fake: RunningFake, call: Call) -> Reply:
    q = call.request.query
    activate = call.query_flag("activate")
    definition = fake.state._definition(call.tenant, _id(call))  # 404 for an unknown one first
    payload = await call.json()
    _refuse_named_imports(fake, call.tenant, payload, definition.name)
    d, v = fake.state.import_version(
        call.tenant,
        _id(call),
        payload,
        version=q.get("version"),
        activate=activate,
        idempotency_key=call.idempotency_key,
    )
    if fake.config.import_answer == "created-object":
        return Reply(200, _import_reply(fake, call.tenant, d.id, v.id))
    return Reply(200, fake.state.definition_json(call.tenant, d.id, priority=False))


async def run_workflow(fake: RunningFake, call: Call) -> Reply:
    definition_id = _id(call)
    body = await call.json(empty={})
    d = fake.state.tenants[call.tenant].definitions.get(definition_id)
    fails = d is not None and d.name in fake.tenants[call.tenant].failing_runs
    return Reply(200, fake.state.start_run(call.tenant, definition_id, body, fails=fails))


async def get_run(fake: RunningFake, call: Call) -> Reply:
    return Reply(200, fake.state.get_run(call.tenant, _id(call)))


_OBJECT_NAME = re.compile(r"[A-Z][A-Za-z0-9]*")
_SYSTEM_FIELDS = ("Id", "CreatedById", "CreatedDate", "UpdatedById", "UpdatedDate")


def _schema_allowed(fake: RunningFake) -> None:
    if fake.config.schema_access == "403":
        raise errors_list(403, "You do not have permission to read this tenant's data model")


async def describe_object(fake: RunningFake, call: Call) -> Reply:
    """`GET /v1/describe/{Object}`: XML, the system fields and the tenant's custom ones."""
    _schema_allowed(fake)
    name = call.params["object"]
    if not _OBJECT_NAME.fullmatch(name):
        raise errors_list(404, f"No such object: {name}")
    fields = [*_SYSTEM_FIELDS, "Name", *fake.tenants[call.tenant].custom_fields.get(name, ())]
    rows = "".join(
        f"<field><name>{escape(f)}</name><label>{escape(f)}</label><type>text</type>"
        "<contexts><context>export</context></contexts></field>"
        for f in fields
    )
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<object><name>{escape(name)}</name><label>{escape(name)}</label>"
        f"<fields>{rows}</fields></object>"
    ).encode()
    return Reply(200, body, {"Content-Type": "text/xml; charset=utf-8"})


async def custom_object_definitions(fake: RunningFake, call: Call) -> Reply:
    """`GET /objects/definitions/default`: `{"count": N, "definitions": {type: definition}}`."""
    _schema_allowed(fake)
    conf = fake.tenants[call.tenant]
    definitions: dict[str, Any] = {}
    for name in conf.custom_objects:
        custom = conf.custom_fields.get(name) or conf.custom_fields.get(f"default__{name}", ())
        props = {f: {"label": f, "origin": "system", "type": "string"} for f in _SYSTEM_FIELDS}
        props.update({f: {"label": f, "origin": "custom", "type": "string"} for f in custom})
        definitions[name] = {
            "type": name,
            "schema": {"object": name, "label": name, "properties": props},
        }
    return Reply(200, {"count": len(definitions), "definitions": definitions})


# Each route: path pattern → method → (operation name, handler). The operation names are the
# SDK's (without verbs), used to pick the error body shape the SDK declares for it.
Route = tuple[str, Handler]
ROUTES: list[tuple[re.Pattern[str], dict[str, Route]]] = [
    (re.compile(r"/workflows/?"), {"GET": ("list", list_workflows)}),
    (re.compile(r"/workflows/import"), {"POST": ("import", import_workflow)}),
    (
        re.compile(r"/workflows/(?P<id>\d+)"),
        {
            "GET": ("get", get_workflow),
            "PATCH": ("update", patch_workflow),
            "PUT": ("update", put_workflow),
            "DELETE": ("delete", delete_workflow),
        },
    ),
    (re.compile(r"/workflows/(?P<id>\d+)/export"), {"GET": ("export", export_workflow)}),
    (re.compile(r"/workflows/(?P<id>\d+)/versions"), {"GET": ("versions", list_versions)}),
    (
        re.compile(r"/workflows/(?P<id>\d+)/versions/import"),
        {"POST": ("versions_import", import_version)},
    ),
    (
        re.compile(r"/workflows/versions/(?P<id>\d+)"),
        {"DELETE": ("delete_version", delete_version)},
    ),
    # [D] the pre-2025-02-28 path of the same operation; the SDKs still use it.
    (re.compile(r"/versions/(?P<id>\d+)"), {"DELETE": ("delete_version", delete_version)}),
    (re.compile(r"/workflows/(?P<id>\d+)/run"), {"POST": ("run", run_workflow)}),
    (re.compile(r"/workflows/workflow_runs/(?P<id>\d+)"), {"GET": ("get_run", get_run)}),
    (re.compile(r"/v1/describe/(?P<object>[^/]+)"), {"GET": ("describe", describe_object)}),
    (
        re.compile(r"/objects/definitions/default/?"),
        {"GET": ("custom_object_definitions", custom_object_definitions)},
    ),
]


def route(method: str, path: str) -> tuple[str, Handler, dict[str, str]] | Reply:
    """The operation, handler and path parameters for a request, or the 404/405 Reply."""
    for pattern, methods in ROUTES:
        match = pattern.fullmatch(path)
        if match:
            found = methods.get(method)
            if found is None:
                return Reply(405, errors_list(405, f"Method {method} not allowed on {path}").body)
            return found[0], found[1], match.groupdict()
    return Reply(404, errors_list(404, f"No such endpoint {path}").body)
