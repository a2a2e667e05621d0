"""The reference check over HTTP: what a workflow names in a tenant's data model is checked before
the first write there; the id map `migrator ids` reads back from the journal (issue 24)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from migrator.cli import main
from migrator.fake import FakeConfig
from migrator.fake._config import demo_tenant
from migrator.run.migrate import migrate
from migrator.run.options import MigrateOptions
from tests.builders import small_export
from tests.helpers import running_fake

pytestmark = pytest.mark.anyio

REGIONAL, VEHICLES, PLAIN = "Regional Report", "Vehicle Sync", "Plain Resume"


def _regional() -> dict[str, Any]:
    doc = small_export(REGIONAL)
    export = doc["tasks"][0]
    export["name"] = "Export Accounts"
    export["object"] = "Account"
    export["parameters"] = {
        "fields": {"Account": {"Id": "true", "Region__c": "true"}},
        "where_clause": "Account.Status = 'Active'",
    }
    return doc


def _vehicles() -> dict[str, Any]:
    doc = small_export(VEHICLES)
    query = doc["tasks"][0]
    query["name"] = "Read Vehicles"
    query["object"] = "default__vehicle"
    query["parameters"] = {"fields": {"default__vehicle": {"Id": "true"}}}
    return doc


def write_sources(folder: Path) -> Path:
    folder.mkdir()
    for n, doc in enumerate((_regional(), _vehicles(), small_export(PLAIN))):
        doc["workflow"]["id"] = 100 + n
        doc["linkages"][0]["source_workflow_id"] = 100 + n
        (folder / f"{n}.json").write_text(json.dumps(doc))
    return folder


def fleet(**knobs: Any) -> FakeConfig:
    """tenant-1 has Account.Region__c and the custom object vehicle; tenant-2 has neither."""
    rich = demo_tenant(1, custom_fields={"Account": ["Region__c"]}, custom_objects=["vehicle"])
    return FakeConfig(tenants=[rich, demo_tenant(2, custom_fields={})], **knobs)


def _blocked(report: Any, tenant: str) -> dict[str, str]:
    return {
        i.workflow_name: i.error
        for i in report.items
        if i.tenant == tenant and i.status == "blocked"
    }


async def test_missing_references_block_only_their_documents_in_only_that_tenant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The tenant with the field and the object gets everything; the one without gets the rest,
    each of the two blocked with its task and reference named and never written; `plan` says
    the same before anything is sent; `ids --json` matches what the tenant holds."""
    sources = str(write_sources(tmp_path / "src"))
    journal = tmp_path / "run.jsonl"
    async with running_fake(fleet()) as env:
        dry = await migrate(env.settings, MigrateOptions(sources=[sources], dry_run=True))
        assert env.fake.ledger() == []
        assert {i.status for i in dry.items if i.tenant == "tenant-1"} == {"planned"}
        planned_blocks = _blocked(dry, "tenant-2")
        assert set(planned_blocks) == {REGIONAL, VEHICLES}
        assert "task 'Export Accounts' names Account.Region__c" in planned_blocks[REGIONAL]
        assert (
            "task 'Read Vehicles' names custom object default__vehicle" in planned_blocks[VEHICLES]
        )
        assert "tenant tenant-2 does not have" in planned_blocks[REGIONAL]

        report = await migrate(
            env.settings, MigrateOptions(sources=[sources], journal=str(journal))
        )
        assert env.import_counts("tenant-1") == {REGIONAL: 1, VEHICLES: 1, PLAIN: 1}
        assert env.import_counts("tenant-2") == {PLAIN: 1}
        assert _blocked(report, "tenant-2") == planned_blocks
        assert _blocked(report, "tenant-1") == {}
        as_json = json.loads(b"".join(report.chunks()))
        reasons = [i.get("error") for i in as_json["items"] if i.get("status") == "blocked"]
        assert sorted(reasons) == sorted(planned_blocks.values())

        capsys.readouterr()
        assert main(["ids", "--journal", str(journal), "--json"]) == 0
        ids = json.loads(capsys.readouterr().out)["tenants"]
        assert sorted(r["name"] for r in ids["tenant-1"]) == sorted([PLAIN, REGIONAL, VEHICLES])
        assert [r["name"] for r in ids["tenant-2"]] == [PLAIN]
        for tenant, rows in ids.items():
            held = env.fake.state.tenants[tenant]
            for row in rows:
                definition = held.definitions[row["target_definition_id"]]
                version = held.versions[row["target_version_id"]]
                assert definition.name == row["name"]
                assert version.definition_id == definition.id
                assert version.version == row["version"]
                assert row["source"].endswith(".json")
                assert row["source_version_id"] in (100, 101, 102)
        assert {(e["definition_id"], e["version_id"]) for e in env.fake.ledger("tenant-1")} == {
            (r["target_definition_id"], r["target_version_id"]) for r in ids["tenant-1"]
        }


async def test_a_tenant_that_refuses_describe_is_not_checked_and_not_blocked(
    tmp_path: Path,
) -> None:
    """Describe and the custom object listing answering 403: nothing is blocked, and the report
    notes what was not checked."""
    sources = str(write_sources(tmp_path / "src"))
    async with running_fake(fleet(schema_access="403")) as env:
        report = await migrate(env.settings, MigrateOptions(sources=[sources]))
        assert env.import_counts("tenant-2") == {REGIONAL: 1, VEHICLES: 1, PLAIN: 1}
        assert not _blocked(report, "tenant-2")
        notes = [n for n in report.notices if "not checked" in n]
        assert any("tenant-2" in n and "403" in n for n in notes)


async def test_warn_mode_sends_and_says_so(tmp_path: Path) -> None:
    """`reference_check = "warn"`: the documents are sent, and the report carries a warning line
    naming the task and the reference."""
    from dataclasses import replace

    sources = str(write_sources(tmp_path / "src"))
    async with running_fake(fleet()) as env:
        settings = replace(env.settings, reference_check="warn")
        report = await migrate(settings, MigrateOptions(sources=[sources]))
        assert env.import_counts("tenant-2") == {REGIONAL: 1, VEHICLES: 1, PLAIN: 1}
        assert any(
            "warning: task 'Export Accounts' names Account.Region__c" in n for n in report.notices
        )


async def test_off_mode_asks_nothing(tmp_path: Path) -> None:
    """`reference_check = "off"`: no describe and no custom object request at all."""
    from dataclasses import replace

    sources = str(write_sources(tmp_path / "src"))
    async with running_fake(fleet()) as env:
        settings = replace(env.settings, reference_check="off")
        await migrate(settings, MigrateOptions(sources=[sources]))
        asked = {h for (_t, h) in env.fake.calls}
        assert not asked & {"describe_object", "custom_object_definitions"}
        assert env.import_counts("tenant-2") == {REGIONAL: 1, VEHICLES: 1, PLAIN: 1}


async def test_one_describe_per_object_per_tenant_and_none_with_a_warm_cache(
    tmp_path: Path,
) -> None:
    """The check asks each tenant at most once per object per run, and a second run with the
    cache asks the tenant that has everything nothing more."""
    sources = str(write_sources(tmp_path / "src"))
    async with running_fake(fleet()) as env:
        await migrate(env.settings, MigrateOptions(sources=[sources], dry_run=True))
        first = dict(env.fake.calls)
        for tenant in ("tenant-1", "tenant-2"):
            assert first.get((tenant, "describe_object")) == 1  # Account only
            assert first.get((tenant, "custom_object_definitions")) == 1
        await migrate(env.settings, MigrateOptions(sources=[sources], dry_run=True))
        second = dict(env.fake.calls)
        assert second.get(("tenant-1", "describe_object")) == 1  # warm: nothing asked again
        assert second.get(("tenant-1", "custom_object_definitions")) == 1
        # What the cache does not show is asked again, once, before it blocks anything.
        assert second.get(("tenant-2", "describe_object")) == 2


async def test_diff_shows_per_cell_what_would_be_blocked(tmp_path: Path) -> None:
    """`diff` marks the cells whose source names something the tenant lacks, with the same
    line `migrate` would block it with; the other tenant's cells carry nothing."""
    from migrator.render.terminal import render_report
    from migrator.run.diff import diff_tenants

    sources = str(write_sources(tmp_path / "src"))
    async with running_fake(fleet()) as env:
        report = await diff_tenants(env.settings, [sources])
        cells = {(t, c.name): c for t, c in report.cells()}
        assert cells[("tenant-1", REGIONAL)].references == ()
        lines = cells[("tenant-2", REGIONAL)].references
        assert len(lines) == 1 and "task 'Export Accounts' names Account.Region__c" in lines[0]
        assert cells[("tenant-2", VEHICLES)].to_json()["references"] == list(
            cells[("tenant-2", VEHICLES)].references
        )
        assert "references" not in cells[("tenant-2", PLAIN)].to_json()
        assert f"tenant-2 / {REGIONAL}: would be blocked: task 'Export Accounts'" in render_report(
            report
        )


async def test_no_cache_asks_the_tenant_again_every_run(tmp_path: Path) -> None:
    """With `--no-cache` (use_cache=False) nothing is kept: each run describes again, once."""
    sources = str(write_sources(tmp_path / "src"))
    async with running_fake(fleet()) as env:
        for run in (1, 2):
            await migrate(
                env.settings, MigrateOptions(sources=[sources], dry_run=True, use_cache=False)
            )
            assert env.fake.calls[("tenant-1", "describe_object")] == run


def test_the_fake_reads_its_data_model_from_a_file_and_flags(tmp_path: Path) -> None:
    """`custom_fields`, `custom_objects` and `schema_access` in a config file, and the CLI flags."""
    from migrator.fake._cli import _parser as build_parser
    from migrator.fake._cli import build_config
    from migrator.fake._config import DEFAULT_CUSTOM_FIELDS, load_config

    path = tmp_path / "fake.toml"
    path.write_text(
        'schema_access = "403"\n[[tenants]]\nname = "a"\nclient_id = "i"\nclient_secret = "s"\n'
        'custom_fields = {Account = ["Region__c"]}\ncustom_objects = ["vehicle"]\n'
        '[[tenants]]\nname = "b"\nclient_id = "j"\nclient_secret = "t"\n'
    )
    config = load_config(str(path))
    assert config.schema_access == "403"
    assert dict(config.tenant("a").custom_fields) == {"Account": ("Region__c",)}
    assert config.tenant("a").custom_objects == ("vehicle",)
    assert dict(config.tenant("b").custom_fields) == dict(DEFAULT_CUSTOM_FIELDS)
    args = build_parser().parse_args(
        [
            "--tenants",
            "1",
            "--custom-field",
            "Account.Region__c",
            "--custom-object",
            "car",
            "--schema-403",
        ]
    )
    flagged = build_config(args)
    assert flagged.schema_access == "403"
    assert dict(flagged.tenants[0].custom_fields) == {"Account": ("Region__c",)}
    assert flagged.tenants[0].custom_objects == ("car",)


async def test_a_field_created_since_the_last_run_is_seen_at_once(tmp_path: Path) -> None:
    """The cache never says what a tenant lacks: once the field and the object exist in tenant-2,
    the next run asks again and sends what the first run blocked."""
    sources = str(write_sources(tmp_path / "src"))
    async with running_fake(fleet()) as env:
        first = await migrate(env.settings, MigrateOptions(sources=[sources]))
        assert set(_blocked(first, "tenant-2")) == {REGIONAL, VEHICLES}
        env.fake.set_tenant(
            "tenant-2", custom_fields={"Account": ["Region__c"]}, custom_objects=["vehicle"]
        )
        second = await migrate(env.settings, MigrateOptions(sources=[sources]))
        assert _blocked(second, "tenant-2") == {}
        assert env.import_counts("tenant-2") == {REGIONAL: 1, VEHICLES: 1, PLAIN: 1}
        assert env.fake.calls[("tenant-2", "describe_object")] == 2
        assert env.fake.calls[("tenant-2", "custom_object_definitions")] == 2


def test_the_html_page_lists_what_would_be_blocked() -> None:
    """The diff page names the tenant, the workflow and the blocked line (escaped)."""
    from migrator.core.drift import DriftReport, TenantDrift, WorkflowDrift
    from migrator.render.html import render_html

    line = (
        "task '<b>' names Account.Region__c, which tenant eu does not have (at $.tasks[0].object)"
    )
    cell = WorkflowDrift("Regional", "missing", references=(line,))
    page = render_html(DriftReport((TenantDrift("eu", (cell,)),)))
    assert "would be blocked: task &#x27;&lt;b&gt;&#x27; names Account.Region__c" in page or (
        "would be blocked: task '&lt;b&gt;' names Account.Region__c" in page
    )
