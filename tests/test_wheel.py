"""The distribution: the wheel `make dist` builds installs under its own name into a fresh virtual
environment and works from there, with no source tree on the path; the Dockerfile installs it."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from migrator import __version__
from tests.conftest import ROOT, SAMPLES
from tests.helpers import fake_announcement

# One worker builds the wheel once for every test here (the fixture is per module and worker).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("wheel")]

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
DIST_NAME = PYPROJECT["project"]["name"]


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    cwd: Path  # an empty folder outside the source tree, where every command runs

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(args),
            cwd=self.cwd,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def clean_env() -> dict[str, str]:
    """The environment without anything that could put the source tree on the path."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    }
    env["PYTHONNOUSERSITE"] = "1"
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """Build the wheel once (no isolation: hatchling is in the dev extras, nothing is downloaded)
    and install it, without its dependencies, into a fresh venv made without pip.

    The dependencies (aiohttp, anyio, orjson, structlog) are lent by this test run's environment
    through a .pth line, appended after the venv's own site-packages; such a line adds a folder,
    it does not run that folder's .pth files, so the editable install of the source tree stays out.
    """
    base = tmp_path_factory.mktemp("wheel")
    out = base / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = out.glob("*.whl")
    venv = base / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    purelib = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    lent = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(purelib, "_lent_dependencies.pth").write_text("\n".join(sorted(lent)) + "\n")
    cwd = base / "elsewhere"
    cwd.mkdir()
    yield Installed(wheel, venv, cwd)


def test_the_wheel_is_named_for_the_distribution_and_carries_its_metadata(
    installed: Installed,
) -> None:
    """The wheel is `zuora_workflow_migrator-VERSION-py3-none-any.whl`, its metadata names Linux and macOS, and its one script is `migrator`."""
    assert DIST_NAME == "zuora-workflow-migrator"
    assert installed.wheel.name == f"zuora_workflow_migrator-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(installed.wheel) as whl:
        info = f"zuora_workflow_migrator-{__version__}.dist-info"
        metadata = whl.read(f"{info}/METADATA").decode()
        scripts = whl.read(f"{info}/entry_points.txt").decode()
        assert not [n for n in whl.namelist() if n.startswith("tests/")]
    assert f"Name: {DIST_NAME}\n" in metadata and f"Version: {__version__}\n" in metadata
    assert "Classifier: Operating System :: POSIX :: Linux" in metadata
    assert "Classifier: Operating System :: MacOS" in metadata
    assert "[console_scripts]\nmigrator = migrator.cli:main" in scripts


def test_the_installed_command_runs_from_the_venv_not_the_source_tree(installed: Installed) -> None:
    """`migrator --version` and `python -m migrator --version` run the installed package, whose files are in the venv."""
    version = installed.run(str(installed.bin / "migrator"), "--version")
    assert (version.returncode, version.stdout) == (0, f"migrator {__version__}\n"), version.stderr
    as_module = installed.run(str(installed.bin / "python"), "-m", "migrator", "--version")
    assert as_module.stdout == f"migrator {__version__}\n", as_module.stderr
    where = installed.run(
        str(installed.bin / "python"),
        "-c",
        "import importlib.metadata as m, migrator; "
        f"print(migrator.__file__); print(m.version({DIST_NAME!r}))",
    )
    file, dist_version = where.stdout.splitlines()
    assert Path(file).is_relative_to(installed.venv), file
    assert not Path(file).is_relative_to(ROOT)
    assert dist_version == __version__


def test_a_migration_against_the_fake_runs_from_the_installed_wheel(installed: Installed) -> None:
    """From the venv: the fake writes its config and prints a hint that runs as printed; migrate imports a sample once and a second run imports nothing."""
    sources = installed.cwd / "exports"
    sources.mkdir()
    for sample in sorted(SAMPLES.glob("*.json"))[:3]:
        shutil.copy(sample, sources)
    fake = subprocess.Popen(
        [
            str(installed.bin / "migrator"),
            "fake-zuora",
            "--port",
            "0",
            "--tenants",
            "1",
            "--write-config",
            "migrator.toml",
        ],
        cwd=installed.cwd,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        said = fake_announcement(fake)
        hint = said[-1].partition("try: ")[2].split()
        assert hint[:2] == [str(installed.bin / "migrator"), "plan"], said[-1]
        planned = installed.run(*[w if w != "SOURCE" else "exports" for w in hint])
        assert planned.returncode == 0, planned.stdout + planned.stderr
        migrate = [
            str(installed.bin / "migrator"),
            "migrate",
            "exports",
            "--config",
            "migrator.toml",
            "--journal",
            "run.jsonl",
            "--progress",
            "never",
        ]
        first = installed.run(*migrate, "--report", "first.json")
        assert first.returncode == 0, first.stdout + first.stderr
        again = installed.run(*migrate, "--report", "again.json")
        assert again.returncode == 0, again.stdout + again.stderr
    finally:
        fake.send_signal(signal.SIGTERM)
        fake.communicate(timeout=30)
    assert fake.returncode == 0
    first_report = json.loads((installed.cwd / "first.json").read_text())
    again_report = json.loads((installed.cwd / "again.json").read_text())
    assert first_report["summary"]["imported"] == 3, first_report["summary"]
    assert again_report["summary"]["imported"] == 0, again_report["summary"]


def dockerfile_steps() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(
        r"\\\n\s*", " ", "\n".join(s for s in text.splitlines() if not s.lstrip().startswith("#"))
    )
    steps = []
    for line in text.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            steps.append((keyword.upper(), rest.strip()))
    return steps


def test_the_dockerfile_installs_the_wheel_make_dist_builds_and_runs_migrator_as_non_root(
    installed: Installed,
) -> None:
    """The Dockerfile starts from a slim Python the package supports, copies and installs the very wheel name `make dist` builds, runs as a non-root user, and its entry point is the `migrator` script."""
    steps = dockerfile_steps()
    keywords = [k for k, _ in steps]
    [base] = [rest for k, rest in steps if k == "FROM"]
    python = re.fullmatch(r"python:(\d+)\.(\d+)-slim", base)
    assert python and (int(python[1]), int(python[2])) >= (3, 11), base
    [copy] = [rest.split() for k, rest in steps if k == "COPY"]
    pattern = copy[0]
    assert pattern.startswith("dist/") and fnmatch.fnmatch(f"dist/{installed.wheel.name}", pattern)
    installs = [rest for k, rest in steps if k == "RUN" and "pip install" in rest]
    assert installs and Path(pattern).name in installs[0], installs
    user = [rest for k, rest in steps if k == "USER"]
    assert user and user[-1] not in ("root", "0"), user
    assert keywords.index("USER") > keywords.index("RUN")  # installed as root, run as the user
    [entry] = [rest for k, rest in steps if k == "ENTRYPOINT"]
    assert json.loads(entry) == list(PYPROJECT["project"]["scripts"])
    assert (installed.bin / "migrator").exists()
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^dist: .*\n(\t.*\n)*\t.*-m build .*--outdir dist", makefile, re.M), (
        "make dist builds into dist/"
    )
