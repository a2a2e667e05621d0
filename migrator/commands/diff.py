"""`migrator diff`: the drift matrix of the sources (or a source tenant) against many tenants, on
the terminal, as JSON or as one HTML page; exit 0 only when every pair is in sync (issue 17).

Reading is run.diff's; judging and rendering are migrator.core.drift's and migrator.render's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

import anyio
import orjson

from migrator.commands import _options as opt
from migrator.commands._common import _settings, _write_report, run_with_signals
from migrator.core.drift import DriftReport
from migrator.core.errors import MigratorError
from migrator.core.logs import redact_text
from migrator.render.help import described
from migrator.render.html import render_html
from migrator.render.terminal import render_report
from migrator.run.diff import diff_cached, select_tenants
from migrator.run.migrate import check_source_paths


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `migrator diff`."""
    p = sub.add_parser(
        "diff",
        help="drift matrix: which tenants hold what the sources say, and what differs",
        **described(
            "Show the drift matrix: per tenant and workflow, in-sync, drifted, missing, extra"
            " or failed against the tenant's active version, each drift listed task by task."
            " With --from-tenant one tenant is compared with the others instead of files."
            " Changes nothing; meant for cron or CI.",
            exits={
                0: "every (tenant, workflow) pair is in sync and every source was read",
                1: "some pair is drifted, missing or failed, or a source could not be read",
                2: "usage or configuration error",
            },
            example="migrator diff exports/ --config migrator.toml --html drift.html",
        ),
    )
    p.set_defaults(func=cmd_diff)
    opt.sources(p, "export files, directories or snapshots (or none, with --from-tenant)")
    opt.logging(p)
    opt.tenants(p, "tenant to compare (repeatable; default: all but --from-tenant)")
    opt.from_tenant(
        p, "compare with this tenant's active versions instead of files (sandbox vs production)"
    )
    opt.json(p, "print the matrix as JSON on stdout")
    p.add_argument(
        "--html", metavar="FILE", help="write the matrix as one self-contained HTML page"
    )
    opt.no_cache(p)


def check_writable(path: str) -> None:
    """Refuse, in one line and before any request, an --html path whose page could not be
    written: a missing folder, a folder, a read-only file or folder."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise MigratorError(f"--html {path}: folder {folder} does not exist")
    if os.path.isdir(path):
        raise MigratorError(f"--html {path}: is a folder, not a file")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise MigratorError(f"--html {path}: the file is not writable")
    # The page is written to a temporary file beside it, then renamed into place.
    if not os.access(folder, os.W_OK | os.X_OK):
        raise MigratorError(f"--html {path}: folder {folder} is not writable")


def cmd_diff(args: argparse.Namespace) -> int:
    """0 every (tenant, source workflow) pair in sync, 1 otherwise; usage errors raise
    MigratorError, which `cli.main` turns into one line and exit 2."""
    if args.sources and args.from_tenant:
        raise MigratorError("diff: give SOURCE paths or --from-tenant NAME, not both")
    if not args.sources and not args.from_tenant:
        raise MigratorError("diff: give at least one SOURCE path, or --from-tenant NAME")
    if args.html:
        check_writable(args.html)
    settings = _settings(args)
    select_tenants(settings, args.tenant, args.from_tenant)  # unknown names: before any request
    check_source_paths(args.sources)

    async def go(stopping: anyio.Event) -> DriftReport:
        return await diff_cached(
            settings,
            args.sources,
            args.tenant,
            use_cache=not args.no_cache,
            from_tenant=args.from_tenant,
            keep_graphs=bool(args.html),
            stopping=stopping,
        )

    report = run_with_signals(go)
    if args.html:
        generated = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        page = redact_text(render_html(report, generated=generated))
        _write_report(args.html, page.encode())
    if args.json:
        text = orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode()
        sys.stdout.write(redact_text(text) + "\n")
    else:
        columns = shutil.get_terminal_size((80, 24)).columns if sys.stdout.isatty() else 80
        sys.stdout.write(redact_text(render_report(report, columns=columns)))
    return report.exit_code()
