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
    """When fsync fails mid-run (disk full), migrate raises a JournalError, not an exception group; every item the journal calls done did land, and nothing landed without a durable intent."""
    durable: list[bytes] = []  # the journal's bytes at each fsync that succeeded

    def flaky_fsync(fd: int) -> None:
        # The disk fills at the first fsync after two imports are durably committed: counted
        # from the journal's bytes, not from fsync calls, whose number depends on how group
        # commit batches records under the machine's load.
        if durable and durable[-1].count(b'"type":"committed"') >= 2:
            raise OSError(28, "No space left on device")
        os.fsync(fd)
        durable.append(path.read_bytes())

    path = tmp_path / "j.jsonl"
    factory = functools.partial(Journal.open, fsync=flaky_fsync)
    async with running_fake() as env:
        with pytest.raises(JournalError, match="No space left on device"):
            await migrate(
                env.settings,
                MigrateOptions(sources=[str(SAMPLES)], journal=str(path)),
                journal_factory=factory,
            )
        ledger = env.fake.ledger()
    # What was durable before the disk filled, whatever the failed write left after it.
    path.write_bytes(durable[-1])
    view = read_journal(path)
    done = [s for s in view.state.values() if s.status == "done"]
    assert done, "the disk filled before any import was done: the test proves nothing"
    landed_keys = {entry["idempotency_key"] for entry in ledger}
    for state in done:
        assert state.idempotency_key in landed_keys, state
    # An import is sent only once its intent is durable: none landed that the journal lacks.
    intents = {r.get("idempotency_key") for r in view.records if r.type == "intent"}
    assert landed_keys <= intents
