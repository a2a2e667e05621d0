"""A run's working set on disk: document summaries, planned items and outcomes, in SQLite.

Memory of a run is bounded by its concurrency, not by the number of documents (issue 4): nothing
per document stays in memory. Reading the sources writes one summary row per document; planning
writes one row per planned item; every outcome is a row the report is later streamed from. Bodies
of files are never stored (they are read again when sent); bodies exported from a live tenant are.

The database is a private temporary file in `$TMPDIR` (measured: 1.9 KB per document for one
tenant, 1.3 KB more per further tenant), deleted when the workspace is closed or garbage-collected,
and never a record of anything: the journal is. One left behind by a killed run is removed by the
next run (`sweep_stale`). It is written without
durability (no rollback journal, no fsync) because a crash loses nothing the journal needs.
All calls are synchronous and short; the engine makes them from one thread at a time.
"""

from __future__ import annotations

import itertools
import operator
import os
import shutil
import sqlite3
import tempfile
import weakref
from collections.abc import (
    Callable,
    ItemsView,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
    Sequence,
)
from dataclasses import fields
from typing import Any, overload

import orjson

from migrator.core.document import ExportDocument, parse_document
from migrator.core.errors import InputError, WorkspaceError
from migrator.core.plan import (
    Action,
    Call,
    NameGroup,
    PlannedItem,
    PriorIntent,
    PriorState,
    SourceDoc,
    TargetDefinition,
    TargetVersion,
    int_or_none,
)
from migrator.core.remap import find_tenant_values
from migrator.core.report import ItemOutcome, outcome_from_row, outcome_row
from migrator.store.journal import STATUSES, ItemKey, ItemState
from migrator.store.sources import SourceItem, read_document

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
    touched BLOB
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

_DOC_COLUMNS = "seq, key, source, name, version, workflow_id, definition_id, active, calls"
_FLUSH_AT = 512  # outcomes buffered before one executemany
_BATCH = 500  # rows fetched per query when streaming


def _mentions(data: Any, needle: str) -> bool:
    """True when `needle` occurs inside any string (or key) of the document."""
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if needle in value:
                return True
        elif isinstance(value, dict):
            for k, v in value.items():
                if needle in k:
                    return True
                stack.append(v)
        elif isinstance(value, list):
            stack.extend(value)
    return False


_PREFIX = "migrator-run-"
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1  # what an SQLite INTEGER holds


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


class Workspace:
    """Summaries of every valid source document, the plans, the outcomes; bodies on demand."""

    def __init__(self, *, max_bytes: int = 32 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.errors: list[InputError] = []  # unreadable sources, one line each
        sweep_stale()
        self._dir = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-")
        path = os.path.join(self._dir, "workspace.sqlite")
        # One thread at a time uses it, but not always the same one (sources are read in a
        # worker thread), hence check_same_thread=False.
        try:
            self._db = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, factory=_Connection
            )
        except sqlite3.Error as exc:
            raise _failed(self._dir, exc) from None
        self._db.directory = self._dir
        self._db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA temp_store=FILE;"
            "PRAGMA cache_size=-4096;" + _SCHEMA
        )
        self._outcomes: list[tuple[Any, ...]] = []
        self._doc_rows: list[tuple[Any, ...]] = []
        self._finalizer = weakref.finalize(self, _close, self._db, self._dir)

    def close(self) -> None:
        self._finalizer()

    # --- documents --------------------------------------------------------------------------

    def add(
        self,
        doc: ExportDocument,
        *,
        item: SourceItem | None = None,
        raw: bytes | None = None,
        active: bool | None = None,
        substitutions: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        """Record one valid document's summary (its body stays on disk, or `raw` for live ones)."""
        status = doc.data.get("workflow", {}).get("status")
        if active is None and isinstance(status, str):
            active = status == "Active"
        touched = [
            tenant
            for tenant, table in (substitutions or {}).items()
            if any(_mentions(doc.data, k) for k in table)
        ]
        self.add_summary(
            SourceDoc(
                key=doc.content_hash,
                source=doc.source,
                name=doc.name,
                version=doc.version,
                workflow_id=doc.workflow_id,
                definition_id=doc.definition_id,
                calls=tuple(Call(c.task_id, c.workflow_id, c.workflow_name) for c in doc.calls),
                active=active,
            ),
            item=item,
            raw=raw,
            tenant_values=[(v.path, v.kind, v.value) for v in find_tenant_values(doc.data)],
            touched=touched,
        )

    def add_summary(
        self,
        doc: SourceDoc,
        *,
        item: SourceItem | None = None,
        raw: bytes | None = None,
        tenant_values: Sequence[tuple[str, str, str]] = (),
        touched: Sequence[str] = (),
    ) -> None:
        """Record a summary as it is (`add` makes it from a document; tests use it directly)."""
        calls = [[c.task_id, c.workflow_id, c.workflow_name] for c in doc.calls]
        origin = (
            _blob([item.path, item.member, item.definition_id, item.sha256])
            if item is not None
            else None
        )
        self._doc_rows.append(
            (
                doc.key,
                doc.source,
                doc.name,
                doc.version,
                doc.workflow_id,
                doc.definition_id,
                None if doc.active is None else int(doc.active),
                _blob(calls) if calls else None,
                origin,
                raw,
                _blob([list(v) for v in tenant_values]) if tenant_values else None,
                _blob(sorted(touched)) if touched else None,
            )
        )
        # A live body is written at once: 512 of them buffered could be gigabytes.
        if raw is not None or len(self._doc_rows) >= _FLUSH_AT:
            self._flush_docs()

    def _flush_docs(self) -> None:
        if self._doc_rows:
            self._db.executemany(
                "INSERT INTO docs(key, source, name, version, workflow_id, definition_id, active,"
                " calls, origin, raw, tenant_values, touched) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                self._doc_rows,
            )
            self._doc_rows.clear()

    def _query(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        self._flush_docs()
        return self._db.execute(sql, params)

    @staticmethod
    def _doc(row: Sequence[Any], substituted: bool = False) -> SourceDoc:
        _, key, source, name, version, workflow_id, definition_id, active, calls = row[:9]
        return _source_doc(
            key,
            source,
            name,
            version,
            workflow_id,
            definition_id,
            orjson.loads(calls) if calls else (),
            None if active is None else bool(active),
            substituted,
        )

    def count(self) -> int:
        return int(self._query("SELECT count(*) FROM docs").fetchone()[0])

    def iter_docs(self) -> Iterator[SourceDoc]:
        """Every summary in reading order, streamed."""
        return self._docs_where("1", ())

    def _docs_where(self, where: str, params: Sequence[Any]) -> Iterator[SourceDoc]:
        """Summaries matching `where` on `docs d`, in reading order, a page at a time."""
        rows = _paged(
            self._db,
            f"SELECT {_DOC_COLUMNS} FROM docs d",
            where,
            params,
            ("seq",),
            before=self._flush_docs,
        )
        return (self._doc(row) for row in rows)

    def _rows_in(self, sql: str, values: Iterable[Any]) -> Iterator[Sequence[Any]]:
        """Rows of `sql`, whose `IN ({marks})` is filled with `values` a batch at a time."""
        wanted = list(values)
        for start in range(0, len(wanted), _BATCH):
            chunk = wanted[start : start + _BATCH]
            yield from self._query(sql.format(marks=",".join("?" * len(chunk))), chunk)

    def names(self) -> Iterator[str]:
        """Distinct workflow names in name order, streamed."""
        rows = _paged(
            self._db, "SELECT DISTINCT name FROM docs", "1", (), ("name",), before=self._flush_docs
        )
        return (name for (name,) in rows)

    def docs_named(self, names: Iterable[str], tenant: str | None = None) -> list[SourceDoc]:
        """The summaries of these names' documents, each marked substituted for `tenant`."""
        out: list[SourceDoc] = []
        sql = f"SELECT {_DOC_COLUMNS}, touched FROM docs WHERE name IN ({{marks}}) ORDER BY seq"
        for row in self._rows_in(sql, names):
            touched = orjson.loads(row[9]) if row[9] else ()
            out.append(self._doc(row, substituted=tenant is not None and tenant in touched))
        return out

    def callers(self) -> list[SourceDoc]:
        """Documents with Execute::WorkflowTask calls (normally few)."""
        return [
            self._doc(row)
            for row in self._query(
                f"SELECT {_DOC_COLUMNS} FROM docs WHERE calls IS NOT NULL ORDER BY seq"
            )
        ]

    def has_name(self, name: str) -> bool:
        return (
            self._query("SELECT 1 FROM docs WHERE name = ? LIMIT 1", (name,)).fetchone() is not None
        )

    def has_key(self, key: str) -> bool:
        return (
            self._query("SELECT 1 FROM docs WHERE key = ? LIMIT 1", (key,)).fetchone() is not None
        )

    def keys_of(self, name: str) -> list[str]:
        return [k for (k,) in self._query("SELECT key FROM docs WHERE name = ?", (name,))]

    def sorted_keys(self) -> Iterator[str]:
        """Distinct item keys in order, streamed (for the inputs fingerprint)."""
        rows = _paged(
            self._db, "SELECT DISTINCT key FROM docs", "1", (), ("key",), before=self._flush_docs
        )
        return (key for (key,) in rows)

    def name_of_definition(self, definition_id: int) -> str | None:
        if not _INT64_MIN <= definition_id <= _INT64_MAX:
            return None  # no document has it (and SQLite could not even be asked)
        row = self._query(
            "SELECT name FROM docs WHERE definition_id = ? ORDER BY seq DESC LIMIT 1",
            (definition_id,),
        ).fetchone()
        return None if row is None else str(row[0])

    def name_of_workflow(self, workflow_id: int) -> str | None:
        if not _INT64_MIN <= workflow_id <= _INT64_MAX:
            return None
        row = self._query(
            "SELECT name FROM docs WHERE workflow_id = ? ORDER BY seq DESC LIMIT 1", (workflow_id,)
        ).fetchone()
        return None if row is None else str(row[0])

    def tenant_values(self, key: str) -> tuple[tuple[str, str, str], ...]:
        return self.values_of([key]).get(key, ())

    def values_of(self, keys: Iterable[str]) -> dict[str, tuple[tuple[str, str, str], ...]]:
        """Tenant-specific values of these documents (only those that have any)."""
        sql = "SELECT key, tenant_values FROM docs WHERE key IN ({marks}) AND tenant_values IS NOT NULL"
        return {
            key: tuple((p, k, v) for p, k, v in orjson.loads(values))
            for key, values in self._rows_in(sql, dict.fromkeys(keys))
        }

    def load(self, doc: SourceDoc) -> ExportDocument:
        """The document's body again, checked to be the content that was planned."""
        row = self._query(
            "SELECT origin, raw, definition_id FROM docs WHERE key = ? AND source = ? LIMIT 1",
            (doc.key, doc.source),
        ).fetchone()
        if row is None:
            raise InputError(doc.source, "$", "not among this run's sources")
        origin, raw, definition_id = row
        if raw is not None:
            return parse_document(
                raw, doc.source, max_bytes=self.max_bytes, definition_id=definition_id
            )
        path, member, item_definition_id, sha256 = orjson.loads(origin)
        loaded = read_document(
            SourceItem(path, member, item_definition_id, sha256), max_bytes=self.max_bytes
        )
        if loaded.content_hash != doc.key:
            raise InputError(
                doc.source, "$", "the file changed while migrator was running; run again"
            )
        return loaded

    # --- the targets' definitions ---------------------------------------------------------

    def add_target(self, tenant: str, definition: TargetDefinition) -> None:
        self._db.execute(
            "INSERT INTO target(tenant, name, id, active_version_id, versions) VALUES (?,?,?,?,?)",
            (
                tenant,
                definition.name,
                definition.id,
                definition.active_version_id,
                orjson.dumps([[v.id, v.version, v.content_hash] for v in definition.versions]),
            ),
        )

    def target(self, tenant: str) -> TargetView:
        """name → the tenant's definitions of that name (id order), read from the workspace."""
        return TargetView(self, tenant)

    # --- plans ------------------------------------------------------------------------------

    def add_group(self, tenant: str, ord: int, group: NameGroup) -> None:
        self._db.execute(
            "INSERT INTO groups(tenant, ord, name, definition_id, callees) VALUES (?,?,?,?,?)",
            (
                tenant,
                ord,
                group.name,
                group.definition_id,
                orjson.dumps(sorted(group.callees)) if group.callees else None,
            ),
        )
        self._db.executemany(
            "INSERT INTO planned(tenant, grp, idx, action, key, item) VALUES (?,?,?,?,?,?)",
            [
                (tenant, ord, idx, item.action.value, item.doc.key, orjson.dumps(_item_row(item)))
                for idx, item in enumerate(group.items)
            ],
        )

    def groups(self, tenant: str) -> Iterator[NameGroup]:
        """A tenant's planned groups in execution order, streamed."""
        last = -1
        while True:
            heads = self._query(
                "SELECT ord, name, definition_id, callees FROM groups"
                " WHERE tenant = ? AND ord > ? ORDER BY ord LIMIT ?",
                (tenant, last, _BATCH),
            ).fetchall()
            if not heads:
                return
            first, end = heads[0][0], heads[-1][0]
            items: dict[int, list[PlannedItem]] = {}
            for grp, blob in self._query(
                "SELECT grp, item FROM planned WHERE tenant = ? AND grp BETWEEN ? AND ?"
                " ORDER BY grp, idx",
                (tenant, first, end),
            ):
                items.setdefault(grp, []).append(_item_from_row(orjson.loads(blob)))
            for ord, name, definition_id, callees in heads:
                yield NameGroup(
                    name=name,
                    definition_id=definition_id,
                    items=tuple(items.get(ord, ())),
                    callees=frozenset(orjson.loads(callees)) if callees else frozenset(),
                )
            last = end

    def planned_items(self, tenant: str) -> Iterator[PlannedItem]:
        for group in self.groups(tenant):
            yield from group.items

    def planned_keys(self, tenant: str, actions: Iterable[str]) -> Iterator[str]:
        """Item keys of a tenant's planned items with these actions, in execution order."""
        wanted = list(actions)
        marks = ",".join("?" * len(wanted))
        rows = _paged(
            self._db,
            "SELECT grp, idx, key FROM planned",
            f"tenant = ? AND action IN ({marks})",
            (tenant, *wanted),
            ("grp", "idx"),
        )
        return (key for _, _, key in rows)

    def journal_state(self) -> JournalState:
        """A table to fold the journal into, instead of a dict of every item in memory."""
        return JournalState(self)

    # --- outcomes ---------------------------------------------------------------------------

    def add_outcome(self, outcome: ItemOutcome) -> None:
        self._outcomes.append(
            (
                outcome.tenant,
                outcome.workflow_name,
                outcome.source,
                outcome.status,
                None if outcome.verified is None else int(outcome.verified),
                bytes(memoryview(outcome_row(outcome))),  # see _blob
            )
        )
        if len(self._outcomes) >= _FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        self._flush_docs()
        if self._outcomes:
            self._db.executemany(
                "INSERT INTO outcomes(tenant, workflow_name, source, status, verified, data)"
                " VALUES (?,?,?,?,?,?)",
                self._outcomes,
            )
            self._outcomes.clear()

    def undecided(self, tenant: str) -> Iterator[SourceDoc]:
        """Documents with no outcome yet for `tenant`, in reading order."""
        self.flush()
        return self._docs_where(
            "NOT EXISTS (SELECT 1 FROM outcomes o WHERE o.tenant = ? AND o.source = d.source)",
            (tenant,),
        )

    def outcome_count(self) -> int:
        self.flush()
        return int(self._db.execute("SELECT count(*) FROM outcomes").fetchone()[0])

    def outcome_counts(self) -> dict[str, dict[str, int]]:
        """tenant → status → count."""
        self.flush()
        out: dict[str, dict[str, int]] = {}
        for tenant, status, n in self._db.execute(
            "SELECT tenant, status, count(*) FROM outcomes GROUP BY tenant, status"
        ):
            out.setdefault(tenant, {})[status] = n
        return out

    def any_unverified(self) -> bool:
        self.flush()
        return (
            self._db.execute("SELECT 1 FROM outcomes WHERE verified = 0 LIMIT 1").fetchone()
            is not None
        )

    def outcomes(self) -> Iterator[ItemOutcome]:
        """Every outcome ordered by tenant, workflow name, source (then as recorded), streamed:
        each page starts after the last row of the one before (an OFFSET would rescan)."""
        rows = _paged(
            self._db,
            "SELECT tenant, workflow_name, source, seq, data FROM outcomes",
            "1",
            (),
            ("tenant", "workflow_name", "source", "seq"),
            before=self.flush,
        )
        return (outcome_from_row(blob) for *_, blob in rows)

    def outcome_at(self, index: int) -> ItemOutcome:
        """The outcome at `index` in report order (0 ≤ index < outcome_count())."""
        self.flush()
        (blob,) = self._db.execute(
            "SELECT data FROM outcomes ORDER BY tenant, workflow_name, source, seq"
            " LIMIT 1 OFFSET ?",
            (index,),
        ).fetchone()
        return outcome_from_row(blob)


class TargetView(Mapping[str, Sequence[TargetDefinition]]):
    """One tenant's definitions by name, as the planner reads them (`target.get(name, ())`)."""

    def __init__(self, workspace: Workspace, tenant: str) -> None:
        self._db = workspace._db
        self._tenant = tenant

    def __getitem__(self, name: str) -> list[TargetDefinition]:
        rows = self._db.execute(
            "SELECT id, active_version_id, versions FROM target WHERE tenant = ? AND name = ?"
            " ORDER BY id",
            (self._tenant, name),
        ).fetchall()
        if not rows:
            raise KeyError(name)
        return [
            TargetDefinition(
                id=def_id,
                name=name,
                versions=tuple(TargetVersion(i, v, h) for i, v, h in orjson.loads(versions)),
                active_version_id=active,
            )
            for def_id, active, versions in rows
        ]

    def __contains__(self, name: object) -> bool:
        return (
            self._db.execute(
                "SELECT 1 FROM target WHERE tenant = ? AND name = ? LIMIT 1", (self._tenant, name)
            ).fetchone()
            is not None
        )

    def __iter__(self) -> Iterator[str]:
        """The names, in order, streamed."""
        rows = _paged(
            self._db, "SELECT DISTINCT name FROM target", "tenant = ?", (self._tenant,), ("name",)
        )
        return (name for (name,) in rows)

    def __len__(self) -> int:
        return int(
            self._db.execute(
                "SELECT count(DISTINCT name) FROM target WHERE tenant = ?", (self._tenant,)
            ).fetchone()[0]
        )


_STATE_FIELDS = tuple(f.name for f in fields(ItemState))
# The fields' values in order, shallow (dataclasses.astuple deep-copies: 20x dearer).
_state_values = operator.attrgetter(*_STATE_FIELDS)


class JournalState(MutableMapping[ItemKey, ItemState]):
    """The journal's folded state, (tenant, item) → ItemState, as rows of the workspace.

    Writes wait in a small buffer and go to the table a batch at a time: folding a journal
    changes each item two or three times in a row (intent, then its outcome), and most of those
    changes then never reach the table one by one. Every read but a single lookup writes the
    buffer out first."""

    _BUFFER = 256

    def __init__(self, workspace: Workspace) -> None:
        self._db = workspace._db
        self._pending: dict[ItemKey, ItemState] = {}

    def flush(self) -> None:
        if self._pending:
            self._db.executemany(
                "INSERT OR REPLACE INTO journal_state(tenant, item, status, definition_id, data)"
                " VALUES (?,?,?,?,?)",
                (  # a row at a time: orjson's results are 4 KiB each however short
                    (
                        t,
                        item,
                        v.status,
                        int_or_none(v.target_definition_id),
                        orjson.dumps(_state_values(v)),
                    )
                    for (t, item), v in self._pending.items()
                ),
            )
            self._pending.clear()

    def __getitem__(self, key: ItemKey) -> ItemState:
        pending = self._pending.get(key)
        if pending is not None:
            return pending
        row = self._db.execute(
            "SELECT data FROM journal_state WHERE tenant = ? AND item = ?", key
        ).fetchone()
        if row is None:
            raise KeyError(key)
        return _state_from_row(row[0])

    def __setitem__(self, key: ItemKey, value: ItemState) -> None:
        self._pending[key] = value
        if len(self._pending) >= self._BUFFER:
            self.flush()

    def __delitem__(self, key: ItemKey) -> None:
        self.flush()
        if (
            self._db.execute(
                "DELETE FROM journal_state WHERE tenant = ? AND item = ?", key
            ).rowcount
            == 0
        ):
            raise KeyError(key)

    def __len__(self) -> int:
        self.flush()
        return int(self._db.execute("SELECT count(*) FROM journal_state").fetchone()[0])

    def __iter__(self) -> Iterator[ItemKey]:
        for key, _ in self._rows():
            yield key

    def items(self) -> ItemsView[ItemKey, ItemState]:
        """Streamed a page at a time, each state read with its key (not looked up again)."""
        return _StateItems(self)

    def _rows(self) -> Iterator[tuple[ItemKey, ItemState]]:
        rows = _paged(
            self._db,
            "SELECT tenant, item, data FROM journal_state",
            "1",
            (),
            ("tenant", "item"),
            before=self.flush,
        )
        return (((t, item), _state_from_row(data)) for t, item, data in rows)

    def clear(self) -> None:
        self._pending.clear()
        self._db.execute("DELETE FROM journal_state")

    # What `migrator status` asks of a journal, answered in SQL rather than held in memory.

    def expect(self, tenant: str, items: Iterable[str]) -> None:
        """Items a run planned to send: those the journal then never records are pending."""
        self._db.executemany(
            "INSERT OR IGNORE INTO expected(tenant, item) VALUES (?, ?)",
            ((tenant, item) for item in items),
        )

    def clear_expected(self) -> None:
        self._db.execute("DELETE FROM expected")

    def counts(self) -> dict[str, dict[str, int]]:
        """Per tenant (sorted), how many items are in each status; expected items without a
        record count as pending. What `journal.summarize` gives for a dict."""
        self.flush()
        out: dict[str, dict[str, int]] = {}
        rows = self._db.execute(
            "SELECT tenant, status, count(*) FROM journal_state GROUP BY tenant, status"
            " UNION ALL"
            " SELECT e.tenant, 'pending', count(*) FROM expected e"
            " WHERE NOT EXISTS (SELECT 1 FROM journal_state s"
            " WHERE s.tenant = e.tenant AND s.item = e.item) GROUP BY e.tenant"
        )
        for tenant, status, n in rows:
            per = out.setdefault(tenant, dict.fromkeys(STATUSES, 0))
            per[status] += n
        return {tenant: out[tenant] for tenant in sorted(out)}

    def tenants(self) -> list[str]:
        self.flush()
        return [t for (t,) in self._db.execute("SELECT DISTINCT tenant FROM journal_state")]

    def landed(self, tenant: str) -> Iterator[ItemState]:
        """The tenant's committed and skipped items ordered by definition id (none first),
        then item: each definition's versions together, streamed a page at a time."""
        where = "tenant = ? AND status IN ('done', 'skipped') AND definition_id IS "
        unplaced = _paged(
            self._db,
            "SELECT item, data FROM journal_state",
            where + "NULL",
            (tenant,),
            ("item",),
            before=self.flush,
        )
        placed = _paged(
            self._db,
            "SELECT definition_id, item, data FROM journal_state",
            where + "NOT NULL",
            (tenant,),
            ("definition_id", "item"),
            before=self.flush,
        )
        for *_, data in itertools.chain(unplaced, placed):
            yield _state_from_row(data)

    def with_status(self, statuses: Iterable[str]) -> Iterator[ItemState]:
        """The items in one of `statuses`, by tenant, each tenant's in the order last changed."""
        self.flush()
        wanted = list(statuses)
        marks = ",".join("?" * len(wanted))
        rows = self._db.execute(
            f"SELECT data FROM journal_state WHERE status IN ({marks}) ORDER BY tenant, rowid",
            wanted,
        )
        for (data,) in rows:
            yield _state_from_row(data)


class _StateItems(ItemsView[ItemKey, ItemState]):
    def __init__(self, state: JournalState) -> None:
        super().__init__(state)
        self._state = state

    def __iter__(self) -> Iterator[tuple[ItemKey, ItemState]]:
        return self._state._rows()


def _state_from_row(raw: bytes) -> ItemState:
    return ItemState(**dict(zip(_STATE_FIELDS, orjson.loads(raw), strict=True)))


class OutcomeLog(Sequence[ItemOutcome]):
    """A run's outcomes as a read-only sequence, in report order, read from the workspace."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    def __len__(self) -> int:
        return self.workspace.outcome_count()

    def __iter__(self) -> Iterator[ItemOutcome]:
        return self.workspace.outcomes()

    @overload
    def __getitem__(self, index: int) -> ItemOutcome: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[ItemOutcome]: ...

    def __getitem__(self, index: int | slice) -> ItemOutcome | Sequence[ItemOutcome]:
        if isinstance(index, slice):
            return list(self)[index]
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(index)
        return self.workspace.outcome_at(index)

    def counts(self) -> dict[str, dict[str, int]]:
        return self.workspace.outcome_counts()

    def any_unverified(self) -> bool:
        return self.workspace.any_unverified()


# --- planned items as rows ------------------------------------------------------------------


def _source_doc(
    key: str,
    source: str,
    name: str,
    version: str | None,
    workflow_id: int,
    definition_id: int | None,
    calls: Iterable[Sequence[Any]],
    active: bool | None,
    substituted: bool,
) -> SourceDoc:
    return SourceDoc(
        key=key,
        source=source,
        name=name,
        version=version,
        workflow_id=workflow_id,
        definition_id=definition_id,
        calls=tuple(Call(t, w, n) for t, w, n in calls),
        active=active,
        substituted=substituted,
    )


def _item_row(item: PlannedItem) -> dict[str, Any]:
    d = item.doc
    p = item.prior
    return {
        "doc": [
            d.key,
            d.source,
            d.name,
            d.version,
            d.workflow_id,
            d.definition_id,
            [[c.task_id, c.workflow_id, c.workflow_name] for c in d.calls],
            d.active,
            d.substituted,
        ],
        "action": item.action.value,
        "version": item.version,
        "target": item.target_definition_id,
        "reason": item.reason,
        "key": item.idempotency_key,
        "calls": [[t, n] for t, n in item.call_targets.items()],
        "resumed": item.resumed,
        "recorded": item.recorded,
        "prior": None
        if p is None
        else [
            p.status,
            None
            if p.intent is None
            else [
                p.intent.action,
                p.intent.version,
                p.intent.target_definition_id,
                p.intent.idempotency_key,
                p.intent.time,
            ],
            p.reason,
            p.target_definition_id,
            p.target_version_id,
            p.version,
            p.attempts,
        ],
    }


def _item_from_row(row: Mapping[str, Any]) -> PlannedItem:
    key, source, name, version, workflow_id, definition_id, calls, active, substituted = row["doc"]
    prior = None
    if row["prior"] is not None:
        status, intent, reason, target_def, target_ver, prior_version, attempts = row["prior"]
        prior = PriorState(
            status=status,
            intent=None if intent is None else PriorIntent(*intent),
            reason=reason,
            target_definition_id=target_def,
            target_version_id=target_ver,
            version=prior_version,
            attempts=attempts,
        )
    return PlannedItem(
        doc=_source_doc(
            key, source, name, version, workflow_id, definition_id, calls, active, substituted
        ),
        action=Action(row["action"]),
        version=row["version"],
        target_definition_id=row["target"],
        reason=row["reason"],
        idempotency_key=row["key"],
        call_targets={t: n for t, n in row["calls"]},
        resumed=row["resumed"],
        recorded=row["recorded"],
        prior=prior,
    )
