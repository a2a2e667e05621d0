"""Shared pytest fixtures: the anyio backend (asyncio only: aiohttp is asyncio-only) and paths."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SHARED_CORPUS = ROOT.parent / "shared" / "corpus" / "real"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
