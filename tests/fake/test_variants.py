"""The fake's switches for what the spec leaves open, over real HTTP on 127.0.0.1.

One test (at least) per switch, in its default and its other setting; the named variant presets;
the two idempotency fixes (in-flight 409 under latency, replayed headers); what import keeps.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from migrator.fake import FakeConfig, FaultConfig
from migrator.fake._config import demo_tenant
from tests.fake.helpers import running, sample_document

pytestmark = pytest.mark.anyio


class Clock:
    """A hand-moved wall clock."""

    def __init__(self, now: float = 1_000_000_210.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- Idempotency fixes (§1.8) -------------------------------------------------------------------


async def test_in_flight_duplicate_under_latency_gets_409() -> None:
    """§1.8: a same-key request arriving while the first sleeps in its latency is 409, not run."""
    config = FakeConfig(tenants=[demo_tenant(1, faults=FaultConfig(latency=3.0))])
    async with running(config) as (fake, (a,)):
        await a.login()
        key = {"Idempotency-Key": "k-latency"}
        first = asyncio.create_task(a.import_new(sample_document(), headers=key))
        # The key is registered on arrival; wait for that, not for a time.
        while len(fake.idempotency) == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        second = await a.import_new(sample_document(), headers=key)
        assert second.status == 409
        assert second.body["errors"][0]["title"].endswith("still being processed")
        assert (await first).status == 200
        assert len(fake.ledger()) == 1


async def test_key_of_an_injected_error_under_latency_is_not_consumed() -> None:
    """A key registered before the latency is released again when the gateway injects a 5xx."""
    faults = FaultConfig(latency=0.01, error_rate=1.0, error_statuses=(503,))
    async with running(FakeConfig(tenants=[demo_tenant(1, faults=faults)])) as (fake, (a,)):
        key = {"Idempotency-Key": "k-err-latency"}
        assert (await a.import_new(sample_document(), headers=key)).status == 503
        fake.set_faults(a.tenant.name, FaultConfig())
        assert (await a.import_new(sample_document(), headers=key)).status == 200
        assert len(fake.ledger()) == 1


@pytest.mark.parametrize("mode", ["replay", "409"])
async def test_replay_carries_the_stored_headers(mode: str) -> None:
    """§1.8: a replay returns the stored headers (the first answer's request id) with the body."""
    async with running(FakeConfig.demo(1, idempotent_replay=mode)) as (_, (a,)):
        key = {"Idempotency-Key": "k-headers"}
        first = await a.import_new(sample_document(), headers=key)
        again = await a.import_new(sample_document(), headers=key)
        assert again.status == (200 if mode == "replay" else 409)
        assert again.body == first.body
        assert again.headers["Zuora-Request-Id"] == first.headers["Zuora-Request-Id"]
        other = await a.call("GET", "/workflows")
        assert other.headers["Zuora-Request-Id"] != first.headers["Zuora-Request-Id"]


# -- Import answer id (§9.3) ---------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "which"), [("definition", 0), ("version", 1)])
async def test_import_answer_id_switch(mode: str, which: int) -> None:
    """§9.3: POST /workflows/import answers the definition id, or the version id when switched."""
    async with running(FakeConfig.demo(1, import_response_id=mode)) as (fake, (a,)):
        answer = await a.import_new(sample_document())
        entry = fake.ledger()[0]
        assert answer.body["id"] == (entry["definition_id"], entry["version_id"])[which]


# -- Name filter (§3.1, §9.10) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("knobs", "query", "expected"),
    [
        ({}, "Dunning", ["Dunning"]),
        ({}, "dunning", []),
        ({}, "Dun", []),
        ({"name_filter": "contains"}, "Dun", ["Dunning Escalation", "Dunning"]),
        ({"name_filter": "contains"}, "dun", []),
        ({"name_filter_case_sensitive": False}, "dunning", ["Dunning"]),
        ({"name_filter_case_sensitive": False}, "Dun", []),
        (
            {"name_filter": "contains", "name_filter_case_sensitive": False},
            "DUN",
            ["Dunning Escalation", "Dunning"],
        ),
    ],
)
async def test_name_filter_switches(knobs: dict[str, Any], query: str, expected: list[str]) -> None:
    """§9.10: `name` matches exactly (default), as a substring, and with or without case."""
    async with running(FakeConfig.demo(1, **knobs)) as (_, (a,)):
        for name in ("Dunning", "Dunning Escalation", "Late fee"):
            assert (await a.import_new(sample_document(name))).status == 200
        listed = await a.call("GET", "/workflows", name=query)
        assert [d["name"] for d in listed.body["data"]] == expected


# -- Retry-After and RateLimit-* (§1.4-1.6, §9.5, §9.6) ------------------------------------------


@pytest.mark.parametrize(
    ("mode", "on_rate", "on_concurrency"),
    [("always", True, True), ("concurrency-only", False, True), ("never", False, False)],
)
async def test_retry_after_switch(mode: str, on_rate: bool, on_concurrency: bool) -> None:
    """§9.6: which 429s carry Retry-After: all (default), concurrency ones only, or none."""
    tenant = demo_tenant(1, requests_per_minute=2, max_concurrency=0)
    async with running(FakeConfig(tenants=[tenant], retry_after=mode, clock=Clock())) as (
        fake,
        (a,),
    ):
        concurrency = await a.call("GET", "/workflows")
        assert concurrency.status == 429
        assert ("Retry-After" in concurrency.headers) is on_concurrency
        fake.set_tenant(a.tenant.name, max_concurrency=5)  # also starts fresh rate windows
        for _ in range(2):
            assert (await a.call("GET", "/workflows")).status == 200
        rate = await a.call("GET", "/workflows")
        assert rate.status == 429 and rate.body["errors"][0]["title"].endswith("per window")
        assert ("Retry-After" in rate.headers) is on_rate


@pytest.mark.parametrize("send", [True, False])
async def test_ratelimit_headers_switch(send: bool) -> None:
    """§1.4 [S]: RateLimit-* headers are sent on API answers, or (switched off) never."""
    tenant = demo_tenant(1, requests_per_minute=1)
    async with running(FakeConfig(tenants=[tenant], rate_limit_headers=send, clock=Clock())) as (
        _,
        (a,),
    ):
        ok = await a.call("GET", "/workflows")
        refused = await a.call("GET", "/workflows")
        assert refused.status == 429 and "Retry-After" in refused.headers
        for answer in (ok, refused):
            names = {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"}
            assert names.issubset(answer.headers) is send
            assert not names.intersection(answer.headers) or send


# -- Error body shapes (§1.12, official SDK models) ----------------------------------------------


async def test_sdk_error_bodies() -> None:
    """§1.12: with error_bodies="sdk", 401 is {message} and 400/403 {code, message}, as the SDK says."""
    async with running(FakeConfig.demo(1, error_bodies="sdk")) as (fake, (a,)):
        async with a.session.get(fake.base_url + "/workflows") as resp:
            assert resp.status == 401
            assert orjson.loads(await resp.read()) == {"message": "Authentication error"}
            assert "Bearer realm=Zuora API" in resp.headers["WWW-Authenticate"]
        bad = sample_document()
        bad["tasks"] = []
        refused = await a.import_new(bad)
        assert refused.status == 400
        assert set(refused.body) == {"code", "message"} and isinstance(refused.body["code"], int)
        assert "No tasks/linkages" in refused.body["message"]
        # Export 400/404 and run 400/409 keep the WorkflowError list; 404 on delete keeps Errors.
        assert "errors" in (await a.call("GET", "/workflows/999/export")).body
        assert "errors" in (await a.call("GET", "/workflows/1/export", version="x")).body
        assert "Errors" in (await a.call("DELETE", "/workflows/999")).body
        definition_id = (await a.import_new(sample_document())).body["id"]
        inactive_run = await a.call("POST", f"/workflows/{definition_id}/run", {})
        assert inactive_run.status == 400 and "errors" in inactive_run.body


async def test_sdk_error_bodies_by_default() -> None:
    """§1.12: by default (issue 23) 401 is {message} and import 400 {code, message}, the SDK's models."""
    async with running(FakeConfig.demo(1)) as (fake, (a,)):
        async with a.session.get(fake.base_url + "/workflows") as resp:
            assert orjson.loads(await resp.read()) == {"message": "Authentication error"}
        bad = sample_document()
        bad["tasks"] = []
        assert set((await a.import_new(bad)).body) == {"code", "message"}


async def test_spec_error_bodies_variant() -> None:
    """§1.12 [I]: the `spec-error-bodies` variant answers 401 and import 400 with {errors: [WorkflowError]}."""
    async with running(FakeConfig.demo(1).with_variant("spec-error-bodies")) as (fake, (a,)):
        async with a.session.get(fake.base_url + "/workflows") as resp:
            assert set(orjson.loads(await resp.read())) == {"errors"}
        bad = sample_document()
        bad["tasks"] = []
        assert set((await a.import_new(bad)).body) == {"errors"}


# -- What import keeps (§3.6, §4.2-4.4) ----------------------------------------------------------


def _decorated() -> dict[str, Any]:
    doc = sample_document()
    doc["workflow"].update(
        ui_trigger=True,
        call_type="ASYNC",
        delete_ttl=30,
        notifications={"emails": []},
        original_workflow_id=None,
        status="Inactive",
    )
    doc["workflow"]["parameters"]["merge_task_ids"] = [1]
    doc["tasks"][0].update(status="Success", error=None, process_id="p", colour="red", tags=["t"])
    doc["linkages"][0].update(internal_group="g1", note="x")
    return doc


async def test_import_keeps_only_known_keys() -> None:
    """§3.6 [Z]: unknown workflow keys (ui_trigger) are dropped; [I] so are unknown and run-time
    task keys and unknown linkage keys; the documented ones survive."""
    async with running(FakeConfig.demo(1).with_variant("documented")) as (_, (a,)):
        definition_id = (await a.import_new(_decorated())).body["id"]
        doc = (await a.call("GET", f"/workflows/{definition_id}/export", version="latest")).body
        assert set(doc["workflow"]) == {
            "id",
            "name",
            "type",
            "description",
            "version",
            "status",
            "ondemand_trigger",
            "callout_trigger",
            "scheduled_trigger",
            "interval",
            "timezone",
            "priority",
            "parameters",
            "call_type",
            "delete_ttl",
            "notifications",
            "original_workflow_id",
        }
        assert doc["workflow"]["parameters"] == {"fields": []}
        export_task = next(t for t in doc["tasks"] if t["action_type"] == "Export")
        assert set(export_task) == {
            "id",
            "name",
            "action_type",
            "object",
            "task_id",
            "parameters",
            "tags",
        }
        entry = next(link for link in doc["linkages"] if link["source_task_id"] is None)
        assert set(entry) == {
            "source_workflow_id",
            "source_task_id",
            "target_task_id",
            "linkage_type",
            "internal_group",
        }


async def test_keep_unknown_keys_switch() -> None:
    """With keep_unknown_keys (not the default, see docs) every key is stored as sent; ids and
    merge_task_ids still change."""
    assert FakeConfig.demo(1).keep_unknown_keys is False
    async with running(FakeConfig.demo(1, keep_unknown_keys=True)) as (_, (a,)):
        definition_id = (await a.import_new(_decorated())).body["id"]
        doc = (await a.call("GET", f"/workflows/{definition_id}/export", version="latest")).body
        assert doc["workflow"]["ui_trigger"] is True
        assert "merge_task_ids" not in doc["workflow"]["parameters"]
        export_task = next(t for t in doc["tasks"] if t["action_type"] == "Export")
        assert export_task["colour"] == "red" and export_task["status"] == "Success"
        assert any(link.get("note") == "x" for link in doc["linkages"])


# -- Named variants ------------------------------------------------------------------------------


def test_variant_presets_are_enumerable() -> None:
    """FakeConfig.variants() names every preset the integrator runs the end-to-end suite against."""
    names = set(FakeConfig.variants())
    assert {
        "documented",
        "version-id-answers",
        "substring-name-filter",
        "case-insensitive-filter",
        "409-replay",
        "no-retry-after",
        "no-ratelimit-headers",
        "sdk-error-bodies",
        "all-flipped",
    } <= names
    assert FakeConfig.variants()["documented"] == {"keep_unknown_keys": False}
    flipped = FakeConfig.demo(1).with_variant("all-flipped")
    assert flipped.import_response_id == "version" and flipped.error_bodies == "spec"
    assert flipped.retry_after == "never" and flipped.rate_limit_headers is False
    assert flipped.keep_unknown_keys is False and flipped.name_filter == "contains"
    with pytest.raises(ValueError, match="unknown variant"):
        FakeConfig.demo(1).with_variant("nope")


@pytest.mark.parametrize("variant", list(FakeConfig.variants()))
async def test_every_variant_serves_an_import_and_an_export(variant: str) -> None:
    """Each preset still imports, finds the workflow by its exact name, and exports it."""
    config = FakeConfig.demo(1).with_variant(variant)
    async with running(config) as (fake, (a,)):
        answer = await a.import_new(sample_document("Variant"), activate=True)
        assert answer.status == 200
        listed = await a.call("GET", "/workflows", name="Variant")
        [definition] = listed.body["data"]
        assert definition["id"] == fake.ledger()[0]["definition_id"]
        exported = await a.call("GET", f"/workflows/{definition['id']}/export")
        assert exported.status == 200 and exported.body["workflow"]["name"] == "Variant"


# -- What others recorded from real tenants (issue 23) --------------------------------------------


async def _two_versions(a: Any) -> int:
    """A definition with an active 1.0 and an inactive 2.0; its id."""
    created = await a.import_new(sample_document("Recorded"), version="1.0", activate=True)
    definition_id = int(created.body["id"])
    await a.call(
        "POST",
        f"/workflows/{definition_id}/versions/import",
        sample_document("Recorded"),
        version="2.0",
    )
    return definition_id


@pytest.mark.parametrize(
    ("spelling", "keys"),
    [
        ("verisons", {"latest_inactive_verisons"}),
        ("versions", {"latest_inactive_versions"}),
        ("both", {"latest_inactive_verisons", "latest_inactive_versions"}),
    ],
)
async def test_listing_spelling(spelling: str, keys: set[str]) -> None:
    """§3.1 [O]: the listing spells the inactive versions the reference's way, the live way, or both."""
    async with running(FakeConfig.demo(1, listing_spelling=spelling)) as (_, (a,)):
        await _two_versions(a)
        [entry] = (await a.call("GET", "/workflows")).body["data"]
        assert {k for k in entry if k.startswith("latest_inactive")} == keys
        for key in keys:
            assert [v["version"] for v in entry[key]] == ["2.0"]


async def test_version_definition_ids() -> None:
    """§3.1 [O]: with version_definition_id every version object names its definition."""
    async with running(FakeConfig.demo(1).with_variant("version-definition-ids")) as (_, (a,)):
        definition_id = await _two_versions(a)
        [entry] = (await a.call("GET", "/workflows")).body["data"]
        assert entry["active_version"]["definitionId"] == definition_id
        assert entry["latest_inactive_verisons"][0]["definitionId"] == definition_id
        listed = (await a.call("GET", f"/workflows/{definition_id}/versions")).body["data"]
        assert {v["definitionId"] for v in listed} == {definition_id}


async def test_created_object_answers() -> None:
    """§3.6 [O]: imports answer the created version's object with its definitionId, no envelope."""
    async with running(FakeConfig.demo(1).with_variant("created-object-answers")) as (fake, (a,)):
        created = await a.import_new(sample_document("Made"), version="1.0")
        entry = fake.ledger()[0]
        assert created.body["definitionId"] == entry["definition_id"]
        assert created.body["id"] == entry["version_id"] != entry["definition_id"]
        assert "success" not in created.body
        again = await a.call(
            "POST",
            f"/workflows/{entry['definition_id']}/versions/import",
            sample_document("Made"),
            version="2.0",
        )
        assert again.body["id"] == fake.ledger()[1]["version_id"]
        assert again.body["definitionId"] == entry["definition_id"]


@pytest.mark.parametrize(("mode", "stored"), [("dropped", False), ("kept", True)])
async def test_camel_case_triggers(mode: str, stored: bool) -> None:
    """§9.13: camelCase trigger keys are dropped, or read as the triggers, as the switch says."""
    doc = sample_document("Camel")
    for key in ("callout_trigger", "ondemand_trigger", "scheduled_trigger"):
        doc["workflow"].pop(key, None)
    doc["workflow"]["calloutTrigger"] = True
    async with running(FakeConfig.demo(1, camel_case_triggers=mode)) as (_, (a,)):
        created = await a.import_new(doc, version="1.0")
        exported = (
            await a.call("GET", f"/workflows/{created.body['id']}/export", version="1.0")
        ).body
        assert ("callout_trigger" in exported["workflow"]) is stored
        assert "calloutTrigger" not in exported["workflow"]


async def test_put_settings() -> None:
    """§3.6 [O]: PUT /workflows/{id} with a flat camelCase body only with put_settings (else 405)."""
    async with running(FakeConfig.demo(1)) as (_, (a,)):
        definition_id = await _two_versions(a)
        assert (await a.call("PUT", f"/workflows/{definition_id}", {"name": "X"})).status == 405
    async with running(FakeConfig.demo(1).with_variant("put-settings")) as (_, (a,)):
        definition_id = await _two_versions(a)
        body = {"name": "Renamed", "calloutTrigger": True, "priority": "High"}
        answer = await a.call("PUT", f"/workflows/{definition_id}", body)
        assert answer.status == 200 and answer.body["name"] == "Renamed"
        assert answer.body["calloutTrigger"] is True and answer.body["priority"] == "High"
        bad = await a.call("PUT", f"/workflows/{definition_id}", {"priority": "Urgent"})
        assert bad.status == 422 and bad.body["reasons"][0]["fieldName"] == "priority"


async def test_no_versions_list() -> None:
    """Issue 23 #5: with versions_list off every versions list answers 404; the rest still works."""
    async with running(FakeConfig.demo(1).with_variant("no-versions-list")) as (_, (a,)):
        definition_id = await _two_versions(a)
        assert (await a.call("GET", f"/workflows/{definition_id}/versions")).status == 404
        assert (await a.call("GET", f"/workflows/{definition_id}/export")).status == 200


async def test_export_carries_the_definition_block_by_default() -> None:
    """§3.5 [O]: exports carry `workflow_definition` (the version's name and description, then what
    import kept of a sent block); the `no-workflow-definition-block` variant leaves it out."""
    doc = sample_document("Blocked")
    doc["workflow_definition"] = {"category": "Billing", "id": 7, "ui_page_roles": []}
    async with running(FakeConfig.demo(1)) as (_, (a,)):
        plain = await a.import_new(sample_document("Plain"), version="1.0")
        exported = (
            await a.call("GET", f"/workflows/{plain.body['id']}/export", version="1.0")
        ).body
        assert next(iter(exported)) == "workflow_definition"
        assert exported["workflow_definition"] == {
            "name": "Plain",
            "description": exported["workflow"].get("description") or "",
        }
        blocked = await a.import_new(doc, version="1.0")
        block = (
            await a.call("GET", f"/workflows/{blocked.body['id']}/export", version="1.0")
        ).body["workflow_definition"]
        assert block["category"] == "Billing" and block["ui_page_roles"] == [] and "id" not in block
    async with running(FakeConfig.demo(1).with_variant("no-workflow-definition-block")) as (
        _,
        (a,),
    ):
        blocked = await a.import_new(doc, version="1.0")
        exported = (
            await a.call("GET", f"/workflows/{blocked.body['id']}/export", version="1.0")
        ).body
        assert "workflow_definition" not in exported
