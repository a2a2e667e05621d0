"""The live document/remap code gives exactly what the frozen pre-speed-up copies give.

Canonical hashes are journal item keys and idempotency-key material in existing journals, so
`canonical_hash`, `canonical_form`, `canonical_task_order`, the validation errors and the
serialised `prepare_for_import` payload must never drift. tests/canonical_reference.py and
tests/remap_reference.py are verbatim copies of the code before it was optimised.

One deliberate change since the copies: keys that import drops (spec §3.6, the fake's kept-key
lists) no longer count, so the reference is applied to `kept_by_import(document)`. A document
without such keys is its own `kept_by_import`: its hash, order and payload are byte-identical.

Another (issue 23 #2): a `workflow_definition` block counts where it says more than the
workflow (a kept key, not empty, not the workflow's own name or description). The reference left
the block out; for such a document the expected form is the reference's with that block in its
"extra", and the expected hash that form's sha256. Without such a block nothing changes.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrator.core import canonical as new_canon
from migrator.core import document as new_doc
from migrator.core import remap as new_remap
from migrator.core.errors import InputError
from migrator.fake._document import (
    LINKAGE_KEYS,
    TASK_KEYS,
    WORKFLOW_DEFINITION_KEYS,
    WORKFLOW_KEYS,
)
from tests import canonical_reference as old_doc
from tests import remap_reference as old_remap
from tests.builders import small_export
from tests.conftest import SAMPLES, SHARED_CORPUS
from tests.strategies import (
    documents,
    hostile_values_inside,
    json_values,
    mutated_bytes,
    mutated_documents,
    renumberings,
    text,
)

SRC = "in/wf.json"
SLOW = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))


# Top-level keys the reference already left out of the hash; stripping them would change nothing
# but the document's definition id (read from `workflow_definition`).
_REFERENCE_TOP = {"workflow", "tasks", "linkages", "workflow_definition", "$description"}


def counted_block(data: Any) -> dict[str, Any]:
    """The test's own reading of what a `workflow_definition` block adds (the fake's key list)."""
    block = data.get("workflow_definition") if isinstance(data, dict) else None
    if not isinstance(block, dict):
        return {}
    wf = data.get("workflow") if isinstance(data.get("workflow"), dict) else {}
    own = {"name": wf.get("name"), "description": wf.get("description") or ""}
    out = {}
    for key, value in block.items():
        if key not in WORKFLOW_DEFINITION_KEYS or value in (None, "", [], {}):
            continue
        if key in own and value == own[key]:
            continue
        out[key] = value
    return out


def expected_form(kept: Any, data: Any) -> Any:
    """The reference's canonical form of `kept`, with the block `data` adds in its extra."""
    form = old_doc.canonical_form(kept)
    block = counted_block(data)
    if block:
        form["extra"] = {"workflow_definition": block}
    return form


def expected_hash(kept: Any, data: Any) -> str:
    """The reference's hash of `kept`, or, with a counted block, the sha256 of expected_form."""
    if not counted_block(data):
        return old_doc.canonical_hash(kept)
    return hashlib.sha256(
        orjson.dumps(expected_form(kept, data), option=orjson.OPT_SORT_KEYS)
    ).hexdigest()


def _only(record: Any, keys: frozenset[str] | set[str]) -> Any:
    if not isinstance(record, dict):
        return record
    return {k: v for k, v in record.items() if k in keys}


def kept_by_import(data: Any) -> Any:
    """`data` as import keeps it, by the fake's own lists (written apart from the client's)."""
    if not isinstance(data, dict):
        return data
    out = _only(data, _REFERENCE_TOP)
    if "workflow" in out:
        out["workflow"] = _only(out["workflow"], WORKFLOW_KEYS)
    for part, keys in (("tasks", TASK_KEYS), ("linkages", LINKAGE_KEYS)):
        if isinstance(out.get(part), list):
            out[part] = [_only(r, keys) for r in out[part]]
    return out


def _refused_blank_linkage_type(data: Any, old: tuple[str, Any], new: tuple[str, Any]) -> bool:
    """The second deliberate change: a blank linkage_type, which the old code accepted, is refused."""
    links = data.get("linkages") if isinstance(data, dict) else None
    blank = isinstance(links, list) and any(
        isinstance(lk, dict)
        and isinstance(lk.get("linkage_type"), str)
        and not lk["linkage_type"].strip()
        for lk in links
    )
    return (
        blank
        and old[0] == "ok"
        and new[0] == "InputError"
        and str(new[1]).endswith("linkage_type: must not be empty")
    )


def _outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return ("ok", fn())
    except InputError as exc:
        return ("InputError", str(exc))
    except Exception as exc:  # the same crash (type and text) counts as the same behaviour
        return (type(exc).__name__, str(exc))


def _summary(doc: Any, data: Any = None) -> dict[str, Any]:
    """The parts to compare; with `data` (the old side's full document) the hash expected of it."""
    content_hash = doc.content_hash
    if data is not None and counted_block(data):
        content_hash = expected_hash(kept_by_import(data), data)
    return {
        "source": doc.source,
        "name": doc.name,
        "version": doc.version,
        "workflow_id": doc.workflow_id,
        "content_hash": content_hash,
        "calls": [(c.task_id, c.workflow_id, c.workflow_name, c.path) for c in doc.calls],
        "definition_id": doc.definition_id,
        "task_order": doc.task_order,
        "ref_tasks": doc.ref_tasks,
        "data": orjson.dumps(kept_by_import(doc.data)),
    }


def _payloads(doc: Any, prepare: Callable[..., Any], data: dict[str, Any]) -> list[bytes]:
    """Serialised payloads for a few call-target/substitution combinations."""
    calls = [t["id"] for t in data["tasks"] if t.get("action_type") == "Execute::WorkflowTask"]
    strings = sorted({v for v in _strings(kept_by_import(data)) if v})[:3]
    variants: list[dict[str, Any]] = [
        {},
        {"call_targets": {tid: 9000 + i for i, tid in enumerate(calls)}},
        {"substitutions": {s: f"<{i}>" for i, s in enumerate(strings)}},
        {"substitutions": {"e": "E", "": "x", "Data": "Datum"}, "call_targets": {-1: 5}},
    ]
    out = []
    for kwargs in variants:
        payload = prepare(doc, **kwargs)
        # Whatever else the payload carries, import drops; the hash is of what it keeps.
        out.append(orjson.dumps(kept_by_import(payload)))
        # The payload is hashed again at send time: that hash must agree as well.
        if prepare is old_remap.prepare_for_import:
            out.append(expected_hash(kept_by_import(payload), payload).encode())
        else:
            out.append(new_canon.canonical_hash(payload).encode())
    return out


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def assert_same_bytes(raw: bytes, *, max_bytes: int = 1 << 24) -> None:
    """parse_document, the canonical functions and prepare_for_import agree on `raw`."""
    old = _outcome(lambda: old_doc.parse_document(raw, SRC, max_bytes=max_bytes, definition_id=5))
    new = _outcome(lambda: new_doc.parse_document(raw, SRC, max_bytes=max_bytes, definition_id=5))
    if old[0] == "ok" and _refused_blank_linkage_type(
        orjson.loads(raw.removeprefix(b"\xef\xbb\xbf")), old, new
    ):
        return
    assert old[0] == new[0], (old, new)
    if old[0] != "ok":
        assert old == new
        return
    data = orjson.loads(raw.removeprefix(b"\xef\xbb\xbf"))
    if kept_by_import(data) != data:
        kept = orjson.dumps(kept_by_import(data))
        old = _outcome(
            lambda: old_doc.parse_document(kept, SRC, max_bytes=max_bytes, definition_id=5)
        )
        assert old[0] == "ok", old
    assert _summary(old[1], data) == _summary(new[1])
    _assert_same_document(data, old[1], new[1])


def assert_same_data(data: Any) -> None:
    """document_from_data and everything downstream agree on already-parsed `data`."""
    before = orjson.dumps(data)
    old = _outcome(lambda: old_doc.document_from_data(copy.deepcopy(data), SRC))
    new = _outcome(lambda: new_doc.document_from_data(data, SRC))
    assert orjson.dumps(data) == before, "document_from_data changed its input"
    if _refused_blank_linkage_type(data, old, new):
        return
    assert old[0] == new[0], (old, new)
    if old[0] != "ok":
        assert old == new
        return
    if kept_by_import(data) != data:
        old = _outcome(lambda: old_doc.document_from_data(kept_by_import(data), SRC))
        assert old[0] == "ok", old
    assert _summary(old[1], data) == _summary(new[1])
    _assert_same_document(data, old[1], new[1])


def _assert_same_document(data: dict[str, Any], old: Any, new: Any) -> None:
    kept = kept_by_import(data)
    assert expected_hash(kept, data) == new_canon.canonical_hash(data)
    assert expected_form(kept, data) == new_canon.canonical_form(data)
    assert old_doc.canonical_task_order(kept) == new_canon.canonical_task_order(data)
    assert old_doc.find_calls(data) == tuple(
        old_doc.WorkflowCall(c.task_id, c.workflow_id, c.workflow_name, c.path)
        for c in new_doc.find_calls(data)
    )
    before = orjson.dumps(data)
    assert _payloads(old, old_remap.prepare_for_import, kept) == _payloads(
        new, new_remap.prepare_for_import, data
    )
    # Documents built by hand carry no task_order: prepare_for_import derives it itself.
    bare_old = old_doc.ExportDocument(SRC, kept, old.name, old.version, old.workflow_id, "h")
    bare_new = new_doc.ExportDocument(SRC, data, new.name, new.version, new.workflow_id, "h")
    assert orjson.dumps(kept_by_import(old_remap.prepare_for_import(bare_old))) == orjson.dumps(
        kept_by_import(new_remap.prepare_for_import(bare_new))
    )
    assert orjson.dumps(data) == before, "prepare_for_import changed the document"


# ---------------------------------------------------------------- files on disk


def _files(top: Path) -> list[Path]:
    return sorted(p for p in top.rglob("*") if p.name.endswith((".json", ".json.gz")))


def _file_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    return gzip.decompress(raw) if path.name.endswith(".gz") else raw


@pytest.mark.parametrize("path", _files(SAMPLES), ids=lambda p: str(p.relative_to(SAMPLES)))
def test_samples_agree(path: Path) -> None:
    """Every sample (valid or deliberately broken) gives the same hash, order, payload or error."""
    assert_same_bytes(_file_bytes(path))


def test_real_corpus_agrees() -> None:
    """Every document of the real corpus (when present) gives the same results."""
    if not SHARED_CORPUS.is_dir():
        pytest.skip(
            f"shared corpus not present at {SHARED_CORPUS} (it lives outside the repository)"
        )
    for path in _files(SHARED_CORPUS):
        assert_same_bytes(_file_bytes(path))


def test_sample_hashes_via_read_document() -> None:
    """read_document (files and .json.gz) hashes every valid sample as the old code did."""
    from migrator.store.sources import SourceItem, read_document

    seen = 0
    for path in _files(SAMPLES):
        try:
            doc = read_document(SourceItem(str(path), None, None, None))
        except InputError:
            continue
        data = orjson.loads(_file_bytes(path))
        assert doc.content_hash == expected_hash(kept_by_import(data), data)
        seen += 1
    assert seen >= 20


def test_bench_corpus_agrees() -> None:
    """The bench's generated documents (small and 150-task large ones) give the same results."""
    from bench.corpus import generate

    for _, raw in generate(12, seed=3):
        assert_same_bytes(raw)
    for _, raw in generate(1, tasks=(150, 150), large=True, seed=4):
        assert_same_bytes(raw)


# ---------------------------------------------------------------- builder-made documents


def _variants() -> list[dict[str, Any]]:
    out = []
    base = small_export()
    out.append(base)
    d = small_export()
    d["tasks"].reverse()
    d["linkages"].reverse()
    out.append(d)
    # Server-managed fields of every kind, with containers and floats among the dropped values.
    d = small_export()
    d["workflow"].update(status="Active", task_summary={"a": [1, 2.5]}, merge_task_ids=[1.0e30])
    d["workflow"]["parameters"]["merge_task_ids"] = [[4]]
    d["workflow_definition"] = {"id": 3, "deep": [[{"x": 1e25}]]}
    d["$description"] = "x"
    d["extra_top"] = {"b": 1, "a": [2, 1]}
    for t in d["tasks"]:
        t.update(status="Done", error={"k": [1]}, notes=2.5, data_size=1e19, original_task_id=7)
    d["tasks"][2]["action_type"] = "Logic::Merge"
    d["tasks"][2]["parameters"].update(merge_paths=[[4, 3]], merge_start="x", merge_task_ids=[{}])
    d["linkages"][1]["extra"] = {"z": 1}
    out.append(d)
    # Fully symmetric tasks: the refinement must fall back on the graph, ties on the ids.
    d = small_export()
    d["tasks"] = [
        {"id": i, "name": "T", "action_type": "Email", "task_id": None, "parameters": {}}
        for i in (10, 11, 12, 13)
    ]
    d["linkages"] = [
        {"source_workflow_id": 7, "source_task_id": None, "target_task_id": 10,
         "linkage_type": "Start"},
        {"source_workflow_id": None, "source_task_id": 10, "target_task_id": 11,
         "linkage_type": "True"},
        {"source_workflow_id": None, "source_task_id": 10, "target_task_id": 12,
         "linkage_type": "True"},
        {"source_workflow_id": None, "source_task_id": 12, "target_task_id": 13,
         "linkage_type": "Success"},
    ]  # fmt: skip
    out.append(d)
    # File references in keys and values, to own tasks and to strangers, escaped strings.
    d = small_export()
    d["tasks"][2]["parameters"]["files"] = {
        "S3__3__x.csv": "Subscription__4.csv",
        "Other__999.csv": 'a"__4\\__3',
        "Foo__4": ["Bar__3.", "__4__", "x__04"],
    }
    out.append(d)
    # "original_" keys (nulled for import), one naming a task's file (renamed before nulling).
    d = small_export()
    d["workflow"]["original_workflow_id"] = 3
    d["tasks"][0].update(original_task_id=9, original_notes="x")
    d["tasks"][1]["original_Subscription__4.csv"] = "kept?"
    d["tasks"][2]["xoriginal_y"] = 1
    d["tasks"][2]["b\x00original_z"] = 1
    d["tasks"][2]["original_q\x00r"] = 1
    out.append(d)
    # Unicode, huge but representable numbers, floats with exponents.
    d = small_export()
    d["tasks"][0]["parameters"]["n"] = [2**63 - 1, -(2**63), 1.5e300, 1e-30, "é\u2028😀"]
    out.append(d)
    return out


@pytest.mark.parametrize("index", range(len(_variants())))
def test_builder_variants_agree(index: int) -> None:
    """Hand-made documents covering dropped fields, merges, symmetry and file refs agree."""
    data = _variants()[index]
    assert_same_data(data)
    assert_same_bytes(orjson.dumps(data))
    assert_same_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))


# ---------------------------------------------------------------- random documents


@st.composite
def symmetric_documents(draw: st.DrawFn) -> dict[str, Any]:
    """Documents whose tasks share content from a tiny pool, so refinement and ties matter, with
    dropped fields of every kind and random file references between tasks."""
    n = draw(st.integers(1, 9))
    tids = draw(st.lists(st.integers(1, 2**63 - 1), min_size=n, max_size=n, unique=True))
    wid = draw(st.integers(1, 50))
    tasks = []
    links = [
        {"source_workflow_id": wid, "source_task_id": None, "target_task_id": tids[0],
         "linkage_type": draw(st.sampled_from(["Start", "Go"]))}
    ]  # fmt: skip
    for i, tid in enumerate(tids):
        task: dict[str, Any] = {
            "id": tid,
            "name": draw(st.sampled_from(["A", "B"])),
            "action_type": draw(st.sampled_from(["Email", "Logic::Merge", "Iterate"])),
            "parameters": draw(st.sampled_from([{}, {"k": 1}, {"merge_paths": [[1]], "x": 2}])),
        }
        if i and draw(st.booleans()):
            task["task_id"] = tids[draw(st.integers(0, i - 1))]
        if n > 1 and draw(st.booleans()):
            other = tids[draw(st.integers(0, n - 1))]
            task["object"] = draw(st.sampled_from([f"F__{other}.csv", f"F__{other}", "F__77"]))
        dropped_or_nulled = [
            "status",
            "notes",
            "error",
            "workflow_id",
            "original_task_id",
            "original_x",
        ]
        for key in draw(st.lists(st.sampled_from(dropped_or_nulled))):
            task[key] = draw(json_values)
        tasks.append(task)
        if i:
            for _ in range(draw(st.integers(1, 2))):
                links.append(
                    {
                        "source_workflow_id": None,
                        "source_task_id": tids[draw(st.integers(0, i - 1))],
                        "target_task_id": tid,
                        "linkage_type": draw(st.sampled_from(["Success", "True"])),
                    }
                )
            if draw(st.booleans()):
                links.append(
                    {"source_workflow_id": wid, "source_task_id": None, "target_task_id": tid,
                     "linkage_type": "Start"}
                )  # fmt: skip
    if draw(st.booleans()):
        links[-1]["note"] = draw(json_values)
    workflow: dict[str, Any] = {"id": wid, "name": "W", "parameters": {}}
    for key in draw(
        st.lists(st.sampled_from(["status", "version", "merge_task_ids", "x", "original_id"]))
    ):
        workflow[key] = draw(json_values)
    doc: dict[str, Any] = {
        "workflow": workflow,
        "tasks": draw(st.permutations(tasks)),
        "linkages": draw(st.permutations(links)),
    }
    for key in draw(st.lists(st.sampled_from(["$description", "workflow_definition", "z"]))):
        doc[key] = draw(json_values)
    return doc


@pytest.mark.slow
@SLOW
@given(documents())
def test_random_documents_agree(data: dict[str, Any]) -> None:
    """Random valid documents (DAGs, file refs, calls, merges) give identical results."""
    assert_same_data(data)
    assert_same_bytes(orjson.dumps(data))


@pytest.mark.slow
@SLOW
@given(symmetric_documents())
def test_symmetric_documents_agree(data: dict[str, Any]) -> None:
    """Documents full of look-alike tasks and dropped fields give identical results."""
    assert_same_data(data)
    assert_same_bytes(orjson.dumps(data))


@pytest.mark.slow
@SLOW
@given(st.data())
def test_renumbered_documents_agree(draw: st.DataObject) -> None:
    """A document and any renumbering of its task ids, shuffled, hash alike in old and new code."""
    data = draw.draw(documents())
    mapping = draw.draw(renumberings(data))
    renamed = old_remap.remap_task_ids(data, mapping)
    rng = random.Random(draw.draw(st.integers(0, 1000)))
    rng.shuffle(renamed["tasks"])
    rng.shuffle(renamed["linkages"])
    assert_same_data(renamed)
    assert new_canon.canonical_hash(renamed) == old_doc.canonical_hash(kept_by_import(data))


@SLOW
@given(mutated_documents())
def test_mutated_documents_agree(data: Any) -> None:
    """Documents with one random change are accepted or refused exactly as before."""
    assert_same_data(data)
    try:
        raw = orjson.dumps(data)
    except TypeError:
        return
    assert_same_bytes(raw)


@SLOW
@given(st.one_of(mutated_bytes(), hostile_values_inside()))
def test_mutated_bytes_agree(raw: bytes) -> None:
    """Damaged bytes, deep nesting and >64-bit integers anywhere give the same error or result."""
    assert_same_bytes(raw)


@SLOW
@given(st.dictionaries(text, json_values, max_size=4), st.sampled_from(["", "x"]))
def test_envelope_garbage_agrees(extra: dict[str, Any], _: str) -> None:
    """Arbitrary top-level objects are refused (or not) with the same message as before."""
    assert_same_data(extra)
    assert_same_data({**small_export(), **extra})


def test_degenerate_documents_hash_alike() -> None:
    """canonical_hash also runs on unvalidated exports: no tasks, no linkages, extra keys."""
    for data in (
        {"workflow": {"id": 1, "name": "W"}, "tasks": [], "linkages": []},
        {"workflow": {}, "tasks": [], "linkages": [], "x": [1.5e300], "$description": {}},
    ):
        kept = kept_by_import(data)
        assert new_canon.canonical_hash(data) == old_doc.canonical_hash(kept)
        assert new_canon.canonical_form(data) == old_doc.canonical_form(kept)
        assert new_canon.canonical_task_order(data) == old_doc.canonical_task_order(kept)
