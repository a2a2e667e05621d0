"""`migrator migrate`: its options, and the run that imports the sources into the tenants.

Prints the table and the summary line; exit 1 when any item is left undone.
"""

from __future__ import annotations

import argparse
from typing import Any

import anyio

from migrator.commands import _options as opt
from migrator.commands._common import (
    EXIT_ITEMS,
    EXIT_OK,
    _settings,
    _write_report,
    log_level,
    run_with_signals,
)
from migrator.core import logs
from migrator.core.errors import MigratorError
from migrator.render.help import described
from migrator.render.outcomes import render_migrate
from migrator.run.migrate import migrate
from migrator.run.options import Activation, MigrateOptions, Progress
from migrator.run.progress import show_progress


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `migrator migrate`."""
    m = sub.add_parser(
        "migrate",
        help="import export documents into tenants",
        **described(
            "Import export documents (files, directories, .json.gz, backup snapshots, or live"
            " from --from-tenant) into every selected tenant: each workflow becomes a new"
            " definition or a new version above the tenant's highest, content identical to a"
            " version already there is skipped, and ids are remapped. With --journal the run is"
            " crash-safe: run the same command again to resume; nothing is imported twice.",
            more="With a [rollout] table in the config, migrate goes wave by wave (canary"
            " first) with smoke runs, and halts on failures: see docs/rollout.md.",
            exits={
                0: "nothing failed, was blocked or deferred, and the run was not stopped",
                1: "some item failed, was blocked, did not verify, or is left for another run",
                2: "usage or configuration error, unknown tenant, damaged snapshot, or a journal"
                " that is damaged, locked or written for another tenant",
            },
            example="migrator migrate exports/ --config migrator.toml \\\n"
            "    --journal run.jsonl --report report.json",
        ),
    )
    m.set_defaults(func=cmd_migrate)
    opt.sources(m, "export files (.json, .json.gz), directories or snapshots")
    opt.logging(m)
    opt.tenants(m, "target tenant (repeatable; default: all)")
    opt.from_tenant(m)
    opt.journal(m, "JSONL journal: run the same command again to resume")
    opt.report(m)
    act = m.add_mutually_exclusive_group()
    act.add_argument("--activate", action="store_true", help="make every imported version active")
    act.add_argument(
        "--activation",
        choices=("never", "always", "match"),
        help="never (default), always, or match the source",
    )
    opt.dry_run(m, "read the targets, change nothing, report what would be done")
    m.add_argument(
        "--verify",
        action="store_true",
        help="export each imported version and compare it with what was sent",
    )
    m.add_argument(
        "--retry-failed",
        action="store_true",
        help="send again only the items the journal records as failed",
    )
    opt.strict(m, "refuse documents with tenant-specific values no substitution covers")
    opt.shard(m, "work only on this deterministic share of the tenants")
    m.add_argument(
        "--plan",
        metavar="FILE",
        help="apply a plan saved by `migrator plan --out`; refuse a tenant that changed since",
    )
    m.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="live progress on stderr",
    )
    opt.no_cache(m)


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if not args.sources and not args.from_tenant:
        raise MigratorError("migrate: give at least one SOURCE path, or --from-tenant NAME")
    activation: Activation = "always" if args.activate else (args.activation or "never")
    options = MigrateOptions(
        sources=args.sources,
        tenants=args.tenant,
        journal=args.journal,
        activation=activation,
        dry_run=args.dry_run,
        verify=args.verify,
        retry_failed=args.retry_failed,
        strict=args.strict,
        from_tenant=args.from_tenant,
        shard=args.shard,
        plan_file=args.plan,
        use_cache=not args.no_cache,
    )
    progress = Progress()

    async def go(stopping: anyio.Event, aborting: anyio.Event) -> Any:
        async with show_progress(
            progress, mode=args.progress, log_format=args.log_format, level=log_level(args)
        ):
            return await migrate(
                settings, options, progress=progress, stopping=stopping, aborting=aborting
            )

    # A second Ctrl-C cuts the run short but still returns its report (for --report).
    report = run_with_signals(go, abortable=True)
    if args.report:
        _write_report(args.report, report.chunks())
    print(render_migrate(report, dry_run=options.dry_run))
    if report.interrupted:
        logs.say("migrator: stopped early; run the same command again to finish", level="warning")
    return EXIT_OK if report.ok else EXIT_ITEMS
