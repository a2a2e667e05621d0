"""Shared pytest fixtures: the anyio backend (asyncio only: aiohttp is asyncio-only) and paths."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from migrator.core import logs

# `make test` runs on every core at once (pytest-xdist), often beside other jobs: how long one
# example or one draw takes is then the machine's load, not a property of the code. Hypothesis's
# per-example deadline and its too-slow health check are timings, so they are off for every test
# (tests that set their own settings keep the rest of this profile).
settings.register_profile("migrator", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("migrator")

# Library code logs through structlog at every level; pytest shows it only for failing tests.
logs.configure("console", "debug")

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SHARED_CORPUS = ROOT.parent / "shared" / "corpus" / "real"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `slow` run first: `make test` hands tests out in this order, so the longest
    start while the others fill the gaps instead of one ending alone after the rest."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session", autouse=True)
def _cli_forkserver() -> Iterator[None]:
    """The CLI fork server of this worker (tests.helpers.start_migrator) ends with the session."""
    yield
    from tests.helpers import stop_cli_forkserver

    stop_cli_forkserver()


@pytest.fixture(autouse=True)
def _reset_logging() -> object:
    """Tests that configure logging (the CLI does) must not leak that into later tests."""
    yield
    logs.configure("console", "debug")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own cache folder: the content-hash cache must never carry one test's
    tenant (same loopback port, same fake ids) into another."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
