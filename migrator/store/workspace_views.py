"""Mapping views over the workspace's tables: one tenant's target definitions (TargetView) and
the journal's folded state (JournalState), both read a page at a time, never held in memory.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import ItemsView, Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import fields

import orjson

from migrator.core.journal_records import STATUSES, ItemKey, ItemState
from migrator.core.plan import TargetDefinition, TargetVersion, int_or_none
from migrator.store.workspace_db import HasDatabase, _paged


class TargetView(Mapping[str, Sequence[TargetDefinition]]):
    """One tenant's definitions by name, as the planner reads them (`target.get(name, ())`)."""

    def __init__(self, workspace: HasDatabase, tenant: str) -> None:
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

    def __init__(self, workspace: HasDatabase) -> None:
        self._db = workspace._db
        self._pending: dict[ItemKey, ItemState] = {}

    def belongs_to(self, db: object) -> bool:
        """Whether this table lives in the database `db` (a workspace's connection)."""
        return self._db is db

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


def state_name(raw: bytes) -> str | None:
    """The workflow name of a stored item state."""
    return _state_from_row(raw).name


def _state_from_row(raw: bytes) -> ItemState:
    return ItemState(**dict(zip(_STATE_FIELDS, orjson.loads(raw), strict=True)))
