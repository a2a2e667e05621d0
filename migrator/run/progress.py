"""Progress while a migration runs: a live per-tenant block on a TTY, periodic log lines otherwise.

On a TTY the block is redrawn in place below the log; log lines go through `TerminalStream`,
which lifts the block, writes the line and puts the block back, so the two never garble each other.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TextIO

import anyio
import structlog

from migrator.core.logs import printable

log = structlog.get_logger("migrator.progress")


def format_eta(seconds: float) -> str:
    if math.isinf(seconds) or seconds != seconds:
        return "--:--"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def progress_lines(progress: Any, now: float) -> list[str]:
    """One line per tenant: done/total, rate, retries, 429s, ETA (pure, for tests and both modes).

    In a rollout the tenants are grouped under their wave, which says whether it is waiting,
    running, passed, halted (and why) or held."""
    waves = getattr(progress, "waves", None)
    if not waves:
        return [_tenant_line(progress, name, now) for name in sorted(progress.tenants)]
    lines = []
    placed: set[str] = set()
    for number, label, tenants in waves:
        lines.append(printable(f"{label}: {progress.wave_state.get(number, 'waiting')}"))
        for name in tenants:
            if name in progress.tenants:
                lines.append("  " + _tenant_line(progress, name, now))
                placed.add(name)
    lines += [_tenant_line(progress, n, now) for n in sorted(progress.tenants) if n not in placed]
    return lines


def _tenant_line(progress: Any, name: str, now: float) -> str:
    tp = progress.tenants[name]
    elapsed = max(1e-9, now - tp.started)
    rate = tp.done / elapsed
    left = tp.total - tp.done
    eta = left / rate if rate > 0 else math.inf
    stats = getattr(progress.clients.get(name), "stats", None)
    retries = getattr(stats, "retries", 0)
    throttled = getattr(stats, "throttled", 0)
    return (
        f"{printable(name):<16} {printable(str(tp.phase)):<14} {tp.done:>6}/{tp.total:<6} "
        f"imported {tp.imported:<5} "
        f"skipped {tp.skipped:<5} failed {tp.failed:<4} left {getattr(tp, 'left', 0):<4} "
        f"{rate:6.1f}/s retries {retries:<4} "
        f"429s {throttled:<4} eta {format_eta(eta if left else 0)}"
    )


class TerminalStream:
    """A stderr wrapper that keeps a redrawable block of lines at the bottom of the terminal."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.block: list[str] = []
        self._drawn = 0
        self._pending = ""  # the start of a log line whose newline has not been written yet
        self.width = _columns(stream)

    def _lift(self) -> None:
        if self._drawn:
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0

    def _draw(self) -> None:
        for line in self.block:
            # A wrapped line would take two rows and the lift (counted in lines) would miss one.
            self.stream.write(line[: self.width - 1] + "\n")
        self._drawn = len(self.block)

    def write(self, text: str) -> int:
        # print() writes a line and its newline in two calls: drawing the block between them
        # would put it on the log line's row, and the next lift would erase the log line.
        self._pending += text
        if "\n" not in self._pending:
            return len(text)
        complete, _, self._pending = self._pending.rpartition("\n")
        self._lift()
        self.stream.write(complete + "\n")
        self._draw()
        self.stream.flush()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return True

    def update(self, lines: list[str]) -> None:
        self._lift()
        self.block = lines
        self._draw()
        self.stream.flush()

    def clear(self) -> None:
        self._lift()
        self.block = []
        if self._pending:
            self.stream.write(self._pending)
            self._pending = ""
        self.stream.flush()


def _columns(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 200


@asynccontextmanager
async def show_progress(
    progress: Any,
    *,
    mode: str = "auto",
    log_format: str = "console",
    level: str = "info",
    interval: float = 10.0,
) -> AsyncIterator[None]:
    """Show progress for the duration of the block: live on a TTY, log lines every `interval` s."""
    tty = sys.stderr.isatty() and log_format == "console"
    if mode == "never":
        yield
        return
    live = tty if mode == "auto" else True
    async with anyio.create_task_group() as tg:
        if live:
            from migrator.core import logs

            term = TerminalStream(sys.stderr)
            logs.configure(log_format, level, stream=term)  # type: ignore[arg-type]

            async def redraw() -> None:
                while True:
                    term.update(progress_lines(progress, time.monotonic()))
                    await anyio.sleep(0.5)

            tg.start_soon(redraw)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
                term.update(progress_lines(progress, time.monotonic()))
                term.block = []
                term._drawn = 0
                logs.configure(log_format, level)
        else:

            async def periodic() -> None:
                while True:
                    await anyio.sleep(interval)
                    for line in progress_lines(progress, time.monotonic()):
                        log.info("progress", status=line)

            tg.start_soon(periodic)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
