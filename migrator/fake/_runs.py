"""Workflow runs in the fake (§3.10, §3.11): the run record and what a poll of it shows at a time.

Pure: a run's status is a function of the clock (Processing until `created_at + duration`, then
Finished), so no timer or sleep lives anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# §3.10: keys a run body may not use.
RESERVED_RUN_KEYS = frozenset({"controller", "action", "id", "user_email", "user_token", "format"})


@dataclass
class Run:
    """One `Workflow::Instance`: which setup (version) it runs and when it finishes."""

    id: int
    name: str
    definition_id: int
    version_id: int
    task_count: int
    created_at: float
    duration: float
    fails: bool  # finishes with one task in Error (the tenant's `failing_runs` knob)
    parameters: dict[str, Any]


def run_name(version_id: int, counter: int) -> str:
    """`WF-<setupId>-<8-digit counter>` (§2 [O/I], e.g. `WF-396-00000003`)."""
    return f"WF-{version_id}-{counter:08d}"


def run_timestamp(now: float) -> str:
    """The `2019-09-19 18:25:33 UTC` form of the run examples (§3 casing notes)."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _cpu_time(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def run_started_json(run: Run) -> dict[str, Any]:
    """§3.10 200 body: the new instance, `Queued` as in the documented example."""
    created = run_timestamp(run.created_at)
    return {
        "id": run.id,
        "name": run.name,
        "originalWorkflowId": run.version_id,
        "status": "Queued",
        "type": "Workflow::Instance",
        "createdAt": created,
        "updatedAt": created,
    }


def run_json(run: Run, now: float) -> dict[str, Any]:
    """§3.11 body at time `now`: `Processing` until the duration has passed, then `Finished`."""
    finished = now >= run.created_at + run.duration
    total = run.task_count
    tasks = dict.fromkeys(("error", "pending", "processing", "queued", "stopped", "success"), 0)
    if not finished:
        tasks["processing"] = min(1, total)
        tasks["queued"] = total - tasks["processing"]
    elif run.fails:
        # One task ended in Error; the ones after it never ran, so they count as nothing.
        tasks["error"] = min(1, total)
        tasks["success"] = max(0, total - 1)
    else:
        tasks["success"] = total
    tasks["total"] = total
    end = run.created_at + run.duration
    elapsed = (end if finished else now) - run.created_at
    return {
        "id": run.id,
        "name": run.name,
        "type": "Workflow::Instance",
        "originalWorkflowId": run.version_id,
        "status": "Finished" if finished else "Processing",
        "cpuTime": _cpu_time(elapsed),
        "runTime": round(elapsed, 6),
        "createdAt": run_timestamp(run.created_at),
        "updatedAt": run_timestamp(end if finished else now),
        "finishedAt": run_timestamp(end) if finished else None,
        "tasks": tasks,
    }
