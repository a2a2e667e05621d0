"""One workflow document as a graph the diff can match and draw: tasks by position with their
names, id-free contents, parents, linkages, file references and depth; and the drawings. Pure.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

# The same field sets the canonical form leaves out: the diff must ignore exactly what it ignores
# (the integrator may give these public names when document.py moves to core/).
from migrator.core.canonical import (
    _LINK_KEEP,
    _TASK_KEEP,
    _WORKFLOW_KEEP,
    FILE_REF_STR,
    MERGE,
    MERGE_PARAMS,
    WORKFLOW_DEFINITION,
    canonical_task_order,
    definition_block,
)

# Graph element states, for the side-by-side drawings.
SAME = "same"
CHANGED = "changed"
ADDED = "added"
REMOVED = "removed"


def json_text(value: Any) -> str:
    """`value` as compact JSON with sorted keys: how the diff compares and shows values."""
    # JSON escapes every C0 control character, so a value can never break the line.
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


@dataclass(frozen=True, slots=True)
class GraphNode:
    """A task in a drawing: `key` is shared by the two sides' drawings for a matched task."""

    key: str
    label: str
    action: str
    depth: int
    state: str


@dataclass(frozen=True, slots=True)
class GraphEdge:
    """A linkage in a drawing; `source` is None for an entry linkage."""

    source: str | None
    target: str
    label: str
    state: str


@dataclass(frozen=True, slots=True)
class TaskGraph:
    """One side's tasks and linkages, marked with what differs from the other side."""

    nodes: tuple[GraphNode, ...]
    edges: tuple[GraphEdge, ...]


# --------------------------------------------------------------------------------------------
# One side: tasks by position, their id-free bodies, parents, linkages and file references


class WorkflowGraph:
    """One validated document's tasks (by array position) and everything the diff compares."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        tasks: list[Mapping[str, Any]] = data["tasks"]
        self.ids = [t["id"] for t in tasks]
        self.pos = {tid: i for i, tid in enumerate(self.ids)}
        self.tasks = [_task_body(t) for t in tasks]
        self.names = [_name_of(t) for t in tasks]
        self.actions = [str(t.get("action_type") or "") for t in tasks]
        self.parents = [None if t.get("task_id") is None else self.pos[t["task_id"]] for t in tasks]
        self.refs = [sorted(set(_refs_in(body, self.pos))) for body in self.tasks]
        # Each task's body with file references blanked: equal content regardless of ids.
        self.blanked = [json_text(normalise_refs(b, self.pos, None)) for b in self.tasks]
        self.links: list[tuple[int, int, dict[str, Any]]] = []
        for link in data["linkages"]:
            src = link.get("source_task_id")
            body = {k: v for k, v in link.items() if k in _LINK_KEEP}
            self.links.append(
                (-1 if src is None else self.pos[src], self.pos[link["target_task_id"]], body)
            )
        self.workflow = _workflow_body(data["workflow"])
        # Import keeps no top-level key besides workflow, tasks, linkages and what of the
        # `workflow_definition` block says more than the workflow (§3.5, issue 23).
        block = definition_block(data)
        self.extra: dict[str, Any] = {WORKFLOW_DEFINITION: block} if block else {}
        self.depths = _depths(len(self.tasks), self.links)
        # Content-and-position order (ids only break ties between interchangeable tasks): what
        # breaks the remaining ties below, so no choice depends on ids or array order.
        self.rank = [0] * len(self.tasks)
        for r, tid in enumerate(canonical_task_order(data)):
            self.rank[self.pos[tid]] = r

    def neighbours(self) -> list[tuple[list[tuple[str, int]], list[tuple[str, int]]]]:
        """Per task: (outgoing, incoming) edges as (kind, task index); entries have index -1."""
        out: list[list[tuple[str, int]]] = [[] for _ in self.tasks]
        inc: list[list[tuple[str, int]]] = [[] for _ in self.tasks]
        for src, tgt, body in self.links:
            kind = "link:" + json_text(body)
            if src >= 0:
                out[src].append((kind, tgt))
            inc[tgt].append((kind, src))
        for i, parent in enumerate(self.parents):
            if parent is not None:
                out[i].append(("parent", parent))
                inc[parent].append(("parent", i))
            for r in self.refs[i]:
                out[i].append(("ref", r))
                inc[r].append(("ref", i))
        return list(zip(out, inc, strict=True))


def _name_of(task: Mapping[str, Any]) -> str:
    name = task.get("name")
    return name if isinstance(name, str) else json_text(name)


def _task_body(task: Mapping[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in task.items() if k in _TASK_KEEP}
    params = body.get("parameters")
    if task.get("action_type") == MERGE and isinstance(params, dict):
        body["parameters"] = {k: v for k, v in params.items() if k not in MERGE_PARAMS}
    return body


def _workflow_body(workflow: Mapping[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in workflow.items() if k in _WORKFLOW_KEEP}
    params = body.get("parameters")
    if isinstance(params, dict) and "merge_task_ids" in params:
        body["parameters"] = {k: v for k, v in params.items() if k != "merge_task_ids"}
    return body


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _refs_in(body: Any, pos: Mapping[int, int]) -> Iterator[int]:
    for text in _strings(body):
        if "__" in text:
            for m in FILE_REF_STR.finditer(text):
                if int(m.group(1)) in pos:
                    yield pos[int(m.group(1))]


def normalise_refs(
    value: Any,
    pos: Mapping[int, int],
    ident: Sequence[int] | None,
    labels: Mapping[int, str] | None = None,
) -> Any:
    """`value` with every file reference `__<task id>` written as its task's identity (blanked
    when `ident` is None), so bodies compare by what they name, not by id; keys too, as in the
    canonical form. With `labels`, as `__<label>` instead: the form shown to a person."""
    if isinstance(value, str):
        if "__" not in value:
            return value

        def label(m: re.Match[str]) -> str:
            tid = int(m.group(1))
            if tid not in pos:
                return m.group(0)
            if ident is None:
                return "__\x00#\x00"
            if labels is not None:
                return f"__<{labels[ident[pos[tid]]]}>"
            # NUL cannot collide with the text of a real file name.
            return f"__\x00#{ident[pos[tid]]}\x00"

        return FILE_REF_STR.sub(label, value)
    if isinstance(value, dict):
        return {
            normalise_refs(k, pos, ident, labels): normalise_refs(v, pos, ident, labels)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [normalise_refs(v, pos, ident, labels) for v in value]
    return value


def _depths(n: int, links: Sequence[tuple[int, int, Any]]) -> list[int]:
    """Each task's layer for drawing: one below its lowest predecessor (the longest path from an
    entry), leaving out the linkages that close a loop so every layer is finite."""
    succ: list[list[int]] = [[] for _ in range(n)]
    entries = []
    for src, tgt, _ in links:
        if src < 0:
            entries.append(tgt)
        else:
            succ[src].append(tgt)
    # Depth-first from the entries (then from any task none reaches): an edge to a task still on
    # the stack closes a loop; the finishing order, reversed, orders the rest topologically.
    state = [0] * n  # 0 unseen, 1 on the stack, 2 finished
    forward: list[list[int]] = [[] for _ in range(n)]
    finished: list[int] = []
    for root in [*entries, *range(n)]:
        if state[root]:
            continue
        state[root] = 1
        stack = [(root, iter(succ[root]))]
        while stack:
            node, following = stack[-1]
            for j in following:
                if state[j] == 1:
                    continue
                forward[node].append(j)
                if state[j] == 0:
                    state[j] = 1
                    stack.append((j, iter(succ[j])))
                    break
            else:
                state[node] = 2
                finished.append(node)
                stack.pop()
    depth = [0] * n
    for i in reversed(finished):
        for j in forward[i]:
            depth[j] = max(depth[j], depth[i] + 1)
    return depth


def draw(
    side: WorkflowGraph,
    keys: Sequence[str],
    labels: Mapping[int, str],
    changed: set[int],
    lone: Counter[tuple[int, int, str]] | None = None,
    lone_state: str = SAME,
    other: set[int] | None = None,
) -> TaskGraph:
    """A drawing of `side`: tasks and linkages present only here (`lone` counts the linkages)
    take `lone_state`, changed tasks CHANGED."""
    nodes = []
    for i, key in enumerate(keys):
        ident = int(key)
        if other is not None and ident not in other:
            state = lone_state
        elif ident in changed:
            state = CHANGED
        else:
            state = SAME
        nodes.append(
            GraphNode(key, labels.get(i, side.names[i]), side.actions[i], side.depths[i], state)
        )
    pending = Counter(lone or {})
    edges = []
    for src, tgt, body in side.links:
        ident_key = (-1 if src < 0 else int(keys[src]), int(keys[tgt]), json_text(body))
        state = SAME
        if pending[ident_key] > 0:
            pending[ident_key] -= 1
            state = lone_state
        ltype = body.get("linkage_type")
        edges.append(
            GraphEdge(
                None if src < 0 else keys[src],
                keys[tgt],
                ltype if isinstance(ltype, str) else json_text(ltype),
                state,
            )
        )
    return TaskGraph(tuple(nodes), tuple(edges))
