"""Reading, validating and hashing export documents: every bad-input case has one exact line."""

from __future__ import annotations

import copy
import gzip
from typing import Any

import orjson
import pytest

from migrator.core.canonical import canonical_form, canonical_hash, canonical_task_order
from migrator.core.document import (
    MAX_DEPTH,
    ExportDocument,
    WorkflowCall,
    load_json,
    parse_document,
    validate_document,
)
from migrator.core.errors import InputError
from tests.builders import delete_at, set_at, small_export

SRC = "in/wf.json"


doc = small_export


def raw(data: Any) -> bytes:
    return orjson.dumps(data)


def error_of(data: bytes, max_bytes: int = 1 << 20) -> str:
    with pytest.raises(InputError) as info:
        parse_document(data, SRC, max_bytes=max_bytes)
    text = str(info.value)
    assert "\n" not in text
    return text


def mutated(change: Any) -> bytes:
    d = doc()
    change(d)
    return raw(d)


# ---------------------------------------------------------------- reading bytes


def test_valid_document_parses() -> None:
    """A valid export becomes an ExportDocument with its name, version, id and hash."""
    d = parse_document(raw(doc()), SRC, definition_id=99)
    assert isinstance(d, ExportDocument)
    assert (d.name, d.version, d.workflow_id, d.definition_id) == ("Resume", "0.0.2", 7, 99)
    assert d.content_hash == canonical_hash(doc())
    assert len(d.content_hash) == 64
    assert d.calls == ()


def test_values_pass_through_untouched() -> None:
    """Unknown keys, string-typed numbers, CRLF and Liquid survive parsing exactly."""
    d = doc()
    d["workflow"]["ui_trigger"] = {"x": [1, "2"]}
    d["tasks"][0]["mystery"] = "a\r\nb {{ Data.Y }}"
    parsed = parse_document(raw(d), SRC)
    assert parsed.data == d
    assert parsed.data["tasks"][2]["parameters"]["count"] == "2000"


def test_bom_is_tolerated() -> None:
    """A UTF-8 byte order mark in front of the JSON is accepted."""
    assert parse_document(b"\xef\xbb\xbf" + raw(doc()), SRC).name == "Resume"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "in/wf.json: $: empty file"),
        (b"  \n\t", "in/wf.json: $: empty file"),
        (b"\xef\xbb\xbf", "in/wf.json: $: empty file"),
        (
            b"hello",
            "in/wf.json: $: not valid JSON at line 1 column 1: unexpected character, expected a JSON value",
        ),
        (
            b'{"workflow": {"id": 1,\n "name": "x"',
            "in/wf.json: $: not valid JSON at line 2 column 13: unexpected end of data",
        ),
        (b'{"a": "caf\xe9"}', "in/wf.json: $: not UTF-8 text: invalid byte 0xe9 at byte offset 10"),
        (
            b"\xef\xbb\xbf" + b'{"a": "\xff"}',
            "in/wf.json: $: not UTF-8 text: invalid byte 0xff at byte offset 10",
        ),
        (b"[1, 2]", "in/wf.json: $: top level is a JSON array, not an object"),
        (b'"text"', "in/wf.json: $: top level is a JSON string, not an object"),
        (b"null", "in/wf.json: $: top level is a JSON null, not an object"),
        (
            b'{"a": 1,\n "b": 18446744073709551616}',
            "in/wf.json: $: integer at line 2 column 7 does not fit in 64 bits (orjson reads only 64-bit integers exactly)",
        ),
        (
            b'{"a": -9223372036854775809}',
            "in/wf.json: $: integer at line 1 column 7 does not fit in 64 bits (orjson reads only 64-bit integers exactly)",
        ),
        (
            b'{"a": NaN}',
            "in/wf.json: $: not valid JSON at line 1 column 7: unexpected character, expected a JSON value",
        ),
    ],
)
def test_unreadable_input(data: bytes, message: str) -> None:
    """Each kind of unreadable file gives its own one-line error naming the file."""
    with pytest.raises(InputError) as info:
        load_json(data, SRC, max_bytes=1 << 20)
    assert str(info.value) == message
    if b"9223372036854775809" not in data and b"18446744073709551616" not in data:
        assert error_of(data) == message


PLACES = [
    ["tasks", 0, "parameters", "x"],
    ["tasks", 0, "error_details"],
    ["tasks", 1, "css"],
    ["workflow", "task_summary"],
    ["workflow", "parameters", "fields"],
    ["workflow_definition"],
    ["extra"],
    ["linkages", 1, "internal_group"],
]


def _place(path: list[Any], token: bytes) -> bytes:
    d = doc()
    target: Any = d
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = "@@PLACE@@"
    return raw(d).replace(b'"@@PLACE@@"', token)


@pytest.mark.parametrize("path", PLACES, ids=lambda p: ".".join(map(str, p)))
def test_huge_integer_anywhere_in_a_document(path: list[Any]) -> None:
    """parse_document reports a >64-bit integer literal wherever it sits in a valid document."""
    data = _place(path, b"[1, 123456789012345678901234567890]")
    assert "does not fit in 64 bits (orjson reads only 64-bit integers exactly)" in error_of(data)


@pytest.mark.parametrize("path", PLACES, ids=lambda p: ".".join(map(str, p)))
@pytest.mark.parametrize("extra", [0, 1, 2, 3, 50])
def test_deep_nesting_anywhere_in_a_document(path: list[Any], extra: int) -> None:
    """parse_document refuses exactly the documents load_json refuses for depth, wherever the
    nesting sits, and whatever it accepts can be serialised again."""
    for depth in range(MAX_DEPTH - 6 + extra, MAX_DEPTH + 1 + extra):
        data = _place(path, b"[" * depth + b"]" * depth)
        try:
            load_json(data, SRC, max_bytes=1 << 20)
            loaded_ok = True
        except InputError as exc:
            assert "nested deeper than 254 levels" in str(exc)
            loaded_ok = False
        try:
            parsed = parse_document(data, SRC, max_bytes=1 << 20)
        except InputError as exc:
            assert not loaded_ok, str(exc)
            assert "nested deeper than 254 levels" in str(exc)
        else:
            assert loaded_ok
            from migrator.core.remap import prepare_for_import

            orjson.dumps(prepare_for_import(parsed))


def test_huge_integer_inside_string_is_fine() -> None:
    """Long digit runs inside strings, and large floats, are not mistaken for huge integers."""
    d = doc()
    d["tasks"][0]["parameters"]["big"] = "184467440737095516161844674407370955161"
    d["tasks"][0]["parameters"]["float"] = 1e300
    assert parse_document(raw(d), SRC).data == d


def test_size_limit_names_the_limit() -> None:
    """A file over the configured size limit is refused before parsing, naming the limit."""
    data = raw(doc())
    assert error_of(data, max_bytes=100) == (
        f"in/wf.json: $: file is {len(data)} bytes, over the 100-byte limit (max_document_bytes)"
    )


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1000, 5000, 100_000])
def test_deep_nesting_is_refused(depth: int) -> None:
    """Nesting beyond MAX_DEPTH is an InputError, never a RecursionError or a crash."""
    data = b'{"a":' + b"[" * depth + b"]" * depth + b"}"
    with pytest.raises(InputError, match=r"^in/wf\.json: \$: nested deeper than 254 levels"):
        load_json(data, SRC, max_bytes=1 << 20)


def test_nesting_at_the_limit_is_accepted() -> None:
    """Exactly MAX_DEPTH levels still load (and can be serialised again)."""
    data = b'{"a":' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}"
    loaded = load_json(data, SRC, max_bytes=1 << 20)
    assert orjson.dumps(loaded) == data


def test_deep_data_from_elsewhere_is_refused() -> None:
    """Already-parsed data (a live export) nested too deeply is an InputError too."""
    from migrator.core.document import document_from_data

    d = doc()
    deep: list[Any] = []
    for _ in range(400):
        deep = [deep]
    d["tasks"][0]["parameters"]["deep"] = deep
    with pytest.raises(InputError, match=r"^live: \$: nested deeper than 254 levels$"):
        document_from_data(d, "live")


def test_gzip_bytes_are_not_json() -> None:
    """Compressed bytes handed to the JSON reader fail cleanly (sources decompress first)."""
    assert error_of(gzip.compress(raw(doc()))).startswith("in/wf.json: $: not UTF-8 text")


# ---------------------------------------------------------------- validation


CASES = [
    (delete_at(["workflow"]), "$.workflow: missing"),
    (set_at(["workflow"], None), "$.workflow: is null; must be an object"),
    (set_at(["workflow"], []), "$.workflow: must be an object, got array"),
    (delete_at(["tasks"]), "$.tasks: missing"),
    (set_at(["tasks"], {}), "$.tasks: must be an array, got object"),
    (delete_at(["linkages"]), "$.linkages: missing"),
    (set_at(["linkages"], "x"), "$.linkages: must be an array, got string"),
    (set_at(["tasks"], []), "$.tasks: no tasks — Zuora rejects an empty import"),
    (set_at(["linkages"], []), "$.linkages: no linkages — Zuora rejects an empty import"),
    (
        set_at(["workflow", "name"], ""),
        "$.workflow.name: workflow name is empty; a non-empty string is required",
    ),
    (
        set_at(["workflow", "name"], "  "),
        "$.workflow.name: workflow name is empty; a non-empty string is required",
    ),
    (
        delete_at(["workflow", "name"]),
        "$.workflow.name: workflow name is missing; a non-empty string is required",
    ),
    (
        set_at(["workflow", "name"], 5),
        "$.workflow.name: workflow name is a integer; a non-empty string is required",
    ),
    (delete_at(["workflow", "id"]), "$.workflow.id: missing"),
    (set_at(["workflow", "id"], "7"), "$.workflow.id: must be an integer, got string"),
    (set_at(["tasks", 1, "id"], 4), "$.tasks[1].id: duplicate task id 4 (also $.tasks[0].id)"),
    (set_at(["tasks", 1, "id"], 3.0), "$.tasks[1].id: must be an integer, got the number 3.0"),
    (set_at(["tasks", 1, "id"], True), "$.tasks[1].id: must be an integer, not a boolean"),
    (set_at(["tasks", 1, "id"], "3"), "$.tasks[1].id: must be an integer, got string"),
    (
        set_at(["tasks", 1, "id"], 2**63),
        "$.tasks[1].id: integer 9223372036854775808 is beyond the 64-bit range",
    ),
    (set_at(["tasks", 1, "id"], 1e19), "$.tasks[1].id: number 1e+19 is beyond the 64-bit range"),
    (delete_at(["tasks", 1, "id"]), "$.tasks[1].id: missing"),
    (set_at(["tasks", 1], "task"), "$.tasks[1]: must be an object, got string"),
    (
        set_at(["tasks", 2, "parameters"], []),
        "$.tasks[2].parameters: must be an object, got a array (Zuora's import fails without one)",
    ),
    (
        set_at(["tasks", 2, "parameters"], None),
        "$.tasks[2].parameters: must be an object, got a null (Zuora's import fails without one)",
    ),
    (
        delete_at(["tasks", 2, "parameters"]),
        "$.tasks[2].parameters: must be an object, got missing (Zuora's import fails without one)",
    ),
    (
        set_at(["tasks", 2, "task_id"], 99),
        "$.tasks[2].task_id: parent task 99 is not a task of this document",
    ),
    (set_at(["tasks", 2, "task_id"], "3"), "$.tasks[2].task_id: must be an integer, got string"),
    (
        set_at(["linkages", 1, "target_task_id"], 99),
        "$.linkages[1].target_task_id: links to task 99, which is not in $.tasks",
    ),
    (set_at(["linkages", 1, "target_task_id"], None), "$.linkages[1].target_task_id: missing"),
    (
        set_at(["linkages", 1, "source_task_id"], 98),
        "$.linkages[1].source_task_id: links from task 98, which is not in $.tasks",
    ),
    (
        set_at(["linkages", 1, "source_task_id"], False),
        "$.linkages[1].source_task_id: must be an integer, not a boolean",
    ),
    (
        set_at(["linkages", 1, "source_workflow_id"], 7),
        "$.linkages[1]: needs exactly one of source_workflow_id (entry linkage) and source_task_id",
    ),
    (
        set_at(["linkages", 0, "source_workflow_id"], None),
        "$.linkages[0]: needs exactly one of source_workflow_id (entry linkage) and source_task_id",
    ),
    (
        set_at(["linkages", 0, "source_workflow_id"], 8),
        "$.linkages[0].source_workflow_id: entry linkage points at workflow 8, not this document's workflow.id 7",
    ),
    (set_at(["linkages", 0], "x"), "$.linkages[0]: must be an object, got string"),
    (
        delete_at(["linkages", 0, "linkage_type"]),
        "$.linkages[0].linkage_type: must be a string, got missing",
    ),
    (
        set_at(
            ["linkages"], [{"source_task_id": 4, "target_task_id": 3, "linkage_type": "Success"}]
        ),
        "$.linkages: no entry linkage (one with source_workflow_id = workflow.id starts the workflow)",
    ),
    (
        set_at(["tasks", 0, "action_type"], 3),
        "$.tasks[0].action_type: must be a string, got integer",
    ),
]


@pytest.mark.parametrize(("change", "message"), CASES)
def test_invalid_documents(change: Any, message: str) -> None:
    """Each invalid shape is reported as one line naming the file and the JSON path."""
    assert error_of(mutated(change)) == f"{SRC}: {message}"


def test_error_carries_fields() -> None:
    """InputError keeps source, path and message apart for the report."""
    with pytest.raises(InputError) as info:
        validate_document({"workflow": {}}, "x.json")
    assert (info.value.source, info.value.path) == ("x.json", "$.workflow.name")


def test_unversioned_and_odd_versions() -> None:
    """A missing or malformed workflow.version becomes None rather than an error."""
    for value in (None, "v2", 3):
        d = doc()
        d["workflow"]["version"] = value
        assert parse_document(raw(d), SRC).version is None


def test_calls_are_exposed() -> None:
    """Execute::WorkflowTask tasks are listed with the callee id as a string and its path."""
    d = doc()
    d["tasks"].append(
        {
            "id": 9,
            "action_type": "Execute::WorkflowTask",
            "task_id": 2,
            "parameters": {"workflow_id": 123, "workflow_name": "Callee"},
        }
    )
    d["tasks"].append(
        {
            "id": 10,
            "action_type": "Execute::WorkflowTask",
            "task_id": 9,
            "parameters": {"workflow_id": "{{ Data.W }}"},
        }
    )
    d["linkages"] += [
        {
            "source_workflow_id": None,
            "source_task_id": 2,
            "target_task_id": 9,
            "linkage_type": "Success",
        },
        {
            "source_workflow_id": None,
            "source_task_id": 9,
            "target_task_id": 10,
            "linkage_type": "Success",
        },
    ]
    parsed = parse_document(raw(d), SRC)
    assert parsed.calls == (
        WorkflowCall(9, "123", "Callee", "$.tasks[3].parameters.workflow_id"),
        WorkflowCall(10, "{{ Data.W }}", None, "$.tasks[4].parameters.workflow_id"),
    )
    d["tasks"][3]["parameters"]["workflow_id"] = [1]
    assert (
        error_of(raw(d))
        == f"{SRC}: $.tasks[3].parameters.workflow_id: must be a string or an integer, got array"
    )


# ---------------------------------------------------------------- canonical form


def renumbered(d: dict[str, Any], mapping: dict[int, int]) -> dict[str, Any]:
    out = copy.deepcopy(d)
    for t in out["tasks"]:
        t["id"] = mapping[t["id"]]
        if t.get("task_id") is not None:
            t["task_id"] = mapping[t["task_id"]]
        if isinstance(t.get("object"), str):
            for old, new in mapping.items():
                t["object"] = t["object"].replace(f"__{old}.", f"__#{new}.")
            t["object"] = t["object"].replace("__#", "__")
    for lk in out["linkages"]:
        for key in ("source_task_id", "target_task_id"):
            if lk.get(key) is not None:
                lk[key] = mapping[lk[key]]
    return out


def test_hash_ignores_ids_order_and_server_fields() -> None:
    """Renumbering, reordering and server-managed fields leave the hash unchanged."""
    base = canonical_hash(doc())
    d = renumbered(doc(), {4: 40, 3: 31, 2: 22})
    d["tasks"].reverse()
    d["linkages"].reverse()
    d["workflow"] = dict(reversed(list(d["workflow"].items())))
    d["workflow"].update(
        id=5, version="9.9", status="Active", created_at="x", task_summary={"a": 1}
    )
    for lk in d["linkages"]:
        if lk["source_workflow_id"] is not None:
            lk["source_workflow_id"] = 5
    d["tasks"][0].update(status="Success", error="boom", original_task_id=3, notes="n")
    # A live export's block that only repeats the workflow's own name (issue 23 #2).
    d["workflow_definition"] = {"name": d["workflow"]["name"], "id": 5, "ui_page_roles": []}
    d["$description"] = "skeleton"
    assert canonical_hash(d) == base


def test_hash_counts_what_the_definition_block_adds() -> None:
    """A `workflow_definition` block that says more than the workflow (another name, a category) counts (issue 23 #2)."""
    base = canonical_hash(doc())
    for block in ({"name": "other"}, {"category": "Billing"}):
        d = doc()
        d["workflow_definition"] = block
        assert canonical_hash(d) != base


def test_hash_sees_values_and_shape() -> None:
    """Any parameter value, a linkage type, or which task links where changes the hash."""
    base = canonical_hash(doc())
    changes = [
        set_at(["tasks", 2, "parameters", "count"], "2001"),
        set_at(["tasks", 2, "parameters", "count"], 2000),
        set_at(["linkages", 2, "linkage_type"], "Complete"),
        set_at(["workflow", "name"], "Resume2"),
        set_at(["tasks", 2, "task_id"], 4),
        set_at(["linkages", 2, "source_task_id"], 4),
        set_at(["workflow", "timezone"], "UTC"),  # a kept key (a top-level extra is dropped)
    ]
    for change in changes:
        d = doc()
        change(d)
        assert canonical_hash(d) != base


def test_file_ref_points_to_its_producer() -> None:
    """Pointing a file reference at another task changes the hash; renaming the ids does not."""
    d = doc()
    d["tasks"][1]["object"] = "Subscription__2.csv.zip"
    assert canonical_hash(d) != canonical_hash(doc())


def test_merge_fields_are_ignored() -> None:
    """Logic::Merge's server-computed merge ids do not count."""
    d = doc()
    d["tasks"][2]["action_type"] = "Logic::Merge"
    a = canonical_hash(d)
    d["tasks"][2]["parameters"].update(
        merge_paths=[[1, 2]], merge_start="workflow", merge_task_ids=[4]
    )
    d["workflow"]["parameters"]["merge_task_ids"] = [1]
    assert canonical_hash(d) == a


def test_canonical_form_is_plain_json_and_matches_hash() -> None:
    """canonical_form is JSON data whose sorted serialisation is what the hash covers."""
    import hashlib

    form = canonical_form(doc())
    assert "id" not in form["workflow"]
    assert [t["task"]["name"] for t in form["tasks"]]
    assert hashlib.sha256(
        orjson.dumps(form, option=orjson.OPT_SORT_KEYS)
    ).hexdigest() == canonical_hash(doc())


def test_symmetric_graph_is_stable() -> None:
    """Identical tasks in symmetric positions hash the same whatever their ids."""
    d = doc()
    d["tasks"].append(
        {
            "id": 1,
            "name": "Mail",
            "action_type": "Email",
            "task_id": 3,
            "parameters": copy.deepcopy(d["tasks"][2]["parameters"]),
        }
    )
    d["linkages"].append(
        {
            "source_workflow_id": None,
            "source_task_id": 3,
            "target_task_id": 1,
            "linkage_type": "For Each",
        }
    )
    swapped = renumbered(d, {4: 4, 3: 3, 2: 1, 1: 2})
    assert canonical_hash(swapped) == canonical_hash(d)
    assert len(canonical_task_order(d)) == 4


def test_task_order_is_content_based() -> None:
    """canonical_task_order depends on content and shape, not on ids."""
    a = canonical_task_order(doc())
    b = canonical_task_order(renumbered(doc(), {4: 1, 3: 2, 2: 3}))
    assert [{4: 1, 3: 2, 2: 3}[x] for x in a] == b
