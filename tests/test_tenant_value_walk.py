"""find_tenant_values' fast path (skip the generic walk when no needle occurs) finds exactly what
the plain walk finds, in the same order, on generated documents with values planted anywhere."""

from __future__ import annotations

import copy
import re
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from migrator.core.remap import SAVED_PROVIDER_PREFIX, TenantValue, find_tenant_values
from tests.strategies import documents, json_values, text

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_KEYS = {"s3_provider_id": "s3_provider", "meter_id": "meter", "zuora_org_id": "org_id",
         "zuora_org_ids": "org_id"}  # fmt: skip


def _is_literal(value: Any) -> bool:
    return (
        isinstance(value, (str, int))
        and not isinstance(value, bool)
        and str(value) != ""
        and not (isinstance(value, str) and value.lstrip().startswith(("{{", "{%")))
    )


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _IDENT.match(key):
        return f"{path}.{key}"
    return f"{path}[{orjson.dumps(key).decode()}]"


def oracle_walk(data: Any) -> list[TenantValue]:
    """The generic walk as first written: a path string for every node, no shortcut."""
    found: list[TenantValue] = []
    stack: list[tuple[str, Any, str | None]] = [("$", dict(data), None)]
    while stack:
        path, value, kind = stack.pop()
        if isinstance(value, dict):
            for key, child in reversed(list(value.items())):
                stack.append((_child(path, key), child, _KEYS.get(key)))
        elif isinstance(value, list):
            for index in range(len(value) - 1, -1, -1):
                stack.append((_child(path, index), value[index], kind))
        elif isinstance(value, str) and value.startswith(SAVED_PROVIDER_PREFIX):
            found.append(TenantValue(path, "saved_provider", value))
        elif kind is not None and _is_literal(value):
            found.append(TenantValue(path, kind, str(value)))
    return found


planted = st.one_of(
    st.builds(lambda s: SAVED_PROVIDER_PREFIX + s, text),
    st.builds(lambda k, v: {k: v}, st.sampled_from(sorted(_KEYS)), json_values),
    json_values,
)


@st.composite
def documents_with_values(draw: st.DrawFn) -> dict[str, Any]:
    doc = copy.deepcopy(draw(documents()))
    for _ in range(draw(st.integers(0, 3))):
        task = draw(st.sampled_from(doc["tasks"]))
        key = draw(st.one_of(st.sampled_from(sorted(_KEYS)), text))
        task["parameters"][key] = draw(planted)
    return doc


@given(doc=documents_with_values())
def test_generic_walk_matches_the_plain_walk(doc: dict[str, Any]) -> None:
    """Whatever is planted where, the values found by the generic walk are the plain walk's, in order."""
    found = find_tenant_values(doc)
    walk = oracle_walk(doc)
    # The typed checks (entity, report id, callout URL) come first; the walk's findings follow.
    assert found[len(found) - len(walk) :] == walk


def test_document_without_needles_skips_the_walk_and_finds_nothing_more() -> None:
    """A document holding no saved provider and no tenant key yields only the typed findings."""
    doc = {"workflow": {"id": 1, "name": "w", "parameters": {}}, "linkages": [],
           "tasks": [{"id": 1, "name": "e", "action_type": "Email", "parameters": {"body": "hi"}}]}  # fmt: skip
    assert find_tenant_values(doc) == oracle_walk(doc) == []


def test_unserialisable_values_fall_back_to_the_walk() -> None:
    """Integers beyond 64 bits make orjson refuse the fast check; the walk still runs and finds the value."""
    doc = {"workflow": {"id": 1, "name": "w"}, "linkages": [],
           "tasks": [{"id": 1, "action_type": "Email", "parameters": {"big": 2**70, "meter_id": "m-1"}}]}  # fmt: skip
    assert (
        find_tenant_values(doc)
        == oracle_walk(doc)
        == [TenantValue("$.tasks[0].parameters.meter_id", "meter", "m-1")]
    )
