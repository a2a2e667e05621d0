"""The `migrator` command: parse arguments, load config, call one function, print, exit.

Exit status: 0 nothing failed; 1 some item failed, was blocked or is left for another run;
2 usage, configuration or fatal error (journal, lock). No traceback for anything a user can cause.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio
import structlog

from migrator import __version__
from migrator.core import logs
from migrator.core.config import Settings, load_settings
from migrator.core.errors import MigratorError, single_failure

EXIT_OK, EXIT_ITEMS, EXIT_FATAL = 0, 1, 2
T = TypeVar("T")
log = structlog.get_logger("migrator.cli")


def _shard(text: str) -> tuple[int, int]:
    try:
        index_s, count_s = text.split("/")
        index, count = int(index_s), int(count_s)
    except ValueError:
        raise argparse.ArgumentTypeError("expected I/N, e.g. 1/4") from None
    if not 1 <= index <= count:
        raise argparse.ArgumentTypeError("expected 1 <= I <= N")
    return index, count


def _common(
    p: argparse.ArgumentParser,
    *,
    config: bool = True,
    quiet_help: str = "only warnings and errors on stderr",
) -> None:
    if config:
        p.add_argument(
            "--config", required=True, metavar="FILE", help="TOML file with [tenants.NAME] tables"
        )
    p.add_argument(
        "--log-format",
        choices=("console", "json"),
        default="console",
        help="log lines for people or machines",
    )
    p.add_argument(
        "--debug", action="store_true", help="log every request attempt (secrets stay redacted)"
    )
    p.add_argument("--quiet", action="store_true", help=quiet_help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="migrator", description="Move Zuora Workflow definitions between tenants, safely."
    )
    parser.add_argument("--version", action="version", version=f"migrator {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    m = sub.add_parser("migrate", help="import export documents into tenants")
    m.set_defaults(func=cmd_migrate)
    m.add_argument(
        "sources",
        nargs="*",
        metavar="SOURCE",
        help="export files (.json, .json.gz), directories or snapshots",
    )
    _common(m)
    m.add_argument(
        "--tenant",
        action="append",
        default=[],
        metavar="NAME",
        help="target tenant (repeatable; default: all)",
    )
    m.add_argument(
        "--from-tenant",
        metavar="NAME",
        help="read the sources live from this tenant instead of files",
    )
    m.add_argument(
        "--journal", metavar="FILE", help="JSONL journal: run the same command again to resume"
    )
    m.add_argument("--report", metavar="FILE", help="write the JSON report here")
    act = m.add_mutually_exclusive_group()
    act.add_argument("--activate", action="store_true", help="make every imported version active")
    act.add_argument(
        "--activation",
        choices=("never", "always", "match"),
        help="never (default), always, or match the source",
    )
    m.add_argument(
        "--dry-run",
        action="store_true",
        help="read the targets, change nothing, report what would be done",
    )
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
    m.add_argument(
        "--strict",
        action="store_true",
        help="refuse documents with tenant-specific values no substitution covers",
    )
    m.add_argument(
        "--shard",
        type=_shard,
        metavar="I/N",
        help="work only on this deterministic share of the tenants",
    )
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

    p = sub.add_parser("plan", help="show what migrate would do, changing nothing")
    p.set_defaults(func=cmd_plan)
    p.add_argument("sources", nargs="*", metavar="SOURCE")
    _common(p)
    p.add_argument("--tenant", action="append", default=[], metavar="NAME")
    p.add_argument("--from-tenant", metavar="NAME")
    p.add_argument(
        "--journal", metavar="FILE", help="take an existing journal into account (read only)"
    )
    p.add_argument("--strict", action="store_true")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument(
        "--out", metavar="FILE", help="save the plan; `migrate --plan FILE` applies exactly it"
    )
    p.add_argument(
        "--shard",
        type=_shard,
        metavar="I/N",
        help="plan only this deterministic share of the tenants (as `migrate --shard`)",
    )

    s = sub.add_parser("status", help="where a journal stands: done, failed, in doubt, pending")
    s.set_defaults(func=cmd_status)
    s.add_argument("--journal", required=True, metavar="FILE")
    s.add_argument("--json", action="store_true")
    _common(s, config=False)

    from migrator.commands import activate, backup, verify

    verify.add_parser(sub)
    activate.add_parser(sub)
    backup.add_backup_parser(sub)

    f = sub.add_parser(
        "fake-zuora",
        help="serve the built-in fake Zuora (not Zuora!) for demos and tests",
        add_help=False,
    )
    f.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["fake-zuora"]:
        from migrator.fake import main as fake_main

        return fake_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.configure(args.log_format, _level(args))
    try:
        handler: Callable[[argparse.Namespace], int] = args.func
        return handler(args)
    except MigratorError as exc:
        print(f"migrator: error: {logs.redact_text(str(exc))}", file=sys.stderr)
        return EXIT_FATAL
    except BaseExceptionGroup as group:
        # anyio task groups wrap what they raise (an unknown --tenant, a locked journal): a
        # user's mistake is still one line, never a traceback.
        leaves = _leaves(group)
        if not leaves or not all(isinstance(e, MigratorError) for e in leaves):
            raise
        for text in dict.fromkeys(logs.redact_text(str(e)) for e in leaves):
            print(f"migrator: error: {text}", file=sys.stderr)
        return EXIT_FATAL
    except KeyboardInterrupt:
        print("migrator: interrupted", file=sys.stderr)
        return EXIT_ITEMS


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


def _level(args: argparse.Namespace) -> str:
    return "debug" if args.debug else ("warning" if args.quiet else "info")


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    for tenant in settings.tenants.values():
        logs.register_secret(tenant.client_secret.reveal())
    return settings


def run_with_signals(fn: Callable[[anyio.Event], Awaitable[T]]) -> T:
    """Run `fn(stopping)` under anyio; the first SIGINT/SIGTERM sets `stopping` (finish what is in
    flight, take nothing new), the second cancels at once (the journal still closes cleanly)."""

    async def runner() -> T:
        stopping = anyio.Event()
        result: list[T] = []
        with single_failure():
            async with anyio.create_task_group() as tg:

                async def watch() -> None:
                    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                        async for _ in signals:
                            if not stopping.is_set():
                                stopping.set()
                                print(
                                    "migrator: stopping: finishing requests in flight, taking no new work "
                                    "(press Ctrl-C again to stop at once; running the same command again resumes)",
                                    file=sys.stderr,
                                )
                            else:
                                tg.cancel_scope.cancel()

                tg.start_soon(watch)
                result.append(await fn(stopping))
                tg.cancel_scope.cancel()
        if not result:
            raise KeyboardInterrupt
        return result[0]

    return anyio.run(runner, backend="asyncio")


def cmd_migrate(args: argparse.Namespace) -> int:
    from migrator.core.report import render_items, render_table, summary_line
    from migrator.run.migrate import Activation, MigrateOptions, Progress, migrate
    from migrator.run.progress import show_progress

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
    )
    progress = Progress()

    async def go(stopping: anyio.Event) -> Any:
        async with show_progress(
            progress, mode=args.progress, log_format=args.log_format, level=_level(args)
        ):
            return await migrate(settings, options, progress=progress, stopping=stopping)

    report = run_with_signals(go)
    if args.report:
        _write_report(args.report, report.chunks())
    if options.dry_run:
        print(render_items(report.items))
        print()
    print(render_table(report))
    print(summary_line(report))
    if report.interrupted:
        print("migrator: stopped early; run the same command again to finish", file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_ITEMS


def cmd_plan(args: argparse.Namespace) -> int:
    from migrator.core.report import render_items, render_table
    from migrator.run.migrate import MigrateOptions, migrate

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
    )

    async def go(stopping: anyio.Event) -> Any:
        return await migrate(settings, options, stopping=stopping)

    report = run_with_signals(go)
    if args.out:
        from migrator.store.planfile import plan_file_chunks

        _write_report(args.out, plan_file_chunks(report))
    if args.json:
        for chunk in report.chunks():
            sys.stdout.write(chunk.decode())
    else:
        print(render_items(report.items))
        print()
        print(render_table(report))
    return EXIT_OK if report.ok else EXIT_ITEMS


def cmd_status(args: argparse.Namespace) -> int:
    from migrator.commands.status import journal_status

    text, ok = journal_status(args.journal, as_json=args.json)
    print(text)
    return EXIT_OK if ok else EXIT_ITEMS


def _write_report(path: str, data: bytes | Iterable[bytes]) -> None:
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    try:
        # Private, like the journal: reports name workflows, tenants and their errors.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            if hasattr(os, "fchmod"):
                os.fchmod(fh.fileno(), 0o600)  # a .tmp left by an earlier run keeps its mode
            if isinstance(data, bytes):
                data = [data]
            for chunk in data:
                fh.write(chunk)
        tmp.replace(target)
    except OSError as exc:
        raise MigratorError(f"{path}: cannot write the report: {exc.strerror}") from None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
