"""Id remapping, call rewriting, tenant values and the import payload (spec §4.6)."""

from __future__ import annotations

import copy
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrator.core.canonical import canonical_hash
from migrator.core.document import document_from_data, validate_document
from migrator.core.remap import (
    TenantValue,
    apply_substitutions,
    find_tenant_values,
    prepare_for_import,
    remap_task_ids,
    rewrite_workflow_calls,
    set_workflow_id,
)
from tests.builders import small_export as doc
from tests.strategies import documents, renumberings


def test_remap_rewrites_every_reference() -> None:
    """Ids, parents, linkage ends and file references all follow the mapping; unrelated refs stay."""
    d = doc()
    d["tasks"][2]["parameters"]["files"] = {
        "S3__4__out.csv": "x",
        "Other__999.csv": "y",
        "LinkRun__3": "z",
    }
    d["tasks"][2]["parameters"]["liquid"] = "{{ Data.Files['Subscription__4.csv.zip'] }} a__4b __4"
    before = copy.deepcopy(d)
    out = remap_task_ids(d, {4: 40, 3: 30, 2: 20})
    assert d == before
    assert [t["id"] for t in out["tasks"]] == [40, 30, 20]
    assert [t["task_id"] for t in out["tasks"]] == [None, 40, 30]
    assert out["tasks"][1]["object"] == "Subscription__40.csv.zip"
    assert out["tasks"][2]["parameters"]["files"] == {
        "S3__40__out.csv": "x",
        "Other__999.csv": "y",
        "LinkRun__30": "z",
    }
    assert (
        out["tasks"][2]["parameters"]["liquid"]
        == "{{ Data.Files['Subscription__40.csv.zip'] }} a__4b __40"
    )
    assert [(lk["source_task_id"], lk["target_task_id"]) for lk in out["linkages"]] == [
        (None, 40),
        (40, 30),
        (30, 20),
    ]
    validate_document(out, "x")


def test_remap_is_simultaneous() -> None:
    """Swapping two ids swaps them (no chained rewrite)."""
    out = remap_task_ids(doc(), {4: 3, 3: 4})
    assert out["tasks"][1]["object"] == "Subscription__3.csv.zip"
    assert canonical_hash(out) == canonical_hash(doc())


def test_set_workflow_id_moves_entry_linkages() -> None:
    """workflow.id and the entry linkages' source_workflow_id change together."""
    out = set_workflow_id(doc(), 55)
    assert out["workflow"]["id"] == 55
    assert [lk["source_workflow_id"] for lk in out["linkages"]] == [55, None, None]
    validate_document(out, "x")


def with_call() -> dict[str, Any]:
    d = doc()
    d["tasks"].append(
        {
            "id": 9,
            "action_type": "Execute::WorkflowTask",
            "task_id": 2,
            "parameters": {"workflow_id": "123", "workflow_name": "Callee"},
        }
    )
    d["linkages"].append(
        {
            "source_workflow_id": None,
            "source_task_id": 2,
            "target_task_id": 9,
            "linkage_type": "Success",
        }
    )
    return d


def test_rewrite_workflow_calls() -> None:
    """A calling task gets the callee's target id as a string; workflow_name stays."""
    out = rewrite_workflow_calls(with_call(), {9: 777, 4: 1})
    assert out["tasks"][3]["parameters"] == {"workflow_id": "777", "workflow_name": "Callee"}
    assert "workflow_id" not in out["tasks"][0]["parameters"]


def test_calls_change_the_hash() -> None:
    """The callee id is content: pointing a call elsewhere changes the canonical hash."""
    assert canonical_hash(rewrite_workflow_calls(with_call(), {9: 777})) != canonical_hash(
        with_call()
    )


def test_prepare_for_import() -> None:
    """The payload numbers tasks 1..N, uses workflow id 1, rewrites calls and substitutes values."""
    d = with_call()
    d["workflow"]["original_workflow_id"] = 5
    d["workflow"]["parameters"]["merge_task_ids"] = [4]
    d["tasks"][2]["action_type"] = "Logic::Merge"
    d["tasks"][2]["parameters"]["merge_paths"] = [[4, 3]]
    d["tasks"][2]["original_task_id"] = 8
    d["tasks"][0]["parameters"]["url"] = "https://erp.old.example/x"
    parsed = document_from_data(d, "x")
    before = copy.deepcopy(parsed.data)
    out = prepare_for_import(
        parsed, call_targets={9: 4242}, substitutions={"erp.old.example": "erp.new.example"}
    )
    assert parsed.data == before
    validate_document(out, "payload")
    assert sorted(t["id"] for t in out["tasks"]) == [1, 2, 3, 4]
    assert out["workflow"]["id"] == 1 and out["workflow"]["original_workflow_id"] is None
    assert "merge_task_ids" not in out["workflow"]["parameters"]
    merge = next(t for t in out["tasks"] if t["action_type"] == "Logic::Merge")
    assert "merge_paths" not in merge["parameters"] and merge["original_task_id"] is None
    call = next(t for t in out["tasks"] if t["action_type"] == "Execute::WorkflowTask")
    assert call["parameters"]["workflow_id"] == "4242"
    export = next(t for t in out["tasks"] if t["action_type"] == "Export")
    assert export["parameters"]["url"] == "https://erp.new.example/x"
    iterate = next(t for t in out["tasks"] if t["action_type"] == "Iterate")
    assert iterate["object"] == f"Subscription__{export['id']}.csv.zip"


def test_prepare_is_deterministic_across_renumbering() -> None:
    """Two exports that differ only in task ids give the same payload tasks."""
    a = prepare_for_import(document_from_data(doc(), "a"))
    b = prepare_for_import(document_from_data(remap_task_ids(doc(), {4: 100, 3: 7, 2: 55}), "b"))
    assert a["tasks"] == b["tasks"]


def test_prepare_without_cached_order() -> None:
    """A hand-built ExportDocument (no cached task order) gets the same payload."""
    from migrator.core.document import ExportDocument

    parsed = document_from_data(doc(), "a")
    bare = ExportDocument(
        parsed.source,
        parsed.data,
        parsed.name,
        parsed.version,
        parsed.workflow_id,
        parsed.content_hash,
    )
    assert prepare_for_import(bare) == prepare_for_import(parsed)
    assert bare == parsed


def test_find_tenant_values() -> None:
    """Saved providers, report ids, S3 providers, meters, org and entity ids and callout URLs are found."""
    d = doc()
    d["workflow"]["parameters"].update(entity_id="e-1", entity_name=None)
    d["workflow"]["zuora_org_ids"] = ["org-a", "org-b"]
    d["tasks"][0]["parameters"]["authorization"] = {"type": "saved_provider:abc-123"}
    d["tasks"][1].update(action_type="Reporting::RunReport", object_id="report-9")
    d["tasks"][2].update(action_type="Callout")
    d["tasks"][2]["parameters"].update(
        url="https://erp.example.com/x", s3_provider_id="s3p", meter_id=7
    )
    found = find_tenant_values(d)
    assert set(found) == {
        TenantValue("$.workflow.parameters.entity_id", "entity_id", "e-1"),
        TenantValue("$.workflow.zuora_org_ids[0]", "org_id", "org-a"),
        TenantValue("$.workflow.zuora_org_ids[1]", "org_id", "org-b"),
        TenantValue(
            "$.tasks[0].parameters.authorization.type", "saved_provider", "saved_provider:abc-123"
        ),
        TenantValue("$.tasks[1].object_id", "report_id", "report-9"),
        TenantValue("$.tasks[2].parameters.url", "callout_url", "https://erp.example.com/x"),
        TenantValue("$.tasks[2].parameters.s3_provider_id", "s3_provider", "s3p"),
        TenantValue("$.tasks[2].parameters.meter_id", "meter", "7"),
    }
    assert len(found) == len(set(found))


def test_liquid_values_are_not_tenant_values() -> None:
    """Values that are Liquid (resolved per tenant already) and empty values are not reported."""
    d = doc()
    d["tasks"][2].update(action_type="Callout")
    d["tasks"][2]["parameters"].update(url="{{ GlobalConstants.ERP }}/x", meter_id="")
    d["tasks"][1].update(action_type="Reporting::RunReport", object_id="{{ Data.R }}")
    assert find_tenant_values(d) == []


def test_apply_substitutions_is_literal_and_simultaneous() -> None:
    """Each source value is replaced inside string values only, longest first, never twice."""
    d = doc()
    d["tasks"][0]["parameters"] = {
        "a": "saved_provider:OLD",
        "b": "x OLD y OLDER",
        "OLD": 1,
        "n": 5,
        "c": ["NEW", {"d": "OLD"}],
    }
    out = apply_substitutions(d, {"OLD": "NEW", "OLDER": "YOUNGER", "NEW": "NEWER", "": "boom"})
    assert out["tasks"][0]["parameters"] == {
        "a": "saved_provider:NEW",
        "b": "x NEW y YOUNGER",
        "OLD": 1,
        "n": 5,
        "c": ["NEWER", {"d": "NEW"}],
    }
    assert d["tasks"][0]["parameters"]["a"] == "saved_provider:OLD"


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_renumbering_keeps_validity_and_hash(data: st.DataObject) -> None:
    """Any bijective renumbering of a valid document is valid and has the same canonical hash."""
    d = data.draw(documents())
    mapping = data.draw(renumberings(d))
    out = remap_task_ids(d, mapping)
    validate_document(out, "x")
    assert canonical_hash(out) == canonical_hash(d)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_prepare_keeps_validity_and_hash(d: dict[str, Any]) -> None:
    """prepare_for_import (no calls, no substitutions) yields a valid document with the same hash."""
    parsed = document_from_data(d, "x")
    out = prepare_for_import(parsed)
    validate_document(out, "payload")
    assert canonical_hash(out) == parsed.content_hash
    assert sorted(t["id"] for t in out["tasks"]) == list(range(1, len(d["tasks"]) + 1))
    assert orjson.loads(orjson.dumps(out)) == out


@settings(max_examples=50, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_shuffles_keep_hash(data: st.DataObject) -> None:
    """Shuffling tasks, linkages and dict key order keeps the hash."""
    d = data.draw(documents())
    shuffled = copy.deepcopy(d)
    shuffled["tasks"] = data.draw(st.permutations(shuffled["tasks"]))
    shuffled["linkages"] = data.draw(st.permutations(shuffled["linkages"]))
    shuffled["tasks"] = [dict(reversed(list(t.items()))) for t in shuffled["tasks"]]
    shuffled["workflow"] = dict(reversed(list(shuffled["workflow"].items())))
    assert canonical_hash(shuffled) == canonical_hash(d)


@settings(max_examples=50, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_changing_a_parameter_changes_hash(data: st.DataObject) -> None:
    """Changing any task parameter value changes the hash."""
    d = data.draw(documents())
    task = data.draw(st.sampled_from(d["tasks"]))
    key = (
        "__probe"
        if not task["parameters"]
        else data.draw(st.sampled_from(sorted(task["parameters"])))
    )
    if key in ("merge_paths", "merge_start") and task["action_type"] == "Logic::Merge":
        key = "other"
    before = canonical_hash(d)
    task["parameters"][key] = ["changed", task["parameters"].get(key)]
    assert canonical_hash(d) != before
