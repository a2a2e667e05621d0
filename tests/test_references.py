"""core/references.py: what an export's tasks name (objects, fields, custom objects), where, and
whether a tenant has it; the describe and custom object answers read safely (issue 24)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrator.core.plan import Action, Call, SourceDoc, plan_tenant
from migrator.core.references import (
    ALIASES,
    Reference,
    TenantSchema,
    check,
    find_references,
    needed,
    parse_custom_objects,
    parse_describe,
    relevant_references,
    resolve_object,
)
from tests.conftest import SHARED_CORPUS

CORPUS = sorted(SHARED_CORPUS.glob("*.json")) if SHARED_CORPUS.is_dir() else []
needs_corpus = pytest.mark.skipif(
    not CORPUS, reason="../shared/corpus/real is not here (a clone without the shared folder)"
)


def _at(data: Any, path: str) -> bool:
    """True when a JSON path of find_references (dots, [n], ["key"]) names something in data."""
    import re

    node = data
    for part in re.findall(
        r'\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]', path[1:]
    ):
        key, index, quoted = part
        if index:
            if not isinstance(node, list) or int(index) >= len(node):
                return False
            node = node[int(index)]
        else:
            name = key or json.loads(f'"{quoted}"')
            if not isinstance(node, dict) or name not in node:
                return False
            node = node[name]
    return True


# --- the real corpus ----------------------------------------------------------------------------


@needs_corpus
@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_every_corpus_document_is_read_and_every_path_points_into_it(path: Path) -> None:
    """Each real export's references carry their task's name and a JSON path that exists in it."""
    data = json.loads(path.read_text())
    names = {t.get("name") for t in data.get("tasks", [])}
    for ref in find_references(data):
        assert ref.task in names
        assert _at(data, ref.path), ref
    # No real export names a custom field or object: nothing in them can be missing anywhere.
    assert relevant_references(data) == []


@needs_corpus
def test_corpus_aliases_where_clauses_and_liquid_resolve_to_objects() -> None:
    """Join aliases map to their objects, unqualified where-clause names to the task's object,
    and a Liquid path through a join names the joined object's field."""
    by = {p.name: json.loads(p.read_text()) for p in CORPUS}
    wf2 = find_references(by["salto-sandbox-wf2-invoice-30-days-past-due-account-summary.json"])
    assert any(r.named == "DefaultPaymentMethod" and r.object == "PaymentMethod" for r in wf2)
    assert any(r.named == "BillToContact" and r.object == "Contact" for r in wf2)
    unqualified = [r for r in wf2 if r.path.endswith("where_clause") and r.named == "Invoice"]
    assert {r.field for r in unqualified} >= {"DueDate", "Balance", "Status", "AccountId"}
    uc2 = find_references(by["zca-b8a81a1-uc2-daily-dunning-escalation.json"])
    assert any(r.written == "BillToContact.WorkEmail" and r.object == "Contact" for r in uc2)
    uc5 = find_references(by["zca-b8a81a1-uc5-invoice-risk-assessment.json"])
    assert any(r.named == "RiskScore" and r.object is None for r in uc5)


# --- generated tasks ---------------------------------------------------------------------------

_name = st.from_regex(r"[A-Z][a-z]{1,6}", fullmatch=True)
_objects = st.one_of(
    st.sampled_from(["Account", "Invoice", "Subscription", "Contact", *ALIASES]),
    _name.map(lambda n: "default__" + n.lower()),
    _name.map(lambda n: "Zz" + n),  # a name no table knows
)
_fields = st.one_of(_name, _name.map(lambda n: n + "__c"))
# ZOQL's own words, which a bare name in a condition never is a field as.
ZOQL_WORDS = set(
    [
        "and",
        "or",
        "not",
        "null",
        "is",
        "like",
        "in",
        "between",
        "limit",
        "order",
        "by",
        "asc",
        "desc",
        "true",
        "false",
        "select",
        "from",
        "where",
        "group",
        "having",
        "distinct",
        "as",
        "on",
    ]
)
_places = st.sampled_from(["fields", "where", "where-own", "liquid", "liquid-join"])


@st.composite
def planted(draw: st.DrawFn) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    """A document whose tasks each name one (object, field) in one of the places a task can."""
    tasks: list[dict[str, Any]] = []
    wanted: list[tuple[str, str, str]] = []  # (task, object as named, field)
    for n in range(draw(st.integers(1, 5))):
        obj, field, place = draw(_objects), draw(_fields), draw(_places)
        task: dict[str, Any] = {"id": n + 1, "name": f"Task {n}", "action_type": "Query"}
        if place == "fields":
            task["parameters"] = {"fields": {obj: {field: "true"}}}
        elif place == "where":
            task["parameters"] = {
                "where_clause": f"{obj}.{field} = 'x' AND Id != '{{{{ Data.Q }}}}'"
            }
        elif place == "where-own":
            # A bare ZOQL word in a condition (`Or > 0`) is that word, not a field: plant none.
            field = field + "z" if field.lower() in ZOQL_WORDS else field
            task["object"] = obj
            task["parameters"] = {"where_clause": f"{field} > 0 Order By Id Desc"}
        elif place == "liquid":
            task["parameters"] = {
                "email": {"body": f"<p>{{{{ Data.{obj}.{field} | upcase }}}}</p>"}
            }
        else:
            task["parameters"] = {
                "raw_body": f"{{% if Data.Account.{obj}.{field} %}}x{{% endif %}}"
            }
        tasks.append(task)
        wanted.append((task["name"], obj, field))
    return {"workflow": {"id": 1, "name": "W"}, "tasks": tasks, "linkages": []}, wanted


@settings(max_examples=150, deadline=None)
@given(planted())
def test_every_planted_reference_is_found_with_its_task_and_path(
    case: tuple[dict[str, Any], list[tuple[str, str, str]]],
) -> None:
    """Whatever place a task names an object's field in, it is found, resolved, and located."""
    data, wanted = case
    refs = find_references(data)
    for task, obj, field in wanted:
        found = [r for r in refs if r.task == task and r.named == obj and r.field == field]
        assert found, (task, obj, field, refs)
        assert all(r.object == resolve_object(obj) and _at(data, r.path) for r in found)


@settings(max_examples=150, deadline=None)
@given(planted(), st.data())
def test_only_custom_names_a_tenant_lacks_are_missing(
    case: tuple[dict[str, Any], list[tuple[str, str, str]]], data: st.DataObject
) -> None:
    """A reference is missing exactly when it is a custom field or custom object the tenant's
    answers do not list; unknown names are never missing, standard fields never judged."""
    doc, _ = case
    refs = relevant_references(doc)
    objects, customs = needed(refs)
    has_fields = {
        o: data.draw(st.sets(st.sampled_from(sorted(f) or ["x"]))) for o, f in objects.items()
    }
    has_customs = data.draw(st.sets(st.sampled_from(sorted(customs) or ["x"])))
    schema = TenantSchema(
        objects={o: frozenset(f) for o, f in has_fields.items()},
        custom_objects={c: frozenset() for c in has_customs},
    )
    for finding in check(refs, schema):
        ref = finding.ref
        if ref.object is None:
            assert finding.status == "not checked"
        elif ref.object.startswith("default__"):
            there = ref.object[len("default__") :].lower() in has_customs
            assert finding.status == ("present" if there else "missing")
        else:
            assert ref.field is not None
            there = ref.field.lower() in has_fields[ref.object]
            assert finding.status == ("present" if there else "missing")
        if finding.status == "missing":
            line = finding.line("prod")
            assert repr(ref.task) in line and ref.path in line and "prod" in line


def test_unreadable_answers_leave_references_not_checked() -> None:
    """A describe or a listing that could not be read makes its references 'not checked'."""
    refs = [
        Reference("T", "$.x", "Account", "Region__c", "Account"),
        Reference("T", "$.y", "default__vehicle", None, "default__vehicle"),
    ]
    schema = TenantSchema(
        objects={"Account": "describe Account: no permission (403)"},
        custom_objects="no permission (403)",
    )
    assert [f.status for f in check(refs, schema)] == ["not checked", "not checked"]


# --- reading the answers -----------------------------------------------------------------------

DESCRIBE = b"""<?xml version="1.0" encoding="UTF-8"?>
<object><name>Account</name><label>Account</label><fields>
<field><name>Id</name><label>Id</label><type>text</type></field>
<field><name>Region__c</name><label>Region</label><type>picklist</type>
<options><option>EU</option></options><contexts><context>export</context></contexts></field>
</fields></object>"""


def test_describe_answer_gives_its_field_names() -> None:
    """The field names of a describe answer, lower-cased."""
    assert parse_describe(DESCRIBE) == frozenset({"id", "region__c"})


@pytest.mark.parametrize(
    "raw",
    [
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><object><fields/></object>',
        b'<!ENTITY x SYSTEM "file:///etc/passwd"><object/>',
        b"<!doctype object><object/>",
        b"not xml at all",
    ],
)
def test_describe_answers_with_entities_or_not_xml_are_refused(raw: bytes) -> None:
    """A DOCTYPE or entity declaration is refused before parsing; so is a body that is not XML."""
    with pytest.raises(ValueError):
        parse_describe(raw)


def test_custom_object_definitions_answer() -> None:
    """`{"count", "definitions": {type: {schema: {properties}}}}` → names and fields, lower-cased."""
    body = {
        "count": 1,
        "definitions": {
            "Vehicle": {
                "type": "Vehicle",
                "schema": {"object": "Vehicle", "properties": {"Id": {}, "DeviceId__c": {}}},
            }
        },
    }
    assert parse_custom_objects(body) == {"vehicle": frozenset({"id", "deviceid__c"})}
    with pytest.raises(ValueError):
        parse_custom_objects({"data": []})


# --- planning ----------------------------------------------------------------------------------


def test_a_caller_of_a_document_blocked_for_a_missing_reference_is_blocked_too() -> None:
    """The blocked callee is not in the tenant, so its caller cannot point at it: blocked too."""
    callee = SourceDoc(key="k1", source="a.json", name="Callee", version="1", workflow_id=1)
    caller = SourceDoc(
        key="k2",
        source="b.json",
        name="Caller",
        version="1",
        workflow_id=2,
        calls=(Call(task_id=5, workflow_id=None, workflow_name="Callee"),),
    )
    line = "task 'Read' names custom object default__vehicle, which tenant t does not have (at $.tasks[0].object)"
    plan = plan_tenant("t", "id", [callee, caller], {}, {}, missing_references={"k1": [line]})
    items = {i.doc.name: i for i in plan.items}
    assert items["Callee"].action is Action.BLOCKED and items["Callee"].reason == line
    assert items["Caller"].action is Action.BLOCKED
    assert "calls 'Callee', which is blocked" in items["Caller"].reason


def test_a_task_naming_a_missing_custom_object_in_several_places_is_one_line() -> None:
    """`object`, the fields map key and a field of it: one line per (task, custom object)."""
    from migrator.core.references import missing_lines

    data = {
        "tasks": [
            {
                "id": 1,
                "name": "Read Vehicles",
                "object": "default__vehicle",
                "parameters": {"fields": {"default__vehicle": {"Id": "true", "Make__c": "true"}}},
            }
        ]
    }
    findings = check(relevant_references(data), TenantSchema(objects={}, custom_objects={}))
    lines = missing_lines(findings, "eu")
    assert lines == [
        "task 'Read Vehicles' names custom object default__vehicle, which tenant eu does not"
        " have (at $.tasks[0].object)"
    ]


def test_a_value_orjson_cannot_write_is_still_read() -> None:
    """A task holding an integer beyond 64 bits is read the slow way, not refused."""
    data = {
        "tasks": [
            {
                "id": 1,
                "name": "T",
                "n": 10**30,
                "parameters": {"fields": {"Account": {"X__c": "true"}}},
            }
        ]
    }
    assert [r.written for r in relevant_references(data)] == ["Account.X__c"]
