"""Builders of small export documents shared by the tests (one place, not one copy per file)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


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
