"""The one activation path: `Activation` (a definition's state read once, as data) and
`switch_on` (journal what was active, then the keyed switch), used by `migrator activate`
(run/activate.py) and by `migrate --activate` (`ensure_active`), which also checks what it
imported by export (`verify_import`, `--verify`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from migrator.core.canonical import canonical_hash
from migrator.core.errors import ZuoraError
from migrator.core.journal_records import JournalWriter
from migrator.core.listing import active_version
from migrator.core.plan import PlannedItem, activation_key, int_or_none
from migrator.run.resolve import listed_version
from migrator.run.tenant import GroupState, TenantRun, tenant_identity
from migrator.zuora import ZuoraClient


@dataclass(frozen=True, slots=True)
class Activation:
    """One switch, as data: which version of which definition, and the state found before it.
    Computed once; a dry run renders it, the real run executes exactly it (`switch_on`)."""

    tenant: str
    name: str
    definition_id: int
    version: str
    version_id: int
    previous_version_id: int | None
    previous_status: str  # "" when the tenant did not say
    updated_at: str

    @property
    def already_active(self) -> bool:
        return self.previous_version_id == self.version_id and self.previous_status == "Active"

    def before(self) -> str:
        if self.previous_version_id is None:
            return "no active version"
        return f"active version {self.previous_version_id}"


async def read_activation(
    client: ZuoraClient, definition_id: int, name: str, version: str, version_id: int
) -> Activation:
    """The switch of `version` (id `version_id`) on, with the definition's state read now."""
    definition = await client.get_workflow(definition_id)
    return activation_of(client.tenant.name, definition_id, definition, name, version, version_id)


def activation_of(
    tenant: str,
    definition_id: int,
    definition: Mapping[str, Any],
    name: str,
    version: str,
    version_id: int,
) -> Activation:
    """The switch of `version` on, from the definition as the tenant just showed it."""
    active = active_version(definition)
    return Activation(
        tenant=tenant,
        name=name,
        definition_id=definition_id,
        version=version,
        version_id=version_id,
        previous_version_id=int_or_none(active.get("id")) if active is not None else None,
        previous_status=str(definition.get("status") or ""),
        updated_at=str(definition.get("updatedAt") or ""),
    )


async def journal_activating(
    journal: JournalWriter, action: Activation, *, created: bool = False
) -> None:
    """Before a switch, durably: what was active, so `migrator rollback` puts exactly that back."""
    await journal.append(
        "activating",
        tenant=action.tenant,
        name=action.name,
        definition_id=action.definition_id,
        version=action.version,
        previous_version_id=action.previous_version_id,
        previous_status=action.previous_status or "Inactive",
        created=created,
    )


async def switch_on(
    client: ZuoraClient, journal: JournalWriter, action: Activation
) -> dict[str, Any]:
    """Execute one `Activation`: journal it, then switch the version on. The request is keyed by
    the state found: a lost answer is replayed, while a definition switched back since (a
    rollback, a hand edit) gets a new key and is switched on again."""
    await journal_activating(journal, action)
    key = activation_key(
        tenant_identity(client.tenant),
        action.definition_id,
        action.version_id,
        action.previous_version_id,
        action.previous_status,
        action.updated_at,
    )
    return await client.update_workflow(
        action.definition_id,
        {"active_workflow_version_id": action.version_id, "status": "Active"},
        idempotency_key=key,
    )


async def ensure_active(
    run: TenantRun, state: GroupState, item: PlannedItem, version: str
) -> str | None:
    """`migrate --activate` / `--activation match`: make `version` the definition's active one
    through the same `Activation` and `switch_on` as `migrator activate`; say what was done."""
    if not run.activates(item) or state.definition_id is None:
        return None
    if state.last_activating not in (None, item.doc.key):
        return None  # a later version of the group is the one switched on
    version_id = state.version_ids.get(version)
    if version_id is None:
        version_id, _ = await listed_version(run.client, state.definition_id, version)
    if version_id is None:
        return None
    if state.active_version_id == version_id:
        return "already active"
    action = await read_activation(
        run.client, state.definition_id, item.doc.name, version, version_id
    )
    if action.already_active:
        await journal_activating(run.journal, action)
        state.active_version_id = version_id
        return "already active"
    await switch_on(run.client, run.journal, action)
    state.active_version_id = version_id
    return "activated"


async def record_activating(
    run: TenantRun, state: GroupState, name: str, version: str, *, created: bool
) -> None:
    """Journal what was active before an import that switches its version on (read from the
    tenant, not remembered), so `migrator rollback` puts exactly that back."""
    if created or state.definition_id is None:
        await run.journal.append(
            "activating",
            tenant=run.tenant.name,
            name=name,
            definition_id=state.definition_id,
            version=version,
            previous_version_id=None,
            previous_status="Inactive",
            created=created,
        )
        return
    action = await read_activation(run.client, state.definition_id, name, version, 0)
    await journal_activating(run.journal, action)


async def verify_import(
    run: TenantRun, definition_id: int, item: PlannedItem, digest: str
) -> tuple[bool, str]:
    """`--verify`: export what was imported and compare its content hash with what was sent."""
    assert item.version is not None
    # The import has landed and is committed: a failure to check it is a verify result, never
    # a failed import (that would hold back the workflow's later versions).
    try:
        exported = await run.client.export_workflow(definition_id, version=item.version)
        landed = await anyio.to_thread.run_sync(canonical_hash, exported)
        ok = landed == digest
        detail = (
            "" if ok else f"exported content hash {landed[:12]} differs from sent {digest[:12]}"
        )
    except ZuoraError as exc:
        ok, detail = False, f"could not export version {item.version} to verify it: {exc}"
    except Exception as exc:  # an export we cannot read cannot be compared
        ok, detail = False, f"could not read the exported version {item.version}: {exc}"
    await run.journal.append(
        "verified", tenant=run.tenant.name, item=item.doc.key, ok=ok, detail=detail
    )
    return ok, detail
