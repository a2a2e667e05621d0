"""`migrator ids`: the id map read from a journal alone, in JSON, CSV or text (issue 24)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from migrator.cli import main
from migrator.core.journal_records import Record, encode


def write_journal(path: Path, records: list[tuple[str, dict[str, Any]]]) -> Path:
    path.write_bytes(
        b"".join(
            encode(Record(seq, kind, 1.0 + seq, fields))
            for seq, (kind, fields) in enumerate([("run_started", {}), *records], start=1)
        )
    )
    return path


def imported(
    tenant: str,
    item: str,
    name: str,
    *,
    source_version_id: int | None = None,
    version_id: int | None = 11,
) -> list[tuple[str, dict[str, Any]]]:
    intent: dict[str, Any] = {
        "tenant": tenant,
        "item": item,
        "action": "create",
        "name": name,
        "version": "1.0.0",
        "target_definition_id": None,
        "idempotency_key": "k-" + item,
        "source": f"exports/{name}.json",
    }
    if source_version_id is not None:
        intent["source_version_id"] = source_version_id
    committed = {
        "tenant": tenant,
        "item": item,
        "target_definition_id": 5,
        "target_version_id": version_id,
        "version": "1.0.0",
        "name": name,
    }
    return [("intent", intent), ("committed", committed)]


def run_ids(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["ids", *args])
    return code, capsys.readouterr().out


def test_json_lists_every_imported_document_per_tenant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Imported documents only (a failed one is not in the map), grouped by tenant, with ids."""
    journal = write_journal(
        tmp_path / "j.jsonl",
        [
            *imported("prod", "a", "Alpha", source_version_id=301),
            *imported("qa", "a", "Alpha", source_version_id=301),
            ("intent", {"tenant": "qa", "item": "b", "name": "Beta", "version": "1"}),
            ("failed", {"tenant": "qa", "item": "b", "reason": "400", "permanent": True}),
        ],
    )
    code, out = run_ids(capsys, "--journal", str(journal), "--json")
    assert code == 0
    assert json.loads(out) == {
        "tenants": {
            tenant: [
                {
                    "name": "Alpha",
                    "version": "1.0.0",
                    "source": "exports/Alpha.json",
                    "source_version_id": 301,
                    "target_definition_id": 5,
                    "target_version_id": 11,
                }
            ]
            for tenant in ("prod", "qa")
        }
    }


def test_an_old_journal_without_source_ids_gives_null(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A journal written before source ids were recorded is read as it is: the id is null."""
    journal = write_journal(tmp_path / "j.jsonl", imported("prod", "a", "Alpha"))
    code, out = run_ids(capsys, "--journal", str(journal), "--json", "--tenant", "prod")
    assert code == 0
    assert json.loads(out)["tenants"]["prod"][0]["source_version_id"] is None


def test_csv_has_a_tenant_column_and_tenant_selects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """CSV: one row per (tenant, document) with a tenant column; --tenant keeps only that one."""
    journal = write_journal(
        tmp_path / "j.jsonl",
        [*imported("prod", "a", "Alpha", source_version_id=1), *imported("qa", "b", "Beta")],
    )
    code, out = run_ids(capsys, "--journal", str(journal), "--csv", "--tenant", "qa")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows == [
        {
            "tenant": "qa",
            "name": "Beta",
            "version": "1.0.0",
            "source": "exports/Beta.json",
            "source_version_id": "",
            "target_definition_id": "5",
            "target_version_id": "11",
        }
    ]


def test_an_unknown_version_id_exits_1_and_text_is_printable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An import whose version id is not known yet exits 1; the text form escapes hostile names."""
    journal = write_journal(
        tmp_path / "j.jsonl", imported("prod", "a", "Evil\x1b[2J", version_id=None)
    )
    code, out = run_ids(capsys, "--journal", str(journal))
    assert code == 1
    assert "\x1b" not in out and "Evil" in out


def test_a_missing_journal_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No journal at the path: exit 2 and one line, no traceback."""
    code = main(["ids", "--journal", str(tmp_path / "none.jsonl")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "no journal here" in err
