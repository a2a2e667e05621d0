"""`migrator status` for people: the journal's standing (`run/status.status_data`) as text, in
the shape of every command's outcomes (notes, counts table, listed items, verdict). Pure."""

from __future__ import annotations

from typing import Any

from migrator.render.outcomes import counts_rows, human_lines

# The table's columns: run/status.Standing, in its order (render/ does not import run/).
COLUMNS = ("done", "skipped", "failed", "in_doubt", "deferred")


def render_status(data: dict[str, Any], settled: bool | None = None) -> str:
    """The header notes, the counts table (the one every command's outcomes use), every listed
    item of a journal's standing, and (given whether it is settled) the verdict line."""
    path = data["journal"]
    no_run = not data["runs"] and not data["tenants"]
    left = {
        k: n for k in ("failed", "deferred", "blocked") if (n := data["last_run_counts"].get(k))
    }
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
    # The table counts what the journal records per item; the last run's report may count more
    # (blocked items, an unreadable source, a tenant it could not read): say only that part, so
    # the header never gives a number the table contradicts.
    in_table = {k: sum(t["counts"].get(k, 0) for t in data["tenants"].values()) for k in left}
    unseen = {k: n - in_table[k] for k, n in left.items() if n > in_table[k]}
    if unseen:
        lines.append(
            "the last run left work undone that the journal does not record item by item: "
            + ", ".join(f"{k} {n}" for k, n in unseen.items())
            + " (blocked, unreadable, or a tenant it could not read; the run's report lists each)"
        )
    elif left:
        lines.append("the last run left work undone: see the table below")
    for notice in data["notices"]:
        lines.append(f"note: {notice}")
    per = {tenant: t["counts"] for tenant, t in data["tenants"].items()}
    lines += ["", *counts_rows(per, COLUMNS, labels={"in_doubt": "in doubt"})]
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
    if settled is not None:
        lines.append(status_summary(per, settled))
    # Tenant names, workflow names, sources and reasons come from documents and servers.
    return human_lines(lines)


def status_summary(per: dict[str, dict[str, int]], settled: bool) -> str:
    """The verdict line, counted from the same rows as the table above it."""
    totals = {s: sum(row.get(s, 0) for row in per.values()) for s in COLUMNS}
    said = ", ".join(f"{s.replace('_', ' ')} {n}" for s, n in totals.items() if n)
    verdict = "settled" if settled else "not settled"
    return (
        f"migrator status: {verdict}"
        + (f": {said}" if said else "")
        + (f" across {len(per)} tenant(s)")
    )
