"""Hostile names through the whole command line (issue 14, item 12): a workflow name and a tenant
name holding ANSI escapes, CR, LF and BEL never reach stdout or stderr raw, in any command."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from migrator.core.logs import printable
from migrator.fake import FakeConfig
from tests.builders import small_export
from tests.helpers import migrator_child, running_fake

pytestmark = pytest.mark.anyio

# Recolours the terminal, rings the bell, hides text (NUL, DEL, C1 CSI), reorders a line (U+202E),
# breaks it where a terminal or an editor would (CR, U+2028/2029, NEL), and forges the verdict
# line a cron mail would trust.
EVIL_WORKFLOW = (
    "\x1b[31mRed\x07\x00\x7f\x9b2J\u202eevil\u2028x\u2029y\x85z\r\n"
    "migrator: ok: imported 99, failed 0 across 1 tenant(s)"
)
# A tenant name may not hold ':' (the config refuses it), so its forgery is the line break; no
# NUL either, as it must pass through argv (`--tenant`).
EVIL_TENANT = "\x1b[31mprod\x7f\x9b\u202e\u2028\x85\r\nmigrator ok imported 999\x07"


def toml_string(text: str) -> str:
    """A TOML basic string holding `text`, every character a TOML file may not hold raw escaped."""
    body = "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in text)
    return f'"{body}"'


def assert_clean(output: str) -> None:
    """Only line breaks between lines; no line starts with a forged verdict."""
    for line in output.split("\n"):
        assert printable(line) == line, repr(line)
        assert not line.startswith(("migrator: ok: imported 99", "migrator ok")), repr(line)


async def cli(tmp_path: Path, *args: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIGRATOR_")}
    run = await migrator_child(args, env, tmp_path)
    return run.code, run.out + run.err


@pytest.mark.slow
async def test_every_command_prints_hostile_names_escaped(tmp_path: Path) -> None:
    """Every command — plan, migrate, verify, activate, status, diff, backup, rollback, doctor — shows a hostile workflow and tenant name (text and logs) only as escapes, and no line forges a verdict."""
    source = tmp_path / "evil.json"
    source.write_bytes(orjson.dumps(small_export(EVIL_WORKFLOW)))
    journal = str(tmp_path / "j.jsonl")
    config = tmp_path / "m.toml"
    async with running_fake(FakeConfig.demo(1)) as env:
        [fake_tenant] = env.config.tenants
        config.write_text(
            f"[tenants.{toml_string(EVIL_TENANT)}]\n"
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
            "diff": await cli(tmp_path, "diff", str(source), *common),
            "backup": await cli(
                tmp_path, "backup", *common, "--tenant", EVIL_TENANT, "--out", str(tmp_path / "b")
            ),
            "rollback --dry-run": await cli(
                tmp_path, "rollback", *common, "--journal", journal, "--dry-run"
            ),
            "rollback": await cli(tmp_path, "rollback", *common, "--journal", journal),
            "doctor": await cli(tmp_path, "doctor", *common, "--tenant", EVIL_TENANT),
            "doctor --write": await cli(
                tmp_path, "doctor", *common, "--tenant", EVIL_TENANT, "--write"
            ),
            "unknown tenant": await cli(
                tmp_path, "plan", str(source), *common, "--tenant", EVIL_TENANT + "x"
            ),
        }
        evil = [e for e in env.fake.ledger() if e["name"] == EVIL_WORKFLOW]
        assert len(evil) == 1, runs["migrate"]  # (doctor --write imports its own throwaway)
    for command, (code, output) in runs.items():
        if command.startswith("doctor"):  # its verdict on the fake is doctor's own business
            assert code in (0, 1), (command, output)
        else:
            assert code == (2 if command == "unknown tenant" else 0), (command, output)
        assert_clean(output)
    shown = printable(EVIL_WORKFLOW)
    for command in ("plan", "activate --dry-run", "activate", "rollback --dry-run", "rollback"):
        assert shown in runs[command][1], (command, runs[command][1])
    for command in ("status", "rollback", "backup", "doctor"):
        assert printable(EVIL_TENANT) in runs[command][1], (command, runs[command][1])
