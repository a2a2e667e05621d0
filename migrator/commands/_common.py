"""What the subcommands share: common options, settings loading, report writing, signal handling.

Also the exit codes: 0 nothing failed; 1 some item failed, was blocked or is left for another run;
2 usage, configuration or fatal error (journal, lock).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import anyio

from migrator.core import logs
from migrator.core.config import Settings, load_settings
from migrator.core.errors import MigratorError, single_failure
from migrator.core.report import Report
from migrator.store.files import write_atomic

EXIT_OK, EXIT_ITEMS, EXIT_FATAL = 0, 1, 2
T = TypeVar("T")


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


def log_level(args: argparse.Namespace) -> str:
    return "debug" if args.debug else ("warning" if args.quiet else "info")


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    for tenant in settings.tenants.values():
        logs.register_secret(tenant.client_secret.reveal())
    return settings


def run_with_signals(fn: Callable[..., Awaitable[T]], *, abortable: bool = False) -> T:
    """Run `fn(stopping)` under anyio; the first SIGINT/SIGTERM sets `stopping` (finish what is in
    flight, take nothing new), the second cancels at once (the journal still closes cleanly).

    With `abortable`, `fn(stopping, aborting)` runs and the second signal sets `aborting`: the
    work is cut short but the command still gets its result (to write its `--report`); only a
    third signal cancels it outright.
    """

    async def runner() -> T:
        stopping = anyio.Event()
        aborting = anyio.Event()
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
                            elif abortable and not aborting.is_set():
                                aborting.set()
                                print(
                                    "migrator: stopping at once: cancelling requests in flight, "
                                    "writing what is known",
                                    file=sys.stderr,
                                )
                            else:
                                tg.cancel_scope.cancel()

                # Signals reach only the main thread (a test may run a command in another).
                if threading.current_thread() is threading.main_thread():
                    tg.start_soon(watch)
                args = (stopping, aborting) if abortable else (stopping,)
                result.append(await fn(*args))
                tg.cancel_scope.cancel()
        if not result:
            raise KeyboardInterrupt
        return result[0]

    return anyio.run(runner, backend="asyncio")


def emit_report(args: argparse.Namespace, report: Report, render: Callable[[Report], str]) -> None:
    """A command's report where it was asked for: `--report FILE` (JSON), then `--json` on
    stdout or the human rendering."""
    if args.report:
        _write_report(args.report, report.chunks())
    if args.json:
        for chunk in report.chunks():
            sys.stdout.write(chunk.decode())
    else:
        print(render(report))


def _write_report(path: str, data: bytes | Iterable[bytes]) -> None:
    try:
        # Private, like the journal: reports name workflows, tenants and their errors.
        write_atomic(path, data, mode=0o600)
    except OSError as exc:
        raise MigratorError(f"{path}: cannot write the report: {exc.strerror}") from None


def _no_cache(p: argparse.ArgumentParser) -> None:
    """`--no-cache`, on every command that reads targets."""
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="neither read nor fill the content-hash cache: export every version compared",
    )
