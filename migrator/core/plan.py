"""Planning, pure: for one tenant, what happens to each source document and in which order.

Inputs are plain values (document summaries, the target's definitions and version hashes, the
journal's folded state); the output is a `TenantPlan` the engine executes and `migrator plan` prints.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from migrator.core.versions import choose_version, is_valid_version, version_key

# An in-doubt intent's Idempotency-Key is only resent while the server still remembers it (24 h,
# spec §1.8); keep an hour of margin for clocks and long runs.
KEY_REUSE_SECONDS = 23 * 3600


# Why --retry-failed leaves an item alone: not done, not failed, so a plain run must still send it
# (the run reports it as deferred, never as nothing to do).
LEFT_BY_RETRY_FAILED = "not sent: --retry-failed sends only failed items; run without it to finish"


class Action(StrEnum):
    CREATE = "create"  # POST /workflows/import: new definition with its first version
    NEW_VERSION = "new_version"  # POST /workflows/{id}/versions/import
    SKIP = "skip"  # nothing to send (identical content, done earlier, duplicate)
    BLOCKED = "blocked"  # cannot be sent (missing callee, ambiguous target, unbound value)


def int_or_none(value: Any) -> int | None:
    """An id as Zuora or the journal gives it (an int, or digits in a string), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


@dataclass(frozen=True, slots=True)
class Call:
    """One Execute::WorkflowTask reference as the plan needs it."""

    task_id: int
    workflow_id: str | None
    workflow_name: str | None


@dataclass(frozen=True, slots=True)
class SourceDoc:
    """What the plan keeps of a document: never its body."""

    key: str  # the journal item key: the document's canonical content hash
    source: str
    name: str
    version: str | None
    workflow_id: int
    definition_id: int | None = None
    calls: tuple[Call, ...] = ()
    active: bool | None = None  # the source's activation, when known (snapshots, live, status)
    # True when this tenant's substitution table touches the document: its payload hash is then
    # only known once the payload is built.
    substituted: bool = False


@dataclass(frozen=True, slots=True)
class TargetVersion:
    id: int | None
    version: str
    content_hash: str | None = None


@dataclass(frozen=True, slots=True)
class TargetDefinition:
    id: int
    name: str
    versions: tuple[TargetVersion, ...] = ()
    active_version_id: int | None = None

    @property
    def highest_version(self) -> str | None:
        valid = [v.version for v in self.versions if is_valid_version(v.version)]
        return max(valid, key=version_key) if valid else None


@dataclass(frozen=True, slots=True)
class PriorIntent:
    """The journal's last intent for an item that has no outcome (in doubt or deferred)."""

    action: str
    version: str
    target_definition_id: int | None
    idempotency_key: str
    time: float


@dataclass(frozen=True, slots=True)
class PriorState:
    """The journal's folded view of one (tenant, item), reduced to what planning needs."""

    status: str  # pending | in_doubt | done | failed | deferred | skipped
    intent: PriorIntent | None = None
    reason: str | None = None
    target_definition_id: int | None = None
    target_version_id: int | None = None
    version: str | None = None
    attempts: int = 0  # intents the journal has seen for the item


@dataclass(frozen=True, slots=True)
class PlannedItem:
    doc: SourceDoc
    action: Action
    version: str | None = None
    target_definition_id: int | None = None
    reason: str = ""
    idempotency_key: str | None = None  # reused from an in-doubt intent; else derived at send time
    # callee name for each calling task id; the engine resolves the callee's id in the tenant
    call_targets: Mapping[int, str] = field(default_factory=dict)
    resumed: bool = False  # True when this item resends an in-doubt intent
    # A skip that states a fact about the target (identical content is there) and belongs in the
    # journal; other skips (duplicates in the sources, done earlier, not selected) must not
    # overwrite the item's journal state.
    recorded: bool = False
    prior: PriorState | None = None


@dataclass(frozen=True, slots=True)
class NameGroup:
    """Every source document of one workflow name, in the order they are imported."""

    name: str
    definition_id: int | None  # the target definition, when it exists before the run
    items: tuple[PlannedItem, ...]
    callees: frozenset[str] = frozenset()  # names this group's documents call


@dataclass(frozen=True, slots=True)
class TenantPlan:
    tenant: str
    groups: tuple[NameGroup, ...]  # callees before callers
    problems: tuple[str, ...] = ()  # blocking problems, each one line

    @property
    def items(self) -> list[PlannedItem]:
        return [item for group in self.groups for item in group.items]


@dataclass(frozen=True, slots=True)
class PlanOptions:
    retry_failed: bool = False  # only items the journal records as failed
    strict: bool = False  # unbound tenant-specific values block the document
    now: float = 0.0
    # Folded into every import key this plan derives (not into keys reused from in-doubt
    # intents): unique per run, so a create after the tenant deleted what an earlier run's create
    # made is a new request, not a replay of the old answer (spec §1.8 keeps keys for 24 hours).
    key_salt: str = ""


def activation_key(
    identity: str,
    definition_id: int,
    version_id: int,
    current: int | None,
    status: str,
    updated_at: str = "",
) -> str:
    """Deterministic per (tenant, definition, version, state found): a lost answer is replayed,
    while a definition changed since (switched back by a rollback or by hand, even to the very
    state it had before: its `updatedAt` moved) gets a fresh key and is switched on."""
    material = "\x1f".join(
        [
            identity,
            "activate",
            str(definition_id),
            str(version_id),
            str(current),
            status,
            updated_at,
        ]
    )
    return "migrator-" + hashlib.sha256(material.encode()).hexdigest()[:48]


def idempotency_key(
    tenant_identity: str,
    item: str,
    action: str,
    target_definition_id: int | None,
    version: str,
    retry: int = 0,
    salt: str = "",
) -> str:
    """A key for one import of one content to one place: resending it is a replay.

    The journal holds every intent (with its key) before its request is sent, and a resumed
    in-doubt item resends with the journal's key, never a new one (docs/journal.md). `salt` (the
    plan's `key_salt`) makes the keys of a later run new: the tenant may have deleted what an
    earlier run's same-looking request created, and the server would answer it from its memory.
    Always well under 255 characters. `retry` counts deliberate re-sends of a failed item: the
    server stores failures under their key too (spec §1.8), so a retry of a refused import needs
    a key of its own.
    """
    target = str(target_definition_id) if target_definition_id is not None else "new"
    parts = [tenant_identity, item, action, target, version] + ([f"retry-{retry}"] if retry else [])
    parts += [f"salt-{salt}"] if salt else []
    material = "\x1f".join(parts)
    return "migrator-" + hashlib.sha256(material.encode()).hexdigest()[:48]


def _doc_order(doc: SourceDoc) -> tuple[Any, ...]:
    if doc.version is not None and is_valid_version(doc.version):
        return (0, version_key(doc.version), doc.source)
    return (1, (0, 0, 0), doc.source)


@dataclass(frozen=True, slots=True)
class SourceIndex:
    """Where a call can point among all the sources: definition id → name, export id → name,
    and the set of names. Built from the documents in memory, or answered by the run's workspace
    when only part of the sources is planned at a time."""

    by_definition_id: Callable[[int], str | None]
    by_workflow_id: Callable[[int], str | None]
    names: Container[str]

    @classmethod
    def of(cls, docs: Iterable[SourceDoc]) -> SourceIndex:
        """An index of `docs`; where two share an id, the later one (in reading order) wins."""
        listed = list(docs)
        by_definition_id = {d.definition_id: d.name for d in listed if d.definition_id is not None}
        by_workflow_id = {d.workflow_id: d.name for d in listed}
        return cls(by_definition_id.get, by_workflow_id.get, {d.name for d in listed})


def resolve_in(
    call: Call, index: SourceIndex, target: Mapping[str, Sequence[TargetDefinition]]
) -> str | None:
    """The callee's workflow name for a call, or None when it is nowhere to be found.

    An id is matched first against the sources' definition ids (snapshots, live sources), then
    against their export ids (pre-versioning exports use one number for both), then the
    `workflow_name` fallback against the sources and the target's definitions.
    """
    ref = (call.workflow_id or "").strip()
    if ref.isdigit():
        number = int(ref)
        found = index.by_definition_id(number)
        if found is None:
            found = index.by_workflow_id(number)
        if found is not None:
            return found
    name = call.workflow_name
    if name and (name in index.names or name in target):
        return name
    return None


def plan_tenant(
    tenant: str,
    tenant_identity: str,
    docs: Iterable[SourceDoc],
    target: Mapping[str, Sequence[TargetDefinition]],
    prior: Mapping[str, PriorState],
    *,
    options: PlanOptions = PlanOptions(),
    unbound: Mapping[str, Sequence[str]] | None = None,
    payload_keys: Mapping[str, str] | None = None,
    index: SourceIndex | None = None,
    missing_references: Mapping[str, Sequence[str]] | None = None,
) -> TenantPlan:
    """Plan one tenant: match names to definitions, choose versions, order callees first.

    `target` maps a workflow name to the tenant's definitions of that exact name (normally one);
    `prior` maps item keys to the journal's state; `unbound` maps item keys to the tenant-specific
    values no substitution covers (they block only with `options.strict`). `payload_keys` maps the
    key of a document whose payload differs from it (calls pointed at the tenant's ids,
    substitutions) to its payload's canonical hash, where the caller could work that out: only
    then is such a document compared with the target's versions. `index` answers where calls
    point when `docs` is only part of the sources (default: an index of `docs`); every callee
    among the sources must then be among `docs` too. `missing_references` maps item keys to
    the custom fields and objects the tenant lacks (core/references.py), one line each: such a
    document is blocked (its callers too, when it is not in the tenant already).
    """
    unbound = unbound or {}
    payload_keys = payload_keys or {}
    docs = list(docs)
    by_name: dict[str, list[SourceDoc]] = {}
    for doc in docs:
        by_name.setdefault(doc.name, []).append(doc)
    if index is None:
        index = SourceIndex.of(docs)

    problems: list[str] = []
    groups: dict[str, NameGroup] = {}
    for name in sorted(by_name):
        group_docs = sorted(by_name[name], key=_doc_order)
        callees: set[str] = set()
        call_maps: dict[str, dict[int, str]] = {}
        missing: dict[str, list[str]] = {}
        for doc in group_docs:
            mapping: dict[int, str] = {}
            for call in doc.calls:
                if call.workflow_id and "{{" in call.workflow_id:
                    continue  # Liquid: decided at run time in the tenant, nothing to remap
                callee = resolve_in(call, index, target)
                if callee is None:
                    what = f"id {call.workflow_id}" if call.workflow_id else "no id"
                    if call.workflow_name:
                        what += f", name {call.workflow_name!r}"
                    missing.setdefault(doc.key, []).append(
                        f"task {call.task_id} calls a workflow ({what}) that is neither in the sources nor in tenant {tenant}"
                    )
                    continue
                mapping[call.task_id] = callee
                if callee != name:
                    callees.add(callee)
            call_maps[doc.key] = mapping
            lacking = (missing_references or {}).get(doc.key)
            if lacking:
                missing.setdefault(doc.key, []).extend(lacking)
        definitions = list(target.get(name, ()))
        items = _plan_group(
            tenant,
            tenant_identity,
            name,
            group_docs,
            definitions,
            prior,
            options,
            unbound,
            missing,
            call_maps,
            payload_keys,
        )
        for item in items:
            if item.action is Action.BLOCKED:
                problems.append(f"{tenant}: {item.doc.source}: {item.reason}")
        groups[name] = NameGroup(
            name=name,
            definition_id=definitions[0].id if len(definitions) == 1 else None,
            items=tuple(items),
            callees=frozenset(callees),
        )

    ordered, cycles = _callees_first(groups)
    for cycle in cycles:
        chain = " → ".join([*cycle, cycle[0]])
        for name in cycle:
            group = groups[name]
            blocked = tuple(
                replace(item, action=Action.BLOCKED, reason=f"call cycle: {chain}")
                if item.action in (Action.CREATE, Action.NEW_VERSION)
                else item
                for item in group.items
            )
            groups[name] = replace(group, items=blocked)
        problems.append(f"{tenant}: call cycle between workflows: {chain}")
    # A caller needs its callee's definition id in the tenant. A callee that is blocked and not
    # there already never gets one, so its callers are blocked too, callees first so that this
    # carries up the call chain (they used to be planned, then deferred by every run).
    for name in ordered:
        group = groups[name]
        items = list(group.items)
        held: str | None = None
        for position, item in enumerate(items):
            if item.action not in (Action.CREATE, Action.NEW_VERSION):
                continue
            if held is not None:
                reason = f"{held}; later versions wait"
            else:
                stuck = [
                    _unavailable(callee, groups, target, tenant)
                    for callee in sorted(set(item.call_targets.values()) - {name})
                ]
                reason = "; ".join(s for s in stuck if s)
                if not reason:
                    continue
                held = f"an earlier version ({item.doc.source}) is blocked"
            items[position] = replace(item, action=Action.BLOCKED, reason=reason)
            problems.append(f"{tenant}: {item.doc.source}: {reason}")
        groups[name] = replace(group, items=tuple(items))
    return TenantPlan(
        tenant=tenant,
        groups=tuple(groups[name] for name in ordered),
        problems=tuple(problems),
    )


def _unavailable(
    callee: str,
    groups: Mapping[str, NameGroup],
    target: Mapping[str, Sequence[TargetDefinition]],
    tenant: str,
) -> str | None:
    """Why `callee` will have no definition id in the tenant for its callers, or None."""
    existing = len(target.get(callee, ()))
    if existing == 1:
        return None
    group = groups.get(callee)
    if existing == 0 and group is not None:
        if any(i.action is Action.CREATE for i in group.items):
            return None
        return f"calls {callee!r}, which is blocked in tenant {tenant}"
    return (
        f"calls {callee!r}, of which tenant {tenant} has {existing} definitions (cannot tell which)"
    )


def _plan_group(
    tenant: str,
    tenant_identity: str,
    name: str,
    group_docs: list[SourceDoc],
    definitions: list[TargetDefinition],
    prior: Mapping[str, PriorState],
    options: PlanOptions,
    unbound: Mapping[str, Sequence[str]],
    missing: Mapping[str, list[str]],
    call_maps: Mapping[str, Mapping[int, str]],
    payload_keys: Mapping[str, str],
) -> list[PlannedItem]:
    items: list[PlannedItem] = []
    if len(definitions) > 1:
        ids = ", ".join(str(d.id) for d in definitions)
        reason = f"tenant {tenant} has {len(definitions)} definitions named {name!r} (ids {ids}); cannot tell which to version"
        return [PlannedItem(doc=d, action=Action.BLOCKED, reason=reason) for d in group_docs]
    definition = definitions[0] if definitions else None
    known_hashes = {
        v.content_hash: v.version
        for v in (definition.versions if definition else ())
        if v.content_hash
    }
    highest = definition.highest_version if definition else None
    exists = definition is not None
    seen: dict[str, str] = {}
    group_blocked: str | None = None
    for doc in group_docs:
        state = prior.get(doc.key)
        if doc.key in seen:
            items.append(_held(doc, Action.SKIP, f"same content as {seen[doc.key]}", state))
            continue
        seen[doc.key] = doc.source
        if state is not None and state.status == "done" and not definitions:
            # The journal is not the target: what an earlier run imported was deleted since (the
            # listing has no definition of the name), so it is sent again rather than called done.
            state = replace(state, status="gone", intent=None)
        if state is not None and state.status == "done":
            items.append(
                PlannedItem(
                    doc=doc,
                    action=Action.SKIP,
                    version=state.version,
                    target_definition_id=state.target_definition_id,
                    reason="imported by an earlier run (journal)",
                    prior=state,
                )
            )
            if (
                state.version
                and is_valid_version(state.version)
                and (highest is None or version_key(state.version) > version_key(highest))
            ):
                highest = state.version
            exists = True
            continue
        if options.retry_failed and state is not None and state.status == "skipped":
            # Settled by an earlier run (identical content was there): nothing is left to do.
            reason = f"skipped by an earlier run (journal): {state.reason or 'settled'}"
            items.append(_held(doc, Action.SKIP, reason, state))
            continue
        if options.retry_failed and (state is None or state.status != "failed"):
            items.append(_held(doc, Action.SKIP, LEFT_BY_RETRY_FAILED, state))
            continue
        if state is not None and state.status == "failed" and not options.retry_failed:
            reason = f"failed in an earlier run: {state.reason or 'unknown'} (use --retry-failed to send it again)"
            items.append(_held(doc, Action.BLOCKED, reason, state))
            group_blocked = group_blocked or f"an earlier version ({doc.source}) failed"
            continue
        sent = payload_keys.get(doc.key)
        if sent is None and not doc.calls and not doc.substituted:
            sent = doc.key
        if (
            sent is not None
            and sent in known_hashes
            and doc.key in payload_keys
            and (state is not None and state.intent is not None and definition is not None)
        ):
            # An earlier run's unanswered import of this payload did land: the run records it as
            # imported (recovered), under the version it landed as; no new number is used up.
            items.append(
                PlannedItem(
                    doc=doc,
                    action=Action.NEW_VERSION,
                    version=known_hashes[sent],
                    target_definition_id=definition.id,
                    idempotency_key=state.intent.idempotency_key,
                    call_targets=dict(call_maps.get(doc.key, {})),
                    resumed=True,
                    prior=state,
                )
            )
            exists = True
            continue
        if sent is not None and sent in known_hashes:
            items.append(
                PlannedItem(
                    doc=doc,
                    action=Action.SKIP,
                    version=known_hashes[sent],
                    target_definition_id=definition.id if definition else None,
                    reason=f"identical to version {known_hashes[sent]} in tenant {tenant}",
                    prior=state,
                    recorded=True,
                )
            )
            continue
        if group_blocked is not None:
            items.append(_held(doc, Action.BLOCKED, f"{group_blocked}; later versions wait", state))
            continue
        reasons = list(missing.get(doc.key, ()))
        if options.strict and unbound.get(doc.key):
            reasons.append("unbound tenant-specific values: " + ", ".join(unbound[doc.key]))
        if not exists:
            # A call to its own workflow needs the definition's id, which only its creation gives.
            reasons += [
                f"task {task_id} calls this workflow itself, which does not exist in tenant {tenant} yet"
                " (import a first version without that call)"
                for task_id, callee in call_maps.get(doc.key, {}).items()
                if callee == name
            ]
        if reasons:
            items.append(_held(doc, Action.BLOCKED, "; ".join(reasons), state))
            group_blocked = f"an earlier version ({doc.source}) is blocked"
            continue
        action = Action.NEW_VERSION if exists else Action.CREATE
        version = choose_version(doc.version, highest)
        target_id = definition.id if definition else None
        key: str | None = None
        resumed = False
        intent = state.intent if state is not None else None
        if (
            intent is not None
            and intent.action == action.value
            and intent.target_definition_id == target_id
            and options.now - intent.time < KEY_REUSE_SECONDS
            and is_valid_version(intent.version)
            and (highest is None or version_key(intent.version) > version_key(highest))
        ):
            # Resend exactly what may already have landed, with the same key: a replay, not a duplicate.
            version, key, resumed = intent.version, intent.idempotency_key, True
        if key is None:
            retry = state.attempts if state is not None and state.status == "failed" else 0
            key = idempotency_key(
                tenant_identity,
                doc.key,
                action.value,
                target_id,
                version,
                retry,
                salt=options.key_salt,
            )
        items.append(
            PlannedItem(
                doc=doc,
                action=action,
                version=version,
                target_definition_id=target_id,
                idempotency_key=key,
                call_targets=dict(call_maps.get(doc.key, {})),
                resumed=resumed,
                prior=state,
            )
        )
        highest = version
        exists = True
    return items


def _held(doc: SourceDoc, action: Action, reason: str, prior: PriorState | None) -> PlannedItem:
    """An item that is not sent (skipped or blocked) for `reason`."""
    return PlannedItem(doc=doc, action=action, reason=reason, prior=prior)


def _callees_first(groups: Mapping[str, NameGroup]) -> tuple[list[str], list[list[str]]]:
    """Order names so every callee precedes its callers; report each cycle once."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done
    cycles: list[list[str]] = []
    stack: list[str] = []

    def visit(name: str) -> None:
        mark = state.get(name, 0)
        if mark == 2:
            return
        if mark == 1:
            cycle = stack[stack.index(name) :]
            if sorted(cycle) not in [sorted(c) for c in cycles]:
                cycles.append(list(cycle))
            return
        state[name] = 1
        stack.append(name)
        for callee in sorted(groups[name].callees):
            if callee in groups:
                visit(callee)
        stack.pop()
        state[name] = 2
        order.append(name)

    for name in sorted(groups):
        visit(name)
    return order, cycles
