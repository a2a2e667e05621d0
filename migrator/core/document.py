"""Export documents: read bytes into JSON safely, validate the envelope, and hash the content.

The hash is of the canonical form (migrator.core.canonical), which factors out ids, key order,
array order and server-managed fields; docs/remapping.md explains the choices.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from migrator.core.canonical import _HUGE_FLOAT, _canon, _order
from migrator.core.errors import InputError
from migrator.core.versions import is_valid_version

DEFAULT_MAX_BYTES = 32 * 1024 * 1024
# orjson serialises at most 254 nested containers; anything deeper could be read but never sent
# (nor hashed), and our own recursive walks stay far below Python's recursion limit this way.
MAX_DEPTH = 254
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_BOM = b"\xef\xbb\xbf"
_HUGE_MESSAGE = (
    "integer at {where} does not fit in 64 bits (orjson reads only 64-bit integers exactly)"
)
_INT_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|(?<![0-9.eE+-])(-?[0-9]{19,})(?![0-9.eE])', re.DOTALL)

EXECUTE_WORKFLOW = "Execute::WorkflowTask"


@dataclass(frozen=True, slots=True)
class WorkflowCall:
    """An Execute::WorkflowTask reference from one of this document's tasks to another workflow."""

    task_id: int
    workflow_id: str | None
    workflow_name: str | None
    path: str


@dataclass(frozen=True, slots=True)
class ExportDocument:
    """One validated export document with what the rest of the pipeline needs to know about it."""

    source: str
    data: dict[str, Any]
    name: str
    version: str | None
    workflow_id: int
    content_hash: str
    calls: tuple[WorkflowCall, ...] = ()
    definition_id: int | None = None
    # Derived while hashing, kept so prepare_for_import need not redo the graph work: task ids in
    # canonical order, and the ids of tasks whose content names another task's file.
    task_order: tuple[int, ...] = field(default=(), compare=False, repr=False)
    ref_tasks: frozenset[int] = field(default=frozenset(), compare=False, repr=False)
    # Every key of the workflow or a task that starts with "original_" (prepare_for_import nulls
    # them); None when not known.
    original_keys: frozenset[str] | None = field(default=None, compare=False, repr=False)


# --------------------------------------------------------------------------------------------
# Reading bytes


def _parse(raw: bytes, source: str, max_bytes: int) -> dict[str, Any]:
    """load_json without the serialisation check (parse_document folds that into hashing)."""
    if len(raw) > max_bytes:
        raise InputError(
            source,
            "$",
            f"file is {len(raw)} bytes, over the {max_bytes}-byte limit (max_document_bytes)",
        )
    offset = 0
    if raw.startswith(_BOM):
        raw = raw[3:]
        offset = 3
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _decode_error(raw, offset, source, exc) from None
    if not isinstance(data, dict):
        raise InputError(source, "$", f"top level is a JSON {_kind(data)}, not an object")
    return data


def load_json(raw: bytes, source: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """Parse `raw` as one JSON object; raise InputError (one line, with the place) on anything bad."""
    data = _parse(raw, source, max_bytes)
    _check_representable(data, raw, source)
    return data


def _decode_error(raw: bytes, offset: int, source: str, exc: orjson.JSONDecodeError) -> InputError:
    if not raw.strip():
        return InputError(source, "$", "empty file")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as uexc:
        bad = raw[uexc.start]
        return InputError(
            source,
            "$",
            f"not UTF-8 text: invalid byte 0x{bad:02x} at byte offset {uexc.start + offset}",
        )
    if "depth" in exc.msg or "ecursion" in exc.msg:
        return InputError(
            source,
            "$",
            f"nested deeper than {MAX_DEPTH} levels at line {exc.lineno} column {exc.colno}",
        )
    return InputError(
        source, "$", f"not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
    )


def _check_representable(data: dict[str, Any], raw: bytes, source: str) -> None:
    # One C-speed serialisation proves the document can be sent again: it fails past MAX_DEPTH, and
    # its output shows any integer literal orjson could only read as an inexact float.
    try:
        out = orjson.dumps(data)
    except orjson.JSONEncodeError as exc:
        raise _unrepresentable(exc, source) from None
    # A big integer literal has no "+" in the file but gains an exponent "e+NN" when re-serialised;
    # comparing "+" counts (memchr speed) keeps the regex off the common path.
    if b"+" in out and out.count(b"+") != raw.count(b"+") and _HUGE_FLOAT.search(out):
        where = _find_huge_int(raw)
        if where is not None:
            raise InputError(source, "$", _HUGE_MESSAGE.format(where=where))


def _unrepresentable(exc: orjson.JSONEncodeError, source: str) -> InputError:
    """What orjson could not serialise: too deep, or a value JSON cannot carry."""
    if "ecursion" in str(exc):
        return InputError(source, "$", f"nested deeper than {MAX_DEPTH} levels")
    return InputError(source, "$", f"cannot be represented: {exc}")


_ORIGINAL_KEY = re.compile("\x00(original_[^\x00]*)")


def _original_keys(workflow: Mapping[str, Any], tasks: list[Mapping[str, Any]]) -> frozenset[str]:
    """The keys of the workflow and of the tasks that start with "original_"."""
    # One C-level join of every key and one regex scan instead of a startswith per key. The
    # keys are found exactly when none contains the NUL separator (the count shows it).
    keys = "\x00" + "\x00".join(itertools.chain(workflow, *tasks))
    if "original_" not in keys:
        return frozenset()
    if keys.count("\x00") == len(workflow) + sum(map(len, tasks)):
        return frozenset(_ORIGINAL_KEY.findall(keys))
    return frozenset(k for k in itertools.chain(workflow, *tasks) if k.startswith("original_"))


def _find_huge_int(raw: bytes) -> str | None:
    # Error path only: tokenise just enough to skip strings and fractional/exponent digits.
    for match in _INT_TOKEN.finditer(raw):
        digits = match.group(1)
        if digits is None:
            continue
        value = int(digits)
        if value < INT64_MIN or value > 2**64 - 1:
            before = raw[: match.start(1)]
            line = before.count(b"\n") + 1
            column = match.start(1) - (before.rfind(b"\n") + 1) + 1
            return f"line {line} column {column}"
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


# --------------------------------------------------------------------------------------------
# Validation


def _int_problem(value: Any) -> str | None:
    """Why `value` is not a usable id (an int64 that is not a bool), or None when it is."""
    if isinstance(value, bool):
        return "must be an integer, not a boolean"
    if isinstance(value, int):
        if INT64_MIN <= value <= INT64_MAX:
            return None
        return f"integer {value} is beyond the 64-bit range"
    if isinstance(value, float):
        if abs(value) >= 2.0**63:
            return f"number {value!r} is beyond the 64-bit range"
        return f"must be an integer, got the number {value!r}"
    return f"must be an integer, got {_kind(value)}"


def _require_int(value: Any, source: str, where: str) -> None:
    """Raise InputError at `where` unless `value` is a usable id."""
    problem = _int_problem(value)
    if problem:
        raise InputError(source, where, problem)


def validate_document(data: Any, source: str) -> None:
    """Raise InputError(source, json_path, message) for the first problem found in `data`."""
    if not isinstance(data, dict):
        raise InputError(source, "$", f"top level is a JSON {_kind(data)}, not an object")
    workflow = data.get("workflow")
    if workflow is None:
        raise InputError(
            source,
            "$.workflow",
            "missing" if "workflow" not in data else "is null; must be an object",
        )
    if not isinstance(workflow, dict):
        raise InputError(source, "$.workflow", f"must be an object, got {_kind(workflow)}")
    name = workflow.get("name")
    if not isinstance(name, str) or not name.strip():
        what = (
            "missing"
            if name is None
            else ("empty" if isinstance(name, str) else f"a {_kind(name)}")
        )
        raise InputError(
            source, "$.workflow.name", f"workflow name is {what}; a non-empty string is required"
        )
    if "id" not in workflow:
        raise InputError(source, "$.workflow.id", "missing")
    _require_int(workflow["id"], source, "$.workflow.id")
    workflow_id = workflow["id"]
    for key in ("tasks", "linkages"):
        if key not in data:
            raise InputError(source, f"$.{key}", "missing")
        if not isinstance(data[key], list):
            raise InputError(source, f"$.{key}", f"must be an array, got {_kind(data[key])}")
    tasks: list[Any] = data["tasks"]
    linkages: list[Any] = data["linkages"]
    if not tasks:
        raise InputError(source, "$.tasks", "no tasks — Zuora rejects an empty import")
    if not linkages:
        raise InputError(source, "$.linkages", "no linkages — Zuora rejects an empty import")

    ids: dict[int, int] = {}
    for i, task in enumerate(tasks):
        where = f"$.tasks[{i}]"
        if not isinstance(task, dict):
            raise InputError(source, where, f"must be an object, got {_kind(task)}")
        if "id" not in task:
            raise InputError(source, f"{where}.id", "missing")
        _require_int(task["id"], source, f"{where}.id")
        tid: int = task["id"]
        if tid in ids:
            raise InputError(
                source, f"{where}.id", f"duplicate task id {tid} (also $.tasks[{ids[tid]}].id)"
            )
        ids[tid] = i
        params = task.get("parameters")
        if not isinstance(params, dict):
            got = "missing" if "parameters" not in task else f"a {_kind(params)}"
            raise InputError(
                source,
                f"{where}.parameters",
                f"must be an object, got {got} (Zuora's import fails without one)",
            )
        action = task.get("action_type")
        if action is not None and not isinstance(action, str):
            raise InputError(
                source, f"{where}.action_type", f"must be a string, got {_kind(action)}"
            )
        if action == EXECUTE_WORKFLOW:
            _validate_call(params, source, f"{where}.parameters")
    for i, task in enumerate(tasks):
        parent = task.get("task_id")
        if parent is None:
            continue
        _require_int(parent, source, f"$.tasks[{i}].task_id")
        if parent not in ids:
            raise InputError(
                source,
                f"$.tasks[{i}].task_id",
                f"parent task {parent} is not a task of this document",
            )

    entries = 0
    for i, link in enumerate(linkages):
        where = f"$.linkages[{i}]"
        if not isinstance(link, dict):
            raise InputError(source, where, f"must be an object, got {_kind(link)}")
        if "target_task_id" not in link or link["target_task_id"] is None:
            raise InputError(source, f"{where}.target_task_id", "missing")
        _require_int(link["target_task_id"], source, f"{where}.target_task_id")
        if link["target_task_id"] not in ids:
            raise InputError(
                source,
                f"{where}.target_task_id",
                f"links to task {link['target_task_id']}, which is not in $.tasks",
            )
        src_wf = link.get("source_workflow_id")
        src_task = link.get("source_task_id")
        if (src_wf is None) == (src_task is None):
            raise InputError(
                source,
                where,
                "needs exactly one of source_workflow_id (entry linkage) and source_task_id",
            )
        if src_task is not None:
            _require_int(src_task, source, f"{where}.source_task_id")
            if src_task not in ids:
                raise InputError(
                    source,
                    f"{where}.source_task_id",
                    f"links from task {src_task}, which is not in $.tasks",
                )
        else:
            _require_int(src_wf, source, f"{where}.source_workflow_id")
            if src_wf != workflow_id:
                raise InputError(
                    source,
                    f"{where}.source_workflow_id",
                    f"entry linkage points at workflow {src_wf}, not this document's workflow.id {workflow_id}",
                )
            entries += 1
        ltype = link.get("linkage_type")
        if not isinstance(ltype, str):
            got = "missing" if "linkage_type" not in link else f"a {_kind(ltype)}"
            raise InputError(source, f"{where}.linkage_type", f"must be a string, got {got}")
        if not ltype.strip():
            # Zuora's linkage types are words ("Start", "Success", "For Each"): none is blank.
            raise InputError(source, f"{where}.linkage_type", "must not be empty")
    if entries == 0:
        raise InputError(
            source,
            "$.linkages",
            "no entry linkage (one with source_workflow_id = workflow.id starts the workflow)",
        )


def _plainly_valid(data: Any) -> bool:
    """True only if validate_document(data) would pass; False means "ask validate_document".

    The same checks without building a JSON path per item: the common, valid document passes
    in one cheap sweep, and validate_document names the first problem of any other (exact
    types only, so bools, subclasses and other doubtful values take the precise route).
    """
    if type(data) is not dict:
        return False
    workflow = data.get("workflow")
    if type(workflow) is not dict:
        return False
    name = workflow.get("name")
    workflow_id = workflow.get("id")
    if (
        type(name) is not str
        or not name.strip()
        or type(workflow_id) is not int
        or not INT64_MIN <= workflow_id <= INT64_MAX
    ):
        return False
    tasks = data.get("tasks")
    linkages = data.get("linkages")
    if type(tasks) is not list or type(linkages) is not list or not tasks or not linkages:
        return False
    ids: set[int] = set()
    for task in tasks:
        if type(task) is not dict:
            return False
        tid = task.get("id")
        if type(tid) is not int or not INT64_MIN <= tid <= INT64_MAX or tid in ids:
            return False
        ids.add(tid)
        params = task.get("parameters")
        if type(params) is not dict:
            return False
        action = task.get("action_type")
        if action is not None:
            if type(action) is not str:
                return False
            if action == EXECUTE_WORKFLOW:
                wid = params.get("workflow_id")
                wname = params.get("workflow_name")
                if wid is not None and type(wid) is not str and type(wid) is not int:
                    return False
                if wname is not None and type(wname) is not str:
                    return False
    for task in tasks:
        parent = task.get("task_id")
        # `ids` holds int64 ints only, and the exact type check keeps True from matching 1.
        if parent is not None and (type(parent) is not int or parent not in ids):
            return False
    entries = 0
    for link in linkages:
        if type(link) is not dict:
            return False
        target = link.get("target_task_id")
        if type(target) is not int or target not in ids:
            return False
        src_task = link.get("source_task_id")
        if src_task is None:
            src_wf = link.get("source_workflow_id")
            if type(src_wf) is not int or src_wf != workflow_id:
                return False
            entries += 1
        elif (
            type(src_task) is not int
            or src_task not in ids
            or link.get("source_workflow_id") is not None
        ):
            return False
        ltype = link.get("linkage_type")
        if type(ltype) is not str or not ltype.strip():
            return False
    return entries > 0


def _validate_call(params: dict[str, Any], source: str, where: str) -> None:
    wid = params.get("workflow_id")
    if wid is not None and (isinstance(wid, bool) or not isinstance(wid, (str, int))):
        raise InputError(
            source, f"{where}.workflow_id", f"must be a string or an integer, got {_kind(wid)}"
        )
    wname = params.get("workflow_name")
    if wname is not None and not isinstance(wname, str):
        raise InputError(source, f"{where}.workflow_name", f"must be a string, got {_kind(wname)}")


def find_calls(data: Mapping[str, Any]) -> tuple[WorkflowCall, ...]:
    """Every Execute::WorkflowTask reference of a validated document, in task order."""
    calls = []
    for i, task in enumerate(data["tasks"]):
        if task.get("action_type") != EXECUTE_WORKFLOW:
            continue
        params = task["parameters"]
        wid = params.get("workflow_id")
        wname = params.get("workflow_name")
        calls.append(
            WorkflowCall(
                task_id=task["id"],
                workflow_id=None if wid is None else str(wid),
                workflow_name=wname,
                path=f"$.tasks[{i}].parameters.workflow_id",
            )
        )
    return tuple(calls)


def parse_document(
    raw: bytes, source: str, *, max_bytes: int = DEFAULT_MAX_BYTES, definition_id: int | None = None
) -> ExportDocument:
    """Read, validate and hash one export document; InputError on anything wrong with it."""
    # The depth and huge-integer checks of load_json happen while hashing (one serialisation
    # instead of two): every part of the payload is serialised there at its payload depth.
    data = _parse(raw, source, max_bytes)
    return _from_data(data, source, definition_id, raw)


def document_from_data(
    data: Any, source: str, *, definition_id: int | None = None
) -> ExportDocument:
    """Validate and hash an already-parsed document (a live export, for instance)."""
    return _from_data(data, source, definition_id, None)


def _from_data(
    data: Any, source: str, definition_id: int | None, raw: bytes | None
) -> ExportDocument:
    # The cheap sweep vouches for the usual document; anything else gets the full validation,
    # which raises with the path and message of its first problem.
    if not _plainly_valid(data):
        validate_document(data, source)
    workflow = data["workflow"]
    version = workflow.get("version")
    try:
        canon = _canon(data)
    except orjson.JSONEncodeError as exc:
        raise _unrepresentable(exc, source) from None
    if canon.maybe_huge and raw is not None:
        where = _find_huge_int(raw)
        if where is not None:
            raise InputError(source, "$", _HUGE_MESSAGE.format(where=where))
    tasks = data["tasks"]
    return ExportDocument(
        source=source,
        data=data,
        name=workflow["name"],
        version=version if is_valid_version(version) else None,
        workflow_id=workflow["id"],
        content_hash=hashlib.sha256(canon.payload).hexdigest(),
        calls=find_calls(data),
        definition_id=definition_id,
        task_order=tuple(_order(canon, tasks)),
        ref_tasks=frozenset(tasks[i]["id"] for i in canon.ref_positions),
        original_keys=_original_keys(workflow, tasks),
    )
