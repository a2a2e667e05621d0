"""Each fact printed once (issue 22 #5): stdout for people, a stderr log line only for what stdout
does not say. Commands run as a user runs them (a child process against the fake over HTTP)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from migrator.core.report import ItemOutcome, Report
from migrator.fake import FakeConfig
from migrator.render.outcomes import counts_rows, render_migrate, render_plan
from tests.conftest import SAMPLES
from tests.helpers import run_cli, run_migrator, running_fake, write_config_file

pytestmark = pytest.mark.anyio

REFUSED = "Usage Overage Alert"


async def test_a_refused_import_is_said_once_on_stdout_and_not_again_as_a_log_line(
    tmp_path: Path,
) -> None:
    """A tenant refusing one import: migrate names the refusal once on stdout and logs no
    `zuora call failed` line about it on stderr."""
    async with running_fake(FakeConfig.demo(1)) as env:
        env.fake.set_tenant("tenant-1", reject_imports=[REFUSED])
        run = await run_cli(env, tmp_path, "migrate", str(SAMPLES), "--progress", "never")
    assert run.code == 1, run.out + run.err
    said = [line for line in run.out.splitlines() if "POST /workflows/import: 400" in line]
    assert len(said) == 1 and REFUSED in said[0], run.out
    assert "zuora call failed" not in run.err and "400" not in run.err, run.err


async def test_a_failed_smoke_run_and_the_halt_are_said_on_stdout_only(tmp_path: Path) -> None:
    """A rollout whose smoke run fails: the failed run is one row on stdout (no second `FAILED`
    note), and stderr carries no `smoke run` or `rollout halted` line repeating stdout."""
    config = replace(FakeConfig.demo(2), run_seconds=0.05)
    async with running_fake(config) as env:
        env.fake.set_tenant("tenant-1", failing_runs=[REFUSED])
        path = tmp_path / "rollout.toml"
        variables = write_config_file(path, env)
        with path.open("a") as out:
            out.write(
                '\n[rollout]\nwaves = [["tenant-1"], ["*"]]\n'
                f'\n[rollout.smoke."{REFUSED}"]\ntimeout_s = 60\n'
            )
        journal = str(tmp_path / "j.jsonl")
        args = ["migrate", str(SAMPLES), "--config", str(path), "--journal", journal, "--activate"]
        run = await run_migrator(args, variables, tmp_path)
    assert run.code == 1, run.out + run.err
    rows = [line for line in run.out.splitlines() if line.startswith("  failed   tenant-1: ")]
    assert len(rows) == 1 and "smoke run" in rows[0], run.out
    assert "FAILED" not in run.out, run.out
    assert "halted the rollout" in run.out
    assert "smoke run" not in run.err and "rollout halted" not in run.err, run.err


def _down(n: int) -> list[ItemOutcome]:
    why = "tenant down: POST /oauth/token: connect error to 127.0.0.1:9"
    return [ItemOutcome("down", f"{i}.json", f"W{i}", "deferred", error=why) for i in range(n)] + [
        ItemOutcome("up", "a.json", "A", "planned", action="create", version="1.0.0")
    ]


def test_a_preview_says_a_tenant_wide_cause_once() -> None:
    """plan and `migrate --dry-run` list every item once: a tenant-wide cause is one line for the
    tenant, and the counts below the listing repeat no row."""
    report = Report(items=_down(5))
    for text in (render_plan(report), render_migrate(report, dry_run=True)):
        assert text.count("connect error") == 1, text
        assert "down: 5 items: deferred: tenant down" in text
        assert "up: A: planned create version 1.0.0" in text
        assert "needs attention" not in text


def test_a_run_without_preview_still_says_what_needs_attention() -> None:
    """A real run's table lists what needs attention (once per tenant-wide cause) and its summary."""
    text = render_migrate(Report(items=_down(5)))
    assert text.count("connect error") == 1 and "needs attention:" in text
    assert text.splitlines()[-1].startswith("migrator: attention needed: ")


def test_every_count_stands_under_its_status() -> None:
    """A status longer than a column (rollback's `rolled_back`) widens its column: each count ends
    where its status name ends."""
    header, _, row = counts_rows({"t": {"rolled_back": 21, "failed": 1}}, ["rolled_back", "failed"])
    assert header.index("rolled_back") + len("rolled_back") == row.index("21") + 2
    assert header.index("failed") + len("failed") == row.index(" 1") + 2


def test_status_ends_with_a_verdict_counted_from_its_table() -> None:
    """`migrator status` takes the shape of every command's outcomes: its table is the shared
    counts table and its last line is a verdict whose counts are the table's column sums."""
    from migrator.render.status import render_status

    def counts(done: int, failed: int) -> dict[str, int]:
        return {"done": done, "skipped": 0, "failed": failed, "in_doubt": 0, "deferred": 0}

    data = {
        "journal": "j.jsonl",
        "runs": 1,
        "last_run_finished": True,
        "last_run_interrupted": False,
        "last_run_counts": {},
        "notices": [],
        "tenants": {
            t: {"counts": c, "failures": [], "in_doubt": [], "deferred": [], "next_run": {}}
            for t, c in (("a", counts(2, 1)), ("b", counts(3, 0)))
        },
    }
    text = render_status(data, settled=False)
    assert (
        text.splitlines()[-1] == "migrator status: not settled: done 5, failed 1 across 2 tenant(s)"
    )
    assert "in doubt" in text and "in_doubt" not in text


async def test_activate_dry_run_names_each_version_once(tmp_path: Path) -> None:
    """An `activate --dry-run` row names the version it would switch on once, and its reason says
    what is active now, as the real run's `was: …` does."""
    async with running_fake(FakeConfig.demo(1)) as env:
        journal = str(tmp_path / "j.jsonl")
        ran = await run_cli(env, tmp_path, "migrate", str(SAMPLES), "--journal", journal)
        assert ran.code == 0, ran.out + ran.err
        run = await run_cli(env, tmp_path, "activate", "--journal", journal, "--dry-run")
    assert run.code == 0, run.out + run.err
    rows = [line for line in run.out.splitlines() if line.startswith("  planned ")]
    assert rows, run.out
    for row in rows:
        version = row.split(" version ")[1].split()[0]
        assert row.count(version) == 1 and ": was: " in row, row


async def test_with_json_logs_every_stderr_line_is_json(tmp_path: Path) -> None:
    """Under `--log-format json` a user's mistake is one JSON object on stderr (not a plain
    line among JSON log lines), carrying the same words; the console form is unchanged."""
    missing = str(tmp_path / "nowhere")
    async with running_fake(FakeConfig.demo(1)) as env:
        as_json = await run_cli(env, tmp_path, "migrate", missing, "--log-format", "json")
        console = await run_cli(env, tmp_path, "migrate", missing)
    assert as_json.code == console.code == 2
    [line] = as_json.err.splitlines()
    said = json.loads(line)
    assert said["event"] == f"migrator: error: {missing}: no such file or directory"
    assert said["level"] == "error"
    assert console.err == said["event"] + "\n"
