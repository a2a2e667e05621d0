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
