"""Planning one tenant: read its target, then plan the sources batch by batch into the workspace.

The decisions themselves are migrator.core.plan's; this part feeds it and stores the groups.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace

import anyio
import anyio.lowlevel

from migrator.core.canonical import canonical_hash, unknown_keys
from migrator.core.config import TenantConfig
from migrator.core.document import ExportDocument
from migrator.core.errors import InputError
from migrator.core.payload import planned_callee_ids, tenant_payload
from migrator.core.plan import (
    Action,
    PlanOptions,
    SourceDoc,
    SourceIndex,
    TenantPlan,
    plan_tenant,
    resolve_in,
)
from migrator.core.profile import (
    exports_lack_block,
    listing_order_unstable,
    uncompared_keys_note,
)
from migrator.core.references import TenantSchema, check, missing_lines
from migrator.run.history import _NO_PRIOR, prior_states
from migrator.run.references import read_schema
from migrator.run.target import read_target, target_fingerprint
from migrator.run.tenant import NameSet, TenantState, tenant_identity
from migrator.store.workspace import Workspace

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


class TenantPlanning(TenantState):
    """Builds the tenant's plan (`build_plan`); the planner's decisions are pure."""

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
        # Names whose versions list answered 404: their documents are blocked, no other.
        unreadable: dict[str, str] = {}

        def note_unreadable(workflow: str, _id: int, why: str) -> None:
            unreadable.setdefault(workflow, why)

        shapes: set[bool] = set()
        await read_target(
            self.client,
            NameSet(lambda n: n in callee_names or self.store.has_name(n)),
            lambda d: self.store.add_target(name, d),
            hash_names=NameSet(lambda n: not settled(n)),
            on_unreadable=note_unreadable,
            # No versions list (issue 23): planned from the listing's versions, said in the report.
            on_listed=lambda workflow, _id, note: self.notes.append(
                f"{name}: workflow {workflow!r}: {note}"
            ),
            cache=self.cache,
            shapes=shapes,
            confirm=(lambda: list(self.store.names()))
            if listing_order_unstable(self.profile)
            else None,
        )
        # An old-shape tenant's exports never show `workflow_definition` (issue 23).
        bare = exports_lack_block(self.profile, shapes)
        self.target = target
        self.target_fingerprint = target_fingerprint(target)
        schema: TenantSchema | None = None
        if self.settings.reference_check != "off":
            # What the documents name in the tenant's data model: read before anything is sent.
            self.progress.phase = "reading data model"
            schema = await read_schema(self.client, self.store.all_references, self.cache)
        unchecked: dict[str, int] = {}
        uncompared: dict[str, list[str]] = {}  # source → unknown keys not compared (issue 23)
        options = PlanOptions(
            retry_failed=self.options.retry_failed,
            strict=self.options.strict,
            now=time.time(),
            key_salt=secrets.token_hex(8),
        )
        self.progress.phase = "planning"
        ord = 0
        total = 0
        for batch in plan_batches(self.store, self.linked):
            docs = self.store.docs_named(batch, tenant=name)
            values = self.store.values_of(d.key for d in docs)
            unbound = self._unbound(values)
            lacking = self._lacking(docs, schema, unchecked)

            def plan_with(
                payload_keys: Mapping[str, str] | None = None,
                docs: list[SourceDoc] = docs,
                unbound: dict[str, list[str]] = unbound,
                lacking: dict[str, list[str]] = lacking,
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
                    missing_references=lacking,
                )

            plan = plan_with()
            # A document with calls or substitutions is sent as another content than its own;
            # where that payload is known now (callees already in the tenant), plan again
            # comparing it with the target, so that identical content is skipped in the plan as
            # in the run.
            payload_keys = await self._payload_keys(plan, bare=bare)
            if payload_keys:
                plan = plan_with(payload_keys)
            if unreadable:
                plan = _block_unreadable(plan, unreadable, name)
            if self.profile is not None and self.profile.keeps_unknown_keys:
                await self._uncompared(plan, uncompared)
            for group in plan.groups:
                self.store.add_group(name, ord, group)
                ord += 1
                total += len(group.items)
            self.problems.extend(plan.problems)
            await anyio.lowlevel.checkpoint()  # other tenants plan meanwhile
        note = uncompared_keys_note(self.profile, name, uncompared)
        if note is not None:
            self.notes.append(note)
        for why, count in sorted(unchecked.items()):
            self.notes.append(
                f"{name}: {count} reference(s) not checked: {why} (docs/references.md)"
            )
        self.planned = True
        self.progress.total = total

    def _lacking(
        self,
        docs: Sequence[SourceDoc],
        schema: TenantSchema | None,
        unchecked: dict[str, int],
    ) -> dict[str, list[str]]:
        """Per document of the batch, what it names that the tenant lacks, one line each (with
        `reference_check = "warn"` these become notes and nothing is blocked)."""
        if schema is None:
            return {}
        name = self.tenant.name
        out: dict[str, list[str]] = {}
        by_key = {d.key: d for d in docs}
        for key, refs in self.store.references_of(by_key).items():
            findings = check(refs, schema)
            for finding in findings:
                if finding.status == "not checked":
                    unchecked[finding.why] = unchecked.get(finding.why, 0) + 1
            lines = missing_lines(findings, name)
            if not lines:
                continue
            if self.settings.reference_check == "warn":
                source = by_key[key].source
                self.notes.extend(f"{name}: {source}: warning: {line}" for line in lines)
            else:
                out[key] = lines
        return out

    async def _payload_keys(self, plan: TenantPlan, *, bare: bool = False) -> dict[str, str]:
        """Payload hashes of the new versions whose payload is not their own content; with
        `bare` (the tenant's exports never show `workflow_definition`), of every new version
        too, as such an export can show it (a document without a block keeps its own)."""
        out: dict[str, str] = {}
        for item in plan.items:
            doc = item.doc
            if item.action is not Action.NEW_VERSION or not (doc.calls or doc.substituted or bare):
                continue
            targets = planned_callee_ids(item.call_targets, self._definition_id)
            if any(v is None for v in targets.values()):
                continue  # a callee created by this run: its id is not known yet
            fetch = self.store.locate(doc)
            resolved = {t: v for t, v in targets.items() if v is not None}

            def payload_hash(
                fetch: Callable[[], ExportDocument] = fetch,
                resolved: dict[int, int] = resolved,
                tenant: TenantConfig = self.tenant,
            ) -> str:
                return canonical_hash(tenant_payload(fetch(), resolved, tenant), block=not bare)

            try:
                # A big document takes milliseconds to parse and hash: off the loop.
                digest = await anyio.to_thread.run_sync(payload_hash)
            except InputError:
                continue  # reported when it is sent
            if digest != doc.key or doc.calls or doc.substituted:
                out[doc.key] = digest
        return out

    async def _uncompared(self, plan: TenantPlan, into: dict[str, list[str]]) -> None:
        """The unknown keys of the documents this plan found identical on the target (a tenant
        that keeps them: they were not compared)."""
        for item in plan.items:
            if item.action is Action.SKIP and item.recorded:
                fetch = self.store.locate(item.doc)

                def keys_of(fetch: Callable[[], ExportDocument] = fetch) -> list[str]:
                    return unknown_keys(fetch().data)

                try:
                    found = await anyio.to_thread.run_sync(keys_of)
                except InputError:
                    continue
                if found:
                    into[item.doc.source] = found

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


def _block_unreadable(plan: TenantPlan, unreadable: Mapping[str, str], tenant: str) -> TenantPlan:
    """`plan` with every send of a name whose versions could not be read blocked: not knowing
    what the definition holds, the run can neither compare nor choose a version for it."""
    groups = []
    for group in plan.groups:
        why = unreadable.get(group.name)
        if why is None:
            groups.append(group)
            continue
        reason = f"cannot read its versions in tenant {tenant}: {why}"
        items = tuple(
            replace(item, action=Action.BLOCKED, reason=reason)
            if item.action in (Action.CREATE, Action.NEW_VERSION)
            else item
            for item in group.items
        )
        groups.append(replace(group, items=items))
    return replace(plan, groups=tuple(groups))
