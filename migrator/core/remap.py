"""Every id rewrite an export needs before import (spec §4.6), and tenant-specific values.

Pure functions over JSON data: each returns a new document and never mutates its input.
docs/remapping.md gives the rules and the reasons for them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from migrator.core.canonical import (
    FILE_REF_BYTES,
    MERGE,
    MERGE_PARAMS,
    canonical_task_order,
    snake_case_triggers,
)
from migrator.core.document import EXECUTE_WORKFLOW, ExportDocument

# The payload's workflow.id is cosmetic: the server assigns the real one [Z]; it only has to match
# the entry linkages' source_workflow_id.
COSMETIC_WORKFLOW_ID = 1

SAVED_PROVIDER_PREFIX = "saved_provider:"
CALLOUT_TYPES = frozenset({"Callout", "AsynchronousCallout"})
REPORT_TYPES = frozenset({"Reporting::RunReport"})
# Keys whose (non-empty) values name objects that exist only in the source tenant.
_TENANT_KEYS = {
    "s3_provider_id": "s3_provider",
    "meter_id": "meter",
    "zuora_org_id": "org_id",
    "zuora_org_ids": "org_id",
}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True, slots=True)
class TenantValue:
    """A value that names something in the source tenant and must be mapped for each target."""

    path: str
    kind: str
    value: str


def _copy(data: Mapping[str, Any]) -> dict[str, Any]:
    # A C-speed deep copy; export documents are plain JSON by construction.
    copied: dict[str, Any] = orjson.loads(orjson.dumps(data))
    return copied


# --------------------------------------------------------------------------------------------
# Task ids


def _rewrite_file_refs(task: dict[str, Any], mapping: Mapping[int, int]) -> dict[str, Any]:
    """`task` with every `__<old>` file reference (in any string or key) renamed via `mapping`."""
    raw = orjson.dumps(task)
    if b"__" not in raw:
        return task

    def replace(m: re.Match[bytes]) -> bytes:
        new = mapping.get(int(m.group(1)))
        return m.group(0) if new is None else b"__%d" % new

    rewritten = FILE_REF_BYTES.sub(replace, raw)
    if rewritten == raw:
        return task
    result: dict[str, Any] = orjson.loads(rewritten)
    return result


def remap_task_ids(data: Mapping[str, Any], mapping: Mapping[int, int]) -> dict[str, Any]:
    """Rename task ids everywhere they occur: ids, parents, linkage ends and file references.

    Ids missing from `mapping` stay as they are; only ids of this document's tasks are touched
    inside strings, so an unrelated `Foo__12.csv` survives.
    """
    out = _copy(data)
    own = {t["id"] for t in out["tasks"]}
    relevant = {old: new for old, new in mapping.items() if old in own}
    new_ids = [relevant.get(t, t) for t in own]
    if len(set(new_ids)) != len(new_ids):
        raise ValueError("task id mapping would give two tasks the same id")
    tasks = []
    for task in out["tasks"]:
        task = _rewrite_file_refs(task, relevant)
        task["id"] = relevant.get(task["id"], task["id"])
        parent = task.get("task_id")
        if parent is not None:
            task["task_id"] = relevant.get(parent, parent)
        tasks.append(task)
    out["tasks"] = tasks
    for link in out["linkages"]:
        for key in ("source_task_id", "target_task_id"):
            value = link.get(key)
            if value is not None:
                link[key] = relevant.get(value, value)
    return out


def set_workflow_id(data: Mapping[str, Any], workflow_id: int) -> dict[str, Any]:
    """Set workflow.id and keep every entry linkage's source_workflow_id equal to it."""
    out = _copy(data)
    out["workflow"]["id"] = workflow_id
    for link in out["linkages"]:
        if link.get("source_workflow_id") is not None:
            link["source_workflow_id"] = workflow_id
    return out


def rewrite_workflow_calls(data: Mapping[str, Any], targets: Mapping[int, int]) -> dict[str, Any]:
    """Point each calling Execute::WorkflowTask (by task id) at its callee's id in the target.

    The id is written as a string, as exports hold it; workflow_name stays as the fallback.
    """
    out = _copy(data)
    _rewrite_calls(out, targets)
    return out


def _rewrite_calls(data: dict[str, Any], targets: Mapping[int, int]) -> None:
    for task in data["tasks"]:
        target = targets.get(task["id"])
        if target is not None and task.get("action_type") == EXECUTE_WORKFLOW:
            task["parameters"]["workflow_id"] = str(target)


# --------------------------------------------------------------------------------------------
# Tenant-specific values


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _IDENT.match(key):
        return f"{path}.{key}"
    return f"{path}[{orjson.dumps(key).decode()}]"


def _is_literal(value: Any) -> bool:
    # Liquid-only values ({{ GlobalConstants.X }}/path) resolve per tenant already.
    return (
        isinstance(value, (str, int))
        and not isinstance(value, bool)
        and str(value) != ""
        and not (isinstance(value, str) and value.lstrip().startswith(("{{", "{%")))
    )


def find_tenant_values(data: Mapping[str, Any]) -> list[TenantValue]:
    """Every value in the document that names an object of the source tenant, with its path."""
    found: list[TenantValue] = []
    workflow = data.get("workflow") or {}
    params = workflow.get("parameters") if isinstance(workflow, dict) else None
    if isinstance(params, dict):
        for key in ("entity_id", "entity_name"):
            if _is_literal(params.get(key)):
                found.append(TenantValue(f"$.workflow.parameters.{key}", key, str(params[key])))
    for i, task in enumerate(data.get("tasks") or []):
        if not isinstance(task, dict):
            continue
        action = task.get("action_type")
        if action in REPORT_TYPES and _is_literal(task.get("object_id")):
            found.append(
                TenantValue(f"$.tasks[{i}].object_id", "report_id", str(task["object_id"]))
            )
        tparams = task.get("parameters")
        if (
            action in CALLOUT_TYPES
            and isinstance(tparams, dict)
            and _is_literal(tparams.get("url"))
        ):
            found.append(
                TenantValue(f"$.tasks[{i}].parameters.url", "callout_url", str(tparams["url"]))
            )
    # Generic walk: saved providers anywhere, and the tenant-specific keys at any depth. Most
    # documents hold neither; one serialisation and a few substring searches say so for a
    # fraction of the walk's cost.
    if not _walk_may_find(data):
        return found
    # Paths are built only for what is found: (parent node, key) links, rendered on demand.
    stack: list[tuple[Any, Any, str | None]] = [(None, dict(data), None)]
    while stack:
        node, value, kind = stack.pop()
        if isinstance(value, dict):
            for key, child in reversed(list(value.items())):
                stack.append(((node, key), child, _TENANT_KEYS.get(key)))
        elif isinstance(value, list):
            for index in range(len(value) - 1, -1, -1):
                stack.append(((node, index), value[index], kind))
        elif isinstance(value, str) and value.startswith(SAVED_PROVIDER_PREFIX):
            found.append(TenantValue(_render_path(node), "saved_provider", value))
        elif kind is not None and _is_literal(value):
            found.append(TenantValue(_render_path(node), kind, str(value)))
    return found


# Neither the prefix nor a quoted key needs escaping in JSON, so each appears verbatim in the
# serialised document wherever the walk could find it.
_WALK_NEEDLES = (SAVED_PROVIDER_PREFIX.encode(), *(f'"{key}"'.encode() for key in _TENANT_KEYS))


def _walk_may_find(data: Mapping[str, Any]) -> bool:
    try:
        raw = orjson.dumps(data)
    except TypeError:  # integers beyond 64 bits, non-string keys: let the walk decide
        return True
    return any(needle in raw for needle in _WALK_NEEDLES)


def _render_path(node: Any) -> str:
    keys: list[str | int] = []
    while node is not None:
        node, key = node
        keys.append(key)
    path = "$"
    for key in reversed(keys):
        path = _child(path, key)
    return path


def apply_substitutions(
    data: Mapping[str, Any], substitutions: Mapping[str, str]
) -> dict[str, Any]:
    """Replace each source value, literally and all at once, inside every string value.

    Longer source values win over shorter ones they contain; a replacement is never substituted
    again. Keys, numbers and booleans are left alone.
    """
    out = _copy(data)
    _substitute(out, substitutions)
    return out


def _substitute(out: dict[str, Any], substitutions: Mapping[str, str]) -> None:
    subs = {k: v for k, v in substitutions.items() if k}
    if not subs:
        return
    pattern = re.compile("|".join(re.escape(k) for k in sorted(subs, key=len, reverse=True)))

    def fix(text: str) -> str:
        return pattern.sub(lambda m: subs[m.group(0)], text)

    stack: list[Any] = [out]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, str):
                    node[key] = fix(value)
                elif isinstance(value, (dict, list)):
                    stack.append(value)
        elif isinstance(node, list):
            for index, value in enumerate(node):
                if isinstance(value, str):
                    node[index] = fix(value)
                elif isinstance(value, (dict, list)):
                    stack.append(value)


# --------------------------------------------------------------------------------------------
# The import payload


def _substituted(value: Any, pattern: re.Pattern[str], subs: Mapping[str, str]) -> Any:
    """`value` with substitutions applied to its string values; containers are copied only where
    something changed (depth is bounded by document.MAX_DEPTH, so recursion is safe)."""
    if isinstance(value, str):
        return pattern.sub(lambda m: subs[m.group(0)], value)
    if isinstance(value, dict):
        changed = False
        out: dict[str, Any] = {}
        for key, item in value.items():
            new = _substituted(item, pattern, subs)
            changed = changed or new is not item
            out[key] = new
        return out if changed else value
    if isinstance(value, list):
        items = [_substituted(item, pattern, subs) for item in value]
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    return value


def _null_keys(record: dict[str, Any], keys: frozenset[str]) -> None:
    for key in keys:
        if key in record:
            record[key] = None


def _null_originals(record: dict[str, Any]) -> None:
    for key in record:
        if key.startswith("original_"):
            record[key] = None


def prepare_for_import(
    doc: ExportDocument,
    *,
    call_targets: Mapping[int, int] | None = None,
    substitutions: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The payload to send for `doc`: tasks 1..N in canonical order, cosmetic workflow id,
    server-computed fields stripped, callees pointed at the target, tenant values substituted.

    `call_targets` maps a calling task's id *in the source document* to the callee's id in the
    target tenant. `doc.data` is never modified; for speed the payload shares unchanged nested
    values (a multi-megabyte e-mail template, say) with it, so treat the payload as read-only:
    it exists to be serialised and sent.
    """
    data = doc.data
    order = doc.task_order or tuple(canonical_task_order(data))
    mapping = {old: new for new, old in enumerate(order, start=1)}
    # Only tasks whose content names a task's file need the (serialise, rewrite, parse) pass. The
    # "original_" keys to null are known from reading, except in a task that pass rewrote (a key
    # may hold a file reference) or a hand-built ExportDocument (no task_order): those get the
    # per-key sweep.
    ref_tasks = doc.ref_tasks if doc.task_order else None
    original_keys = doc.original_keys if doc.task_order else None
    by_id = {t["id"]: t for t in data["tasks"]}
    targets = call_targets or {}
    tasks: list[dict[str, Any]] = []
    for new, old in enumerate(order, start=1):
        task = dict(by_id[old])
        rewritten = ref_tasks is None or old in ref_tasks
        if rewritten:
            task = _rewrite_file_refs(task, mapping)
        task["id"] = new
        parent = task.get("task_id")
        if parent is not None:
            task["task_id"] = mapping[parent]
        if original_keys is None or rewritten:
            _null_originals(task)
        else:
            _null_keys(task, original_keys)
        action = task.get("action_type")
        if action == MERGE and not MERGE_PARAMS.isdisjoint(task["parameters"]):
            task["parameters"] = {
                k: v for k, v in task["parameters"].items() if k not in MERGE_PARAMS
            }
        if action == EXECUTE_WORKFLOW and old in targets:
            task["parameters"] = {**task["parameters"], "workflow_id": str(targets[old])}
        tasks.append(task)

    workflow = dict(data["workflow"])
    workflow["id"] = COSMETIC_WORKFLOW_ID
    # A trigger given only in camelCase (an SDK-typed export, §9.13) is sent snake_case too, the
    # spelling every tenant keeps; the canonical form counts the two as one fact.
    workflow.update(snake_case_triggers(workflow))
    workflow.pop("merge_task_ids", None)
    wparams = workflow.get("parameters")
    if isinstance(wparams, dict) and "merge_task_ids" in wparams:
        workflow["parameters"] = {k: v for k, v in wparams.items() if k != "merge_task_ids"}
    if original_keys is None:
        _null_originals(workflow)
    else:
        _null_keys(workflow, original_keys)

    linkages = []
    for link in data["linkages"]:
        link = dict(link)
        if link.get("source_workflow_id") is not None:
            link["source_workflow_id"] = COSMETIC_WORKFLOW_ID
        source = link.get("source_task_id")
        if source is not None:
            link["source_task_id"] = mapping[source]
        target = link.get("target_task_id")
        if target is not None:
            link["target_task_id"] = mapping[target]
        linkages.append(link)

    out = dict(data)
    out.update(workflow=workflow, tasks=tasks, linkages=linkages)
    subs = {k: v for k, v in (substitutions or {}).items() if k}
    if subs:
        pattern = re.compile("|".join(re.escape(k) for k in sorted(subs, key=len, reverse=True)))
        result: dict[str, Any] = _substituted(out, pattern, subs)
        return result
    return out
