"""The crash-safe journal on disk: reading a journal file, recovering a torn tail, and the locked,
group-committing writer. The records themselves (format, encode, scan, fold) are pure and live in
migrator.core.journal_records; see docs/journal.md for the format and rules.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import (
    AsyncIterator,
    Callable,
    Container,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
)
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from migrator.core.errors import JournalError
from migrator.core.journal_records import (
    ItemKey,
    ItemState,
    Record,
    RunInfo,
    ScanResult,
    ScanTail,
    encode,
    fold,
    fold_into,
    runs,
    scan,
    scan_lines,
    torn_notice,
)
from migrator.store import lock as _lock
from migrator.store.files import durable_fsync, fsync_dir

# ---------------------------------------------------------------------------------------------
# Read-only view (for `migrator status`)


@dataclass(frozen=True, slots=True)
class JournalView:
    """A journal read without the lock: its records, folded state, runs and recovery notices."""

    records: list[Record]
    state: dict[ItemKey, ItemState]
    runs: list[RunInfo]
    notices: list[str]


def read_journal(path: str | os.PathLike[str]) -> JournalView:
    """Read a journal without changing it (no lock, no truncation); JournalError if unreadable."""
    source = os.fspath(path)
    try:
        data = Path(source).read_bytes()
    except FileNotFoundError:
        raise JournalError(f"{source}: no journal here") from None
    except OSError as exc:
        raise JournalError(f"{source}: cannot read the journal: {exc.strerror}") from None
    result = scan(data, source)
    notices = _read_notices(source, result)
    return JournalView(result.records, fold(result.records), runs(result.records), notices)


def read_state(
    path: str | os.PathLike[str],
    state: MutableMapping[ItemKey, ItemState],
    *,
    keep: Container[str] = ("run_started",),
    watch: Callable[[Record], None] | None = None,
) -> tuple[list[Record], list[str]]:
    """`read_journal` a line at a time: folds the journal into `state`, handing each record to
    `watch` if given and keeping only those of the types in `keep`; returns the kept records and
    the notices."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as fh:
            tail, history = _fold_file(fh, source, state, keep=keep, watch=watch)
    except FileNotFoundError:
        raise JournalError(f"{source}: no journal here") from None
    except OSError as exc:
        raise JournalError(f"{source}: cannot read the journal: {exc.strerror}") from None
    return history, _read_notices(source, tail)


def _fold_file(
    lines: Iterable[bytes],
    source: str,
    state: MutableMapping[ItemKey, ItemState],
    *,
    keep: Container[str] = ("run_started",),
    watch: Callable[[Record], None] | None = None,
) -> tuple[ScanTail, list[Record]]:
    """Fold a journal's lines into `state`, keeping only the records of the types in `keep`."""
    tail = ScanTail()
    history: list[Record] = []

    def watched() -> Iterator[Record]:
        for record in scan_lines(lines, source, tail):
            if record.type in keep:
                history.append(record)
            if watch is not None:
                watch(record)
            yield record

    fold_into(watched(), state)
    return tail, history


def _read_notices(source: str, tail: ScanTail | ScanResult) -> list[str]:
    notices = []
    holder = _lock.current_holder(source)
    if holder is not None:
        notices.append(
            f"{source}: a migrator (pid {holder.pid}) is writing this journal now; "
            "these counts are a moment's picture"
        )
    if tail.torn_tail is not None:
        notices.append(torn_notice(source, tail, cut=False))
    return notices


# ---------------------------------------------------------------------------------------------
# Shell: the locked, group-committing writer


class _Waiter:
    __slots__ = ("done", "error", "line")

    def __init__(self, line: bytes) -> None:
        self.line = line
        self.done = anyio.Event()
        self.error: JournalError | None = None


WriteFn = Callable[[int, bytes], int]
FsyncFn = Callable[[int], None]


def _recover(
    path: Path, fsync: FsyncFn, state: MutableMapping[ItemKey, ItemState]
) -> tuple[int, ScanTail, list[Record]]:
    """Open (or create, mode 0600) the journal, fold it into `state` a line at a time and cut a
    torn tail; returns the descriptor, what the scan found and the run_started records."""
    source = os.fspath(path)
    flags = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC
    try:
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
            created = True
        except FileExistsError:
            fd = os.open(path, flags)
            created = False
    except OSError as exc:
        raise JournalError(f"{source}: cannot open the journal: {exc.strerror}") from None
    try:
        if created:
            # The new name must survive a crash too, not only the bytes written under it.
            fsync_dir(path.parent)
            return fd, ScanTail(), []
        with os.fdopen(os.dup(fd), "rb") as fh:
            fh.seek(0)
            tail, history = _fold_file(fh, source, state)
        if tail.torn_tail is not None:
            os.ftruncate(fd, tail.valid_length)
            fsync(fd)
        return fd, tail, history
    except OSError as exc:
        os.close(fd)
        raise JournalError(f"{source}: cannot recover the journal: {exc.strerror}") from None
    except BaseException:
        os.close(fd)
        raise


class Journal:
    """An open, locked journal. Get one with `Journal.open(...)`; append with `await append(...)`.

    `state` is the folded state at open (before this run's records); `run_history` the earlier
    runs' run_started records; `notices` what recovery had to do (a cut tail, a stale lock).
    """

    def __init__(
        self,
        path: Path,
        fd: int,
        state: MutableMapping[ItemKey, ItemState],
        run_history: list[Record],
        next_seq: int,
        notices: list[str],
        *,
        clock: Callable[[], float],
        write: WriteFn,
        fsync: FsyncFn,
    ) -> None:
        self.path = path
        self.state = state
        self.run_history = run_history
        self.notices = notices
        self._fd = fd
        self._clock = clock
        self._write = write
        self._fsync = fsync
        self._next_seq = next_seq
        self._pending: list[_Waiter] = []
        self._wake = anyio.Event()
        self._stopping = False
        self._error: JournalError | None = None
        self._finish_fields: dict[str, Any] = {}
        self.batches = 0  # write+fsync rounds so far (observability; tests check group commit)

    @staticmethod
    def open(
        path: str | os.PathLike[str],
        run_fields: Mapping[str, Any],
        *,
        clock: Callable[[], float] = time.time,
        write: WriteFn = os.write,
        fsync: FsyncFn = durable_fsync,
        state: MutableMapping[ItemKey, ItemState] | None = None,
    ) -> contextlib.AbstractAsyncContextManager[Journal]:
        """Lock, recover and open the journal; append run_started; run the writer until exit.

        On exit appends run_finished (the fields given to `finish()`, `interrupted=True` when the
        block ends by an exception or cancellation), waits until it is durable, releases the lock.
        The journal is folded into `state` (default: a new dict), read a line at a time.
        """
        return _session(
            Path(path),
            dict(run_fields),
            clock=clock,
            write=write,
            fsync=fsync,
            state={} if state is None else state,
        )

    def finish(self, **fields: Any) -> None:
        """Set the fields of this run's run_finished record (counts, ...), written at close."""
        self._finish_fields = dict(fields)

    @property
    def failed(self) -> JournalError | None:
        """The write error that stopped the journal, if one did."""
        return self._error

    async def append(self, type: str, **fields: Any) -> Record:
        """Queue a record and return it once it is durable (written and fsynced).

        Raises ValueError/TypeError for a malformed record (nothing queued), JournalError when the
        journal is closed or a write failed.
        """
        if self._error is not None:
            raise self._error
        if self._stopping:
            raise JournalError(f"{self.path}: the journal is closed")
        record = Record(self._next_seq, type, self._clock(), fields)
        waiter = _Waiter(encode(record))
        # Sequence numbers are taken in queue order and the one writer keeps that order on disk.
        self._next_seq += 1
        self._pending.append(waiter)
        self._wake.set()
        await waiter.done.wait()
        if waiter.error is not None:
            raise waiter.error
        return record

    def _write_batch(self, data: bytes) -> None:
        while data:
            # os.write may write less than asked (signals, quotas); finish the rest.
            n = self._write(self._fd, data)
            if n <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            data = data[n:]
        self._fsync(self._fd)

    async def _writer(self) -> None:
        # Shielded: the writer must outlive a cancelled caller so that close can still flush.
        # It ends only when told to stop (always, in _session's finally) or on a write error.
        with anyio.CancelScope(shield=True):
            while True:
                if not self._pending:
                    if self._stopping:
                        return
                    await self._wake.wait()
                    self._wake = anyio.Event()
                    continue
                batch, self._pending = self._pending, []
                data = b"".join(w.line for w in batch)
                try:
                    await anyio.to_thread.run_sync(self._write_batch, data)
                except OSError as exc:
                    # After a failed fsync the kernel may have dropped the dirty pages: retrying
                    # could "succeed" with data lost, so the journal stops for good.
                    self._error = JournalError(
                        f"cannot write the journal {self.path}: {exc.strerror or exc}; the run "
                        "stops; nothing after the last durable record counts as done"
                    )
                    for w in batch + self._pending:
                        w.error = self._error
                        w.done.set()
                    self._pending = []
                    return
                self.batches += 1
                for w in batch:
                    w.done.set()

    async def _shutdown(self, *, interrupted: bool, record: bool) -> JournalError | None:
        try:
            if record and self._error is None:
                fields = {**self._finish_fields}
                fields["interrupted"] = bool(fields.get("interrupted")) or interrupted
                await self.append("run_finished", **fields)
        except JournalError as exc:
            return exc
        finally:
            self._stopping = True
            self._wake.set()
        return self._error


@asynccontextmanager
async def _session(
    path: Path,
    run_fields: dict[str, Any],
    *,
    clock: Callable[[], float],
    write: WriteFn,
    fsync: FsyncFn,
    state: MutableMapping[ItemKey, ItemState],
) -> AsyncIterator[Journal]:
    held = _lock.acquire(path, clock=clock)
    fd = -1
    try:
        fd, tail, history = await anyio.to_thread.run_sync(_recover, path, fsync, state)
        notices = [held.notice] if held.notice else []
        if tail.torn_tail is not None:
            notices.append(torn_notice(os.fspath(path), tail, cut=True))
        journal = Journal(
            path,
            fd,
            state,
            history,
            tail.last_seq + 1,
            notices,
            clock=clock,
            write=write,
            fsync=fsync,
        )
        outcome: BaseException | None = None
        close_error: JournalError | None = None
        # Exceptions from the body are caught and re-raised outside the task group, so callers
        # see them as they were, not wrapped in an ExceptionGroup.
        async with anyio.create_task_group() as tg:
            tg.start_soon(journal._writer)
            started = False
            try:
                await journal.append("run_started", **run_fields)
                started = True
                yield journal
            except BaseException as exc:
                outcome = exc
            with anyio.CancelScope(shield=True):
                # No run_finished without its run_started (e.g. bad run fields): runs() pairs them.
                close_error = await journal._shutdown(
                    interrupted=outcome is not None, record=started
                )
        if outcome is not None:
            raise outcome
        if close_error is not None:
            raise close_error
    finally:
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
        _lock.release(held)
