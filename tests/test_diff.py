"""The task-level workflow diff: what a person reads, and its agreement with canonical_hash."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrator.core.canonical import canonical_hash
from migrator.core.diff import (
    LINKAGE_ADDED,
    LINKAGE_REMOVED,
    TASK_ADDED,
    TASK_FIELD,
    TASK_REMOVED,
    compare_workflows,
    diff_workflows,
    summarize_change,
)
from migrator.core.remap import remap_task_ids
from tests.builders import link, reminder_flow, small_export
from tests.strategies import LINK_TYPES, documents, json_values, renumberings, text


def lines(source: dict[str, Any], target: dict[str, Any]) -> list[str]:
    return [d.describe() for d in diff_workflows(source, target)]


def shuffled_and_renumbered(doc: dict[str, Any], mapping: dict[int, int]) -> dict[str, Any]:
    out = remap_task_ids(doc, mapping)
    out["tasks"].reverse()
    out["linkages"].reverse()
    return out


# ------------------------------------------------------------------------------------ examples


def test_task_field_change_reads_like_the_issue() -> None:
    """A changed e-mail subject is one line naming the task, the field and both values."""
    after = reminder_flow()
    after["tasks"][1]["parameters"]["email"]["subject"] = "B"
    assert lines(reminder_flow(), after) == [
        'task "Send reminder": parameters.email.subject: "A" → "B"'
    ]
    (only,) = diff_workflows(reminder_flow(), after)
    assert only.to_json() == {
        "path": 'tasks["Send reminder"].parameters.email.subject',
        "source": "A",
        "target": "B",
        "kind": TASK_FIELD,
    }


def test_linkage_added_and_removed_name_both_ends_and_the_type() -> None:
    """A linkage is named by its two tasks and its type, never by ids."""
    after = reminder_flow()
    after["linkages"][1] = link(1, 2, "False")
    after["linkages"][2] = link(1, 3, "True")
    assert lines(reminder_flow(), after) == [
        'linkage "Check balance" → "Log" (False) removed',
        'linkage "Check balance" → "Send reminder" (True) removed',
        'linkage "Check balance" → "Log" (True) added',
        'linkage "Check balance" → "Send reminder" (False) added',
    ]


def test_task_added_and_removed_by_name() -> None:
    """A renamed task reads as one task removed and one added, with their linkages."""
    after = reminder_flow()
    after["tasks"][2]["name"] = "Audit"
    found = diff_workflows(reminder_flow(), after)
    assert [d.describe() for d in found] == [
        'task "Audit" added',
        'task "Log" removed',
        'linkage "Check balance" → "Log" (False) removed',
        'linkage "Check balance" → "Audit" (False) added',
    ]
    assert found[0].target == {"name": "Audit", "action_type": "Log", "parameters": {}}
    assert found[0].to_json()["source"] is None


def test_workflow_field_and_absent_values() -> None:
    """Workflow fields are compared too; a field on one side only shows as (absent)."""
    after = reminder_flow()
    after["workflow"]["priority"] = "High"
    assert lines(reminder_flow(), after) == ['workflow: priority: (absent) → "High"']


def test_server_managed_fields_and_ids_are_ignored() -> None:
    """Ids, versions, timestamps, task status and merge bookkeeping never show as differences."""
    after = shuffled_and_renumbered(reminder_flow(), {1: 101, 2: 102, 3: 103})
    after["workflow"].update(id=99, version="4.0.0", updatedAt="2026-01-01", status="Active")
    for link_ in after["linkages"]:
        if link_["source_workflow_id"] is not None:
            link_["source_workflow_id"] = 99
    after["tasks"][0].update(status="Done", created_at="yesterday")
    assert diff_workflows(reminder_flow(), after) == []
    assert compare_workflows(reminder_flow(), after).differences == ()


def test_parent_change_is_a_task_field() -> None:
    """Moving a task under another parent is reported by the parents' names."""
    after = reminder_flow()
    after["tasks"][2]["task_id"] = 2
    assert lines(reminder_flow(), after) == [
        'task "Log": parent: "Check balance" → "Send reminder"'
    ]


def test_file_reference_compares_by_the_task_it_names() -> None:
    """An Iterate reading another task's file differs; the same file under new ids does not."""
    before = small_export()
    assert diff_workflows(before, remap_task_ids(before, {4: 40, 3: 30, 2: 20})) == []
    after = copy.deepcopy(before)
    after["tasks"][1]["object"] = "Subscription__2.csv.zip"  # now names Mail's file
    assert lines(before, after) == [
        'task "Iterate": object: "Subscription__<Export>.csv.zip" → "Subscription__<Mail>.csv.zip"'
    ]


def test_duplicate_names_are_told_apart_by_position() -> None:
    """Two tasks named alike are matched by what precedes them and labelled with it."""
    before = reminder_flow()
    before["tasks"][2]["name"] = "Send reminder"
    before["tasks"][2]["action_type"] = "Email"
    before["tasks"][2]["parameters"] = {"email": {"subject": "C"}}
    after = shuffled_and_renumbered(before, {1: 11, 2: 12, 3: 13})
    # Swap which subject each reminder holds: both change, each named by its incoming linkage.
    for task in after["tasks"]:
        if task["name"] == "Send reminder":
            subject = task["parameters"]["email"]["subject"]
            task["parameters"]["email"]["subject"] = {"A": "C", "C": "A"}[subject]
    got = lines(before, after)
    assert len(got) == 2
    assert all(line.startswith('task "Send reminder (after Check balance) #') for line in got)
    assert {line.split(": ", 2)[2] for line in got} == {'"A" → "C"', '"C" → "A"'}


def test_duplicates_that_differ_by_position_are_labelled_by_predecessor() -> None:
    """Same name under different predecessors: the label says which one changed."""
    before = reminder_flow()
    before["tasks"].append(
        {"id": 4, "name": "Log", "action_type": "Log", "task_id": 2, "parameters": {}}
    )
    before["linkages"].append(link(2, 4, "Success"))
    after = copy.deepcopy(before)
    after["tasks"][3]["parameters"] = {"level": "debug"}
    assert lines(before, after) == [
        'task "Log (after Send reminder)": parameters.level: (absent) → "debug"'
    ]


def test_names_with_control_characters_stay_on_one_line() -> None:
    """A task name with CR, LF, BEL or an ANSI escape is JSON-escaped in describe()."""
    after = reminder_flow()
    after["tasks"][2]["name"] = "Log\r\nforged\x07\x1b[31m"
    for line in lines(reminder_flow(), after):
        assert not any(ch in line for ch in "\r\n\x07\x1b")


def test_summary_counts_what_changed() -> None:
    """The plan's one-liner counts changed, added and removed tasks and linkages."""
    after = reminder_flow()
    after["tasks"][1]["parameters"]["email"]["subject"] = "B"
    after["tasks"][0]["parameters"]["if_clause"] = "true"
    after["tasks"].append(
        {"id": 9, "name": "X", "action_type": "Log", "task_id": 3, "parameters": {}}
    )
    after["linkages"].append(link(3, 9, "Success"))
    del after["linkages"][1]
    assert summarize_change(reminder_flow(), after) == (
        '2 tasks changed, 1 task added ("X"), 1 linkage added, 1 linkage removed'
    )
    assert summarize_change(reminder_flow(), reminder_flow()) == "no change"


def test_graphs_mark_what_differs() -> None:
    """Both drawings share keys for matched tasks and mark changed, added and removed ones."""
    after = reminder_flow()
    after["tasks"][1]["parameters"]["email"]["subject"] = "B"
    after["tasks"][2]["name"] = "Audit"
    result = compare_workflows(reminder_flow(), after)
    source = {n.label: n.state for n in result.source_graph.nodes}
    target = {n.label: n.state for n in result.target_graph.nodes}
    assert source == {"Check balance": "same", "Send reminder": "changed", "Log": "removed"}
    assert target == {"Check balance": "same", "Send reminder": "changed", "Audit": "added"}
    assert {e.state for e in result.source_graph.edges} == {"same", "removed"}
    assert {n.depth for n in result.target_graph.nodes} == {0, 1}


# ---------------------------------------------------------------------------------- properties


@st.composite
def renumbered_copies(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    doc = draw(documents())
    copy_ = remap_task_ids(doc, draw(renumberings(doc)))
    copy_["tasks"] = draw(st.permutations(copy_["tasks"]))
    copy_["linkages"] = draw(st.permutations(copy_["linkages"]))
    return doc, copy_


@st.composite
def mutations(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A document and a changed copy (the change may happen to change nothing)."""
    doc = draw(documents())
    after = copy.deepcopy(doc)
    tasks = after["tasks"]
    task = draw(st.sampled_from(tasks))
    kind = draw(st.sampled_from(["param", "name", "linkage-type", "drop-linkage", "add-task"]))
    if kind == "param":
        task["parameters"][draw(text)] = draw(json_values)
    elif kind == "name":
        task["name"] = draw(st.one_of(text, st.sampled_from([t["name"] for t in tasks])))
    elif kind == "linkage-type":
        chosen = draw(st.sampled_from(after["linkages"]))
        chosen["linkage_type"] = draw(st.sampled_from(LINK_TYPES))
    elif kind == "drop-linkage":
        inner = [lk for lk in after["linkages"] if lk["source_task_id"] is not None]
        if inner:
            after["linkages"].remove(draw(st.sampled_from(inner)))
    else:
        new_id = max(t["id"] for t in tasks) % (2**62) + 1
        tasks.append(
            {
                "id": new_id,
                "name": draw(st.one_of(text, st.just(task["name"]))),
                "action_type": "Log",
                "task_id": task["id"],
                "parameters": {},
            }
        )
        after["linkages"].append(link(task["id"], new_id, draw(st.sampled_from(LINK_TYPES))))
    return doc, after


@pytest.mark.slow
@given(renumbered_copies())
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_renumbered_and_reordered_copy_has_no_differences(pair: Any) -> None:
    """Ids renumbered and tasks and linkages reordered: no difference, even from the matching alone."""
    doc, copy_ = pair
    assert diff_workflows(doc, copy_) == []
    assert compare_workflows(doc, copy_).differences == ()


@pytest.mark.slow
@given(st.one_of(mutations(), st.tuples(documents(), documents())))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_diff_is_empty_exactly_when_canonical_hashes_agree(pair: Any) -> None:
    """No differences iff equal canonical hashes, for small changes and unrelated documents."""
    a, b = pair
    equal = canonical_hash(a) == canonical_hash(b)
    assert (diff_workflows(a, b) == []) == equal
    if not equal:
        assert compare_workflows(a, b).differences != ()


@given(mutations(), st.data())
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_differences_do_not_depend_on_ids_or_order(pair: Any, data: st.DataObject) -> None:
    """Renumbering and reordering the first document leaves the listed differences unchanged."""
    a, b = pair
    a2 = remap_task_ids(a, data.draw(renumberings(a)))
    a2["tasks"] = data.draw(st.permutations(a2["tasks"]))
    a2["linkages"] = data.draw(st.permutations(a2["linkages"]))
    assert sorted(lines(a, b)) == sorted(lines(a2, b))


@given(mutations())
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_added_and_removed_tasks_account_for_the_task_counts(pair: Any) -> None:
    """Tasks matched plus added equals the target's tasks; plus removed, the source's."""
    a, b = pair
    found = compare_workflows(a, b)
    kinds = [d.kind for d in found.differences]
    assert len(found.source_graph.nodes) == len(a["tasks"])
    assert len(found.target_graph.nodes) == len(b["tasks"])
    shared = {n.key for n in found.source_graph.nodes} & {n.key for n in found.target_graph.nodes}
    assert len(shared) + kinds.count(TASK_ADDED) == len(b["tasks"])
    assert len(shared) + kinds.count(TASK_REMOVED) == len(a["tasks"])
    linkage_changes = kinds.count(LINKAGE_ADDED) - kinds.count(LINKAGE_REMOVED)
    assert linkage_changes == len(b["linkages"]) - len(a["linkages"])


def test_an_item_inserted_into_a_list_is_one_difference() -> None:
    """Adding a workflow field in front of the others names that one item, not every shifted one."""
    before = reminder_flow()
    before["workflow"]["parameters"] = {"fields": [{"id": "a"}, {"id": "b"}]}
    after = copy.deepcopy(before)
    after["workflow"]["parameters"]["fields"].insert(0, {"id": "new"})
    assert lines(before, after) == ['workflow: parameters.fields[0]: (absent) → {"id":"new"}']


def test_long_texts_are_shown_from_just_before_the_change() -> None:
    """Two long texts that share a beginning are shown from a little before they differ."""
    before = reminder_flow()
    before["tasks"][1]["parameters"]["email"]["subject"] = "x" * 100 + " old ending"
    after = copy.deepcopy(before)
    after["tasks"][1]["parameters"]["email"]["subject"] = "x" * 100 + " new ending"
    assert lines(before, after) == [
        'task "Send reminder": parameters.email.subject: "…xxxxxxxxxxx old ending" → '
        '"…xxxxxxxxxxx new ending"'
    ]


def test_layers_follow_the_longest_path_and_survive_loops() -> None:
    """A task sits one layer below its lowest predecessor; a loop back does not deepen anything."""
    doc = reminder_flow()
    doc["tasks"].append(
        {"id": 4, "name": "Retry", "action_type": "Delay", "task_id": 2, "parameters": {}}
    )
    doc["linkages"] += [link(2, 4, "Failure"), link(4, 1, "Complete"), link(1, 4, "Complete")]
    changed = copy.deepcopy(doc)
    changed["tasks"][0]["parameters"]["if_clause"] = "true"
    depths = {n.label: n.depth for n in compare_workflows(doc, changed).source_graph.nodes}
    assert depths == {"Check balance": 0, "Send reminder": 1, "Log": 1, "Retry": 2}


def test_a_definition_block_difference_is_shown() -> None:
    """A `workflow_definition` block that says more than the workflow is compared field by field (issue 23 #2)."""
    from migrator.core.diff import diff_workflows
    from tests.builders import small_export

    source = small_export()
    source["workflow_definition"] = {"name": source["workflow"]["name"], "category": "Billing"}
    target = small_export()
    target["workflow_definition"] = {"name": target["workflow"]["name"]}
    [difference] = diff_workflows(source, target)
    assert difference.path == "document.workflow_definition"
    assert difference.source == {"category": "Billing"}
    assert "workflow_definition" in difference.describe()
    target["workflow_definition"]["category"] = "Dunning"
    [changed] = diff_workflows(source, target)
    assert changed.path == "document.workflow_definition.category"
    assert (changed.source, changed.target) == ("Billing", "Dunning")
    # A block that only repeats the workflow's name is no difference.
    assert (
        diff_workflows(
            small_export(),
            {**small_export(), "workflow_definition": {"name": source["workflow"]["name"]}},
        )
        == []
    )
