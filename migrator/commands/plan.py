"""`migrator plan`: its options, and the dry run that shows (or saves) what migrate would do.

Changes nothing on any tenant; `--out` writes a plan file that `migrate --plan` applies exactly.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import anyio

from migrator.commands import _options as opt
from migrator.commands._common import (
    EXIT_ITEMS,
    EXIT_OK,
    _settings,
    _write_report,
    run_with_signals,
)
from migrator.core.errors import MigratorError
from migrator.render.help import described
from migrator.render.outcomes import render_plan
from migrator.run.migrate import migrate, select_tenants
from migrator.run.options import MigrateOptions
from migrator.store.planfile import plan_file_chunks


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `migrator plan`."""
    p = sub.add_parser(
        "plan",
        help="show what migrate would do, changing nothing",
        **described(
            "Read the targets and show, per tenant, what migrate would do to each workflow"
            " (create; new version X.Y.Z with one line on what it changes; skip identical;"
            " blocked, and why) and what each tenant's substitution table makes of its"
            " tenant-specific values. Changes nothing. --out saves the plan, and"
            " `migrate --plan FILE` applies exactly it.",
            exits={
                0: "nothing is blocked or failed",
                1: "something is blocked or failed",
                2: "usage or configuration error (as for migrate)",
            },
            example="migrator plan exports/ --config migrator.toml --out plan.json",
        ),
    )
    p.set_defaults(func=cmd_plan)
    opt.sources(p, "export files (.json, .json.gz), directories or snapshots")
    opt.logging(p)
    opt.tenants(p, "target tenant to plan for (repeatable; default: all)")
    opt.from_tenant(p)
    opt.journal(p, "take an existing journal into account (read only)")
    opt.strict(p, "count tenant-specific values no substitution covers as blocking problems")
    opt.json(p, "print the plan as JSON")
    p.add_argument(
        "--out", metavar="FILE", help="save the plan; `migrate --plan FILE` applies exactly it"
    )
    opt.shard(p, "plan only this deterministic share of the tenants (as `migrate --shard`)")
    opt.no_cache(p)


def cmd_plan(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if not args.sources and not args.from_tenant:
        raise MigratorError("plan: give at least one SOURCE path, or --from-tenant NAME")
    options = MigrateOptions(
        sources=args.sources,
        tenants=args.tenant,
        dry_run=True,
        strict=args.strict,
        from_tenant=args.from_tenant,
        journal=args.journal,
        shard=args.shard,
        use_cache=not args.no_cache,
    )

    async def go(stopping: anyio.Event) -> Any:
        return await migrate(settings, options, stopping=stopping)

    report = run_with_signals(go)
    if args.out:
        _write_report(args.out, plan_file_chunks(report))
    if args.json:
        for chunk in report.chunks():
            sys.stdout.write(chunk.decode())
    else:
        chosen = select_tenants(settings, options) if settings.rollout is not None else ()
        print(render_plan(report, settings.rollout, chosen))
    return EXIT_OK if report.ok else EXIT_ITEMS
