"""Conformance of the fake Zuora to the API spec, driven over real HTTP on 127.0.0.1.

Each test names the spec section it holds the fake to; the client under test is plain aiohttp.
"""

from __future__ import annotations

import asyncio
import copy
import gzip
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import orjson
import pytest

from migrator.fake import FakeConfig, FaultConfig
from migrator.fake._config import demo_tenant
from tests.conftest import SHARED_CORPUS
from tests.fake.helpers import Caller, sample_document, strip_ids
from tests.fake.helpers import running as _running


def running(config: FakeConfig | None = None) -> Any:
    """The served fake as this suite checks it: §1.12's table of error bodies and the export
    without `workflow_definition` (the `spec-error-bodies` and `no-workflow-definition-block`
    variants; the defaults follow the SDK and the live evidence since issue 23, see
    tests/fake/test_variants.py)."""
    config = config or FakeConfig.demo(2)
    return _running(replace(config, error_bodies="spec", export_workflow_definition=False))


pytestmark = pytest.mark.anyio


class Clock:
    """A hand-moved wall clock for windows, token lifetimes and TTLs."""

    def __init__(self, now: float = 1_000_000_210.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def is_error_list(body: Any, status: int) -> bool:
    return (
        isinstance(body, dict)
        and isinstance(body.get("errors"), list)
        and body["errors"]
        and all(
            set(e) == {"title", "code", "status"}
            and e["code"] == "invalid"
            and e["status"] == status
            for e in body["errors"]
        )
    )


# -- OAuth (§1.2) -------------------------------------------------------------------------------


async def test_token_issued_for_good_credentials() -> None:
    """§1.2: client credentials give a bearer token with expires_in and a request id header."""
    async with running() as (_, (a, _b)):
        answer = await a.login()
        assert answer.status == 200
        assert answer.body["token_type"] == "bearer"
        assert answer.body["expires_in"] == 3599
        assert len(answer.body["access_token"]) == 32
        assert answer.headers["Zuora-Request-Id"]


async def test_token_refused_for_bad_secret_without_echoing_it() -> None:
    """§1.2 [I]: a wrong secret gets 401 invalid_client, and the secret is not echoed back."""
    async with running() as (fake, (a, _b)):
        async with a.session.post(
            fake.base_url + "/oauth/token",
            data={
                "client_id": a.tenant.client_id,
                "client_secret": "wrong-secret-xyz",
                "grant_type": "client_credentials",
            },
        ) as resp:
            raw = await resp.read()
        assert resp.status == 401
        assert orjson.loads(raw)["error"] == "invalid_client"
        assert b"wrong-secret-xyz" not in raw


async def test_wrong_grant_type_is_400() -> None:
    """§1.2: grant_type must be client_credentials."""
    async with (
        running() as (fake, (a, _b)),
        a.session.post(
            fake.base_url + "/oauth/token",
            data={
                "client_id": a.tenant.client_id,
                "client_secret": a.tenant.client_secret,
                "grant_type": "password",
            },
        ) as resp,
    ):
        assert resp.status == 400


async def test_missing_or_unknown_token_is_401_with_error_list() -> None:
    """§1.12 [I]: API calls without a valid bearer token answer 401 {errors:[...]}."""
    async with running() as (fake, (a, _b)):
        async with a.session.get(fake.base_url + "/workflows") as resp:
            assert resp.status == 401
            assert is_error_list(orjson.loads(await resp.read()), 401)
        a.token = "0" * 32
        assert (await a.call("GET", "/workflows")).status == 401


async def test_token_expiry_gives_401_and_a_new_token_works() -> None:
    """§1.2/§7.9: after expires_in seconds the token answers 401; a fresh token is accepted."""
    clock = Clock()
    config = FakeConfig(tenants=[demo_tenant(1)], clock=clock)
    async with running(config) as (_, (a,)):
        await a.login()
        assert (await a.call("GET", "/workflows")).status == 200
        clock.now += 3599
        assert (await a.call("GET", "/workflows")).status == 401
        await a.login()
        assert (await a.call("GET", "/workflows")).status == 200


async def test_tenants_are_told_apart_by_credentials() -> None:
    """§1.1/§2: two tenants on one host see only their own workflows."""
    async with running() as (fake, (a, b)):
        assert (await a.import_new(sample_document("Only A"))).status == 200
        names_a = [d["name"] for d in (await a.call("GET", "/workflows")).body["data"]]
        names_b = [d["name"] for d in (await b.call("GET", "/workflows")).body["data"]]
        assert names_a == ["Only A"] and names_b == []
        assert [e["tenant"] for e in fake.ledger()] == [a.tenant.name]


async def test_token_endpoint_allows_the_documented_100_a_minute_per_ip() -> None:
    """§1.2: by default the 101st token request from one address within a minute is refused
    with 429 and Retry-After, the 100 before it are not."""
    clock = Clock()
    async with running(FakeConfig(tenants=[demo_tenant(1)], clock=clock)) as (_, (a,)):
        answers = [(await a.login()).status for _ in range(100)]
        assert answers == [200] * 100
        refused = await a.login()
        assert refused.status == 429 and "Retry-After" in refused.headers


async def test_token_endpoint_limited_per_ip() -> None:
    """§1.2: the token endpoint allows N requests per minute per IP, then 429 with Retry-After."""
    clock = Clock()
    config = FakeConfig(tenants=[demo_tenant(1)], clock=clock, token_requests_per_minute_per_ip=2)
    async with running(config) as (_, (a,)):
        assert (await a.login()).status == 200
        assert (await a.login()).status == 200
        third = await a.login()
        assert third.status == 429
        assert third.headers["Retry-After"] == "50"


# -- Imports (§3.6, §3.7, §6, §7.2) ---------------------------------------------------------------


async def test_import_reallocates_ids_and_rewrites_references() -> None:
    """§7.2: new task ids, linkages/task_id/file names rewritten, entry edge → version id."""
    async with running() as (_, (a, _b)):
        doc = sample_document()
        answer = await a.import_new(doc)
        assert answer.status == 200
        definition_id = answer.body["id"]
        assert answer.body["type"] == "Workflow::Setup" and answer.body["version"] == "0.0.1"
        assert "ondemandTrigger" in answer.body and "createdAt" in answer.body
        exported = (
            await a.call("GET", f"/workflows/{definition_id}/export", version="latest")
        ).body
        versions = (await a.call("GET", f"/workflows/{definition_id}/versions")).body["data"]
        version_id = versions[0]["id"]
        assert exported["workflow"]["id"] == version_id != definition_id
        ids = [t["id"] for t in exported["tasks"]]
        assert not set(ids) & {4, 3, 2}
        export_task, iterate, email = exported["tasks"]
        assert iterate["task_id"] == export_task["id"] and email["task_id"] == iterate["id"]
        assert iterate["object"] == f"Subscription__{export_task['id']}.csv.zip"
        assert list(email["parameters"]["files"]) == [f"Subscription__{export_task['id']}.csv.zip"]
        assert iterate["parameters"]["note"] == "line\r\nbreak {{Data.X}}"
        entry = next(x for x in exported["linkages"] if x["source_task_id"] is None)
        assert entry == {
            "source_workflow_id": version_id,
            "source_task_id": None,
            "target_task_id": export_task["id"],
            "linkage_type": "Start",
        }
        assert strip_ids(exported) == strip_ids(doc)


async def test_file_ref_rewrite_can_be_switched_off() -> None:
    """§9.1 [I]: with rewrite_file_refs off, `Name__<id>` strings are stored as sent."""
    async with running(FakeConfig.demo(1, rewrite_file_refs=False)) as (_, (a,)):
        definition_id = (await a.import_new(sample_document())).body["id"]
        exported = (await a.call("GET", f"/workflows/{definition_id}/export", version="0.0.1")).body
        assert exported["tasks"][1]["object"] == "Subscription__4.csv.zip"


async def test_type_is_forced_and_parameters_verbatim() -> None:
    """§3.6 [Z]: workflow.type is forced to Workflow::Setup; parameter strings keep their types."""
    async with running() as (_, (a, _b)):
        doc = sample_document()
        doc["workflow"]["type"] = "Workflow::Instance"
        definition_id = (await a.import_new(doc)).body["id"]
        exported = (
            await a.call("GET", f"/workflows/{definition_id}/export", version="latest")
        ).body
        assert exported["workflow"]["type"] == "Workflow::Setup"
        assert exported["tasks"][0]["parameters"] == doc["tasks"][0]["parameters"]


@pytest.mark.parametrize(
    "breakage",
    [
        "no_tasks",
        "no_linkages",
        "params_null",
        "params_list",
        "dangling_target",
        "dangling_source",
        "duplicate_id",
        "string_id",
        "no_entry",
        "entry_mismatch",
        "not_object",
        "bad_parent",
    ],
)
async def test_invalid_import_payloads_are_400(breakage: str) -> None:
    """§7.2: each validation rule refuses the import with 400 {errors:[...]} and commits nothing."""
    doc: Any = sample_document()
    if breakage == "no_tasks":
        doc["tasks"] = []
    elif breakage == "no_linkages":
        doc["linkages"] = []
    elif breakage == "params_null":
        doc["tasks"][0]["parameters"] = None
    elif breakage == "params_list":
        doc["tasks"][1]["parameters"] = []
    elif breakage == "dangling_target":
        doc["linkages"][1]["target_task_id"] = 99
    elif breakage == "dangling_source":
        doc["linkages"][2]["source_task_id"] = 99
    elif breakage == "duplicate_id":
        doc["tasks"][1]["id"] = 4
    elif breakage == "string_id":
        doc["tasks"][2]["id"] = "2"
    elif breakage == "no_entry":
        doc["linkages"] = doc["linkages"][1:]
    elif breakage == "entry_mismatch":
        doc["linkages"][0]["source_workflow_id"] = 8
    elif breakage == "not_object":
        doc = [doc]
    elif breakage == "bad_parent":
        doc["tasks"][2]["task_id"] = 77
    async with running() as (fake, (a, _b)):
        answer = await a.import_new(doc)
        assert answer.status == 400
        assert is_error_list(answer.body, 400)
        assert fake.ledger() == []


async def test_malformed_json_is_400() -> None:
    """§7.2: a body that is not JSON is refused with 400 {errors:[...]}."""
    async with running() as (_, (a, _b)):
        await a.login()
        async with a.session.post(
            a.fake.base_url + "/workflows/import",
            data=b"{nope",
            headers={"Authorization": f"Bearer {a.token}"},
        ) as resp:
            assert resp.status == 400
            assert is_error_list(orjson.loads(await resp.read()), 400)


async def test_skeleton_is_rejected() -> None:
    """§3.6 [Z]: the empty skeleton (no tasks, no linkages) gets 400 naming the problem."""
    path = SHARED_CORPUS / "zca-workflow-skeleton.json"
    if not path.exists():
        pytest.skip(f"shared corpus not present at {SHARED_CORPUS}")
    async with running() as (fake, (a, _b)):
        answer = await a.import_new(orjson.loads(path.read_bytes()))
        assert answer.status == 400
        assert "No tasks/linkages present" in answer.body["errors"][0]["title"]
        assert fake.ledger() == []


def _corpus() -> list[Any]:
    if not SHARED_CORPUS.exists():
        return [
            pytest.param(
                None, marks=pytest.mark.skip(reason=f"shared corpus not present at {SHARED_CORPUS}")
            )
        ]
    return [
        pytest.param(p, id=p.stem[:40])
        for p in sorted(SHARED_CORPUS.glob("*.json"))
        if orjson.loads(p.read_bytes()).get("tasks")
    ]


@pytest.mark.parametrize("path", _corpus())
async def test_real_corpus_round_trips(path: Any) -> None:
    """§3.5/§3.6: every real export with tasks imports and exports back equal up to ids (with
    keep_unknown_keys: by default the run-time task fields these exports carry are dropped)."""
    doc = orjson.loads(path.read_bytes())
    async with running(FakeConfig.demo(2, keep_unknown_keys=True)) as (_, (a, _b)):
        answer = await a.import_new(doc, version="1.0")
        assert answer.status == 200, answer.body
        exported = (
            await a.call("GET", f"/workflows/{answer.body['id']}/export", version="1.0")
        ).body
        source = {k: doc[k] for k in ("workflow", "tasks", "linkages")}
        assert strip_ids({k: exported[k] for k in source}) == strip_ids(source)
        assert "workflow_definition" not in exported


async def test_version_from_query_then_body_then_default() -> None:
    """§7.2: the version is the query's, else workflow.version, else 0.0.1."""
    async with running() as (_, (a, _b)):
        assert (await a.import_new(sample_document("Q", version="2.0"), version="3")).body[
            "version"
        ] == "3"
        assert (await a.import_new(sample_document("B", version="2.0"))).body["version"] == "2.0"
        assert (await a.import_new(sample_document("D"))).body["version"] == "0.0.1"


@pytest.mark.parametrize(
    ("existing", "wanted", "status"),
    [
        ("0.0.9", "0.0.10", 200),
        ("0.0.9", "1", 200),
        ("1.2", "1.2.1", 200),
        ("0.0.9", "0.0.9", 400),
        ("1", "1.0.0", 400),
        ("0.0.10", "0.0.9", 400),
        ("0.0.1", "abc", 400),
        ("0.0.1", "1.2.3.4", 400),
        ("0.0.1", "", 400),
        ("0.0.1", "v2", 400),
    ],
)
async def test_version_rules_on_versions_import(existing: str, wanted: str, status: int) -> None:
    """§6: a new version must be valid and numerically greater per component than the highest."""
    async with running() as (fake, (a, _b)):
        definition_id = (await a.import_new(sample_document(), version=existing)).body["id"]
        answer = await a.call(
            "POST", f"/workflows/{definition_id}/versions/import", sample_document(), version=wanted
        )
        assert answer.status == status
        if status == 400:
            assert is_error_list(answer.body, 400)
            assert len(fake.ledger()) == 1
        else:
            assert len(fake.ledger()) == 2


async def test_versions_import_needs_version_and_known_definition() -> None:
    """§3.7: `version` is required (400); an unknown definition is 404 {errors:[...]}."""
    async with running() as (_, (a, _b)):
        definition_id = (await a.import_new(sample_document())).body["id"]
        missing = await a.call(
            "POST", f"/workflows/{definition_id}/versions/import", sample_document()
        )
        assert missing.status == 400
        unknown = await a.call(
            "POST", "/workflows/999999/versions/import", sample_document(), version="1"
        )
        assert unknown.status == 404 and is_error_list(unknown.body, 404)


async def test_exactly_one_active_version() -> None:
    """§6: activate=true makes the new version the only active one; imports are inactive by default."""
    async with running() as (_, (a, _b)):
        first = await a.import_new(sample_document())
        definition_id = first.body["id"]
        got = (await a.call("GET", f"/workflows/{definition_id}")).body
        assert got["active_version"] is None and got["status"] == "Inactive"
        answer = await a.call(
            "POST",
            f"/workflows/{definition_id}/versions/import",
            sample_document(),
            version="0.0.2",
            activate=True,
        )
        assert answer.body["active_version"]["version"] == "0.0.2"
        assert answer.body["status"] == "Active"
        await a.call(
            "POST",
            f"/workflows/{definition_id}/versions/import",
            sample_document(),
            version="0.0.3",
            activate=True,
        )
        versions = (await a.call("GET", f"/workflows/{definition_id}/versions")).body["data"]
        assert [v["status"] for v in versions] == ["Inactive", "Inactive", "Active"]
        listed = (await a.call("GET", "/workflows")).body["data"][0]
        assert listed["active_version"]["version"] == "0.0.3"
        assert [v["version"] for v in listed["latest_inactive_verisons"]] == ["0.0.2", "0.0.1"]


async def test_patch_switches_active_version_and_validates() -> None:
    """§3.3: PATCH active_workflow_version_id activates it; bad fields → 422; unknown → 404."""
    async with running() as (_, (a, _b)):
        definition_id = (await a.import_new(sample_document(), activate=True)).body["id"]
        await a.call(
            "POST",
            f"/workflows/{definition_id}/versions/import",
            sample_document(),
            version="0.0.2",
        )
        versions = (await a.call("GET", f"/workflows/{definition_id}/versions")).body["data"]
        answer = await a.call(
            "PATCH",
            f"/workflows/{definition_id}",
            {"active_workflow_version_id": versions[1]["id"], "name": "New"},
        )
        assert answer.status == 200
        assert answer.body["active_version"]["id"] == versions[1]["id"]
        assert answer.body["name"] == "New"
        bad = await a.call(
            "PATCH", f"/workflows/{definition_id}", {"status": "Sleeping", "name": 5}
        )
        assert bad.status == 422 and bad.body["success"] is False
        assert {r["fieldName"] for r in bad.body["reasons"]} == {"status", "name"}
        missing = await a.call("PATCH", "/workflows/999999", {"name": "x"})
        assert missing.status == 404 and isinstance(missing.body["Errors"][0], str)


async def test_delete_version_and_definition() -> None:
    """§3.9/§3.4: the active version cannot be deleted (403 {Errors}); others and definitions can."""
    async with running() as (_, (a, _b)):
        definition_id = (await a.import_new(sample_document(), activate=True)).body["id"]
        await a.call(
            "POST",
            f"/workflows/{definition_id}/versions/import",
            sample_document(),
            version="0.0.2",
        )
        active, inactive = (await a.call("GET", f"/workflows/{definition_id}/versions")).body[
            "data"
        ]
        refused = await a.call("DELETE", f"/workflows/versions/{active['id']}")
        assert refused.status == 403 and isinstance(refused.body["Errors"][0], str)
        ok = await a.call("DELETE", f"/workflows/versions/{inactive['id']}")
        assert ok.status == 200 and ok.body == {"id": inactive["id"], "success": True}
        gone = await a.call("DELETE", f"/workflows/{definition_id}")
        assert gone.body == {"id": definition_id, "success": True}
        again = await a.call("DELETE", f"/workflows/{definition_id}")
        assert again.status == 404 and isinstance(again.body["Errors"][0], str)
        assert (await a.call("GET", f"/workflows/{definition_id}")).status == 404


# -- Export (§3.5) --------------------------------------------------------------------------------


async def test_export_version_selection() -> None:
    """§3.5: default active, `latest` = highest, a number = that one, bad → 400, absent → 404."""
    async with running() as (_, (a, _b)):
        definition_id = (await a.import_new(sample_document(), activate=True)).body["id"]
        await a.call(
            "POST",
            f"/workflows/{definition_id}/versions/import",
            sample_document(),
            version="0.0.10",
        )
        path = f"/workflows/{definition_id}/export"
        assert (await a.call("GET", path)).body["workflow"]["version"] == "0.0.1"
        assert (await a.call("GET", path, version="latest")).body["workflow"]["version"] == "0.0.10"
        assert (await a.call("GET", path, version="0.0.10")).status == 200
        bad = await a.call("GET", path, version="x.y")
        assert bad.status == 400 and is_error_list(bad.body, 400)
        absent = await a.call("GET", path, version="5")
        assert absent.status == 404 and is_error_list(absent.body, 404)
        unknown = await a.call("GET", "/workflows/999999/export")
        assert unknown.status == 404 and is_error_list(unknown.body, 404)


async def test_export_without_active_version() -> None:
    """[I]: with no active version, export without `version` gives the latest (or 404 if so set)."""
    async with running() as (_, (a, _b)):
        definition_id = (await a.import_new(sample_document())).body["id"]
        assert (await a.call("GET", f"/workflows/{definition_id}/export")).status == 200
    async with running(FakeConfig.demo(1, export_without_active="404")) as (_, (a,)):
        definition_id = (await a.import_new(sample_document())).body["id"]
        assert (await a.call("GET", f"/workflows/{definition_id}/export")).status == 404


# -- Listing (§3.1, §3.2, §3.8) -------------------------------------------------------------------


async def test_pagination_absolute_next_page_only_when_more() -> None:
    """§3.1: page_length ≤ 50, absolute next_page while more exist, none on the last page."""
    async with running() as (fake, (a, _b)):
        for i in range(5):
            await a.import_new(sample_document(f"W{i}"))
        first = await a.call("GET", "/workflows", page_length=2)
        assert [d["name"] for d in first.body["data"]] == ["W4", "W3"]
        next_page = first.body["pagination"]["next_page"]
        assert next_page.startswith(fake.base_url + "/workflows?")
        second = await a.call("GET", next_page)
        assert second.body["pagination"]["page"] == 2
        third = await a.call("GET", second.body["pagination"]["next_page"])
        assert [d["name"] for d in third.body["data"]] == ["W0"]
        assert "next_page" not in third.body["pagination"]
        assert third.body["pagination"] == {"page": 3, "page_length": 2}
        exact = await a.call("GET", "/workflows", page_length=5)
        assert "next_page" not in exact.body["pagination"]
        clamped = await a.call("GET", "/workflows", page_length=500)
        assert clamped.body["pagination"]["page_length"] == 50
        assert (await a.call("GET", "/workflows", page=0)).status == 400


async def test_list_filters_by_exact_name() -> None:
    """§3.1 [I]: the name filter is an exact match."""
    async with running() as (_, (a, _b)):
        await a.import_new(sample_document("Alpha"))
        await a.import_new(sample_document("Alpha Beta"))
        found = (await a.call("GET", "/workflows", name="Alpha")).body["data"]
        assert [d["name"] for d in found] == ["Alpha"]


async def test_response_casing() -> None:
    """§3 casing: camelCase definition fields with snake_case active_version and the misspelling."""
    async with running() as (_, (a, _b)):
        definition_id = (await a.import_new(sample_document(), activate=True)).body["id"]
        got = (await a.call("GET", f"/workflows/{definition_id}")).body
        assert {
            "calloutTrigger",
            "ondemandTrigger",
            "scheduledTrigger",
            "createdAt",
            "updatedAt",
            "active_version",
            "priority",
        } <= set(got)
        listed = (await a.call("GET", "/workflows")).body["data"][0]
        assert "latest_inactive_verisons" in listed
        version = (await a.call("GET", f"/workflows/{definition_id}/versions")).body["data"][0]
        assert {"id", "name", "version", "type", "calloutTrigger", "createdAt"} <= set(version)
        exported = (await a.call("GET", f"/workflows/{definition_id}/export")).body
        assert "ondemand_trigger" in exported["workflow"]


async def test_unknown_routes_and_methods() -> None:
    """Unknown paths are 404, known paths with another method 405, both {errors:[...]}."""
    async with running() as (_, (a, _b)):
        assert (await a.call("GET", "/workflows/nope/export")).status == 404
        assert (await a.call("PUT", "/workflows")).status == 405


# -- Headers (§1.4, §1.9, §1.10) ------------------------------------------------------------------


async def test_request_id_and_rate_limit_headers() -> None:
    """§1.4: every answer has Zuora-Request-Id (≤ 36) and RateLimit-* in the documented format."""
    async with running() as (_, (a, _b)):
        answer = await a.call("GET", "/workflows")
        assert len(answer.headers["Zuora-Request-Id"]) <= 36
        assert answer.headers["RateLimit-Limit"] == "2500, 2500;w=60"
        assert answer.headers["RateLimit-Remaining"] == "2499"
        assert 1 <= int(answer.headers["RateLimit-Reset"]) <= 60


async def test_track_id_echoed_or_refused() -> None:
    """§1.9: a valid Zuora-Track-Id is echoed; a long or `:;\"'` one is 400; none → no header."""
    async with running() as (_, (a, _b)):
        ok = await a.call("GET", "/workflows", headers={"Zuora-Track-Id": "run-42/item-7"})
        assert ok.headers["Zuora-Track-Id"] == "run-42/item-7"
        assert "Zuora-Track-Id" not in (await a.call("GET", "/workflows")).headers
        for bad in ("a:b", "a;b", 'a"b', "a'b", "x" * 65):
            refused = await a.call("GET", "/workflows", headers={"Zuora-Track-Id": bad})
            assert refused.status == 400 and is_error_list(refused.body, 400)


async def test_gzip_both_ways() -> None:
    """§1.10: gzip request bodies are accepted; responses over 1000 bytes gzip only when asked."""
    async with running() as (_, (a, _b)):
        answer = await a.call("POST", "/workflows/import", sample_document(), gzip_body=True)
        assert answer.status == 200
        path = f"/workflows/{answer.body['id']}/export"
        zipped = await a.call("GET", path, headers={"Accept-Encoding": "gzip"})
        assert zipped.headers["Content-Encoding"] == "gzip"
        assert zipped.body["workflow"]["name"] == "Sample"
        plain = await a.call("GET", path, headers={"Accept-Encoding": "identity"})
        assert "Content-Encoding" not in plain.headers
        small = await a.call("GET", "/workflows/999999", headers={"Accept-Encoding": "gzip"})
        assert "Content-Encoding" not in small.headers


async def test_corrupt_gzip_body_is_400() -> None:
    """§1.10: a body that claims gzip but is not is refused, not crashed on."""
    async with running() as (_, (a, _b)):
        await a.login()
        async with a.session.post(
            a.fake.base_url + "/workflows/import",
            data=b"not gzip",
            headers={"Authorization": f"Bearer {a.token}", "Content-Encoding": "gzip"},
        ) as resp:
            assert resp.status == 400


# -- Limits (§1.5, §1.6) ----------------------------------------------------------------------------


async def test_rate_limit_429_with_correct_retry_after() -> None:
    """§1.5: over the per-minute quota → 429, remaining 0, Retry-After = seconds to the window end."""
    clock = Clock(1_000_000_210.0)  # 10 s into a minute window (which starts at ...200)
    config = FakeConfig(tenants=[demo_tenant(1, requests_per_minute=3)], clock=clock)
    async with running(config) as (fake, (a,)):
        for _ in range(3):
            assert (await a.call("GET", "/workflows")).status == 200
        refused = await a.call("GET", "/workflows")
        assert refused.status == 429
        assert refused.headers["Retry-After"] == "50"
        assert refused.headers["RateLimit-Remaining"] == "0"
        assert is_error_list(refused.body, 429)
        clock.now += 50
        assert (await a.call("GET", "/workflows")).status == 200
        assert fake.ledger() == []


async def test_hour_window_reported_in_rate_limit_limit() -> None:
    """§1.5: with hour and day quotas the header lists every window as N;w=S."""
    config = FakeConfig(
        tenants=[
            demo_tenant(1, requests_per_minute=100, requests_per_hour=150, requests_per_day=1000)
        ],
        clock=Clock(),
    )
    async with running(config) as (_, (a,)):
        header = (await a.call("GET", "/workflows")).headers["RateLimit-Limit"]
        assert header.endswith("100;w=60, 150;w=3600, 1000;w=86400")


async def _held_request(a: Caller, key: str | None) -> tuple[asyncio.Task[Any], asyncio.Event]:
    """Start an import whose body stalls until the returned event is set (holds a slot)."""
    release = asyncio.Event()
    body = orjson.dumps(sample_document("Held"))

    async def stream() -> AsyncIterator[bytes]:
        yield body[:10]
        await release.wait()
        yield body[10:]

    headers = {"Authorization": f"Bearer {a.token}", "Content-Type": "application/json"}
    if key:
        headers["Idempotency-Key"] = key

    async def send() -> int:
        async with a.session.post(
            a.fake.base_url + "/workflows/import", data=stream(), headers=headers
        ) as resp:
            await resp.read()
            return resp.status

    task = asyncio.create_task(send())
    # Poll: the server exposes no event for "request admitted", and a test hook would be worse.
    while sum(a.fake._inflight.values()) == 0:  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    return task, release


async def test_concurrency_limit_429() -> None:
    """§1.6: one request over max_concurrency gets 429 with Retry-After; the held one completes."""
    config = FakeConfig(tenants=[demo_tenant(1, max_concurrency=1)])
    async with running(config) as (fake, (a,)):
        await a.login()
        task, release = await _held_request(a, None)
        refused = await a.call("GET", "/workflows")
        assert refused.status == 429
        assert refused.headers["Retry-After"] == "1"
        release.set()
        assert await task == 200
        assert (await a.call("GET", "/workflows")).status == 200
        assert len(fake.ledger()) == 1


# -- Idempotency (§1.8) -------------------------------------------------------------------------------


async def test_same_key_replays_the_stored_answer() -> None:
    """§1.8: a second request with the same key gets the first status and body, no new import."""
    async with running() as (fake, (a, _b)):
        key = {"Idempotency-Key": "k-1"}
        first = await a.import_new(sample_document(), headers=key)
        second = await a.import_new(sample_document("Other name"), headers=key)
        assert second.status == first.status == 200
        assert second.body == first.body
        assert len(fake.ledger()) == 1
        assert fake.ledger()[0]["idempotency_key"] == "k-1"


async def test_failed_answers_are_stored_too() -> None:
    """§1.8: the stored result is kept whether the call succeeded or failed."""
    async with running() as (fake, (a, _b)):
        key = {"Idempotency-Key": "k-bad"}
        bad = sample_document()
        bad["tasks"] = []
        assert (await a.import_new(bad, headers=key)).status == 400
        assert (await a.import_new(sample_document(), headers=key)).status == 400
        assert fake.ledger() == []


async def test_replay_as_409_switch() -> None:
    """§1.8 contradiction: with idempotent_replay="409" a completed key answers 409 + stored body."""
    async with running(FakeConfig.demo(1, idempotent_replay="409")) as (fake, (a,)):
        key = {"Idempotency-Key": "k-2"}
        first = await a.import_new(sample_document(), headers=key)
        second = await a.import_new(sample_document(), headers=key)
        assert second.status == 409 and second.body == first.body
        assert len(fake.ledger()) == 1


async def test_key_reused_on_other_url_or_method_is_422() -> None:
    """§1.8: the same key on another URL or method is 422."""
    async with running() as (_, (a, _b)):
        key = {"Idempotency-Key": "k-3"}
        definition_id = (await a.import_new(sample_document(), headers=key)).body["id"]
        other = await a.call(
            "POST",
            f"/workflows/{definition_id}/versions/import",
            sample_document(),
            headers=key,
            version="2",
        )
        assert other.status == 422 and is_error_list(other.body, 422)
        patch = await a.call("PATCH", "/workflows/import", {"name": "x"}, headers=key)
        assert patch.status in (405, 422)


async def test_keys_are_scoped_per_tenant() -> None:
    """§7.8: the store is keyed by (tenant, key): two tenants may use the same key."""
    async with running() as (fake, (a, b)):
        key = {"Idempotency-Key": "shared"}
        assert (await a.import_new(sample_document(), headers=key)).status == 200
        assert (await b.import_new(sample_document(), headers=key)).status == 200
        assert len(fake.ledger()) == 2


async def test_in_flight_duplicate_is_409_then_one_import() -> None:
    """§1.8: a duplicate while the first is still processing gets 409; only one import commits."""
    async with running() as (fake, (a, _b)):
        await a.login()
        task, release = await _held_request(a, "k-inflight")
        dup = await a.import_new(sample_document("Held"), headers={"Idempotency-Key": "k-inflight"})
        assert dup.status == 409 and is_error_list(dup.body, 409)
        release.set()
        assert await task == 200
        again = await a.import_new(
            sample_document("Held"), headers={"Idempotency-Key": "k-inflight"}
        )
        assert again.status == 200
        assert len(fake.ledger()) == 1


# -- Faults ------------------------------------------------------------------------------------------


async def test_lost_response_then_retry_with_same_key_imports_once() -> None:
    """A lost response commits the import; the retry with the same key is a replay, not a second."""
    async with running() as (fake, (a, _b)):
        await a.login()
        fake.set_faults(a.tenant.name, FaultConfig(lost_response_rate=1.0))
        with pytest.raises(aiohttp.ClientError):
            await a.import_new(sample_document(), headers={"Idempotency-Key": "k-lost"})
        assert len(fake.ledger()) == 1
        fake.set_faults(a.tenant.name, FaultConfig())
        retry = await a.import_new(sample_document(), headers={"Idempotency-Key": "k-lost"})
        assert retry.status == 200
        assert retry.body["id"] == fake.ledger()[0]["definition_id"]
        assert len(fake.ledger()) == 1


async def test_lost_response_without_key_duplicates() -> None:
    """Why keys matter: a lost response retried without a key imports a second time."""
    async with running() as (fake, (a, _b)):
        await a.login()
        fake.set_faults(a.tenant.name, FaultConfig(lost_response_rate=1.0))
        with pytest.raises(aiohttp.ClientError):
            await a.import_new(sample_document())
        fake.set_faults(a.tenant.name, FaultConfig())
        assert (await a.import_new(sample_document())).status == 200
        assert len(fake.ledger()) == 2


async def test_injected_errors_do_no_work_and_are_not_stored() -> None:
    """An injected 5xx does no work, and the same key afterwards runs the request for real."""
    async with running() as (fake, (a, _b)):
        await a.login()
        fake.set_faults(a.tenant.name, FaultConfig(error_rate=1.0, error_statuses=(503,)))
        failed = await a.import_new(sample_document(), headers={"Idempotency-Key": "k-err"})
        assert failed.status == 503 and is_error_list(failed.body, 503)
        assert fake.ledger() == []
        fake.set_faults(a.tenant.name, FaultConfig())
        assert (
            await a.import_new(sample_document(), headers={"Idempotency-Key": "k-err"})
        ).status == 200
        assert len(fake.ledger()) == 1


async def test_connection_reset_does_no_work() -> None:
    """A reset drops the connection before any work: the client errors, the ledger stays empty."""
    async with running() as (fake, (a, _b)):
        await a.login()
        fake.set_faults(a.tenant.name, FaultConfig(reset_rate=1.0))
        with pytest.raises(aiohttp.ClientError):
            await a.import_new(sample_document(), headers={"Idempotency-Key": "k-reset"})
        assert fake.ledger() == []


async def test_slow_body_and_latency_still_deliver() -> None:
    """Latency with jitter and a trickled body still deliver a complete, correct answer."""
    async with running() as (fake, (a, _b)):
        await a.login()
        fake.set_faults(
            a.tenant.name, FaultConfig(latency=0.01, latency_jitter=0.01, slow_body=0.05)
        )
        answer = await a.import_new(sample_document())
        assert answer.status == 200 and answer.body["name"] == "Sample"


async def test_fault_plan_is_reproducible_from_the_seed() -> None:
    """The same seed gives the same sequence of injected errors."""

    async def statuses() -> list[int]:
        tenant = demo_tenant(1, faults=FaultConfig(error_rate=0.5))
        async with running(FakeConfig(tenants=[tenant], seed=11)) as (_, (a,)):
            return [(await a.call("GET", "/workflows")).status for _ in range(20)]

    first = await statuses()
    assert first == await statuses()
    assert {200} < set(first)


# -- Inspection (not Zuora) -------------------------------------------------------------------------


async def test_ledger_endpoint_lists_committed_imports() -> None:
    """/_fake/ledger lists every committed import with its fields, filterable by tenant."""
    async with running() as (fake, (a, b)):
        await a.import_new(sample_document("A1"), headers={"Idempotency-Key": "ka"})
        await b.import_new(sample_document("B1"))
        async with a.session.get(fake.base_url + "/_fake/ledger") as resp:
            imports = orjson.loads(await resp.read())["imports"]
        assert [i["name"] for i in imports] == ["A1", "B1"]
        assert set(imports[0]) == {
            "tenant",
            "definition_id",
            "version_id",
            "version",
            "name",
            "idempotency_key",
            "content_sha256",
            "at",
        }
        async with a.session.get(
            fake.base_url + "/_fake/ledger", params={"tenant": b.tenant.name}
        ) as resp:
            only_b = orjson.loads(await resp.read())["imports"]
        assert [i["name"] for i in only_b] == ["B1"]
        assert fake.ledger(b.tenant.name) == only_b
        async with a.session.post(fake.base_url + "/_fake/reset") as resp:
            assert resp.status == 200
        assert fake.ledger() == []


async def test_preloaded_and_altered_versions() -> None:
    """state.add_workflow pre-loads outside the ledger; alter_version changes what export shows."""
    async with running() as (fake, (a, _b)):
        definition_id, version_id = fake.state.add_workflow(
            a.tenant.name, sample_document("Pre"), version="1.0", activate=True
        )
        assert fake.ledger() == []
        fake.state.alter_version(
            a.tenant.name, version_id, lambda doc: doc["tasks"][0]["parameters"].update(limit="1")
        )
        exported = (await a.call("GET", f"/workflows/{definition_id}/export")).body
        assert exported["workflow"]["id"] == version_id
        assert exported["tasks"][0]["parameters"]["limit"] == "1"
        answer = await a.call(
            "POST",
            f"/workflows/{definition_id}/versions/import",
            copy.deepcopy(sample_document("Pre")),
            version="1.1",
        )
        assert answer.status == 200


async def test_gzip_import_payload_hash_matches_plain() -> None:
    """The ledger's content_sha256 depends on the document, not on gzip or formatting."""
    async with running() as (fake, (a, _b)):
        await a.call("POST", "/workflows/import", sample_document(), gzip_body=True)
        await a.call("POST", "/workflows/import", sample_document())
        first, second = fake.ledger()
        assert first["content_sha256"] == second["content_sha256"]
        assert gzip  # imported for the gzip helpers in this module


async def test_oversized_body_is_413() -> None:
    """§1.11 [I]: a body over max_body_bytes is refused with 413 {errors:[...]}."""
    async with running(FakeConfig.demo(1, max_body_bytes=2000)) as (fake, (a,)):
        doc = sample_document()
        doc["tasks"][0]["parameters"]["big"] = "x" * 5000
        answer = await a.import_new(doc, headers={"Idempotency-Key": "k-big"})
        assert answer.status == 413 and is_error_list(answer.body, 413)
        assert fake.ledger() == []


async def test_idempotency_key_expires_after_24h_over_http() -> None:
    """§1.8: after 24 h the same key runs the request again (a second import)."""
    clock = Clock()
    async with running(FakeConfig(tenants=[demo_tenant(1, token_ttl=10**7)], clock=clock)) as (
        fake,
        (a,),
    ):
        key = {"Idempotency-Key": "k-day"}
        assert (await a.import_new(sample_document(), headers=key)).status == 200
        clock.now += 24 * 3600 - 1
        assert (await a.import_new(sample_document(), headers=key)).status == 200
        assert len(fake.ledger()) == 1
        clock.now += 1
        assert (await a.import_new(sample_document(), headers=key)).status == 200
        assert len(fake.ledger()) == 2


async def test_client_giving_up_on_a_slow_body_leaves_the_fake_serving() -> None:
    """A client that times out mid slow body does not upset the fake: the next call succeeds."""
    async with running() as (fake, (a, _b)):
        await a.login()
        fake.set_faults(a.tenant.name, FaultConfig(slow_body=1.0))
        timeout = aiohttp.ClientTimeout(sock_read=0.05)
        with pytest.raises(asyncio.TimeoutError):
            async with a.session.get(
                fake.base_url + "/workflows",
                headers={"Authorization": f"Bearer {a.token}"},
                timeout=timeout,
            ) as resp:
                await resp.read()
        fake.set_faults(a.tenant.name, FaultConfig())
        assert (await a.call("GET", "/workflows")).status == 200


async def test_keyed_retries_under_every_fault_import_exactly_once() -> None:
    """Under seeded errors, lost responses and resets, retrying with one key per document commits each once."""
    faults = FaultConfig(error_rate=0.2, lost_response_rate=0.2, reset_rate=0.2)
    config = FakeConfig(tenants=[demo_tenant(1, faults=faults)], seed=3)
    async with running(config) as (fake, (a,)):
        outcomes: set[str] = set()
        for i in range(30):
            for _attempt in range(50):
                try:
                    answer = await a.import_new(
                        sample_document(f"D{i}"), headers={"Idempotency-Key": f"doc-{i}"}
                    )
                except aiohttp.ClientError:
                    outcomes.add("disconnect")
                    continue
                if answer.status == 200:
                    break
                outcomes.add(str(answer.status))
            else:
                raise AssertionError(f"document {i} never succeeded")
        keys = [e["idempotency_key"] for e in fake.ledger()]
        assert sorted(keys) == sorted(f"doc-{i}" for i in range(30))
        assert "disconnect" in outcomes and outcomes & {"500", "502", "503", "504"}
