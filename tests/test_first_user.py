"""A first user's rough edges (issue 14, items 16 and 17): runs that did nothing say so, and each
thing is said once, in one place, over the real CLI against the fake on 127.0.0.1."""

from __future__ import annotations

import os
import shlex
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from migrator.fake import FakeConfig, FaultConfig
from migrator.run.migrate import migrate
from migrator.run.options import MigrateOptions, Progress
from tests.builders import small_export
from tests.conftest import ROOT, SAMPLES
from tests.helpers import hooked, migrator_process, run_cli, running_fake

pytestmark = pytest.mark.anyio

T1 = "tenant-1"


@pytest.mark.parametrize("command", ["migrate", "plan", "verify"])
async def test_a_missing_source_path_exits_2_naming_it_before_any_tenant_is_asked(
    tmp_path: Path, command: str
) -> None:
    """A SOURCE path that does not exist is one line naming it, exit 2, and no request reaches any tenant."""
    missing = tmp_path / "exprots"
    async with running_fake(FakeConfig.demo(2)) as env:
        run = await run_cli(env, tmp_path, command, str(missing), str(SAMPLES))
        assert run.code == 2, run.out + run.err
        assert run.err == f"migrator: error: {missing}: no such file or directory\n"
        assert run.out == ""
        assert env.fake.requests == 0
        assert env.fake.ledger() == []


async def test_an_empty_source_folder_is_not_an_ok_run(tmp_path: Path) -> None:
    """A folder without workflow documents exits 2 saying nothing was found, never `ok … exit 0`."""
    empty = tmp_path / "exports"
    empty.mkdir()
    (empty / "README.txt").write_text("not a document")
    async with running_fake(FakeConfig.demo(2)) as env:
        run = await run_cli(env, tmp_path, "migrate", str(empty))
        assert run.code == 2, run.out + run.err
        assert "no workflow documents" in run.err and str(empty) in run.err
        assert "migrator: ok" not in run.out
        assert env.fake.requests == 0


async def test_an_empty_source_tenant_is_not_an_ok_run(tmp_path: Path) -> None:
    """`--from-tenant X` where X holds no workflow exits 2 saying so, never `ok … exit 0`."""
    async with running_fake(FakeConfig.demo(2)) as env:
        run = await run_cli(env, tmp_path, "migrate", "--from-tenant", T1)
        assert run.code == 2, run.out + run.err
        assert f"source tenant {T1} has no workflows; nothing to migrate" in run.err
        assert "migrator: ok" not in run.out


async def test_a_source_tenant_that_is_the_only_target_is_refused(tmp_path: Path) -> None:
    """`--from-tenant X --tenant X` has nowhere to migrate to: exit 2 saying so, nothing imported."""
    async with running_fake(FakeConfig.demo(2)) as env:
        run = await run_cli(env, tmp_path, "migrate", "--from-tenant", T1, "--tenant", T1)
        assert run.code == 2, run.out + run.err
        assert "also the only target tenant" in run.err
        assert "migrator: ok" not in run.out
        assert env.fake.ledger() == []


async def test_the_live_counts_keep_deferred_items_apart_from_failed_ones(tmp_path: Path) -> None:
    """Items deferred by a 503 are counted as left for another run, not as failed, in the progress counters."""
    src = tmp_path / "a.json"
    src.write_bytes(orjson.dumps(small_export("Deferred by a 503")))
    progress = Progress()

    def unavailable_on_import(type: str, fields: Mapping[str, Any]) -> None:
        if type == "intent":
            env.fake.set_faults(T1, FaultConfig(error_rate=1.0, error_statuses=(503,)))

    async with running_fake(FakeConfig.demo(1), max_attempts=1) as env:
        report = await migrate(
            env.settings,
            MigrateOptions(sources=[str(src)], journal=str(tmp_path / "j.jsonl")),
            progress=progress,
            journal_factory=hooked(unavailable_on_import),
        )
    assert [i.status for i in report.items] == ["deferred"]
    counters = progress.tenants[T1]
    assert (counters.failed, counters.left, counters.done) == (0, 1, 1)


async def test_activate_says_each_switch_once_and_a_dry_run_counts_them(tmp_path: Path) -> None:
    """`activate` lists each switch on stdout only (no log line repeats it); `--dry-run` counts what it would switch on."""
    journal = tmp_path / "j.jsonl"
    async with running_fake(FakeConfig.demo(1)) as env:
        await migrate(env.settings, MigrateOptions(sources=[str(SAMPLES)], journal=str(journal)))
        summary = orjson.loads(
            (
                await run_cli(
                    env, tmp_path, "activate", "--journal", str(journal), "--dry-run", "--json"
                )
            ).out
        )["summary"]
        planned, skipped = summary["planned"], summary["skipped"]
        assert planned > 0
        dry = await run_cli(env, tmp_path, "activate", "--journal", str(journal), "--dry-run")
        assert dry.code == 0, dry.err
        assert dry.out.splitlines()[-1] == (
            f"migrator activate: ok: would activate {planned}, skipped {skipped}, failed 0"
        )
        real = await run_cli(env, tmp_path, "activate", "--journal", str(journal))
        assert real.code == 0, real.err
        assert "activated" in real.out and real.out.count("  activated ") >= 1
        assert "activated" not in real.err, real.err


async def test_verify_says_a_tenant_wide_failure_once(tmp_path: Path) -> None:
    """A tenant whose credentials are refused gets one line in `verify`, not one per document."""
    async with running_fake(FakeConfig.demo(2)) as env:
        env.fake.set_tenant(T1, client_secret="rotated-elsewhere-0000")
        run = await run_cli(env, tmp_path, "verify", str(SAMPLES))
        assert run.code == 1
        refused = [line for line in run.out.splitlines() if "credentials rejected" in line]
        assert len(refused) == 1, run.out
        assert refused[0].startswith(f"  failed   {T1}: ") and " items: " in refused[0]
        assert "tenant tenant-1: tenant tenant-1" not in run.out


async def test_a_failed_backup_is_said_once(tmp_path: Path) -> None:
    """A backup that cannot start prints its one failure line on stdout and repeats nothing on stderr."""
    async with running_fake(FakeConfig.demo(1)) as env:
        run = await run_cli(env, tmp_path, "backup", "--tenant", "nope", "--out", str(tmp_path))
    assert run.code == 2
    assert run.out.startswith("backup nope: failed: ") and run.out.count("\n") == 1
    assert run.err == ""


# A Ctrl-C that arrives while the command's modules are still loading, made deterministic: the
# import of migrator.commands raises KeyboardInterrupt exactly as the signal handler would.
_CTRL_C_WHILE_LOADING = """
import sys
class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "migrator.commands":
            raise KeyboardInterrupt
sys.meta_path.insert(0, CtrlC())
from migrator.cli import main
sys.exit(main(sys.argv[1:]))
"""


async def test_an_early_ctrl_c_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    """A Ctrl-C while `migrator` is still loading its commands prints `migrator: interrupted` and exits 1, without a traceback."""
    result = await anyio.run_process(
        [sys.executable, "-c", _CTRL_C_WHILE_LOADING, "status", "--journal", "j.jsonl"],
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.decode() == "migrator: interrupted\n"


@contextmanager
def fake_writing_config(cwd: Path, *args: str) -> Iterator[list[str]]:
    """`migrator fake-zuora ARGS` as a child process, until it said it wrote its config; stopped by its pid."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "migrator.cli", "fake-zuora", "--port", "0", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        said = []
        for line in proc.stdout:  # the fake's own announcement is the event waited for
            said.append(line)
            if line.startswith("wrote "):
                break
        else:
            raise AssertionError("".join(said) + (proc.stderr.read() if proc.stderr else ""))
        yield said
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIGRATOR_")}
    run = migrator_process(args, env, cwd, timeout=120)
    return subprocess.CompletedProcess(["migrator", *args], run.code, run.out, run.err)


def test_fake_zuora_writes_a_config_that_works_against_it(tmp_path: Path) -> None:
    """`fake-zuora --write-config FILE` writes a config whose tenants and 0600 secret files let `migrate` import into the running fake."""
    with fake_writing_config(tmp_path, "--tenants", "2", "--write-config", "m.toml") as said:
        run = cli(tmp_path, "migrate", str(SAMPLES), "--config", "m.toml", "--progress", "never")
        assert run.returncode == 0, run.stdout + run.stderr
        assert "migrator: ok: imported 46, failed 0 across 2 tenant(s)" in run.stdout
    assert said[-1].startswith("wrote m.toml (secrets in m.toml.secrets/)")
    secrets = sorted((tmp_path / "m.toml.secrets").iterdir())
    assert [p.name for p in secrets] == ["tenant-1.secret", "tenant-2.secret"]
    assert stat.S_IMODE((tmp_path / "m.toml.secrets").stat().st_mode) == 0o700
    config = (tmp_path / "m.toml").read_text()
    for secret in secrets:
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        assert secret.read_text().strip() not in config


@pytest.mark.slow
def test_the_demo_prints_commands_that_work_when_pasted(tmp_path: Path) -> None:
    """`make demo` prints each command it ran and how to start the fake; started that way, every printed command runs again by hand with exit 0."""
    demo = subprocess.run(
        [sys.executable, "-m", "migrator.demo", str(tmp_path / "out")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    lines = demo.stdout.splitlines()
    commands = [shlex.split(line[2:]) for line in lines if line.startswith("$ ")]
    assert [c[1] for c in commands] == [
        "plan",
        "migrate",
        "migrate",
        "status",
        "verify",
        "diff",
        "doctor",
    ]
    [start] = [shlex.split(line) for line in lines if "fake-zuora --write-config" in line]
    assert lines.count("(exit 0)") == len(commands)

    with fake_writing_config(ROOT, *start[2:]):
        for command in commands:
            run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
            assert run.returncode == 0, (command, run.stdout, run.stderr)
