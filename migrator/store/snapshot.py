"""Snapshots on disk, as `migrator backup` writes them: safe file names, the manifest, atomic
writes, reading and listing a tenant's snapshots and checking one whole. No network here.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import re
import shutil
import time
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from migrator.core.errors import MigratorError
from migrator.core.versions import is_valid_version
from migrator.store import lock as lock_mod
from migrator.store.files import fsync_dir

SNAPSHOT_FORMAT = "migrator-snapshot/1"
MANIFEST = "manifest.json"
# Sorted keys make equal content give equal bytes (so unchanged tenants hash alike run after run);
# indentation keeps snapshots diffable and readable. Values are never touched.
JSON_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
MAX_SLUG = 80  # with the id, version and suffix a file name stays far below 255 bytes
MAX_VERSION_CHARS = 40


# Windows refuses these as a file name's stem whatever the extension ("CON.json", "com1.x").
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"COM{i}" for i in range(10)}
    | {f"LPT{i}" for i in range(10)}
)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_DASHES = re.compile(r"-{2,}")  # "--" separates slug, id and version in file names
_DOTS = re.compile(r"\.{2,}")
PARTIAL = re.compile(r"^\d{8}T\d{6}Z(?:-\d+)?\.(\d+)\.partial$")
# Latin letters NFKD does not decompose; spelled out so "Søren" reads "Soren", not "Sren".
_LATIN = str.maketrans(
    {
        "ø": "o",
        "Ø": "O",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "ß": "ss",
        "đ": "d",
        "Đ": "D",
        "ł": "l",
        "Ł": "L",
        "þ": "th",
        "Þ": "Th",
        "ð": "d",
        "Ð": "D",
        "ı": "i",
    }
)


class BackupError(MigratorError):
    """Raised when a backup cannot be made: lock held, export failed, out dir unwritable."""


# ---------------------------------------------------------------------------------------------
# Names (pure)


def safe_name(name: str, *, max_len: int = MAX_SLUG) -> str:
    """A readable slug of `name` that is a valid file name on Linux, macOS and Windows.

    NFKD folds accents to ASCII ("Ünïcødé" → "Unicode"); anything else outside [A-Za-z0-9._-]
    becomes "-"; no "..", no leading/trailing dots or dashes, no reserved Windows stem, at most
    `max_len` characters. A name with nothing readable left becomes "wf-<hash>". Uniqueness is not
    this function's job: file names add the definition id.
    """
    ascii_text = (
        unicodedata.normalize("NFKD", name.translate(_LATIN))
        .encode("ascii", "ignore")
        .decode("ascii")
    )
    slug = _UNSAFE.sub("-", ascii_text)
    slug = _DOTS.sub(".", slug)
    slug = _DASHES.sub("-", slug)
    slug = slug.strip(".-_ ")
    slug = slug[:max_len].rstrip(".-_ ")
    if not slug:
        return "wf-" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    if slug.split(".", 1)[0].upper() in _RESERVED:
        slug = ("_" + slug)[:max_len].rstrip(".-_ ")
    return slug


def _safe_version(version: str) -> str:
    if is_valid_version(version) and len(version) <= MAX_VERSION_CHARS:
        return version
    if len(version) > MAX_VERSION_CHARS:
        # A 300-digit version is valid but no file name holds it: a prefix and a hash do.
        digest = hashlib.sha256(version.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        return safe_name(version[:24], max_len=24) + "-h" + digest
    # A server that answers odd version strings must not get to pick our file names.
    return safe_name(version, max_len=MAX_VERSION_CHARS)


def snapshot_file_name(name: str, definition_id: int, version: str, *, compress: bool) -> str:
    """`<safe-name>--<definition_id>--v<version>.json[.gz]`: the id makes it unique, even when two
    names differ only by case on a case-insensitive filesystem."""
    suffix = ".json.gz" if compress else ".json"
    return f"{safe_name(name)}--{int(definition_id)}--v{_safe_version(version)}{suffix}"


def snapshot_prefix(tenant: str) -> str:
    """Folder-name prefix for a tenant; a hash is added when the slug lost information, so two
    tenant names that slug alike still get their own folders and lock files."""
    slug = safe_name(tenant, max_len=60)
    if slug != tenant:
        slug += "-" + hashlib.sha256(tenant.encode()).hexdigest()[:8]
    return slug


def lock_path(out_dir: str | os.PathLike[str], tenant: str) -> Path:
    """The lock file that keeps two backups of one tenant into one out dir from overlapping."""
    return lock_mod.lock_path_for(Path(out_dir) / f".{snapshot_prefix(tenant)}.backup")


def pointer_path(out_dir: str | os.PathLike[str], tenant: str) -> Path:
    """`<prefix>.latest`: a one-line text file naming the newest complete snapshot folder."""
    return Path(out_dir) / f"{snapshot_prefix(tenant)}.latest"


def encode_document(document: Mapping[str, Any]) -> bytes:
    """The bytes a snapshot stores for an export: pretty, sorted keys, values untouched."""
    return orjson.dumps(document, option=JSON_OPTIONS) + b"\n"


def gzip_bytes(raw: bytes) -> bytes:
    # mtime=0 and no file name in the header: equal content gives equal bytes.
    return gzip.compress(raw, compresslevel=9, mtime=0)


def iso_time(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


# ---------------------------------------------------------------------------------------------
# Snapshots on disk


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One manifest row: a stored export and what it is."""

    path: str
    definition_id: int
    version_id: int
    name: str
    version: str
    active: bool
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "definition_id": self.definition_id,
            "version_id": self.version_id,
            "name": self.name,
            "version": self.version,
            "active": self.active,
            "sha256": self.sha256,
        }


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A published snapshot folder (its manifest parsed).

    `complete` is False for a partial backup (something was skipped; its manifest says what):
    it is never `latest` and never counts towards `--keep`. Manifests without the field are
    complete (older backups wrote only complete ones).
    """

    path: Path
    tenant: str
    created_at: str
    files: tuple[FileEntry, ...]
    complete: bool = True


def _entry(row: Any) -> FileEntry | None:
    if not isinstance(row, dict):
        return None
    try:
        entry = FileEntry(
            path=row["path"],
            definition_id=row["definition_id"],
            version_id=row["version_id"],
            name=row["name"],
            version=row["version"],
            active=row["active"],
            sha256=row["sha256"],
        )
    except KeyError:
        return None
    types_ok = (
        isinstance(entry.path, str)
        and isinstance(entry.definition_id, int)
        and isinstance(entry.version_id, int)
        and isinstance(entry.name, str)
        and isinstance(entry.version, str)
        and isinstance(entry.active, bool)
        and isinstance(entry.sha256, str)
    )
    return entry if types_ok else None


def read_snapshot(folder: Path) -> Snapshot | None:
    """The folder's snapshot, or None when it has no readable `migrator-snapshot/1` manifest."""
    try:
        data = orjson.loads((folder / MANIFEST).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("format") != SNAPSHOT_FORMAT:
        return None
    tenant, created, rows = data.get("tenant"), data.get("created_at"), data.get("files")
    if not isinstance(tenant, str) or not isinstance(created, str) or not isinstance(rows, list):
        return None
    entries = [_entry(row) for row in rows]
    if any(e is None for e in entries):
        return None
    complete = data.get("complete", True)
    if not isinstance(complete, bool):
        return None
    return Snapshot(
        folder, tenant, created, tuple(e for e in entries if e is not None), complete=complete
    )


def list_snapshots(out_dir: str | os.PathLike[str], tenant: str) -> list[Snapshot]:
    """The tenant's published snapshots (complete and partial) in `out_dir`, oldest first.

    A folder without a readable manifest is not a snapshot (an interrupted run, or someone
    else's folder): it is neither listed nor ever deleted by retention.
    """
    prefix = snapshot_prefix(tenant) + "-"
    found: list[Snapshot] = []
    try:
        entries = list(os.scandir(out_dir))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise BackupError(f"{os.fspath(out_dir)}: cannot list the folder: {exc.strerror}") from None
    for entry in entries:
        if not entry.name.startswith(prefix) or not entry.is_dir(follow_symlinks=False):
            continue
        snap = read_snapshot(Path(entry.path))
        if snap is not None and snap.tenant == tenant:
            found.append(snap)
    # Same-second runs get "-2", "-3": the longer name is the newer one.
    found.sort(key=lambda s: (s.created_at, len(s.path.name), s.path.name))
    return found


def snapshot_problems(snap: Snapshot) -> list[str]:
    """What is wrong with a snapshot's files (missing, checksum mismatch); [] when sound."""
    problems: list[str] = []
    for entry in snap.files:
        try:
            data = (snap.path / entry.path).read_bytes()
        except OSError as exc:
            problems.append(f"{entry.path}: cannot read ({exc.strerror})")
            continue
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            problems.append(f"{entry.path}: checksum does not match the manifest")
    return problems


def remove_snapshot(folder: Path) -> None:
    """Delete a snapshot so that it stops looking complete first (manifest goes before files)."""
    with contextlib.suppress(FileNotFoundError):
        (folder / MANIFEST).unlink()
    fsync_dir(folder)
    shutil.rmtree(folder, ignore_errors=True)
