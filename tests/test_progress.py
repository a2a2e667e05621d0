"""Progress display: per-tenant lines (done/total, rate, retries, 429s, ETA) and a log that never garbles them.

`progress_lines` is pure and gets a hand-made Progress; `TerminalStream` writes into a StringIO and
a tiny terminal emulator replays the ANSI sequences to check what a person would see.
"""

from __future__ import annotations

import io
import re

from migrator.run.progress import TerminalStream, format_eta, progress_lines
from tests.helpers import Client, FakeProgress, Stats, tenant


def test_lines_show_done_total_rate_retries_429s_and_eta_per_tenant() -> None:
    """Each tenant gets one line, sorted by name, with its counts, its rate, its client's retries and 429s, and the ETA at that rate."""
    progress = FakeProgress(
        tenants={
            "zeta": tenant(200, 50, 100.0, phase="importing", imported=40, skipped=9, failed=1),
            "alpha": tenant(10, 10, 100.0, phase="done", imported=10),
        },
        clients={"zeta": Client(Stats(retries=3, throttled=2))},
    )
    lines = progress_lines(progress, now=110.0)
    assert len(lines) == 2
    alpha, zeta = lines
    assert alpha.startswith("alpha") and zeta.startswith("zeta")
    # zeta: 50 done in 10 s → 5.0/s; 150 left → 30 s.
    assert re.search(r"\b50/200\b", zeta)
    assert "imported 40" in zeta and "skipped 9" in zeta and "failed 1" in zeta
    assert "5.0/s" in zeta
    assert re.search(r"retries 3\b", zeta) and re.search(r"429s 2\b", zeta)
    assert zeta.rstrip().endswith("eta 00:30")
    assert "importing" in zeta
    # alpha has no client yet: zero retries; nothing left: ETA zero.
    assert re.search(r"\b10/10\b", alpha)
    assert re.search(r"retries 0\b", alpha) and re.search(r"429s 0\b", alpha)
    assert alpha.rstrip().endswith("eta 00:00")


def test_eta_is_unknown_before_the_first_document() -> None:
    """With nothing done yet there is no rate, so the ETA is shown as unknown rather than infinite or zero."""
    progress = FakeProgress(tenants={"t": tenant(5, 0, 0.0, phase="planning")})
    (line,) = progress_lines(progress, now=30.0)
    assert re.search(r"\b0/5\b", line)
    assert line.rstrip().endswith("eta --:--")


def test_format_eta() -> None:
    """ETAs read as mm:ss, or h:mm:ss past an hour; infinity and NaN as --:--."""
    assert format_eta(0) == "00:00"
    assert format_eta(61.9) == "01:01"
    assert format_eta(3 * 3600 + 5 * 60 + 7) == "3:05:07"
    assert format_eta(float("inf")) == "--:--"
    assert format_eta(float("nan")) == "--:--"


# ---------------------------------------------------------------------------------------------
# A terminal that understands what TerminalStream emits: text, \n, ESC[nF (up n lines, column 0)
# and ESC[J (erase from the cursor to the end of the screen).

_CSI = re.compile(r"\x1b\[(\d*)([A-Za-z])")


def screen(output: str) -> list[str]:
    rows: list[str] = [""]
    row = col = 0
    pos = 0
    while pos < len(output):
        m = _CSI.match(output, pos)
        if m:
            n, op = int(m.group(1) or 1), m.group(2)
            if op == "F":
                row, col = max(0, row - n), 0
            elif op == "J":
                rows[row] = rows[row][:col]
                del rows[row + 1 :]
            else:  # pragma: no cover - TerminalStream emits nothing else
                raise AssertionError(f"unexpected sequence {m.group(0)!r}")
            pos = m.end()
            continue
        ch = output[pos]
        pos += 1
        if ch == "\n":
            row, col = row + 1, 0
            if row == len(rows):
                rows.append("")
            continue
        line = rows[row].ljust(col)
        rows[row] = line[:col] + ch + line[col + 1 :]
        col += 1
    while rows and rows[-1] == "":
        rows.pop()
    return rows


def test_log_lines_stay_above_the_progress_block() -> None:
    """Log lines written while the block is shown end up above it, whole, and the block appears once, at the bottom."""
    out = io.StringIO()
    term = TerminalStream(out)
    term.update(["tenant-1  1/10", "tenant-2  0/10"])
    term.write("first log line\n")
    term.update(["tenant-1  2/10", "tenant-2  1/10"])
    term.write("second log line\n")
    assert screen(out.getvalue()) == [
        "first log line",
        "second log line",
        "tenant-1  2/10",
        "tenant-2  1/10",
    ]
    # The block is lifted (cursor up over its 2 lines, erase below) before each log line.
    assert "\x1b[2F\x1b[Jsecond log line\n" in out.getvalue()


def test_a_line_written_in_pieces_is_not_cut_by_the_block() -> None:
    """print() writes the text and its newline separately (structlog's PrintLogger does): the line still comes out whole."""
    out = io.StringIO()
    term = TerminalStream(out)
    term.update(["progress 1/3"])
    print("a log line", file=term, flush=True)
    term.write("another ")
    term.write("one\n")
    term.update(["progress 2/3"])
    assert screen(out.getvalue()) == ["a log line", "another one", "progress 2/3"]


def test_clear_removes_the_block_and_keeps_the_log() -> None:
    """After clear() only the log remains: nothing of the block is left on screen."""
    out = io.StringIO()
    term = TerminalStream(out)
    term.update(["a", "b", "c"])
    term.write("kept\n")
    term.clear()
    assert screen(out.getvalue()) == ["kept"]


def test_block_lines_are_cut_to_the_terminal_width() -> None:
    """A block line wider than the terminal would wrap and make the lift miss a row: lines are cut to fit."""
    out = io.StringIO()
    term = TerminalStream(out)
    term.width = 40
    term.update(["x" * 100])
    term.write("log\n")
    rows = screen(out.getvalue())
    assert rows == ["log", "x" * 39]
