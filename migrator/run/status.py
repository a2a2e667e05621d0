"""Reading a journal for `migrator status`: where it stands, per tenant, and what the next run would do.

Read-only: takes no lock and changes nothing, so it is safe while a migration is running.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from migrator.core.journal_records import ItemState, Record, runs
from migrator.store.journal import read_state
from migrator.store.workspace import Workspace


class Standing(StrEnum):
    """What `migrator status` says of one item (its columns, in order, and its JSON counts)."""

    DONE = "done"  # imported (by any run of the journal)
    SKIPPED = "skipped"  # nothing to do: identical, or a duplicate
    FAILED = "failed"  # refused by the tenant: sent again only with --retry-failed
    IN_DOUBT = "in_doubt"  # sent, no answer: may have landed
    # Left for the next run: a transient failure, or planned by the last run and never reached
    # (stopped, killed, credentials refused, a rollout wave held). The run's report says the
    # same word; journals fold the never-reached ones as `pending`, which `counts` still shows
    # beside (and inside) `deferred` for one release.
    DEFERRED = "deferred"


# Standings that leave work for another run (status exits 1).
UNSETTLED = (Standing.FAILED.value, Standing.IN_DOUBT.value, Standing.DEFERRED.value)

NEXT_STEP = {
    "in_doubt": "resend with the same Idempotency-Key (a replay if it had landed), after checking the target",
    "deferred": "send (again)",
    "failed": "leave as failed (send again with --retry-failed)",
    "done": "nothing",
    "skipped": "nothing",
}


# The statuses status lists item by item, and the key each list has in its output.
_LISTED = {"failed": "failures", "in_doubt": "in_doubt", "deferred": "deferred"}
_RUN_RECORDS = ("run_started", "run_finished")  # the records status keeps (a few per run)


def status_data(path: str) -> dict[str, Any]:
    """The journal's standing as plain data (what `--json` prints).

    The journal is read a line at a time and folded into a workspace table, so a journal of
    100,000 items is summed up in constant memory; only the items listed (failed, in doubt,
    deferred) are held.
    """
    store = Workspace()
    try:
        state = store.journal_state()

        def watch(record: Record) -> None:
            # What the last run planned to send: an item it never recorded is pending.
            # `activate` and `rollback` runs (`command`) plan nothing: they leave it as it was.
            if record.type == "run_started" and not record.get("command"):
                state.clear_expected()
            elif record.type == "planned":
                state.expect(str(record.get("tenant")), map(str, record.get("items") or ()))

        history, notices = read_state(path, state, keep=_RUN_RECORDS, watch=watch)
        counts = state.counts()
        listed: dict[str, dict[str, list[dict[str, Any]]]] = {
            tenant: {kind: [] for kind in _LISTED.values()} for tenant in counts
        }
        for st in state.with_status(_LISTED):
            listed[st.tenant][_LISTED[st.status]].append(_item(st))
    finally:
        store.close()
    tenants: dict[str, Any] = {}
    for tenant, folded in counts.items():
        per = _standing(folded)
        tenants[tenant] = {
            "counts": per,
            **listed[tenant],
            "next_run": {
                s.value: NEXT_STEP[s] for s in Standing if per[s] and NEXT_STEP[s] != "nothing"
            },
        }
    all_runs = runs(history)
    migrations = [r for r in all_runs if not r.started.get("command")]
    last = migrations[-1] if migrations else None
    return {
        "journal": path,
        "runs": len(all_runs),
        "last_run_finished": bool(last and last.finished is not None),
        "last_run_interrupted": bool(
            last and last.finished is not None and last.finished.get("interrupted")
        ),
        # The last finished run's report counts: they include items the journal never records
        # (blocked, or deferred with their whole tenant when its target could not be read).
        "last_run_counts": dict(last.finished.get("counts") or {})
        if last and last.finished is not None
        else {},
        "notices": notices,
        "tenants": tenants,
    }


def _standing(folded: Mapping[str, int]) -> dict[str, int]:
    """The journal's folded counts in status's words: an item never reached (`pending` in the
    fold) is `deferred`, as the run's report calls it. `pending` stays, a part of `deferred`
    already, for one release (docs/journal.md)."""
    per = {
        s: folded.get(s, 0)
        for s in ("pending", "in_doubt", "done", "failed", "deferred", "skipped")
    }
    per["deferred"] += per["pending"]
    return per


def _item(st: ItemState) -> dict[str, Any]:
    return {
        "item": st.item,
        "name": st.name,
        "source": st.source,
        "version": st.version,
        "target_definition_id": st.target_definition_id,
        "reason": st.reason,
        "attempts": st.attempts,
    }


def is_settled(data: dict[str, Any]) -> bool:
    """Whether the journal's standing (`status_data`) leaves nothing for another run."""
    unsettled = any(t["counts"].get(s, 0) for t in data["tenants"].values() for s in UNSETTLED)
    # A run that stopped early never journaled the documents it did not reach: not settled.
    stopped_early = bool(data["runs"]) and (
        not data["last_run_finished"] or data["last_run_interrupted"]
    )
    left = {
        k: n for k in ("failed", "deferred", "blocked") if (n := data["last_run_counts"].get(k))
    }
    # A journal that records no run (empty, or nothing but an incomplete line such as the NULs a
    # crash can leave) settles nothing: wrong path, or a run that died before it began.
    no_run = not data["runs"] and not data["tenants"]
    unsettled = unsettled or stopped_early or bool(left) or no_run
    return not unsettled
