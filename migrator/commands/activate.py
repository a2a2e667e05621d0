"""`migrator activate`: switch on what a migration imported, as a separate rollout step.
Parses, calls run/activate.py's pipeline, renders its report."""

from __future__ import annotations

import argparse

import anyio

from migrator.commands._common import (
    EXIT_ITEMS,
    EXIT_OK,
    _common,
    _settings,
    emit_report,
    run_with_signals,
)
from migrator.core.logs import redact_text
from migrator.core.report import Report, counts_table, human_lines
from migrator.run.activate import ACTIVATE_STATUSES, activate_from_journal

# ---------------------------------------------------------------------------------------------
# Rendering and the command


def render(report: Report) -> str:
    """Counts per tenant, every switch made or planned, every failure."""
    lines = counts_table(report.items, ACTIVATE_STATUSES)
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
    lines.append(summary_line(report))
    # Names come from the journal, the tenants and the config: no control character gets out.
    return redact_text(human_lines(lines))


def summary_line(report: Report) -> str:
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


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `migrator activate`."""
    p = sub.add_parser(
        "activate", help="make the versions a journal records as imported the active ones"
    )
    p.set_defaults(func=cmd_activate)
    _common(p)
    p.add_argument(
        "--journal", required=True, metavar="FILE", help="the journal of the migration to switch on"
    )
    p.add_argument(
        "--tenant",
        action="append",
        default=[],
        metavar="NAME",
        help="tenant to switch on (repeatable; default: every tenant in the journal)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="show what would be switched on, change nothing"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--report", metavar="FILE", help="write the JSON report here")


def cmd_activate(args: argparse.Namespace) -> int:
    """0 nothing failed, 1 something did; configuration and journal errors raise (exit 2)."""
    settings = _settings(args)

    async def go(stopping: anyio.Event) -> Report:
        return await activate_from_journal(
            settings, args.journal, args.tenant, dry_run=args.dry_run, stopping=stopping
        )

    report = run_with_signals(go)
    emit_report(args, report, render)
    return EXIT_OK if report.ok else EXIT_ITEMS
