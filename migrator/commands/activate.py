"""`migrator activate`: switch on what a migration imported, as a separate rollout step.
Parses, calls run/activate.py's pipeline, renders its report."""

from __future__ import annotations

import argparse

from migrator.commands import _options as opt
from migrator.commands._common import report_command
from migrator.render.help import described
from migrator.render.outcomes import render_activate
from migrator.run.activate import activate_from_journal


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `migrator activate`."""
    p = sub.add_parser(
        "activate",
        help="make the versions a journal records as imported the active ones",
        **described(
            "Switch on, per definition, the highest version the journal records as imported or"
            " found identical: import everywhere first, activate afterwards. Each switch is"
            " journaled first, so `migrator rollback` can put back what was active before.",
            more="With a [rollout] table in the config, tenants are switched on wave by wave"
            " and a failing wave halts the rest: see docs/rollout.md.",
            exits={
                0: "nothing failed",
                1: "some switch failed or was left undone",
                2: "configuration or journal error",
            },
            example="migrator activate --config migrator.toml --journal run.jsonl --dry-run",
        ),
    )
    p.set_defaults(func=cmd_activate)
    opt.logging(p)
    opt.journal(p, "the journal of the migration to switch on", required=True)
    opt.tenants(p, "tenant to switch on (repeatable; default: every tenant in the journal)")
    opt.dry_run(p, "show what would be switched on, change nothing")
    opt.json(p)
    opt.report(p)


def cmd_activate(args: argparse.Namespace) -> int:
    """0 nothing failed, 1 something did; configuration and journal errors raise (exit 2)."""
    return report_command(
        args,
        lambda settings, stopping: activate_from_journal(
            settings, args.journal, args.tenant, dry_run=args.dry_run, stopping=stopping
        ),
        render_activate,
    )
