"""Test helpers: a running fake with matching migrator settings, and ledger queries."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
import subprocess
import sys
import tracemalloc
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio
import orjson
import pytest
from aiohttp import web

from migrator.core.config import Secret, Settings, TenantConfig
from migrator.core.document import parse_document
from migrator.fake import FakeConfig, RunningFake, serve
from migrator.fake._config import demo_tenant
from migrator.run.options import TenantProgress
from migrator.store.journal import Journal
from migrator.store.snapshot import (
    MANIFEST,
)
from migrator.store.sources import discover, read_document
from migrator.zuora import ZuoraClient, open_session
from tests.conftest import ROOT, SAMPLES


@dataclass
class Env:
    fake: RunningFake
    config: FakeConfig
    settings: Settings

    def imports(self, tenant: str) -> list[dict[str, Any]]:
        return self.fake.ledger(tenant)

    def import_counts(self, tenant: str) -> Counter[str]:
        """How many times each workflow name was imported into the tenant."""
        return Counter(e["name"] for e in self.fake.ledger(tenant))


def numeric_version(text: str) -> tuple[int, ...]:
    """A version's numeric order, written apart from migrator's version_key (the oracle for it):
    components compared as integers, missing ones as 0 ("1" == "1.0.0" < "1.0.10")."""
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def settings_for(fake: RunningFake, config: FakeConfig, **tenant_knobs: Any) -> Settings:
    tenants = {
        t.name: TenantConfig(
            name=t.name,
            base_url=fake.base_url,
            client_id=t.client_id,
            client_secret=Secret(t.client_secret),
            max_concurrency=tenant_knobs.get("max_concurrency", 8),
            requests_per_minute=tenant_knobs.get("requests_per_minute"),
            substitutions=tenant_knobs.get("substitutions", {}).get(t.name, {}),
        )
        for t in config.tenants
    }
    return Settings(
        file="test.toml",
        tenants=tenants,
        max_attempts=tenant_knobs.get("max_attempts", 6),
        backoff_base=tenant_knobs.get("backoff_base", 0.01),
        backoff_cap=tenant_knobs.get("backoff_cap", 0.2),
        read_timeout=tenant_knobs.get("read_timeout", 10.0),
    )


@asynccontextmanager
async def running_fake(config: FakeConfig | None = None, **tenant_knobs: Any) -> AsyncIterator[Env]:
    config = config or FakeConfig.demo(3)
    async with serve(config) as fake:
        yield Env(fake=fake, config=config, settings=settings_for(fake, config, **tenant_knobs))


def write_config_file(
    path: Path, env: Env, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """A TOML config for the env's tenants with secrets in environment variables; returns the env."""
    variables: dict[str, str] = {}
    lines = []
    for t in env.config.tenants:
        var = "TEST_SECRET_" + t.name.upper().replace("-", "_")
        variables[var] = t.client_secret
        lines += [
            f'[tenants."{t.name}"]',
            f'base_url = "{env.fake.base_url}"',
            f'client_id = "{t.client_id}"',
            f'client_secret_env = "{var}"',
            "",
        ]
    lines += ["[settings]", "backoff_base = 0.01", "backoff_cap = 0.2", ""]
    path.write_text("\n".join(lines))
    return variables


T = TypeVar("T")


def traced_peak(fn: Callable[[], T]) -> tuple[T, int]:
    """`fn()`'s result and the peak of Python memory allocated while it ran (tracemalloc)."""
    import tracemalloc

    tracemalloc.start()
    try:
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


# ---------------------------------------------------------------------------------------------
# Backups: a preloaded tenant, a clock, snapshot folders


def sample_documents() -> list[dict[str, Any]]:
    """Every top-level sample that needs no tenant substitution, parsed."""
    docs = []
    for path in sorted(SAMPLES.glob("*.json*")):
        raw = path.read_bytes()
        if path.name.endswith(".gz"):
            raw = gzip.decompress(raw)
        docs.append(orjson.loads(raw))
    return docs


def preload(env: Env, tenant: str = "tenant-1", *, count: int = 6) -> int:
    """Load the first `count` samples into a tenant, every other one active; returns how many."""
    docs = sample_documents()[:count]
    for i, doc in enumerate(docs):
        env.fake.state.add_workflow(tenant, doc, activate=i % 2 == 0)
    return len(docs)


def snapshot_dirs(out: Path) -> list[Path]:
    """The visible folders in a backup directory."""
    return sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))


def manifest_of(snapshot: Path) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads((snapshot / MANIFEST).read_bytes())
    return data


class Clock:
    """A wall clock that moves a minute per reading, so every backup gets its own folder name."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        self.now += 60
        return self.now


# ---------------------------------------------------------------------------------------------
# The CLI in a child process: the one runner and the one result type


@dataclass
class Run:
    """What `migrator ARGS` did: its exit code, stdout and stderr."""

    code: int
    out: str
    err: str


_forkserver: Any = None


def _cli_forkserver() -> Any:
    """This worker's fork server: a fresh interpreter that imported tests.cli_child (and with it
    every migrator module) once; each CLI child is forked from it (see that module)."""
    global _forkserver
    if _forkserver is None:
        import multiprocessing

        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["tests.cli_child"])
        _forkserver = context
    return _forkserver


def start_migrator(args: Sequence[str], env: Mapping[str, str], cwd: Path) -> Callable[..., Run]:
    """Start `python -m migrator.cli ARGS` in `cwd` with exactly `env`, as a child forked from
    the fork server (no interpreter start, no import: see tests/cli_child.py); the function
    returned waits for it (blocking) and gives what it did."""
    import tempfile

    from tests import cli_child

    streams = Path(tempfile.mkdtemp(prefix="cli-"))
    out, err = streams / "out", streams / "err"
    child = _cli_forkserver().Process(
        target=cli_child.run, args=(list(args), dict(env), str(cwd), str(out), str(err))
    )
    child.start()

    def wait(timeout: float | None = None) -> Run:
        child.join(timeout)
        if child.exitcode is None:
            child.kill()
            child.join()
            raise subprocess.TimeoutExpired(["migrator", *args], timeout or 0)
        code = child.exitcode
        child.close()
        run = Run(
            code, out.read_text(errors="surrogateescape"), err.read_text(errors="surrogateescape")
        )
        for path in (out, err):
            path.unlink()
        streams.rmdir()
        return run

    return wait


def stop_cli_forkserver() -> None:
    """Stop this worker's fork server, if it started, and wait for it (the end of the session)."""
    if _forkserver is not None:
        from multiprocessing import forkserver

        forkserver._forkserver._stop()  # what CPython's own tests call; no public spelling


def migrator_process(
    args: Sequence[str], env: Mapping[str, str], cwd: Path, timeout: float = 60
) -> Run:
    """`migrator ARGS` in a child process (forked, see start_migrator), waited for."""
    return start_migrator(args, env, cwd)(timeout)


async def migrator_child(args: Sequence[str], env: Mapping[str, str], cwd: Path) -> Run:
    """`migrator ARGS` in a child process with exactly `env`, without blocking the loop that
    serves the fake."""
    return await anyio.to_thread.run_sync(start_migrator(args, env, cwd))


async def run_migrator(args: list[str], env: dict[str, str], cwd: Path) -> Run:
    """`migrator ARGS` in a child process, without blocking the loop that serves the fake."""
    return await migrator_child(args, {**os.environ, **env}, cwd)


async def run_cli(
    env: Env,
    tmp_path: Path,
    *args: str,
    config: Path | None = None,
    cwd: Path | None = None,
    bad_secret_for: str | None = None,
) -> Run:
    """`migrator ARGS --config FILE` with a config for the env's tenants written in `tmp_path`
    (or `config`, its secrets from the same variables); `bad_secret_for` gets a wrong secret."""
    written = tmp_path / ("scratch.toml" if config is not None else "migrator.toml")
    variables = write_config_file(written, env)
    if bad_secret_for is not None:
        variables["TEST_SECRET_" + bad_secret_for.upper().replace("-", "_")] = "not-the-secret"
    return await run_migrator(
        [*args, "--config", str(config or written)], variables, cwd or tmp_path
    )


def assert_no_traceback(run: Run) -> None:
    """Nothing the user can cause shows them a Python traceback."""
    for text in (run.out, run.err):
        assert "Traceback" not in text, text
        assert 'File "' not in text, text


# ---------------------------------------------------------------------------------------------
# The client against a scripted server


SECRET = "s3cr3t-CANARY-7f1e"


TOKEN = "tok-CANARY-9a8b7c"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Script:
    """A tiny Zuora: a token endpoint plus whatever routes a test adds; records what it saw."""

    token_requests: list[dict[str, Any]] = field(default_factory=list)
    requests: list[web.Request] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    token_status: int = 200
    token_value: str = TOKEN
    expires_in: int = 3599
    token_delay: float = 0.0

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.token_requests.append({"form": dict(form), "headers": dict(request.headers)})
        if self.token_delay:
            await asyncio.sleep(self.token_delay)
        if self.token_status != 200:
            return web.json_response(
                {
                    "error": "invalid_client",
                    "error_description": f"bad client secret {form.get('client_secret')!s}",
                },
                status=self.token_status,
            )
        n = len(self.token_requests)
        return web.json_response(
            {
                "access_token": f"{self.token_value}{n}",
                "token_type": "bearer",
                "expires_in": self.expires_in,
            }
        )

    async def record(self, request: web.Request) -> bytes:
        self.requests.append(request)
        raw = await request.read()  # aiohttp.web undoes Content-Encoding: gzip itself
        self.bodies.append(raw)
        return raw


@asynccontextmanager
async def serve_app(app: web.Application) -> AsyncIterator[str]:
    """Run `app` on an ephemeral loopback port; yield its base URL."""
    runner = web.AppRunner(app, handle_signals=False, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def make_settings(base_url: str, **overrides: Any) -> Settings:
    tenant_fields = {
        k: overrides.pop(k)
        for k in ("requests_per_minute", "max_concurrency", "entity_ids")
        if k in overrides
    }
    tenant = TenantConfig(
        name="prod",
        base_url=base_url,
        client_id="client-id-1",
        client_secret=Secret(SECRET),
        **tenant_fields,
    )
    values: dict[str, Any] = {
        "connect_timeout": 2.0,
        "read_timeout": 5.0,
        "backoff_base": 0.0,
        "backoff_cap": 0.0,
    }
    values.update(overrides)
    return Settings(file="test.toml", tenants={"prod": tenant}, **values)


@asynccontextmanager
async def client_for(
    routes: Sequence[tuple[str, str, Handler]], script: Script | None = None, **overrides: Any
) -> AsyncIterator[tuple[ZuoraClient, Script, list[float]]]:
    """A ZuoraClient wired to a scripted server; sleeps are recorded and skipped."""
    script = script or Script()
    app = web.Application()
    app.router.add_post("/oauth/token", script.token)
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    slept: list[float] = []
    now = [1000.0]

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)
        now[0] += max(0.0, delay)
        await asyncio.sleep(0)

    on_attempt = overrides.pop("on_attempt", None)
    async with serve_app(app) as base:
        settings = make_settings(base, **overrides)
        async with open_session(settings) as session:
            client = ZuoraClient(
                settings.tenants["prod"],
                session,
                settings,
                sleep=fake_sleep,
                clock=lambda: now[0],
                run_id="t1",
                on_attempt=on_attempt,
            )
            yield client, script, slept


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )


# ---------------------------------------------------------------------------------------------
# Crashes: the fake in a child process, the CLI killed mid-run


TENANTS = ("tenant-1", "tenant-2", "tenant-3")


@dataclass
class FakeProcess:
    """A fake Zuora served by `python -m migrator.fake` in a subprocess, and a config that points at it."""

    url: str
    config: Path
    env: dict[str, str]

    def ledger(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(self.url + "/_fake/ledger", timeout=30) as response:
            imports: list[dict[str, Any]] = json.load(response)["imports"]
            return imports

    def cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "migrator.cli", *args]

    def migrate_args(self, journal: Path, *extra: str, sources: Sequence[str] = ()) -> list[str]:
        return self.cli(
            "migrate",
            *(sources or [str(SAMPLES)]),
            "--config",
            str(self.config),
            "--journal",
            str(journal),
            "--progress",
            "never",
            *extra,
        )

    def run(self, args: Sequence[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """`args` (from cli() or migrate_args()) run to the end in a child process."""
        prefix = self.cli()
        if list(args[: len(prefix)]) != prefix:
            return subprocess.run(
                args, env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
            )
        run = migrator_process(args[len(prefix) :], self.env, ROOT, timeout)
        return subprocess.CompletedProcess(list(args), run.code, run.out, run.err)


@contextmanager
def fake_process(
    tmp: Path,
    faults: Mapping[str, float],
    *,
    seed: int = 7,
    tenant: Mapping[str, Any] = {},
    settings: Mapping[str, Any] = {},
) -> Iterator[FakeProcess]:
    """Start the fake as a subprocess with `faults` on every tenant and write a migrator config for
    it (`tenant` and `settings` knobs added); stop the fake, by its pid, at exit."""
    tenants = [demo_tenant(i, seed=seed) for i in range(1, len(TENANTS) + 1)]
    fake_config = tmp / "fake.json"
    fake_config.write_text(
        json.dumps(
            {
                "seed": seed,
                "tenants": [
                    {
                        "name": t.name,
                        "client_id": t.client_id,
                        "client_secret": t.client_secret,
                        "faults": dict(faults),
                    }
                    for t in tenants
                ],
            }
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "migrator.fake", "--port", "0", "--config", str(fake_config)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        assert first.startswith("listening on "), (first, proc.stderr and proc.stderr.read())
        url = first.removeprefix("listening on ")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MIGRATOR_")}
        lines: list[str] = []
        for t in tenants:
            var = "CRASH_SECRET_" + t.name.upper().replace("-", "_")
            env[var] = t.client_secret
            lines += [
                f'[tenants."{t.name}"]',
                f'base_url = "{url}"',
                f'client_id = "{t.client_id}"',
                f'client_secret_env = "{var}"',
                *(f"{k} = {v}" for k, v in tenant.items()),
                "",
            ]
        knobs = {"backoff_base": 0.01, "backoff_cap": 0.2, **settings}
        lines += ["[settings]", *(f"{k} = {v}" for k, v in knobs.items()), ""]
        config = tmp / "migrator.toml"
        config.write_text("\n".join(lines))
        yield FakeProcess(url=url, config=config, env=env)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def expected_names() -> Counter[str]:
    """How many distinct documents of each workflow name samples/ holds."""
    seen: dict[str, str] = {}
    for item in discover([str(SAMPLES)]):
        assert not isinstance(item, Exception), item
        doc = read_document(item, max_bytes=1 << 26)
        seen[doc.content_hash] = doc.name
    return Counter(seen.values())


def assert_exactly_once(ledger: list[dict[str, Any]], expected: Counter[str]) -> None:
    """Every tenant's ledger holds each sample document once: no name missing, no content twice."""
    for tenant in TENANTS:
        entries = [e for e in ledger if e["tenant"] == tenant]
        twice = [
            k
            for k, n in Counter((e["name"], e["content_sha256"]) for e in entries).items()
            if n > 1
        ]
        assert twice == [], f"{tenant}: imported more than once: {twice}"
        assert Counter(e["name"] for e in entries) == expected, tenant
        assert len({e["idempotency_key"] for e in entries}) == len(entries), tenant
        # One definition per workflow name: a lost create was never created a second time.
        by_name: dict[str, set[int]] = {}
        for e in entries:
            by_name.setdefault(e["name"], set()).add(e["definition_id"])
        assert all(len(ids) == 1 for ids in by_name.values()), (tenant, by_name)


# ---------------------------------------------------------------------------------------------
# Progress: stand-ins for clients and their stats


@dataclass
class Stats:
    retries: int = 0
    throttled: int = 0


@dataclass
class Client:
    stats: Stats


@dataclass
class FakeProgress:
    tenants: dict[str, TenantProgress] = field(default_factory=dict)
    clients: dict[str, Client] = field(default_factory=dict)


def tenant(total: int, done: int, started: float, **kw: object) -> TenantProgress:
    tp = TenantProgress(total=total, done=done, started=started)
    for key, value in kw.items():
        setattr(tp, key, value)
    return tp


# ---------------------------------------------------------------------------------------------
# Resuming: journal hooks that crash a run where a test wants


WELCOME = str(SAMPLES / "01-welcome-new-account.json")


VAT = str(SAMPLES / "08-normalise-tax-ids.json")


CALLEE = str(SAMPLES / "09-price-lookup-service.json")


T1 = "tenant-1"


class Crash(BaseException):
    """Stands for the process dying at this point (not an Exception: nothing may handle it)."""


def key_of(path: str) -> str:
    """The journal item key of a sample: its canonical content hash."""
    return parse_document(Path(path).read_bytes(), path).content_hash


def hooked(on_append: Callable[[str, Mapping[str, Any]], None]) -> Any:
    """A journal factory whose appends call `on_append(type, fields)` once the record is durable."""

    @asynccontextmanager
    async def factory(path: str, run_fields: dict[str, Any], **kw: Any) -> AsyncIterator[Journal]:
        async with Journal.open(path, run_fields, **kw) as journal:
            append = journal.append

            async def append_then_hook(type: str, **fields: Any) -> Any:
                record = await append(type, **fields)
                on_append(type, fields)
                return record

            journal.append = append_then_hook  # type: ignore[method-assign]
            yield journal

    return factory


async def crashing(run: Any) -> None:
    """Await `run`, which must end by the simulated crash."""
    with pytest.raises(BaseException) as info:
        await run
    exc = info.value
    crashes = exc.exceptions if isinstance(exc, BaseExceptionGroup) else (exc,)
    assert any(isinstance(e, Crash) for e in _flatten(crashes)), repr(exc)


def _flatten(excs: Any) -> list[BaseException]:
    out: list[BaseException] = []
    for e in excs:
        out.extend(_flatten(e.exceptions) if isinstance(e, BaseExceptionGroup) else [e])
    return out


T = TypeVar("T")


async def traced_peak_async(fn: Callable[[], Awaitable[T]]) -> tuple[T, int]:
    """`await fn()`'s result and the peak of Python memory allocated meanwhile (tracemalloc:
    every thread, the fake serving on this loop included)."""
    tracemalloc.start()
    try:
        result = await fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def config_file_with_cache(tmp_path: Path, env: Env) -> tuple[Path, dict[str, str]]:
    """A config file for `env` whose cache folder is the test's own; its secrets' variables."""
    path = tmp_path / "m.toml"
    variables = write_config_file(path, env)
    path.write_text(path.read_text() + f'cache_dir = "{tmp_path / "cache"}"\n')
    return path, variables


@contextmanager
def background_fake(config: FakeConfig) -> Iterator[Env]:
    """The fake on its own thread, so the CLI (and its signal handlers) runs on this one."""
    from migrator.demo import BackgroundFake

    with BackgroundFake(config) as fake:
        yield Env(fake=fake, config=config, settings=settings_for(fake, config))


def with_listing_id(env: Env, definition_id: int, bad: Any) -> None:
    """The listing (and GET /workflows/{id}) shows `bad` as the id of one definition
    (KeyError: no id at all)."""
    real = env.fake.state.definition_json

    def definition_json(tenant: str, did: int, **kw: Any) -> dict[str, Any]:
        out = real(tenant, did, **kw)
        if did == definition_id:
            if bad is KeyError:
                del out["id"]
            else:
                out["id"] = bad
        return out

    env.fake.state.definition_json = definition_json  # type: ignore[method-assign]


def fake_announcement(fake: subprocess.Popen[str]) -> list[str]:
    """The lines a `migrator fake-zuora --write-config` process printed up to its `wrote …`
    line (the event waited for); its output so far in the failure when it never says it."""
    assert fake.stdout is not None
    said: list[str] = []
    for line in fake.stdout:
        said.append(line)
        if line.startswith("wrote "):
            return said
    raise AssertionError("".join(said) + (fake.stderr.read() if fake.stderr else ""))
