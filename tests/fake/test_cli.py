"""The fake's configuration file, command line, persistence and seed files.

The subprocess test starts `python -m migrator.fake --port 0` the way scripts do and reads the port.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from migrator.core.errors import ConfigError
from migrator.fake import FakeConfig, FakeTenant, FaultConfig, load_config, main
from migrator.fake._cli import _parser, build_config
from tests.conftest import ROOT
from tests.fake.helpers import running, sample_document

TOML = """
seed = 5
idempotent_replay = "409"

[[tenants]]
name = "eu"
client_id = "11111111-1111-1111-1111-111111111111"
client_secret = "s3cret-eu"
requests_per_minute = 100
max_concurrency = 4

[tenants.faults]
error_rate = 0.1
latency = 0.2
error_statuses = [503]

[[tenants]]
name = "us"
client_id = "22222222-2222-2222-2222-222222222222"
client_secret = "s3cret-us"
"""


def test_toml_config_maps_onto_dataclasses(tmp_path: Path) -> None:
    """A TOML file with [[tenants]] and per-tenant faults loads into FakeConfig."""
    path = tmp_path / "fake.toml"
    path.write_text(TOML)
    config = load_config(str(path))
    assert config.seed == 5 and config.idempotent_replay == "409"
    eu, us = config.tenants
    assert eu.requests_per_minute == 100 and eu.max_concurrency == 4
    assert eu.faults == FaultConfig(error_rate=0.1, latency=0.2, error_statuses=(503,))
    assert us.faults == FaultConfig()


def test_json_config_and_demo_tenants(tmp_path: Path) -> None:
    """A JSON config may ask for demo tenants instead of listing them."""
    path = tmp_path / "fake.json"
    path.write_text(json.dumps({"demo_tenants": 2, "rewrite_file_refs": False}))
    config = load_config(str(path))
    assert [t.name for t in config.tenants] == ["tenant-1", "tenant-2"]
    assert config.rewrite_file_refs is False


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (
            "[[tenants]]\nname='a'\nclient_id='x'\nclient_secret='y'\ncolour=1\n",
            "tenants[0].colour",
        ),
        (
            "[[tenants]]\nname='a'\nclient_id='x'\nclient_secret='y'\nmax_concurrency='9'\n",
            "tenants[0].max_concurrency",
        ),
        ("[[tenants]]\nname='a'\nclient_id='x'\n", "tenants[0].client_secret"),
        (
            "[[tenants]]\nname='a'\nclient_id='x'\nclient_secret='y'\n[tenants.faults]\nerror_rate=2\n",
            "tenants[0].faults.error_rate",
        ),
        ("sed = 1\n", "sed"),
        ("tenants = [", ""),
    ],
)
def test_config_errors_name_file_and_key(tmp_path: Path, text: str, where: str) -> None:
    """Every config mistake is a one-line ConfigError naming the file and the key."""
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    message = str(info.value)
    assert str(path) in message and where in message and "\n" not in message


def test_secrets_never_in_repr() -> None:
    """Client secrets do not show in the repr of a tenant or a config."""
    config = FakeConfig(tenants=[FakeTenant("a", "id-a", "super-secret-value")])
    assert "super-secret-value" not in repr(config)


def test_flags_apply_to_every_tenant() -> None:
    """Knob flags on the command line set the same limit or fault on every tenant."""
    args = _parser().parse_args(
        [
            "--tenants",
            "2",
            "--error-rate",
            "0.2",
            "--max-concurrency",
            "3",
            "--idempotent-replay",
            "409",
        ]
    )
    config = build_config(args)
    assert [t.faults.error_rate for t in config.tenants] == [0.2, 0.2]
    assert [t.max_concurrency for t in config.tenants] == [3, 3]
    assert config.idempotent_replay == "409"


def test_main_reports_bad_config_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """main() returns 2 with a one-line message (no traceback) for a bad config file."""
    assert main(["--config", str(tmp_path / "missing.toml")]) == 2
    err = capsys.readouterr().err
    assert "missing.toml" in err and err.count("\n") == 1


def test_subprocess_prints_port_and_stops_on_sigterm() -> None:
    """`python -m migrator.fake --port 0` prints `listening on URL`, serves, and exits 0 on SIGTERM."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "migrator.fake", "--port", "0", "--tenants", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        assert first.startswith("listening on http://127.0.0.1:")
        tenants = [proc.stdout.readline().strip() for _ in range(2)]
        demo = FakeConfig.demo(2)
        assert tenants[0] == f"tenant tenant-1 client_id={demo.tenants[0].client_id}"
        assert demo.tenants[0].client_secret not in " ".join(tenants)
        import urllib.request

        with urllib.request.urlopen(first.split()[-1] + "/_fake/ledger", timeout=10) as resp:
            assert orjson.loads(resp.read()) == {"imports": []}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


@pytest.mark.anyio
async def test_state_file_survives_a_restart(tmp_path: Path) -> None:
    """With state_file set, workflows and the ledger are there again after a restart."""
    config = FakeConfig.demo(1, state_file=str(tmp_path / "state.json"))
    async with running(config) as (_, (a,)):
        definition_id = (await a.import_new(sample_document("Kept"))).body["id"]
    async with running(config) as (fake, (a,)):
        assert (await a.call("GET", f"/workflows/{definition_id}")).body["name"] == "Kept"
        assert len(fake.ledger()) == 1
        second = (await a.import_new(sample_document("New"))).body["id"]
        assert second != definition_id


@pytest.mark.anyio
async def test_seed_file_preloads_workflows(tmp_path: Path) -> None:
    """A seed file pre-loads definitions and versions per tenant, outside the ledger."""
    (tmp_path / "doc.json").write_bytes(orjson.dumps(sample_document("Seeded")))
    seed = {
        "tenants": {
            "tenant-1": [
                {"file": "doc.json", "version": "1.0", "activate": True},
                {"document": sample_document("Seeded")},
            ]
        }
    }
    (tmp_path / "seed.json").write_bytes(orjson.dumps(seed))
    config = FakeConfig.demo(1, seed_file=str(tmp_path / "seed.json"))
    async with running(config) as (fake, (a,)):
        listed = (await a.call("GET", "/workflows")).body["data"]
        assert [d["name"] for d in listed] == ["Seeded"]
        versions = (await a.call("GET", f"/workflows/{listed[0]['id']}/versions")).body["data"]
        assert [v["version"] for v in versions] == ["1.0", "1.1"]
        assert listed[0]["active_version"]["version"] == "1.0"
        assert fake.ledger() == []


def test_seed_file_errors_name_the_row(tmp_path: Path) -> None:
    """A rejected seed row is a ConfigError naming the file and the row."""
    from migrator.fake._seed import load_seed_file
    from migrator.fake._state import FakeState

    (tmp_path / "seed.json").write_bytes(
        orjson.dumps(
            {
                "tenants": {
                    "t": [{"document": {"workflow": {"name": "x"}, "tasks": [], "linkages": []}}]
                }
            }
        )
    )
    with pytest.raises(ConfigError, match=r"seed.json: tenants.t\[0\]"):
        load_seed_file(FakeState(["t"], clock=lambda: 0.0), str(tmp_path / "seed.json"))


def test_every_flag_is_in_the_fake_docs() -> None:
    """Every `migrator fake-zuora` option appears in docs/fake-zuora.md."""
    text = (ROOT / "docs" / "fake-zuora.md").read_text()
    flags = {s for a in _parser()._actions for s in a.option_strings if s.startswith("--")}
    assert sorted(f for f in flags - {"--help"} if f not in text) == []
