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
from migrator.core.report import Report
from migrator.render.help import described
from migrator.render.outcomes import render_verify
from migrator.run.verify import all_verified, verify_tenants


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `migrator verify`."""
    p = sub.add_parser(
        "verify",
        help="check that each tenant holds exactly what the sources would migrate",
        **described(
            "Check, per tenant and document, that some version on the tenant holds exactly"
            " what a migration of the sources would send: verified, differs, missing or failed."
            " Changes nothing.",
            exits={
                0: "there is at least one item and every item is verified",
                1: "some item differs, is missing or failed",
                2: "usage or configuration error",
            },
            example="migrator verify exports/ --config migrator.toml --report verify.json",
        ),
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
    emit_report(args, report, render_verify)
    return EXIT_OK if all_verified(report) else EXIT_ITEMS
