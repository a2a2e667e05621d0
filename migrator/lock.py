"""The journal's lock file: one migrator process per journal, stale locks from dead processes replaced.

Sync file I/O only (it is a handful of tiny system calls); `journal.Journal.open` takes and releases it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from migrator.errors import JournalError


@dataclass(frozen=True, slots=True)
class LockInfo:
    """Who holds a lock: process id, host name, and when (unix time) the lock was taken."""

    pid: int
    host: str
    started: float

    def to_bytes(self) -> bytes:
        return orjson.dumps({"pid": self.pid, "host": self.host, "started": self.started}) + b"\n"


@dataclass(frozen=True, slots=True)
class Lock:
    """A held lock; `notice` says what had to be cleaned up to take it (a stale lock), if anything."""

    path: Path
    info: LockInfo
    notice: str | None = None


def lock_path_for(journal_path: str | os.PathLike[str]) -> Path:
    """The lock file that guards a journal: `<journal>.lock` beside it."""
    return Path(f"{os.fspath(journal_path)}.lock")


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (signal 0 probes without signalling)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        # It exists but belongs to someone else: alive, and not ours to judge stale.
        return True
    return True


def _parse(raw: bytes) -> LockInfo | None:
    try:
        data = orjson.loads(raw)
        pid, host, started = data["pid"], data["host"], data["started"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    if not (isinstance(pid, int) and isinstance(host, str) and isinstance(started, int | float)):
        return None
    return LockInfo(pid, host, float(started))


def _create(path: Path, info: LockInfo) -> None:
    """Create the lock atomically with its content already in it.

    The content goes to a private temporary file first and is then hard-linked to the lock name:
    link() fails with EEXIST like O_EXCL does, but a crash can never leave an empty lock behind
    (with plain O_EXCL a SIGKILL between create and write would strand a lock nobody can judge).
    Filesystems without hard links fall back to O_CREAT|O_EXCL.
    """
    tmp = path.with_name(f"{path.name}.{info.pid}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, info.to_bytes())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, info.to_bytes())
        finally:
            os.close(fd)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def acquire(
    journal_path: str | os.PathLike[str],
    *,
    pid: int | None = None,
    host: str | None = None,
    clock: Callable[[], float] = time.time,
    alive: Callable[[int], bool] = pid_alive,
) -> Lock:
    """Take the journal's lock or raise JournalError saying who holds it and what to do.

    A lock whose process is dead on this host is stale: it is removed, reported in `Lock.notice`,
    and the lock is taken. A lock from another host can't be judged from here and is refused.
    """
    path = lock_path_for(journal_path)
    info = LockInfo(os.getpid() if pid is None else pid, host or socket.gethostname(), clock())
    notice: str | None = None
    for _ in range(3):
        try:
            _create(path, info)
            return Lock(path, info, notice)
        except FileExistsError:
            pass
        except OSError as exc:
            raise JournalError(f"cannot create the lock file {path}: {exc.strerror}") from None
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            continue  # released between our attempt and the read: try again
        except OSError as exc:
            raise JournalError(f"cannot read the lock file {path}: {exc.strerror}") from None
        held = _parse(raw)
        if held is None:
            raise JournalError(
                f"the lock file {path} is unreadable; if no migrator is using "
                f"{os.fspath(journal_path)}, delete {path} and run again"
            )
        if held.host != info.host:
            raise JournalError(
                f"another migrator (pid {held.pid} on host {held.host}) is using this journal; "
                f"if it is no longer running, delete {path} and run again"
            )
        if alive(held.pid):
            raise JournalError(
                f"another migrator (pid {held.pid}) is using this journal "
                f"{os.fspath(journal_path)}; wait for it to finish or stop it"
            )
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        notice = (
            f"removed a stale lock {path} left by pid {held.pid} "
            f"(no longer running; taken at {_iso(held.started)})"
        )
    raise JournalError(f"cannot take the lock {path}: other processes keep taking it")


def release(lock: Lock) -> None:
    """Remove the lock file, but only while it is still ours (never someone else's newer lock)."""
    try:
        held = _parse(lock.path.read_bytes())
    except OSError:
        return
    if held == lock.info:
        with contextlib.suppress(FileNotFoundError):
            lock.path.unlink()


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
