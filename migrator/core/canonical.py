"""The canonical form of a workflow export and its hash: ids, key order, array order and
server-managed fields factored out, so a source export and what landed on a target compare equal.
"""

from __future__ import annotations

import hashlib
import operator
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

# `<Name>__<taskId>` followed by `.`, `__` or the end of the string (spec §4.6). Matched on
# orjson-serialised bytes, where the end of a string is an unescaped `"`; see docs/remapping.md for
# why this agrees with matching each decoded string against _FILE_REF_STR.
FILE_REF_BYTES = re.compile(rb"__([0-9]+)(?=\.|__|\")")
FILE_REF_STR = re.compile(r"__([0-9]+)(?=\.|__|\Z)", re.ASCII)
# A float in serialised output whose exponent shows it came from an integer literal beyond 64 bits
# (orjson turns such literals into floats instead of failing).
_HUGE_FLOAT = re.compile(rb"e\+(?:1[89]|[2-9][0-9]|[0-9]{3})")


MERGE = "Logic::Merge"

# What import keeps (spec §3.6 [Z]: "unknown keys under `workflow` are silently dropped", e.g.
# `ui_trigger`; §4.2-4.4 for the records). A document's identity is what survives import, so a key
# outside these lists never counts: the same lists as the fake's (migrator/fake/_document.py
# WORKFLOW_KEYS, TASK_KEYS, LINKAGE_KEYS; tests/test_canonical_keys.py holds them equal).
WORKFLOW_KEYS = frozenset(
    {
        "id", "name", "description", "type", "version", "status", "call_type",
        "ondemand_trigger", "callout_trigger", "scheduled_trigger", "event_trigger",
        "sync_trigger", "interval", "timezone", "priority", "delete_ttl", "css", "data",
        "parameters", "notifications", "started_at", "finished_at", "original_workflow_id",
        "task_summary", "external_track_id", "ui_pages", "solution_id", "extension_id",
        "zuora_org_id", "zuora_org_ids",
    }
)  # fmt: skip
TASK_KEYS = frozenset(
    {
        "id", "name", "action_type", "parameters", "object", "object_id", "call_type",
        "task_id", "concurrent_limit", "tags", "css", "priority", "assignment",
        "delivery_method", "zuora_org_id", "zuora_org_ids", "entity_id", "subprocess_id",
    }
)  # fmt: skip
LINKAGE_KEYS = frozenset(
    {"source_workflow_id", "source_task_id", "target_task_id", "linkage_type", "internal_group"}
)
# §3.5 [Z]/[O]: the export's `workflow_definition` block, of which import keeps these keys (the
# fake's WORKFLOW_DEFINITION_KEYS). A kept key counts only where it says more than the workflow
# itself: a block whose name and description are the workflow's (what a live export adds to any
# document) hashes as no block, so a document without one keeps its hash.
WORKFLOW_DEFINITION = "workflow_definition"
WORKFLOW_DEFINITION_KEYS = frozenset({"name", "description", "category", "ui_page_roles"})

# §9.13 [I]: the camelCase trigger keys an SDK-typed import sends, and their snake_case names
# (the fake's CAMEL_TRIGGERS). One fact in two spellings: where only the camelCase one is given,
# the canonical form reads it as the snake_case key (and migrator sends it so spelled, which
# a tenant keeps whether or not it knows the camelCase one); where both are, the snake_case wins.
CAMEL_TRIGGERS = (
    ("calloutTrigger", "callout_trigger"),
    ("ondemandTrigger", "ondemand_trigger"),
    ("scheduledTrigger", "scheduled_trigger"),
)


def snake_case_triggers(workflow: Mapping[str, Any]) -> dict[str, Any]:
    """The trigger keys given only in camelCase, by their snake_case names ({} for none)."""
    return {
        snake: workflow[camel]
        for camel, snake in CAMEL_TRIGGERS
        if camel in workflow and snake not in workflow
    }


# Of what import keeps, the fields the server owns or computes; they differ between a source and
# what landed, so the canonical form leaves them out too (spec §4.2, §4.3, §4.6).
_WORKFLOW_SERVER = frozenset(
    {
        "id",
        "version",
        "status",
        "type",
        "started_at",
        "finished_at",
        "task_summary",
        "external_track_id",
    }
)
_WORKFLOW_KEEP = WORKFLOW_KEYS - _WORKFLOW_SERVER
# The task's own id and its parent's: the canonical form ranks tasks instead.
_TASK_KEEP = TASK_KEYS - {"id", "task_id"}
_LINK_KEEP = LINKAGE_KEYS - {"source_workflow_id", "source_task_id", "target_task_id"}
MERGE_PARAMS = frozenset({"merge_paths", "merge_start", "merge_task_ids"})
_TOP_KEYS = frozenset({"workflow", "tasks", "linkages"})


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


# Each part is serialised wrapped in as many lists as it sits deep in the payload (a task is in
# the document's "tasks" list: 2 levels), so orjson's depth limit fires exactly when it would for
# the whole payload. Dropped fields that stay in the payload are serialised the same way, as a
# list of values standing in for the dict that holds them.


# Containers can be too deep; floats may be huge integer literals in disguise.
_ASIDE_TYPES = (dict, list, float)


# Task keys that validation proves to be int64 integers or null: never too deep, never floats, so
# never material for the depth and huge-integer checks.
_VALIDATED_TASK_KEYS = frozenset({"id", "task_id"})


def _workflow_body(workflow: Mapping[str, Any], aside: list[bytes], camel: bool = True) -> bytes:
    body = {k: v for k, v in workflow.items() if k in _WORKFLOW_KEEP}
    if camel:
        body.update(snake_case_triggers(workflow))
    kept_aside = []
    for key, value in workflow.items():
        # An empty container or 0.0 can be neither too deep nor a huge integer: not worth a check.
        if key not in _WORKFLOW_KEEP and isinstance(value, _ASIDE_TYPES) and value:
            kept_aside.append(value)
    if kept_aside:
        aside.append(_dumps([kept_aside]))
    params = body.get("parameters")
    if isinstance(params, dict) and "merge_task_ids" in params:
        body["parameters"] = {k: v for k, v in params.items() if k != "merge_task_ids"}
        if isinstance(params["merge_task_ids"], _ASIDE_TYPES):
            aside.append(_dumps([[[params["merge_task_ids"]]]]))
    return _dumps([body])[1:-1]


_PLAIN_LINK_KEYS = frozenset(
    {"source_workflow_id", "source_task_id", "target_task_id", "linkage_type"}
)


def _link_body(link: Mapping[str, Any], aside: list[bytes]) -> bytes:
    # Nearly every linkage has just the four standard keys; skip building and sorting a dict.
    if len(link) == 4 and _PLAIN_LINK_KEYS.issuperset(link):
        return b'{"linkage_type":%s}' % orjson.dumps(link["linkage_type"])
    dropped = [v for k, v in link.items() if k not in LINKAGE_KEYS and isinstance(v, _ASIDE_TYPES)]
    if dropped:
        aside.append(_dumps([[dropped]]))
    return _dumps([[{k: v for k, v in link.items() if k in _LINK_KEEP}]])[2:-2]


def _splice(body: bytes, refs: list[tuple[int, int, int]], label: Any) -> bytes:
    """`body` with each (start, end, task index) file reference replaced by `__#<label(index)>`."""
    if not refs:
        return body
    parts = []
    pos = 0
    for start, end, index in refs:
        parts.append(body[pos:start])
        parts.append(b"__#" + label(index))
        pos = end
    parts.append(body[pos:])
    return b"".join(parts)


@dataclass(slots=True)
class _Canon:
    ranks: list[int]  # structural label of each task (by array position)
    bodies: list[bytes]  # id-free content of each task, file refs as labels, inside `[[`...`]]`
    payload: bytes  # canonical JSON bytes of the whole document
    # Positions of the tasks whose content holds a file reference to a task.
    ref_positions: Collection[int]
    maybe_huge: bool  # some number serialised with an exponent >= 18 (a huge integer literal?)
    # Task positions by rank when every rank is distinct (the usual case), else None.
    by_rank: list[int] | None


def _dense_ranks(keys: list[Any]) -> tuple[list[int], int]:
    """Each key's index among the distinct keys in sorted order, and the number of distinct keys.

    The same as indexing into sorted(set(keys)), without hashing the keys (task bodies can be
    megabytes long; sorting compares them with memcmp and stops at the first difference).
    """
    ranks = [0] * len(keys)
    rank = -1
    previous: Any = None
    for i in sorted(range(len(keys)), key=keys.__getitem__):
        key = keys[i]
        if rank < 0 or key != previous:
            rank += 1
            previous = key
        ranks[i] = rank
    return ranks, rank + 1


Edges = list[list[tuple[int, int]]]
# Class labels are integers spaced this many bits apart, so that a class splitting into parts
# can give each part a label between its own and the next class's without renumbering the rest.
_LABEL_GAP_BITS = 64


def _refine(seeds: list[Any], edges: Callable[[], tuple[Edges, Edges]]) -> list[int]:
    """Weisfeiler-Lehman colour refinement: ranks that depend only on content and graph shape.

    The ranks are exactly those of the textbook rounds (`_refine_rounds`, kept for the tests):
    each round, a task's next colour is the dense rank of (its colour, sorted (edge kind, colour)
    of its out-edges, the same of its in-edges), until no colour splits. Done round by round
    over every task, a chain of n look-alike tasks takes n/2 rounds of n: quadratic (6,400
    identical chained tasks took a minute). So only what can change is recomputed:

    - A round sorts each colour class's members by their signature, and any order-preserving
      relabelling of colours gives the same order; so classes carry spaced integer labels in
      rank order (a split class's parts get labels between its own and its successor's), and
      ranks are read off the class order at the end.
    - A task's signature can change only when a neighbour's class split in the last round; the
      other members of its class keep signatures equal to each other, so one of them stands for
      all. And only neighbours of the parts other than the largest need a look (Hopcroft's
      argument: the largest part's neighbours see the same counts under a new name), so each
      task is looked at O(log n) times over all rounds.
    """
    ranks, distinct = _dense_ranks(seeds)
    n = len(seeds)
    if distinct == n:
        return ranks
    out_edges, in_edges = edges()
    gap = 1 << _LABEL_GAP_BITS
    cls = ranks  # each task's class id (ids are never reused; order lives in nxt/prv)
    members: list[set[int]] = [set() for _ in range(distinct)]
    for i, c in enumerate(cls):
        members[c].add(i)
    label = [c * gap for c in range(distinct)]
    nxt = [*range(1, distinct), -1]
    prv = list(range(-1, distinct - 1))
    head = 0

    def signature(i: int) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]:
        return (
            tuple(sorted((k, label[cls[j]]) for k, j in out_edges[i])),
            tuple(sorted((k, label[cls[j]]) for k, j in in_edges[i])),
        )

    def relabel() -> None:
        c, pos = head, 0
        while c != -1:
            label[c] = pos * gap
            c, pos = nxt[c], pos + 1

    dirty: set[int] = set(range(n))
    for _ in range(n):
        by_class: dict[int, list[int]] = {}
        for i in dirty:
            if len(members[cls[i]]) > 1:
                by_class.setdefault(cls[i], []).append(i)
        # Every signature of the round is read before any class is split (labels of this round).
        splits: list[tuple[int, list[tuple[Any, list[int] | None]]]] = []
        for c, looked in by_class.items():
            groups: dict[Any, list[int]] = {}
            for i in looked:
                groups.setdefault(signature(i), []).append(i)
            rest_sig: Any = None
            if len(looked) < len(members[c]):
                seen = set(looked)
                stand_in = next(i for i in members[c] if i not in seen)
                rest_sig = signature(stand_in)
            parts = len(groups) + (rest_sig is not None and rest_sig not in groups)
            if parts < 2:
                continue
            ordered: list[tuple[Any, list[int] | None]] = []
            for sig in sorted(groups.keys() | ({rest_sig} if rest_sig is not None else set())):
                # None: the members nobody looked at (and those that joined their signature).
                ordered.append((sig, None if sig == rest_sig else groups[sig]))
            splits.append((c, ordered))
        if not splits:
            break
        dirty = set()
        for c, ordered in splits:
            after = nxt[c]
            top = label[c] + gap if after == -1 else label[after]
            step = (top - label[c]) // len(ordered)
            if step == 0:
                relabel()
                after = nxt[c]
                top = label[c] + gap
                step = gap // len(ordered)
            base = label[c]
            keeper = next((k for k, (_, g) in enumerate(ordered) if g is None), None)
            if keeper is None:  # everyone was looked at: the largest part keeps the class
                keeper = max(range(len(ordered)), key=lambda k: len(ordered[k][1] or ()))
            ids: list[int] = []
            sizes: list[int] = []
            for k, (_, group) in enumerate(ordered):
                if k == keeper:
                    ids.append(c)
                    continue
                new = len(members)
                assert group is not None
                members.append(set(group))
                members[c].difference_update(group)
                for i in group:
                    cls[i] = new
                label.append(0)
                nxt.append(-1)
                prv.append(-1)
                ids.append(new)
            for k, cid in enumerate(ids):
                label[cid] = base + k * step
                sizes.append(len(members[cid]))
            before = prv[c]
            for a, b in zip([before, *ids], [*ids, after], strict=True):
                if a == -1:
                    head = b
                else:
                    nxt[a] = b
                if b != -1:
                    prv[b] = a
            largest = max(range(len(ids)), key=sizes.__getitem__)
            for k, cid in enumerate(ids):
                if k != largest:
                    for i in members[cid]:
                        dirty.update(j for _, j in out_edges[i])
                        dirty.update(j for _, j in in_edges[i])
    pos_of: dict[int, int] = {}
    c, pos = head, 0
    while c != -1:
        pos_of[c] = pos
        c, pos = nxt[c], pos + 1
    return [pos_of[cls[i]] for i in range(n)]


def _refine_rounds(seeds: list[Any], edges: Callable[[], tuple[Edges, Edges]]) -> list[int]:
    """The textbook rounds `_refine` must agree with (quadratic on long look-alike chains)."""
    ranks, distinct = _dense_ranks(seeds)
    if distinct == len(seeds):
        return ranks
    out_edges, in_edges = edges()
    for _ in range(len(seeds)):
        sigs = [
            (
                ranks[i],
                tuple(sorted((k, ranks[j]) for k, j in out_edges[i])),
                tuple(sorted((k, ranks[j]) for k, j in in_edges[i])),
            )
            for i in range(len(seeds))
        ]
        ranks2, distinct2 = _dense_ranks(sigs)
        if distinct2 == distinct:
            break
        ranks = ranks2
        distinct = distinct2
    return ranks


_TASK_HEAD = b'{"key":%s,"parent":%s,"task":'
_LINK_ENTRY = b'{"from":%s,"link":%s,"to":%s}'
# Rank numbers as the payload writes them, and b"null" last, so that index -1 (no parent, entry
# linkage) reads "null". A constant table; documents with more tasks build their own.
_RANK_TEXT = [*(b"%d" % r for r in range(1024)), b"null"]
# Task keys that need no dropping besides the ids: the fast path below.
_PLAIN_TASK_KEYS = _TASK_KEEP | _VALIDATED_TASK_KEYS


def _no_label(index: int) -> bytes:
    return b""


def _canon(data: Mapping[str, Any], *, block: bool = True, camel: bool = True) -> _Canon:
    tasks: list[Mapping[str, Any]] = data["tasks"]
    linkages: list[Mapping[str, Any]] = data["linkages"]
    pos = {t["id"]: i for i, t in enumerate(tasks)}
    n = len(tasks)
    # Serialised dropped values that stay in the payload: checked for depth and huge integers.
    aside: list[bytes] = []
    raw_bodies: list[bytes] = []  # each task's id-free body, serialised inside `[[`...`]]`
    parents: list[int] = []  # position of each task's parent, -1 for none
    # Per task (by position) that has any: its (start, end, task position) file references.
    refs: dict[int, list[tuple[int, int, int]]] = {}
    for task in tasks:
        if _PLAIN_TASK_KEYS.issuperset(task):
            # Only the ids to drop: validated int64 integers or null, never aside material.
            body = dict(task)
            del body["id"]
            body.pop("task_id", None)
        else:
            body = {k: v for k, v in task.items() if k in _TASK_KEEP}
            kept_aside = [
                v for k, v in task.items() if k not in _TASK_KEEP and isinstance(v, _ASIDE_TYPES)
            ]
            if kept_aside:
                aside.append(_dumps([[kept_aside]]))
        if task.get("action_type") == MERGE:
            params = body.get("parameters")
            if isinstance(params, dict) and not MERGE_PARAMS.isdisjoint(params):
                body["parameters"] = {k: v for k, v in params.items() if k not in MERGE_PARAMS}
                removed = [
                    v
                    for k, v in params.items()
                    if k in MERGE_PARAMS and isinstance(v, _ASIDE_TYPES)
                ]
                if removed:
                    aside.append(_dumps([[[removed]]]))
        # Serialised wrapped as deep as the task sits in the document, so orjson's depth limit
        # fires as it would for the whole document. The wrapping `[[`...`]]` stays on: slicing
        # it off would copy the body (megabytes, for big e-mail templates), and wrapped bodies
        # sort exactly as bare ones (no JSON object is a proper prefix of another).
        serialised = _dumps([[body]])
        raw_bodies.append(serialised)
        if FILE_REF_BYTES.search(serialised) is not None:  # rare: one cheap search decides
            found = [m for m in FILE_REF_BYTES.finditer(serialised) if int(m.group(1)) in pos]
            if found:
                refs[len(parents)] = [(m.start(), m.end(), pos[int(m.group(1))]) for m in found]
        parent = task.get("task_id")
        parents.append(-1 if parent is None else pos[parent])

    # Plain linkages (the four standard keys) differ only in type; serialise each type once.
    plain_links: dict[str, bytes] = {}
    link_bodies: list[bytes] = []
    sources: list[int] = []  # position of each linkage's source task, -1 for an entry linkage
    targets: list[int] = []
    for lk in linkages:
        ltype = lk.get("linkage_type")
        if type(ltype) is str and len(lk) == 4 and _PLAIN_LINK_KEYS.issuperset(lk):
            lb = plain_links.get(ltype)
            if lb is None:
                lb = plain_links[ltype] = _link_body(lk, aside)
        else:
            lb = _link_body(lk, aside)
        link_bodies.append(lb)
        src_id = lk.get("source_task_id")
        sources.append(-1 if src_id is None else pos[src_id])
        targets.append(pos[lk["target_task_id"]])

    # Content alone: with file references blanked, the seeds of the refinement below. When these
    # are all distinct (the usual case) they order the tasks on their own, and the ranks are just
    # that order (the entry linkages, the second part of a seed, never get to break a tie).
    blanked = raw_bodies
    if refs:
        blanked = [
            _splice(b, refs[i], _no_label) if i in refs else b for i, b in enumerate(blanked)
        ]
    order = sorted(range(n), key=blanked.__getitem__)
    in_order = [blanked[i] for i in order]
    by_rank: list[int] | None = None
    if all(map(operator.lt, in_order, in_order[1:])):
        by_rank = order
        ranks = [0] * n
        for r, i in enumerate(order):
            ranks[i] = r
    else:
        entry: dict[int, list[bytes]] = {}
        for src, tgt, lb in zip(sources, targets, link_bodies, strict=True):
            if src < 0:
                entry.setdefault(tgt, []).append(lb)
        seeds = [(blanked[i], tuple(sorted(entry[i])) if i in entry else ()) for i in range(n)]

        def edges() -> tuple[list[list[tuple[int, int]]], list[list[tuple[int, int]]]]:
            # Edge kinds: 0 parent, 1 file ref, 2+ one per distinct linkage body (type, unknown
            # keys).
            kinds = {b: r + 2 for r, b in enumerate(sorted(set(link_bodies)))}
            out_edges: list[list[tuple[int, int]]] = [[] for _ in range(n)]
            in_edges: list[list[tuple[int, int]]] = [[] for _ in range(n)]
            for src, tgt, lb in zip(sources, targets, link_bodies, strict=True):
                if src >= 0:
                    out_edges[src].append((kinds[lb], tgt))
                    in_edges[tgt].append((kinds[lb], src))
            for i in range(n):
                if parents[i] >= 0:
                    out_edges[i].append((0, parents[i]))
                    in_edges[parents[i]].append((0, i))
                for _, _, target in refs.get(i, ()):
                    out_edges[i].append((1, target))
                    in_edges[target].append((1, i))
            return out_edges, in_edges

        ranks = _refine(seeds, edges)
        # Distinct ranks after refinement are exactly 0..n-1: placing each task at its rank is
        # the (rank, parent rank, body) sort of the entries below.
        if len(set(ranks)) == n:
            by_rank = sorted(range(n), key=ranks.__getitem__)

    rank_text = _RANK_TEXT if n < len(_RANK_TEXT) else [*(b"%d" % r for r in range(n)), b"null"]
    # Task positions to ranks; position -1 (no parent, or an entry linkage) maps to -1.
    rank_of = [*ranks, -1]

    def label(i: int) -> bytes:
        return rank_text[ranks[i]]

    bodies = raw_bodies
    if refs:
        bodies = [_splice(b, refs[i], label) if i in refs else b for i, b in enumerate(bodies)]
    # The task entries in (rank, parent rank, body) order: with distinct ranks that is by_rank.
    # (With ties, equal entries are identical, so the position in the sort key changes nothing.)
    entry_order = by_rank
    if entry_order is None:
        keyed = sorted((ranks[i], rank_of[parents[i]], bodies[i], i) for i in range(n))
        entry_order = [i for _, _, _, i in keyed]
    # As pieces of one final join: each body is copied once, into the payload, as the bytes
    # between its wrapping.
    task_pieces: list[bytes | memoryview] = []
    for i in entry_order:
        task_pieces.append(_TASK_HEAD % (rank_text[ranks[i]], rank_text[rank_of[parents[i]]]))
        task_pieces.append(memoryview(bodies[i])[2:-2])
        task_pieces.append(b"},")
    if task_pieces:
        task_pieces[-1] = b"}"
    link_entries = sorted(
        zip(
            [rank_of[src] for src in sources],
            [ranks[tgt] for tgt in targets],
            link_bodies,
            strict=True,
        )
    )
    # Import keeps no top-level key but these three and `workflow_definition` (§3.5): "extra"
    # holds what of that block says more than the workflow, and is empty without such a block,
    # so older hashes stay valid.
    extra_bytes = b"{}"
    if len(data) != 3:
        kept = definition_block(data) if block else {}
        if kept:
            extra_bytes = _dumps({WORKFLOW_DEFINITION: kept})
        top_aside = [v for k, v in data.items() if k not in _TOP_KEYS]
        if top_aside:
            aside.append(_dumps(top_aside))
    workflow_bytes = _workflow_body(data["workflow"], aside, camel)
    # The bytes orjson.dumps(canonical form, OPT_SORT_KEYS) would give, assembled directly from the
    # already-serialised parts (keys are written in sorted order).
    link_part = b",".join(
        [_LINK_ENTRY % (rank_text[s], b, rank_text[t]) for s, t, b in link_entries]
    )
    payload = b"".join(
        [
            b'{"extra":%s,"linkages":[%s],"tasks":[' % (extra_bytes, link_part),
            *task_pieces,
            b'],"workflow":%s}' % workflow_bytes,
        ]
    )
    # orjson reads integer literals beyond 64 bits as floats; they re-serialise with "e+NN".
    # The payload holds every part but the asides; "+" is rare, so memchr decides most documents.
    maybe_huge = any(
        b"+" in part and _HUGE_FLOAT.search(part) is not None for part in (payload, *aside)
    )
    return _Canon(
        ranks=ranks,
        bodies=bodies,
        payload=payload,
        ref_positions=refs.keys(),
        maybe_huge=maybe_huge,
        by_rank=by_rank,
    )


def definition_block(data: Mapping[str, Any]) -> dict[str, Any]:
    """What of a document's `workflow_definition` block counts in its identity: the kept keys
    (§3.5 [Z]) except empty values (null, "", [], {}) and a name or description equal to the
    workflow's own; {} without a block."""
    block = data.get(WORKFLOW_DEFINITION)
    if not isinstance(block, Mapping):
        return {}
    workflow = data.get("workflow")
    workflow = workflow if isinstance(workflow, Mapping) else {}
    defaults = {"name": workflow.get("name"), "description": workflow.get("description") or ""}
    return {
        k: v
        for k, v in block.items()
        if k in WORKFLOW_DEFINITION_KEYS
        and v not in (None, "", [], {})
        and not (k in defaults and v == defaults[k])
    }


def unknown_keys(data: Mapping[str, Any]) -> list[str]:
    """The keys of a document that import drops by §3.6 [Z] (and so the canonical form leaves
    out), as `workflow.<key>`, `tasks[].<key>`, `linkages[].<key>` or a top-level key; sorted,
    each once. A tenant that keeps unknown keys (doctor's `keeps_unknown_keys`) keeps these too,
    but migrator does not compare them: a change in only these is not seen as a change."""
    found: set[str] = set()
    known = {WORKFLOW_DEFINITION, *_TOP_KEYS}
    found.update(k for k in data if k not in known)
    workflow = data.get("workflow")
    if isinstance(workflow, Mapping):
        camel = {c for c, _ in CAMEL_TRIGGERS}
        found.update(f"workflow.{k}" for k in workflow if k not in WORKFLOW_KEYS and k not in camel)
    for part, keys in (("tasks", TASK_KEYS), ("linkages", LINKAGE_KEYS)):
        records = data.get(part)
        if isinstance(records, list):
            for r in records:
                if isinstance(r, Mapping):
                    found.update(f"{part}[].{k}" for k in r if k not in keys)
    return sorted(found)


def canonical_form(data: Mapping[str, Any]) -> Any:
    """The id-free, order-free comparison form of a validated document (plain JSON values)."""
    return orjson.loads(_canon(data).payload)


def canonical_hash(data: Mapping[str, Any], *, block: bool = True, camel: bool = True) -> str:
    """Hex sha256 of the canonical form: equal for documents that differ only in ids and order.
    `block=False`: the hash as an export without `workflow_definition` can show the document
    (an old-shape tenant, issue 23): its block left out. `camel=False`: camelCase trigger keys
    dropped as unknown, as releases before issue 23 did (core/legacy_identity only)."""
    return hashlib.sha256(_canon(data, block=block, camel=camel).payload).hexdigest()


def canonical_task_order(data: Mapping[str, Any]) -> list[int]:
    """Task ids of a validated document in a deterministic, content-based order (for renumbering)."""
    return _order(_canon(data), data["tasks"])


def _order(canon: _Canon, tasks: list[Mapping[str, Any]]) -> list[int]:
    if canon.by_rank is not None:
        # Distinct ranks decide the sort below on their own.
        return [tasks[i]["id"] for i in canon.by_rank]
    # Tasks with equal rank and body are interchangeable; the original id only breaks the tie.
    keyed = sorted((canon.ranks[i], canon.bodies[i], t["id"]) for i, t in enumerate(tasks))
    return [tid for _, _, tid in keyed]
