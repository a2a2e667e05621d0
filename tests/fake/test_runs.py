"""Fleet features of the fake over real HTTP: runs (§3.10-3.11), refused imports, rollback calls.

Also the timestamps a client caches by, and the new knobs in the config file and on the CLI.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from migrator.core.errors import ConfigError
from migrator.fake import FakeConfig, load_config
from migrator.fake._cli import _parser, build_config
from migrator.fake._config import demo_tenant
from tests.fake.helpers import Caller, running, sample_document

pytestmark = pytest.mark.anyio


class Clock:
    """A hand-moved wall clock."""

    def __init__(self, now: float = 1_000_000_210.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def _active(a: Caller, name: str = "Smoke", doc: dict[str, Any] | None = None) -> int:
    answer = await a.import_new(doc or sample_document(name), activate=True)
    assert answer.status == 200, answer.body
    listed = await a.call("GET", "/workflows", name=name)
    return int(listed.body["data"][0]["id"])


# -- Runs ----------------------------------------------------------------------------------------


async def test_run_is_processing_then_finished_by_the_clock() -> None:
    """§3.10/§3.11: a run starts Queued, polls Processing for run_seconds, then Finished."""
    clock = Clock()
    config = FakeConfig(tenants=[demo_tenant(1)], run_seconds=2.0, clock=clock)
    async with running(config) as (_, (a,)):
        definition_id = await _active(a)
        started = await a.call("POST", f"/workflows/{definition_id}/run", {"accountId": "A1"})
        assert started.status == 200
        run = started.body
        assert run["status"] == "Queued" and run["type"] == "Workflow::Instance"
        assert run["name"] == f"WF-{run['originalWorkflowId']}-00000001"
        assert run["createdAt"].endswith(" UTC")
        poll = (await a.call("GET", f"/workflows/workflow_runs/{run['id']}")).body
        assert poll["status"] == "Processing" and poll["finishedAt"] is None
        assert poll["tasks"]["total"] == 3 and poll["tasks"]["success"] == 0
        clock.now += 2.0
        done = (await a.call("GET", f"/workflows/workflow_runs/{run['id']}")).body
        assert done["status"] == "Finished" and done["finishedAt"].endswith(" UTC")
        assert done["tasks"] == {
            "error": 0,
            "pending": 0,
            "processing": 0,
            "queued": 0,
            "stopped": 0,
            "success": 3,
            "total": 3,
        }
        assert done["runTime"] == 2.0 and done["cpuTime"] == "00:00:02"
        second = await a.call("POST", f"/workflows/{definition_id}/run")
        assert second.body["name"].endswith("-00000002")


async def test_failing_runs_finish_with_an_error_task() -> None:
    """A tenant's `failing_runs` names finish with one Error task; other workflows succeed."""
    clock = Clock()
    tenant = demo_tenant(1, failing_runs=["Broken"])
    async with running(FakeConfig(tenants=[tenant], run_seconds=0.5, clock=clock)) as (_, (a,)):
        broken = await _active(a, "Broken")
        fine = await _active(a, "Fine")
        runs = [
            (await a.call("POST", f"/workflows/{d}/run", {})).body["id"] for d in (broken, fine)
        ]
        clock.now += 1
        polls = [(await a.call("GET", f"/workflows/workflow_runs/{r}")).body for r in runs]
        assert [p["status"] for p in polls] == ["Finished", "Finished"]
        assert polls[0]["tasks"]["error"] == 1 and polls[1]["tasks"]["error"] == 0


async def test_failing_runs_can_be_set_while_serving() -> None:
    """set_tenant(failing_runs=...) changes which runs fail from the next run on."""
    clock = Clock()
    async with running(FakeConfig(tenants=[demo_tenant(1)], clock=clock)) as (fake, (a,)):
        definition_id = await _active(a)
        fake.set_tenant(a.tenant.name, failing_runs=["Smoke"])
        run_id = (await a.call("POST", f"/workflows/{definition_id}/run")).body["id"]
        clock.now += 1
        poll = (await a.call("GET", f"/workflows/workflow_runs/{run_id}")).body
        assert poll["tasks"]["error"] == 1


async def test_run_refusals() -> None:
    """§3.10: inactive → 400, unknown → 404, a run id → 409, a missing required input → 406."""
    async with running(FakeConfig.demo(1)) as (_, (a,)):
        inactive = (await a.import_new(sample_document("Off"))).body["id"]
        refused = await a.call("POST", f"/workflows/{inactive}/run", {})
        assert refused.status == 400 and "inactive" in refused.body["errors"][0]["title"]
        assert (await a.call("POST", "/workflows/999999/run", {})).status == 404
        assert (await a.call("GET", "/workflows/workflow_runs/999999")).status == 404
        doc = sample_document("Needs input")
        doc["workflow"]["parameters"]["fields"] = [
            {"field_name": "AccountId", "object_name": "Workflow", "required": True,
             "callout_id": "accountId"}
        ]  # fmt: skip
        definition_id = await _active(a, "Needs input", doc)
        missing = await a.call("POST", f"/workflows/{definition_id}/run", {"other": 1})
        assert missing.status == 406
        assert missing.body["parameters"] == {"other": 1}
        assert missing.body["errors"][0]["title"] == "accountId is required"
        run_id = (await a.call("POST", f"/workflows/{definition_id}/run", {"accountId": "A"})).body[
            "id"
        ]
        assert (await a.call("POST", f"/workflows/{run_id}/run", {})).status == 409
        reserved = await a.call("POST", f"/workflows/{definition_id}/run", {"format": "x"})
        assert reserved.status == 400


async def test_run_of_a_definition_patched_inactive_is_refused() -> None:
    """§3.3: PATCH status Inactive stops the definition from running (400), Active again runs."""
    async with running(FakeConfig.demo(1)) as (_, (a,)):
        definition_id = await _active(a)
        assert (
            await a.call("PATCH", f"/workflows/{definition_id}", {"status": "Inactive"})
        ).status == 200
        assert (await a.call("POST", f"/workflows/{definition_id}/run", {})).status == 400
        await a.call("PATCH", f"/workflows/{definition_id}", {"status": "Active"})
        assert (await a.call("POST", f"/workflows/{definition_id}/run", {})).status == 200


# -- Refused imports -----------------------------------------------------------------------------


async def test_reject_imports_answers_400_for_named_workflows() -> None:
    """A tenant's `reject_imports` refuses those names (new and as versions) with 400, no import."""
    tenant = demo_tenant(1, reject_imports=["Needs Region"])
    async with running(FakeConfig(tenants=[tenant], error_bodies="spec")) as (fake, (a,)):
        refused = await a.import_new(sample_document("Needs Region"))
        assert refused.status == 400
        assert "custom field" in refused.body["errors"][0]["title"]
        assert fake.ledger() == []
        other = await a.import_new(sample_document("Fine"))
        assert other.status == 200
        fake.set_tenant(a.tenant.name, reject_imports=["Fine"])
        again = await a.call(
            "POST",
            f"/workflows/{other.body['id']}/versions/import",
            sample_document("Fine"),
            version="2",
        )
        assert again.status == 400
        assert len(fake.ledger()) == 1


# -- What rollback needs (§3.3, §3.4) ------------------------------------------------------------


async def test_patch_back_to_the_previous_version_and_delete() -> None:
    """§3.3/§3.4: PATCH active_workflow_version_id restores an older version; DELETE removes all."""
    async with running(FakeConfig.demo(1)) as (_, (a,)):
        definition_id = await _active(a, "Roll")
        v1 = (await a.call("GET", f"/workflows/{definition_id}")).body["active_version"]["id"]
        changed = sample_document("Roll")
        changed["tasks"][0]["parameters"]["limit"] = "1"
        await a.call(
            "POST",
            f"/workflows/{definition_id}/versions/import",
            changed,
            version="2",
            activate="true",
        )
        assert (await a.call("GET", f"/workflows/{definition_id}/export")).body["tasks"][0][
            "parameters"
        ]["limit"] == "1"
        back = await a.call(
            "PATCH", f"/workflows/{definition_id}", {"active_workflow_version_id": v1}
        )
        assert back.status == 200 and back.body["active_version"]["id"] == v1
        exported = (await a.call("GET", f"/workflows/{definition_id}/export")).body
        assert exported["workflow"]["id"] == v1
        assert exported["tasks"][0]["parameters"]["limit"] == "2000"
        deleted = await a.call("DELETE", f"/workflows/{definition_id}")
        assert deleted.body == {"id": definition_id, "success": True}
        assert (await a.call("GET", f"/workflows/{definition_id}")).status == 404
        assert (await a.call("GET", "/workflows", name="Roll")).body["data"] == []


# -- Timestamps a client caches by (§3.1, §3.8) --------------------------------------------------


async def test_updated_at_moves_with_every_change() -> None:
    """§3.1/§3.8: the definition's and the version's updatedAt move when content changes."""
    clock = Clock()
    async with running(FakeConfig(tenants=[demo_tenant(1)], clock=clock)) as (fake, (a,)):
        definition_id = await _active(a, "Cached")

        async def stamps() -> tuple[str, str]:
            listed = (await a.call("GET", "/workflows", name="Cached")).body["data"][0]
            versions = (await a.call("GET", f"/workflows/{definition_id}/versions")).body["data"]
            return listed["updatedAt"], versions[0]["updatedAt"]

        before = await stamps()
        version_id = fake.ledger()[0]["version_id"]
        # Same clock reading: the stamps still move (each change is at least 1 ms later).
        fake.state.alter_version(
            a.tenant.name, version_id, lambda d: d["tasks"][0]["parameters"].update(limit="9")
        )
        after = await stamps()
        assert after[0] > before[0] and after[1] > before[1]
        clock.now += 5
        await a.call("PATCH", f"/workflows/{definition_id}", {"description": "x"})
        assert (await stamps())[0] > after[0]


# -- Config file and CLI -------------------------------------------------------------------------


def test_config_file_sets_every_switch_and_tenant_lists(tmp_path: Path) -> None:
    """Every switch is a config key; `variant` presets them; tenants take failing/reject lists."""
    path = tmp_path / "fake.toml"
    path.write_text(
        'variant = "all-flipped"\nimport_response_id = "definition"\nrun_seconds = 3\n'
        'name_filter = "exact"\nkeep_unknown_keys = true\n'
        "[[tenants]]\nname='eu'\nclient_id='x'\nclient_secret='y'\n"
        "failing_runs=['A']\nreject_imports=['B', 'C']\n"
    )
    config = load_config(str(path))
    assert config.import_response_id == "definition"  # the file wins over the preset
    assert config.name_filter == "exact" and config.name_filter_case_sensitive is False
    assert config.retry_after == "never" and config.rate_limit_headers is False
    # all-flipped plays the spec's error table since the SDK's shapes are the default (issue 23).
    assert config.error_bodies == "spec" and config.keep_unknown_keys is True
    assert config.run_seconds == 3.0
    assert config.tenants[0].failing_runs == ("A",)
    assert config.tenants[0].reject_imports == ("B", "C")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('variant = "nope"\n', "variant"),
        ('retry_after = "sometimes"\n[[tenants]]\nname="a"\nclient_id="x"\nclient_secret="y"\n', "retry_after"),
        ("[[tenants]]\nname='a'\nclient_id='x'\nclient_secret='y'\nfailing_runs=[1]\n", "tenants[0].failing_runs"),
    ],
)  # fmt: skip
def test_bad_switch_values_name_file_and_key(tmp_path: Path, text: str, where: str) -> None:
    """A bad switch value is a one-line ConfigError naming the file (and the key)."""
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert where in str(info.value)


def test_cli_flags_set_every_switch() -> None:
    """Each switch has a `migrator fake-zuora` flag; --variant presets and flags win over it."""
    args = _parser().parse_args(
        [
            "--tenants", "2", "--variant", "all-flipped", "--import-response-id", "definition",
            "--name-filter", "contains", "--case-insensitive-name-filter",
            "--retry-after", "concurrency-only", "--no-ratelimit-headers", "--error-bodies", "sdk",
            "--export-without-active", "404", "--export-workflow-definition",
            "--keep-unknown-keys", "--run-seconds", "1.5",
            "--failing-run", "A", "--failing-run", "B", "--reject-import", "C",
        ]
    )  # fmt: skip
    config = build_config(args)
    assert config.import_response_id == "definition" and config.name_filter == "contains"
    assert config.name_filter_case_sensitive is False and config.retry_after == "concurrency-only"
    assert config.rate_limit_headers is False and config.error_bodies == "sdk"
    assert config.export_without_active == "404" and config.export_workflow_definition
    assert config.keep_unknown_keys and config.run_seconds == 1.5
    assert [t.failing_runs for t in config.tenants] == [("A", "B"), ("A", "B")]
    assert [t.reject_imports for t in config.tenants] == [("C",), ("C",)]
    dropping = build_config(_parser().parse_args(["--tenants", "1", "--drop-unknown-keys"]))
    assert dropping.keep_unknown_keys is False


async def test_runs_survive_a_state_file_restart(tmp_path: Path) -> None:
    """Runs are part of the persisted state: a restarted fake still answers for an old run."""
    state = str(tmp_path / "state.json")
    config = FakeConfig.demo(1, state_file=state)
    async with running(config) as (_, (a,)):
        definition_id = await _active(a)
        run_id = (await a.call("POST", f"/workflows/{definition_id}/run")).body["id"]
    async with running(copy.copy(config)) as (_, (a,)):
        poll = await a.call("GET", f"/workflows/workflow_runs/{run_id}")
        assert poll.status == 200 and poll.body["id"] == run_id
