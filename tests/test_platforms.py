"""Platforms: migrator runs on Linux and macOS; elsewhere it says so in one line, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import SAMPLES

# Run the CLI in a fresh interpreter in which `import fcntl` fails, as it does on Windows.
WITHOUT_FCNTL = (
    "import sys; sys.modules['fcntl'] = None; "
    "from migrator.cli import main; sys.exit(main(sys.argv[1:]))"
)


def test_a_journal_without_fcntl_is_one_line_saying_the_platform_is_not_supported(
    tmp_path: Path,
) -> None:
    """Where fcntl is missing (Windows), taking the journal's lock is exit 2 with one line naming the supported platforms."""
    config = tmp_path / "m.toml"
    config.write_text(
        '[tenants.a]\nbase_url = "http://127.0.0.1:9"\nclient_id = "x"\nclient_secret = "y"\n'
    )
    source = next(SAMPLES.glob("*.json"))
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            WITHOUT_FCNTL,
            "migrate",
            str(source),
            "--config",
            str(config),
            "--journal",
            str(tmp_path / "run.jsonl"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert len(err) == 1
    assert "Windows is not supported" in err[0] and "Linux and macOS" in err[0]
    assert not (tmp_path / "run.jsonl").exists()
