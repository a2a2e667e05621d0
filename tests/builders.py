"""Builders of small export documents shared by the tests (one place, not one copy per file)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from migrator.fake import FakeConfig
from tests.conftest import SAMPLES


def small_export(name: str = "Resume") -> dict[str, Any]:
    """A small valid export: Export → Iterate (file ref) → Email, entry edge from workflow 7.

    A new object on every call, so tests may change it freely.
    """
    return {
        "workflow": {
            "id": 7,
            "name": name,
            "version": "0.0.2",
            "type": "Workflow::Setup",
            "parameters": {"fields": []},
        },
        "tasks": [
            {
                "id": 4,
                "name": "Export",
                "action_type": "Export",
                "object": "Subscription",
                "task_id": None,
                "parameters": {"fields": {"Subscription": {"Id": "true"}}},
            },
            {
                "id": 3,
                "name": "Iterate",
                "action_type": "Iterate",
                "object": "Subscription__4.csv.zip",
                "task_id": 4,
                "parameters": {"iteration_type": "Default"},
            },
            {
                "id": 2,
                "name": "Mail",
                "action_type": "Email",
                "task_id": 3,
                "parameters": {"email": {"template": "<p>\r\n{{ Data.X }}</p>"}, "count": "2000"},
            },
        ],
        "linkages": [
            {
                "source_workflow_id": 7,
                "source_task_id": None,
                "target_task_id": 4,
                "linkage_type": "Start",
            },
            {
                "source_workflow_id": None,
                "source_task_id": 4,
                "target_task_id": 3,
                "linkage_type": "Success",
            },
            {
                "source_workflow_id": None,
                "source_task_id": 3,
                "target_task_id": 2,
                "linkage_type": "For Each",
            },
        ],
    }


def set_at(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    """A change that sets the value at `path` (keys and indexes) of a document."""

    def change(d: dict[str, Any]) -> None:
        target = d
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def delete_at(path: list[Any]) -> Callable[[dict[str, Any]], None]:
    """A change that deletes the value at `path` of a document."""

    def change(d: dict[str, Any]) -> None:
        target = d
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return change


# ---------------------------------------------------------------------------------------------
# Callers and callees


CALLEE = SAMPLES / "09-price-lookup-service.json"


CALLER = SAMPLES / "10-quote-enrichment.json"


CALLEE_NAME = "Price Lookup Service"


CALLER_NAME = "Quote Enrichment"


# ---------------------------------------------------------------------------------------------
# A workflow with links, for the drift renderers


def link(src: int | None, tgt: int, ltype: str, workflow_id: int = 7) -> dict[str, Any]:
    return {
        "source_workflow_id": workflow_id if src is None else None,
        "source_task_id": src,
        "target_task_id": tgt,
        "linkage_type": ltype,
    }


def reminder_flow() -> dict[str, Any]:
    """Check balance → (True) Send reminder, (False) Log; one e-mail subject to change."""
    return {
        "workflow": {"id": 7, "name": "Dunning", "version": "0.0.1", "parameters": {}},
        "tasks": [
            {
                "id": 1,
                "name": "Check balance",
                "action_type": "Logic::If",
                "task_id": None,
                "parameters": {"if_clause": "{{ Data.Balance }} > 0"},
            },
            {
                "id": 2,
                "name": "Send reminder",
                "action_type": "Email",
                "task_id": 1,
                "parameters": {"email": {"subject": "A", "to": "x@example.com"}},
            },
            {"id": 3, "name": "Log", "action_type": "Log", "task_id": 1, "parameters": {}},
        ],
        "linkages": [link(None, 1, "Start"), link(1, 2, "True"), link(1, 3, "False")],
    }


# ---------------------------------------------------------------------------------------------
# The samples


def sample_docs() -> list[Any]:
    docs = []
    for path in sorted(SAMPLES.rglob("*.json*")):
        if path.name.endswith((".json", ".json.gz")) and path.parent.name != "tenant-specific":
            from migrator.store.sources import SourceItem, read_document

            docs.append(
                read_document(
                    SourceItem(path=str(path), member=None, definition_id=None, sha256=None),
                    max_bytes=1 << 26,
                )
            )
    return docs


# ---------------------------------------------------------------------------------------------
# Variant configurations


ALL_BUT_FILE_REFS = "all-flipped-but-file-refs"


def _config(variant: str) -> FakeConfig:
    if variant == ALL_BUT_FILE_REFS:
        return replace(FakeConfig.demo(1).with_variant("all-flipped"), rewrite_file_refs=True)
    return FakeConfig.demo(1).with_variant(variant)
