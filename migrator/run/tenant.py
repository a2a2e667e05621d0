"""One tenant's run: who the tenant is, its state while it runs (`TenantRun`), and how outcomes
are recorded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel

from migrator.core.config import Settings, TenantConfig
from migrator.core.journal_records import JournalWriter
from migrator.core.plan import (
    LEFT_BY_RETRY_FAILED,
    Action,
    PlannedItem,
    SourceIndex,
    TargetDefinition,
)
from migrator.core.profile import TenantProfile
from migrator.core.remap import apply_substitutions
from migrator.core.report import ItemOutcome
from migrator.run.options import MigrateOptions, TenantProgress
from migrator.store.cache import TenantCache
from migrator.store.workspace import Workspace
from migrator.zuora import ZuoraClient


def tenant_identity(tenant: TenantConfig) -> str:
    """Who a tenant is, for idempotency keys and the journal: URL and client id, never the secret."""
    return f"{tenant.base_url}|{tenant.client_id}"


def tenant_fingerprint(tenant: TenantConfig) -> str:
    return hashlib.sha256(tenant_identity(tenant).encode()).hexdigest()[:16]


class Done:
    """A one-shot event that makes an anyio.Event only when someone waits before it is set.

    Most groups have no caller waiting on them; an Event per group (with its asyncio deque) was a
    quarter of a 100,000-document dry run's peak memory.
    """

    __slots__ = ("_event", "_set")

    def __init__(self) -> None:
        self._set = False
        self._event: anyio.Event | None = None

    def set(self) -> None:
        self._set = True
        if self._event is not None:
            self._event.set()

    def is_set(self) -> bool:
        return self._set

    async def wait(self) -> None:
        if self._set:
            await anyio.lowlevel.checkpoint()
            return
        if self._event is None:
            self._event = anyio.Event()
        await self._event.wait()


@dataclass(slots=True)
class GroupState:
    definition_id: int | None
    known_hashes: dict[str, str]  # canonical hash → version, on the target
    version_ids: dict[str, int | None] = field(default_factory=dict)  # version → id, on the target
    active_version_id: int | None = None
    done: Done = field(default_factory=Done)
    failed: str | None = None
    # Dry runs: the version the group's next planned new version replaces, and its document,
    # for the one-line change (run/change.py).
    replaced: tuple[str, Mapping[str, Any]] | None = None
    # With activation asked for: the last item of the group that switches its version on; an
    # earlier identical version is left alone (switching it on would put an older version live
    # until the later one is switched on again).
    last_activating: str | None = None
    # Whether a later item of the group needs the definition's id (so a create resolves it at once).
    more: bool = False


class NameSet:
    """A set of names answered by a question (`name in NameSet(store.has_name)`): the sources'
    names are in the workspace, not in memory."""

    def __init__(self, contains: Callable[[str], bool]) -> None:
        self.contains = contains

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.contains(name)


def source_index(store: Workspace) -> SourceIndex:
    """Where calls point among the sources, answered by the workspace (the later document wins
    where two share an id, as in `SourceIndex.of`)."""
    return SourceIndex(store.name_of_definition, store.name_of_workflow, NameSet(store.has_name))


def target_names(store: Workspace) -> NameSet:
    """The names whose definitions a run reads from a tenant: the sources' names, and callees
    named only by calls (they may be in the tenant without being among the sources; only the
    documents that call others, normally few, are read for them)."""
    callees = {c.workflow_name for d in store.callers() for c in d.calls if c.workflow_name}
    return NameSet(lambda n: n in callees or store.has_name(n))


def on_target(item: PlannedItem) -> bool:
    """A skipped item whose version is on the target: identical content, or imported earlier."""
    return item.recorded or (item.prior is not None and item.prior.status == "done")


@dataclass(eq=False)
class TenantRun:
    """One tenant's migration while it runs: everything its parts read, given at construction,
    and what they learn as they go.

    The parts are functions and small classes over this one object, none inheriting from
    another: `run/planning.build_plan`, `run/execute.execute` (with `run/resolve.Resolution`
    and the recovery of in-doubt imports), `run/activation.ensure_active`. The plan and the
    outcomes live in the run's workspace; in memory stay the target's state and what the
    linked (calling/called) workflows need.
    """

    tenant: TenantConfig
    client: ZuoraClient
    progress: TenantProgress
    store: Workspace
    journal: JournalWriter
    options: MigrateOptions
    settings: Settings
    stopping: anyio.Event
    index: SourceIndex  # where the sources' calls point
    linked: set[str]  # names linked by calls: planned together, callers wait for their callees
    profile: TenantProfile | None  # what `migrator doctor` learned, if anything
    cache: TenantCache | None  # the content-hash cache (None with --no-cache)
    # What the run learns as it goes.
    target: Mapping[str, Sequence[TargetDefinition]] = field(default_factory=dict, init=False)
    target_fingerprint: str | None = field(default=None, init=False)
    planned: bool = field(default=False, init=False)
    problems: list[str] = field(default_factory=list, init=False)
    notes: list[str] = field(default_factory=list, init=False)  # for the report, not blocking
    decided: int = field(default=0, init=False)  # outcomes recorded
    definition_ids: dict[str, int] = field(default_factory=dict, init=False)  # imported by now
    failed: bool = field(default=False, init=False)
    rejected: str | None = field(default=None, init=False)  # credentials refused mid-run: why

    def activates(self, item: PlannedItem) -> bool:
        """Whether this run switches the item's version on (`--activate`, `--activation match`)."""
        if self.options.activation == "always":
            return True
        return self.options.activation == "match" and bool(item.doc.active)

    def hold(self, reason: str, *, sends: str = "blocked") -> None:
        """Record every planned item as not sent, each send as `sends` with `reason` (--strict
        holds the whole run: blocked; a rollout's halt holds later waves: deferred)."""
        for item in self.store.planned_items(self.tenant.name):
            if item.action in (Action.CREATE, Action.NEW_VERSION):
                self.outcome(item, sends, error=reason)
            elif item.action is Action.BLOCKED:
                self.outcome(item, "blocked", error=item.reason)
            elif item.reason == LEFT_BY_RETRY_FAILED:
                self.outcome(item, "deferred", error=item.reason)
            else:
                self.outcome(item, "skipped", reason=item.reason)

    def plan_record(self) -> dict[str, Any]:
        """What `migrator plan --out` saves for this tenant, and `migrate --plan` checks."""
        return {**self.plan_head(), "items": list(self.plan_items())}

    def plan_head(self) -> dict[str, Any]:
        return {
            "identity": tenant_fingerprint(self.tenant),
            "target": self.target_fingerprint,
            "problems": list(self.problems),
        }

    def plan_items(self) -> Iterator[dict[str, Any]]:
        for i in self.store.planned_items(self.tenant.name):
            yield {
                "item": i.doc.key,
                "source": i.doc.source,
                "name": i.doc.name,
                "action": i.action.value,
                "version": i.version,
                "target_definition_id": i.target_definition_id,
                "reason": i.reason or None,
            }

    def outcome(self, item: PlannedItem, status: str, **kw: Any) -> None:
        """Record the item's outcome (a workspace row) and bump the tenant's counters."""
        out = ItemOutcome(
            tenant=self.tenant.name,
            source=item.doc.source,
            workflow_name=item.doc.name,
            status=status,
            version=kw.pop("version", item.version),
            target_workflow_id=kw.pop("target_workflow_id", item.target_definition_id),
            action=kw.pop(
                "action",
                item.action.value if item.action in (Action.CREATE, Action.NEW_VERSION) else None,
            ),
            tenant_values=kw.pop("tenant_values", self._tenant_values(item.doc.key)),
            **kw,
        )
        self.store.add_outcome(out)
        self.decided += 1
        self.progress.done += 1
        if status == "imported":
            self.progress.imported += 1
        elif status == "skipped":
            self.progress.skipped += 1
        elif status == "failed":
            self.progress.failed += 1
        elif status in ("blocked", "deferred"):
            self.progress.left += 1

    def definition_id(self, name: str) -> int | None:
        """The tenant's definition of `name`: imported by this run, or the one it had."""
        if name in self.definition_ids:
            return self.definition_ids[name]
        defs = self.target.get(name, ())
        return defs[0].id if len(defs) == 1 else None

    def _tenant_values(self, key: str) -> tuple[dict[str, str | None], ...] | None:
        """The document's tenant-specific values and what this tenant's table makes of each."""
        values = self.store.tenant_values(key)
        if not values:
            return None
        subs = self.tenant.substitutions
        return tuple(
            {
                "path": path,
                "kind": kind,
                "value": value,
                "substitute": apply_substitutions({"v": value}, subs)["v"]
                if any(s in value for s in subs)
                else None,
            }
            for path, kind, value in values
        )
