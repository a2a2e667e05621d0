"""`migrator backup`: export every workflow of one tenant into a checksummed snapshot folder.

Owns the backup run (exports, manifest last, unchanged detection, retention, one backup per tenant
at a time) and the `backup` subcommand; the snapshot on disk is store/snapshot.py's, and
store/sources.py reads it back.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import orjson
import structlog

from migrator import __version__
from migrator.core.config import Settings
from migrator.core.errors import JournalError, ZuoraError
from migrator.core.listing import active_version
from migrator.core.retry import classify
from migrator.core.versions import is_valid_version, version_key
from migrator.run.context import choose_tenants, run_clients
from migrator.run.target import definition_versions
from migrator.store import lock as lock_mod
from migrator.store.files import fsync_dir, write_atomic
from migrator.store.snapshot import (
    JSON_OPTIONS,
    MANIFEST,
    PARTIAL,
    SNAPSHOT_FORMAT,
    BackupError,
    FileEntry,
    Snapshot,
    encode_document,
    gzip_bytes,
    iso_time,
    list_snapshots,
    pointer_path,
    remove_snapshot,
    snapshot_file_name,
    snapshot_prefix,
    snapshot_problems,
)
from migrator.zuora import ZuoraClient

_GZIP_IN_THREAD = 256 * 1024

EXIT_OK, EXIT_PARTIAL, EXIT_FATAL = 0, 1, 2

_log = structlog.get_logger("migrator.backup")


# ---------------------------------------------------------------------------------------------
# The backup


@dataclass(frozen=True)
class BackupResult:
    """What one backup did; `message` is the one-line summary for people and cron mail."""

    tenant: str
    snapshot: str  # the folder written, or (unchanged) the existing one
    unchanged: bool
    workflows: int
    versions: int
    skipped: tuple[str, ...] = ()  # workflows and versions left out, each with why
    removed: tuple[str, ...] = ()  # snapshots deleted by retention
    notices: tuple[str, ...] = ()
    message: str = ""
    complete: bool = True  # False: the snapshot written is partial (something was skipped)
    latest: str | None = None  # the newest complete snapshot (what `<tenant>.latest` names)

    @property
    def exit_code(self) -> int:
        return EXIT_PARTIAL if self.skipped else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "snapshot": self.snapshot,
            "unchanged": self.unchanged,
            "workflows": self.workflows,
            "versions": self.versions,
            "skipped": list(self.skipped),
            "complete": self.complete,
            "latest": self.latest,
            "removed": list(self.removed),
            "notices": list(self.notices),
            "message": self.message,
            "exit_code": self.exit_code,
        }


@dataclass(frozen=True, slots=True)
class _Target:
    definition_id: int
    name: str
    version_id: int
    version: str
    active: bool


@dataclass
class _Run:
    """Mutable state of one backup while the workers run."""

    out_dir: Path
    partial: Path
    base: dict[str, FileEntry]  # path → entry of the latest sound snapshot
    base_dir: Path | None
    compress: bool
    entries: list[FileEntry] = field(default_factory=list)
    reused: set[str] = field(default_factory=set)  # paths to copy from the base, not rewritten
    skipped: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    definitions: set[int] = field(default_factory=set)
    made_partial: bool = False
    fatal: BaseException | None = None

    def store(self, target: _Target, document: Mapping[str, Any]) -> FileEntry:
        """Encode one export; write it unless the base snapshot already holds the same content."""
        raw = encode_document(document)
        stored = gzip_bytes(raw) if self.compress else raw
        path = snapshot_file_name(
            target.name, target.definition_id, target.version, compress=self.compress
        )
        digest = hashlib.sha256(stored).hexdigest()
        base = self.base.get(path)
        if base is not None and (base.sha256 == digest or self._same_content(base, raw)):
            self.reused.add(path)
            digest = base.sha256  # keep the old bytes (gzip output may differ across zlib builds)
        else:
            if not self.made_partial:
                self.partial.mkdir(mode=0o700, exist_ok=True)
                self.made_partial = True
            write_atomic(self.partial / path, stored)
        return FileEntry(
            path=path,
            definition_id=target.definition_id,
            version_id=target.version_id,
            name=target.name,
            version=target.version,
            active=target.active,
            sha256=digest,
        )

    def _same_content(self, base: FileEntry, raw: bytes) -> bool:
        if not self.compress or self.base_dir is None:
            return False
        try:
            return gzip.decompress((self.base_dir / base.path).read_bytes()) == raw
        except (OSError, EOFError, gzip.BadGzipFile):
            return False


def _int(value: Any, what: str, tenant: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.isdigit():
            return int(value)
        raise BackupError(f"tenant {tenant}: the server answered a non-integer {what}: {value!r}")
    return value


async def _targets(
    client: ZuoraClient,
    definition: Mapping[str, Any],
    all_versions: bool,
    notices: list[str] | None = None,
) -> list[_Target]:
    """Which versions of one definition to export: the active one, else the latest, or all.
    Without a versions list (404), the versions the listing entry shows, and a notice in
    `notices` saying what could not be seen (issue 23 #5)."""
    tenant = client.tenant.name
    def_id = _int(definition.get("id"), "workflow id", tenant)
    name = definition.get("name")
    name = name if isinstance(name, str) and name else f"workflow-{def_id}"
    active = active_version(definition)
    if not all_versions and active is not None and isinstance(active.get("version"), str):
        return [
            _Target(
                def_id, name, _int(active.get("id"), "version id", tenant), active["version"], True
            )
        ]
    versions, note = await definition_versions(client, def_id, definition)
    if note is not None and notices is not None:
        notices.append(f"workflow {def_id} ({name!r}): {note}")
    rows: list[_Target] = []
    for v in versions:
        text = v.get("version")
        if not isinstance(text, str) or not text:
            raise BackupError(
                f"tenant {tenant}: workflow {def_id} lists a version without a version string"
            )
        is_active = v.get("status") == "Active" or (
            active is not None and active.get("id") == v.get("id")
        )
        rows.append(_Target(def_id, name, _int(v.get("id"), "version id", tenant), text, is_active))
    if all_versions or not rows:
        return rows
    actives = [r for r in rows if r.active]
    if actives:
        return actives[:1]
    valid = [r for r in rows if is_valid_version(r.version)] or rows
    return [
        max(
            valid,
            key=lambda r: version_key(r.version) if is_valid_version(r.version) else (0, 0, 0),
        )
    ]


def _folder_name(out_dir: Path, tenant: str, now: float) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    base = f"{snapshot_prefix(tenant)}-{stamp}"
    name, n = base, 1
    # Check the hidden partial too: a same-second run of this process must not reuse it.
    while (out_dir / name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


def _clean_leftovers(out_dir: Path, tenant: str) -> list[str]:
    """Remove `.<prefix>-*.partial` folders that interrupted backups of this tenant left behind.

    Called under the tenant's lock, so no live backup of the tenant can own one; a folder whose
    pid is still alive is left alone all the same (belt and braces).
    """
    prefix = f".{snapshot_prefix(tenant)}-"
    notes: list[str] = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(out_dir):
            # The exact shape, so a tenant whose name extends ours ("prod" / "prod-eu") keeps its own.
            match = (
                PARTIAL.match(entry.name[len(prefix) :]) if entry.name.startswith(prefix) else None
            )
            if match is None:
                continue
            pid_text = match.group(1)
            if (
                pid_text.isdigit()
                and int(pid_text) != os.getpid()
                and lock_mod.pid_alive(int(pid_text))
            ):
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            notes.append(f"removed {entry.name}, left by an interrupted backup")
    return notes


def _take_lock(out_dir: Path, tenant: str) -> lock_mod.Lock:
    target = Path(out_dir) / f".{snapshot_prefix(tenant)}.backup"
    path = lock_mod.lock_path_for(target)
    try:
        return lock_mod.acquire(target)
    except JournalError:
        pass
    try:
        held = lock_mod._parse(path.read_bytes())
    except OSError:
        held = None
    if held is None:
        raise BackupError(
            f"cannot take the backup lock {path} for tenant {tenant}; if no backup is running, delete it"
        )
    where = "" if held.host == socket.gethostname() else f" on host {held.host}"
    raise BackupError(
        f"another backup of tenant {tenant} is running (pid {held.pid}{where}); lock file {path}"
    )


async def backup_tenant(
    settings: Settings,
    tenant_name: str,
    out_dir: str | os.PathLike[str],
    *,
    all_versions: bool = False,
    compress: bool = False,
    keep: int | None = None,
    clock: Callable[[], float] = time.time,
    stopping: anyio.Event | None = None,
) -> BackupResult:
    """Export every workflow of `tenant_name` into a new snapshot folder under `out_dir`.

    Nothing is written when the tenant is unchanged since its latest complete snapshot. Raises
    BackupError (or ZuoraError/AuthError) on anything fatal, after removing what it wrote.
    """
    choose_tenants(settings, [tenant_name])
    if keep is not None and keep < 1:
        raise BackupError("--keep must be at least 1")
    out = Path(out_dir)
    try:
        await anyio.to_thread.run_sync(partial(out.mkdir, parents=True, exist_ok=True))
    except OSError as exc:
        raise BackupError(f"{out}: cannot create the backup folder: {exc.strerror}") from None
    lock = _take_lock(out, tenant_name)
    log = _log.bind(tenant=tenant_name)
    try:
        notices = await anyio.to_thread.run_sync(_clean_leftovers, out, tenant_name)
        if lock.notice:
            notices.append(lock.notice)
        previous = await anyio.to_thread.run_sync(list_snapshots, out, tenant_name)
        # Partial snapshots are kept but never compared with, pointed at or counted.
        complete = [s for s in previous if s.complete]
        latest = complete[-1] if complete else None
        base: Snapshot | None = latest
        if latest is not None:
            problems = await anyio.to_thread.run_sync(snapshot_problems, latest)
            if problems:
                notices.append(
                    f"latest snapshot {latest.path} is damaged ({problems[0]}"
                    + (f" and {len(problems) - 1} more" if len(problems) > 1 else "")
                    + "); writing a complete new one"
                )
                base = None
        now = clock()
        final_name = _folder_name(out, tenant_name, now)
        run = _Run(
            out_dir=out,
            partial=out / f".{final_name}.{os.getpid()}.partial",
            base={e.path: e for e in base.files} if base else {},
            base_dir=base.path if base else None,
            compress=compress,
            notices=notices,
        )
        try:
            await _export_all(settings, tenant_name, run, all_versions, log, stopping)
            return await anyio.to_thread.run_sync(
                partial(_finish, run, tenant_name, final_name, now, latest, base, keep)
            )
        except OSError as exc:
            shutil.rmtree(run.partial, ignore_errors=True)
            where = exc.filename or out
            raise BackupError(f"{where}: cannot write the snapshot: {exc.strerror}") from None
        except BaseException:
            # Whatever went wrong (export error, cancellation), leave nothing that looks written.
            shutil.rmtree(run.partial, ignore_errors=True)
            raise
    finally:
        lock_mod.release(lock)
    raise AssertionError("unreachable")  # pragma: no cover


async def _export_all(
    settings: Settings,
    tenant_name: str,
    run: _Run,
    all_versions: bool,
    log: Any,
    stopping: anyio.Event | None = None,
) -> None:
    tenant = settings.tenants[tenant_name]
    async with run_clients(settings, [tenant], stopping) as clients:
        client = clients[tenant_name]
        definitions = await client.list_workflows()
        log.info("backup started", workflows=len(definitions))
        send, receive = anyio.create_memory_object_stream[Mapping[str, Any]](0)

        async def worker(jobs: anyio.abc.ObjectReceiveStream[Mapping[str, Any]]) -> None:
            async with jobs:
                async for definition in jobs:
                    try:
                        await _backup_definition(client, definition, run, all_versions, log)
                    except Exception as exc:
                        # One fatal error stops everyone; kept here and re-raised once below
                        # (a task group would wrap it in an exception group).
                        if run.fatal is None:
                            run.fatal = exc
                        tg.cancel_scope.cancel()
                        return

        async with anyio.create_task_group() as tg:
            async with receive:
                for _ in range(max(1, min(tenant.max_concurrency, len(definitions)))):
                    tg.start_soon(worker, receive.clone())
            async with send:
                for definition in definitions:
                    if stopping is not None and stopping.is_set():
                        # A snapshot without every workflow is not one: take nothing new, and
                        # the folder written so far is removed.
                        run.fatal = run.fatal or BackupError("interrupted; no snapshot was written")
                        break
                    await send.send(definition)
        if run.fatal is not None:
            raise run.fatal


async def _backup_definition(
    client: ZuoraClient, definition: Mapping[str, Any], run: _Run, all_versions: bool, log: Any
) -> None:
    """Export one definition's versions; what cannot be exported is skipped (the snapshot is then
    partial), except what says the tenant itself is failing (5xx, network, credentials)."""
    label = f"workflow {definition.get('id')!r} ({definition.get('name')!r})"

    def skip(why: str) -> None:
        run.skipped.append(f"{label}: {why}, skipped")
        # The summary line names every skipped workflow: the log says it only with --debug.
        log.debug("skipped", workflow=definition.get("id"), reason=why)

    try:
        targets = await _targets(client, definition, all_versions, run.notices)
    except BackupError as exc:  # this workflow's own data (id, version strings) is unusable
        skip(str(exc).removeprefix(f"tenant {client.tenant.name}: "))
        return
    except ZuoraError as exc:
        if not _skippable(exc):
            raise BackupError(f"{label}: versions list failed: {exc}") from None
        skip(f"GET /workflows/{definition.get('id')}/versions answered {exc.status}")
        return
    if not targets:
        run.notices.append(f"{label} has no versions; nothing to back up")
        return
    for target in targets:
        try:
            document = await client.export_workflow(target.definition_id, version=target.version)
        except ZuoraError as exc:
            if not _skippable(exc):
                raise BackupError(f"{label}: export failed: {exc}") from None
            skip(f"export of version {target.version[:40]!r} answered {exc.status}")
            continue
        try:
            # Encoding, gzip and fsync block: a thread keeps the other exports flowing.
            entry = await anyio.to_thread.run_sync(run.store, target, document)
        except OSError as exc:
            raise BackupError(f"{run.partial}: cannot write the snapshot: {exc.strerror}") from None
        run.entries.append(entry)
        run.definitions.add(target.definition_id)


def _skippable(exc: ZuoraError) -> bool:
    """A refusal about this one workflow or version (404, 400, ...), not the tenant failing."""
    return classify(exc.status).this_request


def _finish(
    run: _Run,
    tenant: str,
    final_name: str,
    now: float,
    latest: Snapshot | None,
    base: Snapshot | None,
    keep: int | None,
) -> BackupResult:
    """Compare with the latest snapshot; either write nothing, or complete and publish a new one."""
    entries = sorted(run.entries, key=lambda e: e.path)
    folded = {e.path.casefold() for e in entries}
    if len(folded) != len(entries):
        raise BackupError(f"tenant {tenant}: two exports map to one file name; nothing written")
    workflows = len(run.definitions)
    out = run.out_dir
    complete = not run.skipped
    if base is not None and latest is base and set(entries) == set(base.files):
        shutil.rmtree(run.partial, ignore_errors=True)
        _point_latest(out, tenant, latest.path.name)
        removed = _retain(out, tenant, keep, latest.path, complete=complete)
        return BackupResult(
            tenant=tenant,
            snapshot=str(latest.path),
            unchanged=True,
            workflows=workflows,
            versions=len(entries),
            skipped=tuple(run.skipped),
            removed=tuple(removed),
            notices=tuple(run.notices),
            message=_summary(tenant, f"unchanged since {latest.path}", run.skipped, None),
            latest=str(latest.path),
        )
    run.partial.mkdir(mode=0o700, exist_ok=True)
    for path in sorted(run.reused):
        assert run.base_dir is not None
        data = (run.base_dir / path).read_bytes()
        if hashlib.sha256(data).hexdigest() != run.base[path].sha256:
            raise BackupError(f"{run.base_dir / path}: changed during the backup; run again")
        write_atomic(run.partial / path, data)
    fsync_dir(run.partial)
    manifest: dict[str, Any] = {
        "format": SNAPSHOT_FORMAT,
        "tenant": tenant,
        "created_at": iso_time(now),
        "tool_version": __version__,
        "complete": complete,
        "files": [e.to_json() for e in entries],
    }
    if not complete:
        manifest["skipped"] = list(run.skipped)
    # The manifest is the commit point: written last, inside a folder nobody reads yet.
    write_atomic(run.partial / MANIFEST, orjson.dumps(manifest, option=JSON_OPTIONS) + b"\n")
    fsync_dir(run.partial)
    final = out / final_name
    os.rename(run.partial, final)
    fsync_dir(out)
    if complete:
        _point_latest(out, tenant, final_name)
    newest_complete = final if complete else (latest.path if latest else None)
    removed = _retain(out, tenant, keep, final, complete=complete)
    versions = len(entries)
    what = f"{workflows} workflow{'s' * (workflows != 1)}, {versions} version{'s' * (versions != 1)} → {final}"
    return BackupResult(
        tenant=tenant,
        snapshot=str(final),
        unchanged=False,
        workflows=workflows,
        versions=versions,
        skipped=tuple(run.skipped),
        removed=tuple(removed),
        notices=tuple(run.notices),
        message=_summary(
            tenant,
            what if complete else "PARTIAL snapshot, " + what,
            run.skipped,
            None if complete else str(newest_complete) if newest_complete else "none",
        ),
        complete=complete,
        latest=str(newest_complete) if newest_complete else None,
    )


def _summary(tenant: str, what: str, skipped: Sequence[str], latest: str | None) -> str:
    line = f"backup {tenant}: {what}"
    if skipped:
        line += f"; {len(skipped)} skipped: " + "; ".join(skipped)
    if latest is not None:
        line += f"; latest complete snapshot: {latest}"
    return line


def _point_latest(out: Path, tenant: str, folder: str) -> None:
    pointer = pointer_path(out, tenant)
    data = (folder + "\n").encode()
    with contextlib.suppress(OSError):
        if pointer.read_bytes() == data:
            return
    write_atomic(out / pointer.name, data, mode=0o644)
    fsync_dir(out)


def _retain(
    out: Path, tenant: str, keep: int | None, current: Path, *, complete: bool
) -> list[str]:
    """Delete the oldest complete snapshots beyond `keep` (never `current`, never a folder
    without a manifest: that may be a running backup's), and the partial ones a complete
    snapshot has superseded. After a partial backup nothing is deleted: only complete
    snapshots count, and a partial one never pushes a complete one out."""
    if keep is None or not complete:
        return []
    snaps = [s for s in list_snapshots(out, tenant) if s.path != current]
    full = [s for s in snaps if s.complete]
    doomed = full[: max(0, len(full) + 1 - keep)] + [s for s in snaps if not s.complete]
    removed: list[str] = []
    for snap in doomed:
        remove_snapshot(snap.path)
        removed.append(str(snap.path))
    return removed
