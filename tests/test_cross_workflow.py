"""Execute::WorkflowTask references across tenants, over real HTTP against the fake (issue 6).

Callees land before callers, and each caller points at its callee's definition id in that tenant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from migrator.run.migrate import migrate
from migrator.run.options import MigrateOptions
from tests.builders import CALLEE, CALLEE_NAME, CALLER, CALLER_NAME
from tests.conftest import SAMPLES
from tests.helpers import Env, running_fake

pytestmark = pytest.mark.anyio

TENANTS = ("tenant-1", "tenant-2", "tenant-3")
FILLER = SAMPLES / "06-usage-overage-alert.json"


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def preload_fillers(env: Env, counts: dict[str, int]) -> None:
    """Different numbers of unrelated workflows per tenant, so the same workflow gets different ids."""
    for tenant, n in counts.items():
        for i in range(n):
            filler = load(FILLER)
            filler["workflow"]["name"] = f"Unrelated {i}"
            env.fake.state.add_workflow(tenant, filler)


def definition_id(env: Env, tenant: str, name: str) -> int:
    state = env.fake.state
    [found] = [
        d
        for d in state.list_definitions(tenant, {})
        if state.definition_json(tenant, d)["name"] == name
    ]
    return found


def call_ids(env: Env, tenant: str, name: str) -> list[str]:
    """The `workflow_id` of every Execute::WorkflowTask in the landed (latest) version of `name`."""
    exported = env.fake.state.export(tenant, definition_id(env, tenant, name), "latest")
    return [
        t["parameters"]["workflow_id"]
        for t in exported["tasks"]
        if t["action_type"] == "Execute::WorkflowTask"
    ]


def calling(name: str, callee: dict[str, Any], *, workflow_id: int) -> dict[str, Any]:
    """A copy of the sample caller renamed to `name`, calling `callee` (a dict with optional id/name)."""
    data = load(CALLER)
    data["workflow"]["name"] = name
    data["workflow"]["id"] = workflow_id
    for link in data["linkages"]:
        if link["source_workflow_id"] is not None:
            link["source_workflow_id"] = workflow_id
    for task in data["tasks"]:
        if task["action_type"] == "Execute::WorkflowTask":
            task["parameters"]["workflow_id"] = callee.get("id")
            task["parameters"]["workflow_name"] = callee.get("name")
    return data


async def test_callee_lands_first_with_its_id_in_each_tenant(tmp_path: Path) -> None:
    """In three tenants holding different numbers of other workflows, the callee is imported before the caller and the caller points at the callee's id in that tenant."""
    async with running_fake() as env:
        preload_fillers(env, {"tenant-1": 0, "tenant-2": 3, "tenant-3": 7})
        # The caller is listed first, so only the plan's order puts the callee first.
        report = await migrate(
            env.settings,
            MigrateOptions(sources=[str(CALLER), str(CALLEE)], journal=str(tmp_path / "j.jsonl")),
        )
        assert report.ok, report.to_json()
        callee_ids = {}
        for tenant in TENANTS:
            order = [e["name"] for e in env.imports(tenant)]
            assert order == [CALLEE_NAME, CALLER_NAME], tenant
            callee_ids[tenant] = definition_id(env, tenant, CALLEE_NAME)
            assert call_ids(env, tenant, CALLER_NAME) == [str(callee_ids[tenant])], tenant
        assert len(set(callee_ids.values())) == 3
        # The workflow name fallback is kept as written.
        exported = env.fake.state.export(
            "tenant-2", definition_id(env, "tenant-2", CALLER_NAME), "latest"
        )
        [task] = [t for t in exported["tasks"] if t["action_type"] == "Execute::WorkflowTask"]
        assert task["parameters"]["workflow_name"] == CALLEE_NAME
        # Run again with no journal: the caller's payload (with this tenant's callee id) is found
        # on the target, so nothing new lands anywhere.
        before = len(env.fake.ledger())
        again = await migrate(env.settings, MigrateOptions(sources=[str(CALLER), str(CALLEE)]))
        assert len(env.fake.ledger()) == before
        assert {i.status for i in again.items} == {"skipped"}


async def test_callee_found_only_in_the_target_by_name(tmp_path: Path) -> None:
    """A caller whose callee is not in the sources but exists in the tenant by name gets that definition's id."""
    async with running_fake() as env:
        preload_fillers(env, {"tenant-2": 2})
        existing, _ = env.fake.state.add_workflow("tenant-2", load(CALLEE), version="4.0.0")
        report = await migrate(
            env.settings, MigrateOptions(sources=[str(CALLER)], tenants=["tenant-2"])
        )
        assert report.ok, report.to_json()
        assert [e["name"] for e in env.imports("tenant-2")] == [CALLER_NAME]
        assert call_ids(env, "tenant-2", CALLER_NAME) == [str(existing)]


async def test_missing_callee_is_a_planning_error_and_nothing_is_written(tmp_path: Path) -> None:
    """A caller whose callee is neither in the sources nor in the tenant is blocked with a clear reason, in the plan and in a run, and never sent."""
    async with running_fake() as env:
        env.fake.state.add_workflow("tenant-3", load(CALLEE))  # only tenant-3 has the callee
        plan = await migrate(env.settings, MigrateOptions(sources=[str(CALLER)], dry_run=True))
        by_tenant = {i.tenant: i for i in plan.items}
        assert by_tenant["tenant-3"].status == "planned"
        for tenant in ("tenant-1", "tenant-2"):
            item = by_tenant[tenant]
            assert item.status == "blocked"
            assert "neither in the sources nor in tenant" in (item.error or "")
            assert "'Price Lookup Service'" in (item.error or "") and "4231" in (item.error or "")
        assert any("tenant-1" in n and "Price Lookup Service" in n for n in plan.notices)

        report = await migrate(
            env.settings, MigrateOptions(sources=[str(CALLER)], journal=str(tmp_path / "j.jsonl"))
        )
        assert not report.ok
        assert env.imports("tenant-1") == [] and env.imports("tenant-2") == []
        assert [e["name"] for e in env.imports("tenant-3")] == [CALLER_NAME]
        assert {i.tenant: i.status for i in report.items} == {
            "tenant-1": "blocked",
            "tenant-2": "blocked",
            "tenant-3": "imported",
        }


async def test_call_cycle_is_reported_and_not_sent(tmp_path: Path) -> None:
    """Two workflows calling each other (one by source id, one by name) are reported as a cycle and neither is imported; an unrelated one still lands."""
    src = tmp_path / "src"
    src.mkdir()
    a = calling("Cycle A", {"id": "7702"}, workflow_id=7701)
    b = calling("Cycle B", {"id": "999999", "name": "Cycle A"}, workflow_id=7702)
    (src / "a.json").write_text(json.dumps(a))
    (src / "b.json").write_text(json.dumps(b))
    (src / "callee.json").write_text(CALLEE.read_text())
    async with running_fake() as env:
        plan = await migrate(
            env.settings, MigrateOptions(sources=[str(src)], tenants=["tenant-1"], dry_run=True)
        )
        cycle_notes = [n for n in plan.notices if "call cycle" in n]
        assert len(cycle_notes) == 1 and "Cycle A" in cycle_notes[0] and "Cycle B" in cycle_notes[0]
        report = await migrate(
            env.settings, MigrateOptions(sources=[str(src)], tenants=["tenant-1"])
        )
        status = {i.workflow_name: i.status for i in report.items}
        assert status == {"Cycle A": "blocked", "Cycle B": "blocked", CALLEE_NAME: "imported"}
        assert all("call cycle" in (i.error or "") for i in report.items if i.status == "blocked")
        assert [e["name"] for e in env.imports("tenant-1")] == [CALLEE_NAME]


async def test_a_call_by_an_id_beyond_64_bits_is_found_by_name_not_a_crash(tmp_path: Path) -> None:
    """A caller whose Execute task names a workflow id larger than any id can be is matched by
    the callee's name (no source has that id), planned after it and imported pointing at it."""
    callee, caller = SAMPLES / "09-price-lookup-service.json", SAMPLES / "10-quote-enrichment.json"
    doc = json.loads(caller.read_text())
    [call] = [t for t in doc["tasks"] if t["action_type"] == "Execute::WorkflowTask"]
    call["parameters"]["workflow_id"] = str(1 << 70)
    edited = tmp_path / caller.name
    edited.write_text(json.dumps(doc))
    async with running_fake() as env:
        report = await migrate(
            env.settings, MigrateOptions(sources=[str(edited), str(callee)], tenants=["tenant-1"])
        )
        assert report.ok, report.to_json()
        imports = env.imports("tenant-1")
        assert [e["name"] for e in imports] == ["Price Lookup Service", "Quote Enrichment"]
        landed = env.fake.state.export("tenant-1", imports[1]["definition_id"], None)
        [task] = [t for t in landed["tasks"] if t["action_type"] == "Execute::WorkflowTask"]
        assert task["parameters"]["workflow_id"] == str(imports[0]["definition_id"])
