"""Invariants of the shipped sample exports in samples/ and of tests/data/tenant-specific-callout.json.
These are the documents `make demo` migrates, so they must be valid, varied and tenant-neutral."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from migrator.core.document import parse_document

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
TENANT_SPECIFIC = ROOT / "tests" / "data" / "tenant-specific-callout.json"

FILE_NAME = re.compile(r"^\d\d-[a-z0-9]+(?:-[a-z0-9]+)*\.json(?:\.gz)?$")
EMBEDDED_ID = re.compile(r"\b[A-Za-z][A-Za-z0-9_]*?__(\d+)\.(?:csv|zip|json|xml|txt|pdf)")
VERSION = re.compile(r"^\d+(?:\.\d+)?(?:\.\d+)?$")
BRANCH_TYPES: dict[str, set[str]] = {
    "If": {"True", "False", "Failure"},
    "Iterate": {"For Each", "Complete", "Failure"},
    "Approval": {"Approve", "Reject", "Timeout", "Failure"},
}
TENANT_MARKERS = (
    "saved_provider:",
    "s3_provider_id",
    "entity_id",
    "zuora_org_id",
    "GlobalConstants",
)


def _sample_paths() -> list[Path]:
    return sorted(
        p for p in SAMPLES.rglob("*") if p.is_file() and p.name.endswith((".json", ".json.gz"))
    )


def _load(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.decompress(raw)
    data = json.loads(raw)
    assert isinstance(data, dict)
    return data


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


PATHS = _sample_paths()
DOCS = {p: _load(p) for p in PATHS}
IDS = [str(p.relative_to(SAMPLES)) for p in PATHS]


def _check_document(doc: dict[str, Any]) -> None:
    """Assert the structural invariants every export document in this repo must satisfy."""
    assert {"workflow", "tasks", "linkages"} <= doc.keys()
    wf, tasks, links = doc["workflow"], doc["tasks"], doc["linkages"]
    assert isinstance(wf["id"], int) and not isinstance(wf["id"], bool)
    assert isinstance(wf["name"], str) and wf["name"].strip()
    assert wf["type"] == "Workflow::Setup"
    for key in (
        "description",
        "call_type",
        "priority",
        "delete_ttl",
        "css",
        "notifications",
        "data",
    ):
        assert key in wf, key
    assert isinstance(wf["parameters"], dict) and isinstance(wf["parameters"].get("fields"), list)
    if "version" in wf:
        assert VERSION.match(wf["version"]), wf["version"]
    if wf.get("scheduled_trigger"):
        assert len(wf["interval"].split()) == 6, "workflow cron has 6 tokens"
        assert wf["timezone"] and "/" not in wf["timezone"], "Rails friendly name, not IANA"

    assert tasks and links
    task_ids = [t["id"] for t in tasks]
    assert all(isinstance(i, int) and not isinstance(i, bool) for i in task_ids)
    assert len(set(task_ids)) == len(task_ids), "task ids unique"
    by_id = {t["id"]: t for t in tasks}
    for task in tasks:
        assert isinstance(task["parameters"], dict), task["name"]
        assert isinstance(task["name"], str) and isinstance(task["action_type"], str)

    inbound: dict[int, list[dict[str, Any]]] = {}
    entries = 0
    for link in links:
        assert link["target_task_id"] in by_id, link
        assert isinstance(link["linkage_type"], str) and link["linkage_type"]
        if link["source_task_id"] is None:
            entries += 1
            assert link["source_workflow_id"] == wf["id"], "entry edge names workflow.id"
        else:
            assert link["source_workflow_id"] is None
            assert link["source_task_id"] in by_id, link
            source = by_id[link["source_task_id"]]
            allowed = BRANCH_TYPES.get(source["action_type"], {"Success", "Failure"})
            if source["action_type"] == "Logic::Case":
                allowed = {*source["parameters"]["case_condition"], "Case_Else", "Failure"}
            assert link["linkage_type"] in allowed, (source["action_type"], link["linkage_type"])
        inbound.setdefault(link["target_task_id"], []).append(link)
    assert entries >= 1

    for task in tasks:
        links_in = inbound.get(task["id"], [])
        assert links_in, f"task {task['id']} is unreachable"
        if any(link["source_task_id"] is None for link in links_in):
            assert task["task_id"] is None, "entry task has no parent"
        else:
            assert task["task_id"] in {link["source_task_id"] for link in links_in}
        if task["action_type"] == "Logic::Case":
            keys = sorted(task["parameters"]["case_condition"])
            assert keys == [f"Case_{i}" for i in range(1, len(keys) + 1)]
        for text in _strings(task):
            for ref in EMBEDDED_ID.findall(text):
                assert int(ref) in by_id, f"embedded file id {ref} names no task"


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_sample_is_a_valid_export(path: Path) -> None:
    """Every sample loads as JSON and satisfies the export-document invariants (ids, edges, parents)."""
    _check_document(DOCS[path])


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_sample_file_name_and_neutral_content(path: Path) -> None:
    """Every sample is named NN-slug.json[.gz] and carries no tenant-specific value needing substitution."""
    assert FILE_NAME.match(path.name), path.name
    doc = DOCS[path]
    for text in _strings(doc):
        for marker in TENANT_MARKERS:
            assert marker not in text, (marker, path.name)
    assert not any(t["action_type"].startswith("Reporting::") for t in doc["tasks"])


def test_sample_set_has_the_demo_features() -> None:
    """The set has ≥ 20 documents, a .json.gz, a subdirectory, and distinct workflow and file numbers."""
    assert len(PATHS) >= 20
    assert any(p.name.endswith(".json.gz") for p in PATHS)
    assert any(p.parent != SAMPLES for p in PATHS)
    wf_ids = [d["workflow"]["id"] for d in DOCS.values()]
    assert len(set(wf_ids)) == len(wf_ids), "workflow ids distinct"
    numbers = [p.name[:2] for p in PATHS]
    assert len(set(numbers)) == len(numbers), "file numbers distinct"
    with_version = sum("version" in d["workflow"] for d in DOCS.values())
    assert len(PATHS) // 2 < with_version < len(PATHS), "most, not all, carry a version"


def test_names_unique_except_one_version_pair() -> None:
    """Workflow names are unique except exactly one name shipped as two distinct, ordered versions."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for doc in DOCS.values():
        by_name.setdefault(doc["workflow"]["name"], []).append(doc)
    pairs = {name: docs for name, docs in by_name.items() if len(docs) > 1}
    assert len(pairs) == 1
    (docs,) = pairs.values()
    assert len(docs) == 2
    versions = sorted(d["workflow"]["version"] for d in docs)
    assert versions == ["1.0.0", "1.1.0"]
    a, b = docs
    assert a["workflow"]["id"] != b["workflow"]["id"]
    assert {t["id"] for t in a["tasks"]}.isdisjoint(t["id"] for t in b["tasks"])
    assert len(a["tasks"]) != len(b["tasks"]), "the versions differ in content"


def test_execute_call_targets_a_sample_ending_in_response_formatter() -> None:
    """An Execute::WorkflowTask names (by string id and name) a callee in the set that ends in a ResponseFormatter."""
    names = {d["workflow"]["name"]: d for d in DOCS.values()}
    calls = [
        t["parameters"]
        for d in DOCS.values()
        for t in d["tasks"]
        if t["action_type"] == "Execute::WorkflowTask"
    ]
    assert calls
    for params in calls:
        assert isinstance(params["workflow_id"], str) and params["workflow_id"].isdigit()
        callee = names[params["workflow_name"]]
        others = {d["workflow"]["id"] for d in DOCS.values() if d is not callee}
        assert int(params["workflow_id"]) not in others, "the id must not resolve to another sample"
        sources = {link["source_task_id"] for link in callee["linkages"]}
        last = [t for t in callee["tasks"] if t["id"] not in sources]
        assert [t["action_type"] for t in last] == ["Logic::ResponseFormatter"]


def test_samples_cover_task_types_and_edge_kinds() -> None:
    """The set exercises the task types, branch labels, triggers and odd content the pipeline must carry."""
    types = Counter(t["action_type"] for d in DOCS.values() for t in d["tasks"])
    for wanted in (
        "Query",
        "Export",
        "Iterate",
        "If",
        "Logic::Case",
        "Callout",
        "Email",
        "Create",
        "Update",
        "Logic::JSONTransform",
        "Delay",
        "Approval",
        "Logic::ResponseFormatter",
        "Data::Link",
        "Execute::WorkflowTask",
    ):
        assert types[wanted], wanted
    labels = {link["linkage_type"] for d in DOCS.values() for link in d["linkages"]}
    assert {"Start", "Success", "Failure", "True", "False", "For Each", "Complete"} <= labels
    assert {"Case_1", "Case_2", "Case_Else", "Approve", "Reject"} <= labels
    entry_events = {
        link["linkage_type"]
        for d in DOCS.values()
        for link in d["linkages"]
        if link["source_task_id"] is None and link["linkage_type"] != "Start"
    }
    assert len(entry_events) >= 2, "event-triggered entry edges"
    assert sum(bool(d["workflow"].get("scheduled_trigger")) for d in DOCS.values()) >= 3
    iterate_objects = [
        t["object"] for d in DOCS.values() for t in d["tasks"] if t["action_type"] == "Iterate"
    ]
    assert any(re.search(r"__\d+\.csv\.zip$", o or "") for o in iterate_objects)
    templates = [
        t["parameters"]["email"]["template"]
        for d in DOCS.values()
        for t in d["tasks"]
        if t["action_type"] == "Email"
    ]
    assert all("\r\n" in tpl for tpl in templates)
    assert any(len(tpl) > 10_000 and "{% for" in tpl for tpl in templates)
    assert any(not d["workflow"]["name"].isascii() for d in DOCS.values())


def test_tenant_specific_fixture_is_valid_and_tenant_bound() -> None:
    """The one tenant-bound document (kept out of samples/) is valid and holds the values to substitute."""
    doc = _load(TENANT_SPECIFIC)
    _check_document(doc)
    text = json.dumps(doc)
    assert "saved_provider:" in text
    assert any(t["action_type"] == "Reporting::RunReport" and t["object_id"] for t in doc["tasks"])
    assert "entity_id" in doc["workflow"]["parameters"]


@pytest.mark.parametrize("path", [*PATHS, TENANT_SPECIFIC], ids=[*IDS, "tenant-specific"])
def test_sample_parses_with_document_module(path: Path) -> None:
    """Every sample (and the tenant-specific fixture) passes migrator.core.document.parse_document unchanged."""
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.decompress(raw)
    doc = parse_document(raw, str(path))
    expected = _load(path)
    assert doc.name == expected["workflow"]["name"]
    assert doc.workflow_id == expected["workflow"]["id"]
    assert doc.data == expected
    calls = [t for t in expected["tasks"] if t["action_type"] == "Execute::WorkflowTask"]
    assert len(doc.calls) == len(calls)


def test_bench_corpus_documents_are_valid_and_deterministic() -> None:
    """bench.corpus.generate yields valid documents with distinct names, the same bytes per seed and index."""
    from bench.corpus import generate

    first = list(generate(30, seed=7))
    assert first[:10] == list(generate(10, seed=7)), "a document depends on (seed, index) only"
    assert first != list(generate(30, seed=8))
    names = set()
    for file_name, raw in first:
        assert file_name.endswith(".json")
        doc = json.loads(raw)
        _check_document(doc)
        assert 3 <= len(doc["tasks"]) <= 12
        names.add(doc["workflow"]["name"])
    assert len(names) == 30


def test_bench_corpus_versions_and_large_documents() -> None:
    """versions_per_name groups documents under one name with ascending versions; large=True is ~150 tasks, multi-MB."""
    from bench.corpus import generate

    docs = [json.loads(raw) for _, raw in generate(6, seed=1, versions_per_name=3)]
    assert len({d["workflow"]["name"] for d in docs}) == 2
    assert [d["workflow"]["version"] for d in docs[:3]] == ["1.0.0", "1.1.0", "1.2.0"]
    ((_, raw),) = generate(1, large=True, seed=2)
    assert len(raw) > 3_000_000
    doc = json.loads(raw)
    _check_document(doc)
    assert 140 <= len(doc["tasks"]) <= 160
    biggest = max(
        len(t["parameters"]["email"]["template"])
        for t in doc["tasks"]
        if t["action_type"] == "Email"
    )
    assert biggest > 1_000_000


def test_bench_write_corpus_writes_plain_and_gzipped_files(tmp_path: Path) -> None:
    """write_corpus writes one file per document, gzipped on request, byte-identical to generate."""
    from bench.corpus import generate, write_corpus

    plain = write_corpus(tmp_path / "plain", 4, seed=5)
    packed = write_corpus(tmp_path / "gz", 4, seed=5, compress=True)
    expected = list(generate(4, seed=5))
    assert [p.name for p in plain] == [name for name, _ in expected]
    assert [p.name for p in packed] == [f"{name}.gz" for name, _ in expected]
    for path, gz_path, (_, raw) in zip(plain, packed, expected, strict=True):
        assert path.read_bytes() == raw
        assert gzip.decompress(gz_path.read_bytes()) == raw


def test_bench_corpus_parses_with_document_module() -> None:
    """Generated documents pass migrator.core.document.parse_document and keep their data."""
    from bench.corpus import generate

    for name, raw in generate(10, seed=11):
        assert parse_document(raw, name).data == json.loads(raw)
