"""What a planned new version changes against the version it replaces, in one line, for `plan`
and `migrate --dry-run` (issue 17): the same differences as `migrator diff`, summarized.

The first new version of a name is compared with the version the tenant runs (its active one,
else its highest; one export, in dry runs only), each later one with the new version before it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from migrator.core.diff import summarize_change
from migrator.core.document import validate_document
from migrator.core.drift import compared_version
from migrator.core.errors import InputError, ZuoraError
from migrator.core.payload import planned_callee_ids, tenant_payload
from migrator.core.plan import Action, PlannedItem
from migrator.run.tenant import GroupState, TenantState

log = structlog.get_logger("migrator.change")


async def planned_change(run: TenantState, state: GroupState, item: PlannedItem) -> str | None:
    """The one-line change of a planned new version (None for anything else). Never fails the
    tenant: a version that cannot be exported says so in the line. A planned create gives
    nothing to say but is what the group's next new version replaces."""
    if item.action not in (Action.NEW_VERSION, Action.CREATE):
        return None
    try:
        doc = run.store.load(item.doc)
    except InputError:
        return None  # reported as the item's own failure when it is sent
    ids = planned_callee_ids(item.call_targets, run._definition_id)
    payload = tenant_payload(doc, {t: i for t, i in ids.items() if i is not None}, run.tenant)
    replaced = state.replaced
    state.replaced = (f"planned version {item.version}", payload)
    if item.action is Action.CREATE:
        return None
    if replaced is None:
        found = await _running_version(run, item)
        if isinstance(found, str):
            return f"unknown ({found})"
        replaced = found
    against, old = replaced
    return f"{summarize_change(old, payload)} (against {against})"


async def _running_version(
    run: TenantState, item: PlannedItem
) -> tuple[str, Mapping[str, Any]] | str:
    """The tenant's running version of the item's workflow and its document (exported), or why
    it is not known."""
    definitions = run.target.get(item.doc.name, ())
    if len(definitions) != 1:
        return "no single definition of that name to compare with"
    version = compared_version(definitions[0])
    if version is None:
        return "the definition has no versions"
    try:
        data = await run.client.export_workflow(definitions[0].id, version=version.version)
    except ZuoraError as exc:
        # The plan's `change:` line says it; the log line is for --debug only.
        log.debug("export for the planned change failed", tenant=run.tenant.name, error=str(exc))
        return f"exporting version {version.version} failed: {exc}"
    try:
        validate_document(data, f"version {version.version}")
    except InputError as exc:
        return str(exc)
    return f"version {version.version}", data
