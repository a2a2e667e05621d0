"""The async pipeline: sources → per-tenant target state → plan → workers → journal → report.

The only module that knows the order of things. Each tenant runs in its own task and records its own
failures; only fatal errors (the journal cannot be written) stop the whole run.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import time
from collections.abc import (
    Callable,
    Iterator,
    Mapping,
    MutableMapping,
    Sequence,
)
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import anyio.abc
import anyio.lowlevel
import orjson
import structlog

from migrator import __version__
from migrator.core.config import Settings, TenantConfig
from migrator.core.document import canonical_hash, parse_document
from migrator.core.errors import (
    AuthError,
    InputError,
    JournalError,
    MigratorError,
    PlanError,
    ZuoraError,
    single_failure,
)
from migrator.core.logs import redact_text
from migrator.core.plan import (
    Action,
    NameGroup,
    PlannedItem,
    PlanOptions,
    PriorIntent,
    PriorState,
    SourceDoc,
    SourceIndex,
    TargetDefinition,
    TenantPlan,
    idempotency_key,
    int_or_none,
    plan_tenant,
    resolve_in,
)
from migrator.core.remap import apply_substitutions, prepare_for_import
from migrator.core.report import ItemOutcome, Report, unreadable_outcomes
from migrator.run.target import for_each_definition, read_target, target_fingerprint
from migrator.store.planfile import PlanRecords, check_saved_plan, load_plan_file
from migrator.store.sources import (
    discover,
    find_snapshots,
    read_document,
    read_manifest,
    verify_snapshot,
)
from migrator.store.workspace import OutcomeLog, Workspace
from migrator.zuora import ZuoraClient, open_session

log = structlog.get_logger("migrator.engine")

Activation = Literal["never", "always", "match"]


@dataclass(frozen=True)
class MigrateOptions:
    sources: Sequence[str] = ()
    tenants: Sequence[str] = ()  # empty: every tenant in the config
    journal: str | None = None
    activation: Activation = "never"
    dry_run: bool = False
    verify: bool = False
    retry_failed: bool = False
    strict: bool = False
    from_tenant: str | None = None
    shard: tuple[int, int] | None = None  # (index, count), 1-based index
    plan_file: str | None = None  # apply a plan saved by `migrator plan --out`, exactly


# ---------------------------------------------------------------------------------------------
# Progress: counters the CLI may display; the engine only bumps them.


@dataclass
class TenantProgress:
    total: int = 0
    done: int = 0
    imported: int = 0
    skipped: int = 0
    failed: int = 0
    started: float = field(default_factory=time.monotonic)
    phase: str = "starting"


class Progress:
    """Per-tenant counters, read by the progress display and the periodic log lines."""

    def __init__(self) -> None:
        self.tenants: dict[str, TenantProgress] = {}
        self.clients: dict[str, ZuoraClient] = {}

    def tenant(self, name: str) -> TenantProgress:
        return self.tenants.setdefault(name, TenantProgress())


# ---------------------------------------------------------------------------------------------
# Sources: read once into the run's workspace (summaries only), bodies reloaded when sending.


def read_sources(paths: Sequence[str], settings: Settings) -> Workspace:
    """Discover and validate every document; bad ones become one-line errors, the rest go on.

    A snapshot (a directory with a manifest) is checked whole first: a damaged one refuses the
    run before anything is imported, listing every problem.
    """
    store = Workspace(max_bytes=settings.max_document_bytes)
    try:
        _read_into(store, paths, settings)
    except BaseException:
        store.close()
        raise
    return store


def _read_into(store: Workspace, paths: Sequence[str], settings: Settings) -> None:
    subs = {name: t.substitutions for name, t in settings.tenants.items() if t.substitutions}
    active: dict[tuple[str, str], bool | None] = {}
    for path in find_snapshots(paths):
        problems = verify_snapshot(path)
        if problems:
            raise MigratorError(
                f"{path}: damaged snapshot, nothing was imported "
                f"({len(problems)} problem(s)): " + "; ".join(problems)
            )
        _, entries = read_manifest(path)
        active.update({(path, e.path): e.active for e in entries})
    entries_iter = iter(discover(paths))
    while True:
        try:
            entry = next(entries_iter)
        except StopIteration:
            break
        except InputError as exc:  # a directory that cannot be listed: report it, go on
            store.errors.append(exc)
            continue
        try:
            doc = read_document(entry, max_bytes=settings.max_document_bytes)
        except InputError as exc:
            store.errors.append(exc)
            continue
        known = active.get((entry.path, entry.member)) if entry.member is not None else None
        store.add(doc, item=entry, substitutions=subs, active=known)
    store.flush()


async def read_live_sources(client: ZuoraClient, settings: Settings) -> Workspace:
    """Every definition of a source tenant, exported (active version, else the latest), each
    written to the workspace as it arrives: a page of the listing and a few exports in memory."""
    store = Workspace(max_bytes=settings.max_document_bytes)
    subs = {name: t.substitutions for name, t in settings.tenants.items() if t.substitutions}

    async def export_one(definition: Mapping[str, Any]) -> None:
        def_id = int(definition["id"])
        source = f"tenant {client.tenant.name}: workflow {def_id}"
        active = definition.get("active_version") or None
        version = active.get("version") if isinstance(active, dict) else "latest"
        try:
            body = await client.export_workflow(def_id, version=version or "latest")
        except ZuoraError as exc:
            store.errors.append(InputError(source, "$", str(exc)))
            return
        raw = orjson.dumps(body)
        try:
            doc = parse_document(
                raw, source, max_bytes=settings.max_document_bytes, definition_id=def_id
            )
        except InputError as exc:
            store.errors.append(exc)
            return
        store.add(doc, raw=raw, active=bool(active), substitutions=subs)

    try:
        await for_each_definition(client, export_one)
    except BaseException:
        store.close()
        raise
    store.errors.sort(key=lambda e: str(e))
    store.flush()
    return store


# ---------------------------------------------------------------------------------------------
# Journal adapter: the engine works without a journal too (dry runs, --journal not given).


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


def tenant_identity(tenant: TenantConfig) -> str:
    """Who a tenant is, for idempotency keys and the journal: URL and client id, never the secret."""
    return f"{tenant.base_url}|{tenant.client_id}"


def tenant_fingerprint(tenant: TenantConfig) -> str:
    return hashlib.sha256(tenant_identity(tenant).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Running one tenant


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
    # With activation asked for: the last item of the group that switches its version on; an
    # earlier identical version is left alone (switching it on would put an older version live
    # until the later one is switched on again).
    last_activating: str | None = None


PLAN_BATCH = 256  # names planned at a time, apart from those linked by calls


def linked_names(store: Workspace, index: SourceIndex) -> set[str]:
    """Names of documents that call other workflows and of their callees among the sources.

    Only these need planning together (callees first, cycles, blocked callees); every other name
    is planned on its own, so a plan never needs all documents in memory. Which source name a
    call points at does not depend on the tenant (the sources are searched before the target).
    """
    linked: set[str] = set()
    for doc in store.callers():
        linked.add(doc.name)
        for call in doc.calls:
            if call.workflow_id and "{{" in call.workflow_id:
                continue
            callee = resolve_in(call, index, {})
            if callee is not None:
                linked.add(callee)
    return linked


def plan_batches(store: Workspace, linked: set[str]) -> Iterator[list[str]]:
    """The names to plan together: every linked name at once, then the others a batch at a time."""
    if linked:
        yield sorted(linked)
    batch: list[str] = []
    for name in store.names():
        if name in linked:
            continue
        batch.append(name)
        if len(batch) >= PLAN_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


class _Names:
    """A set of names answered by a question (`name in _Names(store.has_name)`): the sources'
    names are in the workspace, not in memory."""

    def __init__(self, contains: Callable[[str], bool]) -> None:
        self.contains = contains

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.contains(name)


def source_index(store: Workspace) -> SourceIndex:
    """Where calls point among the sources, answered by the workspace (the later document wins
    where two share an id, as in `SourceIndex.of`)."""
    return SourceIndex(store.name_of_definition, store.name_of_workflow, _Names(store.has_name))


class TenantRun:
    """Everything one tenant's migration needs while it runs.

    The plan and the outcomes live in the run's workspace; in memory stay the target's state,
    the journal's prior states and what the linked (calling/called) workflows need.
    """

    def __init__(
        self,
        tenant: TenantConfig,
        client: ZuoraClient,
        store: Workspace,
        journal: Any,
        options: MigrateOptions,
        settings: Settings,
        progress: TenantProgress,
        stopping: anyio.Event,
        index: SourceIndex,
        linked: set[str],
    ) -> None:
        self.tenant = tenant
        self.client = client
        self.store = store
        self.journal = journal
        self.options = options
        self.settings = settings
        self.progress = progress
        self.stopping = stopping
        self.index = index
        self.linked = linked
        self.decided = 0  # outcomes recorded
        self.definition_ids: dict[str, int] = {}
        self.done: dict[str, Done] = {}  # linked names: callers wait for their callees
        self.target: Mapping[str, Sequence[TargetDefinition]] = {}
        self.planned = False
        self.problems: list[str] = []
        self.target_fingerprint: str | None = None
        self.failed = False
        self.rejected: str | None = None  # the tenant's credentials were refused mid-run: why

    def hold(self, reason: str) -> None:
        """Record every planned item as not sent (used when --strict stops the whole run)."""
        for item in self.store.planned_items(self.tenant.name):
            if item.action in (Action.CREATE, Action.NEW_VERSION):
                self._outcome(item, "blocked", error=reason)
            elif item.action is Action.BLOCKED:
                self._outcome(item, "blocked", error=item.reason)
            else:
                self._outcome(item, "skipped", reason=item.reason)

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

    def _outcome(self, item: PlannedItem, status: str, **kw: Any) -> None:
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
        elif status in ("failed", "blocked", "deferred"):
            self.progress.failed += 1

    async def build_plan(self) -> None:
        """Plan the tenant batch by batch into the workspace (see `plan_batches`)."""
        name = self.tenant.name
        self.progress.phase = "reading target"
        # Versions of a name whose documents the journal records as imported need no export
        # to compare: the planner skips done items whatever the target holds. (A "skipped"
        # item is not settled: it was skipped because its content was on the target, and only
        # a fresh comparison can say that is still so.)
        prior = prior_states(self.journal.state, name)

        def settled(workflow: str) -> bool:
            return bool(prior) and all(
                prior.get(k, _NO_PRIOR).status == "done" for k in self.store.keys_of(workflow)
            )

        # Callee names that are not in the sources may still be in the target; fetch those too.
        callee_names = {
            c.workflow_name for d in self.store.callers() for c in d.calls if c.workflow_name
        }
        # The target's definitions go into the workspace as they are read.
        target = self.store.target(name)
        await read_target(
            self.client,
            _Names(lambda n: n in callee_names or self.store.has_name(n)),
            lambda d: self.store.add_target(name, d),
            hash_names=_Names(lambda n: not settled(n)),
        )
        self.target = target
        self.target_fingerprint = target_fingerprint(target)
        options = PlanOptions(
            retry_failed=self.options.retry_failed, strict=self.options.strict, now=time.time()
        )
        self.progress.phase = "planning"
        ord = 0
        total = 0
        for batch in plan_batches(self.store, self.linked):
            docs = self.store.docs_named(batch, tenant=name)
            values = self.store.values_of(d.key for d in docs)
            unbound = self._unbound(values)

            def plan_with(
                payload_keys: Mapping[str, str] | None = None,
                docs: list[SourceDoc] = docs,
                unbound: dict[str, list[str]] = unbound,
            ) -> TenantPlan:
                return plan_tenant(
                    name,
                    tenant_identity(self.tenant),
                    docs,
                    target,
                    prior,
                    options=options,
                    unbound=unbound,
                    payload_keys=payload_keys,
                    index=self.index,
                )

            plan = plan_with()
            # A document with calls or substitutions is sent as another content than its own;
            # where that payload is known now (callees already in the tenant), plan again
            # comparing it with the target, so that identical content is skipped in the plan as
            # in the run.
            payload_keys = self._payload_keys(plan)
            if payload_keys:
                plan = plan_with(payload_keys)
            for group in plan.groups:
                self.store.add_group(name, ord, group)
                ord += 1
                total += len(group.items)
            self.problems.extend(plan.problems)
            await anyio.lowlevel.checkpoint()  # other tenants plan meanwhile
        self.planned = True
        self.progress.total = total

    def _definition_id(self, name: str) -> int | None:
        """The tenant's definition of `name`: imported by this run, or the one it had."""
        if name in self.definition_ids:
            return self.definition_ids[name]
        defs = self.target.get(name, ())
        return defs[0].id if len(defs) == 1 else None

    def _group_state(self, group: NameGroup) -> GroupState:
        defs = self.target.get(group.name, [])
        hashes = {v.content_hash: v.version for d in defs[:1] for v in d.versions if v.content_hash}
        first = defs[0] if len(defs) == 1 else None
        return GroupState(
            definition_id=group.definition_id,
            known_hashes=hashes,
            version_ids={v.version: v.id for v in first.versions} if first else {},
            active_version_id=first.active_version_id if first else None,
            last_activating=next(
                (
                    i.doc.key
                    for i in reversed(group.items)
                    if self._activate(i)
                    and (
                        i.action in (Action.CREATE, Action.NEW_VERSION)
                        or (i.action is Action.SKIP and i.version is not None and _on_target(i))
                    )
                ),
                None,
            ),
        )

    def _payload_keys(self, plan: TenantPlan) -> dict[str, str]:
        """Payload hashes of the new versions whose payload is not their own content."""
        out: dict[str, str] = {}
        for item in plan.items:
            doc = item.doc
            if item.action is not Action.NEW_VERSION or not (doc.calls or doc.substituted):
                continue
            targets = {t: self._definition_id(c) for t, c in item.call_targets.items()}
            if any(v is None for v in targets.values()):
                continue  # a callee created by this run: its id is not known yet
            try:
                loaded = self.store.load(doc)
            except InputError:
                continue  # reported when it is sent
            payload = prepare_for_import(
                loaded,
                call_targets={t: v for t, v in targets.items() if v is not None},
                substitutions=self.tenant.substitutions,
            )
            out[doc.key] = canonical_hash(payload)
        return out

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

    def _unbound(
        self, values: Mapping[str, tuple[tuple[str, str, str], ...]]
    ) -> dict[str, list[str]]:
        subs = self.tenant.substitutions
        out: dict[str, list[str]] = {}
        for key, found in values.items():
            missing = [
                f"{kind} {value!r} at {path}"
                for path, kind, value in found
                if not any(s in value for s in subs)
            ]
            if missing:
                out[key] = missing
        return out

    async def execute(self) -> None:
        assert self.planned
        self.progress.phase = "importing"
        # Callers wait for their callees' groups: one event per linked name, made up front.
        self.done = {name: Done() for name in self.linked}
        send: anyio.abc.ObjectSendStream[NameGroup]
        send, receive = anyio.create_memory_object_stream[NameGroup](0)
        workers = max(1, self.tenant.max_concurrency)

        async def worker(stream: anyio.abc.ObjectReceiveStream[NameGroup]) -> None:
            async with stream:
                async for group in stream:
                    await self._run_group(group)

        with single_failure():
            async with anyio.create_task_group() as tg:
                with receive:
                    for _ in range(workers):
                        tg.start_soon(worker, receive.clone())
                async with send:
                    # Streamed from the workspace: only groups in flight are in memory.
                    for group in self.store.groups(self.tenant.name):
                        await send.send(group)
        for done in self.done.values():
            done.set()  # a linked name without a group (nothing planned) holds nobody up
        self.progress.phase = "done"

    async def _run_group(self, group: NameGroup) -> None:
        name = group.name
        state = self._group_state(group)
        done = self.done.get(name)
        try:
            # Wait for callees only when something will be sent: the groups of a call cycle have
            # every import blocked, and waiting for each other would hang the run.
            if any(i.action in (Action.CREATE, Action.NEW_VERSION) for i in group.items):
                for callee in group.callees:
                    callee_done = self.done.get(callee)
                    if callee_done is not None:
                        await callee_done.wait()
            for item in group.items:
                await self._run_item(group.name, state, item)
        finally:
            if done is not None:
                done.set()

    async def _run_item(self, name: str, state: GroupState, item: PlannedItem) -> None:
        if item.action is Action.SKIP:
            reason = item.reason
            if _on_target(item) and item.version and not self.options.dry_run:
                # Identical content is already there; with activation asked for, make sure that
                # version is the active one (a re-run with --activate after an inactive import).
                try:
                    switched = await self._ensure_active(state, item, item.version)
                except ZuoraError as exc:
                    self._outcome(
                        item, "deferred", error=f"activating version {item.version}: {exc}"
                    )
                    return
                if switched:
                    reason += "; " + switched
            self._outcome(
                item,
                "skipped",
                reason=reason,
                target_workflow_id=item.target_definition_id or state.definition_id,
            )
            if item.recorded:
                await self.journal.append(
                    "skipped",
                    tenant=self.tenant.name,
                    item=item.doc.key,
                    reason=item.reason,
                    name=item.doc.name,
                    source=item.doc.source,
                    target_definition_id=item.target_definition_id,
                    version=item.version,
                )
            return
        if item.action is Action.BLOCKED:
            self._outcome(item, "blocked", error=item.reason)
            return
        if state.failed is not None:
            self._outcome(item, "blocked", error=f"{state.failed}; later versions wait")
            return
        if self.options.dry_run:
            self._outcome(
                item,
                "planned",
                reason=item.reason or None,
                target_workflow_id=item.target_definition_id or state.definition_id,
            )
            return
        if self.stopping.is_set():
            self._outcome(item, "deferred", error="not started: the run was asked to stop")
            return
        if self.rejected is not None:
            # The tenant refused this run's credentials: nothing more is tried (no intent, no
            # request); the items stay pending in the journal for a run whose credentials work.
            self._outcome(item, "deferred", error=f"not sent: {self.rejected}")
            return
        try:
            await self._send(name, state, item)
        except ZuoraError as exc:
            transient = (
                isinstance(exc, AuthError)  # the credentials, not the item: retry once they work
                or exc.in_doubt
                or exc.retryable
                or exc.status is None
                or exc.status >= 500
                or exc.status == 429
            )
            status = "deferred" if transient else "failed"
            # The client scrubs its own tenant's secrets; a server may echo another tenant's.
            reason = redact_text(str(exc))
            if exc.in_doubt:
                reason += " (the import may have landed; running again resolves it with the same Idempotency-Key)"
            await self.journal.append(
                status,
                tenant=self.tenant.name,
                item=item.doc.key,
                reason=reason,
                permanent=not transient,
                name=item.doc.name,
            )
            state.failed = f"an earlier version ({item.doc.source}) did not complete"
            if isinstance(exc, AuthError):
                # Not re-raised (that would end every tenant's run): this tenant stops sending.
                self.rejected = reason
            self._outcome(item, status, error=reason)
        except InputError as exc:
            await self.journal.append(
                "failed",
                tenant=self.tenant.name,
                item=item.doc.key,
                reason=str(exc),
                permanent=True,
                name=item.doc.name,
            )
            state.failed = f"an earlier version ({item.doc.source}) could not be read"
            self._outcome(item, "failed", error=str(exc))

    async def _send(self, name: str, state: GroupState, item: PlannedItem) -> None:
        doc = self.store.load(item.doc)
        call_targets: dict[int, int] = {}
        for task_id, callee in item.call_targets.items():
            callee_id = self._definition_id(callee)
            if callee_id is None:
                # The callee did not land in this run (deferred, blocked, failed): the caller
                # waits for a later run instead of failing for good.
                raise ZuoraError(
                    f"callee {callee!r} has no definition in tenant {self.tenant.name} (it was not imported)",
                    status=409,
                    retryable=True,
                )
            call_targets[task_id] = callee_id
        payload = prepare_for_import(
            doc, call_targets=call_targets, substitutions=self.tenant.substitutions
        )
        digest = canonical_hash(payload)
        if digest in state.known_hashes:
            version = state.known_hashes[digest]
            if item.prior is not None and item.prior.intent is not None:
                # An earlier run's unanswered import did land: record it as done (and switch it
                # on if this run activates, as the lost answer's run would have).
                activated = await self._ensure_active(state, item, version)
                await self.journal.append(
                    "committed",
                    tenant=self.tenant.name,
                    item=item.doc.key,
                    target_definition_id=state.definition_id,
                    target_version_id=None,
                    version=version,
                    recovered=True,
                    name=name,
                )
                self._outcome(
                    item,
                    "imported",
                    version=version,
                    target_workflow_id=state.definition_id,
                    reason="an earlier run's import had landed (found on the target)"
                    + (f"; {activated}" if activated else ""),
                )
                return
            reason = f"identical to version {version} in tenant {self.tenant.name}"
            switched = await self._ensure_active(state, item, version)
            if switched:
                reason += "; " + switched
            await self.journal.append(
                "skipped",
                tenant=self.tenant.name,
                item=item.doc.key,
                reason=reason,
                name=name,
                source=item.doc.source,
                target_definition_id=state.definition_id,
                version=version,
            )
            self._outcome(
                item,
                "skipped",
                reason=reason,
                version=version,
                target_workflow_id=state.definition_id,
            )
            return
        assert item.version is not None and item.idempotency_key is not None
        activate = self._activate(item)
        definition_id = state.definition_id
        action = Action.NEW_VERSION if definition_id is not None else Action.CREATE
        await self.journal.append(
            "intent",
            tenant=self.tenant.name,
            item=item.doc.key,
            action=action.value,
            name=name,
            version=item.version,
            target_definition_id=definition_id,
            idempotency_key=item.idempotency_key,
            source=item.doc.source,
        )
        if action is Action.CREATE:
            response = await self.client.import_workflow(
                payload,
                version=item.version,
                activate=activate,
                idempotency_key=item.idempotency_key,
            )
            definition_id = await self._resolve_definition(name, response)
        else:
            assert definition_id is not None
            response = await self.client.import_version(
                definition_id,
                payload,
                version=item.version,
                activate=activate,
                idempotency_key=item.idempotency_key,
            )
        version_id = await self._resolve_version(definition_id, item.version, response)
        await self.journal.append(
            "committed",
            tenant=self.tenant.name,
            item=item.doc.key,
            target_definition_id=definition_id,
            target_version_id=version_id,
            version=item.version,
            name=name,
        )
        state.definition_id = definition_id
        state.known_hashes[digest] = item.version
        state.version_ids[item.version] = version_id
        if activate:
            state.active_version_id = version_id
        if name in self.linked:  # callers of this name need its id
            self.definition_ids[name] = definition_id
        verified: bool | None = None
        verify_detail = ""
        if self.options.verify:
            verified, verify_detail = await self._verify(definition_id, item, digest)
        self._outcome(
            item,
            "imported",
            target_workflow_id=definition_id,
            target_version_id=version_id,
            action=action.value,
            verified=verified,
            reason=f"--verify: {verify_detail}" if verify_detail else None,
        )

    async def _ensure_active(
        self, state: GroupState, item: PlannedItem, version: str
    ) -> str | None:
        """Make `version` the definition's active one when this run activates; say what was done."""
        if not self._activate(item) or state.definition_id is None:
            return None
        if state.last_activating not in (None, item.doc.key):
            return None  # a later version of the group is the one switched on
        version_id = state.version_ids.get(version)
        if version_id is None:
            version_id = await self._resolve_version(state.definition_id, version, {})
        if version_id is None:
            return None
        if state.active_version_id == version_id:
            return "already active"
        key = idempotency_key(
            tenant_identity(self.tenant), item.doc.key, "activate", state.definition_id, version
        )
        await self.client.update_workflow(
            state.definition_id,
            {"active_workflow_version_id": version_id, "status": "Active"},
            idempotency_key=key,
        )
        state.active_version_id = version_id
        return "activated"

    def _activate(self, item: PlannedItem) -> bool:
        if self.options.activation == "always":
            return True
        if self.options.activation == "match":
            return bool(item.doc.active)
        return False

    async def _resolve_definition(self, name: str, response: Mapping[str, Any]) -> int:
        """The new definition's id. The import answer's `id` may be the definition's or the
        version's (spec §9.3), so look the name up instead of trusting it."""
        candidates = [
            e for e in await self.client.list_workflows(name=name) if e.get("name") == name
        ]
        if len(candidates) == 1:
            return int(candidates[0]["id"])
        rid = int_or_none(response.get("id"))
        for entry in candidates:
            active = entry.get("active_version")
            if int_or_none(entry.get("id")) == rid or (
                isinstance(active, dict) and int_or_none(active.get("id")) == rid
            ):
                return int(entry["id"])
            for v in entry.get("latest_inactive_verisons") or []:
                if isinstance(v, dict) and int_or_none(v.get("id")) == rid:
                    return int(entry["id"])
        if candidates:
            return int(max(candidates, key=lambda e: int(e["id"]))["id"])
        raise ZuoraError(
            f"tenant {self.tenant.name}: imported {name!r} but cannot find its definition",
            in_doubt=True,
        )

    async def _resolve_version(
        self, definition_id: int, version: str, response: Mapping[str, Any]
    ) -> int | None:
        try:
            for entry in await self.client.list_versions(definition_id):
                if str(entry.get("version")) == version:
                    return int_or_none(entry.get("id"))
        except ZuoraError:
            pass
        return None

    async def _verify(self, definition_id: int, item: PlannedItem, digest: str) -> tuple[bool, str]:
        assert item.version is not None
        # The import has landed and is committed: a failure to check it is a verify result, never
        # a failed import (that would hold back the workflow's later versions).
        try:
            exported = await self.client.export_workflow(definition_id, version=item.version)
            landed = canonical_hash(exported)
            ok = landed == digest
            detail = (
                "" if ok else f"exported content hash {landed[:12]} differs from sent {digest[:12]}"
            )
        except ZuoraError as exc:
            ok, detail = False, f"could not export version {item.version} to verify it: {exc}"
        except Exception as exc:  # an export we cannot read cannot be compared
            ok, detail = False, f"could not read the exported version {item.version}: {exc}"
        await self.journal.append(
            "verified", tenant=self.tenant.name, item=item.doc.key, ok=ok, detail=detail
        )
        return ok, detail


def _on_target(item: PlannedItem) -> bool:
    """A skipped item whose version is on the target: identical content, or imported earlier."""
    return item.recorded or (item.prior is not None and item.prior.status == "done")


# ---------------------------------------------------------------------------------------------
# The run


def select_tenants(settings: Settings, options: MigrateOptions) -> list[TenantConfig]:
    names = list(options.tenants) or sorted(settings.tenants)
    unknown = [n for n in names if n not in settings.tenants]
    if unknown:
        raise MigratorError(
            f"{settings.file}: unknown tenant {unknown[0]!r} (configured: {', '.join(sorted(settings.tenants))})"
        )
    chosen = [settings.tenants[n] for n in names if n != options.from_tenant]
    if options.shard is not None:
        index, count = options.shard
        chosen = [t for t in chosen if shard_of(t.name, count) == index]
    return chosen


def shard_of(tenant: str, count: int) -> int:
    """Deterministic 1-based shard of a tenant: the same on every host, whatever the order."""
    return int(hashlib.sha256(tenant.encode()).hexdigest(), 16) % count + 1


def inputs_fingerprint(
    store: Workspace, tenants: Sequence[TenantConfig], options: MigrateOptions
) -> str:
    h = hashlib.sha256()
    for key in store.sorted_keys():
        h.update(key.encode())
    for t in tenants:
        h.update(tenant_identity(t).encode())
    h.update(options.activation.encode())
    return h.hexdigest()


async def migrate(
    settings: Settings,
    options: MigrateOptions,
    *,
    progress: Progress | None = None,
    stopping: anyio.Event | None = None,
    journal_factory: Callable[..., Any] | None = None,
) -> Report:
    """Run a migration (or a dry run) and return what happened, item by item.

    The report's items are read from the run's workspace (a temporary file, removed when the
    report is garbage-collected or `report.items.workspace.close()` is called).
    """
    progress = progress or Progress()
    stopping = stopping or anyio.Event()
    tenants = select_tenants(settings, options)
    notices: list[str] = []
    session = open_session(settings)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(_close_session, session)
        if options.from_tenant:
            if options.from_tenant not in settings.tenants:
                raise MigratorError(
                    f"{settings.file}: unknown source tenant {options.from_tenant!r}"
                )
            source_client = ZuoraClient(settings.tenants[options.from_tenant], session, settings)
            store = await read_live_sources(source_client, settings)
        else:
            store = await anyio.to_thread.run_sync(read_sources, list(options.sources), settings)
        try:
            return await _migrate(
                settings,
                options,
                tenants,
                store,
                stack,
                session,
                progress,
                stopping,
                notices,
                journal_factory,
            )
        except BaseException:
            store.close()
            raise
    raise AssertionError("unreachable")  # pragma: no cover


async def _migrate(
    settings: Settings,
    options: MigrateOptions,
    tenants: list[TenantConfig],
    store: Workspace,
    stack: AsyncExitStack,
    session: Any,
    progress: Progress,
    stopping: anyio.Event,
    notices: list[str],
    journal_factory: Callable[..., Any] | None,
) -> Report:
    # A plan file that cannot be read stops the run before the journal records it.
    saved = load_plan_file(options.plan_file) if options.plan_file else None
    journal: Any = NullJournal()
    if options.journal and options.dry_run:
        journal = ReadOnlyJournal(options.journal, store.journal_state())
        notices.extend(journal.notices)
    elif options.journal:
        from migrator.store.journal import Journal

        run_fields = {
            "run_id": hashlib.sha256(f"{time.time()}".encode()).hexdigest()[:12],
            "inputs_hash": inputs_fingerprint(store, tenants, options),
            "tenants": {t.name: tenant_fingerprint(t) for t in tenants},
            "tool_version": __version__,
        }
        # Refuse before this run appends its run_started: a refused run leaves no trace
        # (its tenants would otherwise make every later run with the right config refuse).
        path = options.journal
        # The journal is folded into the workspace, not into a dict of every item it names.
        state = store.journal_state()
        earlier = await anyio.to_thread.run_sync(
            lambda: ReadOnlyJournal(path, state) if os.path.exists(path) else None
        )
        if earlier is not None:
            check_journal_matches(earlier, tenants, store, path)
        state.clear()
        factory = journal_factory or Journal.open
        journal = await stack.enter_async_context(factory(options.journal, run_fields, state=state))
        check_journal_matches(journal, tenants, store, options.journal)
        notices.extend(getattr(journal, "notices", []) or [])
    runs: dict[str, TenantRun] = {}
    index = source_index(store)
    linked = linked_names(store, index)

    def tenant_failed(run: TenantRun, exc: MigratorError) -> None:
        # The tenant as a whole cannot be worked (credentials, unreachable, changed since
        # planning): every item not yet decided gets that one reason; other tenants go on.
        permanent = isinstance(exc, (AuthError, PlanError)) or exc.__class__ is InputError
        undecided = store.undecided(run.tenant.name) if run.decided else store.iter_docs()
        for doc in undecided:
            store.add_outcome(
                ItemOutcome(
                    tenant=run.tenant.name,
                    source=doc.source,
                    workflow_name=doc.name,
                    status="failed" if permanent else "deferred",
                    error=str(exc),
                )
            )
        run.progress.phase = "failed"
        run.failed = True
        log.error("tenant failed", tenant=run.tenant.name, error=str(exc))

    async def plan_one(tenant: TenantConfig) -> None:
        client = ZuoraClient(tenant, session, settings)
        progress.clients[tenant.name] = client
        run = TenantRun(
            tenant,
            client,
            store,
            journal,
            options,
            settings,
            progress.tenant(tenant.name),
            stopping,
            index,
            linked,
        )
        runs[tenant.name] = run
        try:
            await run.build_plan()
            if saved is not None:
                check_saved_plan(saved, run)
        except (ZuoraError, InputError, PlanError) as exc:
            tenant_failed(run, exc)

    async def execute_one(run: TenantRun) -> None:
        try:
            await run.execute()
        except (ZuoraError, InputError) as exc:
            tenant_failed(run, exc)

    # Phase 1: every tenant's plan, so that every blocking problem is known before anything
    # is written; with --strict, one problem anywhere means nothing is written anywhere.
    with single_failure():
        async with anyio.create_task_group() as tg:
            for tenant in tenants:
                tg.start_soon(plan_one, tenant)
    problems = [p for run in runs.values() if run.planned for p in run.problems]
    hold = options.strict and bool(problems) and not options.dry_run
    if hold:
        notices.append(
            f"--strict: nothing was written because of {len(problems)} blocking problem(s): "
            + "; ".join(problems)
        )
    for run in runs.values():
        if run.planned and run.problems and options.dry_run:
            notices.extend(run.problems)
    if not hold and not options.dry_run:
        # What each tenant is about to send, so that `migrator status` can count what a
        # killed run never reached as pending.
        # A record per thousand items keeps every journal line small.
        for name, run in sorted(runs.items()):
            if run.planned and not run.failed:
                keys = store.planned_keys(name, (Action.CREATE.value, Action.NEW_VERSION.value))
                chunk = list(itertools.islice(keys, PLANNED_PER_RECORD))
                while True:  # at least one record, even an empty one
                    await journal.append("planned", tenant=name, items=chunk)
                    chunk = list(itertools.islice(keys, PLANNED_PER_RECORD))
                    if not chunk:
                        break
    # Phase 2: execute (a dry run only records what it would do).
    with single_failure():
        async with anyio.create_task_group() as tg:
            for run in runs.values():
                if run.failed:
                    continue
                if hold:
                    run.hold("not sent: --strict and the plan has blocking problems")
                    continue
                tg.start_soon(execute_one, run)
    plans = PlanRecords(
        {name: run for name, run in sorted(runs.items()) if run.planned and not run.failed}
    )
    for outcome in unreadable_outcomes(store.errors, [t.name for t in tenants]):
        store.add_outcome(outcome)
    store.flush()
    report = Report(
        items=OutcomeLog(store),
        notices=tuple(notices),
        interrupted=stopping.is_set(),
        plans=plans,
    )
    journal.finish(counts=report.summary(), interrupted=stopping.is_set())
    return report


PLANNED_PER_RECORD = 1000


async def _close_session(session: Any) -> None:
    with anyio.CancelScope(shield=True):
        await session.close()


def check_journal_matches(
    journal: Any, tenants: Sequence[TenantConfig], store: Workspace, path: str
) -> None:
    """Refuse to resume when the journal would lie about a tenant or an unanswered import."""
    history = getattr(journal, "run_history", []) or []
    current = {t.name: tenant_fingerprint(t) for t in tenants}
    for record in history:
        fields = getattr(record, "fields", record) if not isinstance(record, dict) else record
        earlier = fields.get("tenants") or {}
        for name, fp in earlier.items():
            if name in current and current[name] != fp:
                raise JournalError(
                    f"{path}: tenant {name!r} pointed at a different tenant (URL or client id) when this journal "
                    "was written; its records would be wrong here. Use a new --journal for the new target."
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
