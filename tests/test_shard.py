"""`--shard I/N`: tenants split deterministically across hosts, each in exactly one shard (issue 4).

Unit tests of `engine.shard_of` / `select_tenants`, then two shards of one migration against the fake.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from migrator.core.config import Secret, Settings, TenantConfig
from migrator.fake import FakeConfig
from migrator.run.migrate import migrate, select_tenants, shard_of
from migrator.run.options import MigrateOptions
from tests.conftest import SAMPLES
from tests.helpers import running_fake


def settings_with(names: list[str]) -> Settings:
    tenants = {
        n: TenantConfig(
            name=n,
            base_url="http://127.0.0.1:1",
            client_id=f"id-{n}",
            client_secret=Secret("s" * 8),
        )
        for n in names
    }
    return Settings(file="shard.toml", tenants=tenants)


def shards(settings: Settings, count: int, **options: object) -> list[list[str]]:
    return [
        [t.name for t in select_tenants(settings, MigrateOptions(shard=(i, count), **options))]  # type: ignore[arg-type]
        for i in range(1, count + 1)
    ]


tenant_names = st.lists(
    st.text(min_size=1, max_size=20).filter(lambda s: s.strip() == s and s),
    min_size=1,
    max_size=30,
    unique=True,
)


@given(names=tenant_names, count=st.integers(1, 9))
def test_every_tenant_is_in_exactly_one_shard(names: list[str], count: int) -> None:
    """Whatever the tenant names and shard count, the shards are disjoint and together cover every tenant."""
    chosen = shards(settings_with(names), count)
    flat = [n for shard in chosen for n in shard]
    assert sorted(flat) == sorted(names)
    assert len(flat) == len(set(flat))
    assert all(1 <= shard_of(n, count) <= count for n in names)


@given(names=tenant_names, count=st.integers(1, 6), data=st.data())
def test_assignment_does_not_depend_on_order(
    names: list[str], count: int, data: st.DataObject
) -> None:
    """Listing tenants in another order (config file or --tenant flags) puts each in the same shard."""
    shuffled = data.draw(st.permutations(names))
    by_config = shards(settings_with(names), count)
    by_other_config = shards(settings_with(list(shuffled)), count)
    by_flags = shards(settings_with(names), count, tenants=tuple(shuffled))
    as_sets = [set(s) for s in by_config]
    assert [set(s) for s in by_other_config] == as_sets
    assert [set(s) for s in by_flags] == as_sets


def test_assignment_is_stable_across_runs_and_versions() -> None:
    """A tenant's shard is a fixed function of its name (sha256), so hosts and later releases agree."""
    # Pinned: changing these would move tenants between shards in the middle of a migration.
    assert [shard_of(f"tenant-{i}", 2) for i in range(1, 7)] == [2, 1, 1, 1, 1, 1]
    assert [shard_of(f"tenant-{i}", 3) for i in range(1, 7)] == [1, 3, 3, 2, 1, 2]
    assert [shard_of(n, 4) for n in ("acme-prod", "acme-sandbox", "globex", "initech")] == [
        3,
        2,
        4,
        4,
    ]


def test_one_shard_is_everything_and_source_tenant_is_left_out() -> None:
    """--shard 1/1 selects every target, and the --from tenant is never a target in any shard."""
    names = [f"t{i}" for i in range(10)]
    settings = settings_with(names)
    assert shards(settings, 1) == [sorted(names)]
    for count in range(1, 5):
        flat = list(itertools.chain(*shards(settings, count, from_tenant="t3")))
        assert sorted(flat) == sorted(n for n in names if n != "t3")


@pytest.mark.anyio
async def test_two_shards_of_one_migration_cover_every_tenant_once(tmp_path: Path) -> None:
    """Shards 1/2 and 2/2, each with its own journal, import the samples into disjoint tenant sets that together are all of them."""
    config = FakeConfig.demo(4)
    async with running_fake(config) as env:
        touched: list[set[str]] = []
        for index in (1, 2):
            before = {t.name: len(env.imports(t.name)) for t in config.tenants}
            report = await migrate(
                env.settings,
                MigrateOptions(
                    sources=[str(SAMPLES)],
                    journal=str(tmp_path / f"shard-{index}.jsonl"),
                    shard=(index, 2),
                ),
            )
            assert report.ok, report.to_json()
            assert {o.tenant for o in report.items} == {
                n for n in env.settings.tenants if shard_of(n, 2) == index
            }
            touched.append({n for n, b in before.items() if len(env.imports(n)) > b})
        assert touched[0] and touched[1]
        assert touched[0].isdisjoint(touched[1])
        assert touched[0] | touched[1] == {t.name for t in config.tenants}
        counts = {t.name: len(env.imports(t.name)) for t in config.tenants}
        assert len(set(counts.values())) == 1  # every tenant got the same imports, once


@pytest.mark.anyio
async def test_a_shard_plans_its_share_and_applies_that_plan(tmp_path: Path) -> None:
    """`plan --shard 1/2 --out F` saves the shard's tenants only; `migrate --plan F --shard 1/2`
    applies it and imports into exactly those tenants (one host of an Indexed Job, say)."""
    from tests.helpers import run_cli

    config = FakeConfig.demo(4)
    mine = sorted(t.name for t in config.tenants if shard_of(t.name, 2) == 1)
    plan = tmp_path / "plan-1.json"
    async with running_fake(config) as env:
        planned = await run_cli(
            env, tmp_path, "plan", str(SAMPLES), "--shard", "1/2", "--out", str(plan)
        )
        assert planned.code == 0, planned.err
        saved = json.loads(plan.read_text())
        assert sorted(saved["tenants"]) == mine
        applied = await run_cli(
            env,
            tmp_path,
            "migrate",
            str(SAMPLES),
            "--plan",
            str(plan),
            "--shard",
            "1/2",
            "--journal",
            str(tmp_path / "j-1.jsonl"),
            "--progress",
            "never",
        )
        assert applied.code == 0, applied.err
        assert {t.name for t in config.tenants if env.imports(t.name)} == set(mine)
        refused = await run_cli(env, tmp_path, "plan", str(SAMPLES), "--shard", "3/2")
        assert refused.code == 2 and "Traceback" not in refused.err
