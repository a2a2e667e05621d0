"""Saved plans: `migrator plan --out FILE` then `migrate --plan FILE` applies exactly that plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from migrator.engine import MigrateOptions, migrate
from migrator.errors import MigratorError
from migrator.planfile import load_plan_file, plan_file_bytes
from tests.conftest import SAMPLES
from tests.helpers import running_fake

pytestmark = pytest.mark.anyio


async def test_saved_plan_applies_when_nothing_changed(tmp_path: Path) -> None:
    """A plan saved from a dry run is applied as planned when the targets did not change."""
    plan_path = tmp_path / "plan.json"
    async with running_fake() as env:
        dry = await migrate(env.settings, MigrateOptions(sources=[str(SAMPLES)], dry_run=True))
        plan_path.write_bytes(plan_file_bytes(dry))
        saved = json.loads(plan_path.read_text())
        assert set(saved["tenants"]) == {"tenant-1", "tenant-2", "tenant-3"}
        applied = await migrate(
            env.settings, MigrateOptions(sources=[str(SAMPLES)], plan_file=str(plan_path))
        )
        assert applied.ok
        assert applied.summary()["imported"] == dry.summary()["planned"] == len(env.fake.ledger())


async def test_saved_plan_is_refused_for_a_tenant_that_changed(tmp_path: Path) -> None:
    """When a target gained a workflow after planning, that tenant is refused and the others proceed."""
    plan_path = tmp_path / "plan.json"
    async with running_fake() as env:
        dry = await migrate(env.settings, MigrateOptions(sources=[str(SAMPLES)], dry_run=True))
        plan_path.write_bytes(plan_file_bytes(dry))
        sample = json.loads(next(SAMPLES.glob("01-*.json")).read_text())
        env.fake.state.add_workflow("tenant-2", sample, version="9.9.9")
        applied = await migrate(
            env.settings, MigrateOptions(sources=[str(SAMPLES)], plan_file=str(plan_path))
        )
        per = applied.per_tenant()
        assert per["tenant-2"]["imported"] == 0
        assert per["tenant-1"]["imported"] > 0 and per["tenant-3"]["imported"] > 0
        errors = {i.error for i in applied.items if i.tenant == "tenant-2"}
        assert len(errors) == 1 and "changed since planning" in errors.pop()
        assert env.imports("tenant-2") == []


def test_a_file_that_is_not_a_plan_is_refused(tmp_path: Path) -> None:
    """Loading something that is not a saved plan gives a one-line error naming the file."""
    bogus = tmp_path / "report.json"
    bogus.write_text('{"summary": {}}')
    with pytest.raises(MigratorError, match="not a plan file"):
        load_plan_file(str(bogus))


class _Run:
    """Stands in for a planned TenantRun: its record's head and its items."""

    def __init__(self, items: list[dict[str, object]]) -> None:
        self.items = items

    def plan_head(self) -> dict[str, object]:
        return {"identity": "i", "target": "t", "problems": ["p"]}

    def plan_items(self) -> object:
        return iter(self.items)

    def plan_record(self) -> dict[str, object]:
        return {**self.plan_head(), "items": self.items}


def test_plan_file_is_written_an_item_at_a_time_and_parses_to_the_records() -> None:
    from migrator.planfile import PlanRecords, plan_file_chunks
    from migrator.report import Report

    cases: list[dict[str, _Run]] = [
        {},
        {"a": _Run([])},
        {"a": _Run([{"item": "k1"}, {"item": "k2", "reason": None}]), "b": _Run([{"x": 1}])},
    ]
    for runs in cases:
        streamed = json.loads(
            b"".join(plan_file_chunks(Report(items=(), plans=PlanRecords(runs))))  # type: ignore[arg-type]
        )
        assert streamed["format"] == "migrator-plan/1"
        assert streamed["tenants"] == {name: run.plan_record() for name, run in runs.items()}
