"""Hypothesis strategies for export documents: valid ones (random DAGs, Iterate file refs, Case
branches, Execute calls) and mutations of them, valid or not, as data or as raw bytes."""

from __future__ import annotations

import string
from typing import Any

import orjson
from hypothesis import strategies as st

from migrator.core.journal_records import Record

# Free text never contains "_", so it cannot form an accidental `Name__<id>` file reference;
# file references are placed on purpose below. CRLF, quotes, backslashes and unicode are in.
_ALPHABET = st.sampled_from(
    [
        *(string.ascii_letters + string.digits + " .,:;{}|%'\"\\/-+\r\n\t"),
        "é",
        "ß",
        "中",
        "😀",
        "\u2028",
    ]
)
text = st.text(_ALPHABET, max_size=20)
liquid = st.builds(
    lambda a, b: f"{a}{{{{ Data.{b or 'X'} }}}}", text, st.text(string.ascii_letters, max_size=8)
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
    liquid,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)),
    max_leaves=8,
)
ids = st.integers(min_value=1, max_value=2**63 - 1)
LINK_TYPES = [
    "Success",
    "Failure",
    "True",
    "False",
    "For Each",
    "Complete",
    "Approve",
    "Case_Else",
    "next",
]
OBJECTS = ["Subscription", "Invoice", "InvoiceItem", "Account", "LinkRun", "S3"]


@st.composite
def documents(draw: st.DrawFn, max_tasks: int = 8) -> dict[str, Any]:
    """A valid export document with a random DAG of tasks and every kind of id reference."""
    n = draw(st.integers(min_value=1, max_value=max_tasks))
    task_ids = draw(
        st.lists(st.one_of(st.integers(1, 60), ids), min_size=n, max_size=n, unique=True)
    )
    workflow_id = draw(st.one_of(st.integers(1, 500), ids))
    tasks: list[dict[str, Any]] = []
    linkages: list[dict[str, Any]] = []
    entries = draw(st.integers(min_value=1, max_value=min(2, n)))
    for i, tid in enumerate(task_ids):
        params: dict[str, Any] = draw(st.dictionaries(text, json_values, max_size=3))
        task: dict[str, Any] = {
            "id": tid,
            "name": draw(text),
            "parameters": params,
            "task_id": None,
        }
        kind = draw(
            st.sampled_from(
                [
                    "Export",
                    "Iterate",
                    "Logic::Case",
                    "Email",
                    "Callout",
                    "Execute::WorkflowTask",
                    "Upload::S3",
                    "Logic::Merge",
                ]
            )
        )
        task["action_type"] = kind
        if i < entries:
            etype = draw(st.sampled_from(["Start", "Start", "InvoicePosted"]))
            linkages.append(
                {
                    "source_workflow_id": workflow_id,
                    "source_task_id": None,
                    "target_task_id": tid,
                    "linkage_type": etype,
                }
            )
        else:
            parents = draw(
                st.lists(st.integers(0, i - 1), min_size=1, max_size=min(3, i), unique=True)
            )
            task["task_id"] = task_ids[parents[0]]
            for p in parents:
                linkages.append(
                    {
                        "source_workflow_id": None,
                        "source_task_id": task_ids[p],
                        "target_task_id": tid,
                        "linkage_type": draw(st.sampled_from(LINK_TYPES)),
                    }
                )
            producer = task_ids[draw(st.sampled_from(parents))]
            name = draw(st.sampled_from(OBJECTS))
            if kind == "Iterate":
                task["object"] = f"{name}__{producer}.csv.zip"
            elif kind == "Upload::S3":
                params["files"] = {f"S3__{producer}__report.csv": {"upload": "true"}}
            elif kind == "Email":
                params["body"] = f"{{{{ Data.Files['{name}__{producer}.csv'] }}}}"
        if kind == "Logic::Case":
            params["case_condition"] = {"Case_1": draw(text), "Case_2": draw(text)}
        elif kind == "Execute::WorkflowTask":
            params["workflow_id"] = draw(
                st.one_of(st.integers(1, 10**6).map(str), st.just("{{ Data.Callee }}"))
            )
            params["workflow_name"] = draw(text)
        elif kind == "Callout":
            params["url"] = draw(
                st.sampled_from(["https://erp.example.com/x", "{{ GlobalConstants.URL }}/y"])
            )
            params["authorization"] = {
                "type": draw(st.sampled_from(["none", "saved_provider:1b2c-3d"]))
            }
        elif kind == "Logic::Merge":
            params["merge_paths"] = [[tid]]
            params["merge_start"] = "workflow"
        if draw(st.booleans()):
            task["css"] = {"top": draw(text), "left": "35px"}
        tasks.append(task)
    tasks = draw(st.permutations(tasks))
    linkages = draw(st.permutations(linkages))
    workflow: dict[str, Any] = {
        "id": workflow_id,
        "name": draw(text.filter(lambda s: s.strip() != "")),
        "parameters": {"fields": [], "entity_id": draw(st.one_of(st.none(), text))},
        "type": "Workflow::Setup",
    }
    if draw(st.booleans()):
        workflow["version"] = draw(st.sampled_from(["0.0.1", "1", "2.3", "0.0.10"]))
    workflow.update(
        draw(
            st.dictionaries(
                st.sampled_from(["priority", "delete_ttl", "ui_trigger", "interval"]),
                json_values,
                max_size=2,
            )
        )
    )
    return {"workflow": workflow, "tasks": tasks, "linkages": linkages}


@st.composite
def renumberings(draw: st.DrawFn, doc: dict[str, Any]) -> dict[int, int]:
    """A random bijection from the document's task ids to fresh int64 ids."""
    old = [t["id"] for t in doc["tasks"]]
    new = draw(
        st.lists(
            st.one_of(st.integers(1, 100), ids), min_size=len(old), max_size=len(old), unique=True
        )
    )
    return dict(zip(old, new, strict=True))


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*path, i))
    return out


@st.composite
def mutated_documents(draw: st.DrawFn) -> Any:
    """A valid document with one random structural change: a value replaced or a key removed."""
    doc = draw(documents(max_tasks=5))
    paths = [p for p in _paths(doc) if p]
    path = draw(st.sampled_from(paths))
    parent: Any = doc
    for key in path[:-1]:
        parent = parent[key]
    if isinstance(parent, dict) and draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(
            st.one_of(json_values, st.sampled_from([True, 1.5, "7", -1, 2**63, 2**64 - 1, [], {}]))
        )
    return doc


@st.composite
def mutated_bytes(draw: st.DrawFn) -> bytes:
    """Serialised documents damaged at the byte level: truncated, flipped, spliced or padded."""
    raw = orjson.dumps(
        draw(documents(max_tasks=4)), option=draw(st.sampled_from([0, orjson.OPT_INDENT_2]))
    )
    how = draw(st.sampled_from(["truncate", "flip", "insert", "bom", "nest", "bigint", "inside"]))
    if how == "inside":
        return draw(hostile_values_inside())
    if how == "truncate":
        return raw[: draw(st.integers(0, len(raw)))]
    if how == "flip":
        pos = draw(st.integers(0, len(raw) - 1))
        return raw[:pos] + bytes([draw(st.integers(0, 255))]) + raw[pos + 1 :]
    if how == "insert":
        pos = draw(st.integers(0, len(raw)))
        return raw[:pos] + draw(st.binary(min_size=1, max_size=8)) + raw[pos:]
    if how == "bom":
        return b"\xef\xbb\xbf" + raw
    if how == "nest":
        depth = draw(st.integers(200, 3000))
        return raw[:-1] + b', "deep": ' + b"[" * depth + b"]" * depth + b"}"
    return raw[:-1] + b', "big": ' + str(draw(st.integers(2**64, 2**80))).encode() + b"}"


@st.composite
def hostile_values_inside(draw: st.DrawFn) -> bytes:
    """A valid document with deep nesting or a >64-bit integer literal at a random place."""
    doc = draw(documents(max_tasks=4))
    paths = [
        p
        for p in _paths(doc)
        if p
        and p[-1] not in ("id", "task_id", "source_task_id", "target_task_id", "source_workflow_id")
    ]
    path = draw(st.sampled_from(paths))
    parent: Any = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = "@@HOSTILE@@"
    if draw(st.booleans()):
        depth = draw(st.integers(240, 262))
        token = b"[" * depth + b"]" * depth
    else:
        token = str(
            draw(st.one_of(st.integers(2**64, 2**70), st.integers(-(2**70), -(2**63) - 1)))
        ).encode()
    return orjson.dumps(doc).replace(b'"@@HOSTILE@@"', token)


# ---------------------------------------------------------------------------------------------
# Journals


tenants = st.sampled_from(["prod", "uat", "eu-1"])


items = st.sampled_from(["a", "b", "c", "d"])


texts = st.text(max_size=12)


scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | texts


@st.composite
def item_fields(draw: st.DrawFn, rtype: str) -> dict[str, Any]:
    fields: dict[str, Any] = {"tenant": draw(tenants), "item": draw(items)}
    if rtype == "intent":
        fields |= {
            "action": draw(st.sampled_from(["create", "new_version"])),
            "version": draw(st.sampled_from(["0.0.1", "1.0", "2"])),
            "idempotency_key": draw(texts),
            "target_definition_id": draw(st.none() | st.integers(1, 10**6)),
            "name": draw(texts),
        }
    elif rtype == "committed":
        fields |= {"target_definition_id": draw(st.integers(1, 99)), "target_version_id": 7}
    elif rtype == "verified":
        fields |= {"ok": draw(st.booleans()), "detail": draw(texts)}
    else:
        fields |= {"reason": draw(texts)}
    if draw(st.booleans()):
        fields["plan_hash"] = draw(scalars)
    return fields


@st.composite
def journals(draw: st.DrawFn) -> list[Record]:
    types = draw(
        st.lists(
            st.sampled_from(
                ["intent", "intent", "committed", "failed", "deferred", "skipped", "verified"]
            ),
            max_size=12,
        )
    )
    records = [Record(1, "run_started", 1.5, {"run_id": "r", "inputs_hash": "h"})]
    for rtype in types:
        records.append(
            Record(len(records) + 1, rtype, 2.0 + len(records), draw(item_fields(rtype)))
        )
    if draw(st.booleans()):
        records.append(Record(len(records) + 1, "run_finished", 99.0, {"interrupted": False}))
    return records
