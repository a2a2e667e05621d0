"""A record whose newline is gone is damage, not a torn write (issue 21, the tests).

The journal property test accepted any prefix: a changed newline in the line before the last ran
two records into one last line, which was cut as torn, silently dropping a record acknowledged as
durable. End to end over HTTP: the run refuses, names the line, sends nothing, leaves the file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from migrator.core.errors import JournalError
from migrator.run.migrate import migrate
from migrator.run.options import MigrateOptions
from tests.conftest import SAMPLES
from tests.helpers import running_fake

pytestmark = pytest.mark.anyio

T1 = "tenant-1"
WELCOME = str(SAMPLES / "01-welcome-new-account.json")
VAT = str(SAMPLES / "08-normalise-tax-ids.json")


def options(journal: Path, *sources: str) -> MigrateOptions:
    return MigrateOptions(sources=list(sources), tenants=[T1], journal=str(journal))


@pytest.mark.parametrize("replacement", [b" ", b"x", b"\r"])
async def test_a_lost_newline_before_the_last_line_is_refused(
    tmp_path: Path, replacement: bytes
) -> None:
    """The newline of the line before the last changed: the re-run refuses naming that line (not a cut), sends nothing and leaves the file as it was."""
    journal = tmp_path / "j.jsonl"
    async with running_fake() as env:
        assert (await migrate(env.settings, options(journal, WELCOME))).ok
        lines = journal.read_bytes().splitlines(keepends=True)
        assert len(lines) >= 4
        lines[-2] = lines[-2][:-1] + replacement
        damaged = b"".join(lines)
        journal.write_bytes(damaged)
        with pytest.raises(JournalError) as info:
            await migrate(env.settings, options(journal, WELCOME, VAT))
        message = str(info.value)
        assert f"damaged at line {len(lines) - 1}" in message, message
        assert "newline" in message and f"head -n {len(lines) - 2}" in message
        assert journal.read_bytes() == damaged
        assert len(env.imports(T1)) == 1


async def test_a_torn_last_line_is_still_cut(tmp_path: Path) -> None:
    """Half of the last line written (a crash) is cut and reported, and the run goes on: VAT lands once, WELCOME is not sent again."""
    journal = tmp_path / "j.jsonl"
    async with running_fake() as env:
        assert (await migrate(env.settings, options(journal, WELCOME))).ok
        raw = journal.read_bytes()
        last = raw.splitlines(keepends=True)[-1]
        journal.write_bytes(raw + last[: len(last) // 2])
        report = await migrate(env.settings, options(journal, WELCOME, VAT))
        assert report.ok, report.to_json()
        assert any("cut an incomplete last line" in n for n in report.notices), report.notices
        assert len(env.imports(T1)) == 2
