"""A drift report that exercises every part of the HTML page: a fan-out graph (Case_1, Case_2,
Case_Else) drifted on one tenant, a missing and an extra workflow, a tenant that could not be
read, long and hostile names. Used by the real-browser test and for looking at the page."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from migrator.core.drift import (
    DriftReport,
    HeldWorkflow,
    TenantDrift,
    Unreadable,
    compare_tenant,
    failed_tenant,
)

HOSTILE = "<img src=x onerror=alert(1)> \u202e\x1b[31m"
BLOCKED = "task 'Only step' names Account.Region__c, which the tenant does not have"


def _link(src: int | None, tgt: int, kind: str) -> dict[str, Any]:
    return {
        "source_workflow_id": 7 if src is None else None,
        "source_task_id": src,
        "target_task_id": tgt,
        "linkage_type": kind,
    }


def _task(tid: int, name: str, action: str, parent: int | None, **params: Any) -> dict[str, Any]:
    return {"id": tid, "name": name, "action_type": action, "task_id": parent, "parameters": params}


def routing_flow() -> dict[str, Any]:
    """Query → Case with four outcomes, each its own e-mail or callout, two of them then a log."""
    tasks = [
        _task(1, "Load overdue invoices", "Query", None, query="select Id from Invoice"),
        _task(2, "Route by region", "Logic::Case", 1, field="{{ Data.Region }}"),
        _task(3, "Send EU reminder", "Email", 2, email={"subject": "Reminder", "to": "eu@x"}),
        _task(4, "Send US reminder", "Email", 2, email={"subject": "Reminder", "to": "us@x"}),
        _task(5, "Call APAC collections", "Callout", 2, url="https://apac.example/hook"),
        _task(6, "Flag for review", "Update", 2, object="Invoice"),
        _task(7, "Log EU outcome", "Logic::JSONTransform", 3),
        _task(8, "Log US outcome", "Logic::JSONTransform", 4),
    ]
    links = [
        _link(None, 1, "Start"),
        _link(1, 2, "Success"),
        _link(2, 3, "Case_1"),
        _link(2, 4, "Case_2"),
        _link(2, 5, "Case_3"),
        _link(2, 6, "Case_Else"),
        _link(3, 7, "Success"),
        _link(4, 8, "Success"),
    ]
    return {
        "workflow": {"id": 7, "name": "Dunning by region", "version": "1.2.0", "parameters": {}},
        "tasks": tasks,
        "linkages": links,
    }


def edited_routing_flow() -> dict[str, Any]:
    """The same, edited by hand on a tenant: a subject changed, a task added, a linkage removed."""
    doc = copy.deepcopy(routing_flow())
    doc["tasks"][2]["parameters"]["email"]["subject"] = "Final reminder"
    doc["tasks"].append(_task(9, "Notify account owner", "Email", 6, email={"subject": "FYI"}))
    doc["linkages"].append(_link(6, 9, "Success"))
    doc["linkages"] = [x for x in doc["linkages"] if x["target_task_id"] != 8]
    doc["tasks"] = [t for t in doc["tasks"] if t["id"] != 8]
    return doc


def simple_flow(name: str) -> dict[str, Any]:
    return {
        "workflow": {"id": 7, "name": name, "version": "0.0.1", "parameters": {}},
        "tasks": [_task(1, "Only step", "Email", None, email={"subject": name})],
        "linkages": [_link(None, 1, "Start")],
    }


def sample_report(tenants: int = 6) -> DriftReport:
    """`tenants` tenants (at least 3): the first drifted on the fan-out, missing one workflow and
    with one that a migration would block (a reference check), the second with an extra and a
    failed export, the last unreadable, the rest in sync."""
    names = [
        "Dunning by region",
        "Invoice sync to the data warehouse (nightly, all entities)",
        "Payment retry",
        HOSTILE,
    ]
    sources: dict[str, Any] = {n: simple_flow(n) for n in names}
    sources["Dunning by region"] = routing_flow()
    in_sync = {
        n: HeldWorkflow(10 + i, "0.0.1", copy.deepcopy(d))
        for i, (n, d) in enumerate(sources.items())
    }
    columns: list[TenantDrift] = []
    first = dict(in_sync)
    first["Dunning by region"] = HeldWorkflow(5, "1.1.0", edited_routing_flow())
    del first["Payment retry"]
    production = compare_tenant("production-eu.example.com", sources, first)
    blocked = tuple(
        dataclasses.replace(w, references=(BLOCKED,)) if w.name == names[1] else w
        for w in production.workflows
    )
    columns.append(dataclasses.replace(production, workflows=blocked))
    second: dict[str, HeldWorkflow | Unreadable] = dict(in_sync)
    second["Legacy cleanup (hand made)"] = HeldWorkflow(40, "0.0.3", simple_flow("Legacy"))
    second["Payment retry"] = Unreadable("export of version 77 failed: HTTP 500 after 6 attempts")
    columns.append(compare_tenant("sandbox-us", sources, second))
    for i in range(tenants - 3):
        columns.append(compare_tenant(f"tenant-{i:02d}", sources, in_sync))
    columns.append(failed_tenant("apac-prod", names, "login failed: 401 (credentials rejected)"))
    return DriftReport(tuple(columns))
