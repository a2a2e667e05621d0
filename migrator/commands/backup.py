"""`migrator backup`: one tenant's workflows into a checksummed snapshot folder. Parses, calls
run/backup.py's pipeline, prints its one summary line (or JSON object)."""

from __future__ import annotations

import argparse
from typing import Any

import anyio
import orjson
import structlog

from migrator.commands import _options as opt
from migrator.commands._common import _settings, run_with_signals
from migrator.core.errors import MigratorError
from migrator.core.logs import printable, redact_text
from migrator.render.help import described
from migrator.run.backup import EXIT_FATAL, EXIT_OK, BackupResult, backup_tenant

log = structlog.get_logger("migrator.backup")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_backup_parser(sub: Any) -> None:
    """Register `migrator backup` on an argparse subparsers object."""
    p = sub.add_parser(
        "backup",
        help="export every workflow of one tenant into a snapshot folder",
        **described(
            "Export every workflow of one tenant (its active versions, or --all-versions) into"
            " a checksummed snapshot folder, atomically; an unchanged tenant is not written"
            " again. A snapshot is a SOURCE for migrate, plan, verify and diff.",
            exits={
                0: "done (or unchanged)",
                1: "partial: some workflows or versions could not be exported and were skipped"
                " (the snapshot says so)",
                2: "failed: nothing written",
            },
            example="migrator backup --config migrator.toml --tenant prod-eu --out backups/ --keep 14",
        ),
    )
    opt.logging(p, quiet_help="only warnings and errors; no summary line when all went well")
    opt.one_tenant(p, "the tenant to back up")
    p.add_argument("--out", required=True, metavar="DIR", help="folder that holds the snapshots")
    p.add_argument(
        "--all-versions", action="store_true", help="every version, not only the active one"
    )
    p.add_argument("--gzip", action="store_true", help="store each export as .json.gz")
    p.add_argument(
        "--keep", type=_positive, metavar="N", help="keep only the newest N snapshots of the tenant"
    )
    opt.json(p, "print the result as one JSON object")
    p.set_defaults(func=cmd_backup, command="backup")


def cmd_backup(args: argparse.Namespace) -> int:
    """Run one backup from parsed arguments; print the summary; 0 ok, 1 partial, 2 fatal."""
    try:
        settings = _settings(args)

        async def go(stopping: anyio.Event) -> BackupResult:
            return await backup_tenant(
                settings,
                args.tenant,
                args.out,
                all_versions=args.all_versions,
                compress=args.gzip,
                keep=args.keep,
                stopping=stopping,
            )

        result = run_with_signals(go)
    except MigratorError as exc:
        return _failed(args, redact_text(str(exc)))
    except KeyboardInterrupt:
        return _failed(args, "interrupted; no snapshot was written")
    for note in result.notices:
        log.info(note, tenant=args.tenant)
    # The summary goes to stdout and logs to stderr, so cron can mail the one and file the other.
    if args.json:
        print(orjson.dumps(result.to_json()).decode())
    elif not (args.quiet and result.exit_code == EXIT_OK):
        print(printable(result.message))  # workflow names come from the tenant
    return result.exit_code


def _failed(args: argparse.Namespace, message: str) -> int:
    # One voice: the summary line (or JSON object) on stdout says it; no log line repeats it.
    if args.json:
        data = {"tenant": args.tenant, "error": message, "exit_code": EXIT_FATAL}
        print(orjson.dumps(data).decode())
    else:
        print(printable(f"backup {args.tenant}: failed: {message}"))
    return EXIT_FATAL
