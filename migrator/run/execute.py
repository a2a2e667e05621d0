"""Executing one tenant's plan: workers take groups from the workspace, callers wait for their
callees, each item is journaled (intent, then committed or failed) around its request.

Recovery is here (`Execution.record_landed`) and in the planner: migrator.core.plan gives an
in-doubt item its earlier Idempotency-Key again while the server still remembers it
(KEY_REUSE_SECONDS), so a resend that reaches Zuora is answered as a replay; when the content it
sent is found on the target, the import did land and is recorded as committed, not sent again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import anyio.abc

from migrator.core.canonical import canonical_hash
from migrator.core.errors import AuthError, InputError, ZuoraError, single_failure
from migrator.core.logs import redact_text
from migrator.core.payload import planned_callee_ids, tenant_payload
from migrator.core.plan import LEFT_BY_RETRY_FAILED, Action, NameGroup, PlannedItem
from migrator.core.retry import classify
from migrator.run.activation import ensure_active, record_activating, verify_import
from migrator.run.change import planned_change
from migrator.run.resolve import Pending, Resolution, listed_version, version_in_entry
from migrator.run.tenant import Done, GroupState, TenantRun, on_target
from migrator.store.prepared import Prepared, payload_key


async def execute(run: TenantRun) -> None:
    """Send the tenant's planned items, a worker per slot of its concurrency."""
    assert run.planned
    execution = Execution(run)
    try:
        await execution.run_groups()
        await execution.resolution.resolve_pending()
    finally:
        # A failed or cancelled run still reports what it imported.
        execution.resolution.record_unresolved()


class Execution:
    """One tenant's sending: the groups its workers take, each item journaled around its
    request; the ids answers leave open go to its `Resolution`."""

    def __init__(self, run: TenantRun) -> None:
        self.run = run
        self.tenant = run.tenant
        self.client = run.client
        self.journal = run.journal
        self.options = run.options
        self.store = run.store
        self.resolution = Resolution(run)
        # Callers wait for their callees' groups: one event per linked name, made up front.
        self.done = {name: Done() for name in run.linked}

    async def run_groups(self) -> None:
        self.run.progress.phase = "importing"
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
        self.run.progress.phase = "done"

    def _group_state(self, group: NameGroup) -> GroupState:
        defs = self.run.target.get(group.name, [])
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
                    if self.run.activates(i)
                    and (
                        i.action in (Action.CREATE, Action.NEW_VERSION)
                        or (i.action is Action.SKIP and i.version is not None and on_target(i))
                    )
                ),
                None,
            ),
        )

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
            for i, item in enumerate(group.items):
                # Later items of the group need the definition's id before any batch comes.
                state.more = any(
                    later.action in (Action.CREATE, Action.NEW_VERSION)
                    or (later.action is Action.SKIP and self.run.activates(later))
                    for later in group.items[i + 1 :]
                )
                await self._run_item(group.name, state, item)
        finally:
            if done is not None:
                done.set()

    async def _run_item(self, name: str, state: GroupState, item: PlannedItem) -> None:
        if item.action is Action.SKIP and item.reason == LEFT_BY_RETRY_FAILED:
            # Not sent and not done: the run did not do what a plain run would, so it says so.
            self.run.outcome(item, "deferred", error=item.reason)
            return
        if item.action is Action.SKIP:
            reason = item.reason
            if on_target(item) and item.version and not self.options.dry_run:
                # Identical content is already there; with activation asked for, make sure that
                # version is the active one (a re-run with --activate after an inactive import).
                try:
                    switched = await ensure_active(self.run, state, item, item.version)
                except ZuoraError as exc:
                    self.run.outcome(
                        item, "deferred", error=f"activating version {item.version}: {exc}"
                    )
                    return
                if switched:
                    reason += "; " + switched
            self.run.outcome(
                item,
                "skipped",
                reason=reason,
                target_workflow_id=item.target_definition_id or state.definition_id,
            )
            if item.recorded:
                await self._record(
                    "skipped",
                    item,
                    reason=item.reason,
                    name=item.doc.name,
                    source=item.doc.source,
                    target_definition_id=item.target_definition_id,
                    version=item.version,
                )
            return
        if item.action is Action.BLOCKED:
            self.run.outcome(item, "blocked", error=item.reason)
            return
        if state.failed is not None:
            self.run.outcome(item, "blocked", error=f"{state.failed}; later versions wait")
            return
        if self.options.dry_run:
            self.run.outcome(
                item,
                "planned",
                reason=item.reason or None,
                target_workflow_id=item.target_definition_id or state.definition_id,
                change=await planned_change(self.run, state, item),
            )
            return
        if self.run.stopping.is_set():
            self.run.outcome(item, "deferred", error="not started: the run was asked to stop")
            return
        if self.run.rejected is not None:
            # The tenant refused this run's credentials: nothing more is tried (no intent, no
            # request); the items stay pending in the journal for a run whose credentials work.
            self.run.outcome(item, "deferred", error=f"not sent: {self.run.rejected}")
            return
        try:
            await self._send(name, state, item)
        except (ZuoraError, InputError) as exc:
            unread = isinstance(exc, InputError)  # the document, for good
            transient = isinstance(exc, ZuoraError) and (
                isinstance(exc, AuthError)  # the credentials, not the item: retry once they work
                or exc.in_doubt
                or exc.retryable
                or classify(exc.status).transient
            )
            status = "deferred" if transient else "failed"
            # The client scrubs its own tenant's secrets; a server may echo another tenant's.
            reason = str(exc) if unread else redact_text(str(exc))
            if isinstance(exc, ZuoraError) and exc.in_doubt:
                reason += " (the import may have landed; running again resolves it with the same Idempotency-Key)"
            await self._record(
                status, item, reason=reason, permanent=not transient, name=item.doc.name
            )
            why = "could not be read" if unread else "did not complete"
            state.failed = f"an earlier version ({item.doc.source}) {why}"
            if isinstance(exc, AuthError):
                # Not re-raised (that would end every tenant's run): this tenant stops sending.
                self.run.rejected = reason
            self.run.outcome(item, status, error=reason)

    async def _record(self, type_: str, item: PlannedItem, **fields: Any) -> None:
        """Journal one record of the item (the tenant and the item's key filled in)."""
        await self.journal.append(type_, tenant=self.tenant.name, item=item.doc.key, **fields)

    async def _send(self, name: str, state: GroupState, item: PlannedItem) -> None:
        fetch = self.store.locate(item.doc)
        call_targets: dict[int, int] = {}
        for task_id, callee_id in planned_callee_ids(
            item.call_targets, self.run.definition_id
        ).items():
            if callee_id is None:
                callee = item.call_targets[task_id]
                # The callee did not land in this run (deferred, blocked, failed): the caller
                # waits for a later run instead of failing for good.
                raise ZuoraError(
                    f"callee {callee!r} has no definition in tenant {self.tenant.name} (it was not imported)",
                    status=409,
                    retryable=True,
                )
            call_targets[task_id] = callee_id
        tenant = self.tenant
        # The same payload may have been prepared by another tenant of this run (a fleet sends
        # the same documents): store/prepared.py.
        shared = self.store.payloads
        key = payload_key(item.doc.key, item.doc.source, call_targets, tenant.substitutions)

        def prepared() -> Prepared:
            doc = fetch()
            payload = tenant_payload(doc, call_targets, tenant)
            return shared.prepared(key, payload, canonical_hash(payload), bool(doc.ref_tasks))

        ready = await shared.get_or_prepare(key, prepared)
        payload, digest, file_refs = ready.body, ready.digest, ready.file_refs
        if digest in state.known_hashes:
            version = state.known_hashes[digest]
            if item.prior is not None and item.prior.intent is not None:
                await self.record_landed(name, state, item, version)
                return
            reason = f"identical to version {version} in tenant {self.tenant.name}"
            switched = await ensure_active(self.run, state, item, version)
            if switched:
                reason += "; " + switched
            await self._record(
                "skipped",
                item,
                reason=reason,
                name=name,
                source=item.doc.source,
                target_definition_id=state.definition_id,
                version=version,
            )
            self.run.outcome(
                item,
                "skipped",
                reason=reason,
                version=version,
                target_workflow_id=state.definition_id,
            )
            return
        assert item.version is not None and item.idempotency_key is not None
        activate = self.run.activates(item)
        definition_id = state.definition_id
        action = Action.NEW_VERSION if definition_id is not None else Action.CREATE
        if item.prior is not None and item.prior.status == "gone":
            # An earlier run imported it and the tenant no longer has it: pending again.
            await self._record(
                "gone",
                item,
                name=name,
                reason=f"no definition named {name!r} in tenant {self.tenant.name} any more",
            )
        if activate:  # what was active before, for `migrator rollback`
            await record_activating(
                self.run, state, name, item.version, created=definition_id is None
            )
        await self._record(
            "intent",
            item,
            action=action.value,
            name=name,
            version=item.version,
            target_definition_id=definition_id,
            idempotency_key=item.idempotency_key,
            source=item.doc.source,
            # The export's workflow.id, for `migrator ids` (journals before it lack the field).
            source_version_id=item.doc.workflow_id,
        )
        answer_id: int | None = None
        version_id: int | None = None
        entry: Mapping[str, Any] | None = None
        if action is Action.CREATE:
            response = await self.client.import_workflow(
                payload,
                version=item.version,
                activate=activate,
                idempotency_key=item.idempotency_key,
            )
            answer_id = response.id
            said = self.run.profile.import_response_id if self.run.profile else None
            if response.kind == "definition" and answer_id is not None:
                # The answer says so itself (`definitionId`, §3.6 [O]): no guess, no lookup.
                definition_id = answer_id
                version_id = response.version_id
            elif said == "definition" and answer_id is not None:
                definition_id = answer_id  # the tenant answers with the definition's id
            elif said == "version" and answer_id is not None:
                version_id = answer_id
            if definition_id is None and (
                state.more or name in self.run.linked or self.options.verify
            ):
                definition_id, found = await self.resolution.resolve_now(name, answer_id)
                entry = found
        else:
            assert definition_id is not None
            response = await self.client.import_version(
                definition_id,
                payload,
                version=item.version,
                activate=activate,
                idempotency_key=item.idempotency_key,
            )
            entry = response.fields  # the definition, with its active version
            if response.version_id is not None:  # the created version's object [O]
                version_id = response.version_id
        updated_at = response.updated_at if action is Action.CREATE else None
        if entry is not None and version_id is None:
            version_id, shown_at = version_in_entry(entry, item.version)
            updated_at = updated_at or shown_at
        if self.options.verify and definition_id is not None and version_id is None:
            version_id, _ = await listed_version(self.client, definition_id, item.version)
        await self._record(
            "committed",
            item,
            target_definition_id=definition_id,
            target_version_id=version_id,
            version=item.version,
            name=name,
            answer_id=answer_id,
        )
        state.known_hashes[digest] = item.version
        if definition_id is not None:
            state.definition_id = definition_id
        state.version_ids[item.version] = version_id
        if activate:
            state.active_version_id = version_id
        if name in self.run.linked and definition_id is not None:
            self.run.definition_ids[name] = definition_id  # callers of this name need its id
        pending = Pending(
            name=name,
            item=item,
            version=item.version,
            action=action.value,
            answer_id=answer_id,
            definition_id=definition_id,
            version_id=version_id,
            updated_at=updated_at,
            digest=digest,
            keeps_content=not file_refs
            or (self.run.profile is not None and self.run.profile.rewrite_file_refs is True),
        )
        if not self.options.verify:
            await self.resolution.settle(pending)
            return
        assert definition_id is not None
        verified, verify_detail = await verify_import(self.run, definition_id, item, digest)
        if self.run.cache is not None and verified and version_id is not None and updated_at:
            self.run.cache.put(definition_id, version_id, updated_at, digest)
        self.run.outcome(
            item,
            "imported",
            target_workflow_id=definition_id,
            target_version_id=version_id,
            action=action.value,
            verified=verified,
            reason=f"--verify: {verify_detail}" if verify_detail else None,
        )

    async def record_landed(
        self, name: str, state: GroupState, item: PlannedItem, version: str
    ) -> None:
        """Recovery: an earlier run's unanswered import whose content is found on the target did
        land; record it as committed (and switch it on if this run activates, as the lost
        answer's run would have) instead of sending it again."""
        activated = await ensure_active(self.run, state, item, version)
        await self._record(
            "committed",
            item,
            target_definition_id=state.definition_id,
            target_version_id=None,
            version=version,
            recovered=True,
            name=name,
        )
        self.run.outcome(
            item,
            "imported",
            version=version,
            target_workflow_id=state.definition_id,
            reason="an earlier run's import had landed (found on the target)"
            + (f"; {activated}" if activated else ""),
        )
