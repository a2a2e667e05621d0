"""End-to-end migrations over real HTTP against the built-in fake Zuora on 127.0.0.1 (issue 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from migrator.core.canonical import canonical_hash
from migrator.core.document import parse_document
from migrator.core.errors import MigratorError
from migrator.run.migrate import migrate
from migrator.run.options import MigrateOptions
from tests.builders import sample_docs
from tests.conftest import SAMPLES, SHARED_CORPUS
from tests.helpers import numeric_version, running_fake

pytestmark = pytest.mark.anyio


async def test_samples_land_exactly_once_in_every_tenant(tmp_path: Path) -> None:
    """Every sample is imported once per tenant, and both versions of a two-version workflow land in ascending order under one definition."""
    docs = sample_docs()
    names = {d.name for d in docs}
    async with running_fake() as env:
        report = await migrate(
            env.settings, MigrateOptions(sources=[str(SAMPLES)], journal=str(tmp_path / "j.jsonl"))
        )
        assert report.ok, report.to_json()
        for tenant in ("tenant-1", "tenant-2", "tenant-3"):
            ledger = env.imports(tenant)
            assert len(ledger) == len({d.content_hash for d in docs})
            assert {e["name"] for e in ledger} == names
            # The one name with two documents: one definition, versions increasing in ledger order.
            counts = env.import_counts(tenant)
            twice = [n for n, c in counts.items() if c > 1]
            assert len(twice) == 1
            entries = [e for e in ledger if e["name"] == twice[0]]
            assert len({e["definition_id"] for e in entries}) == 1
            assert numeric_version(entries[0]["version"]) < numeric_version(entries[1]["version"])
            # Every key is distinct: nothing went twice.
            assert len({e["idempotency_key"] for e in ledger}) == len(ledger)


async def test_resumed_run_reimports_nothing(tmp_path: Path) -> None:
    """Running the same migration again with the same journal imports nothing and reports every item skipped."""
    journal = str(tmp_path / "j.jsonl")
    async with running_fake() as env:
        first = await migrate(env.settings, MigrateOptions(sources=[str(SAMPLES)], journal=journal))
        before = len(env.fake.ledger())
        second = await migrate(
            env.settings, MigrateOptions(sources=[str(SAMPLES)], journal=journal)
        )
        assert len(env.fake.ledger()) == before
        assert first.summary()["imported"] == before
        assert second.summary()["imported"] == 0
        assert second.summary()["skipped"] == len(second.items)


async def test_rerun_without_journal_is_a_no_op(tmp_path: Path) -> None:
    """A second run with no journal at all creates no version: identical content on the target is skipped."""
    async with running_fake() as env:
        await migrate(env.settings, MigrateOptions(sources=[str(SAMPLES)], tenants=["tenant-1"]))
        before = len(env.fake.ledger())
        again = await migrate(
            env.settings, MigrateOptions(sources=[str(SAMPLES)], tenants=["tenant-1"])
        )
        assert len(env.fake.ledger()) == before
        assert all(i.status == "skipped" and "identical" in (i.reason or "") for i in again.items)


async def test_dry_run_writes_nothing() -> None:
    """A dry run reports a plan for every document and tenant and makes no write call."""
    async with running_fake() as env:
        report = await migrate(env.settings, MigrateOptions(sources=[str(SAMPLES)], dry_run=True))
        assert env.fake.ledger() == []
        assert report.summary()["planned"] == len(report.items) > 0
        assert {i.action for i in report.items} == {"create", "new_version"}


async def test_existing_definition_gets_a_new_version(tmp_path: Path) -> None:
    """A workflow that already exists in the target receives a new version numbered above the target's highest."""
    docs = sample_docs()
    doc = next(d for d in docs if not d.calls)
    async with running_fake() as env:
        existing = json.loads(json.dumps(doc.data))
        existing["tasks"][0]["name"] = "changed on the target"
        def_id, _ = env.fake.state.add_workflow("tenant-1", existing, version="7.2.9")
        report = await migrate(
            env.settings, MigrateOptions(sources=[doc.source], tenants=["tenant-1"])
        )
        assert report.ok
        [entry] = env.imports("tenant-1")
        assert entry["definition_id"] == def_id
        assert entry["version"] == "7.2.10"  # one above the target's highest, numerically
        [item] = report.items
        assert item.action == "new_version" and item.target_workflow_id == def_id


async def test_activate_flag_makes_imports_active() -> None:
    """With activation 'always' the imported version is the definition's active one; by default it stays inactive."""
    doc = next(d for d in sample_docs() if not d.calls)
    async with running_fake() as env:
        await migrate(env.settings, MigrateOptions(sources=[doc.source], tenants=["tenant-1"]))
        await migrate(
            env.settings,
            MigrateOptions(sources=[doc.source], tenants=["tenant-2"], activation="always"),
        )
        inactive = env.fake.state.list_definitions("tenant-1", {})
        active = env.fake.state.list_definitions("tenant-2", {})
        d1 = env.fake.state.definition_json("tenant-1", inactive[0])
        d2 = env.fake.state.definition_json("tenant-2", active[0])
        assert (
            d1.get("active_version") in (None, {}) or d1["active_version"].get("status") != "Active"
        )
        assert d2["active_version"]["status"] == "Active"


def corpus_files() -> list[Path]:
    if not SHARED_CORPUS.is_dir():
        return []
    return sorted(SHARED_CORPUS.glob("*.json"))


@pytest.mark.skipif(
    not SHARED_CORPUS.is_dir(),
    reason="../shared/corpus/real is not present (it lives outside the repo)",
)
async def test_real_corpus_imports_and_round_trips(tmp_path: Path) -> None:
    """Every real export with tasks imports, and its export from the target equals the source up to ids; the empty skeleton is refused with a clear error."""
    files = corpus_files()
    async with running_fake() as env:
        report = await migrate(
            env.settings,
            MigrateOptions(sources=[str(SHARED_CORPUS)], tenants=["tenant-1"], verify=True),
        )
        by_source = {Path(i.source).name: i for i in report.items}
        skeleton = by_source.pop("zca-workflow-skeleton.json")
        assert skeleton.status == "failed"
        assert "zca-workflow-skeleton.json" in (skeleton.error or "") and "tasks" in (
            skeleton.error or ""
        )
        assert len(by_source) == len(files) - 1 == 16
        for name, item in by_source.items():
            assert item.status in ("imported", "skipped"), (name, item)
            if item.status == "imported":
                assert item.verified is True, name
        # Round trip, checked independently of --verify: export each landed version and compare.
        state = env.fake.state
        for item in report.items:
            if item.status != "imported":
                continue
            raw = Path(item.source).read_bytes()
            exported = state.export("tenant-1", item.target_workflow_id, item.version)
            assert canonical_hash(exported) == parse_document(raw, item.source).content_hash, (
                item.source
            )


async def test_rerun_with_activate_switches_on_identical_content() -> None:
    """A re-run with --activate after an inactive import creates no version but makes the landed versions active."""
    async with running_fake() as env:
        await migrate(env.settings, MigrateOptions(sources=[str(SAMPLES)], tenants=["tenant-1"]))
        before = len(env.fake.ledger())
        again = await migrate(
            env.settings,
            MigrateOptions(sources=[str(SAMPLES)], tenants=["tenant-1"], activation="always"),
        )
        assert len(env.fake.ledger()) == before
        assert again.ok and all(i.status == "skipped" for i in again.items)
        state = env.fake.state
        for def_id in state.list_definitions("tenant-1", {}):
            d = state.definition_json("tenant-1", def_id)
            assert d["status"] == "Active" and d["active_version"], d["name"]
        # The highest version of the two-version workflow is the active one.
        credit = next(
            state.definition_json("tenant-1", i)
            for i in state.list_definitions("tenant-1", {})
            if state.definition_json("tenant-1", i)["name"] == "Credit Check on New Order"
        )
        assert credit["active_version"]["version"] == max(
            (v["version"] for v in state.list_versions("tenant-1", credit["id"])),
            key=numeric_version,
        )


async def test_resume_with_activate_switches_on_what_the_journal_imported(tmp_path: Path) -> None:
    """Re-running with the same journal and --activate makes the versions imported earlier active, importing nothing."""
    journal = str(tmp_path / "j.jsonl")
    async with running_fake() as env:
        await migrate(
            env.settings,
            MigrateOptions(sources=[str(SAMPLES)], tenants=["tenant-1"], journal=journal),
        )
        before = len(env.fake.ledger())
        again = await migrate(
            env.settings,
            MigrateOptions(
                sources=[str(SAMPLES)], tenants=["tenant-1"], journal=journal, activation="always"
            ),
        )
        assert again.ok and len(env.fake.ledger()) == before
        state = env.fake.state
        assert all(
            state.definition_json("tenant-1", i)["status"] == "Active"
            for i in state.list_definitions("tenant-1", {})
        )


async def test_unreadable_plan_file_leaves_the_journal_untouched(tmp_path: Path) -> None:
    """A --plan file that cannot be read stops the run before the journal records anything."""
    journal = tmp_path / "j.jsonl"
    async with running_fake() as env:
        with pytest.raises(MigratorError, match="cannot read the plan"):
            await migrate(
                env.settings,
                MigrateOptions(
                    sources=[str(SAMPLES)],
                    journal=str(journal),
                    plan_file=str(tmp_path / "nope.json"),
                ),
            )
    assert not journal.exists() or journal.read_bytes() == b""
