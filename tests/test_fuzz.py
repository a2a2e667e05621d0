"""Fuzzing the input path: whatever the bytes or the shape, only InputError comes out, and every
document that does pass survives the remapper valid and with its hash."""

from __future__ import annotations

import os
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrator.core.canonical import canonical_hash
from migrator.core.document import (
    ExportDocument,
    document_from_data,
    parse_document,
    validate_document,
)
from migrator.core.errors import InputError
from migrator.core.remap import apply_substitutions, find_tenant_values, prepare_for_import
from tests.strategies import (
    hostile_values_inside,
    json_values,
    mutated_bytes,
    mutated_documents,
    text,
)

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("MIGRATOR_FUZZ_EXAMPLES", "200"))
fuzz = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)


def survives_remap(doc: ExportDocument, subs: dict[str, str] | None = None) -> None:
    payload = prepare_for_import(doc)
    validate_document(payload, "payload")
    assert canonical_hash(payload) == doc.content_hash
    find_tenant_values(payload)
    if subs:
        prepare_for_import(doc, substitutions=subs, call_targets={c.task_id: 5 for c in doc.calls})
        apply_substitutions(doc.data, subs)


@fuzz
@given(mutated_bytes())
def test_damaged_bytes_only_raise_input_error(raw: bytes) -> None:
    """Truncated, flipped, spliced, deep or huge-number bytes give InputError or a sound document."""
    try:
        doc = parse_document(raw, "fuzz.json", max_bytes=1 << 20)
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    survives_remap(doc)


@fuzz
@given(st.one_of(st.binary(max_size=200), json_values.map(orjson.dumps)))
def test_random_bytes_are_refused_in_one_line_naming_the_file(raw: bytes) -> None:
    """Arbitrary bytes, and arbitrary JSON texts that get past the JSON check, are refused with one InputError line naming the file and the place."""
    with pytest.raises(InputError) as info:
        parse_document(raw, "fuzz.json", max_bytes=1 << 20)
    text = str(info.value)
    assert "\n" not in text and text.startswith("fuzz.json: $"), text


@fuzz
@given(mutated_documents(), st.dictionaries(text, text, max_size=2))
def test_mutated_documents_only_raise_input_error(data: Any, subs: dict[str, str]) -> None:
    """A valid document with one value replaced or removed is either refused or fully usable."""
    raw = orjson.dumps(data)
    try:
        doc = parse_document(raw, "fuzz.json", max_bytes=1 << 20)
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    survives_remap(doc, subs)


@fuzz
@given(json_values)
def test_arbitrary_json_only_raises_input_error(data: Any) -> None:
    """Any JSON value handed to the validator directly is refused with InputError."""
    with pytest.raises(InputError):
        document_from_data(data, "fuzz.json")


@fuzz
@given(hostile_values_inside())
def test_parse_agrees_with_load_json(raw: bytes) -> None:
    """Deep nesting or a huge integer anywhere: parse_document refuses it exactly when load_json
    does (for depth and huge integers), and whatever it accepts serialises again."""
    from migrator.core.document import load_json

    try:
        load_json(raw, "fuzz.json", max_bytes=1 << 20)
        loadable = True
    except InputError:
        loadable = False
    try:
        doc = parse_document(raw, "fuzz.json", max_bytes=1 << 20)
    except InputError as exc:
        assert (
            not loadable or "workflow" in str(exc) or "tasks" in str(exc) or "linkages" in str(exc)
        ), str(exc)
        return
    assert loadable
    orjson.dumps(prepare_for_import(doc))
