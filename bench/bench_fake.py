"""Soak benchmark of the fake Zuora: request rate over loopback and its memory as load goes on.

Runs the fake in a subprocess (so its RSS is its own), drives it with aiohttp for a bounded number
of requests in rounds, resetting its stored workflows between rounds, and prints requests/s and
RSS per round: flat RSS after the first round means nothing grows per request. Not in `make test`.

    .venv/bin/python bench/bench_fake.py [--requests 20000] [--rounds 4] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent


def document(name: str) -> dict[str, Any]:
    """A small export with an Iterate over a file produced by the first task."""
    return {
        "workflow": {"id": 1, "name": name, "type": "Workflow::Setup", "parameters": {}},
        "tasks": [
            {
                "id": 1,
                "name": "Export",
                "action_type": "Export",
                "object": "Account",
                "task_id": None,
                "parameters": {"fields": {"Account": {"Id": "true"}}},
            },
            {
                "id": 2,
                "name": "Iterate",
                "action_type": "Iterate",
                "object": "Account__1.csv.zip",
                "task_id": 1,
                "parameters": {"iteration_type": "Default"},
            },
        ],
        "linkages": [
            {
                "source_workflow_id": 1,
                "source_task_id": None,
                "target_task_id": 1,
                "linkage_type": "Start",
            },
            {
                "source_workflow_id": None,
                "source_task_id": 1,
                "target_task_id": 2,
                "linkage_type": "Success",
            },
        ],
    }


def rss_kib(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) of a process in KiB, from /proc (Linux)."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    return rss, hwm


def start_fake(tenants: int) -> tuple[subprocess.Popen[str], str, list[tuple[str, str]]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "migrator.fake",
            "--port",
            "0",
            "--tenants",
            str(tenants),
            "--show-secrets",
            "--requests-per-minute",
            str(10**9),
            "--max-concurrency",
            "100000",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().split()[-1]
    creds = []
    for _ in range(tenants):
        fields = dict(part.split("=", 1) for part in proc.stdout.readline().split()[2:])
        creds.append((fields["client_id"], fields["client_secret"]))
    return proc, url, creds


async def token(session: aiohttp.ClientSession, url: str, cid: str, secret: str) -> str:
    async with session.post(
        url + "/oauth/token",
        data={"client_id": cid, "client_secret": secret, "grant_type": "client_credentials"},
    ) as r:
        return str((await r.json())["access_token"])


async def drive(
    url: str, creds: list[tuple[str, str]], n: int, concurrency: int, round_no: int
) -> int:
    """Send n requests: 10 % new imports, 20 % idempotent replays, 70 % reads."""
    done = 0
    async with aiohttp.ClientSession() as session:
        tokens = [await token(session, url, cid, secret) for cid, secret in creds]
        counter = iter(range(n))

        async def worker(w: int) -> None:
            nonlocal done
            for i in counter:
                auth = {"Authorization": f"Bearer {tokens[i % len(tokens)]}"}
                kind = i % 10
                if kind == 0 or kind in (1, 2):
                    # Replays reuse the key of an import from this round (same URL and method).
                    base = i - kind
                    hdrs = {
                        **auth,
                        "Idempotency-Key": f"r{round_no}-{base}",
                        "Content-Type": "application/json",
                    }
                    body = orjson.dumps(document(f"W{round_no}-{base}"))
                    async with session.post(
                        url + "/workflows/import", data=body, headers=hdrs
                    ) as r:
                        await r.read()
                elif kind < 6:
                    async with session.get(
                        url + "/workflows", params={"page_length": "50"}, headers=auth
                    ) as r:
                        await r.read()
                else:
                    async with session.get(url + "/_fake/stats") as r:
                        await r.read()
                done += 1

        await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return done


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--requests", type=int, default=20_000, help="requests per round")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--tenants", type=int, default=3)
    args = p.parse_args(argv)
    proc, url, creds = start_fake(args.tenants)
    try:
        base_rss, _ = rss_kib(proc.pid)
        print(f"fake pid {proc.pid} at {url}; start RSS {base_rss / 1024:.1f} MiB")
        for round_no in range(args.rounds):
            started = time.perf_counter()
            sent = asyncio.run(drive(url, creds, args.requests, args.concurrency, round_no))
            elapsed = time.perf_counter() - started
            stats = orjson.loads(_get(url + "/_fake/stats"))
            # Stored workflows grow with imports by design; reset them so that what remains
            # visible from round to round is growth the fake should not have (leaks, caches).
            _post(url + "/_fake/reset")
            rss, hwm = rss_kib(proc.pid)
            print(
                f"round {round_no + 1}: {sent} requests in {elapsed:.2f} s = "
                f"{sent / elapsed:,.0f} req/s; RSS {rss / 1024:.1f} MiB "
                f"(+{(rss - base_rss) / 1024:.1f}), peak {hwm / 1024:.1f} MiB; "
                f"ledger {stats['ledger']}, idempotency entries {stats['idempotency_entries']}, "
                f"tokens {stats['tokens']}"
            )
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    return 0


def _post(url: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=30) as resp:
        return bytes(resp.read())


def _get(url: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as resp:
        return bytes(resp.read())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
