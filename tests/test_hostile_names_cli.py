"""Hostile names through the whole command line (issue 14, item 12): a workflow name and a tenant
name holding ANSI escapes, CR, LF and BEL never reach stdout or stderr raw, in any command."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import orjson
import pytest

from migrator.core.logs import printable
from migrator.fake import FakeConfig
from tests.builders import small_export
from tests.helpers import running_fake

pytestmark = pytest.mark.anyio

# Recolours the terminal, forges a verdict line a cron mail would trust, rings the bell.
EVIL_WORKFLOW = "\x1b[31mRed\r\nmigrator: ok: imported 999\x07"
# A tenant name may not hold ':' (the config refuses it), so its forgery is the line break.
EVIL_TENANT = "\x1b[31mprod\r\nmigrator ok imported 999\x07"


def assert_clean(output: str) -> None:
    """Only line breaks between lines; no line starts with a forged verdict."""
    for line in output.split("\n"):
        assert printable(line) == line, repr(line)
        assert not line.startswith(("migrator: ok: imported 999", "migrator ok")), repr(line)


async def cli(tmp_path: Path, *args: str) -> tuple[int, str]:
    result = await anyio.run_process(
        [sys.executable, "-m", "migrator.cli", *args],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("MIGRATOR_")},
        check=False,
    )
    return result.returncode, result.stdout.decode() + result.stderr.decode()


async def test_every_command_prints_hostile_names_escaped(tmp_path: Path) -> None:
    """plan, migrate, verify, activate and status (text and logs) show a hostile workflow and tenant name only as escapes."""
    source = tmp_path / "evil.json"
    source.write_bytes(orjson.dumps(small_export(EVIL_WORKFLOW)))
    journal = str(tmp_path / "j.jsonl")
    config = tmp_path / "m.toml"
    async with running_fake(FakeConfig.demo(1)) as env:
        [fake_tenant] = env.config.tenants
        config.write_text(
            f"[tenants.{orjson.dumps(EVIL_TENANT).decode()}]\n"
            f'base_url = "{env.fake.base_url}"\n'
            f'client_id = "{fake_tenant.client_id}"\n'
            f'client_secret = "{fake_tenant.client_secret}"\n'
        )
        common = ("--config", str(config))
        runs = {
            "plan": await cli(tmp_path, "plan", str(source), *common),
            "migrate": await cli(
                tmp_path, "migrate", str(source), *common, "--journal", journal, "--debug"
            ),
            "verify": await cli(tmp_path, "verify", str(source), *common),
            "activate --dry-run": await cli(
                tmp_path, "activate", *common, "--journal", journal, "--dry-run"
            ),
            "activate": await cli(tmp_path, "activate", *common, "--journal", journal),
            "status": await cli(tmp_path, "status", "--journal", journal),
            "unknown tenant": await cli(
                tmp_path, "plan", str(source), *common, "--tenant", EVIL_TENANT + "x"
            ),
        }
        assert len(env.fake.ledger()) == 1
    for command, (code, output) in runs.items():
        assert code == (2 if command == "unknown tenant" else 0), (command, output)
        assert_clean(output)
    shown = printable(EVIL_WORKFLOW)
    for command in ("plan", "activate --dry-run", "activate"):
        assert shown in runs[command][1], (command, runs[command][1])
    assert printable(EVIL_TENANT) in runs["status"][1]
