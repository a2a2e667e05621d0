"""The id map a migration leaves behind, read from its journal alone (`migrator ids`).

Per tenant, every document the journal records as imported: its name, version, source, the
source's version id (the export's `workflow.id`, journaled with each intent; null in journals
written before it was) and the ids it has in the tenant. Read a line at a time into a workspace.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from migrator.core.journal_records import ItemState
from migrator.core.plan import int_or_none
from migrator.store.journal import read_state
from migrator.store.workspace import Workspace

ID_FIELDS = (
    "name",
    "version",
    "source",
    "source_version_id",
    "target_definition_id",
    "target_version_id",
)


@dataclass(frozen=True, slots=True)
class IdRow:
    tenant: str
    name: str | None
    version: str | None
    source: str | None
    source_version_id: int | None
    target_definition_id: int | None
    target_version_id: int | None

    def data(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in ID_FIELDS}

    @property
    def complete(self) -> bool:
        return self.target_definition_id is not None and self.target_version_id is not None


def _row(st: ItemState) -> IdRow:
    return IdRow(
        tenant=st.tenant,
        name=st.name,
        version=st.version,
        source=st.source,
        source_version_id=int_or_none(st.extra.get("source_version_id")),
        target_definition_id=int_or_none(st.target_definition_id),
        target_version_id=int_or_none(st.target_version_id),
    )


def id_rows(path: str, tenants: Sequence[str] = ()) -> Iterator[IdRow]:
    """Every imported document of the journal (of `tenants`, when given), by tenant, in the
    order the journal last recorded each; the workspace is removed when the iterator ends."""
    store = Workspace()
    try:
        state = store.journal_state()
        read_state(path, state, keep=())
        wanted = set(tenants)
        for st in state.with_status(("done",)):
            if not wanted or st.tenant in wanted:
                yield _row(st)
    finally:
        store.close()
