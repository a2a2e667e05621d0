"""The fake Zuora's pure document rules: versions, import validation, what import keeps, ids.

No I/O and no state. Written from the API spec on its own, without migrator.document or
migrator.remap, so a bug in either cannot hide by agreement.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

# §6 [Z]: integer, integer.integer or integer.integer.integer.
VERSION_RE = re.compile(r"^[0-9]+(?:\.[0-9]+)?(?:\.[0-9]+)?$")
# §4.6: a producer task id embedded in a file name: `Subscription__4.csv.zip`, `S3__7__x.csv`.
FILE_REF_RE = re.compile(r"(?<=[A-Za-z0-9])__([0-9]+)(?=\.|__|\Z)")
# §3.5 / §4.1 [Z]: the only top-level key besides the three that import keeps.
WORKFLOW_DEFINITION = "workflow_definition"
# §3.5 [Z]: what the `workflow_definition` block holds (`{name, description, category,
# ui_page_roles}`); import keeps these keys of it and drops the rest, like any record (§3.6 [Z]).
WORKFLOW_DEFINITION_KEYS = frozenset({"name", "description", "category", "ui_page_roles"})
# §9.13: the camelCase trigger keys an SDK-typed import sends, and their snake_case names.
CAMEL_TRIGGERS = (
    ("calloutTrigger", "callout_trigger"),
    ("ondemandTrigger", "ondemand_trigger"),
    ("scheduledTrigger", "scheduled_trigger"),
)
# [Z] the server removes and recomputes this one.
MERGE_TASK_IDS = "merge_task_ids"


def version_key(text: str) -> tuple[int, int, int]:
    """Numeric per component, missing components padded with 0 (§6 [I])."""
    parts = [int(p) for p in text.split(".")]
    parts += [0] * (3 - len(parts))
    return (parts[0], parts[1], parts[2])


def next_version(highest: str) -> str:
    """One above `highest` in its last component: "0.0.9" → "0.0.10", "2" → "3"."""
    parts = highest.split(".")
    parts[-1] = str(int(parts[-1]) + 1)
    return ".".join(parts)


def timestamp(now: float) -> str:
    """The `2019-05-31T14:52:38.171Z` form of the list examples (§3 casing notes)."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{int(now * 1000) % 1000:03d}Z"
    )


def content_sha256(payload: Any) -> str:
    """Hash of the import payload as sent, keys sorted: the same document always hashes alike."""
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


# ---------------------------------------------------------------------------------------------
# What import keeps: the ONE place these lists live (docs/fake-zuora.md has them with sources).
# A client's content identity must be computed over exactly these keys.
#
# §4.2 (D example + O + Z) and §3.6 [Z] "unknown keys under `workflow` are silently dropped, e.g.
# `ui_trigger`". Kept as sent, except `id`, `type`, `version` (the server sets them, §3.6) and
# `parameters.merge_task_ids` (removed and recomputed, §3.6 [Z]).
WORKFLOW_KEYS = frozenset(
    {
        "id",
        "name",
        "description",
        "type",
        "version",
        "status",
        "call_type",
        "ondemand_trigger",
        "callout_trigger",
        "scheduled_trigger",
        "event_trigger",
        "sync_trigger",
        "interval",
        "timezone",
        "priority",
        "delete_ttl",
        "css",
        "data",
        "parameters",
        "notifications",
        "started_at",
        "finished_at",
        "original_workflow_id",
        "task_summary",
        "external_track_id",
        "ui_pages",
        "solution_id",
        "extension_id",
        "zuora_org_id",
        "zuora_org_ids",
    }
)
# §4.3 setup fields (D, O, S) plus the [Z] export schema's `entity_id` and `subprocess_id`
# (ZCA workflow_export_schema.json, `additionalProperties: false`). Kept as sent, except `id`
# and `task_id` (reallocated). [I] §4.3's run-time fields (`status`, `error`, `error_class`,
# `error_details`, `process_id`, `iterate_row_reference`, `object_batched_reference`,
# `original_task_id`, `original_workflow_id`, `notes`, `data_size`, `restart_at`): "import
# ignores them" — dropped, like any key in neither list.
TASK_KEYS = frozenset(
    {
        "id",
        "name",
        "action_type",
        "parameters",
        "object",
        "object_id",
        "call_type",
        "task_id",
        "concurrent_limit",
        "tags",
        "css",
        "priority",
        "assignment",
        "delivery_method",
        "zuora_org_id",
        "zuora_org_ids",
        "entity_id",
        "subprocess_id",
    }
)
# §4.4: the four linkage fields (D, O, Z) and `internal_group` (SALTO-SRC: "may appear; preserve
# it"). The ids are rewritten; any other key is dropped [I, by analogy with §3.6].
LINKAGE_KEYS = frozenset(
    {"source_workflow_id", "source_task_id", "target_task_id", "linkage_type", "internal_group"}
)


def kept(
    record: Mapping[str, Any],
    keys: frozenset[str] | None,
    rewrite: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """A deep copy of `record` holding only `keys` (every key when None: what import keeps of
    it), each string (and mapping key) passed through `rewrite` when one is given."""
    return {
        json_copy(k, rewrite): json_copy(v, rewrite)
        for k, v in record.items()
        if keys is None or k in keys
    }


def json_copy(value: Any, rewrite: Callable[[str], str] | None = None) -> Any:
    """A deep copy of a JSON value, every string through `rewrite` when one is given.

    One pass, and only what JSON holds: an import copies every task of every payload, and
    `copy.deepcopy` (a memo per object, the copy protocol per leaf) was most of the fake's CPU
    in a fleet run. Anything else is left to `copy.deepcopy`."""
    kind = type(value)
    if kind is str:
        return rewrite(value) if rewrite is not None else value
    if kind is dict:
        return {json_copy(k, rewrite): json_copy(v, rewrite) for k, v in value.items()}
    if kind is list:
        return [json_copy(v, rewrite) for v in value]
    if kind is int or kind is float or kind is bool or value is None:
        return value
    copied = copy.deepcopy(value)
    return _rewrite_refs_with(copied, rewrite) if rewrite is not None else copied


# ---------------------------------------------------------------------------------------------
# Import validation and id reallocation (pure functions of the payload)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_import(payload: Any) -> list[str]:
    """Every reason §7.2 gives to refuse an import payload; [] when it is acceptable."""
    if not isinstance(payload, dict):
        return ["The import payload must be a JSON object"]
    problems: list[str] = []
    wf = payload.get("workflow")
    if not isinstance(wf, dict):
        return ["workflow must be an object"]
    name = wf.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append("workflow.name must be a non-empty string")
    tasks = payload.get("tasks")
    linkages = payload.get("linkages")
    # [Z] "No tasks/linkages present in import payload".
    if not isinstance(tasks, list) or not tasks or not isinstance(linkages, list) or not linkages:
        problems.append("No tasks/linkages present in import payload")
        return problems
    ids: set[int] = set()
    for i, task in enumerate(tasks):
        if not isinstance(task, dict):
            problems.append(f"tasks[{i}] must be an object")
            continue
        tid = task.get("id")
        if not isinstance(tid, int) or isinstance(tid, bool):
            problems.append(f"tasks[{i}].id must be an integer")
        elif tid in ids:
            problems.append(f"tasks[{i}].id {tid} is not unique")
        else:
            ids.add(tid)
        if not isinstance(task.get("parameters"), dict):
            problems.append(f"tasks[{i}].parameters must be an object")
    for i, task in enumerate(tasks):
        if isinstance(task, dict):
            parent = task.get("task_id")
            if parent is not None and (not is_int(parent) or parent not in ids):
                problems.append(f"tasks[{i}].task_id {parent!r} does not name a task")
    entries = 0
    for i, link in enumerate(linkages):
        if not isinstance(link, dict):
            problems.append(f"linkages[{i}] must be an object")
            continue
        target = link.get("target_task_id")
        if not is_int(target) or target not in ids:
            problems.append(f"linkages[{i}].target_task_id {target!r} does not name a task")
        source = link.get("source_task_id")
        if source is None:
            entries += 1
            # [Z] the entry edge's source_workflow_id must equal workflow.id in the payload.
            if link.get("source_workflow_id") != wf.get("id"):
                problems.append(f"linkages[{i}].source_workflow_id must equal workflow.id")
        elif not is_int(source) or source not in ids:
            problems.append(f"linkages[{i}].source_task_id {source!r} does not name a task")
        if not isinstance(link.get("linkage_type"), str):
            problems.append(f"linkages[{i}].linkage_type must be a string")
    if entries == 0:
        problems.append("linkages must hold at least one entry edge (source_task_id null)")
    return problems


def file_ref_rewriter(mapping: Mapping[int, int]) -> Callable[[str], str]:
    """A string with its `Name__<oldId>` file references' ids rewritten by `mapping`."""

    def sub(match: re.Match[str]) -> str:
        old = int(match.group(1))
        return f"__{mapping[old]}" if old in mapping else match.group(0)

    def rewrite(text: str) -> str:
        return FILE_REF_RE.sub(sub, text) if "__" in text else text

    return rewrite


def _rewrite_refs_with(value: Any, rewrite: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return rewrite(value)
    if isinstance(value, list):
        return [_rewrite_refs_with(v, rewrite) for v in value]
    if isinstance(value, dict):
        return {
            _rewrite_refs_with(k, rewrite): _rewrite_refs_with(v, rewrite) for k, v in value.items()
        }
    return value


def reallocate(
    payload: Mapping[str, Any],
    version_id: int,
    version: str,
    allocate: Callable[[], int],
    *,
    rewrite_file_refs: bool,
    keep_unknown_keys: bool = False,
    camel_case_triggers: bool = False,
) -> dict[str, Any]:
    """The stored document: new task ids everywhere they live, `workflow.id` = the version id.

    With `camel_case_triggers` (§9.13, [I]) a camelCase trigger key under `workflow` is read as
    the trigger when its snake_case name is absent.

    Only the keys in WORKFLOW_KEYS, TASK_KEYS and LINKAGE_KEYS survive (all of them with
    `keep_unknown_keys`). Task parameters are kept verbatim except for the `Name__<id>` file
    references (§4.6, [I]).
    """

    def keep(
        record: Mapping[str, Any],
        keys: frozenset[str],
        rewrite: Callable[[str], str] | None = None,
    ) -> dict[str, Any]:
        return kept(record, None if keep_unknown_keys else keys, rewrite)

    tasks_in: list[dict[str, Any]] = payload["tasks"]
    mapping = {task["id"]: allocate() for task in tasks_in}
    refs = file_ref_rewriter(mapping) if rewrite_file_refs else None
    wf = keep(payload["workflow"], WORKFLOW_KEYS)
    if camel_case_triggers:
        for camel, snake in CAMEL_TRIGGERS:
            if camel in payload["workflow"] and snake not in payload["workflow"]:
                wf[snake] = copy.deepcopy(payload["workflow"][camel])
    wf["id"] = version_id
    wf["type"] = "Workflow::Setup"  # [Z] forced
    wf["version"] = version
    params = wf.get("parameters")
    if isinstance(params, dict):
        params.pop(MERGE_TASK_IDS, None)  # [Z] removed and recomputed by the server
    tasks: list[dict[str, Any]] = []
    for task_in in tasks_in:
        task = keep(task_in, TASK_KEYS, refs)  # copied and its file references rewritten at once
        task["id"] = mapping[task_in["id"]]
        if task_in.get("task_id") is not None:
            task["task_id"] = mapping[task_in["task_id"]]
        tasks.append(task)
    linkages: list[dict[str, Any]] = []
    for link_in in payload["linkages"]:
        link = keep(link_in, LINKAGE_KEYS)
        link["target_task_id"] = mapping[link_in["target_task_id"]]
        if link_in.get("source_task_id") is None:
            link["source_workflow_id"] = version_id
        else:
            link["source_task_id"] = mapping[link_in["source_task_id"]]
        linkages.append(link)
    doc: dict[str, Any] = {"workflow": wf, "tasks": tasks, "linkages": linkages}
    if isinstance(payload.get(WORKFLOW_DEFINITION), dict):
        doc[WORKFLOW_DEFINITION] = keep(payload[WORKFLOW_DEFINITION], WORKFLOW_DEFINITION_KEYS)
    return doc
