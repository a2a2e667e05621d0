"""Graceful stop (issue 5): the CLI in a subprocess against a slow fake, stopped by SIGINT/SIGTERM.

One signal finishes what is in flight and closes the journal; two stop at once, still safely; a re-run finishes the work.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from migrator.store.journal import read_journal
from migrator.store.sources import discover, read_document
from tests.conftest import ROOT, SAMPLES
from tests.helpers import TENANTS, FakeProcess, assert_exactly_once, fake_process

# Enough work that a run stopped at its first import leaves most of it undone.
SOURCES = [
    str(SAMPLES / name)
    for name in (
        "01-welcome-new-account.json",
        "03-dunning-ladder.json",
        "04-credit-check-v1.json",
        "05-credit-check-v1-1.json",
        "06-usage-overage-alert.json",
        "08-normalise-tax-ids.json",
        "09-price-lookup-service.json",
        "10-quote-enrichment.json",
    )
]
SLOW = {"latency": 0.1, "latency_jitter": 0.05}


def expected() -> Counter[str]:
    docs = {}
    for item in discover(SOURCES):
        assert not isinstance(item, Exception)
        doc = read_document(item, max_bytes=1 << 26)
        docs[doc.content_hash] = doc.name
    return Counter(docs.values())


def start(fake: FakeProcess, journal: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        fake.migrate_args(journal, sources=SOURCES),
        env=fake.env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_first_intent(proc: subprocess.Popen[str], journal: Path) -> None:
    """Poll until the run has sent an import (an intent is durable); a safety limit only."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before any import was sent"
        if journal.exists() and b'"type":"intent"' in journal.read_bytes():
            return
        time.sleep(0.005)
    raise AssertionError("no import was sent")


def finish_and_check(fake: FakeProcess, journal: Path) -> None:
    """Run the same command again: exit 0, every document once per tenant, status settled."""
    again = fake.run(fake.migrate_args(journal, sources=SOURCES))
    assert again.returncode == 0, again.stdout + again.stderr
    assert_exactly_once(fake.ledger(), expected())
    status = fake.run(fake.cli("status", "--journal", str(journal)))
    assert status.returncode == 0, status.stdout


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_one_signal_finishes_in_flight_work_and_closes_the_journal(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """One SIGINT (or SIGTERM) mid-run stops taking work, lets in-flight imports finish and be journaled, exits 1 saying how to resume, ends the journal with run_finished interrupted (status exits 1), and a re-run imports every document exactly once."""
    journal = tmp_path / "j.jsonl"
    with fake_process(tmp_path, SLOW, tenant={"max_concurrency": 2}) as fake:
        proc = start(fake, journal)
        wait_for_first_intent(proc, journal)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, out + err
        assert "Traceback" not in err
        assert "stopping: finishing requests in flight" in err
        assert "run the same command again" in err

        view = read_journal(journal)
        last = view.records[-1]
        assert last.type == "run_finished" and last.get("interrupted") is True
        assert view.notices == []
        # In-flight requests finished: nothing is left in doubt, and what landed is journaled.
        assert [st for st in view.state.values() if st.status == "in_doubt"] == []
        done = Counter(st.tenant for st in view.state.values() if st.status == "done")
        landed = Counter(e["tenant"] for e in fake.ledger())
        assert done == landed
        # No new work was taken: the stop left imports for the next run, and status says so.
        assert sum(landed.values()) < len(TENANTS) * sum(expected().values())
        status = fake.run(fake.cli("status", "--journal", str(journal)))
        assert status.returncode == 1 and "interrupted" in status.stdout, status.stdout

        finish_and_check(fake, journal)


def read_stderr_until(proc: subprocess.Popen[str], text: str) -> str:
    """Read the run's stderr line by line until a line holds `text` (the event to wait for)."""
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if text in line:
            return "".join(seen)
    raise AssertionError(f"the run ended without saying {text!r}: {''.join(seen)}")


@pytest.mark.slow
def test_second_sigint_stops_at_once_writes_the_report_and_the_journal_stays_valid(
    tmp_path: Path,
) -> None:
    """A second SIGINT, sent once the first was acknowledged, stops at once with exit 1 and no traceback, still writes --report (interrupted, the undone items deferred); the journal reads cleanly and a re-run finishes every document exactly once."""
    journal = tmp_path / "j.jsonl"
    report = tmp_path / "report.json"
    with fake_process(tmp_path, SLOW, tenant={"max_concurrency": 2}) as fake:
        proc = subprocess.Popen(
            fake.migrate_args(journal, "--report", str(report), sources=SOURCES),
            env=fake.env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for_first_intent(proc, journal)
        proc.send_signal(signal.SIGINT)
        early = read_stderr_until(proc, "migrator: stopping: finishing requests in flight")
        proc.send_signal(signal.SIGINT)
        out, rest = proc.communicate(timeout=60)
        err = early + rest
        assert proc.returncode == 1, out + err
        assert "Traceback" not in err
        assert "migrator: stopping at once" in err and "stopped early" in err

        data = json.loads(report.read_text())
        assert data["interrupted"] is True
        assert data["summary"]["deferred"] > 0
        assert data["summary"]["imported"] + data["summary"]["deferred"] == len(TENANTS) * len(
            SOURCES
        )

        view = read_journal(journal)
        assert view.notices == []
        last = view.records[-1]
        assert last.type == "run_finished" and last.get("interrupted") is True
        status = fake.run(fake.cli("status", "--journal", str(journal), "--json"))
        assert status.returncode == 1, status.stdout + status.stderr  # interrupted: not settled
        assert "Traceback" not in status.stderr

        finish_and_check(fake, journal)
