"""`migrator activate` and `--activation match` over real HTTP against the built-in fake (issue 6).

Import inactive everywhere first, then switch on exactly the journal's versions, once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from migrator.core.errors import JournalError
from migrator.core.versions import version_key
from migrator.run.activate import activate_from_journal
from migrator.run.migrate import migrate
from migrator.run.options import MigrateOptions
from migrator.store.journal import read_journal
from tests.conftest import SAMPLES
from tests.helpers import Env, run_cli, running_fake

pytestmark = pytest.mark.anyio

TENANTS = ("tenant-1", "tenant-2", "tenant-3")


def definitions(env: Env, tenant: str) -> dict[str, dict[str, Any]]:
    """The tenant's definitions by name, as GET /workflows/{id} shows them."""
    state = env.fake.state
    out = {}
    for def_id in state.list_definitions(tenant, {}):
        d = state.definition_json(tenant, def_id)
        out[d["name"]] = d
    return out


def done_items(journal: Path) -> dict[tuple[str, str], Any]:
    return {k: st for k, st in read_journal(journal).state.items() if st.status == "done"}


async def test_activate_switches_on_exactly_the_journal_versions(tmp_path: Path) -> None:
    """After an inactive import everywhere, activate makes each definition Active on the journal's highest version, and a second run changes nothing."""
    journal = tmp_path / "j.jsonl"
    async with running_fake() as env:
        report = await migrate(
            env.settings, MigrateOptions(sources=[str(SAMPLES)], journal=str(journal))
        )
        assert report.ok
        for tenant in TENANTS:
            assert all(
                d["status"] == "Inactive" and d["active_version"] is None
                for d in definitions(env, tenant).values()
            )
        done = done_items(journal)
        # Expected: per (tenant, definition), the highest committed version's id.
        expected: dict[tuple[str, int], tuple[int, str]] = {}
        for (tenant, _), st in done.items():
            key = (tenant, st.target_definition_id)
            if key not in expected or version_key(st.version) > version_key(expected[key][1]):
                expected[key] = (st.target_version_id, st.version)

        # A dry run reports the plan and switches nothing on.
        dry = await activate_from_journal(env.settings, str(journal), dry_run=True)
        assert dry.ok and {i.status for i in dry.items} == {"planned", "skipped"}
        assert all(
            d["active_version"] is None for t in TENANTS for d in definitions(env, t).values()
        )

        first = await activate_from_journal(env.settings, str(journal))
        assert first.ok, first.to_json()
        activated = [i for i in first.items if i.status == "activated"]
        assert {
            (i.tenant, i.target_workflow_id): (i.target_version_id, i.version) for i in activated
        } == expected
        # The lower Credit Check version is reported as left alone, in every tenant.
        superseded = [i for i in first.items if i.status == "skipped"]
        assert {(i.tenant, i.workflow_name, i.version) for i in superseded} == {
            (t, "Credit Check on New Order", "1.0.0") for t in TENANTS
        }
        for tenant in TENANTS:
            for d in definitions(env, tenant).values():
                assert d["status"] == "Active"
                assert (d["active_version"]["id"], d["active_version"]["version"]) == expected[
                    (tenant, d["id"])
                ]
        before = {t: definitions(env, t) for t in TENANTS}

        second = await activate_from_journal(env.settings, str(journal))
        assert second.ok
        assert {i.status for i in second.items} == {"skipped"}
        assert sum(i.reason == "already active" for i in second.items) == len(expected)
        assert {t: definitions(env, t) for t in TENANTS} == before  # not even updatedAt moved


async def test_activate_one_tenant_through_the_cli(tmp_path: Path) -> None:
    """`migrator activate --tenant` switches on only that tenant; a re-run exits 0 with nothing to do; an unreadable journal exits 2."""
    journal = tmp_path / "j.jsonl"
    async with running_fake() as env:
        await migrate(
            env.settings,
            MigrateOptions(
                sources=[str(SAMPLES)], tenants=["tenant-1", "tenant-2"], journal=str(journal)
            ),
        )
        run = await run_cli(
            env, tmp_path, "activate", "--journal", str(journal), "--tenant", "tenant-2", "--json"
        )
        assert run.code == 0, run.err
        data = orjson.loads(run.out)
        assert {i["tenant"] for i in data["items"]} == {"tenant-2"}
        assert data["summary"]["activated"] == len(definitions(env, "tenant-2"))
        assert all(d["status"] == "Active" for d in definitions(env, "tenant-2").values())
        assert all(d["active_version"] is None for d in definitions(env, "tenant-1").values())

        again = await run_cli(
            env, tmp_path, "activate", "--journal", str(journal), "--tenant", "tenant-2"
        )
        assert again.code == 0
        assert "activated 0" in again.out

        missing = await run_cli(
            env, tmp_path, "activate", "--journal", str(tmp_path / "none.jsonl")
        )
        assert missing.code == 2
        assert "no journal here" in missing.err


async def test_activate_switches_back_a_version_changed_by_hand(tmp_path: Path) -> None:
    """When someone made another version active after activation, activate switches the journal's version on again (a fresh Idempotency-Key, not a replay)."""
    journal = tmp_path / "j.jsonl"
    doc = SAMPLES / "04-credit-check-v1.json"
    newer = SAMPLES / "05-credit-check-v1-1.json"
    async with running_fake() as env:
        await migrate(
            env.settings,
            MigrateOptions(
                sources=[str(doc), str(newer)], tenants=["tenant-1"], journal=str(journal)
            ),
        )
        assert (await activate_from_journal(env.settings, str(journal))).ok
        d = definitions(env, "tenant-1")["Credit Check on New Order"]
        versions = env.fake.state.list_versions("tenant-1", d["id"])
        old = next(v["id"] for v in versions if v["version"] == "1.0.0")
        env.fake.state.patch_definition("tenant-1", d["id"], {"active_workflow_version_id": old})
        again = await activate_from_journal(env.settings, str(journal))
        assert [i.status for i in again.items if i.version == "1.1.0"] == ["activated"]
        assert (
            definitions(env, "tenant-1")["Credit Check on New Order"]["active_version"]["version"]
            == "1.1.0"
        )


async def test_activation_match_follows_the_source(tmp_path: Path) -> None:
    """With activation 'match', a source whose workflow.status is Active lands active and the others land inactive."""
    sources = tmp_path / "src"
    sources.mkdir()
    for name, status in (
        ("06-usage-overage-alert.json", "Active"),
        ("08-normalise-tax-ids.json", None),
        ("16-bill-run-completion-digest.json", "Inactive"),
    ):
        data = json.loads((SAMPLES / name).read_text())
        data["workflow"]["status"] = status
        (sources / name).write_text(json.dumps(data))
    async with running_fake() as env:
        report = await migrate(
            env.settings,
            MigrateOptions(sources=[str(sources)], tenants=["tenant-3"], activation="match"),
        )
        assert report.ok and len(report.items) == 3
        landed = definitions(env, "tenant-3")
        assert landed["Usage Overage Alert"]["status"] == "Active"
        assert landed["Usage Overage Alert"]["active_version"]["version"] == "0.0.7"
        for name in ("Normalise VAT Numbers", "Bill Run Completion Digest"):
            assert landed[name]["active_version"] is None, name


async def test_activation_match_follows_a_snapshot_manifest(tmp_path: Path) -> None:
    """With activation 'match' and a snapshot source, the manifest's `active` flag decides, whatever the document's own status says."""
    snap = tmp_path / "snap"
    snap.mkdir()
    files = []
    for i, (name, active) in enumerate(
        (
            ("02-nightly-trial-expiry-reminders.json", True),
            ("07-payment-retry-after-delay.json", False),
        )
    ):
        data = json.loads((SAMPLES / name).read_text())
        data["workflow"]["status"] = "Inactive" if active else "Active"  # the manifest wins
        raw = json.dumps(data).encode()
        (snap / name).write_bytes(raw)
        files.append(
            {
                "path": name,
                "definition_id": 500 + i,
                "version_id": 600 + i,
                "name": data["workflow"]["name"],
                "version": data["workflow"]["version"],
                "active": active,
                "sha256": hashlib.sha256(raw).hexdigest(),
            }
        )
    manifest = {
        "format": "migrator-snapshot/1",
        "tenant": "source",
        "created_at": "2026-11-28T10:00:00Z",
        "tool_version": "test",
        "files": files,
    }
    (snap / "manifest.json").write_text(json.dumps(manifest))
    async with running_fake() as env:
        report = await migrate(
            env.settings,
            MigrateOptions(sources=[str(snap)], tenants=["tenant-1"], activation="match"),
        )
        assert report.ok, report.to_json()
        landed = definitions(env, "tenant-1")
        assert landed["Nightly Trial Expiry Reminders"]["active_version"]["version"] == "0.0.3"
        assert landed["Retry Declined Card Payment"]["active_version"] is None


async def test_activate_refuses_a_journal_written_for_another_tenant(tmp_path: Path) -> None:
    """When a tenant name now points at another tenant (client id), activate refuses before any request, since the journal's ids belong elsewhere."""
    journal = tmp_path / "j.jsonl"
    async with running_fake() as env:
        await migrate(
            env.settings,
            MigrateOptions(
                sources=[str(SAMPLES / "06-usage-overage-alert.json")],
                tenants=["tenant-1"],
                journal=str(journal),
            ),
        )
        moved = dict(env.settings.tenants)
        moved["tenant-1"] = replace(env.settings.tenants["tenant-2"], name="tenant-1")
        settings = replace(env.settings, tenants=moved)
        with pytest.raises(JournalError, match="pointed at a different tenant"):
            await activate_from_journal(settings, str(journal))
        assert all(
            d["active_version"] is None
            for t in ("tenant-1", "tenant-2")
            for d in definitions(env, t).values()
        )


async def test_activate_also_switches_on_identical_content_that_was_skipped(tmp_path: Path) -> None:
    """A workflow skipped because identical content was already on the target is switched on like an import."""
    journal = tmp_path / "j.jsonl"
    async with running_fake() as env:
        # The content is already on tenant-1 (landed earlier, outside this journal).
        await migrate(env.settings, MigrateOptions(sources=[str(SAMPLES)], tenants=["tenant-1"]))
        report = await migrate(
            env.settings,
            MigrateOptions(sources=[str(SAMPLES)], tenants=["tenant-1"], journal=str(journal)),
        )
        assert report.summary()["skipped"] == len(report.items)
        result = await activate_from_journal(env.settings, str(journal))
        assert result.ok
        assert all(
            d["status"] == "Active" and d["active_version"]
            for d in definitions(env, "tenant-1").values()
        )


# --- bounded: one definition's items in memory, a few activations in flight ----------------------


def _old_targets(tenant: str, states: list[Any]) -> tuple[list[Any], list[Any]]:
    """The grouping as it was when the whole journal sat in a dict (the oracle)."""
    from migrator.core.plan import int_or_none
    from migrator.core.versions import is_valid_version
    from migrator.run.activate import Target

    by_def: dict[int, list[Any]] = {}
    unplaced = []
    for st in sorted(states, key=lambda s: s.item):
        if st.status not in ("done", "skipped"):
            continue
        def_id = int_or_none(st.target_definition_id)
        if def_id is None or not st.version or not is_valid_version(st.version):
            if st.status == "done":
                unplaced.append(st)
            continue
        by_def.setdefault(def_id, []).append(st)
    targets = []
    for def_id, items in sorted(by_def.items()):
        items.sort(key=lambda s: version_key(str(s.version)), reverse=True)
        targets.append(Target(tenant, def_id, items[0], tuple(items[1:])))
    return targets, unplaced


def _landed_states() -> Any:
    from hypothesis import strategies as st

    from migrator.core.journal_records import ItemState

    return st.lists(
        st.builds(
            ItemState,
            tenant=st.just("t1"),
            item=st.text("abcdef", min_size=1, max_size=3),
            status=st.sampled_from(["done", "skipped", "failed", "in_doubt"]),
            version=st.sampled_from([None, "", "1.0.0", "1.2.0", "2.0", "x"]),
            target_definition_id=st.sampled_from([None, 5, 12, "12", "7", "x", True, 0]),
        ),
        unique_by=lambda s: s.item,
        max_size=25,
    )


def test_activation_targets_from_the_table_equal_the_whole_journal_grouping() -> None:
    """Streamed from the workspace (pages of 3 rows), grouped a definition at a time, the
    targets and unplaced items are what grouping the whole journal in memory gave."""
    from hypothesis import given, settings

    import migrator.store.workspace_db as workspace_db
    from migrator.run.activate import Target, targets_from_journal
    from migrator.store.workspace import Workspace

    @settings(max_examples=80, deadline=None)
    @given(states=_landed_states())
    def check(states: list[Any]) -> None:
        ws = Workspace()
        try:
            table = ws.journal_state()
            for s in states:
                table[(s.tenant, s.item)] = s
                table[("t2", s.item)] = replace(s, tenant="t2")  # another tenant's: not these
            out = list(targets_from_journal("t1", table.landed("t1")))
        finally:
            ws.close()
        want_targets, want_unplaced = _old_targets("t1", states)
        assert [e for e in out if isinstance(e, Target)] == want_targets
        unplaced = [e for e in out if not isinstance(e, Target)]
        assert sorted(unplaced, key=lambda s: s.item) == want_unplaced

    old = workspace_db._BATCH
    workspace_db._BATCH = 3
    try:
        check()
    finally:
        workspace_db._BATCH = old


async def test_activate_keeps_a_tenants_activations_to_its_concurrency(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However many definitions the journal holds, a tenant has at most max_concurrency
    activations under way, taken from the journal as workers come free (not all read first),
    and every one is switched on."""
    import migrator.run.activate as activate
    from tests.builders import small_export

    sources = tmp_path / "exports"
    sources.mkdir()
    for i in range(30):
        (sources / f"{i:02d}.json").write_bytes(orjson.dumps(small_export(f"Workflow {i:02d}")))
    journal = tmp_path / "j.jsonl"
    running = 0
    peak = 0
    taken = 0  # definitions taken from the journal so far
    taken_at_start: list[int] = []
    real = activate._activate_one
    real_targets = activate.targets_from_journal

    def counted_targets(*args: Any) -> Any:
        nonlocal taken
        for entry in real_targets(*args):
            taken += 1
            yield entry

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal running, peak
        taken_at_start.append(taken)
        running += 1
        peak = max(peak, running)
        try:
            return await real(*args, **kwargs)
        finally:
            running -= 1

    monkeypatch.setattr(activate, "_activate_one", counted)
    monkeypatch.setattr(activate, "targets_from_journal", counted_targets)
    async with running_fake(max_concurrency=3) as env:
        settings = replace(env.settings, tenants={"tenant-1": env.settings.tenants["tenant-1"]})
        report = await migrate(
            settings, MigrateOptions(sources=[str(sources)], journal=str(journal))
        )
        assert report.ok
        first = await activate_from_journal(settings, str(journal))
    assert first.ok and [i.status for i in first.items] == ["activated"] * 30
    assert 1 < peak <= 3
    # Taken from the journal as workers come free, not all at once before the first call.
    assert taken_at_start[0] <= 3 and taken_at_start == sorted(taken_at_start)


async def test_activate_dry_run_shows_exactly_the_switches_the_run_makes(tmp_path: Path) -> None:
    """The switches `activate --dry-run` plans (tenant, definition, version id) are exactly the
    active versions the fake shows changed after the real run: the preview is the plan."""
    journal = tmp_path / "j.jsonl"
    async with running_fake() as env:
        report = await migrate(
            env.settings, MigrateOptions(sources=[str(SAMPLES)], journal=str(journal))
        )
        assert report.ok
        before = {t: definitions(env, t) for t in TENANTS}
        dry = await activate_from_journal(env.settings, str(journal), dry_run=True)
        planned = {
            (i.tenant, i.target_workflow_id, i.target_version_id)
            for i in dry.items
            if i.status == "planned"
        }
        run = await activate_from_journal(env.settings, str(journal))
        assert run.ok
        changed = {
            (t, d["id"], d["active_version"]["id"])
            for t in TENANTS
            for name, d in definitions(env, t).items()
            if d["active_version"] != before[t][name]["active_version"]
        }
    assert planned and planned == changed
    assert planned == {
        (i.tenant, i.target_workflow_id, i.target_version_id)
        for i in run.items
        if i.status == "activated"
    }
