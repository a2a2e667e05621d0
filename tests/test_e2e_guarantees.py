"""End-to-end checks of guarantees that unit tests alone used to pin (issue 14, test weaknesses).

Each runs `migrate` over real HTTP against the fake and asserts on the fake's ledger: callees land
before callers even with one worker; a caller already on the target is skipped by the plan and
by the run; a resumed in-doubt import is sent with the key its journal recorded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest

from migrator.fake import FakeConfig
from migrator.run.migrate import migrate
from migrator.run.options import MigrateOptions
from migrator.store.journal import read_journal
from tests.builders import CALLEE, CALLEE_NAME, CALLER, CALLER_NAME
from tests.helpers import Crash, crashing, hooked, key_of, running_fake

pytestmark = pytest.mark.anyio

T1 = "tenant-1"
# A deadlock (a caller waiting for a callee nobody sends) must fail the test, not hang the suite.
DEADLINE = 60


async def test_callee_lands_before_its_caller_with_a_single_worker(tmp_path: Path) -> None:
    """With one worker and the caller listed first, the callee is imported first and the caller points at it (a reversed order would leave the one worker waiting)."""
    async with running_fake(FakeConfig.demo(1), max_concurrency=1) as env:
        with anyio.fail_after(DEADLINE):
            report = await migrate(
                env.settings,
                MigrateOptions(sources=[str(CALLER), str(CALLEE)], journal=str(tmp_path / "j")),
            )
        assert report.ok, report.to_json()
        assert [e["name"] for e in env.imports(T1)] == [CALLEE_NAME, CALLER_NAME]


async def test_a_caller_already_on_the_target_is_skipped_by_plan_and_run(tmp_path: Path) -> None:
    """After a migration, a dry run with a new journal plans the caller (whose payload carries this tenant's callee id) as skipped, and the real run sends nothing."""
    sources = [str(CALLER), str(CALLEE)]
    async with running_fake(FakeConfig.demo(1)) as env:
        first = await migrate(env.settings, MigrateOptions(sources=sources))
        assert first.ok, first.to_json()
        landed = len(env.imports(T1))
        dry = await migrate(env.settings, MigrateOptions(sources=sources, dry_run=True))
        planned = {i.workflow_name: i.status for i in dry.items}
        assert planned == {CALLEE_NAME: "skipped", CALLER_NAME: "skipped"}, dry.to_json()
        again = await migrate(
            env.settings, MigrateOptions(sources=sources, journal=str(tmp_path / "new.jsonl"))
        )
        assert {i.workflow_name: i.status for i in again.items} == planned
        caller = next(i for i in again.items if i.workflow_name == CALLER_NAME)
        assert "identical to version" in (caller.reason or "")
        assert len(env.imports(T1)) == landed


async def test_a_resumed_caller_is_sent_with_its_journal_key(tmp_path: Path) -> None:
    """A caller whose intent is durable but whose request never left is resent by the next run under exactly the journal's Idempotency-Key, once."""
    journal = tmp_path / "j.jsonl"

    def die_at_caller_intent(type: str, fields: Mapping[str, Any]) -> None:
        if type == "intent" and fields["name"] == CALLER_NAME:
            raise Crash

    async with running_fake(FakeConfig.demo(1)) as env:
        options = MigrateOptions(sources=[str(CALLER), str(CALLEE)], journal=str(journal))
        await crashing(migrate(env.settings, options, journal_factory=hooked(die_at_caller_intent)))
        assert [e["name"] for e in env.imports(T1)] == [CALLEE_NAME]
        state = read_journal(journal).state[(T1, key_of(str(CALLER)))]
        assert state.status == "in_doubt" and state.idempotency_key

        report = await migrate(env.settings, options)
        assert report.ok, report.to_json()
        callers = [e for e in env.imports(T1) if e["name"] == CALLER_NAME]
        assert [e["idempotency_key"] for e in callers] == [state.idempotency_key]


async def test_a_caller_version_identical_once_sent_is_not_sent_again(tmp_path: Path) -> None:
    """Two caller versions that differ only in the source id of their call become the same payload once the call points at this tenant's callee: the second is skipped at send time, and the caller lands once."""
    first = json.loads(CALLER.read_text())
    second = json.loads(CALLER.read_text())
    second["workflow"]["version"] = "0.3.0"
    for task in second["tasks"]:
        if task["action_type"] == "Execute::WorkflowTask":
            task["parameters"]["workflow_id"] = "999999"  # unknown id: found by workflow_name
    paths = []
    for i, doc in enumerate((first, second)):
        path = tmp_path / f"caller-{i}.json"
        path.write_text(json.dumps(doc))
        paths.append(str(path))
    async with running_fake(FakeConfig.demo(1)) as env:
        report = await migrate(env.settings, MigrateOptions(sources=[*paths, str(CALLEE)]))
        assert report.ok, report.to_json()
        assert [e["name"] for e in env.imports(T1)] == [CALLEE_NAME, CALLER_NAME]
        by_source = {i.source: i for i in report.items}
        assert by_source[paths[0]].status == "imported"
        assert by_source[paths[1]].status == "skipped"
        assert "identical to version 0.2.0" in (by_source[paths[1]].reason or "")
