"""How tests/data/legacy_journal/ was made (kept for the record; the tests never run it).

An earlier release's migrator (commit 3b5c74c, the last before "content identity is what survives
import": its item keys hash keys that import drops) migrates documents that carry such keys into
today's fake Zuora, with 30 % of answers lost, and is SIGKILLed several times while an import is in
doubt. What it leaves is the fixture: its journal (`journal.jsonl`), the sources it read
(`sources/`) and the fake's state at the end (`fake-state.json`, the workflows and the ledger of
imports that did land).

    git archive 3b5c74c | tar -x -C /tmp/oldrel
    .venv/bin/python tests/data/legacy_journal/make_fixture.py /tmp/oldrel

The fake's state is written when it stops cleanly (SIGTERM), so the fake outlives the kills.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT))

from migrator.fake._config import demo_tenant  # noqa: E402
from migrator.store.journal import read_journal  # noqa: E402
from tests.builders import small_export  # noqa: E402

TENANTS = ("tenant-1", "tenant-2")
DOCUMENTS = 12


def document(i: int) -> dict[str, Any]:
    """small_export() named `Legacy i`, plus keys import drops at every level."""
    doc = small_export(f"Legacy {i:02d}")
    doc["workflow"]["ui_trigger"] = {"button": f"Run {i}", "position": [i, 2]}
    doc["tasks"][1]["notes"] = f"set by the UI ({i})"
    doc["linkages"][2]["ui_route"] = [[0, i]]
    doc["exported_by"] = "someone"
    return doc


def in_doubt(journal: Path) -> int:
    if not journal.exists():
        return 0
    return sum(1 for st in read_journal(journal).state.values() if st.status == "in_doubt")


def intents(journal: Path, size: int) -> int:
    if not journal.exists():
        return 0
    with journal.open("rb") as f:
        f.seek(size)
        return f.read().count(b'"type":"intent"')


def main(old_release: Path) -> None:
    rng = random.Random(20261207)
    work = Path(tempfile.mkdtemp())
    sources = HERE / "sources"
    shutil.rmtree(sources, ignore_errors=True)
    sources.mkdir()
    for i in range(DOCUMENTS):
        (sources / f"legacy-{i:02d}.json").write_text(json.dumps(document(i), indent=1) + "\n")
    tenants = [demo_tenant(i, seed=7) for i in range(1, len(TENANTS) + 1)]
    state = work / "fake-state.json"
    fake_config = work / "fake.json"
    fake_config.write_text(
        json.dumps(
            {
                "seed": 7,
                "state_file": str(state),
                "tenants": [
                    {
                        "name": t.name,
                        "client_id": t.client_id,
                        "client_secret": t.client_secret,
                        "faults": {"lost_response_rate": 0.3, "latency": 0.02},
                    }
                    for t in tenants
                ],
            }
        )
    )
    fake = subprocess.Popen(
        [sys.executable, "-m", "migrator.fake", "--port", "0", "--config", str(fake_config)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert fake.stdout is not None
    url = fake.stdout.readline().strip().removeprefix("listening on ")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIGRATOR_")}
    env["PYTHONPATH"] = str(old_release)
    lines = []
    for t in tenants:
        var = "LEGACY_SECRET_" + t.name.upper().replace("-", "_")
        env[var] = t.client_secret
        lines += [
            f'[tenants."{t.name}"]',
            f'base_url = "{url}"',
            f'client_id = "{t.client_id}"',
            f'client_secret_env = "{var}"',
            "max_concurrency = 2",
            "",
        ]
    lines += ["[settings]", "backoff_base = 0.01", "backoff_cap = 0.2", "max_attempts = 1", ""]
    config = work / "migrator.toml"
    config.write_text("\n".join(lines))
    journal = work / "journal.jsonl"
    args = [
        sys.executable, "-m", "migrator.cli", "migrate", str(sources), "--config", str(config),
        "--journal", str(journal), "--progress", "never",
    ]  # fmt: skip
    kills = 0
    try:
        for _ in range(40):
            if kills >= 6:
                break
            before = journal.stat().st_size if journal.exists() else 0
            proc = subprocess.Popen(args, env=env, cwd=old_release, stderr=subprocess.DEVNULL)
            after, seen = rng.randint(3, 8), 0
            while proc.poll() is None:
                now = intents(journal, before)
                if now >= after and now > seen:
                    seen = now
                    proc.send_signal(signal.SIGSTOP)
                    if in_doubt(journal):
                        proc.send_signal(signal.SIGKILL)
                        proc.wait()
                        kills += 1
                        break
                    proc.send_signal(signal.SIGCONT)
                time.sleep(0.005)
            else:
                print("a run ended by itself:", proc.returncode)
    finally:
        fake.send_signal(signal.SIGTERM)
        fake.wait(timeout=30)
    view = read_journal(journal)
    doubt = sum(1 for st in view.state.values() if st.status == "in_doubt")
    done = sum(1 for st in view.state.values() if st.status == "done")
    print(f"kills {kills}, in doubt {doubt}, done {done}, url {url}")
    shutil.copy(journal, HERE / "journal.jsonl")
    shutil.copy(state, HERE / "fake-state.json")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
