"""Crash test (issue 5): the CLI in a subprocess, SIGKILLed mid-run with an import in doubt, then resumed.

The fake Zuora runs as its own process with lost responses, latency and 5xx; its ledger must show every document imported exactly once per tenant.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from migrator.store.journal import read_journal
from tests.conftest import ROOT
from tests.helpers import TENANTS, FakeProcess, assert_exactly_once, expected_names, fake_process


def assert_status_settled(
    fake: FakeProcess, journal: Path, expected: Counter[str]
) -> dict[str, Any]:
    """`migrator status --json` exits 0 and counts every item done or skipped, none unsettled."""
    result = fake.run(fake.cli("status", "--journal", str(journal), "--json"))
    assert result.returncode == 0, result.stdout + result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    for tenant in TENANTS:
        counts = data["tenants"][tenant]["counts"]
        assert counts["done"] + counts["skipped"] == sum(expected.values()), (tenant, counts)
        for unsettled in ("in_doubt", "failed", "deferred", "pending"):
            assert counts[unsettled] == 0, (tenant, counts)
    return data


def intents_after(journal: Path, size: int) -> int:
    """How many intent records this run wrote (the journal past byte `size`)."""
    if not journal.exists():
        return 0
    with journal.open("rb") as f:
        f.seek(size)
        return f.read().count(b'"type":"intent"')


def in_doubt(journal: Path) -> int:
    """Items whose import was sent and not answered, as the journal says now."""
    if not journal.exists():
        return 0
    view = read_journal(journal)  # never refuses: a kill only ever tears the tail
    return sum(1 for st in view.state.values() if st.status == "in_doubt")


def kill_with_an_import_in_doubt(
    proc: subprocess.Popen[Any], journal: Path, size: int, after: int
) -> bool:
    """Once this run has written `after` intents, freeze it (SIGSTOP) whenever it writes one
    more; if the frozen journal holds an import in doubt, SIGKILL it there, else let it go on.
    Returns whether it was killed; a run that ends first was not. Watching the journal is the
    only wait, and its limit is a safety net: nothing here depends on how fast anything runs."""
    deadline = time.monotonic() + 60
    seen = 0
    while proc.poll() is None and time.monotonic() < deadline:
        now = intents_after(journal, size)
        if now >= after and now > seen:
            seen = now
            proc.send_signal(signal.SIGSTOP)
            if in_doubt(journal):
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
                return True
            proc.send_signal(signal.SIGCONT)
        time.sleep(0.005)
    return False


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_sigkill_at_random_moments_then_resume_imports_each_document_once(tmp_path: Path) -> None:
    """SIGKILLing the CLI again and again mid-run, each time with an import in doubt after a random number of its imports, against a lossy, slow, flaky fake, then resuming, imports every sample exactly once per tenant and leaves the journal fully settled."""
    # CRASH_SEED=N replays another schedule of kills (a soak: loop over seeds).
    rng = random.Random(int(os.environ.get("CRASH_SEED", "20261128")))
    expected = expected_names()
    journal = tmp_path / "j.jsonl"
    faults = {
        "lost_response_rate": 0.2,
        "latency": 0.03,
        "latency_jitter": 0.03,
        "error_rate": 0.05,
    }
    with fake_process(tmp_path, faults, tenant={"max_concurrency": 2}) as fake:
        args = fake.migrate_args(journal)
        kills = 0
        # Each killed run sends a few imports only, so the work takes many runs: kill until a
        # run ends by itself (the cap is a safety net).
        for _ in range(60):
            before = journal.stat().st_size if journal.exists() else 0
            proc = subprocess.Popen(
                args, env=fake.env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            if not kill_with_an_import_in_doubt(proc, journal, before, rng.randint(2, 16)):
                proc.wait(timeout=60)
                break
            kills += 1
        # 69 imports, at most 16 intents and what is in flight per killed run: the work itself,
        # not a lucky window, guarantees more than one kill.
        assert kills >= 2, "the loop must actually kill runs mid-way"
        # Resume to the end: a run may leave transient failures deferred for the next one.
        finals = []
        for _ in range(3):
            result = fake.run(args)
            finals.append(result)
            if result.returncode == 0:
                break
        assert finals[-1].returncode == 0, finals[-1].stdout + finals[-1].stderr
        assert "Traceback" not in "".join(r.stderr for r in finals)
        assert_exactly_once(fake.ledger(), expected)
        assert_status_settled(fake, journal, expected)
        view = read_journal(journal)
        crashed = [r for r in view.runs if r.finished is None]
        assert len(crashed) == kills, "every killed run died with the journal open"
