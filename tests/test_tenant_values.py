"""Tenant-specific values (spec §4.6) in plans, --strict and substitution tables, over HTTP (issue 6).

Uses tests/data/tenant-specific-callout.json: a saved provider, a report id, an entity and a URL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from migrator.core.remap import find_tenant_values
from migrator.run.migrate import migrate
from migrator.run.options import MigrateOptions
from migrator.run.verify import all_verified, verify_tenants
from tests.conftest import ROOT, SAMPLES
from tests.helpers import run_cli, running_fake

pytestmark = pytest.mark.anyio

BOUND = ROOT / "tests" / "data" / "tenant-specific-callout.json"
NAME = "Tenant-specific Report Push"
CALLER = SAMPLES / "10-quote-enrichment.json"  # its callee is not among these sources
CLEAN = SAMPLES / "06-usage-overage-alert.json"

TABLE = {
    "saved_provider:5f0c7a1e-3b2d-4e8f-9a61-0d7c4b2e1f93": "saved_provider:0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9",
    "2c93808457d787030157e0314b5a2ab4": "8adc9e0f5a1b2c3d4e5f60718293a4b5",
    "8a1e4c2f-0d6b-4a57-9b61-3c2d9e7f1a05": "77d0c1e2-5b6a-4c3d-8e9f-0a1b2c3d4e5f",
    "Northwind EU": "Northwind EU (production)",
    "https://treasury.example.com": "https://treasury.prod.example.com",
}


def expected_values() -> set[tuple[str, str, str]]:
    data = json.loads(BOUND.read_text())
    return {(v.path, v.kind, v.value) for v in find_tenant_values(data)}


def listed(values: Any) -> set[tuple[str, str, str]]:
    return {(v["path"], v["kind"], v["value"]) for v in values or ()}


async def test_plan_lists_every_tenant_value(tmp_path: Path) -> None:
    """A dry run and `migrator plan --json` list every tenant-specific value of the document for every tenant, unbound without a table."""
    expected = expected_values()
    assert {kind for _, kind, _ in expected} == {
        "saved_provider",
        "report_id",
        "entity_id",
        "entity_name",
        "callout_url",
    }
    async with running_fake() as env:
        report = await migrate(env.settings, MigrateOptions(sources=[str(BOUND)], dry_run=True))
        assert {i.tenant for i in report.items} == {"tenant-1", "tenant-2", "tenant-3"}
        for item in report.items:
            assert item.status == "planned"  # not strict: listed, not blocking
            assert listed(item.tenant_values) == expected
            assert all(v["substitute"] is None for v in item.tenant_values or ())

        run = await run_cli(env, tmp_path, "plan", str(BOUND), "--json")
        assert run.code == 0, run.err
        items = orjson.loads(run.out)["items"]
        assert len(items) == 3 and all(listed(i["tenant_values"]) == expected for i in items)
        assert env.fake.ledger() == []


async def test_strict_reports_unbound_values_and_missing_callee_together_and_writes_nothing(
    tmp_path: Path,
) -> None:
    """With --strict, an unbound tenant value and a missing callee in the same run are both reported, and nothing at all is written, not even a clean document."""
    sources = [str(BOUND), str(CALLER), str(CLEAN)]
    async with running_fake() as env:
        plan = await migrate(
            env.settings,
            MigrateOptions(sources=sources, tenants=["tenant-1"], dry_run=True, strict=True),
        )
        problems = [i for i in plan.items if i.status == "blocked"]
        assert {i.workflow_name for i in problems} == {NAME, "Quote Enrichment"}
        joined = " | ".join(plan.notices)
        assert (
            "unbound tenant-specific values" in joined
            and "neither in the sources nor in tenant" in joined
        )

        report = await migrate(
            env.settings,
            MigrateOptions(
                sources=sources,
                tenants=["tenant-1"],
                strict=True,
                journal=str(tmp_path / "j.jsonl"),
            ),
        )
        assert env.fake.ledger() == []
        assert not report.ok
        by_name = {i.workflow_name: i for i in report.items}
        assert "unbound tenant-specific values" in (by_name[NAME].error or "")
        for _, kind, value in expected_values():
            assert value in (by_name[NAME].error or ""), kind
        assert "neither in the sources nor in tenant" in (by_name["Quote Enrichment"].error or "")
        assert by_name["Usage Overage Alert"].status == "blocked"  # held: --strict writes nothing
        [note] = [n for n in report.notices if n.startswith("--strict")]
        assert BOUND.name in note and CALLER.name in note


async def test_substitution_table_rewrites_what_lands_and_strict_passes(tmp_path: Path) -> None:
    """With a substitution table for tenant-1 every value is bound: strict passes there, the landed export holds the tenant's values, and verify agrees."""
    async with running_fake(substitutions={"tenant-1": TABLE}) as env:
        plan = await migrate(
            env.settings, MigrateOptions(sources=[str(BOUND)], dry_run=True, strict=True)
        )
        by_tenant = {i.tenant: i for i in plan.items}
        assert by_tenant["tenant-1"].status == "planned"
        assert all(v["substitute"] is not None for v in by_tenant["tenant-1"].tenant_values or ())
        assert {by_tenant[t].status for t in ("tenant-2", "tenant-3")} == {"blocked"}

        report = await migrate(
            env.settings, MigrateOptions(sources=[str(BOUND)], tenants=["tenant-1"], strict=True)
        )
        assert report.ok, report.to_json()
        [item] = report.items
        assert item.status == "imported"
        exported = env.fake.state.export("tenant-1", item.target_workflow_id, item.version)
        text = json.dumps(exported)
        for old, new in TABLE.items():
            assert new in text
            assert old not in text.replace(new, ""), old
        tasks = {t["name"]: t for t in exported["tasks"]}
        assert tasks["Run Aging Report"]["object_id"] == TABLE["2c93808457d787030157e0314b5a2ab4"]
        assert (
            tasks["Push To Treasury"]["parameters"]["url"]
            == "https://treasury.prod.example.com/api/aging"
        )
        assert (
            tasks["Push To Treasury"]["parameters"]["authorization"]["type"]
            == TABLE["saved_provider:5f0c7a1e-3b2d-4e8f-9a61-0d7c4b2e1f93"]
        )
        assert (
            exported["workflow"]["parameters"]["entity_id"]
            == TABLE["8a1e4c2f-0d6b-4a57-9b61-3c2d9e7f1a05"]
        )
        assert exported["workflow"]["parameters"]["entity_name"] == "Northwind EU (production)"
        # A re-run is a no-op (the substituted payload is what landed), and verify agrees.
        again = await migrate(
            env.settings, MigrateOptions(sources=[str(BOUND)], tenants=["tenant-1"], strict=True)
        )
        assert [i.status for i in again.items] == ["skipped"]
        assert all_verified(await verify_tenants(env.settings, [str(BOUND)], ["tenant-1"]))


async def test_tenants_with_different_tables_each_land_their_own_values(tmp_path: Path) -> None:
    """Tenants of one run share a prepared payload only when it would be the same: two tenants
    with different substitution tables each land their own values."""
    other = {
        old: new.replace("e", "f").replace("(production)", "(staging)")
        for old, new in TABLE.items()
    }
    tables = {"tenant-1": TABLE, "tenant-2": other}
    async with running_fake(substitutions=tables) as env:
        report = await migrate(
            env.settings,
            MigrateOptions(sources=[str(BOUND), str(CLEAN)], tenants=["tenant-1", "tenant-2"]),
        )
        assert report.ok, report.to_json()
        landed = {
            (i.tenant, i.workflow_name): json.dumps(
                env.fake.state.export(i.tenant, i.target_workflow_id, i.version)
            )
            for i in report.items
        }
        assert {i.status for i in report.items} == {"imported"}
        for tenant, table in tables.items():
            text = landed[(tenant, NAME)]
            assert all(new in text for new in table.values()), tenant
            assert 'Northwind EU"' not in text
        assert landed[("tenant-1", NAME)] != landed[("tenant-2", NAME)]
