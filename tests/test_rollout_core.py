"""The pure rollout core (issue 16): the [rollout] table, waves, halts, due smoke runs, rollback steps."""

from __future__ import annotations

import fnmatch
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from migrator.core.config import parse_settings
from migrator.core.errors import ConfigError
from migrator.core.rollback import (
    Found,
    RollbackAction,
    RollbackLedger,
    RollbackTarget,
    rollback_step,
)
from migrator.core.rollout import (
    RolloutConfig,
    SmokeLedger,
    Wave,
    WaveVerdict,
    assign_waves,
    check_smoke_sources,
    judge_run,
    parse_rollout,
    peer_verdict,
    peer_wave_verdict,
    tenant_failure,
    wave_number,
)

TENANTS = ["canary", "eu-1", "eu-2", "us-1", "us-2", "ap-1"]


def config(rollout: Any) -> dict[str, Any]:
    tenants = {
        n: {"base_url": f"https://{n}.example", "client_id": "c", "client_secret": "s"}
        for n in TENANTS
    }
    return {"tenants": tenants, "rollout": rollout}


def test_rollout_table_parses_into_settings() -> None:
    """A full [rollout] table becomes Settings.rollout with its waves, tolerance and smoke runs."""
    s = parse_settings(
        config(
            {
                "waves": [["canary"], ["eu-*", "us-1"], ["*"]],
                "failure_tolerance": 1,
                "rollback_on_halt": True,
                "smoke": {"Daily": {"parameters": {"accountId": "A1"}, "timeout_s": 30}},
            }
        ),
        "f.toml",
        {},
    )
    assert s.rollout is not None
    assert s.rollout.waves == (("canary",), ("eu-*", "us-1"), ("*",))
    assert s.rollout.failure_tolerance == 1 and s.rollout.rollback_on_halt
    assert s.rollout.smoke["Daily"].parameters == {"accountId": "A1"}
    assert s.rollout.smoke["Daily"].timeout_s == 30.0


@pytest.mark.parametrize(
    ("rollout", "key", "words"),
    [
        ({"waves": [["canary"]], "speed": 1}, "rollout.speed", "unknown key"),
        ({"waves": [["nope-*"]]}, "rollout.waves[0]", "matches no configured tenant"),
        (
            {"waves": [["canary"], ["canary", "eu-1"]]},
            "rollout.waves[1]",
            "already named in wave 1",
        ),
        ({"waves": [["canary"]], "failure_tolerance": -1}, "rollout.failure_tolerance", ">= 0"),
        ({"waves": []}, "rollout.waves", "non-empty"),
        (
            {"waves": [["canary"]], "rollback_on_halt": "yes"},
            "rollout.rollback_on_halt",
            "true or false",
        ),
        (
            {"waves": [["canary"]], "smoke": {"W": {"timeout": 3}}},
            "rollout.smoke.W.timeout",
            "unknown key",
        ),
        (
            {"waves": [["canary"]], "smoke": {"W": {"timeout_s": 0}}},
            "rollout.smoke.W.timeout_s",
            "seconds",
        ),
        (
            {"waves": [["canary"]], "smoke": {"W": {"parameters": {"id": 1}}}},
            "rollout.smoke.W.parameters.id",
            "reserved",
        ),
    ],
)
def test_bad_rollout_tables_are_one_line_errors_naming_file_and_key(
    rollout: Any, key: str, words: str
) -> None:
    """Each kind of bad [rollout] input is a ConfigError naming the file and the exact key."""
    with pytest.raises(ConfigError) as info:
        parse_settings(config(rollout), "fleet.toml", {})
    text = str(info.value)
    assert "\n" not in text and "fleet.toml" in text and key in text and words in text


def test_smoke_workflow_no_source_contains_is_refused() -> None:
    """A smoke workflow that no source contains is a ConfigError naming rollout.smoke.NAME."""
    rollout = parse_rollout({"waves": [["*"]], "smoke": {"Ghost": {}}}, "f.toml", TENANTS)
    with pytest.raises(ConfigError, match=r"f\.toml.*rollout\.smoke\.Ghost"):
        check_smoke_sources(rollout, lambda name: name == "Real", "f.toml")
    check_smoke_sources(rollout, lambda name: True, "f.toml")


names = st.lists(st.sampled_from(TENANTS), unique=True)
patterns = st.lists(
    st.lists(st.sampled_from([*TENANTS, "eu-*", "us-?", "*", "[ae]*"]), min_size=1, max_size=3),
    min_size=1,
    max_size=4,
)


@given(patterns, names)
def test_every_selected_tenant_is_in_exactly_one_wave_the_first_that_matches(
    waves: list[list[str]], selected: list[str]
) -> None:
    """assign_waves puts each selected tenant in exactly one wave: the first matching, else last."""
    rollout = RolloutConfig(tuple(tuple(w) for w in waves))
    assigned = assign_waves(rollout, selected)
    seen = [t for w in assigned for t in w.tenants]
    assert sorted(seen) == sorted(selected)
    assert [w.number for w in assigned] == sorted({w.number for w in assigned})
    for wave in assigned:
        for tenant in wave.tenants:
            first = next(
                (
                    i
                    for i, w in enumerate(waves, 1)
                    if any(fnmatch.fnmatchcase(tenant, p) for p in w)
                ),
                len(waves) + 1,
            )
            assert wave.number == first == wave_number(rollout, tenant)


@given(patterns, names, names)
def test_wave_numbers_do_not_depend_on_the_selection(
    waves: list[list[str]], one: list[str], other: list[str]
) -> None:
    """A tenant has the same wave number whatever else is selected (shards agree on waves)."""
    rollout = RolloutConfig(tuple(tuple(w) for w in waves))
    a = {t: w.number for w in assign_waves(rollout, one) for t in w.tenants}
    b = {t: w.number for w in assign_waves(rollout, other) for t in w.tenants}
    for tenant in set(a) & set(b):
        assert a[tenant] == b[tenant]


@given(
    st.integers(0, 5), st.dictionaries(st.sampled_from(TENANTS), st.text(min_size=1), max_size=6)
)
def test_a_wave_halts_exactly_when_more_tenants_fail_than_the_tolerance(
    tolerance: int, failed: dict[str, str]
) -> None:
    """WaveVerdict.halted is len(failed) > tolerance, and its reasons name the wave."""
    verdict = WaveVerdict(Wave(2, tuple(TENANTS), ("*",)), failed, tolerance)
    assert verdict.halted == (len(failed) > tolerance)
    assert "wave 2" in verdict.reason() and "wave 2 halted" in verdict.held_reason()


def test_tenant_failure_names_every_cause() -> None:
    """A tenant fails on failed/blocked/deferred items, a verify difference or a smoke failure."""
    assert tenant_failure({"imported": 3, "skipped": 2}) is None
    assert tenant_failure({"deferred": 1}) == "1 deferred"
    why = tenant_failure({"failed": 1, "blocked": 2}, unverified=True, smoke_failures=["W: x"])
    assert why == "1 failed, 2 blocked, --verify found a difference, smoke run W: x"


def test_smoke_is_due_after_an_activation_until_a_run_passes() -> None:
    """A smoke run is due once its workflow is switched on and stays due until one passes."""
    ledger = SmokeLedger()
    assert ledger.due("t", ["W"]) == []
    ledger.note(
        "activating", 1, {"tenant": "t", "name": "W", "definition_id": None, "created": True}
    )
    ledger.note("committed", 2, {"tenant": "t", "name": "W", "target_definition_id": 9})
    assert ledger.due("t", ["W", "Other"]) == [("W", 9)]
    ledger.note("smoke", 3, {"tenant": "t", "name": "W", "ok": False})
    assert ledger.due("t", ["W"]) == [("W", 9)]
    ledger.note("smoke", 4, {"tenant": "t", "name": "W", "ok": True})
    assert ledger.due("t", ["W"]) == []
    ledger.note("activating", 5, {"tenant": "t", "name": "W", "definition_id": 9})
    assert ledger.due("t", ["W"]) == [("W", 9)]
    assert ledger.due("u", ["W"]) == []


def test_judge_run_reads_error_tasks_and_finished() -> None:
    """An error task fails a run at once; Finished without one passes; otherwise it is going."""
    assert judge_run("Processing", {"error": 0})[0] is None
    assert judge_run("Processing", {"error": 1}) == (False, "1 task(s) ended in error")
    assert judge_run("Finished", {"error": 0, "success": 3})[0] is True
    assert judge_run("Stopped", {})[0] is False


activations = st.lists(
    st.tuples(
        st.sampled_from(["a", "b"]),
        st.integers(1, 3),
        st.one_of(st.none(), st.integers(100, 110)),
        st.sampled_from(["Active", "Inactive"]),
    ),
    max_size=12,
)


@given(activations, st.lists(st.tuples(st.sampled_from(["a", "b"]), st.integers(1, 5)), max_size=4))
def test_rollback_targets_are_the_first_activation_or_the_creation(
    acts: list[tuple[str, int, int | None, str]], creates: list[tuple[str, int]]
) -> None:
    """Each changed definition has one target: created wins, else the first activation's before-state."""
    ledger = RollbackLedger()
    for tenant, def_id, prev, status in acts:
        ledger.note(
            "activating",
            {
                "tenant": tenant,
                "definition_id": def_id,
                "name": "W",
                "previous_version_id": prev,
                "previous_status": status,
            },
        )
    for tenant, def_id in creates:
        ledger.note("created", {"tenant": tenant, "definition_id": def_id, "name": "W"})
    targets = ledger.targets()
    keys = [(t.tenant, t.definition_id) for t in targets]
    assert len(keys) == len(set(keys)) == len({(a[0], a[1]) for a in acts} | set(creates))
    for t in targets:
        if (t.tenant, t.definition_id) in set(creates):
            assert t.created
        else:
            first = next(a for a in acts if (a[0], a[1]) == (t.tenant, t.definition_id))
            assert (t.version_id, t.status) == (first[2], first[3])
    assert all(t.tenant == "a" for t in ledger.targets(["a"]))


@given(
    st.booleans(),
    st.one_of(st.none(), st.integers(1, 4)),
    st.sampled_from(["Active", "Inactive"]),
    st.booleans(),
    st.one_of(st.none(), st.integers(1, 4)),
    st.sampled_from(["Active", "Inactive"]),
    st.booleans(),
    st.booleans(),
)
def test_a_rollback_step_then_reaches_a_state_needing_no_step(
    created: bool,
    want: int | None,
    want_status: str,
    exists: bool,
    active: int | None,
    status: str,
    delete: bool,
    force: bool,
) -> None:
    """Applying the step a rollback chooses leaves the definition where a second rollback sends nothing."""
    # Versions 3 and 4 are the ones migrator switched on (or imported, for one it created).
    target = RollbackTarget("t", 1, "W", created, want, want_status, ours_ids=frozenset({3, 4}))
    versions = tuple((v, f"0.0.{v}") for v in (1, 2, 3, 4) if v in (active, 3, 4))

    def found() -> Found:
        return Found(exists, active, None, status, versions=versions if exists else None)

    step = rollback_step(target, found(), delete_created=delete, force=force)
    if not step.action.writes:
        return
    assert exists
    if step.action is RollbackAction.DELETE:
        exists, active = False, None
    else:
        active = step.fields.get("active_workflow_version_id", active)
        status = step.fields.get("status", status)
    again = rollback_step(target, found(), delete_created=delete, force=force)
    assert again.action is RollbackAction.NONE, again


def test_a_shard_starts_a_wave_only_when_every_other_shard_passed_the_one_before() -> None:
    """peer_verdict: go once all others passed wave-1; hold on an earlier halt or hold; else wait."""
    assert peer_verdict({2: {1: "passed"}, 3: {1: "passed"}}, 1, 3, 2) == (True, None)
    assert peer_verdict({2: {1: "passed"}}, 1, 3, 2) == (False, None)  # shard 3: nothing yet
    assert peer_verdict({2: {1: "started"}, 3: {1: "passed"}}, 1, 3, 2) == (False, None)
    assert peer_verdict({2: {1: "halted"}, 3: {}}, 1, 3, 3) == (False, "shard 2/3 halted wave 1")
    assert peer_verdict({2: {1: "passed", 2: "held"}}, 1, 2, 3) == (False, "shard 2/2 held wave 2")
    assert peer_verdict({2: {2: "halted"}}, 1, 2, 2) == (False, None)  # a later halt: not yet ours


def test_the_live_display_groups_tenants_under_their_wave_and_its_state() -> None:
    """progress_lines puts each wave's label and state above its tenants' lines, in wave order."""
    from migrator.run.options import Progress
    from migrator.run.progress import progress_lines

    progress = Progress()
    for name in ("canary", "eu-1", "us-1"):
        progress.tenant(name).started = 0.0
    progress.waves = [(1, "wave 1 (canary)", ("canary",)), (2, "wave 2 (*)", ("eu-1", "us-1"))]
    progress.wave_state = {1: "halted: 1 tenant(s) failed", 2: "held: wave 1 halted"}
    lines = progress_lines(progress, 10.0)
    assert lines[0] == "wave 1 (canary): halted: 1 tenant(s) failed"
    assert lines[1].startswith("  canary")
    assert lines[2] == "wave 2 (*): held: wave 1 halted"
    assert [line.split()[0] for line in lines[3:]] == ["eu-1", "us-1"]


def test_tenants_start_in_wave_order() -> None:
    """Under a rollout the selected tenants start (and get their tokens) wave by wave, the
    canary first, unmatched tenants last; without one, by name."""
    from dataclasses import replace as _replace

    from migrator.core.config import Secret, Settings, TenantConfig
    from migrator.run.migrate import select_tenants
    from migrator.run.options import MigrateOptions

    names = ["a-eu", "b-us", "canary", "eu-2", "zz"]
    tenants = {
        n: TenantConfig(n, f"http://127.0.0.1:{i + 1}", n, Secret("s")) for i, n in enumerate(names)
    }
    settings = Settings(file="m.toml", tenants=tenants)
    options = MigrateOptions(sources=["x"])
    assert [t.name for t in select_tenants(settings, options)] == names
    rollout = RolloutConfig((("canary",), ("eu-*", "a-eu")))
    ordered = select_tenants(_replace(settings, rollout=rollout), options)
    assert [t.name for t in ordered] == ["canary", "a-eu", "eu-2", "b-us", "zz"]


def test_a_definition_changed_since_the_rollout_is_left_alone_unless_forced() -> None:
    """An active version neither migrator's nor the one found before is `skip` with the reason; `--force` reactivates; migrator's own or the old one is put back or left as is."""
    target = RollbackTarget("t", 1, "W", False, 10, "Active", ours=frozenset({"2.0"}))
    hotfix = Found(True, 77, "2.1", "Active")
    step = rollback_step(target, hotfix)
    assert step.action is RollbackAction.SKIP and not step.fields
    assert step.reason == "changed since the rollout: version id 77 is active"
    forced = rollback_step(target, hotfix, force=True)
    assert forced.action is RollbackAction.REACTIVATE
    assert dict(forced.fields) == {"active_workflow_version_id": 10, "status": "Active"}
    assert "forced: changed since the rollout: version id 77 is active" in forced.reason
    ours = rollback_step(target, Found(True, 55, "2.0", "Active"))
    assert ours.action is RollbackAction.REACTIVATE and "forced" not in ours.reason
    assert rollback_step(target, Found(True, 10, "1.0", "Active")).action is RollbackAction.NONE
    by_id = RollbackTarget("t", 1, "W", False, 10, "Active", ours_ids=frozenset({55}))
    assert rollback_step(by_id, Found(True, 55, None, "Active")).action is RollbackAction.REACTIVATE


def test_a_created_definition_holding_a_version_migrator_did_not_import_is_never_deleted() -> None:
    """--delete-created deletes only a definition whose every version migrator imported; another version makes it Inactive instead, saying which, even forced."""
    target = RollbackTarget("t", 5, "W", True, ours=frozenset({"1.0"}), ours_ids=frozenset({6}))
    mine = Found(True, 6, "1.0", "Active", versions=((6, "1.0"),))
    assert rollback_step(target, mine, delete_created=True).action is RollbackAction.DELETE
    mixed = Found(True, 6, "1.0", "Active", versions=((6, "1.0"), (9, "1.1")))
    step = rollback_step(target, mixed, delete_created=True, force=True)
    assert step.action is RollbackAction.DEACTIVATE and dict(step.fields) == {"status": "Inactive"}
    assert (
        "not deleted: holds version(s) migrator did not import: 1.1 (version id 9)" in step.reason
    )
    unread = Found(True, 6, "1.0", "Active")  # its versions were not read: no proof, no delete
    assert rollback_step(target, unread, delete_created=True).action is RollbackAction.DEACTIVATE
    hand_active = Found(True, 9, "1.1", "Active", versions=((6, "1.0"), (9, "1.1")))
    assert rollback_step(target, hand_active, delete_created=True).action is RollbackAction.SKIP


def test_the_ledger_knows_which_versions_migrator_switched_on_and_imported() -> None:
    """A target's `ours`: the versions activated in a definition it found, every version imported into one it created."""
    ledger = RollbackLedger()
    ledger.note(
        "activating",
        {"tenant": "t", "definition_id": 1, "version": "2.0", "previous_version_id": 10},
    )
    ledger.note("imported", {"tenant": "t", "definition_id": 1, "version": "2.0", "version_id": 55})
    ledger.note("imported", {"tenant": "t", "definition_id": 1, "version": "2.1", "version_id": 56})
    ledger.note(
        "imported", {"tenant": "t", "definition_id": 5, "version": "1.0", "version_id": None}
    )
    ledger.note("created", {"tenant": "t", "definition_id": 5, "name": "N"})
    ledger.note("imported", {"tenant": "t", "definition_id": 5, "version": "1.1", "version_id": 9})
    found, made = ledger.targets()
    assert (found.ours, found.ours_ids, found.version_id) == (frozenset({"2.0"}), {55}, 10)
    assert made.created and (made.ours, made.ours_ids) == (frozenset({"1.0", "1.1"}), {9})


def test_a_shard_that_passed_a_wave_learns_when_another_shard_halted_it() -> None:
    """peer_wave_verdict: done with a reason once another shard halted the wave, done when all passed or held it, else wait."""
    assert peer_wave_verdict({2: {2: "halted"}}, 1, 2, 2) == (True, "shard 2/2 halted wave 2")
    assert peer_wave_verdict({2: {2: "passed"}, 3: {2: "held"}}, 1, 3, 2) == (True, None)
    assert peer_wave_verdict({2: {2: "started"}}, 1, 2, 2) == (False, None)
    assert peer_wave_verdict({2: {1: "passed"}}, 1, 2, 2) == (False, None)
