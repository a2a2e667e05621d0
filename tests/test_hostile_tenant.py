"""One workflow's bad data or refusal is that workflow's; partial backups never replace complete
ones; looping pagination stops; damaged snapshot manifests refuse the run (issue 14 #4, 5, 9,
13, 21).

Faults are injected into the fake's state (its HTTP path stays real) or served by a tiny
aiohttp.web server on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from migrator.core.errors import MigratorError, ZuoraError
from migrator.fake import FakeConfig
from migrator.fake._state import errors_list
from migrator.run.backup import backup_tenant
from migrator.run.migrate import migrate
from migrator.run.options import MigrateOptions
from migrator.run.verify import verify_tenants
from migrator.store.snapshot import MANIFEST, pointer_path
from tests.builders import small_export
from tests.helpers import (
    Clock,
    Env,
    client_for,
    json_response,
    manifest_of,
    preload,
    running_fake,
    sample_documents,
    snapshot_dirs,
    with_listing_id,
)

pytestmark = pytest.mark.anyio

T1 = "tenant-1"


def versions_404_for(env: Env, wanted: Callable[[int], bool]) -> None:
    """`GET /workflows/{id}/versions` answers 404 for the definitions `wanted` picks."""
    real = env.fake.state.list_versions

    def list_versions(tenant: str, definition_id: int) -> list[dict[str, Any]]:
        if wanted(definition_id):
            raise errors_list(404, "injected")
        return real(tenant, definition_id)

    env.fake.state.list_versions = list_versions  # type: ignore[method-assign]


def exports_404(env: Env) -> Callable[[], None]:
    """Every export answers 404 (a backup is then partial); returns what puts exports back."""
    real = env.fake.state.export

    def export(tenant: str, definition_id: int, version: str | None) -> dict[str, Any]:
        raise errors_list(404, "injected")

    env.fake.state.export = export  # type: ignore[method-assign]

    def restore() -> None:
        env.fake.state.export = real  # type: ignore[method-assign]

    return restore


def export_fails_for(env: Env, version_id: int, status: int) -> None:
    """Exports of one version answer `status`."""
    real = env.fake.state.export
    state = env.fake.state

    def export(tenant: str, definition_id: int, version: str | None) -> dict[str, Any]:
        ids = [
            v["id"] for v in state.list_versions(tenant, definition_id) if v["version"] == version
        ]
        if version_id in ids:
            raise errors_list(status, "injected")
        return real(tenant, definition_id, version)

    state.export = export  # type: ignore[method-assign]


# ---------------------------------------------------------------- #4 partial backups


async def test_partial_backup_never_deletes_the_complete_one(tmp_path: Path) -> None:
    """A backup in which every export answered 404 is published as partial: `--keep 1` keeps the complete snapshot, `latest` still names it, and the summary says which is which.

    (Until issue 23 this used versions lists answering 404; backup now reads the listing then.)"""
    async with running_fake() as env:
        count = preload(env)
        complete = await backup_tenant(env.settings, T1, tmp_path, all_versions=True, clock=Clock())
        assert complete.complete and complete.exit_code == 0
        assert manifest_of(Path(complete.snapshot))["complete"] is True

        exports_404(env)
        partial = await backup_tenant(
            env.settings, T1, tmp_path, all_versions=True, keep=1, clock=Clock()
        )
        assert partial.complete is False and partial.exit_code == 1
        assert len(partial.skipped) == count
        assert all("answered 404" in s for s in partial.skipped), partial.skipped
        assert partial.removed == ()
        assert Path(complete.snapshot).is_dir()
        manifest = manifest_of(Path(partial.snapshot))
        assert manifest["complete"] is False and len(manifest["skipped"]) == count
        assert pointer_path(tmp_path, T1).read_text().strip() == Path(complete.snapshot).name
        assert partial.latest == complete.snapshot
        assert "PARTIAL" in partial.message
        assert f"latest complete snapshot: {complete.snapshot}" in partial.message


async def test_next_complete_backup_supersedes_partial_ones(tmp_path: Path) -> None:
    """Once a complete backup is written again, `--keep` counts only complete snapshots and removes the partial one it superseded."""
    async with running_fake() as env:
        preload(env)
        clock = Clock()
        first = await backup_tenant(env.settings, T1, tmp_path, all_versions=True, clock=clock)
        restore = exports_404(env)
        partial = await backup_tenant(env.settings, T1, tmp_path, all_versions=True, clock=clock)
        restore()
        env.fake.state.add_workflow(T1, sample_documents()[7])
        second = await backup_tenant(
            env.settings, T1, tmp_path, all_versions=True, keep=2, clock=clock
        )
        assert second.complete and not second.unchanged
        assert [str(p) for p in snapshot_dirs(tmp_path)] == sorted(
            [first.snapshot, second.snapshot]
        )
        assert partial.snapshot in second.removed
        assert pointer_path(tmp_path, T1).read_text().strip() == Path(second.snapshot).name


async def test_one_unexportable_version_is_skipped_alone(tmp_path: Path) -> None:
    """With --all-versions, one version whose export is refused is skipped and named; the other versions are backed up and the snapshot is partial."""
    async with running_fake() as env:
        doc = small_export()
        def_id, v1 = env.fake.state.add_workflow(T1, doc, version="1.0")
        doc2 = small_export()
        doc2["tasks"][0]["name"] = "Export v2"
        env.fake.state.add_workflow(T1, doc2, version="2.0", definition_id=def_id)
        export_fails_for(env, v1, 400)
        result = await backup_tenant(env.settings, T1, tmp_path, all_versions=True, clock=Clock())
        assert result.versions == 1 and not result.complete and result.workflows == 1
        assert [e["version"] for e in manifest_of(Path(result.snapshot))["files"]] == ["2.0"]
        assert len(result.skipped) == 1 and "'1.0'" in result.skipped[0]
        assert "answered 400" in result.skipped[0]


async def test_huge_version_number_gets_a_short_file_name(tmp_path: Path) -> None:
    """A valid 300-digit version is backed up under a file name that fits, and the manifest keeps the version whole."""
    async with running_fake() as env:
        version = "9" * 300
        env.fake.state.add_workflow(T1, small_export(), version=version, activate=True)
        result = await backup_tenant(env.settings, T1, tmp_path, clock=Clock())
        assert result.complete and result.versions == 1
        [entry] = manifest_of(Path(result.snapshot))["files"]
        assert entry["version"] == version
        assert len(entry["path"]) < 200 and (Path(result.snapshot) / entry["path"]).is_file()


# ---------------------------------------------------------------- #5 bad listing entries, one 404


@pytest.mark.parametrize("bad", [KeyError, None, "x7", 1.5])
async def test_listing_entry_without_an_integer_id_fails_its_tenant_only(
    tmp_path: Path, bad: Any
) -> None:
    """A listing entry whose id is missing, null or not an integer fails that tenant with one line; the other tenants are migrated."""
    source = tmp_path / "resume.json"
    source.write_text(json.dumps(small_export()))
    async with running_fake(FakeConfig.demo(2)) as env:
        def_id, _ = env.fake.state.add_workflow(T1, small_export())
        with_listing_id(env, def_id, bad)
        report = await migrate(env.settings, MigrateOptions(sources=[str(source)]))
        by_tenant = {i.tenant: i for i in report.items}
        assert by_tenant["tenant-2"].status == "imported"
        failed = by_tenant[T1]
        assert failed.status == "deferred"  # how a tenant that cannot be read ends
        assert "has no integer id" in (failed.error or "")
        assert "\n" not in (failed.error or "")


async def test_backup_skips_a_listing_entry_without_an_integer_id(tmp_path: Path) -> None:
    """backup leaves out the one workflow listed without an integer id and backs up the rest (partial)."""
    async with running_fake() as env:
        count = preload(env)
        bad_id = env.fake.state.list_definitions(T1, {})[0]
        with_listing_id(env, bad_id, None)
        result = await backup_tenant(env.settings, T1, tmp_path, clock=Clock())
        assert result.versions == count - 1 and not result.complete
        assert len(result.skipped) == 1 and "non-integer workflow id" in result.skipped[0]


async def test_verify_reads_the_listing_for_only_the_workflow_whose_versions_404(
    tmp_path: Path,
) -> None:
    """A 404 on one workflow's versions list makes verify judge that workflow from its listing entry and say so once, naming it; the other items are verified as before (issue 23 changed this from "failed")."""
    docs = sample_documents()[:3]
    paths = []
    for i, doc in enumerate(docs):
        path = tmp_path / f"d{i}.json"
        path.write_text(json.dumps(doc))
        paths.append(str(path))
    async with running_fake(FakeConfig.demo(1)) as env:
        report = await migrate(env.settings, MigrateOptions(sources=paths))
        assert report.ok, report.to_json()
        victim = next(i for i in report.items if i.source == paths[1]).target_workflow_id
        versions_404_for(env, lambda did: did == victim)
        checked = await verify_tenants(env.settings, paths)
        statuses = {i.source: i.status for i in checked.items}
        assert statuses == {paths[0]: "verified", paths[1]: "verified", paths[2]: "verified"}
        [note] = checked.notices
        assert f"/workflows/{victim}/versions answered 404: read the listing instead" in note
        assert "tenant tenant-1: tenant tenant-1" not in note


# ---------------------------------------------------------------- #9 looping pagination


async def test_looping_pagination_stops_with_one_line() -> None:
    """A server that answers the same page for every page number (and always offers another) is stopped after the first repeat, with one line."""
    asked: list[int] = []

    async def same_page(request: web.Request) -> web.Response:
        asked.append(int(request.query["page"]))
        next_page = f"http://127.0.0.1/workflows?page={int(request.query['page']) + 1}"
        return json_response(
            {
                "data": [{"id": 1, "name": "A"}, {"id": 2, "name": "B"}],
                "pagination": {"next_page": next_page},
            }
        )

    async with client_for([("GET", "/workflows", same_page)]) as (client, _, _):
        with pytest.raises(ZuoraError) as info:
            await client.list_workflows()
    assert asked == [1, 2]
    assert "pagination loops" in str(info.value) and "\n" not in str(info.value)


async def test_repeated_ids_across_pages_are_listed_once() -> None:
    """An entry that shows up again on the next page (a definition created while paging) is listed once, and paging goes on."""

    async def shifting(request: web.Request) -> web.Response:
        page = int(request.query["page"])
        data = {1: [{"id": 9}, {"id": 8}], 2: [{"id": 8}, {"id": 7}], 3: []}[page]
        return json_response({"data": data, "pagination": {"next_page": "more"}})

    async with client_for([("GET", "/workflows", shifting)]) as (client, _, _):
        assert [w["id"] for w in await client.list_workflows()] == [9, 8, 7]


# ---------------------------------------------------------------- #13 damaged manifests


@pytest.mark.parametrize("kind", ["dangling symlink", "directory"])
async def test_snapshot_with_unreadable_manifest_is_refused_before_any_import(
    tmp_path: Path, kind: str
) -> None:
    """A snapshot whose manifest.json is a dangling symlink or a directory is damaged: the run stops before anything is imported."""
    async with running_fake() as env:
        preload(env)
        result = await backup_tenant(env.settings, T1, tmp_path / "out", clock=Clock())
        snap = Path(result.snapshot)
        (snap / MANIFEST).unlink()
        if kind == "directory":
            (snap / MANIFEST).mkdir()
        else:
            os.symlink(tmp_path / "nowhere.json", snap / MANIFEST)
        with pytest.raises(MigratorError, match="damaged snapshot") as refused:
            await migrate(env.settings, MigrateOptions(sources=[str(snap)], tenants=["tenant-2"]))
        assert MANIFEST in str(refused.value)
        assert env.imports("tenant-2") == []


# ---------------------------------------------------------------- #21 empty linkage_type


@pytest.mark.parametrize("blank", ["", "  "])
def test_empty_linkage_type_is_a_one_line_error_naming_the_path(blank: str) -> None:
    """A linkage whose linkage_type is empty (or blank) is refused with one line naming the file and the linkage."""
    from migrator.core.document import parse_document
    from migrator.core.errors import InputError

    doc = small_export()
    doc["linkages"][1]["linkage_type"] = blank
    with pytest.raises(InputError) as info:
        parse_document(json.dumps(doc).encode(), "in/wf.json")
    assert str(info.value) == "in/wf.json: $.linkages[1].linkage_type: must not be empty"


async def test_migrate_reads_the_listing_for_only_the_workflow_whose_versions_404(
    tmp_path: Path,
) -> None:
    """In migrate, a 404 on one existing workflow's versions list makes it plan that workflow from the listing's versions (its identical content is found there, nothing is sent again) and say so once; the other documents of the tenant are imported (issue 23 changed this from "blocked")."""
    docs = sample_documents()[:3]
    paths = []
    for i, doc in enumerate(docs):
        path = tmp_path / f"d{i}.json"
        path.write_text(json.dumps(doc))
        paths.append(str(path))
    async with running_fake(FakeConfig.demo(1)) as env:
        victim, _ = env.fake.state.add_workflow(T1, docs[1], version="0.0.1")
        versions_404_for(env, lambda did: did == victim)
        report = await migrate(env.settings, MigrateOptions(sources=paths))
        by_source = {i.source: i for i in report.items}
        assert by_source[paths[0]].status == by_source[paths[2]].status == "imported"
        found = by_source[paths[1]]
        assert found.status == "skipped" and found.version == "0.0.1", report.to_json()
        [note] = [n for n in report.notices if "versions" in n]
        assert f"/workflows/{victim}/versions answered 404: read the listing instead" in note
        names = sorted(e["name"] for e in env.imports(T1))
        assert names == sorted([docs[0]["workflow"]["name"], docs[2]["workflow"]["name"]])


async def test_backup_without_versions_lists_reads_the_listing(tmp_path: Path) -> None:
    """When every versions list answers 404, `--all-versions` backs up the versions the listing shows (active and up to 10 inactive) and says what it could not see (issue 23 #5)."""
    async with running_fake() as env:
        preload(env)
        complete = await backup_tenant(env.settings, T1, tmp_path / "a", all_versions=True)
        versions_404_for(env, lambda _id: True)
        listed = await backup_tenant(env.settings, T1, tmp_path / "b", all_versions=True)
        assert listed.complete and listed.exit_code == 0
        assert listed.versions == complete.versions
        assert listed.notices and all("answered 404" in n for n in listed.notices)
