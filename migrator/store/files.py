"""Durable files: fsync that reaches the disk, a folder's entries made durable, and the atomic
write (temporary file in the same folder, fsync, rename) that the journal, snapshots, plan files,
reports and tenant profiles all use. No format knowledge here: bytes in, a file out.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterable
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]


def durable_fsync(fd: int) -> None:
    """fsync that reaches the platter: on macOS plain fsync stops at the drive's cache, so use
    F_FULLFSYNC there (falling back to fsync where the filesystem refuses it)."""
    full = getattr(fcntl, "F_FULLFSYNC", None) if fcntl is not None else None
    if full is not None:
        try:
            fcntl.fcntl(fd, full)
            return
        except OSError:
            pass
    os.fsync(fd)


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make a folder's entries (new names, renames, removals) durable."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # Windows has no directory handles; its renames are durable on their own
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some filesystems (and platforms) refuse fsync on directories; real I/O errors do not hide.
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.EACCES):
            raise
    finally:
        os.close(fd)


def write_atomic(
    target: str | os.PathLike[str],
    data: bytes | Iterable[bytes],
    *,
    mode: int = 0o600,
) -> None:
    """Write `target` so that it is either absent, the old file, or all of `data`: a temporary
    file in the same folder (created with `mode`, private by default), fsync, rename."""
    path = Path(target)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), mode)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, mode)  # a temporary file left by an earlier run keeps its old mode
        for chunk in [data] if isinstance(data, bytes) else data:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)
