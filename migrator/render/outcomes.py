"""Commands' outcomes for people: `verify`'s, `activate`'s and `rollback`'s reports as text. Pure: a report in,
printable lines out — every line goes through `human_lines` (escaping built in) and secrets a
server echoed are redacted. Counts come from the report's own statuses (`Report.statuses`), so a
summary line and the table above it count the same rows.
"""

from __future__ import annotations

from migrator.core.logs import redact_text
from migrator.core.report import GROUP_AT, Report, counts_rows, counts_table, human_lines
from migrator.core.rollback import ROLLBACK_STATUSES


def _totals(report: Report) -> tuple[int, int, int]:
    """(tenants, items, verified items), counted by the report (in the workspace for a run)."""
    per = report.per_tenant()
    total = sum(sum(row.values()) for row in per.values())
    return len(per), total, sum(row.get("verified", 0) for row in per.values())


def render_verify(report: Report) -> str:
    """Counts per tenant, then every item that is not verified."""
    lines = counts_rows(report.per_tenant(), report.statuses)
    unverified = [i for i in report.ordered() if i.status != "verified"]
    if unverified:
        lines += ["", "not verified:"]
    # A tenant-wide cause (credentials refused, host unreachable) is said once per tenant.
    shared: dict[tuple[str, str, str], int] = {}
    for i in unverified:
        if i.error:
            key = (i.tenant, i.status, i.error)
            shared[key] = shared.get(key, 0) + 1
    grouped = {key for key, n in shared.items() if n > GROUP_AT}
    for tenant, status, error in sorted(grouped):
        lines.append(f"  {status:<8} {tenant}: {shared[(tenant, status, error)]} items: {error}")
    for i in unverified:
        if (i.tenant, i.status, i.error or "") in grouped:
            continue
        lines.append(
            f"  {i.status:<8} {i.tenant}: {i.workflow_name or i.source}"
            f"{f' ({i.source})' if i.workflow_name else ''}: {i.error or i.reason or ''}"
        )
    # What it could not see (a tenant without a versions list, issue 23).
    lines += [f"note: {notice}" for notice in report.notices]
    tenants, total, ok = _totals(report)
    verdict = "ok" if total > 0 and ok == total else "attention needed"
    lines.append(f"migrator verify: {verdict}: {ok} of {total} verified across {tenants} tenant(s)")
    # Names come from documents and tenants: no control character gets out.
    return redact_text(human_lines(lines))


def render_activate(report: Report) -> str:
    """Counts per tenant, every switch made or planned, every failure."""
    lines = counts_table(report.items, report.statuses)
    shown = [
        i for i in report.ordered() if i.status in ("activated", "planned", "failed", "deferred")
    ]
    if shown:
        lines.append("")
    for i in shown:
        lines.append(
            f"  {i.status:<9} {i.tenant}: {i.workflow_name} version {i.version} "
            f"(definition {i.target_workflow_id}): {i.error or i.reason or ''}"
        )
    for notice in report.notices:
        lines.append(f"note: {notice}")
    lines.append(activate_summary_line(report))
    # Names come from the journal, the tenants and the config: no control character gets out.
    return redact_text(human_lines(lines))


def activate_summary_line(report: Report) -> str:
    """The verdict line, counted from the same rows as the table above it (skipped: already
    active, or a lower version of a definition switched on); a dry run counts what it would
    switch on."""
    counts = report.summary()
    verdict = "ok" if report.ok else "attention needed"
    done = (
        f"would activate {counts['planned']}"
        if counts["planned"]
        else f"activated {counts['activated']}"
    )
    deferred = f", deferred {counts['deferred']}" if counts["deferred"] else ""
    return (
        f"migrator activate: {verdict}: {done}, skipped {counts['skipped']}, "
        f"failed {counts['failed']}{deferred}"
    )


def render_rollback(report: Report) -> str:
    """Counts per tenant, every action but `none` with its reason, the notes, the verdict; the
    counts come from the same items the table counts."""
    lines = counts_table(report.items, ROLLBACK_STATUSES) if report.items else []
    shown = [i for i in report.ordered() if i.status != "unchanged"]
    if shown:
        lines.append("")
    for i in shown:
        lines.append(
            f"  {i.status:<11} {i.tenant}: {i.workflow_name} (definition {i.target_workflow_id}): "
            f"{i.action}: {i.error or i.reason or ''}"
        )
    for notice in report.notices:
        lines.append(f"note: {notice}")
    counts = report.summary()
    verdict = "ok" if report.ok else "attention needed"
    lines.append(
        f"migrator rollback: {verdict}: "
        + ", ".join(f"{s.replace('_', ' ')} {counts.get(s, 0)}" for s in ROLLBACK_STATUSES)
    )
    # Names come from the journal, the tenants and the config: no control character gets out.
    return redact_text(human_lines(lines))
