"""What one tenant is sent for one source document, said once: the callee ids its calls point at
(`callee_ids` against a tenant's definitions, as `verify` and `diff` judge; `planned_callee_ids`
from a plan's callee names, as `migrate` sends) and the payload itself (`tenant_payload`: the
document remapped for that tenant). Pure: `execute`, `verify`, `diff` and a dry run's change
line all build what they send or compare here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from migrator.core.config import TenantConfig
from migrator.core.document import ExportDocument
from migrator.core.plan import SourceDoc, SourceIndex, TargetDefinition, resolve_in
from migrator.core.remap import prepare_for_import


def callee_ids(
    doc: SourceDoc,
    index: SourceIndex,
    target: Mapping[str, Sequence[TargetDefinition]],
    tenant: str,
) -> dict[int, int] | str:
    """Task id → the callee's definition id in the tenant, for each of the document's calls
    (Liquid ids are sent as written); or why a call has no single callee there."""
    ids: dict[int, int] = {}
    for call in doc.calls:
        if call.workflow_id and "{{" in call.workflow_id:
            continue  # Liquid: resolved at run time, sent as written
        callee = resolve_in(call, index, target)
        callee_defs = target.get(callee, ()) if callee is not None else ()
        if len(callee_defs) != 1:
            what = repr(callee) if callee else f"id {call.workflow_id}, name {call.workflow_name!r}"
            why = "is not" if not callee_defs else "is ambiguous"
            return f"task {call.task_id} calls {what}, which {why} in tenant {tenant}"
        ids[call.task_id] = callee_defs[0].id
    return ids


def planned_callee_ids(
    call_targets: Mapping[int, str], definition_id: Callable[[str], int | None]
) -> dict[int, int | None]:
    """Task id → the definition id of the callee a plan named (None: not in the tenant yet)."""
    return {task: definition_id(callee) for task, callee in call_targets.items()}


def tenant_payload(
    doc: ExportDocument, call_targets: Mapping[int, int], tenant: TenantConfig
) -> dict[str, Any]:
    """The payload `tenant` is sent for `doc`, callees pointed at `call_targets`."""
    return prepare_for_import(doc, call_targets=call_targets, substitutions=tenant.substitutions)
