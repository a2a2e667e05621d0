"""Stale-lock takeover under contention: many processes racing for one stale lock, one wins."""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from migrator.core.errors import JournalError
from migrator.store import lock as jlock

WORKERS = 20
ROUNDS = 30


def _dead_pid() -> int:
    """The pid of a process that has already exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _write_stale(journal: Path, pid: int, round_no: int) -> None:
    # proc_start -1 never matches a live process, so even a reused pid reads as dead.
    info = jlock.LockInfo(pid, socket.gethostname(), float(round_no), proc_start=-1)
    path = jlock.lock_path_for(journal)
    tmp = path.with_name(path.name + ".setup")
    tmp.write_bytes(info.to_bytes())
    os.replace(tmp, path)


def _contender(journal: str, barrier: Any, results: Any) -> None:
    for round_no in range(ROUNDS):
        barrier.wait(timeout=120)  # the stale lock for this round is in place
        try:
            jlock.acquire(journal)
        except JournalError as exc:
            results.put((round_no, os.getpid(), False, str(exc)))
        else:
            results.put((round_no, os.getpid(), True, ""))
        barrier.wait(timeout=120)  # every contender has tried; winners still hold their lock


def test_many_processes_racing_for_a_stale_lock_leave_exactly_one_holder(tmp_path: Path) -> None:
    """20 processes taking over one stale lock at once, 30 rounds: every round has exactly one holder."""
    journal = tmp_path / "run.jsonl"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS + 1)
    results = ctx.Queue()
    dead = _dead_pid()
    procs = [
        ctx.Process(target=_contender, args=(str(journal), barrier, results))
        for _ in range(WORKERS)
    ]
    for p in procs:
        p.start()
    try:
        seen: list[tuple[int, int, bool, str]] = []
        for round_no in range(ROUNDS):
            _write_stale(journal, dead, round_no)
            barrier.wait(timeout=120)
            barrier.wait(timeout=120)
            for _ in range(WORKERS):
                seen.append(results.get(timeout=120))
        for round_no in range(ROUNDS):
            this = [r for r in seen if r[0] == round_no]
            winners = [r for r in this if r[2]]
            assert len(winners) == 1, (round_no, winners)
            for _, _, _, message in this:
                if message:
                    assert "is using this journal" in message, message
    finally:
        deadline = time.monotonic() + 60
        for p in procs:
            p.join(timeout=max(0.1, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
