"""First steps (issue 25 item 6): every hint prints a command that works as printed, from where
the user is, however migrator was started."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from migrator.core.invocation import migrator_words
from tests.conftest import ROOT, SAMPLES
from tests.helpers import fake_announcement

VENV_SCRIPT = "/src/.venv/bin/migrator"


@pytest.mark.parametrize(
    ("started", "expected"),
    [
        pytest.param(
            {"argv0": ".venv/bin/migrator", "argv0_real": VENV_SCRIPT, "on_path": None},
            [".venv/bin/migrator"],
            id="script-not-on-PATH-as-typed",
        ),
        pytest.param(
            {"argv0": VENV_SCRIPT, "argv0_real": VENV_SCRIPT, "on_path": VENV_SCRIPT},
            ["migrator"],
            id="script-that-PATH-finds",
        ),
        pytest.param(
            {"argv0": VENV_SCRIPT, "argv0_real": VENV_SCRIPT, "on_path": "/usr/bin/migrator"},
            [VENV_SCRIPT],
            id="another-migrator-on-PATH",
        ),
        pytest.param(
            {"argv0": "/src/migrator/__main__.py", "argv0_real": None, "on_path": None},
            [".venv/bin/python", "-m", "migrator"],
            id="python-m-migrator",
        ),
        pytest.param(
            {"argv0": "/src/migrator/fake/__main__.py", "argv0_real": None, "on_path": VENV_SCRIPT},
            [".venv/bin/python", "-m", "migrator"],
            id="python-m-migrator.fake",
        ),
        pytest.param(
            {"argv0": "/src/migrator/demo.py", "argv0_real": None, "on_path": None},
            [".venv/bin/migrator"],
            id="demo-uses-the-script-beside-its-python",
        ),
    ],
)
def test_hints_start_with_the_words_that_run_migrator_from_here(
    started: dict[str, str | None], expected: list[str]
) -> None:
    """The command a hint starts with is `migrator` only when PATH finds this very script; otherwise the script's path, or `python -m migrator`."""
    words = migrator_words(
        executable="/src/.venv/bin/python",
        beside=VENV_SCRIPT,
        cwd="/src",
        argv0=str(started["argv0"]),
        argv0_real=started["argv0_real"],
        on_path=started["on_path"],
    )
    assert words == expected


def test_without_a_script_beside_python_the_hint_is_python_m_migrator() -> None:
    """An interpreter with no `migrator` script beside it is shown with `-m migrator`, at its full path outside the current folder."""
    words = migrator_words(
        argv0="/src/migrator/demo.py",
        argv0_real=None,
        executable="/usr/bin/python3",
        on_path=None,
        beside=None,
        cwd="/home/me",
    )
    assert words == ["/usr/bin/python3", "-m", "migrator"]


def test_the_fake_hint_after_make_demo_runs_as_printed(tmp_path: Path) -> None:
    """`.venv/bin/migrator fake-zuora --write-config F` (not on PATH) suggests `.venv/bin/migrator plan …`, which runs when pasted in the same folder."""
    script = os.path.relpath(Path(sys.executable).parent / "migrator", ROOT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIGRATOR_")}
    env["PATH"] = "/usr/bin:/bin"  # as a new shell after `make demo`: the venv is not on PATH
    config = tmp_path / "m.toml"
    fake = subprocess.Popen(
        [script, "fake-zuora", "--port", "0", "--tenants", "1", "--write-config", str(config)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        said = fake_announcement(fake)
        hint = shlex.split(said[-1].partition("try: ")[2])
        assert hint[:2] == [script, "plan"], said[-1]
        source = str(next(SAMPLES.glob("*.json")))
        run = subprocess.run(
            [source if w == "SOURCE" else w for w in hint],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stdout + run.stderr
    finally:
        fake.send_signal(signal.SIGTERM)
        fake.communicate(timeout=30)
