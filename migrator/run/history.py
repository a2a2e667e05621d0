"""The journal as the pipeline reads it: stand-ins when there is none, each item's prior state
for the planner, items an earlier release named by other keys carried over to today's, and the
check that a journal belongs to this run's tenants and sources.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from migrator.core.config import TenantConfig
from migrator.core.errors import JournalError, MigratorError
from migrator.core.journal_records import JournalWriter, rekey_item
from migrator.core.legacy_identity import legacy_keys
from migrator.core.plan import PriorIntent, PriorState
from migrator.run.context import check_tenant_identity
from migrator.store.workspace import Workspace

# The engine works without a journal too (dry runs, --journal not given).


class NullJournal:
    """Stands in when no journal file is written: appends go nowhere. Its state is empty, or
    a journal's read without the lock (`read_only`, for dry runs and plans)."""

    def __init__(self, state: Mapping[Any, Any] | None = None) -> None:
        self.state: Mapping[Any, Any] = {} if state is None else state
        self.notices: list[str] = []
        self.run_history: list[Any] = []

    @classmethod
    def read_only(cls, path: str, state: MutableMapping[Any, Any] | None = None) -> NullJournal:
        from migrator.store.journal import read_state

        held: MutableMapping[Any, Any] = {} if state is None else state
        journal = cls(held)
        journal.run_history, journal.notices = read_state(path, held)
        return journal

    async def append(self, type: str, **fields: Any) -> None:
        return None

    def finish(self, **fields: Any) -> None:
        return None


_NO_PRIOR = PriorState(status="pending")


def prior_states(journal_state: Mapping[Any, Any], tenant: str) -> PriorView:
    """The journal's folded state for one tenant, as the planner sees it (looked up lazily)."""
    return PriorView(journal_state, tenant)


class PriorView(Mapping[str, PriorState]):
    """item key → PriorState of one tenant, converted from the journal's state when asked for
    (the state may be a table on disk: nothing is copied)."""

    def __init__(self, journal_state: Mapping[Any, Any], tenant: str) -> None:
        self._state = journal_state
        self._tenant = tenant
        self._len: int | None = None

    def __getitem__(self, item: str) -> PriorState:
        return _prior(self._state[(self._tenant, item)])

    def __iter__(self) -> Iterator[str]:
        return (item for t, item in self._state if t == self._tenant)

    def __len__(self) -> int:
        if self._len is None:  # counted once: the planner asks whether there is any
            self._len = sum(1 for _ in self)
        return self._len


def _prior(st: Any) -> PriorState:
    intent = None
    if getattr(st, "idempotency_key", None) and getattr(st, "version", None):
        intent = PriorIntent(
            action=str(getattr(st, "action", "") or ""),
            version=str(st.version),
            target_definition_id=getattr(st, "intent_target_definition_id", None)
            if hasattr(st, "intent_target_definition_id")
            else getattr(st, "target_definition_id", None),
            idempotency_key=str(st.idempotency_key),
            time=float(getattr(st, "intent_time", 0.0) or 0.0),
        )
    return PriorState(
        status=str(st.status),
        intent=intent if st.status in ("in_doubt", "deferred") else None,
        reason=getattr(st, "reason", None),
        target_definition_id=getattr(st, "target_definition_id", None),
        target_version_id=getattr(st, "target_version_id", None),
        version=getattr(st, "version", None),
        attempts=int(getattr(st, "attempts", 0) or 0),
    )


@dataclass(frozen=True, slots=True)
class Rekey:
    """A journal item an earlier release named `old`, today's document `new` (same content)."""

    tenant: str
    old: str
    new: str
    identity: str


async def legacy_rekeys(
    journal_state: Mapping[Any, Any], tenants: Sequence[TenantConfig], store: Workspace
) -> list[Rekey]:
    """The journal's items of these tenants that no source document has under today's key but
    one has under an earlier release's identity (core/legacy_identity.py).

    Only the documents of the names those items carry are read and hashed again, in a worker
    thread; a journal whose every item matches costs one query.
    """
    unmatched = store.journal_names_without_docs(journal_state, {t.name for t in tenants})
    if not unmatched:
        return []
    readers = []
    for doc in store.docs_named(unmatched):
        try:
            readers.append((doc.key, store.locate(doc)))
        except MigratorError:
            continue

    def earlier_keys() -> dict[str, tuple[str, str]]:
        found: dict[str, tuple[str, str]] = {}
        for key, read in readers:
            try:
                earlier = legacy_keys(read().data)
            except MigratorError:
                continue  # changed or unreadable now: the plan says so for the document itself
            except (TypeError, ValueError, KeyError):
                continue  # an earlier identity could not hash it: that release could not either
            for old, identity in earlier.items():
                found.setdefault(old, (key, identity))
        return found

    found = await anyio.to_thread.run_sync(earlier_keys)
    return [
        Rekey(tenant, item, *found[item])
        for pairs in unmatched.values()
        for tenant, item in pairs
        if item in found
    ]


async def carry_over(journal: Any, rekeys: Sequence[Rekey], *, write: bool) -> None:
    """Move each item's state to today's key; with `write`, durably (one `rekeyed` record each,
    appended together so that they share fsyncs) before the state changes."""

    async def record(r: Rekey) -> None:
        await journal.append("rekeyed", tenant=r.tenant, item=r.old, to=r.new, identity=r.identity)

    if write:
        async with anyio.create_task_group() as tg:
            for r in rekeys:
                tg.start_soon(record, r)
    now = time.time()
    for r in rekeys:
        rekey_item(journal.state, (r.tenant, r.old), r.new, 0, now)


def check_journal_matches(
    journal: JournalWriter, tenants: Sequence[TenantConfig], store: Workspace, path: str
) -> None:
    """Refuse to resume when the journal would lie about a tenant or an unanswered import."""
    check_tenant_identity(
        journal.run_history,
        tenants,
        path,
        consequence="its records would be wrong here. Use a new --journal for the new target.",
    )
    names = {t.name for t in tenants}
    orphans = [
        (tenant, item)
        for (tenant, item), st in journal.state.items()
        if tenant in names and getattr(st, "status", None) == "in_doubt" and not store.has_key(item)
    ]
    if orphans:
        tenant, item = orphans[0]
        name = getattr(journal.state[(tenant, item)], "name", None) or item[:12]
        source = getattr(journal.state[(tenant, item)], "source", None)
        where = f", read from {source}" if source else ""
        raise JournalError(
            f"{path}: {len(orphans)} import(s) from an earlier run are unanswered and no document in the sources "
            f"has their content, by this release's identity or an earlier release's (first: {name!r} for tenant "
            f"{tenant}{where}); restore those sources so the run can settle them, or check the tenant and use a new "
            "--journal"
        )
