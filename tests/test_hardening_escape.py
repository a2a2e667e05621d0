"""Hostile names on a terminal (issue 14, item 12): control characters from documents and
tenants are shown as visible escapes in every human-readable line these modules print."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog

from migrator.cli import main
from migrator.core import logs
from migrator.core.logs import printable
from migrator.core.report import ItemOutcome, Report
from migrator.fake import FakeConfig, FaultConfig
from migrator.render.outcomes import render_items, render_table, summary_line
from migrator.run.migrate import MigrateOptions, migrate
from migrator.run.progress import progress_lines
from tests.builders import small_export
from tests.helpers import Client, FakeProgress, Stats, hooked, running_fake, tenant

# Recolours the terminal, returns to the start of the line, forges a verdict, rings the bell.
EVIL = "\x1b[31mEvil\r\nmigrator: ok: imported 9\x07\x9b2J\u202e"
SHOWN = "\\x1b[31mEvil\\r\\nmigrator: ok: imported 9\\x07\\x9b2J\\u202e"


def assert_clean(text: str) -> None:
    """No control character but the line breaks between lines, and no forged line."""
    for line in text.split("\n"):
        assert printable(line) == line, repr(line)
        assert not line.startswith("migrator: ok"), repr(line)


def test_printable_escapes_controls_and_keeps_everything_else() -> None:
    """ESC, CR, LF, TAB, BEL, DEL, C1, bidi overrides and undecodable bytes become escapes; other text is kept."""
    assert printable(EVIL) == SHOWN
    assert printable("a\tb\x7fc\x00") == "a\\tb\\x7fc\\x00"
    assert printable(b"caf\xe9".decode("utf-8", "surrogateescape")) == "caf\\xe9"
    assert printable("Café – naïve 日本 \\x1b") == "Café – naïve 日本 \\x1b"


def outcomes() -> list[ItemOutcome]:
    return [
        ItemOutcome(
            tenant="t\x1b]0;title\x07",
            source="/src/a.json",
            workflow_name=EVIL,
            status="failed",
            error=f"400 {EVIL}",
        ),
        ItemOutcome(
            tenant="prod",
            source=f"/src/{EVIL}.json",
            workflow_name=EVIL,
            status="imported",
            action="create",
            reason=EVIL,
        ),
    ]


def test_report_table_and_listing_escape_names() -> None:
    """The report table, the item listing and the summary carry every hostile name as escapes."""
    report = Report(items=tuple(outcomes()), notices=(f"note {EVIL}",))
    table = render_table(report)
    listing = render_items(outcomes())
    for text in (table, listing, summary_line(report)):
        assert_clean(text)
    assert SHOWN in table and "t\\x1b]0;title\\x07" in table
    assert SHOWN in listing


def test_progress_lines_escape_tenant_names_and_phases() -> None:
    """The live progress block shows a hostile tenant name and phase as escapes."""
    progress = FakeProgress(
        tenants={EVIL: tenant(5, 1, 0.0, phase="import\x1b[2J")},
        clients={EVIL: Client(Stats())},
    )
    [line] = progress_lines(progress, 10.0)
    assert_clean(line)
    assert line.startswith(SHOWN) and "import\\x1b[2J" in line


def test_console_log_lines_escape_values() -> None:
    """A console log line with a hostile value stays one line and shows the controls as escapes; JSON logs stay JSON."""
    out = io.StringIO()
    logs.configure("console", "info", stream=out)
    try:
        structlog.get_logger("t").warning(f"imported {EVIL}", name=EVIL)
    finally:
        logs.configure("console", "debug")
    text = out.getvalue()
    assert text.count("\n") == 1, text
    assert_clean(text.rstrip("\n"))
    assert SHOWN in text
    out = io.StringIO()
    logs.configure("json", "info", stream=out)
    try:
        structlog.get_logger("t").warning("imported", name=EVIL)
    finally:
        logs.configure("console", "debug")
    assert orjson.loads(out.getvalue())["name"] == EVIL


@pytest.mark.anyio
async def test_status_text_escapes_names_from_the_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`migrator status` lists a refused document whose name and reason hold controls as escapes only."""
    src = tmp_path / "evil.json"
    src.write_bytes(orjson.dumps(small_export(EVIL)))
    journal = tmp_path / "j.jsonl"
    config = FakeConfig.demo(1)
    name = config.tenants[0].name

    def refuse(type: str, fields: Mapping[str, Any]) -> None:
        if type == "intent":
            env.fake.set_faults(name, FaultConfig(error_rate=1.0, error_statuses=(400,)))
        elif type == "failed":
            env.fake.set_faults(name, FaultConfig())

    async with running_fake(config, max_attempts=1) as env:
        await migrate(
            env.settings,
            MigrateOptions(sources=[str(src)], journal=str(journal)),
            journal_factory=hooked(refuse),
        )
    capsys.readouterr()
    code = main(["status", "--journal", str(journal)])
    out = capsys.readouterr().out
    assert code == 1
    assert_clean(out.rstrip("\n"))
    assert f"failed: {name}: {SHOWN}" in out, out
