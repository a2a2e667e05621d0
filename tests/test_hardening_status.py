"""`migrator status` over a journal that records no run (issue 14, item 21): never "settled"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from migrator.cli import main


@pytest.mark.parametrize("content", [b"", b"\x00" * 4096], ids=["empty", "all-NUL"])
def test_a_journal_with_no_run_is_not_settled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    """An empty or all-NUL journal makes status say it has no run and exit 1, in text and JSON."""
    journal = tmp_path / "j.jsonl"
    journal.write_bytes(content)
    capsys.readouterr()
    code = main(["status", "--journal", str(journal)])
    out, err = capsys.readouterr()
    assert code == 1, (out, err)
    assert "the journal has no run" in out
    assert "Traceback" not in err
    code = main(["status", "--journal", str(journal), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1 and data["runs"] == 0 and data["tenants"] == {}
