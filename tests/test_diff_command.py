"""`migrator diff` over real HTTP against the built-in fake (issue 17): the drift matrix's
statuses in one run, its exit codes, its JSON and HTML, `--from-tenant`, bad input, and the
one-line change `plan` gives a planned new version."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import orjson
import pytest

from migrator.core.config import Secret
from migrator.core.drift import DRIFTED, EXTRA, FAILED, IN_SYNC, MISSING
from migrator.fake import FakeConfig
from migrator.run.diff import diff_tenants
from migrator.run.inputs import read_sources
from migrator.run.migrate import migrate
from migrator.run.options import MigrateOptions
from tests.builders import _config as _variant_config
from tests.builders import small_export
from tests.conftest import SAMPLES
from tests.helpers import (
    Env,
    run_cli,
    running_fake,
    traced_peak,
    traced_peak_async,
)

pytestmark = pytest.mark.anyio

SECRET_OF_4 = "TEST_SECRET_TENANT_4"


def write_sources(folder: Path, *names: str) -> Path:
    """One small export per name in `folder`."""
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / f"{name.lower()}.json").write_bytes(orjson.dumps(small_export(name)))
    return folder


def version_id(env: Env, tenant: str, name: str) -> int:
    """The id of the only version of the tenant's definition `name`."""
    state = env.fake.state
    [def_id] = [
        d
        for d in state.list_definitions(tenant, {})
        if state.definition_json(tenant, d)["name"] == name
    ]
    [only] = state.list_versions(tenant, def_id)
    return int(only["id"])


def hand_edit(doc: dict[str, Any]) -> None:
    """What an admin does in the UI: a task field edited and a linkage's type changed."""
    tasks = {t["name"]: t for t in doc["tasks"]}
    tasks["Mail"]["parameters"]["count"] = "10"
    by_id = {t["id"]: t["name"] for t in doc["tasks"]}
    for link in doc["linkages"]:
        if link.get("source_task_id") is not None and by_id[link["source_task_id"]] == "Export":
            link["linkage_type"] = "Failure"


async def fleet(env: Env, sources: Path) -> None:
    """tenant-1 in sync plus an extra, tenant-2 with Alpha edited by hand, tenant-3 empty."""
    report = await migrate(
        env.settings, MigrateOptions(sources=[str(sources)], tenants=["tenant-1", "tenant-2"])
    )
    assert report.ok, report.to_json()
    env.fake.state.add_workflow("tenant-1", small_export("Hand made"), version="0.0.1")
    env.fake.state.alter_version("tenant-2", version_id(env, "tenant-2", "Alpha"), hand_edit)


async def test_every_status_in_one_run_with_exit_code_and_json(tmp_path: Path) -> None:
    """One run shows in-sync, drifted (the field and linkage edits at task level), missing, extra
    and failed (bad credentials) cells, exits 1, and its JSON has exactly the issue's shape."""
    sources = write_sources(tmp_path / "src", "Alpha", "Beta")
    async with running_fake(FakeConfig.demo(4)) as env:
        await fleet(env, sources)
        run = await run_cli(
            env, tmp_path, "diff", str(sources), "--json", bad_secret_for="tenant-4"
        )
        assert run.code == 1, run.err
        data = orjson.loads(run.out)
        assert set(data) == {"tenants", "failed_sources"} and data["failed_sources"] == []
        assert list(data["tenants"]) == ["tenant-1", "tenant-2", "tenant-3", "tenant-4"]
        status = {
            (t, w["name"]): w["status"]
            for t, column in data["tenants"].items()
            for w in column["workflows"]
        }
        assert status == {
            ("tenant-1", "Alpha"): IN_SYNC,
            ("tenant-1", "Beta"): IN_SYNC,
            ("tenant-1", "Hand made"): EXTRA,
            ("tenant-2", "Alpha"): DRIFTED,
            ("tenant-2", "Beta"): IN_SYNC,
            ("tenant-3", "Alpha"): MISSING,
            ("tenant-3", "Beta"): MISSING,
            ("tenant-4", "Alpha"): FAILED,
            ("tenant-4", "Beta"): FAILED,
        }
        for column in data["tenants"].values():
            assert set(column) == {"workflows"}
            for w in column["workflows"]:
                keys = {"name", "status", "target_workflow_id", "target_version", "differences"}
                assert set(w) - {"reason"} == keys
                assert ("reason" in w) == (w["status"] in (MISSING, FAILED))
        [drift] = [w for w in data["tenants"]["tenant-2"]["workflows"] if w["status"] == DRIFTED]
        assert drift["target_version"] == "0.0.2" and isinstance(drift["target_workflow_id"], int)
        for d in drift["differences"]:
            assert set(d) == {"path", "source", "target", "kind"}
        by_path = {d["path"]: d for d in drift["differences"]}
        assert by_path['tasks["Mail"].parameters.count'] == {
            "path": 'tasks["Mail"].parameters.count',
            "source": "2000",
            "target": "10",
            "kind": "task-field",
        }
        kinds = sorted(d["kind"] for d in drift["differences"])
        assert kinds == ["linkage-added", "linkage-removed", "task-field"]
        [failed] = [w for w in data["tenants"]["tenant-4"]["workflows"] if w["name"] == "Alpha"]
        assert "could not read tenant tenant-4" in failed["reason"]
        assert "not-the-secret" not in run.out + run.err

        # The terminal view: the matrix, the legend, the drift at task level, the failure.
        run = await run_cli(env, tmp_path, "diff", str(sources), bad_secret_for="tenant-4")
        assert run.code == 1
        lines = run.out.splitlines()
        assert lines[0].split() == ["workflow", "tenant-1", "tenant-2", "tenant-3", "tenant-4"]
        assert lines[1].split() == ["Alpha", "=", "~", "-", "!"]
        assert "= in-sync  ~ drifted  - missing  + extra  ! failed" in run.out
        assert 'task "Mail": parameters.count: "2000" → "10"' in run.out
        assert 'linkage "Export" → "Iterate" (Failure) added' in run.out
        assert 'linkage "Export" → "Iterate" (Success) removed' in run.out
        assert "tenant-4 / Alpha: failed: could not read tenant tenant-4" in run.out


async def test_exit_zero_when_every_pair_is_in_sync_whatever_the_extras(tmp_path: Path) -> None:
    """Tenants holding exactly what the sources say exit 0, even with a workflow of their own."""
    sources = write_sources(tmp_path / "src", "Alpha", "Beta")
    async with running_fake() as env:
        await fleet(env, sources)
        run = await run_cli(env, tmp_path, "diff", str(sources), "--tenant", "tenant-1")
        assert run.code == 0, run.out + run.err
        assert "2 in-sync, 1 extra" in run.out
        run = await run_cli(env, tmp_path, "diff", str(sources), "--tenant", "tenant-2")
        assert run.code == 1


async def test_substituted_values_are_in_sync(tmp_path: Path) -> None:
    """A tenant whose copy differs only by its substitution table's values is in sync: the
    source side is what a migration would send it."""
    doc = small_export("Alpha")
    doc["tasks"][2]["parameters"]["email"]["to"] = "ops@sandbox.example.com"
    (tmp_path / "alpha.json").write_bytes(orjson.dumps(doc))
    subs = {"tenant-2": {"ops@sandbox.example.com": "ops@prod.example.com"}}
    async with running_fake(substitutions=subs) as env:
        options = MigrateOptions(sources=[str(tmp_path / "alpha.json")], tenants=["tenant-2"])
        assert (await migrate(env.settings, options)).ok
        report = await diff_tenants(env.settings, [str(tmp_path / "alpha.json")], ["tenant-2"])
        [cell] = report.tenants[0].workflows
        assert cell.status == IN_SYNC, cell


async def test_active_version_is_compared_and_a_definition_without_versions_is_missing(
    tmp_path: Path,
) -> None:
    """With an older version active, that version is compared (not the highest); with none
    active, the highest; a definition with no versions is missing, with its id and why; two
    definitions of one name fail that cell."""
    sources = write_sources(tmp_path / "src", "Alpha", "Beta", "Empty")
    renamed = small_export("Alpha")
    renamed["tasks"][0]["name"] = "Renamed"
    async with running_fake() as env:
        state = env.fake.state
        alpha, v1 = state.add_workflow("tenant-1", small_export("Alpha"), version="0.0.1")
        state.add_workflow("tenant-1", renamed, version="0.0.5", definition_id=alpha)
        state.patch_definition("tenant-1", alpha, {"active_workflow_version_id": v1})
        beta, _ = state.add_workflow("tenant-1", small_export("Beta"), version="0.0.1")
        renamed["workflow"]["name"] = "Beta"
        state.add_workflow("tenant-1", renamed, version="0.0.2", definition_id=beta)
        empty, only = state.add_workflow("tenant-1", small_export("Empty"), version="0.0.1")
        state.delete_version("tenant-1", only)
        twice = [state.add_workflow("tenant-1", small_export("Twice"))[0] for _ in range(2)]
        (sources / "twice.json").write_bytes(orjson.dumps(small_export("Twice")))
        report = await diff_tenants(env.settings, [str(sources)], ["tenant-1"])
        cells = {w.name: w for w in report.tenants[0].workflows}
        assert (cells["Alpha"].status, cells["Alpha"].target_version) == (IN_SYNC, "0.0.1")
        assert (cells["Beta"].status, cells["Beta"].target_version) == (DRIFTED, "0.0.2")
        assert [d.describe() for d in cells["Beta"].differences if "added" in d.describe()][:1] == [
            'task "Renamed" added'
        ]
        assert cells["Empty"].status == MISSING
        assert cells["Empty"].target_workflow_id == empty
        assert cells["Empty"].reason == f"definition {empty} has no versions"
        assert cells["Twice"].status == FAILED
        assert cells["Twice"].reason == (
            f"2 definitions named 'Twice' (ids {min(twice)}, {max(twice)}): ambiguous"
        )
        assert report.exit_code() == 1


async def test_from_tenant_compares_tenants_without_files(tmp_path: Path) -> None:
    """`--from-tenant` takes one tenant's active versions as the sources: another tenant holding
    the same is in sync, a hand-edited one drifted, an empty one missing; the source tenant is
    not a column."""
    sources = write_sources(tmp_path / "src", "Alpha", "Beta")
    async with running_fake() as env:
        await fleet(env, sources)
        run = await run_cli(env, tmp_path, "diff", "--from-tenant", "tenant-1", "--json")
        assert run.code == 1, run.err
        data = orjson.loads(run.out)
        assert list(data["tenants"]) == ["tenant-2", "tenant-3"]
        status = {
            (t, w["name"]): w["status"]
            for t, column in data["tenants"].items()
            for w in column["workflows"]
        }
        assert status == {
            ("tenant-2", "Alpha"): DRIFTED,
            ("tenant-2", "Beta"): IN_SYNC,
            ("tenant-2", "Hand made"): MISSING,
            ("tenant-3", "Alpha"): MISSING,
            ("tenant-3", "Beta"): MISSING,
            ("tenant-3", "Hand made"): MISSING,
        }
        run = await run_cli(
            env, tmp_path, "diff", "--from-tenant", "tenant-2", "--tenant", "tenant-1"
        )
        assert run.code == 1
        assert "1 in-sync, 1 drifted, 1 extra" in run.out
        # A source tenant that cannot be read leaves nothing to compare: one line, exit 2.
        run = await run_cli(
            env, tmp_path, "diff", "--from-tenant", "tenant-1", bad_secret_for="tenant-1"
        )
        assert run.code == 2, run.out + run.err
        [line] = run.err.strip().splitlines()
        assert line.startswith("migrator: error: source tenant tenant-1 could not be read: ")
        assert "not-the-secret" not in line


class _Page(HTMLParser):
    """The page's structure: tags with their attributes, and the text of each <details>."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


async def test_html_page_for_the_fake(tmp_path: Path) -> None:
    """`--html` writes one self-contained page: the matrix coloured by status, the filters, and
    for the drifted cell its differences and two task graphs; the exit code is the matrix's."""
    sources = write_sources(tmp_path / "src", "Alpha", "Beta")
    async with running_fake() as env:
        await fleet(env, sources)
        run = await run_cli(env, tmp_path, "diff", str(sources), "--html", "out/drift.html")
        assert run.code == 2 and "does not exist" in run.err  # the folder is not there yet
        (tmp_path / "out").mkdir()
        run = await run_cli(env, tmp_path, "diff", str(sources), "--html", "out/drift.html")
        assert run.code == 1, run.err
        path = tmp_path / "out" / "drift.html"
        assert path.stat().st_mode & 0o777 == 0o600
        text = path.read_text()
        page = _Page()
        page.feed(text)
        tags = page.tags
        # Self-contained: no external script, style sheet, font or image.
        assert not [
            a for t, a in tags if t in ("script", "img", "link") and a.get("src", a.get("href"))
        ]
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
        cells = [a.get("class") for t, a in tags if t == "td"]
        assert sorted(c for c in cells if c) == sorted(["i", "i", "e", "d", "i", "m", "m"])
        assert ("select", {"id": "ft"}) in tags
        details = [a for t, a in tags if t == "details"]
        assert [a.get("data-t") for a in details] == ["2"]  # tenant-2's column
        assert sum(1 for t, _ in tags if t == "svg") == 2
        assert "parameters.count" in text and "Failure" in text
        assert len(text.encode()) < 200_000


async def test_bad_input_is_one_line_exit_2_before_any_request(tmp_path: Path) -> None:
    """An unwritable or impossible --html path, an unknown tenant, sources and --from-tenant
    together, no sources at all, a missing path: one line, exit 2, no request sent."""
    sources = write_sources(tmp_path / "src", "Alpha")
    (tmp_path / "empty").mkdir()
    (tmp_path / "a-folder").mkdir()
    readonly = tmp_path / "readonly.html"
    readonly.write_text("")
    readonly.chmod(0o400)
    cases = [
        (["diff", str(sources), "--html", "nowhere/d.html"], "nowhere"),
        (["diff", str(sources), "--html", "a-folder"], "is a folder"),
        (["diff", str(sources), "--tenant", "nowhere"], "unknown tenant 'nowhere'"),
        (["diff", str(sources), "--from-tenant", "tenant-1"], "not both"),
        (["diff"], "at least one SOURCE"),
        (["diff", "--from-tenant", "nowhere"], "unknown source tenant 'nowhere'"),
        (["diff", str(tmp_path / "absent")], "no such file or directory"),
        (["diff", str(tmp_path / "empty")], "no workflow documents"),
    ]
    if os.geteuid() != 0:  # root writes anywhere: the check cannot refuse it
        cases.append((["diff", str(sources), "--html", str(readonly)], "not writable"))
    async with running_fake() as env:
        for args, words in cases:
            run = await run_cli(env, tmp_path, *args)
            assert run.code == 2, (args, run.out, run.err)
            lines = run.err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("migrator: error:"), (args, run.err)
            assert words in lines[0], (args, lines[0])
            assert "Traceback" not in run.err
        assert env.fake.requests == 0 and not env.fake.tokens


async def test_an_unreadable_source_is_one_failed_line(tmp_path: Path) -> None:
    """A document that cannot be read is one failed line (exit 1) and every other cell is
    still judged."""
    sources = write_sources(tmp_path / "src", "Alpha")
    (sources / "broken.json").write_text("{not json")
    async with running_fake() as env:
        await migrate(env.settings, MigrateOptions(sources=[str(sources / "alpha.json")]))
        run = await run_cli(env, tmp_path, "diff", str(sources), "--json")
        assert run.code == 1, run.err
        data = orjson.loads(run.out)
        [failure] = data["failed_sources"]
        assert failure["source"].endswith("broken.json")
        assert {w["status"] for c in data["tenants"].values() for w in c["workflows"]} == {IN_SYNC}
        run = await run_cli(env, tmp_path, "diff", str(sources))
        assert run.code == 1
        assert [line for line in run.out.splitlines() if "broken.json" in line] == [
            line for line in run.out.splitlines() if line.startswith("failed source")
        ]


async def test_a_tenant_with_rejected_credentials_fails_alone(tmp_path: Path) -> None:
    """A tenant whose credentials are refused fails every one of its cells with the reason;
    the other tenants are judged."""
    sources = write_sources(tmp_path / "src", "Alpha", "Beta")
    async with running_fake() as env:
        await fleet(env, sources)
        tenants = dict(env.settings.tenants)
        tenants["tenant-2"] = replace(tenants["tenant-2"], client_secret=Secret("not-the-secret"))
        report = await diff_tenants(replace(env.settings, tenants=tenants), [str(sources)])
        by = {t.tenant: {w.status for w in t.workflows} for t in report.tenants}
        assert by == {"tenant-1": {IN_SYNC, EXTRA}, "tenant-2": {FAILED}, "tenant-3": {MISSING}}


async def test_an_unreadable_export_fails_its_cell_alone(tmp_path: Path) -> None:
    """A tenant's version that exports as no valid workflow document fails that cell with the
    place in it; the tenant's other cells are judged."""
    sources = write_sources(tmp_path / "src", "Alpha", "Beta")
    async with running_fake() as env:
        await fleet(env, sources)

        def damage(doc: dict[str, Any]) -> None:
            doc["tasks"][0]["id"] = "five"

        env.fake.state.alter_version("tenant-1", version_id(env, "tenant-1", "Alpha"), damage)
        report = await diff_tenants(env.settings, [str(sources)], ["tenant-1"])
        cells = {w.name: w for w in report.tenants[0].workflows}
        assert cells["Beta"].status == IN_SYNC
        assert cells["Alpha"].status == FAILED
        assert (cells["Alpha"].reason or "").startswith("tenant tenant-1: workflow ")
        assert "$.tasks[0]" in (cells["Alpha"].reason or "")


async def test_plan_says_what_a_new_version_changes(tmp_path: Path) -> None:
    """`plan` gives a planned new version one line saying what it changes against the version
    the tenant runs, in the text and as the JSON item's `change`; a create has none."""
    first = tmp_path / "v1"
    write_sources(first, "Alpha")
    second = small_export("Alpha")
    second["workflow"]["version"] = "0.0.3"
    second["tasks"][2]["parameters"]["count"] = "500"
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "alpha.json").write_bytes(orjson.dumps(second))
    write_sources(tmp_path / "v2", "Beta")
    async with running_fake() as env:
        options = MigrateOptions(sources=[str(first)], tenants=["tenant-1"])
        assert (await migrate(env.settings, options)).ok
        before = env.fake.requests
        run = await run_cli(env, tmp_path, "plan", str(tmp_path / "v2"), "--tenant", "tenant-1")
        assert run.code == 0, run.err
        lines = run.out.splitlines()
        at = next(i for i, line in enumerate(lines) if "Alpha: planned new_version" in line)
        below = [line for line in lines[at + 1 :] if line.startswith("    ")]
        assert "    change: 1 task changed (against version 0.0.2)" in below
        assert not any("change:" in line for line in lines if "Beta" in line)
        run = await run_cli(
            env, tmp_path, "plan", str(tmp_path / "v2"), "--tenant", "tenant-1", "--json"
        )
        items = {i["workflow_name"]: i for i in orjson.loads(run.out)["items"]}
        assert items["Alpha"]["change"] == "1 task changed (against version 0.0.2)"
        assert "change" not in items["Beta"]
        assert env.fake.requests > before
        # migrate --dry-run says the same, in its listing and in its report.
        run = await run_cli(
            env,
            tmp_path,
            "migrate",
            str(tmp_path / "v2"),
            "--tenant",
            "tenant-1",
            "--dry-run",
            "--report",
            "dry.json",
            "--progress",
            "never",
        )
        assert run.code == 0, run.err
        assert "    change: 1 task changed (against version 0.0.2)" in run.out.splitlines()
        dry = {
            i["workflow_name"]: i
            for i in orjson.loads((tmp_path / "dry.json").read_bytes())["items"]
        }
        assert dry["Alpha"]["change"] == "1 task changed (against version 0.0.2)"
        # A workflow new to the tenant: its second version is compared with the planned first.
        gamma = tmp_path / "gamma"
        write_sources(gamma, "Gamma")
        later = small_export("Gamma")
        later["workflow"]["version"] = "0.0.9"
        del later["tasks"][2]["parameters"]["count"]
        (gamma / "gamma-2.json").write_bytes(orjson.dumps(later))
        run = await run_cli(env, tmp_path, "plan", str(gamma), "--tenant", "tenant-1")
        assert [line.strip() for line in run.out.splitlines() if "change:" in line] == [
            "change: 1 task changed (against planned version 0.0.2)"
        ]
        # A real run carries no change line (and costs no export for it).
        report = await migrate(env.settings, replace(options, sources=[str(tmp_path / "v2")]))
        assert all(i.change is None for i in report.items)


@pytest.mark.slow
async def test_memory_does_not_grow_with_the_documents(tmp_path: Path) -> None:
    """Diffing 6,000 documents takes no more memory than 1,000 when they are versions of the
    same names: summaries stay in the workspace, each name's latest is found by streaming, and
    the report holds one cell per (tenant, name), where a summary of each document in memory
    would take at least the 5,000 more summaries' size again."""
    small, large = 1_000, 6_000
    folders: dict[int, Path] = {}
    for count in (small, large):
        folder = folders[count] = tmp_path / f"docs-{count}"
        folder.mkdir()
        bound, other = small_export("Bound"), small_export("Other")
        for i in range(count // 2):
            bound["workflow"]["version"] = other["workflow"]["version"] = f"0.{i}.0"
            (folder / f"bound-{i:05d}.json").write_bytes(orjson.dumps(bound))
            (folder / f"other-{i:05d}.json").write_bytes(orjson.dumps(other))
    async with running_fake(FakeConfig.demo(1)) as env:
        options = MigrateOptions(sources=[str(folders[small] / "bound-00000.json")])
        assert (await migrate(env.settings, options)).ok
        edited = small_export("Other")
        edited["tasks"][0]["name"] = "Renamed"
        env.fake.state.add_workflow("tenant-1", edited, version="0.0.1")

        store = read_sources([str(folders[large])], env.settings)
        try:
            summaries, held = traced_peak(lambda: list(store.iter_docs()))
            assert len(summaries) == large
            del summaries
        finally:
            store.close()
        per_doc = held / large

        peaks: dict[int, int] = {}
        for count, folder in folders.items():
            report, peaks[count] = await traced_peak_async(
                lambda f=folder: diff_tenants(env.settings, [str(f)])
            )
            cells = {w.name: w.status for w in report.tenants[0].workflows}
            assert cells == {"Bound": IN_SYNC, "Other": DRIFTED}
        growth = peaks[large] - peaks[small]
        assert growth < (large - small) * per_doc / 4, (peaks, per_doc)


class DictCache:
    """The content-hash cache's interface over a dict (the real one is the request-efficiency
    work's SQLite file)."""

    def __init__(self) -> None:
        self.hashes: dict[tuple[int, int, str], str] = {}

    def get(self, definition_id: int, version_id: int, updated_at: str) -> str | None:
        return self.hashes.get((definition_id, version_id, updated_at))

    def put(self, definition_id: int, version_id: int, updated_at: str, content_hash: str) -> None:
        self.hashes[(definition_id, version_id, updated_at)] = content_hash


async def test_an_unchanged_tenant_costs_no_exports_with_the_cache(tmp_path: Path) -> None:
    """With the content-hash cache, a second diff of an unchanged tenant exports nothing (one
    request fewer per source workflow), and a version edited since is exported again and
    found drifted: the cache keys on the version's updatedAt."""
    sources = write_sources(tmp_path / "src", "Alpha", "Beta")
    async with running_fake() as env:
        await fleet(env, sources)
        cache = DictCache()

        async def diff() -> tuple[dict[str, str], int]:
            before = env.fake.requests
            report = await diff_tenants(
                env.settings, [str(sources)], ["tenant-1"], cache_for=lambda _: cache
            )
            cells = {w.name: w.status for w in report.tenants[0].workflows}
            return cells, env.fake.requests - before

        cold, cold_requests = await diff()
        assert cold == {"Alpha": IN_SYNC, "Beta": IN_SYNC, "Hand made": EXTRA}
        assert len(cache.hashes) == 2  # the two compared versions, not the extra
        warm, warm_requests = await diff()
        assert warm == cold
        assert warm_requests == cold_requests - 2

        env.fake.state.alter_version("tenant-1", version_id(env, "tenant-1", "Alpha"), hand_edit)
        edited, edited_requests = await diff()
        assert edited["Alpha"] == DRIFTED and edited["Beta"] == IN_SYNC
        assert edited_requests == warm_requests + 1


# Variants that change what reading a tenant sees (exports, answers, kept keys, file references).
READING_VARIANTS = (
    "export-404-without-active",
    "version-id-answers",
    "keeps-unknown-keys",
    "workflow-definition-block",
    "no-file-ref-rewrite",
    "all-flipped-but-file-refs",
)


@pytest.mark.parametrize("variant", READING_VARIANTS)
async def test_the_migrated_samples_are_in_sync_in_every_reading_variant(variant: str) -> None:
    """After migrating the samples, diff finds every workflow in sync whatever the server does
    with exports and answers; where the server leaves file references dangling (spec §9.1), it
    finds exactly those references drifted, as `Name__<task>` against a bare task id."""
    config = _variant_config(variant)
    async with running_fake(config) as env:
        report = await migrate(env.settings, MigrateOptions(sources=[str(SAMPLES)]))
        assert report.ok, report.to_json()
        drift = await diff_tenants(env.settings, [str(SAMPLES)])
        cells = drift.tenants[0].workflows
        assert {w.status for w in cells} <= {IN_SYNC, DRIFTED}
        drifted = [w for w in cells if w.status == DRIFTED]
        if variant != "no-file-ref-rewrite":
            assert not drifted, [d.describe() for w in drifted for d in w.differences]
            assert drift.exit_code() == 0
            return
        assert drifted and drift.exit_code() == 1
        for w in drifted:
            for d in w.differences:
                assert d.kind == "task-field", d.describe()
                assert re.search(r"__<[^>]+>", d.source) and re.search(r"__\d+", d.target)


async def test_the_command_reads_the_content_hash_cache_and_no_cache_skips_it(
    tmp_path: Path,
) -> None:
    """`migrator diff` fills the real content-hash cache on its first run, so a second run of an
    unchanged, in-sync tenant exports nothing; `--no-cache` exports every compared version."""
    sources = write_sources(tmp_path / "src", "Alpha", "Beta")
    async with running_fake() as env:
        await fleet(env, sources)

        async def exports(*extra: str) -> int:
            before = env.fake.calls[("tenant-1", "export_workflow")]
            run = await run_cli(env, tmp_path, "diff", str(sources), "--tenant", "tenant-1", *extra)
            assert run.code == 0, run.out + run.err
            return env.fake.calls[("tenant-1", "export_workflow")] - before

        first = await exports()
        assert await exports() == 0
        assert await exports("--no-cache") == 2
        assert first <= 2
