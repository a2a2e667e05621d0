"""Saved plans: `migrator plan --out FILE` then `migrate --plan FILE` applies exactly that plan."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrator.core.errors import MigratorError
from migrator.run.migrate import migrate
from migrator.run.options import MigrateOptions
from migrator.store.planfile import load_plan_file, plan_file_bytes
from tests.conftest import SAMPLES
from tests.helpers import running_fake, traced_peak

pytestmark = pytest.mark.anyio


async def test_saved_plan_applies_when_nothing_changed(tmp_path: Path) -> None:
    """A plan saved from a dry run is applied as planned when the targets did not change."""
    plan_path = tmp_path / "plan.json"
    async with running_fake() as env:
        dry = await migrate(env.settings, MigrateOptions(sources=[str(SAMPLES)], dry_run=True))
        plan_path.write_bytes(plan_file_bytes(dry))
        saved = json.loads(plan_path.read_text())
        assert set(saved["tenants"]) == {"tenant-1", "tenant-2", "tenant-3"}
        applied = await migrate(
            env.settings, MigrateOptions(sources=[str(SAMPLES)], plan_file=str(plan_path))
        )
        assert applied.ok
        assert applied.summary()["imported"] == dry.summary()["planned"] == len(env.fake.ledger())


async def test_saved_plan_is_refused_for_a_tenant_that_changed(tmp_path: Path) -> None:
    """When a target gained a workflow after planning, that tenant is refused and the others proceed."""
    plan_path = tmp_path / "plan.json"
    async with running_fake() as env:
        dry = await migrate(env.settings, MigrateOptions(sources=[str(SAMPLES)], dry_run=True))
        plan_path.write_bytes(plan_file_bytes(dry))
        sample = json.loads(next(SAMPLES.glob("01-*.json")).read_text())
        env.fake.state.add_workflow("tenant-2", sample, version="9.9.9")
        applied = await migrate(
            env.settings, MigrateOptions(sources=[str(SAMPLES)], plan_file=str(plan_path))
        )
        per = applied.per_tenant()
        assert per["tenant-2"]["imported"] == 0
        assert per["tenant-1"]["imported"] > 0 and per["tenant-3"]["imported"] > 0
        errors = {i.error for i in applied.items if i.tenant == "tenant-2"}
        assert len(errors) == 1 and "changed since planning" in errors.pop()
        assert env.imports("tenant-2") == []


def test_a_file_that_is_not_a_plan_is_refused(tmp_path: Path) -> None:
    """Loading something that is not a saved plan gives a one-line error naming the file."""
    bogus = tmp_path / "report.json"
    bogus.write_text('{"summary": {}}')
    with pytest.raises(MigratorError, match="not a plan file"):
        load_plan_file(str(bogus))


class _Run:
    """Stands in for a planned TenantRun: its record's head and its items."""

    def __init__(self, items: list[dict[str, object]]) -> None:
        self.items = items

    def plan_head(self) -> dict[str, object]:
        return {"identity": "i", "target": "t", "problems": ["p"]}

    def plan_items(self) -> object:
        return iter(self.items)

    def plan_record(self) -> dict[str, object]:
        return {**self.plan_head(), "items": self.items}


def test_plan_file_is_written_an_item_at_a_time_and_parses_to_the_records() -> None:
    from migrator.core.report import Report
    from migrator.store.planfile import PlanRecords, plan_file_chunks

    cases: list[dict[str, _Run]] = [
        {},
        {"a": _Run([])},
        {"a": _Run([{"item": "k1"}, {"item": "k2", "reason": None}]), "b": _Run([{"x": 1}])},
    ]
    for runs in cases:
        streamed = json.loads(
            b"".join(plan_file_chunks(Report(items=(), plans=PlanRecords(runs))))  # type: ignore[arg-type]
        )
        assert streamed["format"] == "migrator-plan/1"
        assert streamed["tenants"] == {name: run.plan_record() for name, run in runs.items()}


def _plan_text(runs: dict[str, _Run]) -> bytes:
    from migrator.core.report import Report
    from migrator.store.planfile import PlanRecords, plan_file_chunks

    return b"".join(plan_file_chunks(Report(items=(), plans=PlanRecords(runs))))  # type: ignore[arg-type]


def _triples(run: _Run) -> list[tuple[object, object, object]]:
    return [(i.get("item"), i.get("action"), i.get("version")) for i in run.items]


item_values = st.one_of(st.none(), st.text(max_size=6), st.integers(-(10**12), 10**12))
items = st.lists(
    st.fixed_dictionaries(
        {"item": item_values, "action": item_values, "version": item_values},
        optional={"source": st.text(max_size=30), "reason": st.none() | st.text(max_size=20)},
    ),
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(
    runs=st.dictionaries(st.text(min_size=1, max_size=8), items.map(_Run), max_size=3),
    chunk=st.integers(1, 64),
    layout=st.sampled_from(["ours", "compact", "wide"]),
)
def test_a_saved_plan_reads_back_the_same_in_any_layout_and_chunking(
    tmp_path_factory: pytest.TempPathFactory, runs: dict[str, _Run], chunk: int, layout: str
) -> None:
    """Read a value at a time, a plan gives each tenant's identity, target and item sequence
    whatever its layout (ours, or reformatted by hand) and wherever the chunks are cut."""
    from migrator.store.planfile import SavedTenant

    text = _plan_text(runs)
    if layout != "ours":
        text = json.dumps(json.loads(text), indent=None if layout == "compact" else 7).encode()
    path = tmp_path_factory.mktemp("plan") / "plan.json"
    path.write_bytes(text)
    saved = load_plan_file(str(path), chunk=chunk)
    assert saved.path == str(path)
    assert saved.tenants == {
        name: SavedTenant("i", "t", *frozen_items_digest(_triples(run)))
        for name, run in runs.items()
    }


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "not JSON"),
        ('{"format": "migrator-plan/1", "tenants": {"a": {"items": [{"item": 1}', "not JSON"),
        ('{"format": "migrator-plan/1", "tenants": {}} trailing', "not JSON"),
        (
            '{"format": "migrator-plan/1", "tenants": {"a": {"items": [1]}}}',
            r"tenants\.a\.items\[0\]: not an item",
        ),
        (
            '{"format": "migrator-plan/1", "tenants": {"a": {"items": {}}}}',
            r"tenants\.a\.items: not a list",
        ),
        ('{"format": "migrator-plan/1", "tenants": {"a": []}}', r"tenants\.a: not a tenant's plan"),
        ('{"format": "migrator-plan/1", "tenants": []}', "not a plan file written by"),
        ('{"format": "migrator-plan/1"}', "not a plan file written by"),
        ('{"format": "migrator-report/9", "tenants": {}}', "not a plan file written by"),
        ('["format"]', "not JSON"),
        ("\udcff", "not JSON"),
    ],
)
def test_a_broken_plan_file_is_one_line_naming_the_file_and_place(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "plan.json"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(MigratorError, match=message) as caught:
        load_plan_file(str(path), chunk=8)
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)


def test_a_large_saved_plan_is_checked_without_holding_it(tmp_path: Path) -> None:
    """Memory while reading a plan of 20,000 items is a chunk and an item, not the file."""
    item = {
        "item": "e78fb9db65277c8e2f3a54271e4a434606c5f6a965901147ebb3adad3adb1dbd",
        "source": "/exports/09-price-lookup-service.json",
        "name": "Price Lookup Service",
        "action": "create",
        "version": "1.0.0",
        "target_definition_id": None,
        "reason": None,
    }
    runs = {"tenant-1": _Run([item] * 20_000)}
    path = tmp_path / "plan.json"
    path.write_bytes(_plan_text(runs))
    size = path.stat().st_size
    assert size > 5_000_000
    saved, peak = traced_peak(lambda: load_plan_file(str(path)))
    assert saved.tenants["tenant-1"].items == 20_000
    assert peak < 1 << 20, (peak, size)  # whole, it would take several times the file


async def test_saved_plan_is_refused_when_the_sources_changed(tmp_path: Path) -> None:
    """A source document edited after planning makes `migrate --plan` refuse the plan (sources differ) and import nothing."""
    from tests.builders import small_export

    plan_path = tmp_path / "plan.json"
    source = tmp_path / "wf.json"
    source.write_text(json.dumps(small_export()))
    async with running_fake() as env:
        options = MigrateOptions(sources=[str(source)], tenants=["tenant-1"])
        dry = await migrate(env.settings, replace(options, dry_run=True))
        plan_path.write_bytes(plan_file_bytes(dry))
        edited = small_export()
        edited["tasks"][0]["name"] = "Export, edited after planning"
        source.write_text(json.dumps(edited))
        applied = await migrate(env.settings, replace(options, plan_file=str(plan_path)))
        [item] = applied.items
        assert item.status != "imported"
        assert "the sources or the journal differ from the plan" in (item.error or "")
        assert env.imports("tenant-1") == []


async def test_saved_plan_is_refused_when_the_journal_changed(tmp_path: Path) -> None:
    """A journal that gained a failure after planning (the target unchanged) makes `migrate --plan` refuse the plan and send nothing."""
    from tests.builders import small_export

    plan_path = tmp_path / "plan.json"
    journal = tmp_path / "j.jsonl"
    source = tmp_path / "wf.json"
    source.write_text(json.dumps(small_export("Refused")))
    other = tmp_path / "other.json"
    other.write_text(json.dumps(small_export("Other")))
    async with running_fake() as env:
        options = MigrateOptions(sources=[str(source)], tenants=["tenant-1"], journal=str(journal))
        # The journal exists before planning (a workflow the plan does not read is in it).
        first = await migrate(env.settings, replace(options, sources=[str(other)]))
        assert first.ok
        dry = await migrate(env.settings, replace(options, dry_run=True))
        plan_path.write_bytes(plan_file_bytes(dry))
        env.fake.set_tenant("tenant-1", reject_imports=["Refused"])
        refused = await migrate(env.settings, options)
        assert [i.status for i in refused.items] == ["failed"]
        env.fake.set_tenant("tenant-1", reject_imports=[])
        # The target is as planned (the refused import left nothing); the journal is not.
        assert [e["name"] for e in env.imports("tenant-1")] == ["Other"]

        applied = await migrate(env.settings, replace(options, plan_file=str(plan_path)))
        [item] = applied.items
        assert "the sources or the journal differ from the plan" in (item.error or "")
        assert [e["name"] for e in env.imports("tenant-1")] == ["Other"]


def frozen_items_digest(triples: Any) -> tuple[int, str]:
    """The saved plan's digest as the format defines it, written apart from items_digest: the
    sha256 of each (item, action, version) triple as compact JSON plus a newline, in order."""
    h = hashlib.sha256()
    n = 0
    for item, action, version in triples:
        h.update(
            json.dumps([item, action, version], separators=(",", ":"), ensure_ascii=False).encode()
            + b"\n"
        )
        n += 1
    return n, h.hexdigest()


def test_items_digest_is_the_documented_format() -> None:
    """items_digest is pinned by literal bytes: a change would make every saved plan unreadable."""
    from migrator.store.planfile import items_digest

    triples = [("5be1", "create", "1.0"), ("9f2a", "new_version", None)]
    expected = hashlib.sha256(b'["5be1","create","1.0"]\n["9f2a","new_version",null]\n').hexdigest()
    assert items_digest(triples) == (2, expected)
    assert items_digest(triples) == frozen_items_digest(triples)
    assert items_digest([]) == (
        0,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    )
