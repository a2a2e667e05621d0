"""What the subcommands share: settings loading, signal handling, running a pipeline that gives a
report and saying it (options are `_options.py`'s).

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
                                logs.say(
                                    "migrator: stopping: finishing requests in flight, taking no new work "
                                    "(press Ctrl-C again to stop at once; running the same command again resumes)",
                                    level="warning",
                                )
                            elif abortable and not aborting.is_set():
                                aborting.set()
                                logs.say(
                                    "migrator: stopping at once: cancelling requests in flight, "
                                    "writing what is known",
                                    level="warning",
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


def report_command(
    args: argparse.Namespace,
    pipeline: Callable[[Settings, anyio.Event], Awaitable[Report]],
    render: Callable[[Report], str],
    *,
    ok: Callable[[Report], bool] = lambda report: report.ok,
) -> int:
    """The life of a command that gives a report: settings, the pipeline under the signal
    handling, the report where it was asked for; 0 when `ok`, 1 otherwise."""
    settings = _settings(args)
    report = run_with_signals(lambda stopping: pipeline(settings, stopping))
    emit_report(args, report, render)
    return EXIT_OK if ok(report) else EXIT_ITEMS


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
