"""Unit tests of the fake's pure core: import validation, id reallocation, versions, limits.

Plain values and hypothesis; no sockets and no event loop.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from migrator.fake._document import next_version, reallocate, validate_import, version_key
from migrator.fake._limits import IdempotencyStore, RateWindows, Stored, TokenStore
from migrator.fake._state import ApiError, FakeState
from tests.fake.helpers import sample_document

versions = st.tuples(*(st.integers(0, 30) for _ in range(3))).flatmap(
    lambda t: st.sampled_from([f"{t[0]}", f"{t[0]}.{t[1]}", f"{t[0]}.{t[1]}.{t[2]}"])
)


@st.composite
def chain_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A valid document: a chain of tasks with random distinct ids, file refs to parents."""
    ids = draw(st.lists(st.integers(1, 10_000), min_size=1, max_size=12, unique=True))
    tasks = []
    for i, tid in enumerate(ids):
        parent = ids[i - 1] if i else None
        obj = f"Account__{parent}.csv.zip" if parent else "Account"
        tasks.append(
            {
                "id": tid,
                "name": f"t{i}",
                "action_type": "Iterate",
                "object": obj,
                "task_id": parent,
                "parameters": {"v": "true"},
            }
        )
    wid = draw(st.integers(1, 10**6))
    linkages = [
        {
            "source_workflow_id": wid,
            "source_task_id": None,
            "target_task_id": ids[0],
            "linkage_type": "Start",
        }
    ]
    linkages += [
        {
            "source_workflow_id": None,
            "source_task_id": a,
            "target_task_id": b,
            "linkage_type": "Success",
        }
        for a, b in itertools.pairwise(ids)
    ]
    return {"workflow": {"id": wid, "name": "W"}, "tasks": tasks, "linkages": linkages}


def state(clock: list[float] | None = None) -> FakeState:
    now = clock or [1000.0]
    return FakeState(["t1", "t2"], clock=lambda: now[0])


@given(versions, versions)
def test_version_key_is_numeric_per_component(a: str, b: str) -> None:
    """Versions compare as padded integer triples, never as strings."""
    pa = [int(x) for x in a.split(".")] + [0] * (3 - len(a.split(".")))
    pb = [int(x) for x in b.split(".")] + [0] * (3 - len(b.split(".")))
    assert (version_key(a) < version_key(b)) == (pa < pb)


@given(versions)
def test_next_version_is_greater(v: str) -> None:
    """next_version always gives a strictly greater version of the same shape."""
    assert version_key(next_version(v)) > version_key(v)
    assert next_version(v).count(".") == v.count(".")


@given(chain_documents())
def test_generated_documents_validate(doc: dict[str, Any]) -> None:
    """Every well-formed chain document passes import validation."""
    assert validate_import(doc) == []


@given(chain_documents(), st.integers(1, 10**6))
def test_reallocation_keeps_every_reference_consistent(doc: dict[str, Any], start: int) -> None:
    """After reallocation, ids are fresh and unique and every reference points at the same task."""
    counter = iter(range(start, start + 1000))
    out = reallocate(doc, 999_999_999, "0.0.1", lambda: next(counter), rewrite_file_refs=True)
    old_to_new = {a["id"]: b["id"] for a, b in zip(doc["tasks"], out["tasks"], strict=True)}
    assert len(set(old_to_new.values())) == len(old_to_new)
    assert out["workflow"]["id"] == 999_999_999
    for a, b in zip(doc["tasks"], out["tasks"], strict=True):
        if a["task_id"] is not None:
            assert b["task_id"] == old_to_new[a["task_id"]]
            assert b["object"] == f"Account__{old_to_new[a['task_id']]}.csv.zip"
        assert b["parameters"] == a["parameters"]
    for a, b in zip(doc["linkages"], out["linkages"], strict=True):
        assert b["target_task_id"] == old_to_new[a["target_task_id"]]
        if a["source_task_id"] is None:
            assert b["source_workflow_id"] == 999_999_999
        else:
            assert b["source_task_id"] == old_to_new[a["source_task_id"]]
    assert validate_import(out) == []


def test_file_refs_to_unknown_ids_are_left_alone() -> None:
    """Only ids of tasks in the document are rewritten inside file names."""
    doc = sample_document()
    doc["tasks"][2]["parameters"]["other"] = "Invoice__999.csv and S3__4__name.csv"
    out = reallocate(doc, 1, "1", iter(range(50, 60)).__next__, rewrite_file_refs=True)
    new_export_id = out["tasks"][0]["id"]
    assert out["tasks"][2]["parameters"]["other"] == (
        f"Invoice__999.csv and S3__{new_export_id}__name.csv"
    )


def test_merge_task_ids_are_stripped() -> None:
    """[Z] workflow.parameters.merge_task_ids is removed on import (the server recomputes it)."""
    doc = sample_document()
    doc["workflow"]["parameters"]["merge_task_ids"] = [4]
    out = reallocate(doc, 1, "1", iter(range(50, 60)).__next__, rewrite_file_refs=True)
    assert "merge_task_ids" not in out["workflow"]["parameters"]


def test_import_leaves_the_payload_untouched() -> None:
    """Importing never mutates the caller's document."""
    doc = sample_document()
    before = repr(doc)
    state().import_workflow("t1", doc)
    assert repr(doc) == before


def _containers(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [value, *(c for v in value.values() for c in _containers(v))]
    if isinstance(value, list):
        return [value, *(c for v in value for c in _containers(v))]
    return []


@pytest.mark.parametrize("keep_unknown_keys", [False, True])
def test_stored_document_shares_nothing_with_the_payload(keep_unknown_keys: bool) -> None:
    """The stored document is a deep copy: no dict or list of it is one of the payload's, so a
    caller changing its payload afterwards cannot change what the tenant holds."""
    doc = sample_document()
    doc["tasks"][0]["parameters"]["nested"] = {"list": [{"deep": "Account__4.csv"}]}
    out = reallocate(
        doc,
        1,
        "1",
        iter(range(50, 60)).__next__,
        rewrite_file_refs=True,
        keep_unknown_keys=keep_unknown_keys,
    )
    theirs = {id(c) for c in _containers(doc)}
    assert not [c for c in _containers(out) if id(c) in theirs]


def test_seeded_version_without_number_goes_above_highest() -> None:
    """add_workflow under an existing definition picks one above the highest version."""
    s = state()
    definition_id, _ = s.add_workflow("t1", sample_document(), version="0.0.9")
    _, version_id = s.add_workflow("t1", sample_document(), definition_id=definition_id)
    assert s.tenants["t1"].versions[version_id].version == "0.0.10"


def test_state_round_trips_through_json() -> None:
    """to_json/load_json carry workflows, versions, ids and the ledger across a restart."""
    s = state()
    d, _ = s.import_workflow("t1", sample_document(), activate=True, idempotency_key="k")
    restored = state()
    restored.load_json(s.to_json())
    assert restored.ledger() == s.ledger()
    assert restored.export("t1", d.id, None) == s.export("t1", d.id, None)
    d2, _ = restored.import_workflow("t1", sample_document("second"))
    assert d2.id not in s.tenants["t1"].definitions


def test_unknown_definition_is_404() -> None:
    """Reads of an unknown definition raise ApiError 404 in the errors-list shape."""
    try:
        state().export("t1", 5, None)
    except ApiError as exc:
        assert exc.status == 404 and exc.body["errors"][0]["code"] == "invalid"
    else:
        raise AssertionError("expected ApiError")


# -- limits -------------------------------------------------------------------------------------


def test_idempotency_entry_expires_after_ttl() -> None:
    """§1.8: a key is forgotten 24 h after it was set; before that it replays."""
    store = IdempotencyStore()
    assert store.begin("t", "k", "POST", "/w", 0.0).kind == "new"
    assert store.begin("t", "k", "POST", "/w", 1.0).kind == "in_flight"
    store.finish("t", "k", Stored(200, {}, b"{}"))
    assert store.begin("t", "k", "POST", "/w", 24 * 3600 - 1).kind == "done"
    assert store.begin("t", "k", "GET", "/w", 10.0).kind == "mismatch"
    assert store.begin("t", "k", "POST", "/w", 24 * 3600).kind == "new"


def test_idempotency_store_is_bounded() -> None:
    """The store never holds more than max_entries keys (oldest go first)."""
    store = IdempotencyStore(max_entries=10)
    for i in range(100):
        store.begin("t", f"k{i}", "POST", "/w", float(i))
    assert len(store) == 10
    assert store.begin("t", "k99", "POST", "/w", 100.0).kind == "in_flight"


def test_abandoned_key_can_be_used_again() -> None:
    """A key whose request never answered is released for the retry."""
    store = IdempotencyStore()
    store.begin("t", "k", "POST", "/w", 0.0)
    store.abandon("t", "k")
    assert store.begin("t", "k", "POST", "/w", 1.0).kind == "new"


@given(st.integers(1, 50), st.floats(0, 10**7, allow_nan=False))
def test_rate_window_allows_exactly_quota(quota: int, now: float) -> None:
    """A minute window admits `quota` requests, then refuses until the window ends."""
    windows = RateWindows([(60, quota)])
    decisions = [windows.hit(now) for _ in range(quota + 1)]
    assert all(d.allowed for d in decisions[:-1])
    refused = decisions[-1]
    assert not refused.allowed and refused.remaining == 0
    window_end = (now // 60) * 60 + 60
    assert 1 <= refused.retry_after <= 60
    assert refused.retry_after >= window_end - now - 1e-6 or refused.retry_after == 1
    assert windows.hit(window_end).allowed


def test_tokens_expire_and_are_bounded() -> None:
    """Tokens expire at ttl and the store keeps at most max_tokens."""
    store = TokenStore(max_tokens=5)
    token = store.issue("t", 10.0, 0.0)
    assert store.lookup(token, 9.9) == "t"
    assert store.lookup(token, 10.0) is None
    for i in range(20):
        store.issue("t", 10.0, float(i))
    assert len(store) <= 5


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 20) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(st.data())
def test_any_mutation_is_accepted_or_refused_with_400(data: st.DataObject) -> None:
    """Whatever a payload's fields hold, import either commits or raises ApiError 400, never crashes."""
    doc: Any = sample_document()
    for _ in range(data.draw(st.integers(1, 4))):
        section = data.draw(st.sampled_from(["workflow", "tasks", "linkages"]))
        if section == "workflow":
            target = doc["workflow"]
        else:
            items = doc[section]
            if not items:
                continue
            target = items[data.draw(st.integers(0, len(items) - 1))]
        if not isinstance(target, dict) or not target:
            continue
        key = data.draw(st.sampled_from(sorted(target)))
        target[key] = data.draw(json_values)
    s = state()
    try:
        s.import_workflow("t1", doc)
    except ApiError as exc:
        assert exc.status == 400 and exc.body["errors"]
    else:
        assert len(s.ledger()) == 1
