"""The workspace's SQLite file: its tables, a connection whose failures are one clear line,
keyset paging, and sweeping the files of killed runs. Only migrator.store.workspace* use it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

import orjson

from migrator.core.errors import WorkspaceError


class HasDatabase(Protocol):
    """What the views over the workspace's tables need of it: its connection."""

    @property
    def _db(self) -> sqlite3.Connection: ...


_SCHEMA = """
CREATE TABLE docs(
    seq INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    source TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT,
    workflow_id INTEGER NOT NULL,
    definition_id INTEGER,
    active INTEGER,
    calls BLOB,
    origin BLOB,
    raw BLOB,
    tenant_values BLOB,
    touched BLOB,
    refs BLOB
);
CREATE INDEX docs_name ON docs(name);
CREATE INDEX docs_key ON docs(key);
CREATE INDEX docs_workflow ON docs(workflow_id);
CREATE INDEX docs_definition ON docs(definition_id);
CREATE TABLE groups(
    tenant TEXT NOT NULL,
    ord INTEGER NOT NULL,
    name TEXT NOT NULL,
    definition_id INTEGER,
    callees BLOB,
    PRIMARY KEY(tenant, ord)
);
CREATE TABLE planned(
    tenant TEXT NOT NULL,
    grp INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    action TEXT NOT NULL,
    key TEXT NOT NULL,
    item BLOB NOT NULL,
    PRIMARY KEY(tenant, grp, idx)
);
CREATE TABLE outcomes(
    seq INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    workflow_name TEXT NOT NULL,
    source TEXT NOT NULL,
    status TEXT NOT NULL,
    verified INTEGER,
    data BLOB NOT NULL
);
CREATE TABLE journal_state(
    tenant TEXT NOT NULL,
    item TEXT NOT NULL,
    status TEXT NOT NULL,
    definition_id INTEGER,
    data BLOB NOT NULL,
    PRIMARY KEY(tenant, item)
);
CREATE INDEX journal_state_landed ON journal_state(tenant, definition_id, item);
CREATE TABLE expected(
    tenant TEXT NOT NULL,
    item TEXT NOT NULL,
    PRIMARY KEY(tenant, item)
) WITHOUT ROWID;
CREATE TABLE target(
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    id INTEGER NOT NULL,
    active_version_id INTEGER,
    versions BLOB NOT NULL
);
CREATE INDEX target_name ON target(tenant, name, id);
CREATE INDEX outcomes_order ON outcomes(tenant, workflow_name, source, seq);
CREATE INDEX outcomes_source ON outcomes(tenant, source);
CREATE INDEX outcomes_status ON outcomes(tenant, status);
"""


_BATCH = 500  # rows fetched per query when streaming


_PREFIX = "migrator-run-"


def _paged(
    db: sqlite3.Connection,
    select: str,
    where: str,
    params: Sequence[Any],
    order: Sequence[str],
    *,
    before: Callable[[], None] | None = None,
) -> Iterator[Any]:
    """The rows of `{select} WHERE {where} ORDER BY {order}`, a page at a time, each page
    starting after the last row of the one before (an OFFSET would rescan every earlier row).
    The `order` columns come first in `select`; `before` runs before each page (to write out a
    buffer, so that rows written meanwhile are seen)."""
    cols = ", ".join(order)
    first = f"{select} WHERE {where} ORDER BY {cols} LIMIT ?"
    marks = ", ".join("?" * len(order))
    then = f"{select} WHERE {where} AND ({cols}) > ({marks}) ORDER BY {cols} LIMIT ?"
    last: tuple[Any, ...] = ()
    while True:
        if before is not None:
            before()
        rows = db.execute(then if last else first, (*params, *last, _BATCH)).fetchall()
        if not rows:
            return
        yield from rows
        last = tuple(rows[-1][: len(order)])


def _blob(value: Any) -> bytes:
    """`orjson.dumps(value)` for a row that waits in a buffer: copied to its own size, because
    orjson's result keeps a 4 KiB allocation however short it is (512 buffered rows would hold
    megabytes)."""
    return bytes(memoryview(orjson.dumps(value)))


def sweep_stale(parent: str | None = None) -> list[str]:
    """Remove workspaces left in the temporary directory by runs that were killed (their
    process is gone); returns what was removed. A workspace is never a record of anything."""
    parent = parent or tempfile.gettempdir()
    removed: list[str] = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(_PREFIX) or not entry.is_dir(follow_symlinks=False):
            continue
        pid_text = entry.name[len(_PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit() or _alive(int(pid_text)):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(entry.path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but not ours to signal
        return True
    return True


def _failed(directory: str, exc: sqlite3.Error) -> WorkspaceError:
    """One line for a failed statement: where, why, how much room is left, and what to do."""
    try:
        free = f"{shutil.disk_usage(directory).free // (1 << 20)} MiB free there"
    except OSError:
        free = "free space unknown"
    return WorkspaceError(
        f"the run's working space {directory} failed: {exc} ({free}; it needs about 2 KB per"
        " document and tenant). Point TMPDIR at a disk with more room and run the same command"
        " again: the journal keeps everything done so far"
    )


class _Cursor(sqlite3.Cursor):
    """A cursor whose failures, fetching rows included, are WorkspaceErrors."""

    directory = ""

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except sqlite3.Error as exc:
            raise _failed(self.directory, exc) from None

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.Error as exc:
            raise _failed(self.directory, exc) from None

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.Error as exc:
            raise _failed(self.directory, exc) from None


class _Connection(sqlite3.Connection):
    """The workspace's connection: a statement that fails (a full disk, above all) raises one
    clear WorkspaceError instead of sqlite3's own exception and a traceback."""

    directory = ""

    def _cursor(self) -> _Cursor:
        cursor = self.cursor(_Cursor)
        cursor.directory = self.directory
        return cursor

    def execute(self, sql: str, parameters: Any = (), /) -> _Cursor:
        try:
            return self._cursor().execute(sql, parameters)
        except sqlite3.Error as exc:
            raise _failed(self.directory, exc) from None

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> _Cursor:
        try:
            return self._cursor().executemany(sql, parameters)
        except sqlite3.Error as exc:
            raise _failed(self.directory, exc) from None

    def executescript(self, script: str, /) -> _Cursor:
        cursor = self._cursor()
        try:
            cursor.executescript(script)
        except sqlite3.Error as exc:
            raise _failed(self.directory, exc) from None
        return cursor


def _close(conn: sqlite3.Connection, directory: str) -> None:
    try:
        conn.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
