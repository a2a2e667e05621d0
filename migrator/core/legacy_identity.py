"""The item keys earlier releases gave documents, so that their journals resume correctly.

A journal names each document by its content hash (core/canonical.py). When a release changes
what that hash covers, a journal written before names the same documents by other keys; read
with today's keys alone, its unanswered imports look like documents gone from the sources. Each
earlier identity is kept here, frozen, as a function of the validated document: a resume computes
them for the documents whose names the journal's unmatched items carry, and carries each matched
item over to today's key (a `rekeyed` record; docs/journal.md, "Journals from earlier releases").

Rule: a release that changes `canonical_hash` adds the identity it replaces to LEGACY_IDENTITIES
(a frozen copy, or the live code on what it provably hashes alike), newest first, with a test that it gives the old
release's keys (tests/test_legacy_journal.py holds the first one to tests/canonical_reference.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from migrator.core.canonical import (
    FILE_REF_BYTES,
    MERGE,
    MERGE_PARAMS,
    WORKFLOW_DEFINITION,
    _refine,
    canonical_hash,
)


@dataclass(frozen=True, slots=True)
class LegacyIdentity:
    """An item key an earlier release computed: its name, which releases used it, the function."""

    name: str
    releases: str
    key: Callable[[Mapping[str, Any]], str]


# ---------------------------------------------------------------------------------------------
# "every-key": up to 3b5c74c, keys that import drops (`ui_trigger`, a task's `notes`, a
# top-level `exported_by`) counted; only the server-owned fields below were left out.

_V1_TOP_DROP = frozenset({"workflow_definition", "$description"})
_V1_TOP_KEYS = frozenset({"workflow", "tasks", "linkages"}) | _V1_TOP_DROP
_V1_WORKFLOW_DROP = frozenset(
    {
        "id", "version", "status", "type", "created_at", "updated_at", "createdAt", "updatedAt",
        "started_at", "finished_at", "task_summary", "external_track_id", "merge_task_ids",
    }
)  # fmt: skip
_V1_TASK_DROP = frozenset(
    {
        "id", "task_id", "workflow_id", "status", "error", "error_class", "error_details",
        "process_id", "iterate_row_reference", "object_batched_reference", "notes", "data_size",
        "restart_at", "created_at", "updated_at", "createdAt", "updatedAt", "start_time",
        "end_time", "original_task_id", "original_workflow_id",
    }
)  # fmt: skip
_V1_LINK_DROP = frozenset({"source_workflow_id", "source_task_id", "target_task_id"})
_V1_PLAIN_LINK_KEYS = _V1_LINK_DROP | {"linkage_type"}


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _v1_task_body(task: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in task.items() if k not in _V1_TASK_DROP}
    params = body.get("parameters")
    if (
        task.get("action_type") == MERGE
        and isinstance(params, dict)
        and not MERGE_PARAMS.isdisjoint(params)
    ):
        body["parameters"] = {k: v for k, v in params.items() if k not in MERGE_PARAMS}
    return _dumps(body)


def _v1_link_body(link: Mapping[str, Any]) -> bytes:
    if len(link) == 4 and _V1_PLAIN_LINK_KEYS.issuperset(link):
        return b'{"linkage_type":' + orjson.dumps(link["linkage_type"]) + b"}"
    return _dumps({k: v for k, v in link.items() if k not in _V1_LINK_DROP})


def _v1_splice(
    body: bytes, refs: list[tuple[int, int, int]], label: Callable[[int], bytes]
) -> bytes:
    parts, pos = [], 0
    for start, end, index in refs:
        parts += [body[pos:start], b"__#" + label(index)]
        pos = end
    parts.append(body[pos:])
    return b"".join(parts)


def every_key_hash(data: Mapping[str, Any]) -> str:
    """The content hash of releases up to 3b5c74c (tests/canonical_reference.py's)."""
    tasks: list[Mapping[str, Any]] = data["tasks"]
    linkages: list[Mapping[str, Any]] = data["linkages"]
    pos = {t["id"]: i for i, t in enumerate(tasks)}
    n = len(tasks)
    raw = [_v1_task_body(t) for t in tasks]
    refs: list[list[tuple[int, int, int]]] = []
    for body in raw:
        found = []
        if b"__" in body:
            for m in FILE_REF_BYTES.finditer(body):
                target = pos.get(int(m.group(1)))
                if target is not None:
                    found.append((m.start(), m.end(), target))
        refs.append(found)
    links = [_v1_link_body(lk) for lk in linkages]
    ends = [
        (
            -1 if lk.get("source_task_id") is None else pos[lk["source_task_id"]],
            pos[lk["target_task_id"]],
        )
        for lk in linkages
    ]
    parents = [-1 if t.get("task_id") is None else pos[t["task_id"]] for t in tasks]
    entry: dict[int, list[bytes]] = {}
    for (src, tgt), lb in zip(ends, links, strict=True):
        if src < 0:
            entry.setdefault(tgt, []).append(lb)
    seeds = [
        (
            _v1_splice(raw[i], refs[i], lambda _: b"") if refs[i] else raw[i],
            tuple(sorted(entry[i])) if i in entry else (),
        )
        for i in range(n)
    ]

    def edges() -> tuple[list[list[tuple[int, int]]], list[list[tuple[int, int]]]]:
        kinds = {b: r + 2 for r, b in enumerate(sorted(set(links)))}
        out_edges: list[list[tuple[int, int]]] = [[] for _ in range(n)]
        in_edges: list[list[tuple[int, int]]] = [[] for _ in range(n)]
        for (src, tgt), lb in zip(ends, links, strict=True):
            if src >= 0:
                out_edges[src].append((kinds[lb], tgt))
                in_edges[tgt].append((kinds[lb], src))
        for i in range(n):
            if parents[i] >= 0:
                out_edges[i].append((0, parents[i]))
                in_edges[parents[i]].append((0, i))
            for _, _, target in refs[i]:
                out_edges[i].append((1, target))
                in_edges[target].append((1, i))
        return out_edges, in_edges

    # The live refinement gives exactly the textbook rounds' ranks (tests/test_canonical_compat).
    ranks = _refine(seeds, edges)
    bodies = [_v1_splice(raw[i], refs[i], lambda j: b"%d" % ranks[j]) for i in range(n)]
    task_part = b",".join(
        b'{"key":%d,"parent":%s,"task":%s}' % (r, b"null" if p < 0 else b"%d" % p, b)
        for r, p, b in sorted(
            (ranks[i], -1 if parents[i] < 0 else ranks[parents[i]], bodies[i]) for i in range(n)
        )
    )
    link_part = b",".join(
        b'{"from":%s,"link":%s,"to":%d}' % (b"null" if s < 0 else b"%d" % s, b, t)
        for s, t, b in sorted(
            (-1 if src < 0 else ranks[src], ranks[tgt], lb)
            for (src, tgt), lb in zip(ends, links, strict=True)
        )
    )
    workflow = {k: v for k, v in data["workflow"].items() if k not in _V1_WORKFLOW_DROP}
    params = workflow.get("parameters")
    if isinstance(params, dict) and "merge_task_ids" in params:
        workflow["parameters"] = {k: v for k, v in params.items() if k != "merge_task_ids"}
    extra = {k: v for k, v in data.items() if k not in _V1_TOP_KEYS}
    payload = b'{"extra":%s,"linkages":[%s],"tasks":[%s],"workflow":%s}' % (
        _dumps(extra),
        link_part,
        task_part,
        _dumps(workflow),
    )
    return hashlib.sha256(payload).hexdigest()


# ---------------------------------------------------------------------------------------------
# "kept-keys": from 8196df9 until issue 23, what import keeps counted, but never the export's
# `workflow_definition` block. Without that block today's hash is byte-for-byte that release's
# (tests/test_canonical_compat.py holds the live code to the frozen reference on such
# documents), so this one may call the live code with the block taken out.


def kept_keys_hash(data: Mapping[str, Any]) -> str:
    """The content hash of releases from 8196df9 until `workflow_definition` counted."""
    return canonical_hash({k: v for k, v in data.items() if k != WORKFLOW_DEFINITION}, camel=False)


# ---------------------------------------------------------------------------------------------
# "snake-triggers": from issue 23 until camelCase trigger keys counted (issue 23, second part),
# a camelCase trigger (`calloutTrigger`) was dropped like any unknown key. The live code with
# `camel=False` is byte-for-byte that release (the mapping is the only change).


def snake_triggers_hash(data: Mapping[str, Any]) -> str:
    """The content hash of releases from issue 23 until camelCase triggers counted."""
    return canonical_hash(data, camel=False)


# Newest first. Each is computed only for documents a journal's unmatched items name.
LEGACY_IDENTITIES: tuple[LegacyIdentity, ...] = (
    LegacyIdentity(
        name="snake-triggers",
        releases="issue 23 until camelCase trigger keys counted (they were dropped)",
        key=snake_triggers_hash,
    ),
    LegacyIdentity(
        name="kept-keys",
        releases="8196df9 until issue 23 (the workflow_definition block did not count)",
        key=kept_keys_hash,
    ),
    LegacyIdentity(
        name="every-key",
        releases="up to 3b5c74c (keys that import drops counted)",
        key=every_key_hash,
    ),
)


def legacy_keys(data: Mapping[str, Any]) -> dict[str, str]:
    """Each earlier identity's key of a validated document → that identity's name."""
    return {identity.key(data): identity.name for identity in LEGACY_IDENTITIES}
