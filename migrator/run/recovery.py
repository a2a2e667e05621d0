"""Settling an earlier run's unanswered import: when the content it sent is found on the target,
the import did land; record it as committed instead of sending it again.

The rest of recovery is elsewhere on purpose: the planner (migrator.core.plan) gives an in-doubt
item its earlier Idempotency-Key again while the server still remembers it (KEY_REUSE_SECONDS),
so a resend that reaches Zuora is answered as a replay.
"""

from __future__ import annotations

from migrator.core.plan import PlannedItem
from migrator.run.activation import TenantActivation
from migrator.run.tenant import GroupState


class TenantRecovery(TenantActivation):
    """Records an in-doubt import found on the target as done (`_record_landed`)."""

    async def _record_landed(
        self, name: str, state: GroupState, item: PlannedItem, version: str
    ) -> None:
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
