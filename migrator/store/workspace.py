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

import os
import sqlite3
import tempfile
import weakref
from collections.abc import (
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from functools import partial
from typing import Any, overload

import orjson

from migrator.core.document import ExportDocument, parse_document
from migrator.core.errors import InputError
from migrator.core.plan import (
    Action,
    Call,
    NameGroup,
    PlannedItem,
    PriorIntent,
    PriorState,
    SourceDoc,
    TargetDefinition,
)
from migrator.core.references import Reference, relevant_references
from migrator.core.remap import find_tenant_values
from migrator.core.report import ItemOutcome, outcome_from_row, outcome_row
from migrator.store.prepared import PreparedPayloads
from migrator.store.sources import SourceItem, read_document
from migrator.store.workspace_db import (
    _BATCH,
    _PREFIX,
    _SCHEMA,
    _blob,
    _close,
    _Connection,
    _failed,
    _paged,
    sweep_stale,
)
from migrator.store.workspace_views import JournalState, TargetView, state_name

_DOC_COLUMNS = "seq, key, source, name, version, workflow_id, definition_id, active, calls"
_FLUSH_AT = 512  # outcomes buffered before one executemany


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


_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1  # what an SQLite INTEGER holds


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
        self.payloads = PreparedPayloads()  # what one tenant prepared to send, for the others
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
            refs=relevant_references(doc.data),
        )

    def add_summary(
        self,
        doc: SourceDoc,
        *,
        item: SourceItem | None = None,
        raw: bytes | None = None,
        tenant_values: Sequence[tuple[str, str, str]] = (),
        touched: Sequence[str] = (),
        refs: Sequence[Reference] = (),
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
                _blob([r.row() for r in refs]) if refs else None,
            )
        )
        # A live body is written at once: 512 of them buffered could be gigabytes.
        if raw is not None or len(self._doc_rows) >= _FLUSH_AT:
            self._flush_docs()

    def _flush_docs(self) -> None:
        if self._doc_rows:
            self._db.executemany(
                "INSERT INTO docs(key, source, name, version, workflow_id, definition_id, active,"
                " calls, origin, raw, tenant_values, touched, refs)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
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

    def iter_named(self, name: str) -> Iterator[SourceDoc]:
        """The summaries of one name's documents in reading order, streamed (a name may have
        thousands of versions)."""
        return self._docs_where("d.name = ?", (name,))

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

    def references_of(self, keys: Iterable[str]) -> dict[str, list[Reference]]:
        """The custom fields and objects these documents name (only those that name any)."""
        sql = "SELECT key, refs FROM docs WHERE key IN ({marks}) AND refs IS NOT NULL"
        return {
            key: [Reference.from_row(r) for r in orjson.loads(refs)]
            for key, refs in self._rows_in(sql, dict.fromkeys(keys))
        }

    def all_references(self) -> Iterator[Reference]:
        """Every document's references, streamed (what the tenants are asked about)."""
        rows = _paged(
            self._db,
            "SELECT seq, refs FROM docs",
            "refs IS NOT NULL",
            (),
            ("seq",),
            before=self._flush_docs,
        )
        for _, refs in rows:
            yield from (Reference.from_row(r) for r in orjson.loads(refs))

    def load(self, doc: SourceDoc) -> ExportDocument:
        """The document's body again, checked to be the content that was planned."""
        return self.locate(doc)()

    def locate(self, doc: SourceDoc) -> Callable[[], ExportDocument]:
        """`load` in two steps: the workspace is read now; the returned function reads the file
        and parses it without touching the workspace, so it may run in a worker thread (a big
        document takes milliseconds to parse: too long for the event loop)."""
        row = self._query(
            "SELECT origin, raw, definition_id FROM docs WHERE key = ? AND source = ? LIMIT 1",
            (doc.key, doc.source),
        ).fetchone()
        if row is None:
            raise InputError(doc.source, "$", "not among this run's sources")
        origin, raw, definition_id = row
        max_bytes = self.max_bytes
        if raw is not None:
            return partial(
                parse_document, raw, doc.source, max_bytes=max_bytes, definition_id=definition_id
            )
        path, member, item_definition_id, sha256 = orjson.loads(origin)

        def read() -> ExportDocument:
            loaded = read_document(
                SourceItem(path, member, item_definition_id, sha256), max_bytes=max_bytes
            )
            if loaded.content_hash != doc.key:
                raise InputError(
                    doc.source, "$", "the file changed while migrator was running; run again"
                )
            return loaded

        return read

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

    def journal_names_without_docs(
        self, state: Mapping[tuple[str, str], Any], tenants: Collection[str]
    ) -> dict[str, list[tuple[str, str]]]:
        """name → the (tenant, item) keys of these tenants' journal items that no document of
        this run has (in SQL when `state` is this workspace's table: no lookup per item)."""
        out: dict[str, list[tuple[str, str]]] = {}
        if isinstance(state, JournalState) and state.belongs_to(self._db):
            state.flush()
            self._flush_docs()
            rows = self._db.execute(
                "SELECT tenant, item, data FROM journal_state j"
                " WHERE NOT EXISTS (SELECT 1 FROM docs d WHERE d.key = j.item)"
            )
            found = [((t, i), state_name(data)) for t, i, data in rows]
        else:
            found = [
                (k, getattr(st, "name", None)) for k, st in state.items() if not self.has_key(k[1])
            ]
        for key, name in found:
            if key[0] in tenants and isinstance(name, str):
                out.setdefault(name, []).append(key)
        return out

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

    def unverified_tenants(self) -> set[str]:
        """Tenants with an outcome `--verify` found different."""
        self.flush()
        return {
            t
            for (t,) in self._db.execute("SELECT DISTINCT tenant FROM outcomes WHERE verified = 0")
        }

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
