"""`migrator status`: where a journal stands, per tenant, and what the next run would do.

Read-only: takes no lock and changes nothing, so it is safe while a migration is running.
"""

from __future__ import annotations

import argparse
from typing import Any

import orjson

from migrator.commands._common import EXIT_ITEMS, EXIT_OK, _common
from migrator.core.journal_records import ItemState, Record, runs
from migrator.core.logs import printable
from migrator.render.help import described
from migrator.store.journal import read_state
from migrator.store.workspace import Workspace

NEXT_STEP = {
    "in_doubt": "resend with the same Idempotency-Key (a replay if it had landed), after checking the target",
    "deferred": "retry",
    "failed": "leave as failed (send again with --retry-failed)",
    "pending": "import",
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
    for tenant, per in counts.items():
        tenants[tenant] = {
            "counts": dict(per),
            **listed[tenant],
            "next_run": {
                s: NEXT_STEP[s] for s, n in per.items() if n and NEXT_STEP[s] != "nothing"
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


def journal_status(path: str, *, as_json: bool = False) -> tuple[str, bool]:
    """Text (or JSON) for `migrator status`, and whether everything is settled."""
    data = status_data(path)
    unsettled = any(
        t["counts"].get(s, 0)
        for t in data["tenants"].values()
        for s in ("failed", "in_doubt", "deferred", "pending")
    )
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
    if as_json:
        return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode(), not unsettled
    lines = [f"journal {path}: {data['runs']} run(s)"]
    if no_run:
        lines.append(
            "the journal has no run: it records nothing, so nothing is settled "
            "(check the path; a migrate run writes its journal with --journal)"
        )
    if data["runs"] and not data["last_run_finished"]:
        lines.append(
            "the last run did not finish (crashed or killed): run the same command again to resume"
        )
    elif data["last_run_interrupted"]:
        lines.append("the last run was interrupted: run the same command again to resume")
    if left:
        lines.append(
            "the last run left work undone: "
            + ", ".join(f"{k} {n}" for k, n in left.items())
            + " (the run's report lists each)"
        )
    for notice in data["notices"]:
        lines.append(f"note: {notice}")
    header = f"{'tenant':<20} {'done':>6} {'skipped':>8} {'failed':>7} {'in doubt':>9} {'deferred':>9} {'pending':>8}"
    lines += ["", header, "-" * len(header)]
    for tenant, t in data["tenants"].items():
        c = t["counts"]
        lines.append(
            f"{printable(tenant):<20} {c['done']:>6} {c['skipped']:>8} {c['failed']:>7} {c['in_doubt']:>9} {c['deferred']:>9} {c['pending']:>8}"
        )
    for tenant, t in data["tenants"].items():
        for kind in ("failures", "in_doubt", "deferred"):
            for it in t[kind]:
                label = {"failures": "failed", "in_doubt": "in doubt", "deferred": "deferred"}[kind]
                lines.append(
                    f"  {label}: {tenant}: {it['name'] or it['item'][:12]} ({it['source']}): {it['reason'] or ''}".rstrip(
                        ": "
                    )
                )
        if t["next_run"]:
            lines.append(
                f"  next run for {tenant}: "
                + "; ".join(f"{s}: {w}" for s, w in t["next_run"].items())
            )
    # Tenant names, workflow names, sources and reasons come from documents and servers.
    return "\n".join(printable(line) for line in lines), not unsettled


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `migrator status`."""
    s = sub.add_parser(
        "status",
        help="where a journal stands: done, failed, in doubt, pending",
        **described(
            "Say where a run's journal stands, per tenant: done, skipped, failed (with"
            " reasons), in doubt, deferred, and what the next run of the same command would do."
            " Reads only the journal; contacts no tenant.",
            exits={
                0: "the journal's work is settled",
                1: "something is left for another run, or the journal records no run",
                2: "the journal is missing or damaged",
            },
            example="migrator status --journal run.jsonl",
        ),
    )
    s.set_defaults(func=cmd_status)
    s.add_argument(
        "--journal", required=True, metavar="FILE", help="the journal of the run to describe"
    )
    s.add_argument("--json", action="store_true", help="print the status as JSON")
    _common(s, config=False)


def cmd_status(args: argparse.Namespace) -> int:
    text, ok = journal_status(args.journal, as_json=args.json)
    print(text)
    return EXIT_OK if ok else EXIT_ITEMS
