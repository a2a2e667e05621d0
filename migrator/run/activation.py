"""Activating and verifying what a tenant's run imported: which version to switch on, finding
the definition and version an import made, and exporting a version to compare it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio

from migrator.core.canonical import canonical_hash
from migrator.core.errors import ZuoraError
from migrator.core.listing import shown_versions
from migrator.core.plan import PlannedItem, activation_key, int_or_none
from migrator.run.tenant import GroupState, TenantState, tenant_identity


class TenantActivation(TenantState):
    """Switches versions on (`--activate`, `--activation match`) and checks them (`--verify`)."""

    def _activate(self, item: PlannedItem) -> bool:
        if self.options.activation == "always":
            return True
        if self.options.activation == "match":
            return bool(item.doc.active)
        return False

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
        previous, status, updated_at = await self._record_activating(
            state, item.doc.name, version, created=False
        )
        if previous == version_id and status == "Active":
            state.active_version_id = version_id
            return "already active"
        # Keyed by the state found, like `migrator activate`: a lost answer is replayed, while a
        # definition switched back since (a rollback, a hand edit) gets a new key and is switched on.
        key = activation_key(
            tenant_identity(self.tenant),
            state.definition_id,
            version_id,
            previous,
            status,
            updated_at,
        )
        await self.client.update_workflow(
            state.definition_id,
            {"active_workflow_version_id": version_id, "status": "Active"},
            idempotency_key=key,
        )
        state.active_version_id = version_id
        return "activated"

    async def _record_activating(
        self, state: GroupState, name: str, version: str, *, created: bool
    ) -> tuple[int | None, str, str]:
        """Journal what was active before a version is switched on (read from the tenant, not
        remembered), so `migrator rollback` puts exactly that back and never guesses."""
        previous: int | None = None
        status = "Inactive"
        updated_at = ""
        if not created and state.definition_id is not None:
            definition = await self.client.get_workflow(state.definition_id)
            updated_at = str(definition.get("updatedAt") or "")
            active = definition.get("active_version")
            previous = int_or_none(active.get("id")) if isinstance(active, dict) else None
            status = str(definition.get("status") or "Inactive")
        await self.journal.append(
            "activating",
            tenant=self.tenant.name,
            name=name,
            definition_id=state.definition_id,
            version=version,
            previous_version_id=previous,
            previous_status=status,
            created=created,
        )
        return previous, status, updated_at

    async def _resolve_definition(self, name: str, response: Mapping[str, Any]) -> int:
        """The new definition's id. The import answer's `id` may be the definition's or the
        version's (spec §9.3), so look the name up instead of trusting it."""
        # An entry without an integer id cannot be the definition we made (or used at all).
        candidates = [
            e
            for e in await self.client.list_workflows(name=name)
            if e.get("name") == name and type(e.get("id")) is int
        ]
        if len(candidates) == 1:
            return int(candidates[0]["id"])
        rid = int_or_none(response.get("id"))
        for entry in candidates:
            if int_or_none(entry.get("id")) == rid or any(
                int_or_none(v.get("id")) == rid for v in shown_versions(entry)
            ):
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
            landed = await anyio.to_thread.run_sync(canonical_hash, exported)
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
