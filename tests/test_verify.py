"""`migrator verify` and `migrate --verify` over real HTTP against the built-in fake (issue 6).

Verify rebuilds each tenant's payload, hashes it and looks for a version with that content.
"""

from __future__ import annotations

import gc
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from migrator.core.config import Secret
from migrator.fake import ApiError, FakeConfig
from migrator.render.outcomes import render_table
from migrator.run.inputs import read_sources
from migrator.run.migrate import migrate
from migrator.run.options import MigrateOptions
from migrator.run.verify import all_verified, verify_tenants
from migrator.store.journal import read_journal
from migrator.store.workspace import OutcomeLog
from tests.builders import small_export
from tests.conftest import SAMPLES
from tests.helpers import (
    Env,
    run_cli,
    running_fake,
    traced_peak,
    traced_peak_async,
)

pytestmark = pytest.mark.anyio

TENANTS = ("tenant-1", "tenant-2", "tenant-3")


def landed_version_id(env: Env, tenant: str, name: str, version: str) -> int:
    state = env.fake.state
    [def_id] = [
        d
        for d in state.list_definitions(tenant, {})
        if state.definition_json(tenant, d)["name"] == name
    ]
    return next(v["id"] for v in state.list_versions(tenant, def_id) if v["version"] == version)


async def test_verify_after_migration_matches_every_item(tmp_path: Path) -> None:
    """After migrating the samples into three tenants, verify finds each document as a landed version."""
    async with running_fake() as env:
        report = await migrate(env.settings, MigrateOptions(sources=[str(SAMPLES)]))
        assert report.ok, report.to_json()
        checked = await verify_tenants(env.settings, [str(SAMPLES)])
        assert all_verified(checked), [i for i in checked.items if i.status != "verified"]
        assert len(checked.items) == len(report.items)
        landed = {(i.tenant, i.source): (i.target_workflow_id, i.version) for i in report.items}
        for item in checked.items:
            assert item.verified is True
            assert (item.target_workflow_id, item.version) == landed[(item.tenant, item.source)]
        # The caller is verified with its callee's id in each tenant, which differs per tenant.
        callers = [i for i in checked.items if i.workflow_name == "Quote Enrichment"]
        assert {i.tenant for i in callers} == set(TENANTS)


async def test_verify_flags_exactly_the_altered_version(tmp_path: Path) -> None:
    """Altering one landed version on the target makes verify report that item alone as differing, with exit code 1."""
    async with running_fake() as env:
        await migrate(env.settings, MigrateOptions(sources=[str(SAMPLES)]))
        version_id = landed_version_id(env, "tenant-2", "Usage Overage Alert", "0.0.7")

        def alter(doc: dict[str, Any]) -> None:
            doc["tasks"][0]["name"] = "edited by hand on the target"

        env.fake.state.alter_version("tenant-2", version_id, alter)
        checked = await verify_tenants(env.settings, [str(SAMPLES)])
        bad = [i for i in checked.items if i.status != "verified"]
        assert [(i.tenant, i.workflow_name, i.status) for i in bad] == [
            ("tenant-2", "Usage Overage Alert", "differs")
        ]
        assert bad[0].verified is False and bad[0].version == "0.0.7"
        assert "highest version 0.0.7" in (bad[0].reason or "")
        assert not all_verified(checked)

        run = await run_cli(env, tmp_path, "verify", str(SAMPLES), "--json", "--report", "r.json")
        assert run.code == 1, run.err
        data = orjson.loads(run.out)
        assert data == orjson.loads((tmp_path / "r.json").read_bytes())
        assert data["summary"]["differs"] == 1
        assert data["summary"]["verified"] == len(data["items"]) - 1
        [flagged] = [i for i in data["items"] if i["status"] != "verified"]
        assert flagged["tenant"] == "tenant-2" and flagged["workflow_name"] == "Usage Overage Alert"

        # Only the unaltered tenants: everything verifies, exit code 0.
        run = await run_cli(
            env, tmp_path, "verify", str(SAMPLES), "--tenant", "tenant-1", "--tenant", "tenant-3"
        )
        assert run.code == 0, run.out + run.err
        assert "migrator verify: ok" in run.out


async def test_verify_reports_missing_workflows(tmp_path: Path) -> None:
    """A tenant that never received the documents reports each one as missing, with exit code 1."""
    async with running_fake() as env:
        await migrate(env.settings, MigrateOptions(sources=[str(SAMPLES)], tenants=["tenant-1"]))
        checked = await verify_tenants(env.settings, [str(SAMPLES)], ["tenant-1", "tenant-2"])
        by_tenant = {
            t: {i.status for i in checked.items if i.tenant == t} for t in ("tenant-1", "tenant-2")
        }
        assert by_tenant == {"tenant-1": {"verified"}, "tenant-2": {"missing"}}
        run = await run_cli(env, tmp_path, "verify", str(SAMPLES), "--tenant", "tenant-2")
        assert run.code == 1
        assert "missing" in run.out


async def test_verify_unknown_tenant_is_fatal(tmp_path: Path) -> None:
    """Naming a tenant the config does not have is a usage error: exit code 2 and one line on stderr."""
    async with running_fake() as env:
        run = await run_cli(env, tmp_path, "verify", str(SAMPLES), "--tenant", "nowhere")
        assert run.code == 2
        assert "unknown tenant 'nowhere'" in run.err


async def test_migrate_verify_records_verified_in_journal_and_report(tmp_path: Path) -> None:
    """`migrate --verify` checks each import as it lands: the report marks it verified and the journal holds an ok `verified` record."""
    journal = tmp_path / "j.jsonl"
    async with running_fake() as env:
        report = await migrate(
            env.settings,
            MigrateOptions(
                sources=[str(SAMPLES)],
                tenants=["tenant-1", "tenant-3"],
                journal=str(journal),
                verify=True,
            ),
        )
        assert report.ok
        imported = [i for i in report.items if i.status == "imported"]
        assert imported and all(i.verified is True for i in imported)
        assert all(i["verified"] is True for i in report.to_json()["items"])
        view = read_journal(journal)
        verified = [r for r in view.records if r.type == "verified"]
        assert len(verified) == len(imported)
        assert all(r.get("ok") is True and r.get("detail") == "" for r in verified)
        assert all(st.verified is True for st in view.state.values())


async def test_verify_tenant_with_rejected_credentials_fails_alone(tmp_path: Path) -> None:
    """A tenant whose credentials are refused reports each item as failed with the reason, while the other tenants are still checked."""
    source = str(SAMPLES / "06-usage-overage-alert.json")
    async with running_fake() as env:
        await migrate(env.settings, MigrateOptions(sources=[source], tenants=["tenant-1"]))
        tenants = dict(env.settings.tenants)
        tenants["tenant-2"] = replace(tenants["tenant-2"], client_secret=Secret("not-the-secret"))
        checked = await verify_tenants(
            replace(env.settings, tenants=tenants), [source], ["tenant-1", "tenant-2"]
        )
        status = {i.tenant: i for i in checked.items}
        assert status["tenant-1"].status == "verified"
        assert status[
            "tenant-2"
        ].status == "failed" and "could not check the tenant: tenant tenant-2:" in (
            status["tenant-2"].error or ""
        )
        assert "not-the-secret" not in checked.dumps().decode()


async def test_migrate_verify_records_a_mismatch(tmp_path: Path) -> None:
    """When the target stores something other than what was sent (a fake that does not rewrite file references), `migrate --verify` records verified false with both hashes."""
    journal = tmp_path / "j.jsonl"
    source = str(SAMPLES / "02-nightly-trial-expiry-reminders.json")
    async with running_fake(FakeConfig.demo(1, rewrite_file_refs=False)) as env:
        report = await migrate(
            env.settings, MigrateOptions(sources=[source], journal=str(journal), verify=True)
        )
        [item] = report.items
        assert item.status == "imported" and item.verified is False
        assert not report.ok  # the run's exit status says so too
        assert "--verify: exported content hash" in render_table(report)
        [record] = [r for r in read_journal(journal).records if r.type == "verified"]
        assert record.get("ok") is False and "differs from sent" in record.get("detail")
        checked = await verify_tenants(env.settings, [source])
        assert [i.status for i in checked.items] == ["differs"]


async def test_migrate_verify_export_refused_keeps_the_import(tmp_path: Path) -> None:
    """When the export for --verify is refused after an import landed, the item stays imported (verified false, with the reason) and the workflow's next version is still sent."""
    journal = tmp_path / "j.jsonl"
    sources = [str(SAMPLES / "04-credit-check-v1.json"), str(SAMPLES / "05-credit-check-v1-1.json")]
    async with running_fake(FakeConfig.demo(1)) as env:
        state = env.fake.state
        real_export = state.export
        refused: list[str | None] = []

        def export(tenant: str, definition_id: int, version: str | None) -> dict[str, Any]:
            if version == "1.0.0" and not refused and state.ledger(tenant):
                refused.append(version)
                raise ApiError(
                    404,
                    {"errors": [{"title": "not yet visible", "code": "not_found", "status": 404}]},
                )
            return real_export(tenant, definition_id, version)

        state.export = export  # type: ignore[method-assign]
        report = await migrate(
            env.settings, MigrateOptions(sources=sources, journal=str(journal), verify=True)
        )
        assert refused == ["1.0.0"]
        by_version = {i.version: i for i in report.items}
        assert [e["version"] for e in env.imports("tenant-1")] == ["1.0.0", "1.1.0"]
        assert by_version["1.0.0"].status == "imported" and by_version["1.0.0"].verified is False
        assert "could not export version 1.0.0" in (by_version["1.0.0"].reason or "")
        assert by_version["1.1.0"].status == "imported" and by_version["1.1.0"].verified is True
        done = {st.version: st for st in read_journal(journal).state.values()}
        assert done["1.0.0"].status == "done" and done["1.0.0"].verified is False
        assert "not yet visible" in (done["1.0.0"].verify_detail or "")


def write_sources(directory: Path, count: int) -> Path:
    """`count` documents: half copies of one workflow ("Bound", which the test migrates, so each
    copy is read again, remapped and hashed: verified), half workflows the tenant lacks."""
    directory.mkdir()
    bound = orjson.dumps(small_export("Bound"))
    for i in range(count // 2):
        (directory / f"bound-{i:05d}.json").write_bytes(bound)
        (directory / f"other-{i:05d}.json").write_bytes(
            orjson.dumps(small_export(f"workflow {i:05d}"))
        )
    return directory


@pytest.mark.slow
async def test_verify_memory_does_not_grow_with_the_documents(tmp_path: Path) -> None:
    """Verifying 6,000 documents takes no more memory than verifying 1,000 (issue 4): they are
    streamed from the workspace and their outcomes written there, where a summary and an
    outcome of each in memory would take at least the 5,000 more summaries' size again."""
    small, large = 1_000, 6_000
    few = write_sources(tmp_path / "few", small)
    many = write_sources(tmp_path / "many", large)
    async with running_fake(FakeConfig.demo(1)) as env:
        first = few / "bound-00000.json"
        assert (await migrate(env.settings, MigrateOptions(sources=[str(first)]))).ok
        stores = {
            count: read_sources([str(directory)], env.settings)
            for count, directory in ((small, few), (large, many))
        }
        try:
            # What holding one summary per document takes.
            summaries, held = traced_peak(lambda: list(stores[large].iter_docs()))
            assert len(summaries) == large
            del summaries
            per_doc = held / large

            # The sources are read beforehand: reading them is not verify's to bound.
            reports: dict[int, Any] = {}
            peaks: dict[int, int] = {}
            for count, store in stores.items():
                reports[count], peaks[count] = await traced_peak_async(
                    lambda s=store: verify_tenants(env.settings, [], store=s)
                )
            growth = peaks[large] - peaks[small]
            assert growth < (large - small) * per_doc / 4, (peaks, per_doc)

            # The same outcomes as ever, read back from the workspace, in report order.
            for count, report in reports.items():
                row = report.per_tenant()["tenant-1"]
                assert (row["verified"], row["missing"]) == (count // 2, count // 2)
                assert not all_verified(report) and len(report.items) == count
                items = list(report.ordered())
                assert items == sorted(items, key=lambda i: (i.tenant, i.workflow_name, i.source))
                assert items[0].workflow_name == "Bound" and items[0].verified is True
                assert items[0].reason == "identical to version 0.0.2"
                last = f"workflow {count // 2 - 1:05d}"
                assert items[-1].workflow_name == last and items[-1].status == "missing"
        finally:
            for store in stores.values():
                store.close()


async def test_verify_report_keeps_its_workspace_until_dropped(tmp_path: Path) -> None:
    """The report reads its items from the workspace verify made: it stays open while the
    report is used, and goes with the report; a workspace passed in is the caller's to close,
    and one that already holds outcomes is refused rather than mixed into the report."""
    source = str(SAMPLES / "06-usage-overage-alert.json")
    async with running_fake(FakeConfig.demo(1)) as env:
        await migrate(env.settings, MigrateOptions(sources=[source]))
        report = await verify_tenants(env.settings, [source])
        assert isinstance(report.items, OutcomeLog)
        directory = report.items.workspace._dir
        assert os.path.isdir(directory)
        assert [(i.workflow_name, i.status) for i in report.items] == [
            ("Usage Overage Alert", "verified")
        ]
        assert orjson.loads(report.dumps())["items"][0]["status"] == "verified"
        del report
        gc.collect()
        assert not os.path.exists(directory)

        store = read_sources([source], env.settings)
        try:
            report = await verify_tenants(env.settings, [], store=store)
            assert isinstance(report.items, OutcomeLog) and report.items.workspace is store
            assert all_verified(report)
            with pytest.raises(ValueError, match="without outcomes"):
                await verify_tenants(env.settings, [], store=store)
            assert os.path.isdir(store._dir)
        finally:
            store.close()


async def test_verify_call_by_an_id_beyond_any_source_falls_back_to_the_name(
    tmp_path: Path,
) -> None:
    """A call whose workflow id is larger than any id can be (the workspace holds 64-bit ids) is
    found by its workflow name, as when it names no source: the caller still verifies."""
    callee, caller = SAMPLES / "09-price-lookup-service.json", SAMPLES / "10-quote-enrichment.json"
    async with running_fake(FakeConfig.demo(1)) as env:
        assert (await migrate(env.settings, MigrateOptions(sources=[str(callee), str(caller)]))).ok
        doc = orjson.loads(caller.read_bytes())
        [call] = [t for t in doc["tasks"] if t["action_type"] == "Execute::WorkflowTask"]
        call["parameters"]["workflow_id"] = str(1 << 70)
        edited = tmp_path / caller.name
        edited.write_bytes(orjson.dumps(doc))
        checked = await verify_tenants(env.settings, [str(callee), str(edited)])
        assert [(i.workflow_name, i.status) for i in checked.items] == [
            ("Price Lookup Service", "verified"),
            ("Quote Enrichment", "verified"),
        ]
