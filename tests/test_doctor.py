"""`migrator doctor`: pure verdicts from plain values, and the probe against the fake over HTTP.

Against every fake variant doctor learns the variant (the profile equals the switches); `--write`
leaves the tenant's definitions exactly as they were; a doctor killed after creating its
throwaway leaves one definition at most, which the next run removes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from migrator.cli import main
from migrator.core import capabilities as caps
from migrator.core import doctor as v
from migrator.core.config import Secret, TenantConfig, load_settings
from migrator.core.profile import TenantProfile, merged
from migrator.fake import FakeConfig, FaultConfig
from migrator.fake._config import demo_tenant
from migrator.run.doctor import run_doctor
from migrator.store.profiles import load_profile, profile_path
from tests.builders import sample_docs
from tests.conftest import ROOT
from tests.helpers import (
    Env,
    background_fake,
    config_file_with_cache,
    running_fake,
)

# -- pure verdicts ------------------------------------------------------------------------------


def test_v1_in_the_base_url_fails_with_the_fix() -> None:
    """A base URL ending in /v1 fails, and the hint says to remove it."""
    check = v.base_url_check("https://rest.zuora.com/v1")
    assert check.status == v.FAILED
    assert check.hint is not None and "remove /v1" in check.hint


def test_a_ui_host_is_pointed_at_its_rest_host() -> None:
    """A UI host (apisandbox.zuora.com) gets the REST host it stands for as the hint."""
    check = v.base_url_check("https://apisandbox.zuora.com")
    assert check.status == v.DIFFERS
    assert check.hint is not None and "https://rest.apisandbox.zuora.com" in check.hint


def test_a_known_host_names_its_data_centre() -> None:
    """Each of Zuora's REST hosts (spec §1.1) passes and names its environment."""
    check = v.base_url_check("https://rest.eu.zuora.com/")
    assert check.status == v.PASSED and "EU Production" in check.evidence


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (401, "data centre"),
        (404, "no path such as /v1"),
        (302, "UI host"),
        (None, "rest.eu.zuora.com"),
    ],
)
def test_a_refused_token_gets_the_hint_for_its_usual_cause(status: int | None, words: str) -> None:
    """Token failures map to hints: 401 another data centre, 404 a path, 3xx a UI host, no answer the host list."""
    check = v.token_check("https://rest.zuora.com", status, "connect error")
    assert check.status == v.FAILED
    assert check.hint is not None and words in check.hint


@pytest.mark.parametrize(
    ("status", "entity_ids", "words"),
    [(401, None, "set entity_ids"), (403, None, "Workflow View"), (403, "e-1", "check entity_ids")],
)
def test_a_refused_listing_points_at_entity_ids(
    status: int, entity_ids: str | None, words: str
) -> None:
    """A token the API refuses (401/403) hints at a missing entity id or permission."""
    check = v.api_access_check(status, "", entity_ids)
    assert check.status == v.FAILED
    assert check.hint is not None and words in check.hint


@pytest.mark.parametrize(
    ("exact", "inner", "swapped", "mode", "case"),
    [
        (["Ab Cd"], [], [], "exact", True),
        (["Ab Cd", "Ab Cd 2"], ["Ab Cd"], [], "contains", True),
        (["Ab Cd"], [], ["Ab Cd"], "exact", False),
        (["Ab Cd"], ["Ab Cd"], ["Ab Cd"], "contains", False),
    ],
)
def test_the_name_filter_is_read_from_what_each_query_listed(
    exact: list[str], inner: list[str], swapped: list[str], mode: str, case: bool
) -> None:
    """The substring query decides exact/contains, the case-swapped query decides the case."""
    check, got_mode, got_case = v.name_filter_verdict("Ab Cd", exact, inner, swapped)
    assert (got_mode, got_case) == (mode, case)
    assert check.status == (v.PASSED if (mode, case) == ("exact", True) else v.DIFFERS)


@given(
    name=st.text(min_size=2, max_size=12),
    others=st.lists(st.text(min_size=1, max_size=12), max_size=5),
    mode=st.sampled_from(["exact", "contains"]),
    case_sensitive=st.booleans(),
)
def test_the_name_filter_verdict_recovers_any_server_model(
    name: str, others: list[str], mode: str, case_sensitive: bool
) -> None:
    """Whatever the names, the probes' answers from a server with (mode, case) give back (mode, case)."""

    def listed(query: str) -> list[str]:
        def fold(text: str) -> str:
            return text if case_sensitive else text.casefold()

        return [
            n
            for n in [name, *others]
            if (fold(query) in fold(n) if mode == "contains" else fold(query) == fold(n))
        ]

    inner, swapped = v.name_filter_probes(name)
    _, got_mode, got_case = v.name_filter_verdict(
        name, listed(name), listed(inner), None if swapped is None else listed(swapped)
    )
    assert got_mode == mode
    assert got_case == (None if swapped is None else case_sensitive)


def test_a_filter_that_lists_unrelated_names_is_not_learned() -> None:
    """A `name` query answered with other names means the filter is ignored: nothing learned."""
    check, mode, case = v.name_filter_verdict("Ab", ["Ab", "Zz"], ["Ab"], ["Ab"])
    assert check.status == v.DIFFERS and (mode, case) == (None, None)


def test_replay_and_409_are_told_apart() -> None:
    """The same key again: same status and body is a replay, 409 is "409", another body is unknown."""
    assert v.replay_verdict((200, {"a": 1}), (200, {"a": 1}))[1] == "replay"
    assert v.replay_verdict((200, {"a": 1}), (409, {"a": 1}))[1] == "409"
    check, mode = v.replay_verdict((200, {"a": 1}), (200, {"a": 2}))
    assert mode is None and "may not be honoured" in check.evidence


def test_the_import_answer_is_the_definition_or_the_version() -> None:
    """The import's id is classified against the definition id and the version ids."""
    assert v.import_answer_verdict(5, 5, [6])[1] == "definition"
    assert v.import_answer_verdict(6, 5, [6])[1] == "version"
    assert v.import_answer_verdict(7, 5, [6])[0].status == v.FAILED


def test_the_minute_budget_is_read_from_ratelimit_limit() -> None:
    """The w=60 window of RateLimit-Limit is the per-minute budget; no header is "differs"."""
    headers = {"ratelimit-limit": "2250000, 50000;w=60, 2250000;w=3600"}
    check, present, rpm = v.rate_limit_verdict([headers], None)
    assert (check.status, present, rpm) == (v.PASSED, True, 50000)
    check, present, rpm = v.rate_limit_verdict([{}], None)
    assert (check.status, present, rpm) == (v.DIFFERS, False, None)
    assert v.rate_limit_verdict([headers], 60000)[0].status == v.DIFFERS


def test_a_merged_profile_keeps_what_the_newer_did_not_learn() -> None:
    """Fields the newer profile left None come from the older one; learned ones win."""
    older = TenantProfile(import_response_id="version", name_filter="exact")
    newer = TenantProfile(name_filter="contains", requests_per_minute=100)
    assert merged(newer, older) == TenantProfile(
        import_response_id="version", name_filter="contains", requests_per_minute=100
    )
    assert merged(newer, None) == newer


def test_server_text_is_printable_and_redacted() -> None:
    """Names from the server reach the line with control characters escaped."""
    check, _, _ = v.name_filter_verdict("a\x1b[31mb", ["a\x1b[31mb"], [], None)
    assert "\x1b" not in check.evidence and "\\x1b" in check.evidence


# -- against the fake ---------------------------------------------------------------------------


def _expected(config: FakeConfig, seeded: bool = True) -> dict[str, Any]:
    ignored = config.name_filter_ignored
    # A created-object answer's `id` is the new version's (its `definitionId` the definition's).
    created_object = config.import_answer == "created-object"
    return {
        "import_response_id": "version" if created_object else config.import_response_id,
        "name_filter": None if ignored else config.name_filter,
        "name_filter_case_sensitive": None if ignored else config.name_filter_case_sensitive,
        "keeps_unknown_keys": config.keep_unknown_keys,
        "listing_key_spelling": config.listing_spelling if seeded else None,
        "error_body_shape": config.error_bodies,
        "versions_list": config.versions_list,
        "page_length_honoured": (not config.page_length_ignored) if seeded else None,
        "idempotent_replay": config.idempotent_replay,
        "rate_limit_headers": config.rate_limit_headers,
        "requests_per_minute": 2500 if config.rate_limit_headers else None,
        "rewrite_file_refs": config.rewrite_file_refs,
        "export_without_active": config.export_without_active,
        "retry_after": None,  # doctor never provokes a 429
    }


def _seed(env: Env, tenant: str = "tenant-1") -> None:
    for doc in sample_docs()[:3]:
        env.fake.state.add_workflow(tenant, doc.data, version="1.0", activate=True)


def _definitions(env: Env, tenant: str = "tenant-1") -> dict[str, Any]:
    table = env.fake.state.to_json()["tenants"][tenant]
    return {"definitions": table["definitions"], "versions": table["versions"]}


@pytest.mark.anyio
@pytest.mark.parametrize("seeded", [True, False], ids=["with-workflows", "empty"])
@pytest.mark.parametrize("variant", list(FakeConfig.variants()))
async def test_doctor_write_learns_every_variant(variant: str, seeded: bool) -> None:
    """doctor --write against a fake playing `variant` learns exactly the variant's switches."""
    config = FakeConfig.demo(1).with_variant(variant)
    async with running_fake(config) as env:
        if seeded:
            _seed(env)
        result = await run_doctor(env.settings, env.settings.tenants["tenant-1"], write=True)
        learned = result.profile.to_json()
        expected = _expected(config, seeded)
        assert {k: learned[k] for k in expected} == expected, result.checks
        assert result.reliable, [c for c in result.checks if c.status == v.FAILED]
        verdicts = {c.command: c.verdict for c in result.commands}
        # Without a versions list every command copes (issue 23): usable, the limit named.
        assert set(verdicts.values()) == {caps.USABLE}, result.commands
        limited = {c.command for c in result.commands if c.reason and "versions" in c.reason}
        assert bool(limited) == (not config.versions_list), result.commands
        assert result.usable


@pytest.mark.anyio
async def test_read_only_doctor_learns_the_filter_from_existing_names_and_writes_nothing() -> None:
    """Without --write doctor learns the name filter from an existing name and changes nothing."""
    config = FakeConfig.demo(1).with_variant("substring-case-insensitive-filter")
    async with running_fake(config) as env:
        _seed(env)
        before = _definitions(env)
        result = await run_doctor(env.settings, env.settings.tenants["tenant-1"])
        assert (result.profile.name_filter, result.profile.name_filter_case_sensitive) == (
            "contains",
            False,
        )
        assert result.profile.import_response_id is None  # learned only by writing
        assert _definitions(env) == before
        assert env.imports("tenant-1") == []


@pytest.mark.anyio
async def test_read_only_doctor_with_no_workflows_says_not_learned() -> None:
    """An empty tenant without --write: the name filter is "skipped", not guessed."""
    async with running_fake(FakeConfig.demo(1)) as env:
        result = await run_doctor(env.settings, env.settings.tenants["tenant-1"])
        [check] = [c for c in result.checks if c.name == "name-filter"]
        assert check.status == v.SKIPPED and "not learned" in check.evidence
        assert result.profile.name_filter is None


@pytest.mark.anyio
async def test_doctor_write_leaves_the_definitions_exactly_as_before() -> None:
    """After doctor --write every definition and version is as before; only the throwaway came and went."""
    async with running_fake(FakeConfig.demo(2)) as env:
        _seed(env)
        _seed(env, "tenant-2")
        before = _definitions(env)
        other = _definitions(env, "tenant-2")
        result = await run_doctor(env.settings, env.settings.tenants["tenant-1"], write=True)
        assert result.usable
        assert _definitions(env) == before
        assert _definitions(env, "tenant-2") == other
        imported = {e["name"] for e in env.imports("tenant-1")}
        assert len(imported) == 1 and v.is_throwaway(imported.pop())
        assert env.imports("tenant-2") == []


@pytest.mark.anyio
async def test_wrong_credentials_fail_with_a_hint_and_no_secret() -> None:
    """A wrong secret is a failed credentials check with the data-centre hint; the secret never shows."""
    async with running_fake(FakeConfig.demo(1)) as env:
        good = env.settings.tenants["tenant-1"]
        bad = TenantConfig(good.name, good.base_url, good.client_id, Secret("wrong-secret-123456"))
        result = await run_doctor(env.settings, bad)
        assert not result.usable
        [check] = [c for c in result.checks if c.name == "credentials"]
        assert check.status == v.FAILED and check.hint and "data centre" in check.hint
        assert "wrong-secret-123456" not in json.dumps(result.to_json())


@pytest.mark.anyio
async def test_v1_base_url_against_the_fake_fails_at_the_token() -> None:
    """base_url with /v1 fails twice: the URL check and the token endpoint's 404, with the fix."""
    async with running_fake(FakeConfig.demo(1)) as env:
        good = env.settings.tenants["tenant-1"]
        bad = TenantConfig(good.name, good.base_url + "/v1", good.client_id, good.client_secret)
        result = await run_doctor(env.settings, bad)
        statuses = {c.name: c for c in result.checks}
        assert statuses["base-url"].status == v.FAILED
        assert statuses["credentials"].status == v.FAILED
        assert "/v1" in (statuses["credentials"].hint or "")


# -- the command --------------------------------------------------------------------------------


def test_cli_json_save_and_exit_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json prints checks and profile, --save stores what load_profile reads; unknown tenant is 2."""
    with background_fake(FakeConfig.demo(1).with_variant("409-replay")) as env:
        path, variables = config_file_with_cache(tmp_path, env)
        for k, val in variables.items():
            monkeypatch.setenv(k, val)
        args = ["doctor", "--config", str(path), "--tenant", "tenant-1", "--write", "--json"]
        code = main([*args, "--save"])
        out = json.loads(capsys.readouterr().out)
        assert code == 0
        assert {c["status"] for c in out["checks"]} <= set(v.STATUSES)
        assert out["profile"]["idempotent_replay"] == "409"
        settings = load_settings(path)
        saved = load_profile(settings, settings.tenants["tenant-1"])
        assert saved == TenantProfile.from_json(out["profile"])
        assert out["saved"] == str(profile_path(settings, settings.tenants["tenant-1"]))
        # A read-only run learns less; saving it keeps what --write learned.
        assert main(["doctor", "--config", str(path), "--tenant", "tenant-1", "--save"]) == 0
        capsys.readouterr()
        again = load_profile(settings, settings.tenants["tenant-1"])
        assert again is not None and again.idempotent_replay == "409"
        assert main(["doctor", "--config", str(path), "--tenant", "x"]) == 2
        assert "unknown tenant 'x'" in capsys.readouterr().err


def test_cli_lines_and_exit_1_when_a_check_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Wrong credentials: one line per check, a hint, exit 1, the secret nowhere in the output."""
    with background_fake(FakeConfig.demo(1)) as env:
        path, variables = config_file_with_cache(tmp_path, env)
        for k in variables:
            monkeypatch.setenv(k, "not-the-secret-0000")
        code = main(["doctor", "--config", str(path), "--tenant", "tenant-1", "--save"])
        captured = capsys.readouterr()
        assert code == 1
        assert "profile not saved: a check failed" in captured.out
        assert not (tmp_path / "cache").exists()
        assert any(line.startswith("failed   credentials") for line in captured.out.splitlines())
        assert "hint:" in captured.out
        assert "not-the-secret-0000" not in captured.out + captured.err


def test_cli_prints_one_line_per_check_and_the_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A usable tenant: a line per check, the profile's fields, `usable`, exit 0."""
    with background_fake(FakeConfig.demo(1)) as env:
        path, variables = config_file_with_cache(tmp_path, env)
        for k, val in variables.items():
            monkeypatch.setenv(k, val)
        code = main(["doctor", "--config", str(path), "--tenant", "tenant-1", "--write"])
        out = capsys.readouterr().out
        assert code == 0
        assert "passed   idempotency" in out
        assert "  import_response_id: definition" in out
        assert out.rstrip().endswith("migrator doctor: usable")


@pytest.mark.anyio
async def test_a_killed_doctor_leaves_one_throwaway_which_the_next_run_removes(
    tmp_path: Path,
) -> None:
    """SIGKILL after the throwaway exists leaves at most it; a doctor --write within its lease
    leaves it alone, the first one after the lease removes it."""
    # Latency keeps the throwaway alive long enough to be seen; the test waits on the fake's
    # state, never on time.
    config = FakeConfig(tenants=[demo_tenant(1, faults=FaultConfig(latency=0.2))])
    async with running_fake(config) as env:
        _seed(env)
        before = _definitions(env)
        path, variables = config_file_with_cache(tmp_path, env)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "migrator.cli",
            "doctor",
            "--config",
            str(path),
            "--tenant",
            "tenant-1",
            "--write",
            cwd=ROOT,
            env={**os.environ, **variables},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )

        def throwaways() -> list[str]:
            return [
                d["name"]
                for d in env.fake.state.to_json()["tenants"]["tenant-1"]["definitions"]
                if v.is_throwaway(d["name"])
            ]

        try:
            async with asyncio.timeout(60):
                while not throwaways():  # noqa: ASYNC110 - polling the fake's state is the event
                    await asyncio.sleep(0.01)
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        assert len(throwaways()) == 1
        env.fake.set_faults("tenant-1", FaultConfig())
        tenant = env.settings.tenants["tenant-1"]
        # Within its lease the throwaway may be a live doctor's: left alone (issue 21 #4).
        result = await run_doctor(env.settings, tenant, write=True)
        [leftovers] = [c for c in result.checks if c.name == "leftovers"]
        assert "left alone: 1" in leftovers.evidence and len(throwaways()) == 1
        # Once the lease is over, the next run removes it.
        later = time.time() + v.LEASE_SECONDS
        result = await run_doctor(env.settings, tenant, write=True, wall=lambda: later)
        [leftovers] = [c for c in result.checks if c.name == "leftovers"]
        assert leftovers.status == v.PASSED and "removed 1" in leftovers.evidence
        assert throwaways() == []
        assert _definitions(env) == before
