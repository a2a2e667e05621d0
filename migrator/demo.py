"""`make demo`: the built-in fake Zuora with three tenants, samples/ migrated into all of them.

Starts the fake on a loopback port in a background thread, writes a config for it (as
`migrator fake-zuora --write-config` does), runs plan, migrate (twice), status, verify, diff and doctor exactly as
a user would, printing each command so it can be pasted, and ends by saying how to start the fake
and run them by hand. `python -m migrator.demo [OUT]` writes into OUT (default demo-out/).
"""

from __future__ import annotations

import shlex
import sys
import threading
from pathlib import Path

import anyio

from migrator.fake import (
    FakeConfig,
    RunningFake,
    how_to_run_migrator,
    serve,
    write_client_config,
)

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


def shown(path: Path) -> str:
    """A path as a user in the current folder would type it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    from migrator.cli import main as cli_main

    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else ROOT / "demo-out"
    out.mkdir(parents=True, exist_ok=True)
    for old in ("journal.jsonl", "journal-of-the-demo.jsonl", "report.json"):
        (out / old).unlink(missing_ok=True)
    fake_config = FakeConfig.demo(3)
    config_file = out / "migrator.toml"
    samples = shown(ROOT / "samples")
    config = shown(config_file)
    journal = shown(out / "journal.jsonl")
    first = fake_config.tenants[0].name
    report = shown(out / "report.json")
    migrate = ["migrate", samples, "--config", config, "--journal", journal]
    steps = [
        (
            "what would happen in one of the tenants (changes nothing):",
            ["plan", samples, "--config", config, "--tenant", first],
        ),
        (
            "do it, with a journal, a report, and each import exported back and compared:",
            [*migrate, "--report", report, "--verify", "--progress", "never"],
        ),
        (
            "run it again: the journal says it is done, nothing is imported twice:",
            [*migrate, "--progress", "never"],
        ),
        ("where the run stands:", ["status", "--journal", journal]),
        (
            "does each tenant hold exactly what the samples would migrate?",
            ["verify", samples, "--config", config],
        ),
        (
            "the drift matrix, every tenant against the samples (and one page to mail or attach):",
            ["diff", samples, "--config", config, "--html", shown(out / "drift.html")],
        ),
        (
            "how does this tenant behave where the API spec is silent? (read-only; --write learns more)",
            ["doctor", "--config", config, "--tenant", first],
        ),
    ]
    codes: list[int] = []
    with BackgroundFake(fake_config) as fake:
        write_client_config(config_file, fake.base_url, fake_config.tenants)
        print(
            f"fake Zuora (not Zuora!) serving {len(fake_config.tenants)} tenants at "
            f"{fake.base_url}; config: {config}\n",
            flush=True,
        )
        for text, command in steps:
            print(f"# {text}\n$ {shlex.join([*how_to_run_migrator(), *command])}", flush=True)
            code = cli_main(command)
            codes.append(code)
            print(f"(exit {code})\n", flush=True)
        counts = {t.name: len(fake.ledger(t.name)) for t in fake_config.tenants}
        print("fake ledger: " + ", ".join(f"{n} {c} imports" for n, c in counts.items()))
    # The journal names the stopped fake as its target: a new fake is another target, which
    # `migrate` refuses for that journal. Kept under another name, so the commands start afresh.
    kept = out / "journal-of-the-demo.jsonl"
    (out / "journal.jsonl").replace(kept)
    print(f"the demo's journal is kept as {shown(kept)}")
    print(
        "\nThe fake has stopped, so the config above points at nothing now. To run these"
        " commands by hand, start the fake in one terminal (it writes the config again, for"
        " its own port):\n"
        f"  {shlex.join([*how_to_run_migrator(), 'fake-zuora', '--write-config', config])}\n"
        "and paste the commands above into another. Ctrl-C stops the fake."
    )
    # The second migrate, status, verify and diff must find the work done.
    return 0 if all(code == 0 for code in codes) else 1


if __name__ == "__main__":
    sys.exit(main())
