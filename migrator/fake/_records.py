"""The fake Zuora's records: definitions, versions, a tenant's store, ledger entries.

Plain dataclasses (they round-trip through the state file via `vars`); no behaviour beyond ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from migrator.fake._runs import Run


@dataclass
class Version:
    """One `Workflow::Setup` record: a version string and its stored document (new ids)."""

    id: int
    definition_id: int
    version: str
    document: dict[str, Any]
    created_at: float
    updated_at: float


@dataclass
class Definition:
    """A workflow definition: a name, a status, its versions and at most one active version."""

    id: int
    name: str
    description: str
    status: str
    created_at: float
    updated_at: float
    version_ids: list[int] = field(default_factory=list)
    active_version_id: int | None = None


@dataclass
class TenantState:
    """One tenant's workflows; ids come from one counter so no two concepts share an id."""

    next_id: int
    definitions: dict[int, Definition] = field(default_factory=dict)
    versions: dict[int, Version] = field(default_factory=dict)
    runs: dict[int, Run] = field(default_factory=dict)
    run_counter: int = 0

    def allocate(self) -> int:
        value = self.next_id
        self.next_id += 1
        return value


@dataclass(frozen=True)
class LedgerEntry:
    """One committed import, as `/_fake/ledger` reports it."""

    tenant: str
    definition_id: int
    version_id: int
    version: str
    name: str
    idempotency_key: str | None
    content_sha256: str
    at: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "definition_id": self.definition_id,
            "version_id": self.version_id,
            "version": self.version,
            "name": self.name,
            "idempotency_key": self.idempotency_key,
            "content_sha256": self.content_sha256,
            "at": self.at,
        }


def later(previous: float, now: float) -> float:
    """`now`, but at least 1 ms after `previous`: every change moves `updatedAt` forward [I]."""
    return max(now, previous + 0.001)
