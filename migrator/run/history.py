"""The journal as the pipeline reads it: stand-ins when there is none, each item's prior state
for the planner, and the check that a journal belongs to this run's tenants and sources.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from typing import Any

from migrator.core.config import TenantConfig
from migrator.core.errors import JournalError
from migrator.core.plan import PriorIntent, PriorState
from migrator.run.context import check_tenant_identity
from migrator.store.workspace import Workspace

# The engine works without a journal too (dry runs, --journal not given).


class NullJournal:
    """Stands in when no journal file is used: appends go nowhere, state is empty."""

    def __init__(self) -> None:
        self.state: Mapping[Any, Any] = {}
        self.notices: list[str] = []
        self.run_history: list[Any] = []

    async def append(self, type: str, **fields: Any) -> None:
        return None

    def finish(self, **fields: Any) -> None:
        return None


class ReadOnlyJournal(NullJournal):
    """A journal read without the lock, for dry runs and plans: its state, never a write."""

    def __init__(self, path: str, state: MutableMapping[Any, Any] | None = None) -> None:
        from migrator.store.journal import read_state

        super().__init__()
        self.state = {} if state is None else state
        self.run_history, self.notices = read_state(path, self.state)


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


def check_journal_matches(
    journal: Any, tenants: Sequence[TenantConfig], store: Workspace, path: str
) -> None:
    """Refuse to resume when the journal would lie about a tenant or an unanswered import."""
    check_tenant_identity(
        getattr(journal, "run_history", []) or [],
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
        raise JournalError(
            f"{path}: {len(orphans)} import(s) from an earlier run are unanswered and their documents are no longer "
            f"in the sources (first: {name!r} for tenant {tenant}); restore those sources so the run can settle them, "
            "or check the tenant and use a new --journal"
        )
