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

from migrator.core.errors import JournalError

try:
    import fcntl
except ImportError:  # Windows: no fcntl, so no flock for the stale-lock takeover below
    HAVE_FCNTL = False
else:
    HAVE_FCNTL = True

UNSUPPORTED = (
    "this platform is not supported: migrator runs on Linux and macOS "
    "(Windows is not supported: its journal lock needs fcntl)"
)


@dataclass(frozen=True, slots=True)
class LockInfo:
    """Who holds a lock: process id, host name, when (unix time) it was taken, and the process's
    start time in kernel ticks (Linux; None elsewhere) so a reused pid is not mistaken for it."""

    pid: int
    host: str
    started: float
    proc_start: int | None = None

    def to_bytes(self) -> bytes:
        data = {"pid": self.pid, "host": self.host, "started": self.started}
        if self.proc_start is not None:
            data["proc_start"] = self.proc_start
        return orjson.dumps(data) + b"\n"


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or None.

    Unlike wall-clock times this never moves, so equal values mean the very same process.
    """
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
        # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
        return int(raw[raw.rindex(b")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def holder_alive(info: LockInfo) -> bool:
    """Whether the process that took this lock (on this host) still runs.

    The pid alone can mislead after a reboot or pid reuse; when the lock recorded the process's
    start ticks and /proc can tell, a different start means a different (so dead) holder.
    """
    if not pid_alive(info.pid):
        return False
    if info.proc_start is not None:
        now = process_start(info.pid)
        if now is not None and now != info.proc_start:
            return False
    return True


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
        proc_start = data.get("proc_start")
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None
    if not (isinstance(pid, int) and isinstance(host, str) and isinstance(started, int | float)):
        return None
    if proc_start is not None and not isinstance(proc_start, int):
        return None
    return LockInfo(pid, host, float(started), proc_start)


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
    alive: Callable[[LockInfo], bool] = holder_alive,
) -> Lock:
    """Take the journal's lock or raise JournalError saying who holds it and what to do.

    A lock whose process is dead on this host is stale: it is removed, reported in `Lock.notice`,
    and the lock is taken. A lock from another host can't be judged from here and is refused.
    """
    if not HAVE_FCNTL:
        raise JournalError(UNSUPPORTED)
    path = lock_path_for(journal_path)
    me = os.getpid() if pid is None else pid
    info = LockInfo(me, host or socket.gethostname(), clock(), process_start(me))
    notice: str | None = None
    for _ in range(3):
        try:
            _create(path, info)
            _remove_dead_temporaries(path)
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
        if alive(held):
            raise JournalError(
                f"another migrator (pid {held.pid}) is using this journal "
                f"{os.fspath(journal_path)}; wait for it to finish or stop it"
            )
        if not _remove_stale(path, raw):
            continue  # someone else replaced it first: judge the new holder afresh
        notice = (
            f"removed a stale lock {path} left by pid {held.pid} "
            f"(no longer running; taken at {_iso(held.started)})"
        )
    raise JournalError(f"cannot take the lock {path}: other processes keep taking it")


def _remove_stale(path: Path, judged: bytes) -> bool:
    """Remove the lock file only if it is still the very file whose bytes were judged stale.

    Read-judge-unlink is not atomic: two processes that both judged the dead holder's lock
    stale would each unlink, the slower one unlinking the faster one's fresh lock. So the
    takeover holds an exclusive flock on the stale file while it checks that `path` still
    names that same inode with the same bytes; a second process waiting on the flock then sees
    a different inode (the new lock) and goes back to judge the new holder. The inode cannot be
    reused meanwhile: the waiter's open descriptor keeps it alive.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise JournalError(f"cannot open the stale lock file {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            current = os.stat(path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        if (current.st_dev, current.st_ino) != (mine.st_dev, mine.st_ino):
            return False
        content = b""
        while len(content) < len(judged) + 1:
            piece = os.read(fd, len(judged) + 1 - len(content))
            if not piece:
                break
            content += piece
        if content != judged:
            return False
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return True
    except OSError as exc:
        raise JournalError(f"cannot replace the stale lock file {path}: {exc.strerror}") from None
    finally:
        os.close(fd)  # releases the flock


def current_holder(journal_path: str | os.PathLike[str]) -> LockInfo | None:
    """Who holds the journal's lock right now (a live process on this host), without taking it."""
    try:
        held = _parse(lock_path_for(journal_path).read_bytes())
    except OSError:
        return None
    if held is None or held.host != socket.gethostname() or not holder_alive(held):
        return None
    return held


def _remove_dead_temporaries(path: Path) -> None:
    """Remove `<lock>.<pid>.tmp` files left by processes killed inside `_create` (harmless clutter)."""
    prefix = f"{path.name}."
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            name = entry.name
            if not (name.startswith(prefix) and name.endswith(".tmp")):
                continue
            middle = name[len(prefix) : -len(".tmp")]
            if middle.isdigit() and not pid_alive(int(middle)):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


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
