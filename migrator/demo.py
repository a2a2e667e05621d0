"""`make demo`: the built-in fake Zuora with three tenants, samples/ migrated into all of them.

Starts the fake on a loopback port in a background thread, writes a config whose secrets come from
environment variables, runs `migrator migrate` exactly as a user would, checks the fake's ledger,
prints the report, and shuts the fake down.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import anyio

from migrator.fake import FakeConfig, RunningFake, serve

ROOT = Path(__file__).resolve().parent.parent


class BackgroundFake:
    """The fake served from its own thread and event loop, so the CLI can run in this one."""

    def __init__(self, config: FakeConfig) -> None:
        self.config = config
        self.fake: RunningFake | None = None
        self._ready = threading.Event()
        self._stop: anyio.Event | None = None
        self._token: object | None = None
        self._thread = threading.Thread(target=self._run, name="fake-zuora", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._stop = anyio.Event()
            self._token = anyio.lowlevel.current_token()
            async with serve(self.config) as fake:
                self.fake = fake
                self._ready.set()
                await self._stop.wait()

        anyio.run(main, backend="asyncio")

    def __enter__(self) -> RunningFake:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the fake Zuora did not start")
        assert self.fake is not None
        return self.fake

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            anyio.from_thread.run_sync(self._stop.set, token=self._token)  # type: ignore[arg-type]
        self._thread.join(10)


def write_config(path: Path, fake: RunningFake, config: FakeConfig) -> dict[str, str]:
    """A migrator config for the fake's tenants; secrets go in environment variables."""
    env: dict[str, str] = {}
    lines = ["# Written by `make demo`: the built-in fake Zuora's three tenants.", ""]
    for tenant in config.tenants:
        var = "MIGRATOR_DEMO_SECRET_" + tenant.name.upper().replace("-", "_")
        env[var] = tenant.client_secret
        lines += [
            f'[tenants."{tenant.name}"]',
            f'base_url = "{fake.base_url}"',
            f'client_id = "{tenant.client_id}"',
            f'client_secret_env = "{var}"',
            "requests_per_minute = 1200",
            "max_concurrency = 8",
            "",
        ]
    path.write_text("\n".join(lines))
    return env


def main() -> int:
    from migrator.cli import main as cli_main

    out = ROOT / "demo-out"
    out.mkdir(exist_ok=True)
    for old in ("journal.jsonl", "report.json"):
        (out / old).unlink(missing_ok=True)
    config = FakeConfig.demo(3)
    with BackgroundFake(config) as fake:
        env = write_config(out / "migrator.toml", fake, config)
        os.environ.update(env)
        print(
            f"fake Zuora (not Zuora!) serving {len(config.tenants)} tenants at {fake.base_url}\n",
            flush=True,
        )
        args = [
            "migrate",
            str(ROOT / "samples"),
            "--config",
            str(out / "migrator.toml"),
            "--journal",
            str(out / "journal.jsonl"),
            "--report",
            str(out / "report.json"),
            "--verify",
        ]
        print("$ migrator " + " ".join(a.replace(str(ROOT) + "/", "") for a in args), flush=True)
        code = cli_main(args)
        print("per-workflow report: demo-out/report.json; journal: demo-out/journal.jsonl")
        ledger = fake.ledger()
        print()
        for tenant in config.tenants:
            landed = [e for e in ledger if e["tenant"] == tenant.name]
            print(f"fake ledger: {tenant.name}: {len(landed)} imports")
        print("\nrun it again and nothing is imported twice:")
        print("$ migrator " + " ".join(a.replace(str(ROOT) + "/", "") for a in args[:6]))
        again = cli_main(
            [*args[:4], "--journal", str(out / "journal.jsonl"), "--progress", "never", "--quiet"]
        )
        print(f"fake ledger after the second run: {len(fake.ledger())} imports (was {len(ledger)})")
    return code or again


if __name__ == "__main__":
    sys.exit(main())
