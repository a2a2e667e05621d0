"""Rolling back what a journal's runs switched on: per definition, the version active before the
first of those runs active again, or Inactive (or deleted) for a definition they created.

What to restore is read from the journal's `activating` records (written before every
activation) and its committed imports; each definition is read as it is now and given its one
action (core/rollback.rollback_step). That list is the plan: `--dry-run` renders it, the real run
executes exactly it, and a second rollback, or one after a kill, writes nothing more.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import anyio
import structlog

from migrator.core.config import Settings
from migrator.core.errors import AuthError, ZuoraError
from migrator.core.journal_records import ItemKey, ItemState, JournalWriter, Record
from migrator.core.listing import active_version
from migrator.core.logs import redact_text
from migrator.core.plan import int_or_none
from migrator.core.report import ItemOutcome, Report
from migrator.core.rollback import (
    ROLLBACK_FAILURES,
    ROLLBACK_STATUSES,
    Found,
    RollbackAction,
    RollbackLedger,
    RollbackStatus,
    RollbackStep,
    RollbackTarget,
    rollback_step,
)
from migrator.run.context import (
    check_tenant_identity,
    choose_tenants,
    run_clients,
    run_started_fields,
)
from migrator.run.history import NullJournal
from migrator.run.tenant import tenant_identity
from migrator.store.journal import Journal, read_state
from migrator.zuora import ZuoraClient

log = structlog.get_logger("migrator.rollback")


class DiscardState(dict[ItemKey, ItemState]):
    """A fold target that keeps nothing: the rollback reads records, not item states."""

    def __setitem__(self, key: ItemKey, value: ItemState) -> None:
        pass


def read_rollback_targets(
    journal_path: str, tenants: Iterable[str] | None = None
) -> tuple[list[RollbackTarget], list[Record], list[str], int]:
    """The targets the journal's runs call for (optionally only these tenants), the journal's
    run_started records, its notices and how many activations it records. A line at a time:
    only what each changed definition needs is kept."""
    ledger = RollbackLedger()
    intents: dict[tuple[str, str], tuple[str, str, Any]] = {}  # → (action, name, version)
    # committed before its definition id was known: a later `resolved` record gives it
    resolving: dict[tuple[str, str], tuple[str, str, Any, Any]] = {}

    def imported(tenant: str, def_id: int, action: str, name: str, version: Any, vid: Any) -> None:
        ledger.note(
            "imported",
            {"tenant": tenant, "definition_id": def_id, "version": version, "version_id": vid},
        )
        if action == "create":
            ledger.note("created", {"tenant": tenant, "definition_id": def_id, "name": name})

    def watch(record: Record) -> None:
        f = record.fields
        if record.type == "activating":
            ledger.note("activating", f)
        elif record.type == "intent":
            intents[(f["tenant"], f["item"])] = (
                str(f.get("action") or ""),
                str(f.get("name") or ""),
                f.get("version"),
            )
        elif record.type == "committed":
            key = (f["tenant"], f["item"])
            action, name, version = intents.pop(key, ("", str(f.get("name") or ""), None))
            version = f.get("version", version)
            def_id = int_or_none(f.get("target_definition_id"))
            vid = int_or_none(f.get("target_version_id"))
            if def_id is not None:
                imported(f["tenant"], def_id, action, name, version, vid)
            else:
                resolving[key] = (action, name, version, vid)
        elif record.type == "resolved":
            key = (f["tenant"], f["item"])
            def_id = int_or_none(f.get("target_definition_id"))
            if key in resolving and def_id is not None:
                action, name, version, vid = resolving.pop(key)
                vid = int_or_none(f.get("target_version_id")) or vid
                imported(f["tenant"], def_id, action, name, version, vid)

    history, notices = read_state(journal_path, DiscardState(), watch=watch)
    return ledger.targets(tenants), history, notices, ledger.activations


def rollback_key(
    identity: str, target: RollbackTarget, fields: Mapping[str, Any], seen: str
) -> str:
    """Per (tenant, definition, wanted state, state found): a lost answer is replayed, and a
    definition changed again since gets a fresh key."""
    material = "\x1f".join(
        [identity, "rollback", str(target.definition_id), repr(sorted(fields.items())), seen]
    )
    return "migrator-" + hashlib.sha256(material.encode()).hexdigest()[:48]


PlanEntry = tuple[RollbackStep, str | None]  # the step, and why it failed (it could not be read)


async def plan_tenant(
    client: ZuoraClient,
    targets: Sequence[RollbackTarget],
    *,
    delete_created: bool = False,
    force: bool = False,
) -> list[PlanEntry]:
    """Read each target as it is now and decide its one action (core/rollback.rollback_step):
    the plan that `--dry-run` shows and the real run executes, unchanged."""
    out: list[PlanEntry] = []
    stop: str | None = None
    for target in targets:
        if stop is None:
            try:
                found = await _read(client, target, delete_created)
            except ZuoraError as exc:
                reason = redact_text(str(exc))
                if isinstance(exc, AuthError):
                    stop = reason
                out.append((RollbackStep(target, RollbackAction.SKIP, "could not be read"), reason))
                continue
            step = rollback_step(target, found, delete_created=delete_created, force=force)
            out.append((step, None))
        else:
            out.append((RollbackStep(target, RollbackAction.SKIP, "not read"), stop))
    return out


async def _read(client: ZuoraClient, target: RollbackTarget, delete_created: bool) -> Found:
    definition = await client.find_workflow(target.definition_id)
    if definition is None:
        return Found(exists=False)
    active = active_version(definition) or {}
    version = active.get("version")
    versions = None
    if target.created and delete_created:
        # Deleting needs proof that every version it holds is migrator's (docs/rollout.md).
        versions = tuple(
            (int_or_none(v.get("id")), str(v.get("version") or ""))
            for v in await client.list_versions(target.definition_id)
        )
    return Found(
        exists=True,
        active_version_id=int_or_none(active.get("id")),
        active_version=version if isinstance(version, str) else None,
        status=str(definition.get("status") or ""),
        updated_at=str(definition.get("updatedAt") or ""),
        versions=versions,
    )


def _outcome(step: RollbackStep, status: RollbackStatus, error: str | None = None) -> ItemOutcome:
    target = step.target
    return ItemOutcome(
        tenant=target.tenant,
        source=f"definition {target.definition_id}",
        workflow_name=target.name,
        status=status.value,
        target_workflow_id=target.definition_id,
        target_version_id=target.version_id if not target.created else None,
        action=step.action.value,
        reason=step.reason,
        error=error,
    )


def planned_outcome(entry: PlanEntry) -> ItemOutcome:
    """A plan entry as `--dry-run` reports it: the write it would send, or why none."""
    step, error = entry
    if error is not None:
        return _outcome(step, RollbackStatus.FAILED, error)
    if step.action.writes:
        return _outcome(step, RollbackStatus.PLANNED)
    if step.action is RollbackAction.SKIP:
        return _outcome(step, RollbackStatus.SKIPPED)
    return _outcome(step, RollbackStatus.UNCHANGED)


async def execute_plan(
    client: ZuoraClient, plan: Sequence[PlanEntry], journal: JournalWriter
) -> list[ItemOutcome]:
    """Send exactly the plan's writes, one at a time, each journaled around it."""
    out: list[ItemOutcome] = []
    stop: str | None = None
    for step, error in plan:
        if error is not None or not step.action.writes:
            out.append(planned_outcome((step, error)))
            continue
        if stop is not None:
            out.append(_outcome(step, RollbackStatus.FAILED, f"not sent: {stop}"))
            continue
        target = step.target
        try:
            await _write(client, step, journal)
        except ZuoraError as exc:
            reason = redact_text(str(exc))
            if isinstance(exc, AuthError):
                stop = reason
            await _journal_step(journal, target, "failed", detail=reason)
            out.append(_outcome(step, RollbackStatus.FAILED, reason))
            continue
        out.append(_outcome(step, RollbackStatus.ROLLED_BACK))
    return out


async def _journal_step(
    journal: JournalWriter, target: RollbackTarget, step: str, **fields: Any
) -> None:
    """One `rollback` record of a definition's write: intent, done or failed."""
    await journal.append(
        "rollback",
        tenant=target.tenant,
        definition_id=target.definition_id,
        name=target.name,
        step=step,
        **fields,
    )


async def _write(client: ZuoraClient, step: RollbackStep, journal: JournalWriter) -> None:
    target, found = step.target, step.found
    await _journal_step(
        journal,
        target,
        "intent",
        action=step.action.value,
        fields=dict(step.fields),
        found_version_id=found.active_version_id,
        found_status=found.status,
    )
    if step.action is RollbackAction.DELETE:
        try:
            await client.delete_workflow(target.definition_id)
        except ZuoraError as exc:
            if exc.status != 404:  # a retry after a lost answer finds it gone
                raise
    else:
        key = rollback_key(
            tenant_identity(client.tenant),
            target,
            step.fields,
            f"{found.active_version_id}|{found.status}|{found.updated_at}",
        )
        await client.update_workflow(target.definition_id, step.fields, idempotency_key=key)
    await _journal_step(journal, target, "done", action=step.action.value)
    # The report lists every write: one voice on stdout, the detail only with --debug.
    log.debug("rolled back", tenant=target.tenant, definition=target.definition_id)


async def rollback(
    clients: Mapping[str, ZuoraClient],
    targets: Sequence[RollbackTarget],
    journal: JournalWriter,
    *,
    dry_run: bool = False,
    delete_created: bool = False,
    force: bool = False,
) -> list[ItemOutcome]:
    """Every tenant's targets, tenants concurrently: read, plan, then (unless dry_run) execute
    exactly that plan; outcomes by tenant and definition."""
    per: dict[str, list[RollbackTarget]] = {}
    for target in targets:
        per.setdefault(target.tenant, []).append(target)
    results: list[ItemOutcome] = []

    async def one(tenant: str) -> None:
        plan = await plan_tenant(
            clients[tenant], per[tenant], delete_created=delete_created, force=force
        )
        if dry_run:
            results.extend(planned_outcome(entry) for entry in plan)
        else:
            results.extend(await execute_plan(clients[tenant], plan, journal))

    async with anyio.create_task_group() as tg:
        for tenant in sorted(per):
            tg.start_soon(one, tenant)
    return sorted(results, key=lambda o: (o.tenant, o.target_workflow_id or 0))


NOTHING = "the journal records no activation and no created definition: nothing to roll back"


async def rollback_from_journal(
    settings: Settings,
    journal_path: str,
    tenants: list[str] | tuple[str, ...] = (),
    *,
    dry_run: bool = False,
    delete_created: bool = False,
    force: bool = False,
    stopping: anyio.Event | None = None,
) -> Report:
    """Roll back every selected tenant's changes the journal records; journaled unless dry_run.
    The dry run and the real run compute the same plan (run/rollback.plan_tenant)."""
    if tenants:
        choose_tenants(settings, tenants)  # an unknown name is one usage error
    wanted = list(dict.fromkeys(tenants)) or None
    targets, history, notices, activations = await anyio.to_thread.run_sync(
        read_rollback_targets, journal_path, wanted
    )
    left_alone = sorted({t.tenant for t in targets if t.tenant not in settings.tenants})
    notices += [
        f"{journal_path}: tenant {t!r} is in the journal but not in {settings.file}; left alone"
        for t in left_alone
    ]
    targets = [t for t in targets if t.tenant in settings.tenants]
    chosen = [settings.tenants[n] for n in sorted({t.tenant for t in targets})]
    check_tenant_identity(history, chosen, journal_path)
    if not targets:
        return rollback_report((), (*notices, NOTHING))
    if not activations and not delete_created:
        created = len(targets)
        return rollback_report(
            (),
            (
                *notices,
                f"the journal records no activation: nothing to roll back (its runs created "
                f"{created} definition(s), which stay Inactive; --delete-created deletes them)",
            ),
        )
    async with run_clients(settings, chosen, stopping) as run:
        clients = run.clients
        if dry_run:
            items = await rollback(
                clients,
                targets,
                NullJournal(),
                dry_run=True,
                delete_created=delete_created,
                force=force,
            )
        else:
            fields = run_started_fields(chosen, command="rollback")
            async with Journal.open(journal_path, fields) as journal:
                items = await rollback(
                    clients, targets, journal, delete_created=delete_created, force=force
                )
                journal.finish(counts=rollback_report(items).summary())
    left = sum(1 for i in items if i.status == "skipped")
    if left and not force:
        notices.append(
            f"{left} definition(s) changed since the rollout were left alone; "
            "`--force` puts them back anyway"
        )
    return rollback_report(items, notices)


def rollback_report(items: Sequence[ItemOutcome], notices: Sequence[str] = ()) -> Report:
    """A report in rollback's own statuses: `skipped` (left alone) and `failed` need a person."""
    return Report(
        items=tuple(items),
        notices=tuple(notices),
        statuses=ROLLBACK_STATUSES,
        failures=ROLLBACK_FAILURES,
    )
