"""Request economy over real HTTP to the fake (issue 15): ids resolved a listing page at a time,
the content-hash cache, a deleted workflow imported again, tenants that start without waiting."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from migrator.core.journal_records import fold, scan
from migrator.core.profile import TenantProfile
from migrator.fake import FakeConfig
from migrator.run import migrate as migrate_module
from migrator.run.activate import activate_from_journal
from migrator.run.migrate import migrate
from migrator.run.options import MigrateOptions
from migrator.run.planning import build_plan
from migrator.run.resolve import RESOLVE_BATCH
from migrator.run.tenant import TenantRun
from migrator.store.cache import CACHE_FILE
from migrator.store.journal import Journal
from migrator.store.profiles import cache_root, save_profile
from tests.builders import small_export
from tests.helpers import Env, running_fake

pytestmark = pytest.mark.anyio

T1 = "tenant-1"


def write_sources(
    folder: Path, count: int, *, prefix: str = "Flow", file_refs: bool = True
) -> list[str]:
    """`count` new workflows with distinct names (and so distinct contents), one file each;
    `file_refs=False`: the Iterate task names its object, not the Export task's file."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        doc = small_export(f"{prefix} {i:03d}")
        doc["workflow"]["version"] = "0.0.1"
        if not file_refs:
            doc["tasks"][1]["object"] = "Subscription"
        (folder / f"{prefix.lower()}-{i:03d}.json").write_text(json.dumps(doc))
        names.append(doc["workflow"]["name"])
    return names


def write_versions(folder: Path, name: str, count: int) -> None:
    """`count` versions of one workflow, each with different content."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, count + 1):
        doc = small_export(name)
        doc["workflow"]["version"] = f"0.0.{i}"
        doc["tasks"][2]["parameters"]["count"] = str(1000 + i)
        (folder / f"v{i}.json").write_text(json.dumps(doc))


def calls(env: Env, tenant: str = T1) -> dict[str, int]:
    return {h: n for (t, h), n in env.fake.calls.items() if t == tenant}


def journal_state(path: Path) -> dict[Any, Any]:
    return fold(scan(path.read_bytes()).records)


def doctored(env: Env, **learned: Any) -> None:
    """Save tenant-1's profile as `migrator doctor --write --save` would have learned it."""
    profile = TenantProfile(**{"rewrite_file_refs": True, **learned})
    save_profile(env.settings, env.settings.tenants[T1], profile)


@asynccontextmanager
async def fake_with(**knobs: Any) -> AsyncIterator[Env]:
    async with running_fake(FakeConfig.demo(2, **knobs), max_concurrency=1) as env:
        yield env


@pytest.mark.parametrize("answer", ["definition", "version"])
async def test_new_workflows_cost_one_request_each(tmp_path: Path, answer: str) -> None:
    """60 new workflows into an empty tenant take 60 imports and 3 listing pages (planning and
    two resolving batches), whichever id the import answers with; report and journal carry every
    import's definition and version ids as the tenant holds them."""
    names = write_sources(tmp_path / "src", 60)
    journal = tmp_path / "j.jsonl"
    async with fake_with(import_response_id=answer) as env:
        report = await migrate(
            env.settings,
            MigrateOptions(sources=[str(tmp_path / "src")], tenants=[T1], journal=str(journal)),
        )
        assert report.ok and report.summary()["imported"] == 60
        assert calls(env) == {"import_workflow": 60, "list_workflows": 3}
        assert sum(calls(env).values()) / 60 <= 1.1
        ledger = {e["name"]: e for e in env.imports(T1)}
        assert set(ledger) == set(names)
        for item in report.items:
            landed = ledger[item.workflow_name]
            assert item.target_workflow_id == landed["definition_id"]
            assert item.target_version_id == landed["version_id"]
            assert item.version == "0.0.1"
        records = scan(journal.read_bytes()).records
        assert sum(r.type == "resolved" for r in records) == 60
        for st in journal_state(journal).values():
            landed = ledger[st.name]
            assert st.status == "done"
            assert (st.target_definition_id, st.target_version_id) == (
                landed["definition_id"],
                landed["version_id"],
            )


async def test_a_batch_is_resolved_every_fifty_imports(tmp_path: Path) -> None:
    """Resolving waits for at most RESOLVE_BATCH imports: the journal has a run of `resolved`
    records after the 50th commit, before the 51st intent."""
    write_sources(tmp_path / "src", RESOLVE_BATCH + 5)
    journal = tmp_path / "j.jsonl"
    async with fake_with() as env:
        await migrate(
            env.settings,
            MigrateOptions(sources=[str(tmp_path / "src")], tenants=[T1], journal=str(journal)),
        )
    types = [r.type for r in scan(journal.read_bytes()).records]
    first_resolved = types.index("resolved")
    assert types[:first_resolved].count("committed") == RESOLVE_BATCH
    assert types[:first_resolved].count("intent") == RESOLVE_BATCH


@pytest.mark.parametrize(
    ("answer", "profile", "listings"),
    [
        ("definition", None, 3),  # planning, the create's name lookup, the versions' batch
        ("version", None, 3),
        ("definition", "definition", 2),  # the answer is the definition: no name lookup
        ("version", "version", 3),  # the answer is the version: the definition still by name
    ],
)
async def test_later_versions_resolve_the_definition_at_once(
    tmp_path: Path, answer: str, profile: str | None, listings: int
) -> None:
    """A new workflow with three versions: the create's definition id is needed by the next
    version at once (one `name=` lookup, or none when the tenant profile says the import answer
    is the definition's id); the versions' ids come from one batch."""
    write_versions(tmp_path / "src", "Tri", 3)
    async with fake_with(import_response_id=answer) as env:
        if profile is not None:
            save_profile(
                env.settings,
                env.settings.tenants[T1],
                TenantProfile(import_response_id=profile),
            )
        report = await migrate(
            env.settings, MigrateOptions(sources=[str(tmp_path / "src")], tenants=[T1])
        )
        assert report.ok and report.summary()["imported"] == 3
        assert calls(env) == {
            "import_workflow": 1,
            "import_version": 2,
            "list_workflows": listings,
        }
        ledger = {e["version"]: e for e in env.imports(T1)}
        for item in report.items:
            assert item.version is not None
            assert item.target_workflow_id == ledger[item.version]["definition_id"]
            assert item.target_version_id == ledger[item.version]["version_id"]


class DroppingResolved:
    """A journal that loses every `resolved` record: a run killed after its imports were
    committed and before their ids were resolved."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    def __getattr__(self, name: str) -> Any:
        return getattr(self._journal, name)

    async def append(self, type_: str, **fields: Any) -> None:
        if type_ != "resolved":
            await self._journal.append(type_, **fields)


@asynccontextmanager
async def dropping_resolved(path: str, fields: Any, state: Any = None) -> AsyncIterator[Any]:
    async with Journal.open(path, fields, state=state) as journal:
        yield DroppingResolved(journal)


async def test_committed_without_ids_is_activated_and_never_sent_again(tmp_path: Path) -> None:
    """Imports committed without their ids (the run ended before resolving them) are done for a
    re-run (nothing sent again) and `migrator activate` finds their definitions by name."""
    write_sources(tmp_path / "src", 4)
    journal = tmp_path / "j.jsonl"
    options = MigrateOptions(sources=[str(tmp_path / "src")], tenants=[T1], journal=str(journal))
    async with fake_with(import_response_id="version") as env:
        first = await migrate(env.settings, options, journal_factory=dropping_resolved)
        assert first.summary()["imported"] == 4
        states = journal_state(journal)
        assert all(st.status == "done" for st in states.values())
        assert all(st.target_definition_id is None for st in states.values())
        again = await migrate(env.settings, options)
        assert again.summary()["skipped"] == 4
        assert len(env.imports(T1)) == 4
        report = await activate_from_journal(env.settings, str(journal), [T1])
        assert [i.status for i in report.items] == ["activated"] * 4
        for entry in env.imports(T1):
            definition = env.fake.state.tenants[T1].definitions[entry["definition_id"]]
            assert definition.active_version_id == entry["version_id"]


async def test_a_workflow_deleted_since_is_imported_again(tmp_path: Path) -> None:
    """With the same journal, a workflow deleted from the tenant since it was imported is sent
    again (the journal records it gone, then done with its new ids) instead of reported done.

    The fake forgets Idempotency-Keys at once here: the key a create after a deletion needs is
    issue 14's (core/plan.py), not this test's."""
    write_sources(tmp_path / "src", 3)
    journal = tmp_path / "j.jsonl"
    options = MigrateOptions(sources=[str(tmp_path / "src")], tenants=[T1], journal=str(journal))
    async with fake_with(idempotency_ttl=1e-6) as env:
        await migrate(env.settings, options)
        gone = next(e for e in env.imports(T1) if e["name"] == "Flow 001")
        env.fake.state.delete_definition(T1, gone["definition_id"])
        second = await migrate(env.settings, options)
        by_name = {i.workflow_name: i for i in second.items}
        assert by_name["Flow 001"].status == "imported"
        assert {by_name["Flow 000"].status, by_name["Flow 002"].status} == {"skipped"}
        again = next(e for e in env.imports(T1)[3:] if e["name"] == "Flow 001")
        assert by_name["Flow 001"].target_workflow_id == again["definition_id"]
        states = {st.name: st for st in journal_state(journal).values()}
        assert states["Flow 001"].status == "done"
        assert states["Flow 001"].target_definition_id == again["definition_id"]
        types = [r.type for r in scan(journal.read_bytes()).records]
        assert types.count("gone") == 1
        third = await migrate(env.settings, options)
        assert third.summary()["skipped"] == 3 and len(env.imports(T1)) == 4


async def test_rerun_with_a_new_journal_exports_nothing(tmp_path: Path) -> None:
    """An unchanged tenant read again with a new journal costs one listing page and one versions
    list per definition and no export (the cache knows what the imports sent, the profile saying
    the tenant rewrites file references); `--no-cache` exports every version; a cold cache
    exports each version once."""
    write_sources(tmp_path / "src", 10)
    src = [str(tmp_path / "src")]
    async with fake_with() as env:
        doctored(env)
        await migrate(env.settings, MigrateOptions(sources=src, tenants=[T1]))
        env.fake.calls.clear()
        second = await migrate(
            env.settings,
            MigrateOptions(sources=src, tenants=[T1], journal=str(tmp_path / "new.jsonl")),
        )
        assert second.summary()["skipped"] == 10
        assert calls(env) == {"list_workflows": 1, "list_versions": 10}
        env.fake.calls.clear()
        await migrate(env.settings, MigrateOptions(sources=src, tenants=[T1], use_cache=False))
        assert calls(env) == {"list_workflows": 1, "list_versions": 10, "export_workflow": 10}
        for path in cache_root(env.settings).glob(CACHE_FILE + "*"):
            path.unlink()
        env.fake.calls.clear()
        await migrate(env.settings, MigrateOptions(sources=src, tenants=[T1]))
        assert calls(env).get("export_workflow") == 10
        env.fake.calls.clear()
        await migrate(env.settings, MigrateOptions(sources=src, tenants=[T1]))
        assert calls(env).get("export_workflow", 0) == 0


async def test_a_version_changed_since_is_exported_again(tmp_path: Path) -> None:
    """The cache answers only for a version as it stood: one edited in the tenant since (a new
    updatedAt) is exported again, found different, and the source imported as a new version."""
    write_sources(tmp_path / "src", 2)
    src = [str(tmp_path / "src")]
    now = [1_800_000_000.0]
    async with fake_with(clock=lambda: now[0]) as env:
        doctored(env)
        await migrate(env.settings, MigrateOptions(sources=src, tenants=[T1]))
        edited = env.imports(T1)[0]

        def change(doc: dict[str, Any]) -> None:
            doc["tasks"][0]["name"] = "Edited by hand"

        now[0] += 60.0
        env.fake.state.alter_version(T1, edited["version_id"], change)
        env.fake.calls.clear()
        report = await migrate(env.settings, MigrateOptions(sources=src, tenants=[T1]))
        assert calls(env).get("export_workflow") == 1
        assert report.summary()["imported"] == 1
        assert {i.workflow_name for i in report.items if i.status == "imported"} == {edited["name"]}


async def test_tenants_start_without_waiting_for_each_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --strict a tenant executes as soon as its own plan is ready: tenant-1 imports
    while tenant-2's plan is held until tenant-1's first commit (two phases would never end)."""
    write_sources(tmp_path / "src", 2)
    first_commit = anyio.Event()

    async def held_plan(run: TenantRun) -> None:
        if run.tenant.name == "tenant-2":
            await first_commit.wait()
        await build_plan(run)

    class Watching(DroppingResolved):
        async def append(self, type_: str, **fields: Any) -> None:
            await self._journal.append(type_, **fields)
            if type_ == "committed" and fields.get("tenant") == T1:
                first_commit.set()

    @asynccontextmanager
    async def watching(path: str, fields: Any, state: Any = None) -> AsyncIterator[Any]:
        async with Journal.open(path, fields, state=state) as journal:
            yield Watching(journal)

    monkeypatch.setattr(migrate_module, "build_plan", held_plan)
    async with fake_with() as env:
        with anyio.fail_after(60):
            report = await migrate(
                env.settings,
                MigrateOptions(sources=[str(tmp_path / "src")], journal=str(tmp_path / "j")),
                journal_factory=watching,
            )
        assert report.summary()["imported"] == 4


async def test_the_legacy_path_the_bench_compares_with(tmp_path: Path) -> None:
    """The bench's "today" variant (bench/legacy_client.py) spends what migrator spent before:
    per create an import, a `name=` lookup and a versions list."""
    from bench.legacy_client import migrate_as_before

    write_sources(tmp_path / "src", 5)
    async with fake_with() as env:
        imported = await migrate_as_before(env.settings, [str(tmp_path / "src")], [T1])
        assert len(imported) == 5
        assert calls(env) == {"import_workflow": 5, "list_workflows": 6, "list_versions": 5}
        ledger = {e["name"]: e for e in env.imports(T1)}
        for item in imported:
            assert item.version_id == ledger[item.name]["version_id"]


async def test_a_listing_that_shows_new_workflows_last_costs_a_lookup_each_at_most(
    tmp_path: Path,
) -> None:
    """When the listing puts the new definitions behind many others (a large tenant listed
    oldest first), a batch stops reading once the pages read equal the ids still missing and
    looks the rest up by name: at most two requests per import to resolve, ids still right."""
    write_sources(tmp_path / "src", 3)
    async with fake_with() as env:
        ts = env.fake.state.tenants[T1]
        start = ts.next_id
        ts.next_id = 10_000_000  # the tenant's own workflows get higher ids: listed first
        for i in range(150):
            env.fake.state.add_workflow(T1, small_export(f"Other {i:03d}"))
        ts.next_id = start
        report = await migrate(
            env.settings, MigrateOptions(sources=[str(tmp_path / "src")], tenants=[T1])
        )
        assert report.summary()["imported"] == 3
        # planning reads the 3 pages; the batch reads 3 (3 names missing), then 3 lookups
        assert calls(env) == {"import_workflow": 3, "list_workflows": 3 + 3 + 3}
        ledger = {e["name"]: e for e in env.imports(T1)}
        for item in report.items:
            assert item.target_workflow_id == ledger[item.workflow_name]["definition_id"]
            assert item.target_version_id == ledger[item.workflow_name]["version_id"]


async def test_verify_uses_the_cache_unless_told_not_to(tmp_path: Path) -> None:
    """`verify` after a migration exports nothing the cache knows (every item still verified);
    with `--no-cache` (use_cache=False) it exports every version it compares."""
    from migrator.run.verify import verify_tenants

    write_sources(tmp_path / "src", 4)
    src = [str(tmp_path / "src")]
    async with fake_with() as env:
        doctored(env)
        await migrate(env.settings, MigrateOptions(sources=src, tenants=[T1]))
        env.fake.calls.clear()
        report = await verify_tenants(env.settings, src, [T1])
        assert [i.status for i in report.items] == ["verified"] * 4
        assert calls(env).get("export_workflow", 0) == 0
        env.fake.calls.clear()
        report = await verify_tenants(env.settings, src, [T1], use_cache=False)
        assert [i.status for i in report.items] == ["verified"] * 4
        assert calls(env).get("export_workflow") == 4


async def test_an_import_with_file_references_is_cached_only_for_a_tenant_known_to_keep_them(
    tmp_path: Path,
) -> None:
    """Import renumbers tasks; whether it rewrites `Name__<taskId>` file references is an open
    question (spec §9.1), so without a profile saying it does, what a document with file
    references landed as is learned by one export (then cached); one without needs none."""
    write_sources(tmp_path / "src", 3, prefix="Refs")
    write_sources(tmp_path / "src", 2, prefix="Plain", file_refs=False)
    src = [str(tmp_path / "src")]
    async with fake_with() as env:
        await migrate(env.settings, MigrateOptions(sources=src, tenants=[T1]))
        env.fake.calls.clear()
        again = await migrate(env.settings, MigrateOptions(sources=src, tenants=[T1]))
        assert again.summary()["skipped"] == 5
        assert calls(env) == {"list_workflows": 1, "list_versions": 5, "export_workflow": 3}
        env.fake.calls.clear()
        await migrate(env.settings, MigrateOptions(sources=src, tenants=[T1]))
        assert calls(env) == {"list_workflows": 1, "list_versions": 5}
