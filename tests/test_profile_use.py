"""What `doctor --save` learned changes what the commands do (issue 23: each learned item is used).

Each use runs against the fake variant that plays the behaviour, with the profile saved where
the commands find it; where a request is saved, the fake's request counts show it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from migrator.commands.backup import backup_tenant
from migrator.core.canonical import unknown_keys
from migrator.core.drift import IN_SYNC
from migrator.core.plan import TargetDefinition
from migrator.core.profile import TenantProfile, listing_order_unstable
from migrator.fake import FakeConfig
from migrator.run.diff import diff_tenants
from migrator.run.migrate import migrate
from migrator.run.options import MigrateOptions
from migrator.run.target import read_target
from migrator.run.verify import verify_tenants
from migrator.store.profiles import save_profile
from tests.builders import small_export
from tests.conftest import SAMPLES
from tests.helpers import Env, client_for, json_response, running_fake

pytestmark = pytest.mark.anyio

T1 = "tenant-1"


def _calls(env: Env, handler: str) -> int:
    return sum(n for (tenant, name), n in env.fake.calls.items() if name == handler)


def _total(env: Env) -> int:
    return sum(env.fake.calls.values())


async def _read_everything(env: Env, tmp_path: Path, tag: str) -> None:
    """Migrate (fresh journal), verify, diff and back up the samples once."""
    again = await migrate(
        env.settings, MigrateOptions(sources=[str(SAMPLES)], journal=str(tmp_path / f"{tag}.jsonl"))
    )
    assert again.ok and not env.imports(T1)[len(env.imports(T1)) :], again.to_json()
    checked = await verify_tenants(env.settings, [str(SAMPLES)], use_cache=False)
    assert all(i.status == "verified" for i in checked.items), checked.to_json()
    await diff_tenants(env.settings, [str(SAMPLES)])
    backup = await backup_tenant(env.settings, T1, tmp_path / f"backup-{tag}", all_versions=True)
    assert backup.exit_code == 0, backup.message


async def test_a_profile_without_versions_list_sends_no_versions_request(tmp_path: Path) -> None:
    """With `versions_list = false` saved, migrate, verify, diff and backup never ask for a versions list (each would answer 404) and say so; without the profile each asks once per definition."""
    config = FakeConfig.demo(1).with_variant("no-versions-list")
    async with running_fake(config) as env:
        first = await migrate(
            env.settings, MigrateOptions(sources=[str(SAMPLES)], journal=str(tmp_path / "j.jsonl"))
        )
        assert first.ok, first.to_json()
        landed = len(env.imports(T1))

        before = (_calls(env, "list_versions"), _total(env))
        await _read_everything(env, tmp_path, "unprofiled")
        asked = _calls(env, "list_versions") - before[0]
        unprofiled = _total(env) - before[1]
        assert asked > 0  # every reader asked and was answered 404

        save_profile(env.settings, env.settings.tenants[T1], TenantProfile(versions_list=False))
        before = (_calls(env, "list_versions"), _total(env))
        await _read_everything(env, tmp_path, "profiled")
        assert _calls(env, "list_versions") == before[0]  # not one versions request
        assert _total(env) - before[1] <= unprofiled - asked  # those saved (and cache hits)
        assert len(env.imports(T1)) == landed  # and still exactly once

        report = await migrate(
            env.settings, MigrateOptions(sources=[str(SAMPLES)], journal=str(tmp_path / "k.jsonl"))
        )
        assert report.notices and all("not asked" in n for n in report.notices), report.notices


@pytest.mark.parametrize("profiled", [False, True], ids=["learned-from-exports", "from-profile"])
async def test_an_old_shape_tenant_keeps_a_meaningful_block_in_sync_without_the_cache(
    tmp_path: Path, profiled: bool
) -> None:
    """On a tenant whose exports lack `workflow_definition`, a document whose block adds something is compared as the export can show it: a second run with `--no-cache` imports nothing (the block is still sent), whether the shape is seen in this run's exports or comes from the saved profile (`export_has_workflow_definition = false`)."""
    config = FakeConfig.demo(1).with_variant("no-workflow-definition-block")
    async with running_fake(config) as env:
        if profiled:
            profile = TenantProfile(export_has_workflow_definition=False)
            save_profile(env.settings, env.settings.tenants[T1], profile)
        for run in ("a", "b"):
            report = await migrate(
                env.settings,
                MigrateOptions(
                    sources=[str(SAMPLES)],
                    journal=str(tmp_path / f"{run}.jsonl"),
                    use_cache=False,
                ),
            )
            assert report.ok, report.to_json()
            if run == "a":
                landed = len(env.imports(T1))
        assert len(env.imports(T1)) == landed, [
            i.workflow_name for i in report.items if i.status == "imported"
        ]


def _shifting_listing(asked: list[str]) -> Any:
    """A listing whose order changes between requests: page 1 then page 2 never show "B" (it
    moves from page 2 to page 1 between the two requests); `?name=B` lists it."""

    async def listing(request: web.Request) -> web.Response:
        asked.append(request.query_string)
        if request.query.get("name"):
            wanted = request.query["name"]
            entries = [e for e in ENTRIES if e["name"] == wanted]
            return json_response({"data": entries, "pagination": {}})
        page = int(request.query.get("page", "1"))
        order = {1: [ENTRIES[0]], 2: [ENTRIES[2]]}[page]  # "B" was on page 2, now on page 1
        more = {"next_page": "yes"} if page == 1 else {}
        return json_response({"data": order, "pagination": more})

    return listing


ENTRIES: list[dict[str, Any]] = [
    {"id": 1, "name": "A", "status": "Active"},
    {"id": 2, "name": "B", "status": "Active"},
    {"id": 3, "name": "C", "status": "Active"},
]


async def _versions(request: web.Request) -> web.Response:
    return json_response({"data": []})


@pytest.mark.parametrize("stable", [None, False])
async def test_an_unstable_listing_order_confirms_a_name_the_walk_missed(
    stable: bool | None,
) -> None:
    """With `listing_order_stable = false` saved, a source name the page walk did not list is looked up by name once before planning would create it (found: no duplicate definition); without the profile no request is added."""
    asked: list[str] = []
    routes = [
        ("GET", "/workflows", _shifting_listing(asked)),
        ("GET", "/workflows/{id}/versions", _versions),
    ]
    async with client_for(routes) as (client, _, _):
        client.profile = TenantProfile(listing_order_stable=stable)
        found: list[TargetDefinition] = []
        wanted = {"A", "B", "C"}
        await read_target(
            client,
            wanted,
            found.append,
            confirm=(lambda: sorted(wanted)) if listing_order_unstable(client.profile) else None,
        )
    names = sorted(d.name for d in found)
    if stable is False:
        assert names == ["A", "B", "C"]
        assert sum("name=" in q for q in asked) == 1  # only the missed one
    else:
        assert names == ["A", "C"] and not any("name=" in q for q in asked)


@pytest.mark.parametrize("profiled", [True, False])
async def test_a_tenant_that_keeps_unknown_keys_is_told_what_was_not_compared(
    tmp_path: Path, profiled: bool
) -> None:
    """On a tenant that keeps unknown keys, a document changed only in such a key (`ui_trigger`) is found identical by the canonical form; with `keeps_unknown_keys = true` saved the report names the key and the document, without it says nothing."""
    config = FakeConfig.demo(1).with_variant("keeps-unknown-keys")
    doc = small_export("Keeps")
    doc["workflow"]["ui_trigger"] = "before"
    source = tmp_path / "keeps.json"
    source.write_text(json.dumps(doc))
    async with running_fake(config) as env:
        if profiled:
            profile = TenantProfile(keeps_unknown_keys=True)
            save_profile(env.settings, env.settings.tenants[T1], profile)
        first = await migrate(
            env.settings, MigrateOptions(sources=[str(source)], journal=str(tmp_path / "a.jsonl"))
        )
        assert first.ok, first.to_json()
        doc["workflow"]["ui_trigger"] = "after"
        source.write_text(json.dumps(doc))
        again = await migrate(
            env.settings, MigrateOptions(sources=[str(source)], journal=str(tmp_path / "b.jsonl"))
        )
        [item] = again.items
        assert item.status == "skipped" and len(env.imports(T1)) == 1
        notes = [n for n in again.notices if "keeps_unknown_keys" in n]
        if profiled:
            [note] = notes
            assert "workflow.ui_trigger" in note and str(source) in note
        else:
            assert notes == []


def test_unknown_keys_are_named_where_they_sit() -> None:
    """The keys import drops by §3.6 are named by where they sit; known keys, the block and camelCase triggers are not."""
    doc = small_export("Keys")
    doc["exported_by"] = "me"
    doc["workflow_definition"] = {"name": "Keys"}
    doc["workflow"]["ui_trigger"] = True
    doc["workflow"]["calloutTrigger"] = False
    doc["tasks"][0]["notes"] = "n"
    assert unknown_keys(doc) == ["exported_by", "tasks[].notes", "workflow.ui_trigger"]


async def test_diff_in_sync_on_an_old_shape_tenant_without_the_cache(tmp_path: Path) -> None:
    """diff with no content-hash cache calls a document whose block adds something in sync on a tenant whose exports lack `workflow_definition`: the export cannot show the block, so the source is compared as it would show it."""
    config = FakeConfig.demo(1).with_variant("no-workflow-definition-block")
    async with running_fake(config) as env:
        report = await migrate(
            env.settings, MigrateOptions(sources=[str(SAMPLES)], journal=str(tmp_path / "j.jsonl"))
        )
        assert report.ok, report.to_json()
        drift = await diff_tenants(env.settings, [str(SAMPLES)])  # no cache_for: no cache
        cells = drift.tenants[0].workflows
        assert all(w.status == IN_SYNC for w in cells), [(w.name, w.status) for w in cells]


def test_verify_prints_what_it_could_not_see() -> None:
    """verify's human output carries each notice as a `note:` line before its verdict, escaped."""
    from migrator.render.outcomes import render_verify
    from migrator.run.verify import verify_report

    report = verify_report(
        (), ["tenant-1: workflow 'A\x1b': GET /workflows/1/versions answered 404"]
    )
    lines = render_verify(report).splitlines()
    assert lines[-2].startswith("note: tenant-1: workflow 'A") and "\x1b" not in lines[-2]
    assert lines[-1].startswith("migrator verify:")


async def test_activate_without_a_versions_list_finds_a_shown_version_or_says_why() -> None:
    """Without a versions list, activate finds a version its definition's listing entry shows (after the one 404), and one it does not show fails with one line naming the 404, not "gone"."""
    from migrator.core.journal_records import ItemState
    from migrator.run.activate import Activation, Target, plan_one
    from migrator.run.context import run_clients

    config = FakeConfig.demo(1).with_variant("no-versions-list")
    async with running_fake(config) as env:
        def_id, _ = env.fake.state.add_workflow(T1, small_export("Shown"), version="1.0.0")

        def target(version: str) -> Target:
            state = ItemState(T1, "k", "done", name="Shown", version=version)
            return Target(T1, def_id, state)

        async with run_clients(env.settings, [env.settings.tenants[T1]]) as clients:
            found = await plan_one(clients[T1], target("1.0.0"))
            assert isinstance(found, Activation), found
            unseen = await plan_one(clients[T1], target("9.9.9"))
        assert not isinstance(unseen, Activation) and unseen.status == "failed"
        assert "not among the versions" in (unseen.error or "")
        assert f"GET /workflows/{def_id}/versions answered 404" in (unseen.error or "")
