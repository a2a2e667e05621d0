"""`migrator rollback` end to end over real HTTP against the fake (issue 21 items 1, 2 and the
test gaps; issue 22 items 1 and 5): the preview is the plan, what migrator did not make or did
not switch on is left alone, two runs go back to before the first, one voice in the output.

What the run does is read from the fake's own write log (every PATCH and DELETE that took
effect), never from what migrator says.
"""

from __future__ import annotations

import json
from collections import Counter
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from migrator.fake import FakeConfig
from migrator.run.migrate import migrate
from migrator.run.options import MigrateOptions
from migrator.store.journal import read_journal
from tests.builders import small_export
from tests.conftest import ROOT
from tests.helpers import Env, run_migrator, running_fake, write_config_file

pytestmark = pytest.mark.anyio

T = "tenant-1"
# One definition for each action a rollback can take (see `every_action` below).
NAMES = ("Reactivate", "Deactivate", "Delete", "Keep", "Hotfix", "Undone")


async def cli(env: Env, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """`migrator ARGS --config ...` in a child process: exit code, stdout, stderr."""
    config = tmp_path / "migrator.toml"
    variables = write_config_file(config, env)
    run = await run_migrator([*args, "--config", str(config)], variables, ROOT)
    return run.code, run.out, run.err


def sources(tmp_path: Path, names: tuple[str, ...], marker: str = "new") -> str:
    folder = tmp_path / f"src-{marker}"
    folder.mkdir(exist_ok=True)
    for name in names:
        doc = small_export(name)
        doc["workflow"]["description"] = f"the {marker} release"
        (folder / f"{name}.json").write_bytes(orjson.dumps(doc))
    return str(folder)


def seed(env: Env, name: str, *, activate: bool) -> tuple[int, int]:
    """A definition that was there before the rollout: (definition id, its version id)."""
    doc = small_export(name)
    doc["workflow"]["description"] = "what was there before"
    return env.fake.state.add_workflow(T, doc, version="0.0.1", activate=activate)  # type: ignore[no-any-return]


def by_name(env: Env) -> dict[str, dict[str, Any]]:
    state = env.fake.state
    return {
        state.definition_json(T, d)["name"]: state.definition_json(T, d)
        for d in state.list_definitions(T, {})
    }


def written_actions(log: list[dict[str, Any]]) -> dict[int, str]:
    """The fake's write log in rollback's words: definition id → action."""
    out = {}
    for write in log:
        if write["method"] == "DELETE":
            action = "delete"
        elif "active_workflow_version_id" in write["body"]:
            action = "reactivate"
        else:
            assert write["body"] == {"status": "Inactive"}, write
            action = "deactivate"
        assert write["definition_id"] not in out, "one write per definition"
        out[write["definition_id"]] = action
    return out


async def every_action(env: Env, tmp_path: Path, journal: Path) -> dict[str, int]:
    """A migration, then hand edits, so that a rollback with --delete-created takes each of its
    five actions: reactivate, deactivate, delete, deactivate-not-delete, skip, none."""
    ids = {
        "Reactivate": seed(env, "Reactivate", activate=True)[0],
        "Deactivate": seed(env, "Deactivate", activate=False)[0],  # no active version before
        "Hotfix": seed(env, "Hotfix", activate=True)[0],
    }
    undone_id, undone_old = seed(env, "Undone", activate=True)
    ids["Undone"] = undone_id
    options = MigrateOptions(
        sources=[sources(tmp_path, NAMES)], journal=str(journal), activation="always"
    )
    assert (await migrate(env.settings, options)).ok
    now = by_name(env)
    ids["Delete"], ids["Keep"] = now["Delete"]["id"], now["Keep"]["id"]
    state = env.fake.state
    hand = small_export("Keep")
    hand["workflow"]["description"] = "imported by hand"
    state.add_workflow(T, hand, version="9.0.0", definition_id=ids["Keep"])  # not activated
    fix = small_export("Hotfix")
    fix["workflow"]["description"] = "a hotfix, imported and switched on by hand"
    state.add_workflow(T, fix, version="9.0.0", definition_id=ids["Hotfix"], activate=True)
    state.patch_definition(T, undone_id, {"active_workflow_version_id": undone_old})
    state.write_log.clear()
    return ids


async def test_the_dry_run_lists_exactly_the_actions_the_run_takes(tmp_path: Path) -> None:
    """On a journal where every action occurs, `rollback --dry-run --delete-created --json` sends no write, journals nothing, and lists per definition the very action the real run then takes, as the fake's write log records it."""
    journal = tmp_path / "j.jsonl"
    async with running_fake(FakeConfig.demo(1)) as env:
        ids = await every_action(env, tmp_path, journal)
        patches = env.fake.calls[(T, "patch_workflow")]
        journaled = journal.read_bytes()
        code, out, err = await cli(
            env,
            tmp_path,
            "rollback",
            "--journal",
            str(journal),
            "--dry-run",
            "--delete-created",
            "--json",
        )
        assert code == 1, err  # a definition is left alone: attention needed
        assert env.fake.state.write_log == []  # the preview writes nothing ...
        assert env.fake.calls[(T, "patch_workflow")] == patches
        assert env.fake.calls[(T, "delete_workflow")] == 0
        assert journal.read_bytes() == journaled  # and journals nothing
        preview = {i["target_workflow_id"]: i["action"] for i in json.loads(out)["items"]}
        assert preview == {
            ids["Reactivate"]: "reactivate",
            ids["Deactivate"]: "deactivate",
            ids["Delete"]: "delete",
            ids["Keep"]: "deactivate",
            ids["Hotfix"]: "skip",
            ids["Undone"]: "none",
        }

        code, out, err = await cli(
            env, tmp_path, "rollback", "--journal", str(journal), "--delete-created", "--json"
        )
        assert code == 1, err
        items = {i["target_workflow_id"]: i for i in json.loads(out)["items"]}
        assert {d: i["action"] for d, i in items.items()} == preview  # ... and is the plan
        writes = {d: a for d, a in preview.items() if a not in ("none", "skip")}
        assert written_actions(env.fake.state.write_log) == writes
        assert {d: i["status"] for d, i in items.items() if d in writes} == dict.fromkeys(
            writes, "rolled_back"
        )
        keep = items[ids["Keep"]]
        assert "not deleted: holds version(s) migrator did not import: 9.0.0" in keep["reason"]
        after = by_name(env)
        assert after["Keep"]["status"] == "Inactive" and "Delete" not in after
        hotfix = after["Hotfix"]["active_version"]
        assert hotfix["version"] == "9.0.0"  # the hand-made hotfix is still live
        assert items[ids["Hotfix"]]["status"] == "skipped"
        assert items[ids["Hotfix"]]["reason"] == (
            f"changed since the rollout: version id {hotfix['id']} is active"
        )


async def test_force_restores_a_definition_changed_since_the_rollout(tmp_path: Path) -> None:
    """`rollback` leaves a hand-activated hotfix alone and exits 1 naming it; `--force` puts the version from before the rollout back and exits 0."""
    journal = tmp_path / "j.jsonl"
    async with running_fake(FakeConfig.demo(1)) as env:
        def_id, old = seed(env, "Hotfix", activate=True)
        options = MigrateOptions(
            sources=[sources(tmp_path, ("Hotfix",))], journal=str(journal), activation="always"
        )
        assert (await migrate(env.settings, options)).ok
        fix = small_export("Hotfix")
        fix["workflow"]["description"] = "hotfix"
        _, fix_id = env.fake.state.add_workflow(
            T, fix, version="9.0.0", definition_id=def_id, activate=True
        )
        code, out, err = await cli(env, tmp_path, "rollback", "--journal", str(journal))
        assert code == 1, err
        assert f"skip: changed since the rollout: version id {fix_id} is active" in out
        assert "migrator rollback: attention needed:" in out
        assert by_name(env)["Hotfix"]["active_version"]["id"] == fix_id
        code, out, err = await cli(env, tmp_path, "rollback", "--journal", str(journal), "--force")
        assert code == 0, out + err
        assert by_name(env)["Hotfix"]["active_version"]["id"] == old
        assert f"forced: changed since the rollout: version id {fix_id} is active" in out


async def test_rolling_back_two_runs_restores_the_version_from_before_the_first(
    tmp_path: Path,
) -> None:
    """Two migrations into one journal, each switching a new version on, then `rollback`: the version active before the FIRST run is live again, not the first run's."""
    journal = tmp_path / "j.jsonl"
    async with running_fake(FakeConfig.demo(1)) as env:
        _, before = seed(env, "Twice", activate=True)
        for release in ("first", "second"):
            options = MigrateOptions(
                sources=[sources(tmp_path, ("Twice",), release)],
                journal=str(journal),
                activation="always",
            )
            assert (await migrate(env.settings, options)).ok
        activations = [r for r in read_journal(journal).records if r.type == "activating"]
        assert activations[0].get("previous_version_id") == before
        first_run_version = activations[1].get("previous_version_id")
        assert len(activations) == 2 and first_run_version not in (None, before)
        code, out, err = await cli(env, tmp_path, "rollback", "--journal", str(journal))
        assert code == 0, out + err
        assert by_name(env)["Twice"]["active_version"]["id"] == before


async def test_rollback_speaks_its_own_words_once(tmp_path: Path) -> None:
    """The JSON report counts only rollback's statuses (no `imported`, `blocked`), from the same items the table counts; no row is repeated as a log line; a second rollback after --delete-created is `unchanged` without a `zuora call failed` line."""
    journal = tmp_path / "j.jsonl"
    async with running_fake(FakeConfig.demo(1)) as env:
        assert (
            await migrate(
                env.settings,
                MigrateOptions(
                    sources=[sources(tmp_path, ("One", "Two"))],
                    journal=str(journal),
                    activation="always",
                ),
            )
        ).ok
        args = ("rollback", "--journal", str(journal), "--delete-created")
        code, out, err = await cli(env, tmp_path, *args, "--json")
        assert code == 0, err
        report = json.loads(out)
        assert set(report["summary"]) == {
            "rolled_back",
            "unchanged",
            "planned",
            "skipped",
            "failed",
        }
        assert report["summary"] == {
            **dict.fromkeys(report["summary"], 0),
            **Counter(i["status"] for i in report["items"]),
        }
        assert set(report["tenants"][T]) == set(report["summary"])
        assert "rolled back" not in err  # each write is said once, on stdout
        code, out, err = await cli(env, tmp_path, *args)
        assert code == 0, out + err
        assert "zuora call failed" not in err and "404" not in err, err
        assert (
            "migrator rollback: ok: rolled back 0, unchanged 2, planned 0, skipped 0, failed 0"
            in out
        )
        rows = [line for line in out.splitlines() if line.startswith(T)]
        assert rows and rows[0].split()[1:] == ["0", "2", "0", "0", "0"]


async def test_rollback_on_halt_leaves_a_definition_changed_meanwhile_alone(tmp_path: Path) -> None:
    """A halt's automatic rollback obeys the same rule: a definition whose active version was changed by hand after migrator switched it on is left alone, and the run says so as a failed item."""
    from dataclasses import replace

    from migrator.core.rollout import RolloutConfig, SmokeRun
    from migrator.store.journal import Journal

    journal = tmp_path / "j.jsonl"
    config = replace(FakeConfig.demo(1), run_seconds=0.05)
    async with running_fake(config) as env:
        def_id, old = seed(env, "Hotfix", activate=True)
        env.fake.set_tenant(T, failing_runs=["Hotfix"])
        hotfix: list[int] = []

        @asynccontextmanager
        async def hand_edit_before_the_verdict(path: Any, fields: Any, **kw: Any) -> Any:
            async with Journal.open(path, fields, **kw) as inner:
                append = inner.append

                async def watched(type_: str, **f: Any) -> Any:
                    if type_ == "smoke" and not hotfix:  # activated; the verdict comes next
                        doc = small_export("Hotfix")
                        doc["workflow"]["description"] = "hotfix"
                        hotfix.append(
                            env.fake.state.add_workflow(
                                T, doc, version="9.0.0", definition_id=def_id, activate=True
                            )[1]
                        )
                    return await append(type_, **f)

                inner.append = watched  # type: ignore[method-assign]
                yield inner

        rollout = RolloutConfig(
            ((T,),), rollback_on_halt=True, smoke={"Hotfix": SmokeRun("Hotfix", {}, 60.0)}
        )
        report = await migrate(
            replace(env.settings, rollout=rollout),
            MigrateOptions(
                sources=[sources(tmp_path, ("Hotfix",))],
                journal=str(journal),
                activation="always",
            ),
            journal_factory=hand_edit_before_the_verdict,
        )
        assert not report.ok and hotfix
        assert by_name(env)["Hotfix"]["active_version"]["id"] == hotfix[0] != old
        left = [i for i in report.items if i.action == "rollback"]
        assert [(i.status, i.target_workflow_id) for i in left] == [("failed", def_id)]
        assert f"changed since the rollout: version id {hotfix[0]} is active" in (
            left[0].error or ""
        )
        assert "--force" in (left[0].error or "")
