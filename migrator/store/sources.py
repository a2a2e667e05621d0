"""Where export documents come from: files, directories, `.json.gz`, and backup snapshots.

Discovery is lazy (a generator), reading is one file at a time with size caps; every problem is
an InputError naming the file, so one bad file never stops the others.
"""

from __future__ import annotations

import errno
import hashlib
import heapq
import os
import posixpath
import stat
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from migrator.core.document import DEFAULT_MAX_BYTES, ExportDocument, parse_document
from migrator.core.errors import InputError
from migrator.core.logs import printable

MANIFEST_NAME = "manifest.json"
SNAPSHOT_FORMAT = "migrator-snapshot/1"
SUFFIXES = (".json", ".json.gz")
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class SourceItem:
    """One document to read: a file, or a member of a snapshot directory (with its checksum)."""

    path: str
    member: str | None = None
    definition_id: int | None = None
    sha256: str | None = None

    @property
    def source(self) -> str:
        """How errors and reports name this item: the file, or `snapshot/dir:member`."""
        return self.path if self.member is None else f"{self.path}:{self.member}"


@dataclass(frozen=True)
class ManifestEntry:
    """One file listed in a snapshot manifest."""

    path: str
    definition_id: int | None
    version_id: int | None
    name: str | None
    version: str | None
    active: bool | None
    sha256: str


def is_document_name(name: str) -> bool:
    """True for the file names discovery picks up in directories (`.json`, `.json.gz`)."""
    lower = name.lower()
    return lower.endswith(SUFFIXES) and not name.startswith(".")


def discover(paths: Sequence[str]) -> Iterator[SourceItem]:
    """Yield every document under `paths` lazily: files as given, directories recursively in
    sorted order per directory, snapshots (directories with a manifest) as their listed files.

    A path that does not exist is still yielded; reading it raises the InputError, so the run
    reports it as one failed item and carries on (`migrate`, `plan` and `verify` refuse a
    missing SOURCE before this, with run.migrate.check_source_paths: this covers one that
    vanishes meanwhile).
    """
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            yield SourceItem(path)
            continue
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(path)
        else:
            yield SourceItem(path)


def is_snapshot(path: str) -> bool:
    """True when `path` is a directory holding an entry named like a snapshot manifest.

    Whatever that entry is (a file, a dangling symlink, a directory): a folder that claims to be
    a snapshot is checked as one, and an unreadable manifest makes it a damaged snapshot rather
    than a plain folder whose checks are skipped.
    """
    return os.path.lexists(os.path.join(path, MANIFEST_NAME))


def find_snapshots(paths: Sequence[str]) -> list[str]:
    """Every snapshot directory under `paths` (without reading any document), so a caller can
    run verify_snapshot on each before importing anything."""
    found: list[str] = []
    seen: set[tuple[int, int]] = set()
    # Directories only, as the walk of the documents goes (links followed, loops cut): a
    # directory's file names are never listed here (os.walk would hold them all).
    stack = [p for p in reversed(paths) if os.path.isdir(p)]
    while stack:
        root = stack.pop()
        try:
            st = os.stat(root)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        if is_snapshot(root):
            found.append(root)
            continue
        subdirs: list[str] = []
        try:
            with os.scandir(root) as entries:
                for entry in entries:
                    try:
                        if not entry.name.startswith(".") and entry.is_dir():
                            subdirs.append(entry.name)
                    except OSError:
                        continue
        except OSError:
            continue  # unreadable: the walk of the documents reports it
        stack.extend(os.path.join(root, d) for d in sorted(subdirs, reverse=True))
    return found


def _children(directory: str, names: Iterable[str]) -> Iterator[str]:
    return (os.path.join(directory, n) for n in names if not n.startswith("."))


_NAMES_PER_RUN = 4096


def sorted_names(directory: str, run: int = _NAMES_PER_RUN) -> Iterator[str]:
    """The names in `directory`, in sorted order, held compactly: the listing is read a run of
    names at a time, each run sorted and kept as one NUL-joined string (no file name holds a
    NUL), and the runs merged as they are walked. A directory of 100,000 documents costs the
    bytes of its names, not a string object and a list slot for each (~100 bytes a name)."""
    runs: list[str] = []
    batch: list[str] = []
    with os.scandir(directory) as entries:
        for entry in entries:
            batch.append(entry.name)
            if len(batch) >= run:
                batch.sort()
                runs.append("\0".join(batch))
                batch = []
    batch.sort()
    if not runs:
        return iter(batch)
    if batch:
        runs.append("\0".join(batch))
    return heapq.merge(*(_split(r) for r in runs))


def _split(joined: str) -> Iterator[str]:
    start = 0
    while True:
        end = joined.find("\0", start)
        if end < 0:
            yield joined[start:]
            return
        yield joined[start:end]
        start = end + 1


def _walk(top: str) -> Iterator[SourceItem]:
    seen: set[tuple[int, int]] = set()
    # A stack of sorted iterators keeps the walk lazy and free of recursion.
    stack: list[Iterator[str]] = [iter([top])]
    while stack:
        try:
            path = next(stack[-1])
        except StopIteration:
            stack.pop()
            continue
        try:
            st = os.stat(path)
        except OSError:
            yield SourceItem(path)
            continue
        if not stat.S_ISDIR(st.st_mode):
            if is_document_name(os.path.basename(path)):
                yield SourceItem(path)
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:  # a symlink loop
            continue
        seen.add(key)
        if is_snapshot(path):
            yield from snapshot_items(path)
            continue
        try:
            names = sorted_names(path)
        except OSError as exc:
            raise InputError(path, "$", f"cannot list directory: {exc.strerror}") from None
        # Paths are joined as they are walked, from names held compactly (`sorted_names`).
        stack.append(_children(path, names))


# --------------------------------------------------------------------------------------------
# Snapshots


def _entry(raw: Any, where: str, manifest: str) -> ManifestEntry:
    if not isinstance(raw, dict):
        raise InputError(manifest, where, "must be an object")
    path = raw.get("path")
    if not isinstance(path, str) or not path:
        raise InputError(manifest, f"{where}.path", "must be a non-empty string")
    sha = raw.get("sha256")
    if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise InputError(manifest, f"{where}.sha256", "must be 64 lower-case hex digits")

    def opt(key: str, typ: type) -> Any:
        value = raw.get(key)
        if value is not None and (
            not isinstance(value, typ) or (typ is int and isinstance(value, bool))
        ):
            raise InputError(
                manifest,
                f"{where}.{key}",
                f"must be {'an integer' if typ is int else 'a ' + typ.__name__}",
            )
        return value

    return ManifestEntry(
        path=path,
        definition_id=opt("definition_id", int),
        version_id=opt("version_id", int),
        name=opt("name", str),
        version=opt("version", str),
        active=opt("active", bool),
        sha256=sha,
    )


def read_manifest(directory: str) -> tuple[dict[str, Any], list[ManifestEntry]]:
    """The snapshot manifest's header fields and file entries; InputError when it is unusable."""
    manifest = os.path.join(directory, MANIFEST_NAME)
    try:
        with os.fdopen(open_regular(manifest), "rb") as f:
            raw = f.read(DEFAULT_MAX_BYTES + 1)
    except FileNotFoundError:
        raise InputError(manifest, "$", "snapshot manifest is missing") from None
    except OSError as exc:
        raise InputError(manifest, "$", f"cannot read: {exc.strerror}") from None
    if len(raw) > DEFAULT_MAX_BYTES:
        raise InputError(manifest, "$", f"manifest is over the {DEFAULT_MAX_BYTES}-byte limit")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InputError(
            manifest, "$", f"not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(data, dict):
        raise InputError(manifest, "$", "must be a JSON object")
    if data.get("format") != SNAPSHOT_FORMAT:
        raise InputError(
            manifest,
            "$.format",
            f"unknown snapshot format {data.get('format')!r} (expected {SNAPSHOT_FORMAT!r})",
        )
    files = data.get("files")
    if not isinstance(files, list):
        raise InputError(manifest, "$.files", "must be an array")
    entries = [_entry(item, f"$.files[{i}]", manifest) for i, item in enumerate(files)]
    header = {k: v for k, v in data.items() if k != "files"}
    return header, entries


def _member_problem(member: str) -> str | None:
    """Why a manifest path may not be opened inside the snapshot, or None when it is safe."""
    if "\\" in member or "\x00" in member:
        return "path uses a backslash or NUL"
    if member.startswith("/") or posixpath.isabs(member) or (len(member) > 1 and member[1] == ":"):
        return "path is absolute; it would escape the snapshot directory"
    parts = member.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "path has empty, '.' or '..' parts; it would escape the snapshot directory"
    return None


def _member_path(directory: str, member: str) -> str:
    problem = _member_problem(member)
    if problem:
        raise InputError(f"{directory}:{member}", "$", problem)
    full = os.path.join(directory, *member.split("/"))
    # A symlink inside the snapshot could still point outside it.
    real_dir = os.path.realpath(directory)
    if os.path.commonpath([real_dir, os.path.realpath(full)]) != real_dir:
        raise InputError(
            f"{directory}:{member}", "$", "path leads outside the snapshot directory (symlink)"
        )
    return full


def snapshot_items(directory: str) -> Iterator[SourceItem]:
    """The documents a snapshot lists, each carrying its definition id and checksum."""
    _, entries = read_manifest(directory)
    for entry in entries:
        yield SourceItem(directory, entry.path, entry.definition_id, entry.sha256)


def file_sha256(path: str) -> str:
    """Hex sha256 of a file's bytes as stored (compressed bytes for `.json.gz`)."""
    digest = hashlib.sha256()
    with os.fdopen(open_regular(path), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_snapshot(directory: str) -> list[str]:
    """Every problem with a snapshot directory, one line each; [] when it is sound."""
    try:
        _, entries = read_manifest(directory)
    except InputError as exc:
        return [str(exc)]
    problems: list[str] = []
    listed: set[str] = set()
    for entry in entries:
        where = f"{directory}:{entry.path}"
        if entry.path in listed:
            problems.append(f"{where}: listed twice in the manifest")
            continue
        listed.add(entry.path)
        try:
            full = _member_path(directory, entry.path)
        except InputError as exc:
            problems.append(str(exc))
            continue
        try:
            actual = file_sha256(full)
        except FileNotFoundError:
            problems.append(f"{where}: missing (listed in the manifest)")
            continue
        except OSError as exc:
            problems.append(f"{where}: cannot read: {exc.strerror}")
            continue
        if actual != entry.sha256:
            problems.append(
                f"{where}: checksum mismatch (manifest {entry.sha256[:12]}…, file {actual[:12]}…)"
            )
    for member in _snapshot_files(directory):
        if member not in listed:
            problems.append(f"{directory}:{member}: not listed in the manifest")
    return problems


def _snapshot_files(directory: str) -> Iterator[str]:
    """Relative '/'-separated paths of the document files in a snapshot directory."""
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = os.path.relpath(root, directory)
        for name in sorted(files):
            if not is_document_name(name) or (rel == "." and name == MANIFEST_NAME):
                continue
            yield name if rel == "." else "/".join([*rel.split(os.sep), name])


# --------------------------------------------------------------------------------------------
# Reading


class NotRegularFile(OSError):
    """Raised when a path names a FIFO, device, socket or directory where a file must be read."""

    def __init__(self, kind: str) -> None:
        super().__init__(errno.EINVAL, f"is a {kind}, not a regular file")
        self.kind = kind


def _kind(mode: int) -> str | None:
    """What a non-regular file is, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISFIFO(mode):
        return "FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


def open_regular(path: str) -> int:
    """A read-only descriptor on `path`, which must be a regular file (NotRegularFile if not).

    Opened non-blocking, so a FIFO (a `*.json` pipe nobody writes to) cannot hang the open; a
    regular file ignores the flag. A socket cannot be opened at all (ENXIO): said as a socket.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise NotRegularFile("socket") from None
        raise
    try:
        kind = _kind(os.fstat(fd).st_mode)
    except OSError:
        os.close(fd)
        raise
    if kind is not None:
        os.close(fd)
        raise NotRegularFile(kind)
    return fd


def undecodable(path: str) -> bool:
    """True when a path holds bytes that are not UTF-8 (kept as lone surrogates by the OS layer)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _read_capped(path: str, limit: int, source: str) -> bytes:
    """The file's bytes, at most `limit + 1` of them (one more than allowed shows it is too big)."""
    # os.open/os.read rather than open(): no buffered file object to build and tear down, which
    # is a third of the cost of reading a small document.
    try:
        fd = open_regular(path)
        try:
            # Ask for the file's size (plus one byte to see growth), not the limit: reading
            # into a limit-sized buffer costs a 32 MiB allocation per small file.
            size = os.fstat(fd).st_size
            want = limit + 1
            ask = min(want, size + 1) if size else min(want, 1 << 16)
            parts: list[bytes] = []
            total = 0
            while total < want:  # until end of file (the file may grow while we read it)
                piece = os.read(fd, ask)
                if not piece:
                    break
                parts.append(piece)
                total += len(piece)
                ask = min(want - total, 1 << 16)
        finally:
            os.close(fd)
    except FileNotFoundError:
        raise InputError(source, "$", "no such file or directory") from None
    except IsADirectoryError:
        raise InputError(source, "$", "is a directory, not a file") from None
    except NotRegularFile as exc:
        if exc.kind == "directory":
            raise InputError(source, "$", "is a directory, not a file") from None
        raise InputError(source, "$", f"{exc.strerror}; only regular files are read") from None
    except OSError as exc:
        raise InputError(source, "$", f"cannot read: {exc.strerror}") from None
    return parts[0] if len(parts) == 1 else b"".join(parts)


def gunzip(data: bytes, source: str, *, max_bytes: int) -> bytes:
    """Decompress gzip `data` (all members) without ever holding more than `max_bytes + 1`."""
    if not data.startswith(_GZIP_MAGIC):
        raise InputError(source, "$", "not gzip data (the name ends in .gz)")
    out: list[bytes] = []
    total = 0
    rest = data
    while rest:
        decomp = zlib.decompressobj(wbits=31)
        chunk = rest
        try:
            while chunk:
                piece = decomp.decompress(chunk, max_bytes + 1 - total)
                out.append(piece)
                total += len(piece)
                if total > max_bytes:
                    raise InputError(
                        source,
                        "$",
                        f"decompresses to more than the {max_bytes}-byte limit (max_document_bytes)",
                    )
                chunk = decomp.unconsumed_tail
                if decomp.eof:
                    break
                if not piece and not chunk:
                    break
        except zlib.error as exc:
            raise InputError(source, "$", f"corrupt gzip data: {exc}") from None
        if not decomp.eof:
            raise InputError(source, "$", "truncated gzip data (the file ends mid-stream)")
        rest = decomp.unused_data
        # Zero padding after the last member is legal (tar-style blocks).
        if rest and not rest.startswith(_GZIP_MAGIC):
            if rest.strip(b"\x00"):
                raise InputError(source, "$", "trailing garbage after gzip data")
            break
    return b"".join(out)


def read_document(item: SourceItem, *, max_bytes: int = DEFAULT_MAX_BYTES) -> ExportDocument:
    """Read, (check,) decompress and parse one item; InputError naming it on any problem."""
    source = item.source
    if undecodable(source):
        # The name cannot be written to the journal, the workspace or a report as it is: the
        # item fails under its name with the undecodable bytes shown as escapes.
        raise InputError(
            printable(source), "$", "file name is not valid UTF-8; rename the file to read it"
        )
    path = item.path if item.member is None else _member_path(item.path, item.member)
    name = path.lower()
    gz = name.endswith(".gz")
    raw = _read_capped(path, max_bytes, source)
    if len(raw) > max_bytes:
        raise InputError(
            source, "$", f"file is over the {max_bytes}-byte limit (max_document_bytes)"
        )
    if item.sha256 is not None:
        actual = hashlib.sha256(raw).hexdigest()
        if actual != item.sha256:
            raise InputError(
                source,
                "$",
                f"checksum mismatch (manifest {item.sha256[:12]}…, file {actual[:12]}…)",
            )
    if gz:
        raw = gunzip(raw, source, max_bytes=max_bytes)
    return parse_document(raw, source, max_bytes=max_bytes, definition_id=item.definition_id)
