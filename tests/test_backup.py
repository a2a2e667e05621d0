"""Backups into snapshot folders and restores from them, over real HTTP to the fake (issue 7).

Also the pure parts: safe file names for hostile workflow names, with examples and hypothesis.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from migrator import cli
from migrator.commands.backup import add_backup_parser, cmd_backup
from migrator.core.canonical import canonical_hash
from migrator.core.errors import MigratorError
from migrator.fake._state import ApiError, errors_list
from migrator.run.backup import backup_tenant
from migrator.store import lock as lock_mod
from migrator.store.snapshot import (
    MANIFEST,
    BackupError,
    list_snapshots,
    lock_path,
    pointer_path,
    safe_name,
    snapshot_file_name,
)
from tests.helpers import (
    Clock,
    Env,
    manifest_of,
    preload,
    running_fake,
    sample_documents,
    snapshot_dirs,
    write_config_file,
)

RESERVED = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{p}{i}" for p in ("COM", "LPT") for i in range(10)
}
HOSTILE = [
    "../etc",
    "a/b",
    "..\\..\\windows\\system32",
    "CON",
    "con.txt",
    "nul",
    "COM1",
    "Ünïcødé ☃",
    "☃☃☃",
    "",
    " trailing dots and spaces. . ",
    ".hidden",
    "tab\tand\nnewline\x00nul",
    "x" * 300,
    "é" * 300,
    "Credit Check",
    "credit check",
]


def file_hashes(snapshot: Path) -> set[str]:
    """Canonical hashes of the documents stored in a snapshot."""
    out = set()
    for entry in manifest_of(snapshot)["files"]:
        raw = (snapshot / entry["path"]).read_bytes()
        if entry["path"].endswith(".gz"):
            raw = gzip.decompress(raw)
        out.add(comparable_hash(orjson.loads(raw)))
    return out


def comparable_hash(data: dict[str, Any]) -> str:
    """canonical_hash with Execute-workflow call ids blanked: a restore rewrites them to the
    target tenant's callee definitions by design, so only the callee name must survive."""
    copy: dict[str, Any] = orjson.loads(orjson.dumps(data))
    for task in copy.get("tasks", []):
        params = task.get("parameters")
        if isinstance(params, dict) and "workflow_id" in params and params.get("workflow_name"):
            params["workflow_id"] = "callee"
    return canonical_hash(copy)


def tenant_hashes(env: Env, tenant: str, *, all_versions: bool = False) -> set[str]:
    """Canonical hashes of what a fake tenant holds (its shown version, or every version)."""
    state = env.fake.state
    out = set()
    for definition_id in state.list_definitions(tenant, {}):
        versions = state.versions_of(tenant, definition_id)
        chosen = [v.version for v in versions] if all_versions else [None]
        for version in chosen:
            out.add(comparable_hash(state.export(tenant, definition_id, version)))
    return out


def mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


# ---------------------------------------------------------------------------------------------
# Names (pure)


def check_safe(slug: str) -> None:
    assert slug
    assert len(slug) <= 80
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in slug), slug
    assert ".." not in slug and "/" not in slug and "\\" not in slug
    assert slug[0] not in ".-" and slug[-1] not in ". -"
    assert slug.split(".", 1)[0].upper() not in RESERVED


@pytest.mark.parametrize("name", HOSTILE)
def test_safe_name_of_hostile_names(name: str) -> None:
    """Slashes, dot-dot, reserved device names, control characters, unicode and 300-char names all
    give a short ASCII slug that cannot leave its folder or trip Windows."""
    check_safe(safe_name(name))


def test_safe_name_stays_readable() -> None:
    """Accents fold to their letters and spaces become dashes, so people can still read the name."""
    assert safe_name("Ünïcødé ☃") == "Unicode"
    assert safe_name("Mahnstufe zwei: Zahlungserinnerung") == "Mahnstufe-zwei-Zahlungserinnerung"
    assert safe_name("../etc") == "etc"
    assert safe_name("CON") == "_CON"
    assert safe_name("☃").startswith("wf-")


@given(st.text(max_size=400))
def test_safe_name_property(name: str) -> None:
    """Whatever the name, the slug is a safe file-name part and the whole file name fits in 255 bytes."""
    check_safe(safe_name(name))
    file = snapshot_file_name(name, 2**63 - 1, "123.456.789", compress=True)
    assert len(file.encode()) <= 255
    assert file.endswith(".json.gz") and "/" not in file


@given(st.lists(st.text(max_size=60), min_size=2, max_size=20))
def test_file_names_unique_even_ignoring_case(names: list[str]) -> None:
    """Distinct definitions get file names that differ even on a case-insensitive filesystem."""
    files = [snapshot_file_name(n, i, "1.0", compress=False) for i, n in enumerate(names, 1)]
    assert len({f.casefold() for f in files}) == len(files)


# ---------------------------------------------------------------------------------------------
# Backup and restore against the fake


@pytest.mark.anyio
async def test_backup_then_restore_into_an_empty_tenant(tmp_path: Path) -> None:
    """A backup holds every definition's shown version with matching checksums, and restoring it
    into an empty tenant lands exactly that content."""
    from migrator.run.migrate import migrate
    from migrator.run.options import MigrateOptions

    async with running_fake() as env:
        count = preload(env, count=100)
        result = await backup_tenant(env.settings, "tenant-1", tmp_path / "out", clock=Clock())
        snap = Path(result.snapshot)
        assert not result.unchanged and result.workflows == count and result.versions == count
        assert result.message == f"backup tenant-1: {count} workflows, {count} versions → {snap}"
        manifest = manifest_of(snap)
        assert manifest["format"] == "migrator-snapshot/1" and manifest["tenant"] == "tenant-1"
        assert {f["path"] for f in manifest["files"]} | {MANIFEST} == {
            p.name for p in snap.iterdir()
        }
        for entry in manifest["files"]:
            assert (
                hashlib.sha256((snap / entry["path"]).read_bytes()).hexdigest() == entry["sha256"]
            )
        assert sum(f["active"] for f in manifest["files"]) == (count + 1) // 2
        assert file_hashes(snap) == tenant_hashes(env, "tenant-1")
        assert pointer_path(tmp_path / "out", "tenant-1").read_text() == snap.name + "\n"

        report = await migrate(
            env.settings, MigrateOptions(sources=[str(snap)], tenants=["tenant-2"])
        )
        assert report.ok, report.to_json()
        assert tenant_hashes(env, "tenant-2", all_versions=True) == file_hashes(snap)


@pytest.mark.anyio
async def test_live_source_migrates_without_a_snapshot(tmp_path: Path) -> None:
    """`--from-tenant` moves the same content a snapshot would hold, straight from tenant to tenant."""
    from migrator.run.migrate import migrate
    from migrator.run.options import MigrateOptions

    async with running_fake() as env:
        preload(env)
        report = await migrate(
            env.settings, MigrateOptions(from_tenant="tenant-1", tenants=["tenant-3"])
        )
        assert report.ok, report.to_json()
        result = await backup_tenant(env.settings, "tenant-1", tmp_path, clock=Clock())
        assert tenant_hashes(env, "tenant-3", all_versions=True) == file_hashes(
            Path(result.snapshot)
        )


@pytest.mark.anyio
async def test_second_backup_of_unchanged_tenant_writes_nothing(tmp_path: Path) -> None:
    """Backing up an unchanged tenant again leaves the snapshot's files untouched, makes no new
    folder, and says since when nothing changed."""
    async with running_fake() as env:
        preload(env)
        clock = Clock()
        first = await backup_tenant(env.settings, "tenant-1", tmp_path, clock=clock)
        snap = Path(first.snapshot)
        before, listing = mtimes(snap), sorted(os.listdir(tmp_path))
        second = await backup_tenant(env.settings, "tenant-1", tmp_path, clock=clock)
        assert second.unchanged and second.snapshot == first.snapshot
        assert second.message == f"backup tenant-1: unchanged since {snap}"
        assert mtimes(snap) == before
        assert sorted(os.listdir(tmp_path)) == listing


@pytest.mark.anyio
async def test_changed_tenant_gets_a_new_snapshot(tmp_path: Path) -> None:
    """A tenant that gained a workflow gets a new complete snapshot with it, the old one kept."""
    async with running_fake() as env:
        preload(env)
        clock = Clock()
        first = await backup_tenant(env.settings, "tenant-1", tmp_path, clock=clock)
        doc = sample_documents()[0]
        doc["workflow"]["name"] = "Brand new"
        env.fake.state.add_workflow("tenant-1", doc)
        second = await backup_tenant(env.settings, "tenant-1", tmp_path, clock=clock)
        assert not second.unchanged and second.versions == first.versions + 1
        assert [p.name for p in snapshot_dirs(tmp_path)] == sorted(
            [Path(first.snapshot).name, Path(second.snapshot).name]
        )
        assert file_hashes(Path(second.snapshot)) == tenant_hashes(env, "tenant-1")
        assert pointer_path(tmp_path, "tenant-1").read_text().strip() == Path(second.snapshot).name


@pytest.mark.anyio
async def test_all_versions_mode(tmp_path: Path) -> None:
    """With all_versions every version of every definition is stored and only the active one is
    marked active."""
    async with running_fake() as env:
        docs = sample_documents()
        def_id, _ = env.fake.state.add_workflow("tenant-1", docs[0], version="1.0.0")
        env.fake.state.add_workflow(
            "tenant-1", docs[0], definition_id=def_id, version="1.1.0", activate=True
        )
        env.fake.state.add_workflow("tenant-1", docs[0], definition_id=def_id, version="1.2.0")
        other_id, _ = env.fake.state.add_workflow("tenant-1", docs[1], version="2.0.0")
        default = await backup_tenant(env.settings, "tenant-1", tmp_path / "a", clock=Clock())
        rows = manifest_of(Path(default.snapshot))["files"]
        assert sorted((r["definition_id"], r["version"], r["active"]) for r in rows) == sorted(
            [(def_id, "1.1.0", True), (other_id, "2.0.0", False)]
        )
        full = await backup_tenant(
            env.settings, "tenant-1", tmp_path / "b", all_versions=True, clock=Clock()
        )
        rows = manifest_of(Path(full.snapshot))["files"]
        assert full.workflows == 2 and full.versions == 4
        mine = sorted((r["version"], r["active"]) for r in rows if r["definition_id"] == def_id)
        assert mine == [("1.0.0", False), ("1.1.0", True), ("1.2.0", False)]
        assert all(f"--{r['definition_id']}--v{r['version']}.json" in r["path"] for r in rows)
        assert file_hashes(Path(full.snapshot)) == tenant_hashes(env, "tenant-1", all_versions=True)


@pytest.mark.anyio
async def test_gzip_mode(tmp_path: Path) -> None:
    """With compress the files are .json.gz holding the same documents, and a second gzip backup of
    an unchanged tenant is recognised as unchanged."""
    async with running_fake() as env:
        preload(env)
        clock = Clock()
        first = await backup_tenant(env.settings, "tenant-1", tmp_path, compress=True, clock=clock)
        snap = Path(first.snapshot)
        rows = manifest_of(snap)["files"]
        assert rows and all(r["path"].endswith(".json.gz") for r in rows)
        assert file_hashes(snap) == tenant_hashes(env, "tenant-1")
        second = await backup_tenant(env.settings, "tenant-1", tmp_path, compress=True, clock=clock)
        assert second.unchanged


@pytest.mark.anyio
async def test_retention_keeps_the_newest(tmp_path: Path) -> None:
    """keep=2 deletes the oldest complete snapshots beyond two and never the one just written."""
    async with running_fake() as env:
        clock = Clock()
        written = []
        for i in range(4):
            doc = sample_documents()[i]
            env.fake.state.add_workflow("tenant-1", doc)
            result = await backup_tenant(env.settings, "tenant-1", tmp_path, keep=2, clock=clock)
            written.append(result.snapshot)
        assert [str(s.path) for s in list_snapshots(tmp_path, "tenant-1")] == written[-2:]
        assert [str(p) for p in snapshot_dirs(tmp_path)] == sorted(written[-2:])
        assert result.removed == (written[1],)
        once = await backup_tenant(env.settings, "tenant-1", tmp_path, keep=1, clock=clock)
        assert once.unchanged and [str(p) for p in snapshot_dirs(tmp_path)] == [written[-1]]


@pytest.mark.anyio
async def test_corrupted_snapshot_is_refused_before_any_import(tmp_path: Path) -> None:
    """A snapshot with one flipped byte is refused with the damaged file named, and nothing lands."""
    from migrator.run.migrate import migrate
    from migrator.run.options import MigrateOptions

    async with running_fake() as env:
        preload(env)
        result = await backup_tenant(env.settings, "tenant-1", tmp_path, clock=Clock())
        snap = Path(result.snapshot)
        victim = snap / manifest_of(snap)["files"][3]["path"]
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0x01
        victim.write_bytes(bytes(data))
        with pytest.raises(MigratorError) as refused:
            await migrate(env.settings, MigrateOptions(sources=[str(snap)], tenants=["tenant-2"]))
        assert victim.name in str(refused.value) and "checksum" in str(refused.value)
        assert env.imports("tenant-2") == []


@pytest.mark.anyio
async def test_hostile_names_give_safe_unique_files(tmp_path: Path) -> None:
    """Workflows named to escape the folder, trip Windows or clash by case are stored as distinct
    files inside the snapshot folder, and their content survives."""
    async with running_fake() as env:
        base = sample_documents()[0]
        for name in [n for n in HOSTILE if n]:
            doc = orjson.loads(orjson.dumps(base))
            doc["workflow"]["name"] = name
            env.fake.state.add_workflow("tenant-1", doc)
        result = await backup_tenant(env.settings, "tenant-1", tmp_path, clock=Clock())
        snap = Path(result.snapshot)
        rows = manifest_of(snap)["files"]
        assert len(rows) == len(HOSTILE) - 1
        assert {r["name"] for r in rows} == {n for n in HOSTILE if n}
        assert len({r["path"].casefold() for r in rows}) == len(rows)
        for r in rows:
            assert (snap / r["path"]).resolve().parent == snap.resolve()
            check_safe(r["path"].split("--", 1)[0])
        assert {p.name for p in snap.iterdir()} == {r["path"] for r in rows} | {MANIFEST}


@pytest.mark.anyio
async def test_lock_refuses_an_overlapping_backup(tmp_path: Path) -> None:
    """While another live process holds the tenant's backup lock, a backup is refused with its pid."""
    async with running_fake() as env:
        held = lock_mod.acquire(str(lock_path(tmp_path, "tenant-1"))[: -len(".lock")])
        try:
            with pytest.raises(
                BackupError,
                match=rf"another backup of tenant tenant-1 is running \(pid {os.getpid()}\)",
            ):
                await backup_tenant(env.settings, "tenant-1", tmp_path, clock=Clock())
        finally:
            lock_mod.release(held)
        assert snapshot_dirs(tmp_path) == []
        result = await backup_tenant(env.settings, "tenant-1", tmp_path, clock=Clock())
        assert Path(result.snapshot).is_dir() and not lock_path(tmp_path, "tenant-1").exists()


def failing_export(env: Env, *, after: int, status: int) -> None:
    """Make the fake's export answer `status` from the (after+1)-th call on (fault injection in
    the fake's state; the HTTP path stays real)."""
    real = env.fake.state.export
    calls = [0]

    def export(tenant: str, definition_id: int, version: str | None) -> dict[str, Any]:
        calls[0] += 1
        if calls[0] > after:
            raise (
                errors_list(status, "injected")
                if status != 500
                else ApiError(500, {"message": "boom"})
            )
        return real(tenant, definition_id, version)

    env.fake.state.export = export  # type: ignore[method-assign]


@pytest.mark.anyio
async def test_interrupted_backup_leaves_no_manifest(tmp_path: Path) -> None:
    """An export that fails for good midway fails the backup and leaves no snapshot, no manifest
    and no partial folder behind; the next run writes a complete one."""
    async with running_fake(max_attempts=2) as env:
        preload(env)
        failing_export(env, after=5, status=500)
        with pytest.raises(BackupError, match="export failed"):
            await backup_tenant(env.settings, "tenant-1", tmp_path, clock=Clock())
        assert list(tmp_path.rglob(MANIFEST)) == []
        assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == []


@pytest.mark.anyio
async def test_leftover_partial_folder_is_cleaned_up(tmp_path: Path) -> None:
    """A hidden partial folder left by a killed backup is removed by the next backup of that tenant."""
    async with running_fake() as env:
        leftover = tmp_path / ".tenant-1-20200101T000000Z.999999999.partial"
        leftover.mkdir()
        (leftover / "x--1--v1.json").write_text("{}")
        result = await backup_tenant(env.settings, "tenant-1", tmp_path, clock=Clock())
        assert not leftover.exists()
        assert any("interrupted backup" in n for n in result.notices)


@pytest.mark.anyio
async def test_partial_folder_of_another_tenant_is_left_alone(tmp_path: Path) -> None:
    """Cleaning up after tenant-1 never touches a partial folder of a tenant whose name extends it."""
    async with running_fake() as env:
        other = tmp_path / ".tenant-1-eu-20200101T000000Z.999999999.partial"
        other.mkdir()
        await backup_tenant(env.settings, "tenant-1", tmp_path, clock=Clock())
        assert other.exists()


@pytest.mark.anyio
async def test_stale_lock_of_a_dead_process_is_replaced(tmp_path: Path) -> None:
    """A lock left by a process that no longer runs does not block the next backup, which says so."""
    async with running_fake() as env:
        path = lock_path(tmp_path, "tenant-1")
        info = lock_mod.LockInfo(pid=999_999_999, host=socket.gethostname(), started=1.0)
        path.write_bytes(info.to_bytes())
        result = await backup_tenant(env.settings, "tenant-1", tmp_path, clock=Clock())
        assert any("stale lock" in n for n in result.notices)
        assert not path.exists()


@pytest.mark.anyio
async def test_damaged_latest_snapshot_is_not_taken_as_unchanged(tmp_path: Path) -> None:
    """When the latest snapshot's files no longer match its manifest, the next backup writes a
    complete new snapshot instead of calling the tenant unchanged."""
    async with running_fake() as env:
        preload(env)
        clock = Clock()
        first = Path(
            (await backup_tenant(env.settings, "tenant-1", tmp_path, clock=clock)).snapshot
        )
        victim = first / manifest_of(first)["files"][0]["path"]
        victim.write_bytes(victim.read_bytes().replace(b"{", b"[", 1))
        second = await backup_tenant(env.settings, "tenant-1", tmp_path, clock=clock)
        assert not second.unchanged and Path(second.snapshot) != first
        assert any("damaged" in n for n in second.notices)
        assert file_hashes(Path(second.snapshot)) == tenant_hashes(env, "tenant-1")


@pytest.mark.anyio
async def test_export_404_is_skipped_and_reported(tmp_path: Path) -> None:
    """A definition whose export answers 404 is skipped and named; the rest is a complete snapshot
    and the exit code says partial."""
    async with running_fake() as env:
        count = preload(env)
        failing_export(env, after=count - 1, status=404)
        result = await backup_tenant(env.settings, "tenant-1", tmp_path, clock=Clock())
        assert result.versions == count - 1 and len(result.skipped) == 1
        assert "404" in result.skipped[0] and result.exit_code == 1
        assert len(manifest_of(Path(result.snapshot))["files"]) == count - 1
        assert "1 skipped" in result.message


# ---------------------------------------------------------------------------------------------
# The subcommand


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="migrator")
    add_backup_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_parser_options() -> None:
    """The backup subparser takes the documented options and points at cmd_backup."""
    args = parse(
        [
            "backup",
            "--config",
            "c.toml",
            "--tenant",
            "t",
            "--out",
            "d",
            "--all-versions",
            "--gzip",
            "--keep",
            "3",
            "--json",
            "--log-format",
            "json",
            "--quiet",
        ]
    )
    assert args.func is cmd_backup
    assert (args.config, args.tenant, args.out, args.keep) == ("c.toml", "t", "d", 3)
    assert args.all_versions and args.gzip and args.json and args.quiet and not args.debug
    assert args.log_format == "json"
    with pytest.raises(SystemExit):
        parse(["backup", "--config", "c.toml", "--tenant", "t", "--out", "d", "--keep", "0"])


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """cmd_backup configures structlog onto the captured stderr; put the old set-up back after."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.mark.anyio
@pytest.mark.usefixtures("restore_logging")
async def test_cmd_backup_prints_one_line_and_exit_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command prints one summary line per run on stdout (new, then unchanged) and exits 0; an
    unknown tenant is a one-line failure with exit 2 and no traceback; no secret is printed."""
    async with running_fake() as env:
        preload(env)
        config = tmp_path / "m.toml"
        for key, value in write_config_file(config, env).items():
            monkeypatch.setenv(key, value)
        argv = [
            "backup",
            "--config",
            str(config),
            "--tenant",
            "tenant-1",
            "--out",
            str(tmp_path / "o"),
        ]
        assert await anyio.to_thread.run_sync(cmd_backup, parse(argv)) == 0
        first = capsys.readouterr().out.splitlines()
        assert len(first) == 1 and first[0].startswith("backup tenant-1: ") and "→" in first[0]
        assert await anyio.to_thread.run_sync(cmd_backup, parse([*argv, "--json"])) == 0
        data = orjson.loads(capsys.readouterr().out)
        assert data["unchanged"] is True and data["exit_code"] == 0
        # Through the real CLI entry point: quiet and unchanged prints nothing, for cron mail.
        assert await anyio.to_thread.run_sync(cli.main, [*argv, "--quiet"]) == 0
        assert capsys.readouterr().out == ""
        bad = parse(["backup", "--config", str(config), "--tenant", "nope", "--out", str(tmp_path)])
        assert await anyio.to_thread.run_sync(cmd_backup, bad) == 2
        captured = capsys.readouterr()
        assert captured.out.startswith("backup nope: failed: ") and captured.out.count("\n") == 1
        assert "Traceback" not in captured.err
        for t in env.config.tenants:
            assert t.client_secret not in captured.err + captured.out


@pytest.mark.anyio
async def test_backup_asked_to_stop_writes_no_snapshot(tmp_path: Path) -> None:
    """A backup whose run is stopping (the first Ctrl-C, as run_with_signals hands it in) takes
    no new workflow, fails with one reason and leaves no snapshot, partial folder or pointer."""
    async with running_fake() as env:
        preload(env)
        stopping = anyio.Event()
        stopping.set()
        with pytest.raises(MigratorError, match="interrupted; no snapshot was written"):
            await backup_tenant(env.settings, "tenant-1", tmp_path, stopping=stopping)
    assert [p for p in os.listdir(tmp_path) if not p.endswith(".lock")] == []
