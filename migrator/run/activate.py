"""`migrator activate`'s pipeline: per tenant and definition, make the highest version a journal
records the active one, tenant by tenant or wave by wave. Each switch is an `Activation`
(run/activation.py) computed once: a dry run renders it, the real run executes exactly it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import anyio
import structlog

from migrator.core.config import Settings
from migrator.core.errors import AuthError, ZuoraError
from migrator.core.journal_records import ItemState
from migrator.core.listing import shown_versions
from migrator.core.plan import int_or_none
from migrator.core.report import ItemOutcome, Report
from migrator.core.rollout import Wave, assign_waves
from migrator.core.versions import is_valid_version, version_key
from migrator.run.activation import Activation, activation_of, switch_on
from migrator.run.context import (
    check_tenant_identity,
    choose_tenants,
    run_clients,
    run_started_fields,
)
from migrator.run.history import NullJournal
from migrator.run.resolve import pick_definition, version_in_entry
from migrator.run.rollback import DiscardState
from migrator.run.rollout import WaveRunner, wave_failures
from migrator.store.journal import read_state
from migrator.store.workspace import OutcomeLog, Workspace
from migrator.store.workspace_views import JournalState
from migrator.zuora import ZuoraClient

log = structlog.get_logger("migrator.activate")


class ActivateStatus(StrEnum):
    """What activate says of one journal version in one tenant."""

    ACTIVATED = "activated"  # switched on by this run
    SKIPPED = "skipped"  # already active, or a lower version of a definition switched on
    PLANNED = "planned"  # --dry-run: the Activation the run would execute
    FAILED = "failed"  # refused or unreachable
    DEFERRED = "deferred"  # not tried: a rollout wave before it halted


ACTIVATE_STATUSES = tuple(s.value for s in ActivateStatus)
ACTIVATE_FAILURES = (ActivateStatus.FAILED.value, ActivateStatus.DEFERRED.value)


def activate_report(items: Sequence[ItemOutcome], notices: Sequence[str] = ()) -> Report:
    """A report in activate's words: its statuses; failed and deferred items are failures."""
    return Report(
        items=items, notices=tuple(notices), statuses=ACTIVATE_STATUSES, failures=ACTIVATE_FAILURES
    )


@dataclass(frozen=True, slots=True)
class Target:
    """One definition to switch on: the highest version the journal records for it."""

    tenant: str
    definition_id: int
    state: ItemState  # the journal item of the chosen version
    superseded: tuple[ItemState, ...] = ()  # lower versions of the same definition


def targets_from_journal(tenant: str, landed: Iterable[ItemState]) -> Iterator[Target | ItemState]:
    """From the tenant's committed and skipped items ordered by definition id (`landed`): one
    Target per definition (its highest version; the lower ones superseded), and each committed
    item that cannot be placed (no definition id or no valid version) as it is. Only one
    definition's items are held at a time."""
    group: list[ItemState] = []
    group_id: int | None = None

    def target() -> Target:
        group.sort(key=lambda s: version_key(str(s.version)), reverse=True)
        assert group_id is not None
        return Target(tenant, group_id, group[0], tuple(group[1:]))

    for st in landed:
        def_id = int_or_none(st.target_definition_id)
        if def_id is None or not st.version or not is_valid_version(st.version):
            if st.status == "done":  # a skip without a version (a duplicate) has nothing to place
                yield st
            continue
        if group and def_id != group_id:
            yield target()
            group = []
        group_id = def_id
        group.append(st)
    if group:
        yield target()


async def activate_from_journal(
    settings: Settings,
    journal_path: str,
    tenants: Sequence[str] = (),
    *,
    dry_run: bool = False,
    stopping: anyio.Event | None = None,
) -> Report:
    """Make each definition's highest committed version active, in every selected tenant.

    The journal is folded into a workspace table a line at a time and the outcomes go there
    too: memory does not grow with the journal (the report reads them back in order). Unless
    dry_run, the journal records what was active before each switch (for `migrator rollback`);
    with a [rollout], tenants go wave by wave (run/rollout.py)."""
    store = Workspace()
    try:
        state = store.journal_state()
        history, notices = read_state(journal_path, state)
        in_journal = sorted(state.tenants())
        if tenants:
            names = [t.name for t in choose_tenants(settings, tenants)]
        else:
            names = [t for t in in_journal if t in settings.tenants]
            notices += [
                f"{journal_path}: tenant {t!r} is in the journal but not in {settings.file}; left alone"
                for t in in_journal
                if t not in settings.tenants
            ]
        chosen = [settings.tenants[n] for n in names]
        check_tenant_identity(history, chosen, journal_path)
        async with run_clients(settings, chosen, stopping) as run, AsyncExitStack() as stack:
            clients = run.clients
            journal: Any = NullJournal()
            if not dry_run:
                from migrator.store.journal import Journal

                fields = run_started_fields(chosen, command="activate")
                # Folded once already (above); the writer's own fold is thrown away.
                journal = await stack.enter_async_context(
                    Journal.open(journal_path, fields, state=DiscardState())
                )
                notices += journal.notices

            async def one(name: str) -> None:
                try:
                    await place_unresolved(clients[name], state)
                except ZuoraError as exc:
                    log.warning("could not look up unresolved imports", tenant=name, error=str(exc))
                plan = targets_from_journal(name, state.landed(name))
                await _activate_tenant(clients[name], plan, dry_run, store, journal)

            async def execute(wave: Wave) -> None:
                async with anyio.create_task_group() as tg:
                    for name in wave.tenants:
                        tg.start_soon(one, name)

            if settings.rollout is None or dry_run:
                await execute(Wave(1, tuple(names)))
            else:
                runner = WaveRunner(
                    settings.rollout,
                    journal=journal,
                    journal_path=journal_path,
                    clients=clients,
                    record=store.add_outcome,
                    stopping=stopping,
                    run_id=os.urandom(8).hex(),
                )

                def hold(wave: Wave, reason: str) -> None:
                    for name in wave.tenants:
                        for entry in targets_from_journal(name, state.landed(name)):
                            held = entry if isinstance(entry, ItemState) else entry.state
                            store.add_outcome(_out(held, "deferred", error=reason))

                await runner.run(
                    assign_waves(settings.rollout, names),
                    execute,
                    lambda wave: wave_failures(store, wave),
                    hold,
                )
                notices += runner.notices
            store.flush()
            journal.finish(counts=activate_report(OutcomeLog(store)).summary())
        store.flush()
    except BaseException:
        store.close()
        raise
    return activate_report(OutcomeLog(store), notices)


async def place_unresolved(client: ZuoraClient, state: JournalState) -> None:
    """Give the tenant's imports that were committed without a definition id (a run that ended
    before resolving them) the definition the listing shows for their name, one listing walk for
    all of them; an import whose name is not found stays unplaced (and is reported so)."""
    tenant = client.tenant.name
    unplaced = [
        st
        for st in state.landed(tenant)
        if st.status == "done" and st.target_definition_id is None and st.name
    ]
    if not unplaced:
        return
    names = {st.name for st in unplaced}
    found: dict[str, list[dict[str, Any]]] = {}
    async for page in client.workflow_pages():
        for entry in page:
            if entry.get("name") in names:
                found.setdefault(str(entry["name"]), []).append(entry)
    for st in unplaced:
        assert st.name is not None
        chosen = pick_definition(found.get(st.name, []), int_or_none(st.extra.get("answer_id")))
        if chosen is None:
            continue
        version_id, _ = version_in_entry(chosen, str(st.version))
        state[(tenant, st.item)] = replace(
            st,
            target_definition_id=int_or_none(chosen.get("id")),
            target_version_id=st.target_version_id if version_id is None else version_id,
        )


async def _activate_tenant(
    client: ZuoraClient,
    plan: Iterator[Target | ItemState],
    dry_run: bool,
    store: Workspace,
    journal: Any,
) -> None:
    """A few workers (the tenant's max_concurrency) take the plan's entries one at a time."""
    stop: list[str] = []

    async def worker() -> None:
        for entry in plan:  # shared: each entry goes to the one worker that takes it
            if isinstance(entry, ItemState):
                store.add_outcome(
                    _out(
                        entry,
                        "failed",
                        error="the journal records no definition id or version for it",
                    )
                )
                continue
            if stop:
                store.add_outcome(_out(entry.state, "failed", error=stop[0]))
            else:
                try:
                    store.add_outcome(await _activate_one(client, entry, dry_run, journal))
                except ZuoraError as exc:
                    if isinstance(exc, AuthError):
                        stop.append(str(exc))
                    store.add_outcome(_out(entry.state, "failed", error=str(exc)))
            chosen = entry.state.version
            for st in entry.superseded:
                store.add_outcome(
                    _out(
                        st,
                        "skipped",
                        reason=f"version {chosen} of the same definition is the one to activate",
                    )
                )

    async with anyio.create_task_group() as tg:
        for _ in range(max(1, client.tenant.max_concurrency)):
            tg.start_soon(worker)


def _out(st: ItemState, status: str, **kw: Any) -> ItemOutcome:
    return ItemOutcome(
        tenant=st.tenant,
        source=st.source or st.item,
        workflow_name=st.name or "",
        status=status,
        target_workflow_id=kw.pop("target_workflow_id", int_or_none(st.target_definition_id)),
        version=st.version,
        target_version_id=kw.pop("target_version_id", int_or_none(st.target_version_id)),
        action="activate",
        **kw,
    )


async def plan_one(client: ZuoraClient, target: Target) -> Activation | ItemOutcome:
    """What activating `target` means now: an `Activation`, or the outcome that settles it
    without one (already active, definition or version gone)."""
    st, def_id = target.state, target.definition_id
    try:
        definition = await client.get_workflow(def_id)
    except ZuoraError as exc:
        if exc.status == 404:
            return _out(st, "failed", error=f"definition {def_id} no longer exists")
        raise
    version_id = int_or_none(st.target_version_id)
    if version_id is None:  # e.g. an import recovered from an unanswered request
        # What the answer shows first (either spelling), then the versions list.
        listed: Sequence[Mapping[str, Any]] = [
            v for v in shown_versions(definition) if str(v.get("version")) == st.version
        ]
        if not listed:
            try:
                listed = await client.list_versions(def_id)
            except ZuoraError as exc:
                if exc.status != 404:
                    raise
                # No versions list (issue 23): its listing entry shows the latest inactive ones.
                listed = [
                    v
                    for entry in (await client.list_workflows(name=st.name) if st.name else [])
                    if int_or_none(entry.get("id")) == def_id
                    for v in shown_versions(entry)
                    if str(v.get("version")) == st.version
                ]
                if not listed:
                    return _out(
                        st,
                        "failed",
                        error=f"version {st.version} is not among the versions definition"
                        f" {def_id} or its listing entry shows, and GET"
                        f" /workflows/{def_id}/versions answered 404",
                    )
        for v in listed:
            if str(v.get("version")) == st.version:
                version_id = int_or_none(v.get("id"))
        if version_id is None:
            return _out(st, "failed", error=f"version {st.version} of definition {def_id} is gone")
    action = activation_of(
        client.tenant.name, def_id, definition, st.name or "", str(st.version), version_id
    )
    if action.already_active:
        return _out(st, "skipped", target_version_id=version_id, reason="already active")
    return action


async def _activate_one(
    client: ZuoraClient, target: Target, dry_run: bool, journal: Any
) -> ItemOutcome:
    st = target.state
    action = await plan_one(client, target)
    if isinstance(action, ItemOutcome):
        return action
    if dry_run:
        return _out(
            st,
            "planned",
            target_version_id=action.version_id,
            # The row names the version and `planned` says it would be switched on: the reason
            # says only what is there now (as the real run's `was: …`).
            reason=f"was: {action.before()}, definition {action.previous_status or 'status unknown'}",
        )
    answer = await switch_on(client, journal, action)
    now = answer.get("active_version")
    now_id = int_or_none(now.get("id")) if isinstance(now, dict) else None
    if now_id != action.version_id or answer.get("status") != "Active":
        return _out(
            st,
            "failed",
            target_version_id=action.version_id,
            error=f"asked to activate version id {action.version_id}; the tenant answered active "
            f"version {now_id}, status {answer.get('status')!r}",
        )
    # The printed report lists every switch: one voice on stdout, the detail only with --debug.
    log.debug(
        "activated", tenant=client.tenant.name, definition=action.definition_id, version=st.version
    )
    return _out(
        st, "activated", target_version_id=action.version_id, reason=f"was: {action.before()}"
    )
