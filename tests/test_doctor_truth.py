"""`migrator doctor` held to migrate's standard (issue 21 #3-8) and telling the truth per command
(issue 23 #4): it deletes only what it can prove it made, reads the listing through the one
reader, honours max_wait, and answers for each command whether it can work on the tenant.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from migrator.cli import main
from migrator.core import capabilities as caps
from migrator.core import doctor as v
from migrator.fake import FakeConfig
from migrator.run.doctor import DoctorResult, run_doctor
from tests.builders import small_export
from tests.conftest import ROOT
from tests.helpers import (
    Env,
    Script,
    background_fake,
    config_file_with_cache,
    json_response,
    make_settings,
    running_fake,
    serve_app,
)

T1 = "tenant-1"
DATE = 10**10  # an HTTP date's epoch seconds for Retry-After: 2286-11-20


def _seed_named(env: Env, *names: str) -> None:
    for name in names:
        env.fake.state.add_workflow(T1, small_export(name), version="1.0", activate=True)


def _names(env: Env) -> list[str]:
    return [d["name"] for d in env.fake.state.to_json()["tenants"][T1]["definitions"]]


def _check(result: DoctorResult, name: str) -> v.Check:
    [check] = [c for c in result.checks if c.name == name]
    return check


# -- A: ownership and the lease (issue 21 #3, #4) --------------------------------------------


def test_a_name_is_no_proof_of_ownership() -> None:
    """Only the exact throwaway name with its own run's marker is doctor's; a trailing newline,
    a mere prefix or a missing marker is not."""
    name = "migrator-doctor-0123456789ab"
    mark = v.marker("0123456789ab", 1_700_000_000.0)
    assert v.ownership(name, "x " + mark) == v.Ownership("0123456789ab", 1_700_000_000.0)
    assert v.ownership(name + "\n", mark) is None
    assert v.ownership("migrator-doctor-notes", mark) is None
    assert v.ownership(name, "Created by `migrator doctor`") is None
    assert v.ownership(name, v.marker("ffffffffffff", 1_700_000_000.0)) is None
    assert not v.is_throwaway(name + "\n") and v.is_throwaway(name)


def test_the_lease_protects_another_runs_young_throwaway() -> None:
    """Another run's throwaway is deleted only after the lease; this run's own at once."""
    owner = v.Ownership("aaaaaaaaaaaa", 1000.0)
    assert not v.may_delete(owner, "bbbbbbbbbbbb", 1000.0 + 899, 900)
    assert v.may_delete(owner, "bbbbbbbbbbbb", 1000.0 + 900, 900)
    assert v.may_delete(owner, "aaaaaaaaaaaa", 1000.0, 900)
    assert not v.may_delete(None, "aaaaaaaaaaaa", 10**12, 0)


@pytest.mark.anyio
async def test_look_alikes_are_reported_never_deleted() -> None:
    """A user's workflows named like a throwaway (a trailing newline, a prefix, the exact name
    without doctor's marker) survive doctor --write even with no lease; the unmarked one is
    reported."""
    look_alikes = (
        "migrator-doctor-0123456789ab\n",
        "migrator-doctor-notes",
        "migrator-doctor-0123456789ab",
    )
    async with running_fake(FakeConfig.demo(1)) as env:
        _seed_named(env, *look_alikes)
        result = await run_doctor(env.settings, env.settings.tenants[T1], write=True, lease=0)
        assert sorted(_names(env)) == sorted(look_alikes)
        leftovers = _check(result, "leftovers")
        assert leftovers.status == v.DIFFERS
        assert "without its ownership marker (or an id), never deleted" in leftovers.evidence
        assert _check(result, "cleanup").status == v.PASSED


@pytest.mark.anyio
async def test_two_doctors_at_once_leave_each_other_alone(tmp_path: Path) -> None:
    """A second doctor --write started while the first one's throwaway is live leaves it alone:
    both report every write check passed, exit 0, and no throwaway is left."""
    async with running_fake(FakeConfig.demo(1)) as env:
        path, variables = config_file_with_cache(tmp_path, env)

        def throwaways() -> int:
            return sum(1 for n in _names(env) if v.is_throwaway(n))

        # The order, made certain: the second starts once the first's throwaway exists, and no
        # DELETE is answered before both throwaways exist (the second imports its own only
        # after its leftovers check), so the first's is live while the second looks.
        dispatch = env.fake.dispatch
        both = asyncio.Event()

        async def held(request: web.Request) -> web.StreamResponse:
            if request.method == "DELETE" and not both.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(60):
                        while throwaways() < 2:  # noqa: ASYNC110 - the fake's state is the event
                            await asyncio.sleep(0.01)
                both.set()
            return await dispatch(request)

        env.fake.dispatch = held  # type: ignore[method-assign]

        async def doctor() -> asyncio.subprocess.Process:
            return await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "migrator.cli", "doctor", "--config", str(path), "--tenant", T1),
                *("--write", "--json"),
                cwd=ROOT,
                env={**os.environ, **variables},
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )

        first = await doctor()
        async with asyncio.timeout(60):
            while not throwaways():  # noqa: ASYNC110 - the fake's state is the event
                await asyncio.sleep(0.01)
        second = await doctor()
        outputs = await asyncio.gather(first.communicate(), second.communicate())
        results = [json.loads(out) for out, _ in outputs]
        assert [first.returncode, second.returncode] == [0, 0], results
        for result in results:
            statuses = {c["name"]: c["status"] for c in result["checks"]}
            for name in ("import", "version-import", "activate", "cleanup"):
                assert statuses[name] == v.PASSED, (name, result["checks"])
        later = {c["name"]: c for c in results[1]["checks"]}["leftovers"]
        assert "left alone: 1" in later["evidence"]
        assert _names(env) == []


# -- B: the one listing reader (issue 21 #6) ----------------------------------------------------


async def _scripted(
    routes: list[tuple[str, str, Any]], **settings: Any
) -> tuple[DoctorResult, list[float]]:
    """doctor --write against a tiny scripted server; its sleeps are recorded and skipped."""
    script = Script()
    app = web.Application()
    app.router.add_post("/oauth/token", script.token)
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    async with serve_app(app) as base:
        s = make_settings(base, **settings)
        slept: list[float] = []

        async def sleep(seconds: float) -> None:
            slept.append(seconds)

        result = await run_doctor(s, s.tenants["prod"], write=True, sleep=sleep)
        return result, slept


@pytest.mark.anyio
async def test_looping_pagination_stops_after_the_first_repeat() -> None:
    """A server answering the same page for every page number stops doctor's listing after
    the first repeated page, with one failed line; the commands that list are not usable."""
    asked: list[str] = []

    async def same_page(request: web.Request) -> web.Response:
        asked.append(request.query.get("page_length", ""))
        return json_response(
            {
                "data": [{"id": 1, "name": "A"}, {"id": 2, "name": "B"}],
                "pagination": {"next_page": "more"},
            }
        )

    result, _ = await _scripted([("GET", "/workflows", same_page)])
    listing = _check(result, "listing")
    assert listing.status == v.FAILED and "pagination loops" in listing.evidence
    assert asked.count("50") == 2  # pages 1 and 2, not ten thousand
    verdicts = {c.command: c for c in result.commands}
    assert verdicts["backup"].verdict == caps.NOT_USABLE
    assert not result.usable


# -- C: a filter that is ignored, oldest first (issue 21 #7) ---------------------------------------


@pytest.mark.anyio
async def test_the_throwaway_is_found_past_page_one() -> None:
    """A tenant that ignores the name filter and lists oldest first, with 60 definitions: doctor
    walks the pages to its throwaway, every write passes, and nothing is left."""
    config = FakeConfig.demo(1).with_variant("ignores-name-filter-oldest-first")
    async with running_fake(config) as env:
        names = [f"Workflow {i:03}" for i in range(60)]
        _seed_named(env, *names)
        result = await run_doctor(env.settings, env.settings.tenants[T1], write=True)
        for name in ("import", "version-import", "activate", "cleanup"):
            assert _check(result, name).status == v.PASSED, result.checks
        assert sorted(_names(env)) == names


# -- D: max_wait and hostile ids (issue 21 #8) --------------------------------------------------


@pytest.mark.anyio
async def test_a_retry_after_beyond_max_wait_is_not_waited() -> None:
    """`Retry-After: 86400` on the import with max_wait = 5: doctor sends the import once, does
    not wait, and says why the import failed; migrate is not usable."""
    imports: list[int] = []

    async def empty(_request: web.Request) -> web.Response:
        return json_response({"data": [], "pagination": {}})

    async def throttled(_request: web.Request) -> web.Response:
        imports.append(1)
        return json_response({"message": "slow down"}, 429, {"Retry-After": "86400"})

    result, slept = await _scripted(
        [("GET", "/workflows", empty), ("POST", "/workflows/import", throttled)], max_wait=5.0
    )
    assert imports == [1]
    assert all(s <= 5.0 for s in slept)
    check = _check(result, "import")
    assert check.status == v.FAILED
    assert "86400 s, more than max_wait (5 s)" in check.evidence
    assert {c.command: c.verdict for c in result.commands}["migrate"] == caps.NOT_USABLE


@pytest.mark.anyio
async def test_an_http_date_retry_after_is_honoured_and_learned() -> None:
    """A 429 whose Retry-After is an HTTP date is waited out as the client does (not a guessed
    2 s), sent again, and learned as the `http-date` form."""
    calls: list[int] = []  # the second request (the first listing page) is throttled

    async def once_throttled(_request: web.Request) -> web.Response:
        calls.append(1)
        if len(calls) == 2:
            when = email.utils.formatdate(DATE, usegmt=True)
            return json_response({"message": "slow"}, 429, {"Retry-After": when})
        return json_response({"data": [], "pagination": {}})

    script = Script()
    app = web.Application()
    app.router.add_post("/oauth/token", script.token)
    app.router.add_get("/workflows", once_throttled)
    async with serve_app(app) as base:
        settings = make_settings(base)
        slept: list[float] = []

        async def sleep(seconds: float) -> None:
            slept.append(seconds)

        result = await run_doctor(
            settings, settings.tenants["prod"], sleep=sleep, wall=lambda: DATE - 7.0
        )
    assert slept == [7.0]
    assert result.profile.retry_after is True
    assert result.profile.retry_after_form == "http-date"


@pytest.mark.anyio
async def test_null_and_text_ids_in_the_listing_leave_no_throwaway() -> None:
    """A listing whose ids are null or text: doctor still finds its throwaway (by the id the
    import answered, confirmed by name and marker) and deletes it."""
    async with running_fake(FakeConfig.demo(1)) as env:
        real = env.fake.state.definition_json
        spoil = iter([None, "x", 1.5] * 100)

        def definition_json(tenant: str, definition_id: int, **kw: Any) -> dict[str, Any]:
            out = real(tenant, definition_id, **kw)
            if kw.get("inactive_list"):
                out["id"] = next(spoil)
            return out

        env.fake.state.definition_json = definition_json  # type: ignore[method-assign]
        result = await run_doctor(env.settings, env.settings.tenants[T1], write=True)
        assert _check(result, "cleanup").status == v.PASSED, result.checks
        assert _names(env) == []


# -- E: per command (issue 23 #4) ----------------------------------------------------------------


@pytest.mark.anyio
async def test_read_only_doctor_without_a_versions_list_answers_per_command() -> None:
    """Where every GET /workflows/{id}/versions answers 404, read-only doctor says every reading
    command is usable but limited, naming the request and what the command does instead (they
    read the listing's versions, issue 23), and the tenant usable overall."""
    async with running_fake(FakeConfig.demo(1).with_variant("no-versions-list")) as env:
        _seed_named(env, "Alpha", "Beta")
        result = await run_doctor(env.settings, env.settings.tenants[T1])
        verdicts = {c.command: c for c in result.commands}
        for command in ("backup", "diff", "plan", "verify"):
            assert verdicts[command].verdict == caps.USABLE, verdicts[command]
            assert "limited: GET /workflows/{id}/versions answers 404" in (
                verdicts[command].reason or ""
            )
        for command in ("migrate", "activate"):  # their writes need --write
            assert verdicts[command].verdict == caps.NOT_CHECKED, verdicts[command]
        assert verdicts["migrate --from-tenant"].verdict == caps.USABLE
        assert verdicts["rollout smoke runs"].verdict == caps.NOT_CHECKED
        assert result.profile.versions_list is False
        assert result.reliable and result.usable


@pytest.mark.anyio
async def test_read_only_doctor_on_a_healthy_tenant_checks_every_read() -> None:
    """A healthy tenant read-only: every read-only command usable, the writing ones not checked."""
    async with running_fake(FakeConfig.demo(1)) as env:
        _seed_named(env, "Alpha", "Beta")
        result = await run_doctor(env.settings, env.settings.tenants[T1])
        verdicts = {c.command: c.verdict for c in result.commands}
        for command in ("backup", "diff", "plan", "verify", "migrate --from-tenant"):
            assert verdicts[command] == caps.USABLE
        assert verdicts["migrate"] == caps.NOT_CHECKED and result.usable


def test_ignored_page_length_is_told_apart_from_an_unstable_order() -> None:
    """page_length=1 answered with more entries is "ignored"; one entry that changes between
    two identical requests is "unstable order"."""
    _, honoured, stable = caps.pagination_verdict([3, 2, 1], [3, 2, 1], [], [3, 2, 1], True)
    assert (honoured, stable) == (False, True)
    check, honoured, stable = caps.pagination_verdict([3, 2, 1], [3], [2], [1], True)
    assert (honoured, stable) == (True, False) and "not stable" in check.evidence
    check, honoured, stable = caps.pagination_verdict([3, 2, 1], [3], [2], [3], True)
    assert (check.status, honoured, stable) == (v.PASSED, True, True)


@pytest.mark.anyio
async def test_doctor_learns_a_listing_that_ignores_page_length() -> None:
    """Against the ignores-page-length variant the pagination check says page_length is
    ignored, not that the order is unstable."""
    async with running_fake(FakeConfig.demo(1).with_variant("ignores-page-length")) as env:
        _seed_named(env, "Alpha", "Beta", "Gamma")
        result = await run_doctor(env.settings, env.settings.tenants[T1])
        assert "page_length is ignored" in _check(result, "pagination").evidence
        assert (result.profile.page_length_honoured, result.profile.listing_order_stable) == (
            False,
            True,
        )


def test_learned_in_passing() -> None:
    """Retry-After forms, the listing's spelling and the error body family are read right."""
    assert caps.retry_after_verdict(["seconds", "http-date"])[1:] == (True, "both")
    assert caps.retry_after_verdict([None, "seconds"])[1:] == (False, "seconds")
    assert caps.listing_spelling_verdict([{"latest_inactive_verisons": []}])[1] == "verisons"
    entries: list[dict[str, Any]] = [
        {"latest_inactive_versions": []},
        {"latest_inactive_verisons": []},
    ]
    assert caps.listing_spelling_verdict(entries)[1] == "both"
    assert caps.error_shape_verdict({"message": "Authentication error"}) == "sdk"
    assert caps.error_shape_verdict({"errors": [{"title": "x"}]}) == "spec"


@pytest.mark.anyio
async def test_doctor_learns_that_exports_carry_workflow_definition() -> None:
    """A tenant whose exports carry `workflow_definition` is learned as such; one that drops it
    is learned as not."""
    for variant, expected in (
        ("workflow-definition-block", True),
        ("no-workflow-definition-block", False),
    ):
        async with running_fake(FakeConfig.demo(1).with_variant(variant)) as env:
            doc = small_export("Alpha")
            doc["workflow_definition"] = {"id": 7, "name": "Alpha", "status": "Active"}
            env.fake.state.add_workflow(T1, doc, version="1.0", activate=True)
            result = await run_doctor(env.settings, env.settings.tenants[T1])
            assert result.profile.export_has_workflow_definition is expected, variant


# -- E/F: the command's output ---------------------------------------------------------------------


def test_cli_per_command_lines_json_and_exit_0_when_limited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a versions list the CLI prints a line per command (plan and backup usable but
    limited, naming the request), exits 0 (a limit is no failure), and --json carries the same
    per-command verdicts; hostile names are escaped."""
    with background_fake(FakeConfig.demo(1).with_variant("no-versions-list")) as env:
        _seed_named(env, "Alpha", "\x1b[31mevil\nmigrator doctor: usable\u202e")
        path, variables = config_file_with_cache(tmp_path, env)
        for k, val in variables.items():
            monkeypatch.setenv(k, val)
        code = main(["doctor", "--config", str(path), "--tenant", T1])
        out = capsys.readouterr().out
        assert code == 0
        assert "  plan: usable (limited: GET /workflows/{id}/versions answers 404" in out
        assert "  backup: usable (limited: GET /workflows/{id}/versions answers 404" in out
        assert out.rstrip().splitlines()[-1].startswith("migrator doctor: usable")
        # The name that reads like the verdict never makes a line of its own.
        assert sum(line.startswith("migrator doctor:") for line in out.splitlines()) == 1
        assert "\x1b" not in out and "\u202e" not in out
        code = main(["doctor", "--config", str(path), "--tenant", T1, "--json"])
        data = json.loads(capsys.readouterr().out)
        assert code == 0
        plan = {c["command"]: c for c in data["commands"]}["plan"]
        assert plan["verdict"] == "usable" and "limited" in plan["reason"]
        assert data["profile"]["versions_list"] is False


def test_a_command_that_copes_without_an_endpoint_is_usable_with_the_limit_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A failing endpoint a command has a fallback for leaves it usable, naming the limit;
    the commands without that fallback are not usable."""
    monkeypatch.setitem(caps.FALLBACKS, ("backup", "export-version"), "reads the listing instead")
    probed = {e: caps.Probed(True, "works") for e in caps.ENDPOINTS}
    probed["export-version"] = caps.Probed(False, "answers 404")
    verdicts = {c.command: c for c in caps.command_verdicts(probed, write=True)}
    assert verdicts["backup"].verdict == caps.USABLE
    assert verdicts["backup"].reason == (
        "limited: GET /workflows/{id}/export?version=… answers 404, reads the listing instead"
    )
    assert verdicts["plan"].verdict == caps.NOT_USABLE
    assert verdicts["migrate --from-tenant"] == caps.CommandVerdict(
        "migrate --from-tenant", caps.USABLE
    )


@pytest.mark.anyio
async def test_a_role_that_cannot_read_the_data_model_is_said_per_command() -> None:
    """A role refused describe and the custom object definitions: the schema check differs, and
    migrate and plan stay usable with the limit named (their reference check checks nothing)."""
    async with running_fake(FakeConfig.demo(1).with_variant("no-schema-permission")) as env:
        _seed_named(env, "Alpha", "Beta")
        result = await run_doctor(env.settings, env.settings.tenants[T1])
        assert _check(result, "schema").status == v.DIFFERS
        plan = {c.command: c for c in result.commands}["plan"]
        assert plan.verdict == caps.USABLE
        assert "limited: GET /v1/describe/{Object} answers 403" in (plan.reason or "")
        assert "'not checked'" in (plan.reason or "")
        assert result.usable
    async with running_fake(FakeConfig.demo(1)) as env:
        result = await run_doctor(env.settings, env.settings.tenants[T1])
        assert _check(result, "schema").status == v.PASSED
