"""Differences between two versions of a workflow at the level a person thinks in: tasks (by name
and graph position, never by id), task fields, linkages and workflow fields. Pure.

Agrees with document.canonical_hash: the difference list is empty exactly when the canonical
forms are equal (docs/diff.md explains the matching and why that holds).
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from migrator.core.canonical import canonical_hash
from migrator.core.workflow_graph import (
    ADDED,
    REMOVED,
    TaskGraph,
    WorkflowGraph,
    draw,
    json_text,
    normalise_refs,
)

# Difference kinds.
WORKFLOW_FIELD = "workflow-field"
DOCUMENT_FIELD = "document-field"
TASK_ADDED = "task-added"
TASK_REMOVED = "task-removed"
TASK_FIELD = "task-field"
LINKAGE_ADDED = "linkage-added"
LINKAGE_REMOVED = "linkage-removed"

_VALUE_WIDTH = 60
_CONTEXT = 12  # characters shown before the first change of a long text
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# How many rounds of position refinement the matching looks at; deeper agreement rarely changes a
# pairing and every round costs a pass over the edges.
_MAX_ROUNDS = 12


class _Absent:
    """A field present on one side only (JSON has no way to say "absent" apart from null)."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()


@dataclass(frozen=True, slots=True)
class Difference:
    """One difference: where (`path`), what the first side has (`source`), what the second has
    (`target`); ABSENT (null in JSON) for a side that lacks it."""

    kind: str
    path: str
    source: Any
    target: Any
    subject: str  # what it is about: `workflow`, `task "Send reminder"`, a linkage
    field: str = ""  # the field inside the subject, for changed fields

    def describe(self) -> str:
        """One line: `task "Send reminder": parameters.email.subject: "A" → "B"`."""
        if self.kind in (TASK_ADDED, LINKAGE_ADDED):
            return f"{self.subject} added"
        if self.kind in (TASK_REMOVED, LINKAGE_REMOVED):
            return f"{self.subject} removed"
        source, target = self.source, self.target
        if isinstance(source, str) and isinstance(target, str):
            # Long texts that differ in the middle: show both from a little before the change.
            common = _common_prefix(source, target)
            if (
                common > _CONTEXT
                and max(len(json_text(source)), len(json_text(target))) > _VALUE_WIDTH
            ):
                start = common - _CONTEXT
                return (
                    f"{self.subject}: {self.field}: {_short(source, start)} → "
                    f"{_short(target, start)}"
                )
        return f"{self.subject}: {self.field}: {_short(source)} → {_short(target)}"

    def to_json(self) -> dict[str, Any]:
        """{"path", "source", "target", "kind"}; an absent side is null."""
        return {
            "path": self.path,
            "source": None if self.source is ABSENT else self.source,
            "target": None if self.target is ABSENT else self.target,
            "kind": self.kind,
        }


@dataclass(frozen=True, slots=True)
class Comparison:
    """The differences of two documents and both task graphs, ready to draw side by side."""

    differences: tuple[Difference, ...]
    source_graph: TaskGraph
    target_graph: TaskGraph


def diff_workflows(source: Mapping[str, Any], target: Mapping[str, Any]) -> list[Difference]:
    """What changes from validated document `source` to validated document `target`.

    Empty exactly when canonical_hash(source) == canonical_hash(target).
    """
    return list(compare_workflows(source, target).differences)


def compare_workflows(source: Mapping[str, Any], target: Mapping[str, Any]) -> Comparison:
    """The differences and both task graphs (always drawn, even for equal documents)."""
    if canonical_hash(source) == canonical_hash(target):
        # Equal canonical forms are equal for the diff too, even where the matching below could
        # pair indistinguishable tasks differently from the canonical ranks.
        s = WorkflowGraph(source)
        graph = draw(s, [str(i) for i in range(len(s.tasks))], {}, set())
        return Comparison((), graph, graph)
    return _Comparer(WorkflowGraph(source), WorkflowGraph(target)).run()


def summarize_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """One line saying what `new` changes against `old`, e.g.
    `2 tasks changed, 1 task added ("X"), 1 linkage removed`; `no change` when none."""
    return summarize_differences(diff_workflows(old, new))


def summarize_differences(differences: Sequence[Difference]) -> str:
    """The one-line summary of a list of differences (see summarize_change)."""
    if not differences:
        return "no change"
    changed_tasks = {d.subject for d in differences if d.kind == TASK_FIELD}
    added = [d.subject for d in differences if d.kind == TASK_ADDED]
    removed = [d.subject for d in differences if d.kind == TASK_REMOVED]
    parts = []
    if changed_tasks:
        parts.append(_count(len(changed_tasks), "task") + " changed")
    if added:
        parts.append(_count(len(added), "task") + f" added ({_names(added)})")
    if removed:
        parts.append(_count(len(removed), "task") + f" removed ({_names(removed)})")
    for kind, verb in ((LINKAGE_ADDED, "added"), (LINKAGE_REMOVED, "removed")):
        n = sum(d.kind == kind for d in differences)
        if n:
            parts.append(_count(n, "linkage") + f" {verb}")
    wf = sum(d.kind == WORKFLOW_FIELD for d in differences)
    if wf:
        parts.append(_count(wf, "workflow field") + " changed")
    top = sum(d.kind == DOCUMENT_FIELD for d in differences)
    if top:
        parts.append(_count(top, "document field") + " changed")
    return ", ".join(parts)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _names(subjects: list[str]) -> str:
    # Subjects read `task "X"`; the summary lists just the quoted names.
    names = [s.removeprefix("task ") for s in subjects]
    shown = ", ".join(names[:3])
    return shown + (", …" if len(names) > 3 else "")


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _quote(text: str) -> str:
    return json_text(text)


def _short(value: Any, start: int = 0) -> str:
    """`value` as JSON, cut to about _VALUE_WIDTH characters; a string from index `start`."""
    if value is ABSENT:
        return "(absent)"
    if start and isinstance(value, str):
        text = json_text(value[start:])
        text = '"…' + text[1:]
    else:
        text = json_text(value)
    return text if len(text) <= _VALUE_WIDTH else text[: _VALUE_WIDTH - 1] + "…"


# --------------------------------------------------------------------------------------------
# Matching tasks and listing the differences


@dataclass(slots=True)
class _Comparer:
    s: WorkflowGraph
    t: WorkflowGraph
    s_ident: list[int] = field(default_factory=list)
    t_ident: list[int] = field(default_factory=list)
    labels: dict[int, str] = field(default_factory=dict)

    def run(self) -> Comparison:
        self._match()
        self._label()
        diffs: list[Difference] = []
        diffs += _field_diffs(
            self.s.workflow, self.t.workflow, "workflow", "workflow", WORKFLOW_FIELD
        )
        diffs += _field_diffs(self.s.extra, self.t.extra, "document", "document", DOCUMENT_FIELD)
        changed: set[int] = set()
        task_diffs = self._task_diffs(changed)
        link_diffs, s_edges, t_edges = self._link_diffs()
        diffs += task_diffs + link_diffs
        s_graph = self._draw(self.s, self.s_ident, self.t_ident, changed, s_edges, REMOVED)
        t_graph = self._draw(self.t, self.t_ident, self.s_ident, changed, t_edges, ADDED)
        return Comparison(tuple(diffs), s_graph, t_graph)

    def _draw(
        self,
        side: WorkflowGraph,
        idents: Sequence[int],
        other: Sequence[int],
        changed: set[int],
        lone: Counter[tuple[int, int, str]],
        lone_state: str,
    ) -> TaskGraph:
        """One side's drawing: what only it has takes `lone_state`."""
        labels = {i: self.labels[k] for i, k in enumerate(idents)}
        return draw(side, [str(k) for k in idents], labels, changed, lone, lone_state, set(other))

    # -- matching

    def _match(self) -> None:
        """Pair tasks of equal name, preferring those whose neighbourhoods agree the longest
        (colour refinement over both graphs at once, seeded by the names), then equal content."""
        s, t = self.s, self.t
        ns, nt = len(s.tasks), len(t.tasks)
        s_nb, t_nb = s.neighbours(), t.neighbours()
        palette: dict[Any, int] = {}
        s_col = [palette.setdefault(("name", n), len(palette)) for n in s.names]
        t_col = [palette.setdefault(("name", n), len(palette)) for n in t.names]
        history = [(s_col, t_col)]
        distinct = len(set(s_col) | set(t_col))
        for _ in range(min(_MAX_ROUNDS, ns + nt)):
            palette = {}
            s_next = [
                palette.setdefault(_signature(i, s_col, s_nb), len(palette)) for i in range(ns)
            ]
            t_next = [
                palette.setdefault(_signature(j, t_col, t_nb), len(palette)) for j in range(nt)
            ]
            s_col, t_col = s_next, t_next
            history.append((s_col, t_col))
            now = len(set(s_col) | set(t_col))
            if now == distinct:
                break
            distinct = now

        def agreement(i: int, j: int) -> int:
            n = 0
            for s_round, t_round in history:
                if s_round[i] != t_round[j]:
                    break
                n += 1
            return n

        by_name: dict[str, tuple[list[int], list[int]]] = {}
        for i, name in enumerate(s.names):
            by_name.setdefault(name, ([], []))[0].append(i)
        for j, name in enumerate(t.names):
            by_name.setdefault(name, ([], []))[1].append(j)
        s_match: dict[int, int] = {}
        used_t: set[int] = set()
        s_final, t_final = history[-1]
        for name in sorted(by_name):
            s_list, t_list = by_name[name]
            if len(s_list) == 1 and len(t_list) == 1:
                s_match[s_list[0]] = t_list[0]
                used_t.add(t_list[0])
                continue
            # Tasks whose colours agree to the last round first: within such a class, equal
            # contents pair up, then the rest in content order (what a greedy pass over the
            # sorted candidates below would choose, without looking at every pair).
            classes: dict[int, tuple[list[int], list[int]]] = {}
            for i in s_list:
                classes.setdefault(s_final[i], ([], []))[0].append(i)
            for j in t_list:
                classes.setdefault(t_final[j], ([], []))[1].append(j)
            for s_class, t_class in classes.values():
                _pair_class(s, t, s_class, t_class, s_match, used_t)
            s_left = [i for i in s_list if i not in s_match]
            t_left = [j for j in t_list if j not in used_t]
            candidates = sorted(
                (
                    -agreement(i, j),
                    s.blanked[i] != t.blanked[j],
                    s.blanked[i],
                    t.blanked[j],
                    s.rank[i],
                    t.rank[j],
                    i,
                    j,
                )
                for i in s_left
                for j in t_left
            )
            for *_, i, j in candidates:
                if i not in s_match and j not in used_t:
                    s_match[i] = j
                    used_t.add(j)
        # Identities: one per matched pair, then one per unmatched task of either side.
        self.s_ident = [-1] * ns
        self.t_ident = [-1] * nt
        next_ident = 0
        for i in sorted(s_match, key=lambda i: (s.names[i], s.blanked[i], s.rank[i])):
            self.s_ident[i] = self.t_ident[s_match[i]] = next_ident
            next_ident += 1
        for idents in (self.s_ident, self.t_ident):
            for i, k in enumerate(idents):
                if k < 0:
                    idents[i] = next_ident
                    next_ident += 1

    def _label(self) -> None:
        """A name per identity, made unique by what precedes the task, then by a number."""
        rep: dict[int, tuple[WorkflowGraph, int]] = {}
        for side, idents in ((self.t, self.t_ident), (self.s, self.s_ident)):
            for i, k in enumerate(idents):
                rep[k] = (side, i)  # the source side's task wins: it is written second
        groups: dict[str, list[int]] = {}
        for k, (side, i) in rep.items():
            groups.setdefault(side.names[i], []).append(k)
        labels: dict[int, str] = {}
        for name, members in groups.items():
            if len(members) == 1:
                labels[members[0]] = name
                continue
            for k in members:
                side, i = rep[k]
                before = sorted(
                    {
                        "start" if src < 0 else side.names[src]
                        for src, tgt, _ in side.links
                        if tgt == i
                    }
                )
                labels[k] = f"{name} (after {', '.join(before)})" if before else name
        seen = Counter(labels.values())
        numbered: Counter[str] = Counter()

        def order(k: int) -> tuple[str, str, bool, int]:
            side, i = rep[k]
            return (labels[k], side.blanked[i], side is self.t, side.rank[i])

        for k in sorted(labels, key=order):
            text = labels[k]
            if seen[text] > 1:
                numbered[text] += 1
                labels[k] = f"{text} #{numbered[text]}"
        self.labels = labels

    # -- differences

    def _task_diffs(self, changed: set[int]) -> list[Difference]:
        s, t = self.s, self.t
        t_of = {k: j for j, k in enumerate(self.t_ident)}
        s_of = {k: i for i, k in enumerate(self.s_ident)}
        out: list[Difference] = []
        for k in sorted(self.labels, key=lambda k: (self.labels[k], k)):
            label = self.labels[k]
            subject = f"task {_quote(label)}"
            path = f"tasks[{_quote(label)}]"
            i, j = s_of.get(k), t_of.get(k)
            if j is None and i is not None:
                shown = normalise_refs(s.tasks[i], s.pos, self.s_ident, self.labels)
                out.append(Difference(TASK_REMOVED, path, shown, ABSENT, subject))
                continue
            if i is None and j is not None:
                shown = normalise_refs(t.tasks[j], t.pos, self.t_ident, self.labels)
                out.append(Difference(TASK_ADDED, path, ABSENT, shown, subject))
                continue
            assert i is not None and j is not None
            found = _field_diffs(
                normalise_refs(s.tasks[i], s.pos, self.s_ident, self.labels),
                normalise_refs(t.tasks[j], t.pos, self.t_ident, self.labels),
                subject,
                path,
                TASK_FIELD,
                normalise_refs(s.tasks[i], s.pos, self.s_ident),
                normalise_refs(t.tasks[j], t.pos, self.t_ident),
            )
            s_parent = s.parents[i]
            t_parent = t.parents[j]
            sp = None if s_parent is None else self.s_ident[s_parent]
            tp = None if t_parent is None else self.t_ident[t_parent]
            if sp != tp:
                found.append(
                    Difference(
                        TASK_FIELD,
                        path + ".parent",
                        None if sp is None else self.labels[sp],
                        None if tp is None else self.labels[tp],
                        subject,
                        "parent",
                    )
                )
            if found:
                changed.add(k)
            out += found
        return out

    def _link_diffs(
        self,
    ) -> tuple[list[Difference], Counter[tuple[int, int, str]], Counter[tuple[int, int, str]]]:
        def keyed(side: WorkflowGraph, idents: list[int]) -> Counter[tuple[int, int, str]]:
            return Counter(
                (-1 if src < 0 else idents[src], idents[tgt], json_text(body))
                for src, tgt, body in side.links
            )

        s_links = keyed(self.s, self.s_ident)
        t_links = keyed(self.t, self.t_ident)
        removed = s_links - t_links
        added = t_links - s_links
        out: list[Difference] = []
        for kind, found in ((LINKAGE_REMOVED, removed), (LINKAGE_ADDED, added)):
            for key in sorted(found, key=self._link_text):
                text = self._link_text(key)
                value = self._link_value(key)
                for _ in range(found[key]):
                    out.append(
                        Difference(
                            kind,
                            f"linkages[{text}]",
                            value if kind == LINKAGE_REMOVED else ABSENT,
                            ABSENT if kind == LINKAGE_REMOVED else value,
                            f"linkage {text}",
                        )
                    )
        return out, removed, added

    def _link_text(self, key: tuple[int, int, str]) -> str:
        src, tgt, body = key
        fields: dict[str, Any] = orjson.loads(body)
        ltype = fields.pop("linkage_type", None)
        start = "start" if src < 0 else _quote(self.labels[src])
        text = f"{start} → {_quote(self.labels[tgt])} ({ltype if isinstance(ltype, str) else json_text(ltype)})"
        return text + (" " + json_text(fields) if fields else "")

    def _link_value(self, key: tuple[int, int, str]) -> dict[str, Any]:
        src, tgt, body = key
        return {
            "from": None if src < 0 else self.labels[src],
            "to": self.labels[tgt],
            **orjson.loads(body),
        }


def _pair_class(
    s: WorkflowGraph,
    t: WorkflowGraph,
    s_class: list[int],
    t_class: list[int],
    s_match: dict[int, int],
    used_t: set[int],
) -> None:
    """Pair tasks of one position class: equal contents first (by canonical rank), then the
    rest in (content, rank) order."""
    by_body: dict[str, tuple[list[int], list[int]]] = {}
    for i in s_class:
        by_body.setdefault(s.blanked[i], ([], []))[0].append(i)
    for j in t_class:
        by_body.setdefault(t.blanked[j], ([], []))[1].append(j)
    for s_same, t_same in by_body.values():
        s_same.sort(key=s.rank.__getitem__)
        t_same.sort(key=t.rank.__getitem__)
        for i, j in zip(s_same, t_same, strict=False):
            s_match[i] = j
            used_t.add(j)
    s_rest = sorted(
        (i for i in s_class if i not in s_match), key=lambda i: (s.blanked[i], s.rank[i])
    )
    t_rest = sorted(
        (j for j in t_class if j not in used_t), key=lambda j: (t.blanked[j], t.rank[j])
    )
    for i, j in zip(s_rest, t_rest, strict=False):
        s_match[i] = j
        used_t.add(j)


def _signature(
    i: int,
    colours: Sequence[int],
    nb: Sequence[tuple[list[tuple[str, int]], list[tuple[str, int]]]],
) -> Any:
    out, inc = nb[i]
    return (
        colours[i],
        tuple(sorted((kind, colours[j]) for kind, j in out)),
        tuple(sorted((kind, -1 if j < 0 else colours[j]) for kind, j in inc)),
    )


def _field_diffs(
    source: Any,
    target: Any,
    subject: str,
    path: str,
    kind: str,
    norm_source: Any = None,
    norm_target: Any = None,
) -> list[Difference]:
    """Leaf-level differences of two JSON values; the normalised forms (file references as
    identities) decide what differs, the raw values are what is shown."""
    out: list[Difference] = []
    ns = source if norm_source is None else norm_source
    nt = target if norm_target is None else norm_target
    _walk(ns, source, nt, target, [], path, subject, kind, out)
    return out


def _walk(
    ns: Any,
    rs: Any,
    nt: Any,
    rt: Any,
    where: list[str | int],
    path: str,
    subject: str,
    kind: str,
    out: list[Difference],
) -> None:
    if ns is not ABSENT and nt is not ABSENT and _same(ns, nt):
        return
    if isinstance(ns, dict) and isinstance(nt, dict):
        s_keys = dict(zip(ns, rs, strict=True))  # normalised key -> raw key
        t_keys = dict(zip(nt, rt, strict=True))
        for key in sorted(set(s_keys) | set(t_keys)):
            raw_key = s_keys.get(key, t_keys.get(key))
            assert raw_key is not None
            sv = ns.get(key, ABSENT)
            tv = nt.get(key, ABSENT)
            _walk(
                sv,
                rs[s_keys[key]] if key in s_keys else ABSENT,
                tv,
                rt[t_keys[key]] if key in t_keys else ABSENT,
                [*where, raw_key],
                path,
                subject,
                kind,
                out,
            )
        return
    if isinstance(ns, list) and isinstance(nt, list):
        # Items aligned as a text diff aligns lines: an item inserted into a list is one
        # difference, not a change of every item after it.
        matcher = difflib.SequenceMatcher(
            None, [json_text(v) for v in ns], [json_text(v) for v in nt], autojunk=False
        )
        for op, a0, a1, b0, b1 in matcher.get_opcodes():
            if op == "equal":
                continue
            for k in range(max(a1 - a0, b1 - b0)):
                a, b = a0 + k, b0 + k
                _walk(
                    ns[a] if a < a1 else ABSENT,
                    rs[a] if a < a1 else ABSENT,
                    nt[b] if b < b1 else ABSENT,
                    rt[b] if b < b1 else ABSENT,
                    [*where, a if a < a1 else b],
                    path,
                    subject,
                    kind,
                    out,
                )
        return
    text = _field_path(where)
    out.append(Difference(kind, f"{path}.{text}" if text else path, rs, rt, subject, text))


def _same(a: Any, b: Any) -> bool:
    # 1 == 1.0 == True in Python, not in the canonical form: compare as serialised JSON.
    if type(a) is str and type(b) is str:
        return bool(a == b)
    return json_text(a) == json_text(b)


def _field_path(where: Sequence[str | int]) -> str:
    parts: list[str] = []
    for step in where:
        if isinstance(step, int):
            parts.append(f"[{step}]")
        elif _IDENT.match(step):
            parts.append(("." if parts else "") + step)
        else:
            parts.append(f"[{_quote(step)}]")
    return "".join(parts)
