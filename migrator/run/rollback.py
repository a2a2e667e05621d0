"""Rolling back what a journal's runs switched on: per definition, the version active before the
first of those runs active again, or Inactive (or deleted) for a definition they created.

What to restore is read from the journal's `activating` records (written before every
activation) and its committed creates; each step is decided from the definition as it is now
(core/rollout.rollback_step), so a second rollback, or one after a kill, writes nothing more.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import anyio
import structlog

from migrator.core.config import TenantConfig
from migrator.core.errors import AuthError, JournalError, ZuoraError
from migrator.core.journal_records import ItemKey, ItemState, Record
from migrator.core.listing import active_version
from migrator.core.logs import redact_text
from migrator.core.plan import int_or_none
from migrator.core.report import ItemOutcome
from migrator.core.rollout import RollbackLedger, RollbackTarget, rollback_step
from migrator.run.tenant import tenant_fingerprint, tenant_identity
from migrator.store.journal import read_state
from migrator.zuora import ZuoraClient

log = structlog.get_logger("migrator.rollback")

# rolled_back: a write put it back · unchanged: already as it was · planned: --dry-run
# failed: the tenant refused or could not be reached
ROLLBACK_STATUSES = ("rolled_back", "unchanged", "planned", "failed")


class DiscardState(dict[ItemKey, ItemState]):
    """A fold target that keeps nothing: the rollback reads records, not item states."""

    def __setitem__(self, key: ItemKey, value: ItemState) -> None:
        pass


def read_rollback_targets(
    journal_path: str, tenants: Iterable[str] | None = None
) -> tuple[list[RollbackTarget], list[Record], list[str], int]:
    """The targets the journal's runs call for (optionally only these tenants), the journal's
    run_started records, its notices and how many activations it records. A line at a time:
    only one record per changed definition is kept."""
    ledger = RollbackLedger()
    creating: dict[tuple[str, str], str] = {}
    resolving: dict[tuple[str, str], str] = {}  # created, its definition id not yet resolved

    def watch(record: Record) -> None:
        f = record.fields
        if record.type == "activating":
            ledger.note("activating", f)
        elif record.type == "intent":
            key = (f["tenant"], f["item"])
            if f.get("action") == "create":
                creating[key] = str(f.get("name") or "")
            else:
                creating.pop(key, None)
        elif record.type in ("committed", "resolved"):
            # A create may be committed before its definition id is known; a later `resolved`
            # record gives it (docs/journal.md).
            key = (f["tenant"], f["item"])
            name = (
                creating.pop(key, None) if record.type == "committed" else resolving.pop(key, None)
            )
            def_id = int_or_none(f.get("target_definition_id"))
            if name is not None and def_id is not None:
                ledger.note(
                    "created", {"tenant": f["tenant"], "definition_id": def_id, "name": name}
                )
            elif name is not None and record.type == "committed":
                resolving[key] = name

    history, notices = read_state(journal_path, DiscardState(), watch=watch)
    return ledger.targets(tenants), history, notices, ledger.activations


def check_identity(history: Sequence[Record], chosen: Sequence[TenantConfig], path: str) -> None:
    """Refuse when a tenant's URL or client id is not the one the journal's ids belong to."""
    current = {t.name: tenant_fingerprint(t) for t in chosen}
    for started in history:
        for name, fp in (started.get("tenants") or {}).items():
            if name in current and current[name] != fp:
                raise JournalError(
                    f"{path}: tenant {name!r} pointed at a different tenant (URL or client id) when "
                    "this journal was written; its definition and version ids mean nothing here"
                )


def rollback_key(
    identity: str, target: RollbackTarget, fields: Mapping[str, Any], seen: str
) -> str:
    """Per (tenant, definition, wanted state, state found): a lost answer is replayed, and a
    definition changed again since gets a fresh key."""
    material = "\x1f".join(
        [identity, "rollback", str(target.definition_id), repr(sorted(fields.items())), seen]
    )
    return "migrator-" + hashlib.sha256(material.encode()).hexdigest()[:48]


def _outcome(target: RollbackTarget, status: str, action: str | None, **kw: Any) -> ItemOutcome:
    return ItemOutcome(
        tenant=target.tenant,
        source=f"definition {target.definition_id}",
        workflow_name=target.name,
        status=status,
        target_workflow_id=target.definition_id,
        target_version_id=target.version_id if not target.created else None,
        action=action or "rollback",
        **kw,
    )


async def rollback_tenant(
    client: ZuoraClient,
    targets: Sequence[RollbackTarget],
    journal: Any,
    *,
    dry_run: bool = False,
    delete_created: bool = False,
) -> list[ItemOutcome]:
    """Put each of one tenant's targets back, one at a time; journal each write around it."""
    out: list[ItemOutcome] = []
    stop: str | None = None
    for target in targets:
        if stop is not None:
            out.append(_outcome(target, "failed", None, error=stop))
            continue
        try:
            out.append(await _rollback_one(client, target, journal, dry_run, delete_created))
        except ZuoraError as exc:
            reason = redact_text(str(exc))
            if isinstance(exc, AuthError):
                stop = reason
            if not dry_run:
                await journal.append(
                    "rollback",
                    tenant=target.tenant,
                    definition_id=target.definition_id,
                    name=target.name,
                    step="failed",
                    detail=reason,
                )
            out.append(_outcome(target, "failed", None, error=reason))
    return out


async def _rollback_one(
    client: ZuoraClient,
    target: RollbackTarget,
    journal: Any,
    dry_run: bool,
    delete_created: bool,
) -> ItemOutcome:
    try:
        definition = await client.get_workflow(target.definition_id)
        exists = True
    except ZuoraError as exc:
        if exc.status != 404:
            raise
        definition, exists = {}, False
    active = active_version(definition)
    active_id = int_or_none(active.get("id")) if active is not None else None
    status = str(definition.get("status") or "")
    step = rollback_step(
        target,
        exists=exists,
        active_version_id=active_id,
        status=status,
        delete_created=delete_created,
    )
    if step.action is None:
        return _outcome(target, "unchanged", None, reason=step.detail)
    if dry_run:
        return _outcome(target, "planned", step.action, reason="would be " + step.detail)
    await journal.append(
        "rollback",
        tenant=target.tenant,
        definition_id=target.definition_id,
        name=target.name,
        step="intent",
        action=step.action,
        fields=dict(step.fields),
        found_version_id=active_id,
        found_status=status,
    )
    if step.action == "delete":
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
            f"{active_id}|{status}|{definition.get('updatedAt') or ''}",
        )
        await client.update_workflow(target.definition_id, step.fields, idempotency_key=key)
    await journal.append(
        "rollback",
        tenant=target.tenant,
        definition_id=target.definition_id,
        name=target.name,
        step="done",
        action=step.action,
    )
    log.info("rolled back", tenant=target.tenant, definition=target.definition_id, what=step.detail)
    return _outcome(target, "rolled_back", step.action, reason=step.detail)


async def rollback(
    clients: Mapping[str, ZuoraClient],
    targets: Sequence[RollbackTarget],
    journal: Any,
    *,
    dry_run: bool = False,
    delete_created: bool = False,
) -> list[ItemOutcome]:
    """Every tenant's targets, tenants concurrently; outcomes by tenant and definition."""
    per: dict[str, list[RollbackTarget]] = {}
    for target in targets:
        per.setdefault(target.tenant, []).append(target)
    results: list[ItemOutcome] = []

    async def one(tenant: str) -> None:
        results.extend(
            await rollback_tenant(
                clients[tenant],
                per[tenant],
                journal,
                dry_run=dry_run,
                delete_created=delete_created,
            )
        )

    async with anyio.create_task_group() as tg:
        for tenant in sorted(per):
            tg.start_soon(one, tenant)
    return sorted(results, key=lambda o: (o.tenant, o.target_workflow_id or 0))
