"""Fleet rollouts over real HTTP against the built-in fake (issue 16): waves, halts, resume, rollback.

Every tenant is a fake tenant on 127.0.0.1; "untouched" is checked on the fake's own state (its
ledger of imports and every definition, version and run it holds), never on what migrator says.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from migrator.core.config import Settings
from migrator.core.rollout import RolloutConfig, SmokeRun
from migrator.fake import FakeConfig, FaultConfig
from migrator.run.migrate import migrate
from migrator.run.options import MigrateOptions
from migrator.run.rollback import rollback_from_journal
from migrator.store.journal import read_journal
from tests.conftest import ROOT, SAMPLES
from tests.helpers import Env, expected_names, run_cli, running_fake, write_config_file

pytestmark = pytest.mark.anyio

WAVES = (("tenant-1",), ("tenant-2", "tenant-3"), ("tenant-4",))
SEEDED = "Usage Overage Alert"


def fleet(env: Env, **knobs: Any) -> Settings:
    return replace(env.settings, rollout=RolloutConfig(WAVES, **knobs))


def tenant_state(env: Env, tenant: str) -> Any:
    """Everything the fake holds for a tenant: definitions (with updatedAt, which any write
    moves), their versions, its ledger of imports and its runs."""
    state = env.fake.state
    defs = {}
    for def_id in state.list_definitions(tenant, {}):
        defs[def_id] = (state.definition_json(tenant, def_id), state.list_versions(tenant, def_id))
    runs = sorted(state._tenant(tenant).runs)  # the fake has no public list of a tenant's runs
    return orjson.dumps([defs, env.fake.ledger(tenant), runs], option=orjson.OPT_NON_STR_KEYS)


def definitions(env: Env, tenant: str) -> dict[str, dict[str, Any]]:
    state = env.fake.state
    out = {}
    for def_id in state.list_definitions(tenant, {}):
        d = state.definition_json(tenant, def_id)
        out[d["name"]] = d
    return out


def records(journal: Path, type_: str) -> list[dict[str, Any]]:
    return [dict(r.fields) for r in read_journal(journal).records if r.type == type_]


def seed_older(env: Env, tenant: str) -> tuple[int, int]:
    """An older, different, active version of one sample in the tenant: (definition, version id)."""
    doc = json.loads((SAMPLES / "06-usage-overage-alert.json").read_text())
    doc["workflow"]["description"] = "the version that was live before the rollout"
    return env.fake.state.add_workflow(tenant, doc, version="0.0.1", activate=True)  # type: ignore[no-any-return]


async def test_a_halt_in_wave_2_leaves_wave_3_untouched_and_a_resume_finishes_once(
    tmp_path: Path,
) -> None:
    """A tenant failing in wave 2 halts the rollout: wave 3 gets no write at all and its items are not done naming wave 2; once fixed, the same command finishes with every document imported exactly once."""
    journal = tmp_path / "j.jsonl"
    async with running_fake(FakeConfig.demo(4)) as env:
        settings = fleet(env)
        untouched = tenant_state(env, "tenant-4")
        # tenant-2 answers every API request with a 400: its wave fails.
        env.fake.set_faults("tenant-2", FaultConfig(error_rate=1.0, error_statuses=[400]))
        options = MigrateOptions(sources=[str(SAMPLES)], journal=str(journal), activation="always")
        report = await migrate(settings, options)
        assert not report.ok
        assert tenant_state(env, "tenant-4") == untouched
        held = [i for i in report.items if i.tenant == "tenant-4"]
        assert held and all(i.status in ("deferred", "skipped") for i in held)
        assert all("wave 2 halted" in (i.error or "") for i in held if i.status == "deferred")
        assert env.import_counts("tenant-1") == expected_names()
        assert env.import_counts("tenant-3") == expected_names()  # same wave: it ran
        halts = [r for r in records(journal, "wave") if r["step"] == "halted"]
        assert [h["wave"] for h in halts] == [2] and [f["tenant"] for f in halts[0]["failed"]] == [
            "tenant-2"
        ]
        assert any("wave 2" in n and "halted" in n for n in report.notices)

        env.fake.set_faults("tenant-2", FaultConfig())
        again = await migrate(settings, options)
        assert again.ok, [i for i in again.items if i.status not in ("imported", "skipped")]
        for tenant in ("tenant-1", "tenant-2", "tenant-3", "tenant-4"):
            assert env.import_counts(tenant) == expected_names(), tenant
        steps = [(r["wave"], r["step"]) for r in records(journal, "wave")]
        assert steps[-6:] == [
            (1, "started"),
            (1, "passed"),
            (2, "started"),
            (2, "passed"),
            (3, "started"),
            (3, "passed"),
        ]
        settled = await migrate(settings, options)
        assert settled.ok
        for tenant in ("tenant-1", "tenant-2", "tenant-3", "tenant-4"):
            assert env.import_counts(tenant) == expected_names(), tenant


async def test_tolerance_lets_a_wave_pass_with_that_many_failed_tenants(tmp_path: Path) -> None:
    """With failure_tolerance 1, one failed tenant in wave 2 does not halt: wave 3 is migrated."""
    async with running_fake(FakeConfig.demo(4)) as env:
        env.fake.set_faults("tenant-3", FaultConfig(error_rate=1.0, error_statuses=[400]))
        report = await migrate(
            fleet(env, failure_tolerance=1),
            MigrateOptions(sources=[str(SAMPLES)], journal=str(tmp_path / "j.jsonl")),
        )
        assert not report.ok  # tenant-3's items are not done
        assert env.import_counts("tenant-4") == expected_names()
        assert [r["step"] for r in records(tmp_path / "j.jsonl", "wave") if r["wave"] == 2] == [
            "started",
            "passed",
        ]


async def test_rollback_restores_previous_versions_deactivates_created_and_is_idempotent(
    tmp_path: Path,
) -> None:
    """rollback makes the version active before the run active again, sets what the run created Inactive, and a second rollback sends no write."""
    journal = tmp_path / "j.jsonl"
    async with running_fake() as env:
        def_id, old_version = seed_older(env, "tenant-1")
        report = await migrate(
            env.settings,
            MigrateOptions(sources=[str(SAMPLES)], journal=str(journal), activation="always"),
        )
        assert report.ok
        assert definitions(env, "tenant-1")[SEEDED]["active_version"]["id"] != old_version
        # every activation was preceded by a record of what was active before it
        first = next(r for r in records(journal, "activating") if r.get("definition_id") == def_id)
        assert first["previous_version_id"] == old_version and first["previous_status"] == "Active"

        rolled = await rollback_from_journal(env.settings, str(journal))
        assert rolled.ok
        for tenant in ("tenant-1", "tenant-2", "tenant-3"):
            for name, d in definitions(env, tenant).items():
                if tenant == "tenant-1" and name == SEEDED:
                    assert d["active_version"]["id"] == old_version and d["status"] == "Active"
                else:
                    assert d["status"] == "Inactive", (tenant, name)
        after = {t: tenant_state(env, t) for t in ("tenant-1", "tenant-2", "tenant-3")}
        second = await rollback_from_journal(env.settings, str(journal))
        assert second.ok and {i.status for i in second.items} == {"unchanged"}
        assert {t: tenant_state(env, t) for t in after} == after  # no write: no updatedAt moved

        gone = await rollback_from_journal(env.settings, str(journal), delete_created=True)
        assert gone.ok
        assert list(definitions(env, "tenant-1")) == [SEEDED]
        assert definitions(env, "tenant-2") == {}
        last = await rollback_from_journal(env.settings, str(journal), delete_created=True)
        assert {i.status for i in last.items} == {"unchanged"}


async def test_rollback_of_a_journal_that_activated_nothing_says_so(tmp_path: Path) -> None:
    """`migrator rollback` on a journal whose runs switched nothing on says so and exits 0."""

    journal = tmp_path / "j.jsonl"
    async with running_fake() as env:
        assert (
            await migrate(
                env.settings, MigrateOptions(sources=[str(SAMPLES)], journal=str(journal))
            )
        ).ok
        before = tenant_state(env, "tenant-1")
        run = await run_cli(env, tmp_path, "rollback", "--journal", str(journal))
        assert run.code == 0, run.err
        assert "records no activation: nothing to roll back" in run.out
        assert tenant_state(env, "tenant-1") == before


async def test_a_rollback_killed_midway_then_run_again_ends_in_the_same_state(
    tmp_path: Path,
) -> None:
    """SIGKILLing `migrator rollback` after its first journaled step, then rolling back again, ends exactly as one uninterrupted rollback would."""
    journal = tmp_path / "j.jsonl"
    async with running_fake() as env:
        def_id, old_version = seed_older(env, "tenant-1")
        assert (
            await migrate(
                env.settings,
                MigrateOptions(sources=[str(SAMPLES)], journal=str(journal), activation="always"),
            )
        ).ok
        config = tmp_path / "migrator.toml"
        variables = write_config_file(config, env)
        for tenant in ("tenant-1", "tenant-2", "tenant-3"):
            env.fake.set_faults(tenant, FaultConfig(latency=0.05))
        args = [
            sys.executable,
            "-m",
            "migrator.cli",
            "rollback",
            "--journal",
            str(journal),
            "--config",
            str(config),
        ]
        process = await anyio.open_process(args, env={**os.environ, **variables}, cwd=ROOT)
        try:
            await wait_for_record(journal, b'"type":"rollback"')
        finally:
            process.send_signal(signal.SIGKILL)
            await process.wait()
        assert process.returncode == -signal.SIGKILL
        steps = Counter(r["step"] for r in records(journal, "rollback"))
        assert steps["intent"] >= 1 and steps["done"] < sum(
            1 for _ in records(journal, "activating")
        )
        for tenant in ("tenant-1", "tenant-2", "tenant-3"):
            env.fake.set_faults(tenant, FaultConfig())
        again = await anyio.run_process(
            args, env={**os.environ, **variables}, cwd=ROOT, check=False
        )
        assert again.returncode == 0, again.stderr.decode()
        for tenant in ("tenant-1", "tenant-2", "tenant-3"):
            for name, d in definitions(env, tenant).items():
                if tenant == "tenant-1" and name == SEEDED:
                    assert d["active_version"]["id"] == old_version and d["status"] == "Active"
                else:
                    assert d["status"] == "Inactive", (tenant, name)
        assert def_id in env.fake.state.list_definitions("tenant-1", {})


async def test_rollout_needs_a_journal_and_plan_shows_the_waves(tmp_path: Path) -> None:
    """A rollout without --journal is refused before any request; `migrator plan` lists the waves."""
    from migrator.core.errors import MigratorError

    async with running_fake(FakeConfig.demo(4)) as env:
        with pytest.raises(MigratorError, match="needs --journal"):
            await migrate(fleet(env), MigrateOptions(sources=[str(SAMPLES)]))
        assert env.fake.ledger() == []
        config = tmp_path / "migrator.toml"
        write_config_file(config, env)
        with config.open("a") as fh:
            fh.write('\n[rollout]\nwaves = [["tenant-1"], ["tenant-2", "tenant-3"]]\n')
        run = await run_cli(env, tmp_path, "plan", str(SAMPLES), config=config, cwd=ROOT)
        assert run.code == 0, run.err
        assert "wave 1 (tenant-1): tenant-1" in run.out
        assert "wave 2 (tenant-2, tenant-3): tenant-2, tenant-3" in run.out
        assert "wave 3 (tenants no wave names): tenant-4" in run.out


async def wait_for_record(journal: Path, marker: bytes) -> None:
    """Return once the journal (written by another process) holds `marker`; 60 s at most."""
    with anyio.fail_after(60):
        while marker not in journal.read_bytes():  # noqa: ASYNC110 - another process writes it
            await anyio.sleep(0.02)


def smoke_fleet(env: Env, waves: Any = WAVES, **knobs: Any) -> Settings:
    rollout = RolloutConfig(
        waves, smoke={SEEDED: SmokeRun(SEEDED, {"accountId": "A00000001"}, 60.0)}, **knobs
    )
    return replace(env.settings, rollout=rollout)


async def test_smoke_runs_pass_are_journaled_and_not_run_again_on_resume(tmp_path: Path) -> None:
    """After each wave activates, the smoke workflow runs in every tenant that switched it on; a second run of the command, with nothing switched on, runs none."""
    journal = tmp_path / "j.jsonl"
    config = replace(FakeConfig.demo(3), run_seconds=0.05)
    async with running_fake(config) as env:
        settings = smoke_fleet(env, (("tenant-1",), ("tenant-2", "tenant-3")))
        options = MigrateOptions(sources=[str(SAMPLES)], journal=str(journal), activation="always")
        report = await migrate(settings, options)
        assert report.ok, report.notices
        smokes = records(journal, "smoke")
        assert sorted((s["tenant"], s["wave"], s["ok"]) for s in smokes) == [
            ("tenant-1", 1, True),
            ("tenant-2", 2, True),
            ("tenant-3", 2, True),
        ]
        assert sum("smoke run of" in n and "passed" in n for n in report.notices) == 3
        again = await migrate(settings, options)
        assert again.ok and len(records(journal, "smoke")) == 3


async def test_a_failed_smoke_run_halts_and_rolls_the_wave_back(tmp_path: Path) -> None:
    """A smoke run ending with an error task fails its tenant: the wave halts, rollback_on_halt puts that wave's previous versions back, the next wave is untouched; fixed, the same command carries the rollout on."""
    journal = tmp_path / "j.jsonl"
    config = replace(FakeConfig.demo(4), run_seconds=0.05)
    async with running_fake(config) as env:
        _, old_version = seed_older(env, "tenant-2")
        env.fake.set_tenant("tenant-2", failing_runs=[SEEDED])
        untouched = tenant_state(env, "tenant-4")
        settings = smoke_fleet(env, rollback_on_halt=True)
        options = MigrateOptions(sources=[str(SAMPLES)], journal=str(journal), activation="always")
        report = await migrate(settings, options)
        assert not report.ok
        failed = [i for i in report.items if i.action == "smoke"]
        assert [(i.tenant, i.status) for i in failed] == [("tenant-2", "failed")]
        assert "error" in (failed[0].error or "")
        assert tenant_state(env, "tenant-4") == untouched
        # wave 2 rolled back: tenant-2's previous version is live again, tenant-3's new ones are off
        back = definitions(env, "tenant-2")
        assert back[SEEDED]["active_version"]["id"] == old_version
        assert all(d["status"] == "Inactive" for n, d in back.items() if n != SEEDED)
        assert all(d["status"] == "Inactive" for d in definitions(env, "tenant-3").values())
        assert all(d["status"] == "Active" for d in definitions(env, "tenant-1").values())
        assert [r["step"] for r in records(journal, "rollback")].count("done") >= 1

        env.fake.set_tenant("tenant-2", failing_runs=[])
        again = await migrate(settings, options)
        assert again.ok, [i for i in again.items if i.status != "skipped"][:3]
        for tenant in ("tenant-1", "tenant-2", "tenant-3", "tenant-4"):
            assert env.import_counts(tenant) == expected_names(), tenant
            assert all(d["status"] == "Active" for d in definitions(env, tenant).values()), tenant
        ok_smokes = {(s["tenant"], s["ok"]) for s in records(journal, "smoke")}
        assert ("tenant-2", True) in ok_smokes and ("tenant-4", True) in ok_smokes


async def test_a_refused_import_halts_and_retry_failed_then_carries_the_rollout_on(
    tmp_path: Path,
) -> None:
    """A tenant that refuses one import (400) halts wave 2; once the cause is fixed, --retry-failed resends it and the plain command then finishes the rollout with each document once."""
    journal = tmp_path / "j.jsonl"
    async with running_fake(FakeConfig.demo(4)) as env:
        env.fake.set_tenant("tenant-3", reject_imports=[SEEDED])
        untouched = tenant_state(env, "tenant-4")
        settings = fleet(env)
        options = MigrateOptions(sources=[str(SAMPLES)], journal=str(journal))
        report = await migrate(settings, options)
        assert not report.ok and tenant_state(env, "tenant-4") == untouched
        env.fake.set_tenant("tenant-3", reject_imports=[])
        blocked = await migrate(settings, options)  # failed for good until --retry-failed
        assert not blocked.ok and tenant_state(env, "tenant-4") == untouched
        retried = await migrate(settings, replace(options, retry_failed=True))
        assert env.import_counts("tenant-3") == expected_names()
        # --retry-failed sends only what failed: wave 3's items are left for the plain command,
        # and a run that leaves work undone never says ok (issue 14 #16).
        left = {i.tenant for i in retried.items if i.status == "deferred"}
        assert not retried.ok and left == {"tenant-4"}
        assert tenant_state(env, "tenant-4") == untouched
        carried_on = await migrate(settings, options)
        assert carried_on.ok
        for tenant in ("tenant-1", "tenant-2", "tenant-3", "tenant-4"):
            assert env.import_counts(tenant) == expected_names(), tenant


async def test_activate_goes_wave_by_wave_and_a_failed_smoke_run_holds_later_waves(
    tmp_path: Path,
) -> None:
    """`activate` under [rollout] switches on one wave at a time: a smoke failure in wave 2 leaves wave 3 unswitched (no write), and activating again once fixed finishes."""
    from migrator.run.activate import activate_from_journal

    journal = tmp_path / "j.jsonl"
    config = replace(FakeConfig.demo(4), run_seconds=0.05)
    async with running_fake(config) as env:
        assert (
            await migrate(
                env.settings, MigrateOptions(sources=[str(SAMPLES)], journal=str(journal))
            )
        ).ok
        env.fake.set_tenant("tenant-3", failing_runs=[SEEDED])
        untouched = tenant_state(env, "tenant-4")
        settings = smoke_fleet(env)
        report = await activate_from_journal(settings, str(journal))
        assert not report.ok
        assert tenant_state(env, "tenant-4") == untouched
        held = [i for i in report.items if i.tenant == "tenant-4"]
        assert held and all(
            i.status == "deferred" and "wave 2 halted" in (i.error or "") for i in held
        )
        assert all(d["status"] == "Active" for d in definitions(env, "tenant-2").values())

        env.fake.set_tenant("tenant-3", failing_runs=[])
        again = await activate_from_journal(settings, str(journal))
        assert again.ok, again.notices
        assert all(d["status"] == "Active" for d in definitions(env, "tenant-4").values())
        smoked = {(s["tenant"], s["ok"]) for s in records(journal, "smoke")}
        assert ("tenant-3", False) in smoked and ("tenant-3", True) in smoked


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ('waves = [["tenant-1"]]\nspeed = 2', "rollout.speed"),
        ('waves = [["eu-*"]]', "rollout.waves[0]"),
        ('waves = [["tenant-1"], ["tenant-1"]]', "rollout.waves[1]"),
        ('waves = [["*"]]\nfailure_tolerance = -1', "rollout.failure_tolerance"),
        (
            'waves = [["*"]]\n[rollout.smoke."No Such Workflow"]\ntimeout_s = 5',
            "rollout.smoke.No Such Workflow",
        ),
    ],
)
async def test_bad_rollout_config_exits_2_with_one_line_before_any_request(
    tmp_path: Path, table: str, key: str
) -> None:
    """Bad [rollout] input is one stderr line naming the config file and key, exit 2, and the fake saw no API request."""
    async with running_fake() as env:
        config = tmp_path / "migrator.toml"
        write_config_file(config, env)
        with config.open("a") as fh:
            fh.write(f"\n[rollout]\n{table}\n")
        run = await run_cli(
            env,
            tmp_path,
            "migrate",
            str(SAMPLES),
            "--journal",
            str(tmp_path / "j.jsonl"),
            config=config,
            cwd=ROOT,
        )
        assert run.code == 2, run.err
        lines = run.err.strip().splitlines()
        assert len(lines) == 1 and str(config) in lines[0] and key in lines[0], lines
        assert "Traceback" not in run.err
        assert env.fake.requests == 0 and not (tmp_path / "j.jsonl").exists()


async def test_status_after_a_halt_still_counts_the_held_wave_after_a_rollback(
    tmp_path: Path,
) -> None:
    """A rollback (or activate) run appended to a halted rollout's journal does not hide the held wave's pending items from `status`."""
    from migrator.run.status import status_data

    journal = tmp_path / "j.jsonl"
    async with running_fake(FakeConfig.demo(4)) as env:
        env.fake.set_faults("tenant-2", FaultConfig(error_rate=1.0, error_statuses=[400]))
        options = MigrateOptions(sources=[str(SAMPLES)], journal=str(journal), activation="always")
        assert not (await migrate(fleet(env), options)).ok
        pending = status_data(str(journal))["tenants"]["tenant-4"]["counts"]["pending"]
        assert pending > 0
        assert (await rollback_from_journal(env.settings, str(journal))).ok
        data = status_data(str(journal))
        assert data["tenants"]["tenant-4"]["counts"]["pending"] == pending
        assert data["last_run_counts"].get("deferred", 0) > 0


async def test_a_stop_during_a_wave_is_not_a_halt(tmp_path: Path) -> None:
    """A run asked to stop while wave 1 runs leaves that wave unjudged (no halt record), starts no later wave, and the same command then finishes every tenant once."""
    from contextlib import asynccontextmanager

    from migrator.store.journal import Journal

    journal = tmp_path / "j.jsonl"
    stopping = anyio.Event()

    @asynccontextmanager
    async def stop_once_wave_1_starts(path: Any, fields: Any, **kw: Any) -> Any:
        async with Journal.open(path, fields, **kw) as inner:
            append = inner.append

            async def watched(type_: str, **f: Any) -> Any:
                record = await append(type_, **f)
                if type_ == "wave" and f.get("step") == "started":
                    stopping.set()  # the Ctrl-C arrives while wave 1 runs
                return record

            inner.append = watched  # type: ignore[method-assign]
            yield inner

    async with running_fake(FakeConfig.demo(4)) as env:
        options = MigrateOptions(sources=[str(SAMPLES)], journal=str(journal))
        report = await migrate(
            fleet(env), options, stopping=stopping, journal_factory=stop_once_wave_1_starts
        )
        assert report.interrupted and not report.ok
        assert [(r["wave"], r["step"]) for r in records(journal, "wave")] == [(1, "started")]
        assert env.import_counts("tenant-4") == {} and env.import_counts("tenant-2") == {}
        assert (await migrate(fleet(env), options)).ok
        for tenant in ("tenant-1", "tenant-2", "tenant-3", "tenant-4"):
            assert env.import_counts(tenant) == expected_names(), tenant


async def test_the_cli_says_which_wave_halted_and_exits_1(tmp_path: Path) -> None:
    """`migrator migrate` under [rollout] prints each wave's verdict and the halt's reason, and exits 1 on a halt."""
    async with running_fake(FakeConfig.demo(4)) as env:
        env.fake.set_faults("tenant-2", FaultConfig(error_rate=1.0, error_statuses=[400]))
        config = tmp_path / "migrator.toml"
        write_config_file(config, env)
        with config.open("a") as fh:
            fh.write(
                '\n[rollout]\nwaves = [["tenant-1"], ["tenant-2", "tenant-3"], ["tenant-4"]]\n'
            )
        journal = str(tmp_path / "j.jsonl")
        run = await run_cli(
            env, tmp_path, "migrate", str(SAMPLES), "--journal", journal, config=config, cwd=ROOT
        )
        assert run.code == 1, run.err
        assert "note: wave 1 (tenant-1): passed" in run.out
        assert (
            "note: wave 2 (tenant-2, tenant-3) halted the rollout: 1 of 2 tenant(s) failed"
            in run.out
        )
        assert "tenant-4: " in run.out and "wave 2 halted" in run.out
        assert env.import_counts("tenant-4") == {}


async def test_migrate_switches_on_again_what_a_rollback_put_back(tmp_path: Path) -> None:
    """`migrate --activate` after a rollback switches the new version on again, and a second
    rollback puts it back again: each PATCH is keyed by the state it found (updatedAt included),
    so none is answered from the server's memory of an earlier switch to the same state."""
    journal = tmp_path / "j.jsonl"
    async with running_fake(FakeConfig.demo(1)) as env:
        _, old_version = seed_older(env, "tenant-1")
        options = MigrateOptions(sources=[str(SAMPLES)], journal=str(journal))
        assert (await migrate(env.settings, options)).ok  # imported, not switched on
        activating = replace(options, activation="always")
        assert (await migrate(env.settings, activating)).ok  # switched on by PATCH
        new_version = definitions(env, "tenant-1")[SEEDED]["active_version"]["id"]
        assert new_version != old_version
        assert (await rollback_from_journal(env.settings, str(journal))).ok
        assert definitions(env, "tenant-1")[SEEDED]["active_version"]["id"] == old_version
        again = await migrate(env.settings, activating)
        assert again.ok
        seeded = [(i.status, i.reason) for i in again.items if i.workflow_name == SEEDED]
        assert definitions(env, "tenant-1")[SEEDED]["active_version"]["id"] == new_version, seeded
        assert (await rollback_from_journal(env.settings, str(journal))).ok
        assert definitions(env, "tenant-1")[SEEDED]["active_version"]["id"] == old_version
