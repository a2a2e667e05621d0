"""The drift matrix as data: per tenant and workflow name, in-sync, drifted, missing, extra or
failed, with the differences; its JSON form and the exit code. Pure (no I/O, no clock).

The `diff` command reads the sources and the tenants and hands the results to compare_tenant;
docs/diff.md describes the statuses and the JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from migrator.core.canonical import WORKFLOW_DEFINITION, canonical_hash
from migrator.core.diff import Comparison, Difference, compare_workflows
from migrator.core.plan import TargetDefinition, TargetVersion
from migrator.core.versions import is_valid_version, version_key


class DriftStatus(StrEnum):
    """What `migrator diff` says of one (tenant, workflow) cell."""

    IN_SYNC = "in-sync"  # the tenant's active version is what the source says
    DRIFTED = "drifted"  # it differs (listed task by task)
    MISSING = "missing"  # the tenant has no workflow of that name
    EXTRA = "extra"  # the tenant has a workflow the source does not
    FAILED = "failed"  # it could not be read or compared


# The plain words, for keys and comparisons; a cell other than in-sync or extra fails (exit 1).
IN_SYNC, DRIFTED, MISSING, EXTRA, FAILED = (s.value for s in DriftStatus)
STATUSES = tuple(s.value for s in DriftStatus)
FAILURES = (DRIFTED, MISSING, FAILED)


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A side that could not be read (an export failed, a callee is missing...): why, in one line."""

    reason: str


@dataclass(frozen=True, slots=True)
class HeldWorkflow:
    """What a tenant holds under one name: its definition, the compared version and that
    version's document (or only its content hash, when that is known to match)."""

    workflow_id: int | str | None
    version: str | None
    data: Mapping[str, Any] | None = None
    content_hash: str | None = None


@dataclass(frozen=True, slots=True)
class WorkflowDrift:
    """One cell of the matrix: a workflow name on one tenant."""

    name: str
    status: str
    target_workflow_id: int | str | None = None
    target_version: str | None = None
    differences: tuple[Difference, ...] = ()
    reason: str | None = None
    # Drifted cells only: both task graphs, for the HTML page.
    comparison: Comparison | None = None
    # What the source names that this tenant lacks (core/references.py), one line each: a
    # migration would block the document here.
    references: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """{"name", "status", "target_workflow_id", "target_version", "differences"[, "reason"]
        [, "references"]}."""
        out: dict[str, Any] = {
            "name": self.name,
            "status": self.status,
            "target_workflow_id": self.target_workflow_id,
            "target_version": self.target_version,
            "differences": [d.to_json() for d in self.differences],
        }
        if self.reason is not None:
            out["reason"] = self.reason
        if self.references:
            out["references"] = list(self.references)
        return out


@dataclass(frozen=True, slots=True)
class TenantDrift:
    """One column of the matrix: every source workflow on one tenant, then its extras."""

    tenant: str
    workflows: tuple[WorkflowDrift, ...]

    def cell(self, name: str) -> WorkflowDrift | None:
        """The entry for workflow `name`, or None when this tenant has nothing to say about it."""
        for w in self.workflows:
            if w.name == name:
                return w
        return None

    def to_json(self) -> dict[str, Any]:
        """{"workflows": [...]} in the order of `workflows`."""
        return {"workflows": [w.to_json() for w in self.workflows]}


@dataclass(frozen=True, slots=True)
class SourceFailure:
    """A source that could not be read: one failed line, the rest goes on."""

    source: str
    reason: str


@dataclass(frozen=True, slots=True)
class DriftReport:
    """The whole matrix: tenants in the order asked for, plus sources that could not be read."""

    tenants: tuple[TenantDrift, ...]
    failed_sources: tuple[SourceFailure, ...] = ()

    def names(self) -> list[str]:
        """The matrix rows: source workflows (sorted), then names only some tenant holds."""
        sourced = {w.name for t in self.tenants for w in t.workflows if w.status != EXTRA}
        extra = {w.name for t in self.tenants for w in t.workflows if w.status == EXTRA}
        return sorted(sourced) + sorted(extra - sourced)

    def cells(self) -> Iterable[tuple[str, WorkflowDrift]]:
        """Every (tenant, cell), tenant by tenant."""
        for t in self.tenants:
            for w in t.workflows:
                yield t.tenant, w

    def counts(self) -> dict[str, int]:
        """How many cells have each status (every status present, zero or not)."""
        out = dict.fromkeys(STATUSES, 0)
        for _, w in self.cells():
            out[w.status] += 1
        return out

    def exit_code(self) -> int:
        """0 when every (tenant, source workflow) pair is in sync and every source was read
        (extras do not count), else 1."""
        if self.failed_sources:
            return 1
        return 1 if any(w.status in FAILURES for _, w in self.cells()) else 0

    def to_json(self) -> dict[str, Any]:
        """{"tenants": {"<tenant>": {"workflows": [...]}}, "failed_sources": [...]}."""
        return {
            "tenants": {t.tenant: t.to_json() for t in self.tenants},
            "failed_sources": [
                {"source": f.source, "reason": f.reason} for f in self.failed_sources
            ],
        }


class _Versioned(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str | None: ...
    @property
    def source(self) -> str: ...


SourceT = TypeVar("SourceT", bound=_Versioned)


def latest_by_name(docs: Iterable[SourceT]) -> dict[str, SourceT]:
    """Each workflow name's latest source document, in the order `plan` imports them: the highest
    version number wins, a document without a valid version counts as later still, and the
    source path breaks ties."""

    def order(doc: SourceT) -> tuple[int, tuple[int, int, int], str]:
        if doc.version is not None and is_valid_version(doc.version):
            return (0, version_key(doc.version), doc.source)
        return (1, (0, 0, 0), doc.source)

    latest: dict[str, SourceT] = {}
    for doc in docs:
        held = latest.get(doc.name)
        if held is None or order(doc) > order(held):
            latest[doc.name] = doc
    return latest


def compared_version(definition: TargetDefinition) -> TargetVersion | None:
    """The version a tenant runs: the active one, else the highest; None when it has none."""
    for v in definition.versions:
        if definition.active_version_id is not None and v.id == definition.active_version_id:
            return v
    valid = [v for v in definition.versions if is_valid_version(v.version)]
    return max(valid, key=lambda v: version_key(v.version)) if valid else None


def needs_export(source: Mapping[str, Any] | Unreadable, content_hash: str | None) -> bool:
    """Whether the tenant's version must be exported to judge it: not when its content hash
    (from the content-hash cache) already equals what a migration would send."""
    if isinstance(source, Unreadable) or content_hash is None:
        return True
    return canonical_hash(source) != content_hash


def compare_pair(
    name: str,
    source: Mapping[str, Any] | Unreadable,
    held: HeldWorkflow | Unreadable | None,
) -> WorkflowDrift:
    """One cell. `source` is the payload a migration would send to this tenant (substitutions
    and callee ids applied: remap.prepare_for_import), `held` what the tenant has (None: no
    definition of that name)."""
    if held is None:
        return WorkflowDrift(name, MISSING, reason="no workflow of that name on the tenant")
    if isinstance(held, Unreadable):
        return WorkflowDrift(name, FAILED, reason=held.reason)
    wid, version = held.workflow_id, held.version
    if isinstance(source, Unreadable):
        return WorkflowDrift(name, FAILED, wid, version, reason=source.reason)
    if held.data is None:
        if needs_export(source, held.content_hash):
            raise ValueError(f"the document of {name!r} is needed: its content hash differs")
        return WorkflowDrift(name, IN_SYNC, wid, version)
    # An export without a `workflow_definition` block (an old-shape tenant, issue 23) cannot
    # show one: the source is compared as such an export would show it.
    shows_block = WORKFLOW_DEFINITION in held.data
    if canonical_hash(source, block=shows_block) == canonical_hash(held.data):
        return WorkflowDrift(name, IN_SYNC, wid, version)
    comparison = compare_workflows(source, held.data)
    return WorkflowDrift(
        name, DRIFTED, wid, version, differences=comparison.differences, comparison=comparison
    )


def compare_tenant(
    tenant: str,
    sources: Mapping[str, Mapping[str, Any] | Unreadable],
    held: Mapping[str, HeldWorkflow | Unreadable],
) -> TenantDrift:
    """Every source workflow against what `tenant` holds under its name, then the tenant's
    workflows no source names (extra)."""
    cells = [compare_pair(name, sources[name], held.get(name)) for name in sorted(sources)]
    for name in sorted(set(held) - set(sources)):
        found = held[name]
        if isinstance(found, Unreadable):
            cells.append(WorkflowDrift(name, EXTRA, reason=found.reason))
        else:
            cells.append(
                WorkflowDrift(
                    name,
                    EXTRA,
                    target_workflow_id=found.workflow_id,
                    target_version=found.version,
                )
            )
    return TenantDrift(tenant, tuple(cells))


def failed_tenant(tenant: str, names: Sequence[str], reason: str) -> TenantDrift:
    """A tenant that could not be read at all: every source workflow failed, the same reason."""
    return TenantDrift(
        tenant, tuple(WorkflowDrift(n, FAILED, reason=reason) for n in sorted(names))
    )
