"""Executing one tenant's plan: workers take groups from the workspace, callers wait for their
callees, each item is journaled (intent, then committed or failed) around its request.
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
from migrator.run.change import planned_change
from migrator.run.resolve import Pending, TenantResolution, version_in_entry
from migrator.run.tenant import Done, GroupState, _on_target
from migrator.store.prepared import Prepared, payload_key


class TenantExecution(TenantResolution):
    """Sends the planned items (`execute`), a worker per slot of the tenant's concurrency."""

    async def execute(self) -> None:
        assert self.planned
        self._init_resolution()
        try:
            await self._execute()
            await self._resolve_pending()
        finally:
            self._record_unresolved()  # a failed or cancelled run still reports what it imported

    async def _execute(self) -> None:
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
                    or (later.action is Action.SKIP and self._activate(later))
                    for later in group.items[i + 1 :]
                )
                await self._run_item(group.name, state, item)
        finally:
            if done is not None:
                done.set()

    async def _run_item(self, name: str, state: GroupState, item: PlannedItem) -> None:
        if item.action is Action.SKIP and item.reason == LEFT_BY_RETRY_FAILED:
            # Not sent and not done: the run did not do what a plain run would, so it says so.
            self._outcome(item, "deferred", error=item.reason)
            return
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
                change=await planned_change(self, state, item),
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
                or classify(exc.status).transient
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
        fetch = self.store.locate(item.doc)
        call_targets: dict[int, int] = {}
        for task_id, callee_id in planned_callee_ids(
            item.call_targets, self._definition_id
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
                await self._record_landed(name, state, item, version)
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
        if item.prior is not None and item.prior.status == "gone":
            # An earlier run imported it and the tenant no longer has it: pending again.
            await self.journal.append(
                "gone",
                tenant=self.tenant.name,
                item=item.doc.key,
                name=name,
                reason=f"no definition named {name!r} in tenant {self.tenant.name} any more",
            )
        if activate:  # what was active before, for `migrator rollback`
            await self._record_activating(state, name, item.version, created=definition_id is None)
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
            legacy = self.options.legacy  # before issue 15 no profile was read
            said = self.profile.import_response_id if self.profile and not legacy else None
            if response.kind == "definition" and answer_id is not None:
                # The answer says so itself (`definitionId`, §3.6 [O]): no guess, no lookup.
                definition_id = answer_id
                version_id = response.version_id
            elif said == "definition" and answer_id is not None:
                definition_id = answer_id  # the tenant answers with the definition's id
            elif said == "version" and answer_id is not None:
                version_id = answer_id
            if definition_id is None and (
                state.more or name in self.linked or self.options.verify or self.options.legacy
            ):
                definition_id, found = await self._resolve_now(name, answer_id)
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
        if self.options.legacy:  # before issue 15: the versions list after every import
            assert definition_id is not None
            version_id = await self._resolve_version(definition_id, item.version)
        if self.options.verify and definition_id is not None and version_id is None:
            version_id = await self._resolve_version(definition_id, item.version)
        await self.journal.append(
            "committed",
            tenant=self.tenant.name,
            item=item.doc.key,
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
        if name in self.linked and definition_id is not None:  # callers of this name need its id
            self.definition_ids[name] = definition_id
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
            or (self.profile is not None and self.profile.rewrite_file_refs is True),
        )
        if not self.options.verify:
            await self._settle(pending)
            return
        assert definition_id is not None
        verified, verify_detail = await self._verify(definition_id, item, digest)
        if self.cache is not None and verified and version_id is not None and updated_at:
            self.cache.put(definition_id, version_id, updated_at, digest)
        self._outcome(
            item,
            "imported",
            target_workflow_id=definition_id,
            target_version_id=version_id,
            action=action.value,
            verified=verified,
            reason=f"--verify: {verify_detail}" if verify_detail else None,
        )
