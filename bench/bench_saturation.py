"""Budget saturation: migrator against the fake's per-tenant rate budgets, beside two naive clients.
Reports wall time ÷ floor (busiest tenant's requests ÷ its rate) and 429s, counted by the fake.

Every variant gets a fresh fake (a subprocess by default, so its CPU stays off the client's loop)
with N tenants at R requests/min and a random latency, and moves the same generated corpus into
every tenant. The fake counts each answer per tenant and status, so all variants are measured the
same way:
  (a) migrator with `requests_per_minute` configured,
  (b) migrator learning the budget from `RateLimit-*` headers,
  (c) a sequential client (one request at a time, no pacing, sleeps Retry-After on 429),
  (d) a naive `asyncio.gather` client (everything at once, sleeps Retry-After on 429).

    .venv/bin/python -m bench.bench_saturation [--tenants 4] [--rpm 600] [--docs 100] [--window 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from bench.corpus import generate

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Setup:
    tenants: int = 4
    rpm: int = 600
    # The fake's rate windows are fixed and clock-aligned. A run shorter than one 60 s window could
    # burst its whole workload into the first window, so the floor would bind nobody; the bench
    # shortens the window (quota scaled to keep R/min) so a 30 s run crosses several of them.
    window: float = 10.0
    latency: float = 0.05
    jitter: float = 0.03
    docs: int = 100
    seed: int = 7
    client_concurrency: int = 8
    in_process: bool = False

    @property
    def quota(self) -> int:
        return max(1, round(self.rpm * self.window / 60))


@dataclass
class Result:
    variant: str
    wall_s: float
    floor_s: float
    ratio: float
    requests: int  # API answers (2xx and 429), all tenants, token calls excluded
    ok: int
    throttled: int
    throttled_pct: float
    busiest: int  # 2xx answers of the busiest tenant
    tokens: int
    other: dict[str, int]
    client_cpu_s: float = (
        0.0  # CPU of this process while the variant ran (the fake's too if in-process)
    )


# ---------------------------------------------------------------------------------------------
# The fake side: counting and the window, patched into this process only (bench, not product).


def instrument(setup: Setup) -> tuple[dict[str, Counter[int]], Callable[[], None]]:
    """Count every answer per tenant and status; scale the rate window. Returns (counts, undo)."""
    from migrator.fake._limits import RateWindows
    from migrator.fake._server import RunningFake

    counts: dict[str, Counter[int]] = defaultdict(Counter)
    original_dispatch = RunningFake.dispatch
    original_windows = RunningFake.__dict__["_windows"]

    async def dispatch(self: Any, request: web.Request) -> web.StreamResponse:
        if request.path == "/_bench/counts":
            body = {who: {str(s): n for s, n in c.items()} for who, c in counts.items()}
            return web.json_response(body)
        auth = request.headers.get("Authorization", "")
        who = None
        if request.path == "/oauth/token":
            who = "(token)"
        elif auth[:7].lower() == "bearer ":
            who = self.tokens.lookup(auth[7:].strip(), self.clock())
        response: web.StreamResponse = await original_dispatch(self, request)
        counts[who or "(unauthenticated)"][response.status] += 1
        return response

    def windows(t: Any) -> RateWindows:
        return RateWindows([(int(setup.window), setup.quota)])

    RunningFake.dispatch = dispatch  # type: ignore[method-assign]
    if setup.window != 60:
        RunningFake._windows = staticmethod(windows)  # type: ignore[method-assign]

    def undo() -> None:
        RunningFake.dispatch = original_dispatch  # type: ignore[method-assign]
        RunningFake._windows = original_windows  # type: ignore[method-assign]

    return counts, undo


def fake_config(setup: Setup) -> Any:
    from migrator.fake import FakeConfig
    from migrator.fake._config import with_tenant_knobs

    return with_tenant_knobs(
        FakeConfig.demo(setup.tenants, seed=setup.seed),
        requests_per_minute=setup.rpm,
        latency=setup.latency,
        latency_jitter=setup.jitter,
    )


async def _serve_forever(setup: Setup) -> None:
    from migrator.fake import serve

    instrument(setup)
    async with serve(fake_config(setup)) as fake:
        print(f"listening on {fake.base_url}", flush=True)
        await asyncio.Event().wait()


@asynccontextmanager
async def running_fake(setup: Setup) -> AsyncIterator[str]:
    """A fresh fake for one variant (fresh windows, state and counts); yields its base URL."""
    if setup.in_process:
        from migrator.fake import serve

        _, undo = instrument(setup)
        try:
            async with serve(fake_config(setup)) as fake:
                yield fake.base_url
        finally:
            undo()
        return
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bench.bench_saturation", "--serve", *_setup_args(setup)),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        line = (await proc.stdout.readline()).decode()
        if not line.startswith("listening on "):
            raise RuntimeError(f"the fake did not start: {line!r}")
        yield line.split()[-1]
    finally:
        proc.terminate()
        await proc.wait()


def _setup_args(setup: Setup) -> list[str]:
    return [
        f"--tenants={setup.tenants}",
        f"--rpm={setup.rpm}",
        f"--window={setup.window}",
        f"--latency={setup.latency}",
        f"--jitter={setup.jitter}",
        f"--seed={setup.seed}",
    ]


async def fetch_counts(url: str) -> dict[str, dict[str, int]]:
    async with aiohttp.ClientSession() as session, session.get(url + "/_bench/counts") as r:
        data: dict[str, dict[str, int]] = orjson.loads(await r.read())
        return data


# ---------------------------------------------------------------------------------------------
# The clients


def credentials(setup: Setup) -> list[tuple[str, str, str]]:
    return [(t.name, t.client_id, t.client_secret) for t in fake_config(setup).tenants]


async def run_migrator(url: str, setup: Setup, corpus: str, *, learned: bool) -> None:
    from migrator.core.config import Secret, Settings, TenantConfig
    from migrator.run.migrate import migrate
    from migrator.run.options import MigrateOptions

    tenants = {
        name: TenantConfig(
            name=name,
            base_url=url,
            client_id=cid,
            client_secret=Secret(secret),
            requests_per_minute=None if learned else setup.rpm,
            max_concurrency=setup.client_concurrency,
        )
        for name, cid, secret in credentials(setup)
    }
    settings = Settings(file="bench", tenants=tenants)
    report = await migrate(settings, MigrateOptions(sources=[corpus]))
    imported = sum(1 for o in report.items if o.status == "imported")
    if imported != setup.docs * setup.tenants:
        raise RuntimeError(f"migrator imported {imported} of {setup.docs * setup.tenants}")


def payloads(corpus: str) -> list[tuple[str, bytes]]:
    """(name, import body) per document, prepared once outside the timed part."""
    from migrator.core.document import parse_document
    from migrator.core.remap import prepare_for_import

    out = []
    for path in sorted(Path(corpus).iterdir()):
        doc = parse_document(path.read_bytes(), str(path))
        out.append((doc.name, orjson.dumps(prepare_for_import(doc))))
    return out


class Naive:
    """What a short script would do: the same three calls per document, 429 → sleep Retry-After."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url

    async def call(self, method: str, path: str, token: str, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
        for _ in range(10_000):
            async with self.session.request(method, self.url + path, headers=headers, **kw) as r:
                body = await r.read()
                if r.status == 429:
                    await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
                    continue
                if r.status >= 300:
                    raise RuntimeError(f"{method} {path}: {r.status} {body[:200]!r}")
                return orjson.loads(body)
        raise RuntimeError(f"{method} {path}: still throttled")

    async def token(self, cid: str, secret: str) -> str:
        form = {"client_id": cid, "client_secret": secret, "grant_type": "client_credentials"}
        async with self.session.post(self.url + "/oauth/token", data=form) as r:
            return str(orjson.loads(await r.read())["access_token"])

    async def migrate_one(self, token: str, tenant: str, name: str, body: bytes) -> None:
        created = await self.call(
            "POST",
            "/workflows/import",
            token,
            params={"version": "1.0.0", "activate": "false"},
            data=body,
            headers={"Content-Type": "application/json", "Idempotency-Key": f"{tenant}:{name}"},
        )
        await self.call("GET", "/workflows", token, params={"name": name, "page_length": "50"})
        await self.call("GET", f"/workflows/{int(created['id'])}/versions", token)


async def run_sequential(url: str, setup: Setup, corpus: str) -> None:
    docs = payloads(corpus)
    async with aiohttp.ClientSession() as session:
        client = Naive(session, url)
        for name, cid, secret in credentials(setup):
            token = await client.token(cid, secret)
            for doc_name, body in docs:
                await client.migrate_one(token, name, doc_name, body)


async def run_gather(url: str, setup: Setup, corpus: str) -> None:
    docs = payloads(corpus)
    async with aiohttp.ClientSession() as session:  # aiohttp's default pool: 100 connections
        client = Naive(session, url)
        creds = credentials(setup)
        tokens = [await client.token(cid, secret) for _, cid, secret in creds]
        await asyncio.gather(
            *(
                client.migrate_one(token, name, doc_name, body)
                for (name, _, _), token in zip(creds, tokens, strict=True)
                for doc_name, body in docs
            )
        )


# ---------------------------------------------------------------------------------------------
# Measuring


def summarise(variant: str, wall: float, counts: dict[str, dict[str, int]], setup: Setup) -> Result:
    tenants = {t for t, _, _ in credentials(setup)}
    ok = throttled = busiest = 0
    other: Counter[str] = Counter()
    for who, by_status in counts.items():
        if who not in tenants:
            continue
        mine = 0
        for status, n in by_status.items():
            if status == "429":
                throttled += n
            elif status.startswith("2"):
                mine += n
            else:
                other[status] += n
        ok += mine
        busiest = max(busiest, mine)
    floor = busiest / (setup.rpm / 60)
    requests = ok + throttled + sum(other.values())
    tokens = sum(counts.get("(token)", {}).values())
    return Result(
        variant=variant,
        wall_s=round(wall, 2),
        floor_s=round(floor, 2),
        ratio=round(wall / floor, 3) if floor else 0.0,
        requests=requests,
        ok=ok,
        throttled=throttled,
        throttled_pct=round(100 * throttled / max(1, requests), 2),
        busiest=busiest,
        tokens=tokens,
        other=dict(other),
    )


VARIANTS: dict[str, Callable[[str, Setup, str], Awaitable[None]]] = {
    "migrator, rpm configured": lambda u, s, c: run_migrator(u, s, c, learned=False),
    "migrator, rpm learned": lambda u, s, c: run_migrator(u, s, c, learned=True),
    "sequential baseline": run_sequential,
    "asyncio.gather baseline": run_gather,
}


async def run_variant(variant: str, setup: Setup, corpus: str) -> Result:
    async with running_fake(setup) as url:
        started, cpu = time.perf_counter(), time.process_time()
        await VARIANTS[variant](url, setup, corpus)
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
        counts = await fetch_counts(url)
    result = summarise(variant, wall, counts, setup)
    result.client_cpu_s = round(cpu, 2)
    return result


def run(setup: Setup, variants: list[str] | None = None, *, echo: bool = True) -> dict[str, Any]:
    """Run the chosen variants (all by default) one after the other; returns a JSON-able dict."""
    from migrator.core import logs

    logs.configure("console", level="warning")  # per-attempt debug lines would cost client CPU
    with tempfile.TemporaryDirectory(prefix="bench-sat-") as tmp:
        for file_name, raw in generate(setup.docs, seed=setup.seed):
            Path(tmp, file_name).write_bytes(raw)
        results = []
        for variant in variants or list(VARIANTS):
            result = asyncio.run(run_variant(variant, setup, tmp))
            if echo:
                print(format_row(result), flush=True)
            results.append(result)
    return {"setup": asdict(setup), "results": [asdict(r) for r in results]}


HEADER = (
    f"{'variant':<26} {'wall s':>7} {'floor s':>7} {'÷ floor':>7} {'requests':>8} {'429s':>6} "
    f"{'429 %':>6} {'CPU s':>6}"
)


def format_row(r: Result) -> str:
    return (
        f"{r.variant:<26} {r.wall_s:>7.1f} {r.floor_s:>7.1f} {r.ratio:>7.2f} {r.requests:>8} "
        f"{r.throttled:>6} {r.throttled_pct:>6.1f} {r.client_cpu_s:>6.2f}"
    )


def parse(argv: list[str]) -> tuple[argparse.Namespace, Setup]:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--tenants", type=int, default=Setup.tenants)
    p.add_argument("--rpm", type=int, default=Setup.rpm, help="each tenant's requests per minute")
    p.add_argument("--window", type=float, default=Setup.window, help="rate window, seconds")
    p.add_argument("--latency", type=float, default=Setup.latency)
    p.add_argument("--jitter", type=float, default=Setup.jitter)
    p.add_argument("--docs", type=int, default=Setup.docs, help="documents per tenant")
    p.add_argument("--seed", type=int, default=Setup.seed)
    p.add_argument("--in-process", action="store_true", help="run the fake on the client's loop")
    p.add_argument("--variant", action="append", choices=list(VARIANTS), help="repeatable")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    setup = Setup(
        tenants=args.tenants,
        rpm=args.rpm,
        window=args.window,
        latency=args.latency,
        jitter=args.jitter,
        docs=args.docs,
        seed=args.seed,
        in_process=args.in_process,
    )
    return args, setup


def main(argv: list[str]) -> int:
    args, setup = parse(argv)
    if args.serve:
        asyncio.run(_serve_forever(setup))
        return 0
    print(HEADER)
    run(setup, args.variant)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
