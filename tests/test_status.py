"""`migrator status --journal FILE`, text and --json, over journals written by real runs (issue 5).

Exit 0 when every item is settled, 1 otherwise, 2 (one line, no traceback) when there is no readable journal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest

from migrator.cli import main
from migrator.core.report import Report
from migrator.fake import FaultConfig
from migrator.fake._state import errors_list
from migrator.run.migrate import migrate
from migrator.run.options import MigrateOptions
from migrator.run.status import status_data
from migrator.store.journal import Journal
from tests.conftest import ROOT
from tests.helpers import (
    CALLEE,
    T1,
    VAT,
    WELCOME,
    Crash,
    crashing,
    hooked,
    running_fake,
    traced_peak,
)

TENANTS = ("tenant-1", "tenant-2", "tenant-3")


def status(capsys: pytest.CaptureFixture[str], journal: Path, *flags: str) -> tuple[int, str]:
    """Run `migrator status` in process; its exit code and stdout."""
    capsys.readouterr()
    code = main(["status", "--journal", str(journal), *flags])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out


def status_json(capsys: pytest.CaptureFixture[str], journal: Path) -> tuple[int, dict[str, Any]]:
    code, out = status(capsys, journal, "--json")
    return code, json.loads(out)


def row(text: str, tenant: str) -> list[int]:
    """The numbers of a tenant's row: done, skipped, failed, in doubt, deferred."""
    [line] = [ln for ln in text.splitlines() if ln.startswith(tenant + " ")]
    return [int(n) for n in line.split()[1:]]


@pytest.mark.anyio
async def test_clean_run_is_settled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """After a clean run, status counts every item done per tenant, lists no problem, and exits 0 in text and JSON."""
    journal = tmp_path / "j.jsonl"
    async with running_fake() as env:
        report = await migrate(
            env.settings, MigrateOptions(sources=[WELCOME, CALLEE], journal=str(journal))
        )
        assert report.ok
    code, text = status(capsys, journal)
    assert code == 0, text
    assert text.splitlines()[0] == f"journal {journal}: 1 run(s)"
    assert "did not finish" not in text and "interrupted" not in text
    for tenant in TENANTS:
        assert row(text, tenant) == [2, 0, 0, 0, 0]
    assert "failed:" not in text and "in doubt:" not in text and "next run" not in text

    code, data = status_json(capsys, journal)
    assert code == 0
    assert data["runs"] == 1 and data["last_run_finished"] and not data["last_run_interrupted"]
    assert sorted(data["tenants"]) == list(TENANTS)
    for tenant in TENANTS:
        t = data["tenants"][tenant]
        assert t["counts"]["done"] == 2 and sum(t["counts"].values()) == 2
        assert t["failures"] == t["in_doubt"] == t["deferred"] == [] and t["next_run"] == {}


@pytest.mark.anyio
async def test_failures_are_listed_with_their_reasons(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An item the target refused shows as failed in its tenant with the target's reason and the --retry-failed hint, and status exits 1."""
    journal = tmp_path / "j.jsonl"

    def refuse_welcome_in_t1(type: str, fields: Mapping[str, Any]) -> None:
        if fields.get("tenant") != T1:
            return
        if type == "intent" and fields["name"] == "Welcome Email for New Accounts":
            env.fake.set_faults(T1, FaultConfig(error_rate=1.0, error_statuses=(400,)))
        elif type == "failed":
            env.fake.set_faults(T1, FaultConfig())

    async with running_fake(max_attempts=1, max_concurrency=1) as env:
        await migrate(
            env.settings,
            MigrateOptions(sources=[WELCOME, CALLEE], journal=str(journal)),
            journal_factory=hooked(refuse_welcome_in_t1),
        )
    code, text = status(capsys, journal)
    assert code == 1, text
    assert row(text, T1) == [1, 0, 1, 0, 0]
    assert row(text, "tenant-2") == row(text, "tenant-3") == [2, 0, 0, 0, 0]
    [failure] = [ln for ln in text.splitlines() if ln.strip().startswith("failed:")]
    assert failure.strip().startswith(f"failed: {T1}: Welcome Email for New Accounts ({WELCOME}): ")
    assert "400" in failure
    assert f"next run for {T1}: failed: " in text and "--retry-failed" in text

    code, data = status_json(capsys, journal)
    assert code == 1
    [item] = data["tenants"][T1]["failures"]
    assert item["name"] == "Welcome Email for New Accounts" and item["source"] == WELCOME
    assert "400" in item["reason"] and item["attempts"] == 1
    assert "--retry-failed" in data["tenants"][T1]["next_run"]["failed"]
    assert data["tenants"]["tenant-2"]["failures"] == []


@pytest.mark.anyio
async def test_in_doubt_items_after_a_kill(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run killed between intent and answer shows that item in doubt, says the last run did not finish and that the next run resends with the same Idempotency-Key, and exits 1."""
    journal = tmp_path / "j.jsonl"

    def die_at_welcome(type: str, fields: Mapping[str, Any]) -> None:
        if type == "intent" and fields["name"] == "Welcome Email for New Accounts":
            raise Crash

    async with running_fake(max_concurrency=1) as env:
        await crashing(
            migrate(
                env.settings,
                MigrateOptions(sources=[WELCOME, CALLEE], tenants=[T1], journal=str(journal)),
                journal_factory=hooked(die_at_welcome),
            )
        )
    # A SIGKILL leaves no run_finished: drop the one the simulated crash wrote.
    lines = journal.read_bytes().splitlines(keepends=True)
    assert b'"type":"run_finished"' in lines[-1]
    journal.write_bytes(b"".join(lines[:-1]))

    code, text = status(capsys, journal)
    assert code == 1, text
    assert "the last run did not finish (crashed or killed)" in text
    assert row(text, T1) == [1, 0, 0, 1, 0]
    assert any(
        ln.strip().startswith(f"in doubt: {T1}: Welcome Email for New Accounts")
        for ln in text.splitlines()
    )
    assert "same Idempotency-Key" in text

    code, data = status_json(capsys, journal)
    assert code == 1 and not data["last_run_finished"]
    [item] = data["tenants"][T1]["in_doubt"]
    assert item["name"] == "Welcome Email for New Accounts" and item["version"]
    assert "in_doubt" in data["tenants"][T1]["next_run"]


@pytest.mark.anyio
async def test_torn_tail_is_reported_not_changed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A journal whose last line is torn is read up to that line, the tear is reported with its line number, the file is left as it is, and since that run never finished, status exits 1."""
    journal = tmp_path / "j.jsonl"
    async with running_fake() as env:
        await migrate(
            env.settings, MigrateOptions(sources=[WELCOME], tenants=[T1], journal=str(journal))
        )
    lines = journal.read_bytes().splitlines(keepends=True)
    torn = b"".join(lines[:-1]) + lines[-1][:25]
    journal.write_bytes(torn)

    code, text = status(capsys, journal)
    assert code == 1, text
    assert f"ignored an incomplete last line (line {len(lines)}, 25 bytes)" in text
    assert "the last run did not finish" in text
    assert row(text, T1) == [1, 0, 0, 0, 0]
    code, data = status_json(capsys, journal)
    assert code == 1 and any(f"line {len(lines)}" in n for n in data["notices"])
    assert journal.read_bytes() == torn


@pytest.mark.anyio
async def test_status_while_a_run_holds_the_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Status reads a journal another migrator holds, without waiting for its lock, and says the counts are a moment's picture."""
    journal = tmp_path / "j.jsonl"
    async with Journal.open(journal, {"run_id": "live"}) as live:
        await live.append(
            "intent",
            tenant=T1,
            item="ab" * 32,
            action="create",
            name="W",
            version="1.0.0",
            target_definition_id=None,
            idempotency_key="k-1",
            source="w.json",
        )
        code, text = status(capsys, journal)
    assert code == 1
    assert f"a migrator (pid {os.getpid()}) is writing this journal now" in text
    assert row(text, T1) == [0, 0, 0, 1, 0]


@pytest.mark.parametrize("damage", ["missing", "damaged"])
def test_unreadable_journal_is_one_line_exit_2(tmp_path: Path, damage: str) -> None:
    """A missing journal, or one damaged before its last line, makes `migrator status` print one error line naming the file (and the line), exit 2, and show no traceback."""
    journal = tmp_path / "j.jsonl"
    if damage == "damaged":
        good = b'{"v":1}\n'
        journal.write_bytes(good + b"not json at all\n" + good)
    result = subprocess.run(
        [sys.executable, "-m", "migrator.cli", "status", "--journal", str(journal)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("migrator: error: ") and str(journal) in line
    assert ("no journal here" in line) if damage == "missing" else ("damaged at line 1" in line)


@pytest.mark.anyio
async def test_a_stopped_or_killed_run_is_not_settled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After a run stopped early (Ctrl-C, or killed) whose journaled items all landed, status still exits 1, says to run again and counts the documents it never reached as deferred."""
    journal = tmp_path / "j.jsonl"
    stopping = anyio.Event()

    def stop_at_first_commit(type: str, fields: Mapping[str, Any]) -> None:
        if type == "committed":
            stopping.set()

    async with running_fake(max_concurrency=1) as env:
        report = await migrate(
            env.settings,
            MigrateOptions(sources=[WELCOME, CALLEE, VAT], tenants=[T1], journal=str(journal)),
            stopping=stopping,
            journal_factory=hooked(stop_at_first_commit),
        )
        assert report.interrupted and len(env.imports(T1)) == 1
    code, text = status(capsys, journal)
    assert code == 1, text
    assert "the last run was interrupted: run the same command again to resume" in text
    # One landed; the two documents the stopped run never reached are deferred (the report's word).
    assert row(text, T1) == [1, 0, 0, 0, 2]
    code, data = status_json(capsys, journal)
    assert code == 1 and data["last_run_interrupted"]

    # Killed: no run_finished at all.
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(lines[:-1]))
    code, text = status(capsys, journal)
    assert code == 1, text
    assert "the last run did not finish (crashed or killed)" in text


@pytest.mark.anyio
async def test_work_the_journal_never_saw_keeps_status_unsettled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the last run could not even plan one tenant (its items deferred in the report, none in the journal), status exits 1 and shows the last run's deferred count."""
    journal = tmp_path / "j.jsonl"
    async with running_fake(max_attempts=1) as env:
        listing = env.fake.state.list_definitions

        def listing_down_in_t1(tenant: str, filters: Mapping[str, str]) -> Any:
            if tenant == T1:
                raise errors_list(503, "listing is down")
            return listing(tenant, filters)

        monkeypatch.setattr(env.fake.state, "list_definitions", listing_down_in_t1)
        report = await migrate(
            env.settings, MigrateOptions(sources=[WELCOME], journal=str(journal))
        )
        assert {i.tenant: i.status for i in report.items}[T1] == "deferred"
    code, text = status(capsys, journal)
    assert code == 1, text
    assert "the last run left work undone" in text and "deferred 1" in text
    code, data = status_json(capsys, journal)
    assert code == 1 and data["last_run_counts"]["deferred"] == 1


async def stopped_before_sending(tmp_path: Path) -> tuple[Report, Path]:
    """A migrate of the samples into tenant-1 asked to stop before its first import: it plans,
    journals the plan and sends nothing."""
    from tests.conftest import SAMPLES

    journal = tmp_path / "j.jsonl"
    async with running_fake() as env:
        stopping = anyio.Event()
        stopping.set()  # asked to stop before the first import: planning happens, sending does not
        report = await migrate(
            env.settings,
            MigrateOptions(sources=[str(SAMPLES)], tenants=["tenant-1"], journal=str(journal)),
            stopping=stopping,
        )
        assert env.fake.ledger() == []
    return report, journal


@pytest.mark.anyio
async def test_documents_a_stopped_run_never_reached_count_as_pending(tmp_path: Path) -> None:
    """A run stopped before sending anything leaves its planned documents counted as pending, and status exits 1."""
    from migrator.commands.status import journal_status

    report, journal = await stopped_before_sending(tmp_path)
    planned = sum(1 for i in report.items if i.action in ("create", "new_version"))
    data = status_data(str(journal))
    assert data["tenants"]["tenant-1"]["counts"]["pending"] == planned > 0
    assert journal_status(str(journal))[1] is False


@pytest.mark.anyio
async def test_status_says_deferred_where_the_report_says_deferred(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Documents a stopped run never reached are `deferred` in the run's report and `deferred` in
    status (table and JSON): one word for one thing; `pending` stays in the JSON counts, inside
    `deferred`, for one release."""
    report, journal = await stopped_before_sending(tmp_path)
    deferred = sum(1 for i in report.items if i.status == "deferred")
    assert deferred > 0
    code, text = status(capsys, journal)
    assert code == 1 and "pending" not in text
    assert row(text, "tenant-1")[4] == deferred
    code, data = status_json(capsys, journal)
    counts = data["tenants"]["tenant-1"]["counts"]
    assert counts["deferred"] == counts["pending"] == deferred
    assert "pending" not in data["tenants"]["tenant-1"]["next_run"]


@pytest.mark.anyio
async def test_planned_keys_are_journaled_a_chunk_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The `planned` records of a tenant together list exactly what it sends, each at most
    PLANNED_PER_RECORD keys long, and status counts them all before anything was sent."""
    import migrator.run.migrate as engine
    from migrator.core.journal_records import encode
    from migrator.store.journal import read_journal
    from tests.conftest import SAMPLES

    monkeypatch.setattr(engine, "PLANNED_PER_RECORD", 5)
    journal = tmp_path / "j.jsonl"
    async with running_fake() as env:
        report = await migrate(
            env.settings,
            MigrateOptions(sources=[str(SAMPLES)], tenants=[T1], journal=str(journal)),
        )
    records = read_journal(journal).records
    planned = [r for r in records if r.type == "planned"]
    sent = {r.get("item") for r in records if r.type == "intent"}
    assert report.ok and len(sent) > 10
    assert all(len(r.get("items")) <= 5 for r in planned)
    assert len(planned) == -(-len(sent) // 5)
    listed = [key for r in planned for key in r.get("items")]
    assert sorted(listed) == sorted(sent)  # each once (intents come in the workers' order)
    # Status, reading the journal as it stood before anything was sent, counts every chunk.
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b"".join(encode(r) for r in records if r.type in ("run_started", "planned")))
    assert status_data(str(cut))["tenants"][T1]["counts"]["pending"] == len(sent)


@pytest.mark.slow
def test_status_of_a_long_journal_holds_no_item_per_record(tmp_path: Path) -> None:
    """Status folds the journal into a table on disk: reading 20,000 imports holds a few
    megabytes of Python objects at most, not the records or a state per item."""
    from migrator.core.journal_records import Record, encode

    journal = tmp_path / "j.jsonl"
    seq = 0

    def line(type: str, **fields: Any) -> bytes:
        nonlocal seq
        seq += 1
        return encode(Record(seq, type, 1.0, fields))

    with open(journal, "wb") as out:
        out.write(line("run_started", run_id="r", tenants={T1: "x"}))
        for n in range(20_000):
            key = f"{n:064x}"
            out.write(
                line(
                    "intent",
                    tenant=T1,
                    item=key,
                    action="create",
                    name=f"wf {n}",
                    version="1.0.0",
                    idempotency_key="migrator-" + key[:48],
                    source=f"{n}.json",
                )
            )
            out.write(
                line(
                    "committed",
                    tenant=T1,
                    item=key,
                    target_definition_id=n + 1,
                    target_version_id=n + 2,
                    version="1.0.0",
                    name=f"wf {n}",
                )
            )
            if n % 1000 == 0:
                out.write(line("failed", tenant="tenant-2", item=key, reason="refused", name="x"))
        out.write(line("run_finished", counts={}, interrupted=False))
    data, peak = traced_peak(lambda: status_data(str(journal)))
    assert data["tenants"][T1]["counts"]["done"] == 20_000
    assert len(data["tenants"]["tenant-2"]["failures"]) == 20
    assert peak < 4 << 20, peak  # the journal is 12 MB; folded in memory it took ~60 MB


def test_the_status_header_never_contradicts_its_table() -> None:
    """When the journal records the last run's failure item by item, the header points at the
    table instead of repeating a count; only what the table cannot show is counted there."""
    from migrator.render.status import render_status

    def data(failed_in_table: int, failed_in_run: int) -> dict[str, Any]:
        counts = dict.fromkeys(("done", "skipped", "failed", "in_doubt", "deferred", "pending"), 0)
        counts["failed"] = failed_in_table
        return {
            "journal": "j.jsonl",
            "runs": 1,
            "last_run_finished": True,
            "last_run_interrupted": False,
            "last_run_counts": {"failed": failed_in_run},
            "notices": [],
            "tenants": {
                "t": {
                    "counts": counts,
                    "failures": [],
                    "in_doubt": [],
                    "deferred": [],
                    "next_run": {},
                }
            },
        }

    same = render_status(data(1, 1))
    assert "the last run left work undone: see the table below" in same
    assert "failed 1" not in same
    more = render_status(data(0, 1))
    assert "does not record item by item: failed 1" in more
