"""Fatal errors stop the run as themselves: a journal that cannot be written is one clear error."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

from migrator.core.errors import JournalError
from migrator.run.migrate import migrate
from migrator.run.options import MigrateOptions
from migrator.store.journal import Journal, read_journal
from tests.conftest import SAMPLES
from tests.helpers import running_fake

pytestmark = pytest.mark.anyio


async def test_disk_full_stops_the_run_with_one_journal_error(tmp_path: Path) -> None:
    """When fsync fails mid-run (disk full), migrate raises a JournalError, not an exception group, and nothing after the last durable record counts as done."""
    calls = {"n": 0}

    def flaky_fsync(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] > 4:
            raise OSError(28, "No space left on device")
        os.fsync(fd)

    path = tmp_path / "j.jsonl"
    factory = functools.partial(Journal.open, fsync=flaky_fsync)
    async with running_fake() as env:
        with pytest.raises(JournalError, match="No space left on device"):
            await migrate(
                env.settings,
                MigrateOptions(sources=[str(SAMPLES)], journal=str(path)),
                journal_factory=factory,
            )
        landed = len(env.fake.ledger())
    view = read_journal(path)
    done = [s for s in view.state.values() if s.status == "done"]
    # The journal never claims more than the target holds.
    assert len(done) <= landed
