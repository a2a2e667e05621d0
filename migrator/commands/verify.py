"""`migrator verify`: does each tenant hold, as some version, exactly what a migration would send?
Parses, calls run/verify.py's pipeline, renders its report."""

from __future__ import annotations

import argparse

import anyio

from migrator.commands._common import (
    EXIT_ITEMS,
    EXIT_OK,
    _common,
    _no_cache,
    _settings,
    emit_report,
    run_with_signals,
)
from migrator.core.logs import redact_text
from migrator.core.report import GROUP_AT, Report, counts_rows, human_lines
from migrator.run.verify import VERIFY_STATUSES, all_verified, verify_tenants

# ---------------------------------------------------------------------------------------------
# Rendering and the command


def _totals(report: Report) -> tuple[int, int, int]:
    """(tenants, items, verified items), counted by the report (in the workspace for a run)."""
    per = report.per_tenant()
    total = sum(sum(row.values()) for row in per.values())
    return len(per), total, sum(row.get("verified", 0) for row in per.values())


def render(report: Report) -> str:
    """Counts per tenant, then every item that is not verified."""
    lines = counts_rows(report.per_tenant(), VERIFY_STATUSES)
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
    tenants, total, ok = _totals(report)
    verdict = "ok" if total > 0 and ok == total else "attention needed"
    lines.append(f"migrator verify: {verdict}: {ok} of {total} verified across {tenants} tenant(s)")
    # Names come from documents and tenants: no control character gets out.
    return redact_text(human_lines(lines))


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `migrator verify`."""
    p = sub.add_parser(
        "verify", help="check that each tenant holds exactly what the sources would migrate"
    )
    p.set_defaults(func=cmd_verify)
    p.add_argument(
        "sources", nargs="+", metavar="SOURCE", help="export files, directories or snapshots"
    )
    _common(p)
    p.add_argument(
        "--tenant",
        action="append",
        default=[],
        metavar="NAME",
        help="tenant to check (repeatable; default: all)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--report", metavar="FILE", help="write the JSON report here")
    _no_cache(p)


def cmd_verify(args: argparse.Namespace) -> int:
    """0 every item verified, 1 otherwise; configuration errors raise (exit 2 in `cli.main`)."""
    settings = _settings(args)

    async def go(stopping: anyio.Event) -> Report:
        return await verify_tenants(
            settings, args.sources, args.tenant, use_cache=not args.no_cache, stopping=stopping
        )

    report = run_with_signals(go)
    emit_report(args, report, render)
    return EXIT_OK if all_verified(report) else EXIT_ITEMS
