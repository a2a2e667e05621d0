"""Rollouts across shards (issue 16), as docs/rollout.md promises, over real HTTP against the fake.

With demo tenants tenant-1..3 and `--shard I/2`, shard 1 holds tenant-2 and tenant-3, shard 2
holds tenant-1 (shard_of is a hash of the name); the waves are [tenant-2], [tenant-1, tenant-3].
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from migrator.core.config import Settings
from migrator.core.report import Report
from migrator.core.rollout import RolloutConfig
from migrator.fake import FaultConfig
from migrator.run.migrate import migrate, shard_of
from migrator.run.options import MigrateOptions
from tests.conftest import SAMPLES
from tests.helpers import Env, expected_names, running_fake

pytestmark = pytest.mark.anyio

WAVES = (("tenant-2",), ("tenant-1", "tenant-3"))


async def both_shards(settings: Settings, folder: Path) -> dict[int, Report]:
    """Shard 1/2 and 2/2 of the same migration, at the same time, journals in one folder."""
    reports: dict[int, Report] = {}

    async def shard(index: int) -> None:
        options = MigrateOptions(
            sources=[str(SAMPLES)],
            journal=str(folder / f"shard-{index}.jsonl"),
            shard=(index, 2),
        )
        reports[index] = await migrate(settings, options)

    async with anyio.create_task_group() as tg:
        tg.start_soon(shard, 1)
        tg.start_soon(shard, 2)
    return reports


def fleet(env: Env, **knobs: object) -> Settings:
    return replace(env.settings, rollout=RolloutConfig(WAVES, **knobs))  # type: ignore[arg-type]


def test_the_shards_of_the_demo_tenants_are_as_this_file_assumes() -> None:
    """shard_of puts tenant-2 and tenant-3 in shard 1 of 2 and tenant-1 in shard 2."""
    assert [shard_of(f"tenant-{i}", 2) for i in (1, 2, 3)] == [2, 1, 1]


async def test_without_waiting_a_halt_in_one_shard_does_not_stop_another(tmp_path: Path) -> None:
    """By default each shard judges its own share of a wave: shard 1 halting at wave 1 holds only its own later waves; shard 2 migrates its wave-2 tenant."""
    async with running_fake() as env:
        env.fake.set_faults("tenant-2", FaultConfig(error_rate=1.0, error_statuses=[400]))
        reports = await both_shards(fleet(env), tmp_path)
        assert not reports[1].ok
        assert env.import_counts("tenant-3") == {}  # shard 1's wave 2: held
        assert reports[2].ok and env.import_counts("tenant-1") == expected_names()


async def test_shards_that_wait_hold_when_another_shard_halted_and_finish_together(
    tmp_path: Path,
) -> None:
    """With wait_for_shards and journals in one folder, shard 2 does not start wave 2 while shard 1 halted wave 1; once fixed, running both again finishes every tenant once."""
    async with running_fake() as env:
        settings = fleet(env, wait_for_shards=True, shard_wait_s=120.0)
        env.fake.set_faults("tenant-2", FaultConfig(error_rate=1.0, error_statuses=[400]))
        reports = await both_shards(settings, tmp_path)
        assert not reports[1].ok and not reports[2].ok
        assert env.import_counts("tenant-1") == {} and env.import_counts("tenant-3") == {}
        held = [i for i in reports[2].items if i.status == "deferred"]
        assert held and all("shard 1/2 halted wave 1" in (i.error or "") for i in held)

        env.fake.set_faults("tenant-2", FaultConfig())
        again = await both_shards(settings, tmp_path)
        assert again[1].ok and again[2].ok
        for tenant in ("tenant-1", "tenant-2", "tenant-3"):
            assert env.import_counts(tenant) == expected_names(), tenant


async def test_a_halt_in_one_shard_rolls_back_every_shard_s_share_of_that_wave(
    tmp_path: Path,
) -> None:
    """With wait_for_shards and rollback_on_halt, shard 1 halting wave 2 makes shard 2 (which passed its share of wave 2) roll its own wave-2 tenant back too, record the halt and not report ok (issue 21 item 11)."""
    from migrator.store.journal import read_journal

    async with running_fake() as env:
        settings = fleet(env, wait_for_shards=True, shard_wait_s=120.0, rollback_on_halt=True)
        env.fake.set_faults("tenant-3", FaultConfig(error_rate=1.0, error_statuses=[400]))
        reports: dict[int, Report] = {}

        async def shard(index: int) -> None:
            options = MigrateOptions(
                sources=[str(SAMPLES)],
                journal=str(tmp_path / f"shard-{index}.jsonl"),
                shard=(index, 2),
                activation="always",
            )
            reports[index] = await migrate(settings, options)

        async with anyio.create_task_group() as tg:
            tg.start_soon(shard, 1)
            tg.start_soon(shard, 2)
        assert not reports[1].ok
        assert env.import_counts("tenant-1") == expected_names()  # shard 2 ran its wave 2 ...
        state = env.fake.state
        statuses = {
            state.definition_json("tenant-1", d)["status"]
            for d in state.list_definitions("tenant-1", {})
        }
        assert statuses == {"Inactive"}  # ... and rolled it back when shard 1 halted wave 2
        assert not reports[2].ok
        said = [i for i in reports[2].items if i.action == "rollback"]
        assert [(i.tenant, i.status) for i in said] == [("tenant-1", "deferred")]
        assert "shard 1/2 halted wave 2" in (said[0].error or "")
        waves = [
            (r.get("wave"), r.get("step"))
            for r in read_journal(tmp_path / "shard-2.jsonl").records
            if r.type == "wave"
        ]
        assert waves[-2:] == [(2, "passed"), (2, "halted")]
        # the tenants shard 1 rolled back stay rolled back: tenant-2 (wave 1) is still live
        assert all(
            state.definition_json("tenant-2", d)["status"] == "Active"
            for d in state.list_definitions("tenant-2", {})
        )
