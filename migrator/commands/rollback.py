"""`migrator rollback`: put back the versions that were active before a journal's runs switched
theirs on, and take the definitions they created out of use (run/rollback.py does the work,
render/outcomes.py says it).
"""

from __future__ import annotations

import argparse

from migrator.commands import _options as opt
from migrator.commands._common import report_command
from migrator.render.help import described
from migrator.render.outcomes import render_rollback
from migrator.run.rollback import rollback_from_journal


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `migrator rollback`."""
    p = sub.add_parser(
        "rollback",
        help="make the versions active before a journal's runs the active ones again",
        **described(
            "Put back what the journal's runs switched on: per definition the version that"
            " was active before the first of them, and Inactive for the definitions they"
            " created (--delete-created deletes those instead). A definition whose active"
            " version changed since the rollout is left alone unless --force. Journaled and"
            " idempotent: a second rollback writes nothing.",
            exits={
                0: "nothing failed or was left alone",
                1: "something could not be put back, or was left alone (skipped)",
                2: "configuration or journal error (no journal, a damaged one, a tenant that"
                " pointed at another URL or client id)",
            },
            example="migrator rollback --config migrator.toml --journal run.jsonl --dry-run",
        ),
    )
    p.set_defaults(func=cmd_rollback)
    opt.logging(p)
    opt.journal(p, "the journal of the runs to roll back", required=True)
    opt.tenants(p, "tenant to roll back (repeatable; default: every tenant in the journal)")
    opt.dry_run(p, "show what would be put back, change nothing")
    p.add_argument(
        "--delete-created",
        action="store_true",
        help="delete the definitions the runs created instead of setting them Inactive (never "
        "one holding a version migrator did not import)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="put back also definitions whose active version changed since the rollout",
    )
    opt.json(p)
    opt.report(p)


def cmd_rollback(args: argparse.Namespace) -> int:
    """0 nothing failed or was left alone (or nothing to roll back), 1 something was; bad input
    raises (exit 2)."""
    return report_command(
        args,
        lambda settings, stopping: rollback_from_journal(
            settings,
            args.journal,
            args.tenant,
            dry_run=args.dry_run,
            delete_created=args.delete_created,
            force=args.force,
            stopping=stopping,
        ),
        render_rollback,
    )
