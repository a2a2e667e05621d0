"""`python -m bench` (`make bench`): budget saturation, request efficiency, fleet start, pipeline
cost and memory. Prints a summary with the machine it ran on and writes bench/out/results.json;
`--quick` for a smoke run.

Full run: about 19 minutes on 2 cores (the sequential baseline, the 200-tenant fleet, which waits
for tokens by design, and the 100,000-document corpus, written once into bench/out/, are most of
it). All traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from bench import bench_fleet, bench_memory, bench_pipeline, bench_requests, bench_saturation

OUT = Path(__file__).resolve().parent / "out"
BENCHES = ("saturation", "requests", "fleet", "pipeline", "memory")


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "memory_gib": mem_gib,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=(__doc__ or "").splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run of about 3 min")
    p.add_argument("--only", action="append", choices=BENCHES, help="repeatable")
    p.add_argument("--out", default=str(OUT / "results.json"))
    args = p.parse_args(argv)
    chosen = args.only or list(BENCHES)
    results: dict[str, Any] = {
        "machine": machine(),
        "command": "python -m bench" + (" --quick" if args.quick else ""),
        "quick": args.quick,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    started = time.perf_counter()
    if "saturation" in chosen:
        setup = (
            bench_saturation.Setup(tenants=2, docs=40) if args.quick else bench_saturation.Setup()
        )
        print(
            f"\n== budget saturation: {setup.tenants} tenants × {setup.rpm} req/min "
            f"(window {setup.window:g} s), latency {setup.latency * 1000:g} ± "
            f"{setup.jitter * 1000:g} ms, {setup.docs} documents per tenant"
        )
        print(bench_saturation.HEADER)
        results["saturation"] = bench_saturation.run(setup)
    if "requests" in chosen:
        req = bench_saturation.Setup(
            tenants=1,
            rpm=600 if args.quick else 300,
            latency=0.04,
            jitter=0.02,
            docs=40 if args.quick else 60,
        )
        tenants = 5 if args.quick else 20
        print(
            f"\n== request efficiency: {req.docs} new workflows per tenant, {req.rpm} req/min, "
            f"latency {req.latency * 1000:g} ± {req.jitter * 1000:g} ms; {tenants} tenants at once"
        )
        print(bench_requests.HEADER)
        results["requests"] = bench_requests.run(req, tenants=tenants)
    if "fleet" in chosen:
        fleets = bench_fleet.QUICK_FLEETS if args.quick else bench_fleet.FLEETS
        print(
            "\n== fleet start: T tenants at once on one client address, 600 req/min each, "
            f"{bench_fleet.PER_IP} token requests/min per IP at the fake; "
            + ", ".join(f"{t} × {d} documents" for t, d in fleets)
        )
        print(bench_fleet.HEADER)
        results["fleet"] = bench_fleet.run(fleets)
    if "pipeline" in chosen:
        print(
            "\n== pipeline cost on one core (documents/s; ratio = floor's time ÷ pipeline's time)"
        )
        print(bench_pipeline.HEADER)
        results["pipeline"] = bench_pipeline.run(
            seconds=0.5 if args.quick else 2.0, quick=args.quick
        )
    if "memory" in chosen:
        sizes = [1000, 10_000] if args.quick else [1000, 100_000]
        print("\n== memory: peak RSS of a dry run, fresh process per size")
        print(bench_memory.HEADER)
        results["memory"] = bench_memory.run(sizes)
        print("\n== memory: the same, resuming a journal that records every document as imported")
        print(bench_memory.HEADER)
        results["memory_journal"] = bench_memory.run(sizes, journal=True)
    results["seconds"] = round(time.perf_counter() - started, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print()
    print(summary(results))
    print(f"\nwrote {args.out} ({results['seconds']:.0f} s)")
    return 0


def summary(results: dict[str, Any]) -> str:
    """The goals of issue 4 beside what was measured."""
    m = results["machine"]
    lines = [
        f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}, "
        f"Python {m['python']}",
        "| measure | goal | measured | met |",
        "| --- | --- | --- | --- |",
    ]
    for r in results.get("saturation", {}).get("results", []):
        goal = {"migrator, rpm configured": (1.10, 1.0), "migrator, rpm learned": (1.25, None)}
        limit, max_pct = goal.get(r["variant"], (None, None))
        met = ""
        if limit is not None:
            met = (
                "yes"
                if r["ratio"] <= limit and (max_pct is None or r["throttled_pct"] <= max_pct)
                else "no"
            )
        lines.append(
            f"| saturation: {r['variant']} | "
            + (
                f"≤ {limit:.2f} × floor" + (f", ≤ {max_pct:g} % 429" if max_pct else "")
                if limit
                else "baseline"
            )
            + f" | {r['ratio']:.2f} × floor ({r['wall_s']:.1f} s ÷ {r['floor_s']:.1f} s), "
            f"{r['throttled']} × 429 ({r['throttled_pct']:.1f} %) | {met} |"
        )
    lines += bench_requests.goals(results.get("requests", {}))
    lines += bench_fleet.goals(results.get("fleet", {}))
    for r in results.get("pipeline", {}).get("rows", []):
        lines.append(
            f"| pipeline: {r['name']} ({r['mean_kib']:g} KiB) | ≥ 0.50 × floor | "
            f"{r['pipeline_ratio']:.2f} × ({r['pipeline_docs_s']:,.0f} vs {r['floor_docs_s']:,.0f} docs/s); "
            f"engine path {r['engine_ratio']:.2f} × | {'yes' if r['pipeline_ratio'] >= 0.5 else 'no'} |"
        )
    for key, label in (("memory", "dry run"), ("memory_journal", "dry run resuming a journal")):
        mem = results.get(key, {})
        rows = mem.get("rows", [])
        if len(rows) >= 2:
            a, b = rows[0], rows[-1]
            lines.append(
                f"| memory: peak RSS of a {label}, {b['documents']:,} ÷ {a['documents']:,} docs | "
                f"≤ 1.50 × | {mem['ratio']:.2f} × ({b['peak_kib'] / 1024:.0f} vs "
                f"{a['peak_kib'] / 1024:.0f} MiB) | {'yes' if mem['ratio'] <= 1.5 else 'no'} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
