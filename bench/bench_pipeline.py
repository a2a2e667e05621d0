"""Pipeline cost: documents/s on one core for read + validate + remap + serialize, per document set,
as a ratio to the floor (read the file, orjson.loads, orjson.dumps), both timed side by side.

Two pipelines are measured against the same floor:
  pipeline  read_document (read, parse, validate, canonical hash) → prepare_for_import → orjson.dumps
  engine    what `migrate` does per document: the pipeline, plus the workspace summary at read
            time (tenant values, substitution scan) and, at send time, a second read and the
            payload's canonical hash
Repetitions alternate floor and pipeline; the best repetition of each counts (least disturbed).

    .venv/bin/python -m bench.bench_pipeline [--seconds 2] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.corpus import write_corpus

ROOT = Path(__file__).resolve().parent.parent
REAL_CORPUS = ROOT.parent / "shared" / "corpus" / "real"


@dataclass
class Row:
    name: str
    docs: int
    mean_kib: float
    floor_docs_s: float
    pipeline_docs_s: float
    engine_docs_s: float
    pipeline_ratio: float
    engine_ratio: float


def floor(path: str) -> bytes:
    return orjson.dumps(orjson.loads(Path(path).read_bytes()))


def pipeline(path: str) -> bytes:
    from migrator.core.remap import prepare_for_import
    from migrator.store.sources import SourceItem, read_document

    doc = read_document(SourceItem(path, None, None, None), max_bytes=1 << 28)
    return orjson.dumps(prepare_for_import(doc))


_WORKSPACE: Any = None


def engine_path(path: str) -> bytes:
    """The per-document work of a real run (read_sources, then _send), minus the network: the
    summary written to the run's workspace at read time, the body read again at send time."""
    from migrator.core.canonical import canonical_hash
    from migrator.core.plan import SourceDoc
    from migrator.core.remap import prepare_for_import
    from migrator.store.sources import SourceItem, read_document
    from migrator.store.workspace import Workspace

    global _WORKSPACE
    if _WORKSPACE is None:
        _WORKSPACE = Workspace(max_bytes=1 << 28)
    item = SourceItem(path, None, None, None)
    doc = read_document(item, max_bytes=1 << 28)
    _WORKSPACE.add(doc, item=item, substitutions={})
    _WORKSPACE.flush()  # a run inserts 512 rows at a time; one at a time here (a little dearer)
    # At send time the body is read again from what the workspace recorded of the file.
    loaded = _WORKSPACE.load(
        SourceDoc(
            key=doc.content_hash, source=doc.source, name=doc.name, version=None, workflow_id=0
        )
    )
    payload = prepare_for_import(loaded)
    canonical_hash(payload)
    return orjson.dumps(payload)


def _time(fn: Callable[[str], bytes], paths: list[str]) -> float:
    started = time.perf_counter()
    for p in paths:
        fn(p)
    return time.perf_counter() - started


def measure(name: str, paths: list[str], seconds: float) -> Row:
    """Alternate the three until about `seconds` s have gone into each; keep each one's best run."""
    for fn in (floor, pipeline, engine_path):  # warm imports, caches and the page cache
        _time(fn, paths[:3])
    best = {floor: float("inf"), pipeline: float("inf"), engine_path: float("inf")}
    spent = dict.fromkeys(best, 0.0)
    reps = 0
    while reps < 3 or min(spent.values()) < seconds:
        for fn in best:
            t = _time(fn, paths)
            best[fn] = min(best[fn], t)
            spent[fn] += t
        reps += 1
    n = len(paths)
    size = sum(os.path.getsize(p) for p in paths) / n / 1024
    return Row(
        name=name,
        docs=n,
        mean_kib=round(size, 1),
        floor_docs_s=round(n / best[floor], 1),
        pipeline_docs_s=round(n / best[pipeline], 1),
        engine_docs_s=round(n / best[engine_path], 1),
        pipeline_ratio=round(best[floor] / best[pipeline], 3),
        engine_ratio=round(best[floor] / best[engine_path], 3),
    )


def valid(paths: list[str]) -> list[str]:
    """The documents migrator would send; deliberately broken samples are refused, not timed."""
    from migrator.core.errors import InputError

    out = []
    for path in paths:
        try:
            pipeline(path)
        except InputError:
            continue
        out.append(path)
    return out


def document_sets(tmp: str, quick: bool) -> list[tuple[str, list[str]]]:
    sets: list[tuple[str, list[str]]] = []
    samples = sorted(str(p) for p in (ROOT / "samples").rglob("*.json"))
    sets.append(("samples/", valid(samples)))
    if REAL_CORPUS.is_dir():
        sets.append(("real corpus", valid(sorted(str(p) for p in REAL_CORPUS.glob("*.json")))))
    small = write_corpus(Path(tmp, "small"), 100 if quick else 300, seed=11)
    sets.append(("generated, 3-12 tasks", [str(p) for p in small]))
    large = write_corpus(
        Path(tmp, "large"), 2 if quick else 4, tasks=(150, 150), large=True, seed=11
    )
    sets.append(("generated large, 150 tasks", [str(p) for p in large]))
    return sets


def profile(paths: list[str], fn: Callable[[str], bytes], top: int = 15) -> str:
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(3):
        for p in paths:
            fn(p)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def pin_one_core() -> set[int] | None:
    """Run on one CPU so the figure is 'per core'; returns the old affinity to restore."""
    try:
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {max(before)})
        return before
    except (AttributeError, OSError):
        return None


def run(
    *, seconds: float = 2.0, quick: bool = False, echo: bool = True, prof: bool = False
) -> dict[str, Any]:
    before = pin_one_core()
    rows = []
    profiles: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bench-pipe-") as tmp:
        for name, paths in document_sets(tmp, quick):
            if not paths:
                continue
            row = measure(name, paths, seconds)
            rows.append(row)
            if echo:
                print(format_row(row), flush=True)
            if prof:
                profiles[name] = profile(paths, engine_path)
                if echo:
                    print(profiles[name])
    if before:
        os.sched_setaffinity(0, before)
    return {"rows": [asdict(r) for r in rows], "profiles": profiles}


HEADER = (
    f"{'documents':<27} {'n':>4} {'KiB':>7} {'floor/s':>9} {'pipeline/s':>10} {'ratio':>6} "
    f"{'engine/s':>9} {'ratio':>6}"
)


def format_row(r: Row) -> str:
    return (
        f"{r.name:<27} {r.docs:>4} {r.mean_kib:>7.1f} {r.floor_docs_s:>9.1f} "
        f"{r.pipeline_docs_s:>10.1f} {r.pipeline_ratio:>6.2f} {r.engine_docs_s:>9.1f} "
        f"{r.engine_ratio:>6.2f}"
    )


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--seconds", type=float, default=2.0, help="time per variant per set")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--profile", action="store_true", help="cProfile the engine path per set")
    args = p.parse_args(argv)
    print(HEADER)
    run(seconds=args.seconds, quick=args.quick, prof=args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
