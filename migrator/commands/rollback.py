"""`migrator rollback`: put back the versions that were active before a journal's runs switched
theirs on, and take the definitions they created out of use (run/rollback.py does the work).
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections.abc import Sequence
from typing import Any

import anyio

from migrator import __version__
from migrator.commands._common import (
    EXIT_ITEMS,
    EXIT_OK,
    _common,
    _settings,
    emit_report,
    run_with_signals,
)
from migrator.core.config import Settings
from migrator.core.errors import MigratorError
from migrator.core.logs import redact_text
from migrator.core.report import ItemOutcome, Report, counts_table, human_lines
from migrator.core.rollback import ROLLBACK_FAILURES, ROLLBACK_STATUSES
from migrator.render.help import described
from migrator.run.history import NullJournal
from migrator.run.migrate import _close_session
from migrator.run.rollback import check_identity, read_rollback_targets, rollback
from migrator.run.tenant import tenant_fingerprint
from migrator.zuora import ZuoraClient, open_session

NOTHING = "the journal records no activation and no created definition: nothing to roll back"


async def rollback_from_journal(
    settings: Settings,
    journal_path: str,
    tenants: list[str] | tuple[str, ...] = (),
    *,
    dry_run: bool = False,
    delete_created: bool = False,
    force: bool = False,
    stopping: anyio.Event | None = None,
) -> Report:
    """Roll back every selected tenant's changes the journal records; journaled unless dry_run.
    The dry run and the real run compute the same plan (run/rollback.plan_tenant)."""
    unknown = [n for n in tenants if n not in settings.tenants]
    if unknown:
        raise MigratorError(
            f"{settings.file}: unknown tenant {unknown[0]!r} (configured: {', '.join(sorted(settings.tenants))})"
        )
    wanted = list(dict.fromkeys(tenants)) or None
    targets, history, notices, activations = await anyio.to_thread.run_sync(
        read_rollback_targets, journal_path, wanted
    )
    left_alone = sorted({t.tenant for t in targets if t.tenant not in settings.tenants})
    notices += [
        f"{journal_path}: tenant {t!r} is in the journal but not in {settings.file}; left alone"
        for t in left_alone
    ]
    targets = [t for t in targets if t.tenant in settings.tenants]
    chosen = [settings.tenants[n] for n in sorted({t.tenant for t in targets})]
    check_identity(history, chosen, journal_path)
    if not targets:
        return rollback_report((), (*notices, NOTHING))
    if not activations and not delete_created:
        created = len(targets)
        return rollback_report(
            (),
            (
                *notices,
                f"the journal records no activation: nothing to roll back (its runs created "
                f"{created} definition(s), which stay Inactive; --delete-created deletes them)",
            ),
        )
    session = open_session(settings)
    try:
        clients = {t.name: ZuoraClient(t, session, settings, stopping=stopping) for t in chosen}
        if dry_run:
            items = await rollback(
                clients,
                targets,
                NullJournal(),
                dry_run=True,
                delete_created=delete_created,
                force=force,
            )
        else:
            from migrator.store.journal import Journal

            fields = {
                "run_id": hashlib.sha256(f"{time.time()}".encode()).hexdigest()[:12],
                "command": "rollback",
                "tenants": {t.name: tenant_fingerprint(t) for t in chosen},
                "tool_version": __version__,
            }
            async with Journal.open(journal_path, fields) as journal:
                items = await rollback(
                    clients, targets, journal, delete_created=delete_created, force=force
                )
                journal.finish(counts=rollback_report(items).summary())
    finally:
        await _close_session(session)
    left = sum(1 for i in items if i.status == "skipped")
    if left and not force:
        notices.append(
            f"{left} definition(s) changed since the rollout were left alone; "
            "`--force` puts them back anyway"
        )
    return rollback_report(items, notices)


def rollback_report(items: Sequence[ItemOutcome], notices: Sequence[str] = ()) -> Report:
    """A report in rollback's own statuses: `skipped` (left alone) and `failed` need a person."""
    return Report(
        items=tuple(items),
        notices=tuple(notices),
        statuses=ROLLBACK_STATUSES,
        failures=ROLLBACK_FAILURES,
    )


def render(report: Report) -> str:
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
    _common(p)
    p.add_argument(
        "--journal", required=True, metavar="FILE", help="the journal of the runs to roll back"
    )
    p.add_argument(
        "--tenant",
        action="append",
        default=[],
        metavar="NAME",
        help="tenant to roll back (repeatable; default: every tenant in the journal)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="show what would be put back, change nothing"
    )
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
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--report", metavar="FILE", help="write the JSON report here")


def cmd_rollback(args: argparse.Namespace) -> int:
    """0 nothing failed or was left alone (or nothing to roll back), 1 something was; bad input
    raises (exit 2)."""
    settings = _settings(args)

    async def go(stopping: anyio.Event) -> Any:
        return await rollback_from_journal(
            settings,
            args.journal,
            args.tenant,
            dry_run=args.dry_run,
            delete_created=args.delete_created,
            force=args.force,
            stopping=stopping,
        )

    report: Report = run_with_signals(go)
    emit_report(args, report, render)
    return EXIT_OK if report.ok else EXIT_ITEMS
