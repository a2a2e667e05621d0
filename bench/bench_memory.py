"""Memory: peak RSS of a dry run (`migrate(..., dry_run=True)` against one fake tenant) over N
small documents on disk, each size in a fresh subprocess; the goal is 100,000 within 1.5 times 1,000.

With `--journal`, the dry run resumes a journal that records every one of the N documents as
imported (an intent and a commit each, as a finished run leaves it): the journal is folded and
each document looked up in it, so this measures what a resumed run holds of its journal.

The corpus is generated once per size into bench/out/corpus-N (git-ignored, deterministic) and
reused. The child runs the fake on its own loop: it stores nothing during a dry run, so its share
of the RSS is the same at every size. Peak RSS is the child's VmHWM (see peak_rss_kib).

    .venv/bin/python -m bench.bench_memory [--sizes 1000,100000] [--journal]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from bench.corpus import write_corpus

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


def corpus(n: int) -> Path:
    """bench/out/corpus-N with exactly N documents (written once; same seed, same bytes)."""
    directory = OUT / f"corpus-{n}"
    done = directory / ".complete"
    if not done.exists():
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.json"):
            stale.unlink()
        write_corpus(directory, n, seed=3)
        done.write_text(str(n))
    return directory


def peak_rss_kib() -> int:
    """This process's peak RSS in KiB: VmHWM on Linux, else getrusage's ru_maxrss.

    On Linux ru_maxrss survives fork+exec, so a child of a big parent (this bench, after writing
    100,000 files) would report the parent's peak; VmHWM belongs to the child's own memory map.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


def document_keys(directory: Path) -> Path:
    """A file beside the corpus with each document's item key (its content hash), made once."""
    keys = directory / ".keys"
    if not keys.exists():
        from migrator.store.sources import SourceItem, read_document

        with open(str(keys) + ".tmp", "w") as fh:
            for path in sorted(directory.glob("*.json")):
                fh.write(read_document(SourceItem(str(path))).content_hash + "\n")
        os.replace(str(keys) + ".tmp", keys)
    return keys


def write_journal(path: str, keys: Path, tenant: Any) -> None:
    """A journal in which an earlier run imported every document into `tenant`, line by line."""
    from migrator.core.journal_records import Record, encode
    from migrator.run.tenant import tenant_fingerprint

    seq = 0

    def line(type: str, **fields: Any) -> bytes:
        nonlocal seq
        seq += 1
        return encode(Record(seq, type, time.time(), fields))

    with open(path, "wb") as out, open(keys) as lines:
        out.write(
            line("run_started", run_id="bench", tenants={tenant.name: tenant_fingerprint(tenant)})
        )
        for n, key in enumerate(lines):
            key = key.strip()
            name = f"bench workflow {n}"
            out.write(
                line(
                    "intent",
                    tenant=tenant.name,
                    item=key,
                    action="create",
                    name=name,
                    version="1.0.0",
                    target_definition_id=None,
                    idempotency_key="migrator-" + key[:48],
                    source=f"{n}.json",
                )
            )
            out.write(
                line(
                    "committed",
                    tenant=tenant.name,
                    item=key,
                    target_definition_id=n + 1,
                    target_version_id=n + 2,
                    version="1.0.0",
                    name=name,
                )
            )
        out.write(line("run_finished", counts={}, interrupted=False))


async def child(directory: str, journal_keys: str | None) -> dict[str, Any]:
    from migrator.core import logs
    from migrator.core.config import Secret, Settings, TenantConfig
    from migrator.fake import FakeConfig, serve
    from migrator.run.migrate import migrate
    from migrator.run.options import MigrateOptions

    logs.configure("console", level="warning")
    config = FakeConfig.demo(1)
    async with serve(config) as fake:
        t = config.tenants[0]
        settings = Settings(
            file="bench",
            tenants={
                t.name: TenantConfig(
                    name=t.name,
                    base_url=fake.base_url,
                    client_id=t.client_id,
                    client_secret=Secret(t.client_secret),
                )
            },
        )
        journal = None
        if journal_keys:
            journal = os.path.join(directory, ".journal.jsonl")
            write_journal(journal, Path(journal_keys), settings.tenants[t.name])
        gc.collect()
        baseline = peak_rss_kib()
        started = time.perf_counter()
        report = await migrate(
            settings, MigrateOptions(sources=[directory], dry_run=True, journal=journal)
        )
        elapsed = time.perf_counter() - started
        summary = report.summary()
        items = len(report.items)
        del report
    return {
        "baseline_kib": baseline,
        "peak_kib": peak_rss_kib(),
        "seconds": round(elapsed, 2),
        "items": items,
        "summary": summary,
    }


def measure(n: int, *, journal: bool = False) -> dict[str, Any]:
    directory = corpus(n)
    extra = ["--journal-keys", str(document_keys(directory))] if journal else []
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_memory", "--child", str(directory), *extra],
        capture_output=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child for {n} documents failed: {proc.stderr.decode()[-2000:]}")
    result: dict[str, Any] = orjson.loads(proc.stdout.splitlines()[-1])
    result["documents"] = n
    return result


def run(sizes: list[int], *, echo: bool = True, journal: bool = False) -> dict[str, Any]:
    rows = []
    for n in sizes:
        row = measure(n, journal=journal)
        rows.append(row)
        if echo:
            print(format_row(row), flush=True)
    out: dict[str, Any] = {"rows": rows}
    if len(rows) >= 2:
        out["ratio"] = round(rows[-1]["peak_kib"] / rows[0]["peak_kib"], 3)
        if echo:
            print(
                f"peak RSS {rows[-1]['documents']:,} ÷ {rows[0]['documents']:,}: {out['ratio']:.2f}"
            )
    return out


HEADER = f"{'documents':>9} {'peak RSS MiB':>12} {'before run MiB':>14} {'run s':>7} {'items':>7}"


def format_row(r: dict[str, Any]) -> str:
    return (
        f"{r['documents']:>9,} {r['peak_kib'] / 1024:>12.1f} {r['baseline_kib'] / 1024:>14.1f} "
        f"{r['seconds']:>7.1f} {r['items']:>7,}"
    )


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--sizes", default="1000,100000", help="comma-separated document counts")
    p.add_argument("--journal", action="store_true", help="resume a journal of N imports")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--journal-keys", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(orjson.dumps(asyncio.run(child(args.child, args.journal_keys))).decode())
        return 0
    print(HEADER)
    run([int(s) for s in args.sizes.split(",")], journal=args.journal)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
