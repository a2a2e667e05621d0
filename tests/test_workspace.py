"""The run's workspace: summaries, planned items and outcomes on disk, and planning a batch at a time.

The central property: planning a tenant batch by batch out of the workspace (`linked_names`,
`plan_batches`, a `SourceIndex` answered by SQL) gives exactly the plan of all documents at once.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrator.core.document import parse_document
from migrator.core.errors import InputError
from migrator.core.journal_records import encode, fold, scan
from migrator.core.plan import (
    Action,
    Call,
    NameGroup,
    PlannedItem,
    PlanOptions,
    PriorIntent,
    PriorState,
    SourceDoc,
    SourceIndex,
    TargetDefinition,
    TargetVersion,
    plan_tenant,
)
from migrator.core.report import ItemOutcome, Report
from migrator.run.planning import linked_names, plan_batches
from migrator.run.tenant import NameSet
from migrator.store.journal import Journal, read_journal, read_state
from migrator.store.sources import SourceItem
from migrator.store.workspace import OutcomeLog, Workspace
from tests.builders import small_export
from tests.strategies import journals

NAMES = ["alpha", "beta", "gamma", "delta", "eps"]


def summary(i: int, name: str, **kw: Any) -> SourceDoc:
    fields: dict[str, Any] = {
        "key": f"k{i:04d}",
        "source": f"src/{i:04d}.json",
        "name": name,
        "version": None,
        "workflow_id": 1000 + i,
    }
    fields.update(kw)
    return SourceDoc(**fields)


@pytest.fixture
def ws() -> Any:
    workspace = Workspace()
    yield workspace
    workspace.close()


# --- documents ----------------------------------------------------------------------------------


def test_summaries_round_trip_and_stream_past_a_batch(ws: Workspace) -> None:
    docs = [
        summary(
            i,
            NAMES[i % 5],
            version=f"1.{i}.0",
            definition_id=i if i % 2 else None,
            calls=(Call(i, str(i + 1), "beta"),) if i % 7 == 0 else (),
            active=[None, True, False][i % 3],
        )
        for i in range(1234)
    ]
    for d in docs:
        ws.add_summary(
            d, tenant_values=[("$.x", "id", f"v{d.key}")] if d.version == "1.3.0" else ()
        )
    assert ws.count() == 1234
    assert list(ws.iter_docs()) == docs
    assert list(ws.names()) == sorted(NAMES)
    assert list(ws.sorted_keys()) == sorted(d.key for d in docs)
    assert ws.callers() == [d for d in docs if d.calls]
    assert ws.docs_named(["beta"]) == [d for d in docs if d.name == "beta"]
    assert ws.has_name("gamma") and not ws.has_name("zeta")
    assert ws.has_key("k0003") and not ws.has_key("nope")
    assert ws.tenant_values("k0003") == (("$.x", "id", "vk0003"),)
    assert ws.values_of(["k0003", "k0004"]) == {"k0003": (("$.x", "id", "vk0003"),)}
    # The later of two documents sharing an id wins, as in the in-memory index.
    assert ws.name_of_workflow(1005) == "alpha" and ws.name_of_workflow(1) is None
    assert ws.name_of_definition(9) == docs[9].name


def test_substituted_is_marked_for_the_tenants_whose_table_touches_the_document(
    ws: Workspace,
) -> None:
    ws.add_summary(summary(1, "alpha"), touched=["t1"])
    ws.add_summary(summary(2, "alpha"))
    one, two = ws.docs_named(["alpha"], tenant="t1")
    assert one.substituted and not two.substituted
    assert not any(d.substituted for d in ws.docs_named(["alpha"], tenant="t2"))


def test_load_reads_the_file_again_and_refuses_a_changed_one(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_bytes(orjson.dumps(small_export("A")))
    doc = parse_document(path.read_bytes(), str(path))
    ws.add(doc, item=SourceItem(str(path)))
    [stored] = ws.docs_named(["A"])
    assert ws.load(stored).content_hash == doc.content_hash
    changed = small_export("A")
    changed["tasks"][0]["name"] = "Other"
    path.write_bytes(orjson.dumps(changed))
    with pytest.raises(InputError, match="changed while migrator was running"):
        ws.load(stored)


def test_live_bodies_are_kept_as_exported(ws: Workspace) -> None:
    raw = orjson.dumps(small_export("Live"))
    doc = parse_document(raw, "tenant s: workflow 5", definition_id=5)
    ws.add(doc, raw=raw, active=True)
    [stored] = ws.docs_named(["Live"])
    assert stored.active is True and stored.definition_id == 5
    assert ws.load(stored).data == doc.data


def test_closing_or_dropping_the_workspace_removes_its_file() -> None:
    ws = Workspace()
    directory = ws._dir
    assert os.path.isdir(directory)
    ws.close()
    assert not os.path.exists(directory)
    ws = Workspace()
    directory = ws._dir
    del ws
    gc.collect()
    assert not os.path.exists(directory)


# --- planned items ------------------------------------------------------------------------------

texts = st.text(max_size=8)
maybe_int = st.none() | st.integers(-(2**40), 2**40)
prior_states = st.none() | st.builds(
    PriorState,
    status=st.sampled_from(["pending", "in_doubt", "done", "failed", "deferred", "skipped"]),
    intent=st.none()
    | st.builds(PriorIntent, texts, texts, maybe_int, texts, st.floats(0, 2e9, allow_nan=False)),
    reason=st.none() | texts,
    target_definition_id=maybe_int,
    target_version_id=maybe_int,
    version=st.none() | texts,
    attempts=st.integers(0, 9),
)
planned_items = st.builds(
    PlannedItem,
    doc=st.builds(
        SourceDoc,
        key=texts,
        source=texts,
        name=texts,
        version=st.none() | texts,
        workflow_id=st.integers(0, 2**40),
        definition_id=maybe_int,
        calls=st.tuples(st.builds(Call, st.integers(0, 99), st.none() | texts, st.none() | texts)),
        active=st.none() | st.booleans(),
        substituted=st.booleans(),
    ),
    action=st.sampled_from(list(Action)),
    version=st.none() | texts,
    target_definition_id=maybe_int,
    reason=texts,
    idempotency_key=st.none() | texts,
    call_targets=st.dictionaries(st.integers(0, 99), texts, max_size=3),
    resumed=st.booleans(),
    recorded=st.booleans(),
    prior=prior_states,
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(groups=st.lists(st.lists(planned_items, max_size=3), max_size=4))
def test_planned_groups_round_trip_in_order(groups: list[list[PlannedItem]]) -> None:
    ws = Workspace()
    try:
        made = [
            NameGroup(
                name=f"n{i}",
                definition_id=i or None,
                items=tuple(items),
                callees=frozenset({"x"} if i % 2 else ()),
            )
            for i, items in enumerate(groups)
        ]
        for i, group in enumerate(made):
            ws.add_group("t", i, group)
            ws.add_group("other", i, NameGroup(name="o", definition_id=None, items=()))
        assert list(ws.groups("t")) == made
        wanted = [i.doc.key for g in made for i in g.items if i.action is Action.CREATE]
        assert list(ws.planned_keys("t", ["create"])) == wanted
    finally:
        ws.close()


# --- outcomes -----------------------------------------------------------------------------------


def test_outcomes_stream_in_report_order_and_count_in_sql(ws: Workspace) -> None:
    made = [
        ItemOutcome(
            tenant=f"t{i % 3}",
            source=f"s{(7 * i) % 1100:04d}",
            workflow_name=f"w{i % 11}",
            status=["imported", "failed", "skipped"][i % 3],
            verified=None if i % 5 else True,
            tenant_values=({"path": "$.a", "kind": "id", "value": "1", "substitute": None},)
            if i == 3
            else None,
        )
        for i in range(1100)
    ]
    for o in made:
        ws.add_outcome(o)
    log = OutcomeLog(ws)
    ordered = sorted(made, key=lambda o: (o.tenant, o.workflow_name, o.source))
    assert len(log) == 1100
    assert list(log) == ordered
    assert log[0] == ordered[0] and log[-1] == ordered[-1] and log[2:4] == ordered[2:4]
    report = Report(items=log)
    plain = Report(items=tuple(made))
    assert report.summary() == plain.summary()
    assert report.per_tenant() == plain.per_tenant()
    assert report.dumps() == plain.dumps()
    assert report.ok == plain.ok is False
    assert not log.any_unverified()
    ws.add_outcome(ItemOutcome("t9", "s", "w", "imported", verified=False))
    assert log.any_unverified()


def test_undecided_lists_documents_without_an_outcome_for_the_tenant(ws: Workspace) -> None:
    for i in range(5):
        ws.add_summary(summary(i, "alpha"))
    ws.add_outcome(ItemOutcome("t1", "src/0001.json", "alpha", "imported"))
    ws.add_outcome(ItemOutcome("t2", "src/0002.json", "alpha", "imported"))
    assert [d.key for d in ws.undecided("t1")] == ["k0000", "k0002", "k0003", "k0004"]


# --- planning a batch at a time equals planning everything at once ------------------------------


@st.composite
def worlds(
    draw: st.DrawFn,
) -> tuple[list[SourceDoc], dict[str, list[TargetDefinition]], dict[str, PriorState]]:
    n = draw(st.integers(1, 14))
    docs: list[SourceDoc] = []
    for i in range(n):
        name = draw(st.sampled_from(NAMES))
        calls = tuple(
            Call(
                task_id=t,
                workflow_id=draw(
                    st.none()
                    | st.sampled_from(["{{Data.Id}}", "999999"])
                    | st.integers(1000, 1000 + n).map(str)
                    | st.integers(0, 9).map(str)
                ),
                workflow_name=draw(
                    st.none() | st.sampled_from([*NAMES, "elsewhere", "target-only"])
                ),
            )
            for t in range(draw(st.integers(0, 2)))
        )
        docs.append(
            summary(
                i,
                name,
                key=f"k{draw(st.integers(0, n + 2)):03d}",  # some duplicate content
                version=draw(st.none() | st.sampled_from(["1.0.0", "1.1.0", "2.0.0", "bad"])),
                definition_id=draw(st.none() | st.integers(0, 9)),
                calls=calls,
                substituted=False,
            )
        )
    target: dict[str, list[TargetDefinition]] = {}
    for name in [*NAMES, "target-only"]:
        count = draw(st.sampled_from([0, 0, 1, 1, 2]))
        target[name] = [
            TargetDefinition(
                id=100 * (j + 1) + len(name),
                name=name,
                versions=tuple(
                    TargetVersion(
                        id=None,
                        version=v,
                        content_hash=draw(st.none() | st.sampled_from(["k001", "k002"])),
                    )
                    for v in draw(
                        st.lists(
                            st.sampled_from(["0.9.0", "1.0.0", "3.0.0"]), unique=True, max_size=2
                        )
                    )
                ),
            )
            for j in range(count)
        ]
        if not target[name]:
            del target[name]
    prior = {
        d.key: draw(
            st.sampled_from(
                [
                    PriorState(status="done", version="1.0.0", target_definition_id=1),
                    PriorState(status="failed", reason="nope"),
                    PriorState(status="pending"),
                ]
            )
        )
        for d in docs
        if draw(st.booleans())
    }
    return docs, target, prior


def _outcome_of(item: PlannedItem) -> tuple[Any, ...]:
    return (
        item.doc.source,
        item.action,
        item.version,
        item.target_definition_id,
        item.reason,
        item.idempotency_key,
        dict(item.call_targets),
    )


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(world=worlds(), batch=st.integers(1, 3), strict=st.booleans())
def test_batched_plan_equals_the_whole_plan(world: Any, batch: int, strict: bool) -> None:
    import migrator.run.planning as planning

    docs, target, prior = world
    options = PlanOptions(strict=strict, now=1000.0)
    whole = plan_tenant("t", "id", docs, target, prior, options=options)
    ws = Workspace()
    old = planning.PLAN_BATCH
    planning.PLAN_BATCH = batch
    try:
        for d in docs:
            ws.add_summary(d)
        index = SourceIndex(ws.name_of_definition, ws.name_of_workflow, NameSet(ws.has_name))
        linked = linked_names(ws, index)
        groups: list[NameGroup] = []
        problems: list[str] = []
        for names in plan_batches(ws, linked):
            part = plan_tenant(
                "t", "id", ws.docs_named(names), target, prior, options=options, index=index
            )
            groups.extend(part.groups)
            problems.extend(part.problems)
    finally:
        planning.PLAN_BATCH = old
        ws.close()
    assert sorted(_outcome_of(i) for g in groups for i in g.items) == sorted(
        _outcome_of(i) for i in whole.items
    )
    assert sorted(problems) == sorted(whole.problems)
    # The linked names keep the whole plan's order among themselves (callees first), and every
    # name appears once.
    names = [g.name for g in groups]
    assert sorted(names) == sorted(g.name for g in whole.groups)
    assert [n for n in names if n in linked] == [g.name for g in whole.groups if g.name in linked]


# --- the journal folded into the workspace ------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(records=journals(), data=st.data())
def test_journal_folds_into_the_workspace_as_into_a_dict(records: Any, data: st.DataObject) -> None:
    """Streaming a journal (cut anywhere) into the workspace's table gives `fold` of its prefix,
    for a read-only view and for an opened journal alike, and the table answers like the dict."""
    import tempfile

    import anyio

    raw = b"".join(encode(r) for r in records)
    offset = data.draw(st.integers(0, len(raw)))
    prefix = scan(raw[:offset]).records
    expected = fold(prefix)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "j.jsonl"
        path.write_bytes(raw[:offset])
        ws = Workspace()
        try:
            state = ws.journal_state()
            # Writes reach the table a batch at a time: any batch size gives the same answers.
            state._BUFFER = data.draw(st.sampled_from([1, 2, 3, 2048]))
            history, _ = read_state(path, state)
            assert dict(state.items()) == expected
            assert history == [r for r in prefix if r.type == "run_started"]
            assert len(state) == len(expected)
            assert list(state) == sorted(expected)
            assert state.items() == expected.items()  # streamed, compared as a set of pairs
            state.clear()
            assert len(state) == 0

            async def reopen() -> None:
                async with Journal.open(path, {"run_id": "again"}, state=state) as journal:
                    assert journal.state is state
                    assert dict(state.items()) == expected

            anyio.run(reopen, backend="asyncio")
        finally:
            ws.close()
        after = read_journal(path).records
    assert after[: len(prefix)] == prefix
    assert [r.type for r in after[len(prefix) :]] == ["run_started", "run_finished"]


@settings(max_examples=60, deadline=None)
@given(records=journals(), data=st.data())
def test_status_counts_in_sql_agree_with_summarize(records: Any, data: st.DataObject) -> None:
    """The table's counts (expected items without a record pending) and its listing by status
    are what `summarize` and a filter give for the folded dict."""
    from migrator.core.journal_records import STATUSES, summarize

    state_dict = fold(records)
    known = sorted(state_dict)
    expected = data.draw(
        st.lists(
            st.sampled_from(known) | st.tuples(st.sampled_from(["t1", "t9"]), st.text(max_size=4)),
            max_size=8,
            unique=True,  # a run plans each item once
        )
        if known
        else st.lists(st.tuples(st.just("t1"), st.text(max_size=4)), max_size=4, unique=True)
    )
    wanted = data.draw(st.sets(st.sampled_from(STATUSES)))
    ws = Workspace()
    try:
        state = ws.journal_state()
        for key, value in state_dict.items():
            state[key] = value
        state.expect("never", ["dropped"])
        state.clear_expected()
        for tenant, item in expected:
            state.expect(tenant, [item])
        assert state.counts() == summarize(state_dict, expected=expected)
        listed = list(state.with_status(wanted))
        assert sorted(listed, key=lambda st_: (st_.tenant, st_.item)) == sorted(
            (v for v in state_dict.values() if v.status in wanted),
            key=lambda st_: (st_.tenant, st_.item),
        )
        assert [st_.tenant for st_ in listed] == sorted(st_.tenant for st_ in listed)
    finally:
        ws.close()


# --- the target's definitions -------------------------------------------------------------------

target_definitions = st.lists(
    st.builds(
        TargetDefinition,
        id=st.integers(1, 10**6),
        name=st.sampled_from([*NAMES, "é ünïcode", ""]),
        versions=st.lists(
            st.builds(
                TargetVersion,
                id=st.none() | st.integers(1, 10**6),
                version=st.sampled_from(["1.0.0", "1.2", "x", ""]),
                content_hash=st.none() | st.sampled_from(["h1", "h2"]),
            ),
            max_size=3,
        ).map(tuple),
        active_version_id=st.none() | st.integers(1, 10**6),
    ),
    max_size=12,
    unique_by=lambda d: d.id,
)


@settings(max_examples=60, deadline=None)
@given(defs=target_definitions)
def test_target_view_answers_like_the_in_memory_target(defs: list[TargetDefinition]) -> None:
    import hashlib

    from migrator.run.target import target_fingerprint

    ws = Workspace()
    try:
        for d in defs:
            ws.add_target("t", d)
            ws.add_target("other", d)
        view = ws.target("t")
        expected: dict[str, list[TargetDefinition]] = {}
        for d in sorted(defs, key=lambda d: d.id):
            expected.setdefault(d.name, []).append(d)
        assert dict(view.items()) == expected
        assert list(view) == sorted(expected) and len(view) == len(expected)
        assert all(name in view for name in expected) and "zeta" not in view
        assert view.get("zeta", ()) == ()
        # The streamed fingerprint is the digest of the whole sorted material, as before.
        material = sorted(
            (name, d.id, sorted((v.version, v.content_hash or "") for v in d.versions))
            for name, ds in expected.items()
            for d in ds
        )
        whole = hashlib.sha256(orjson.dumps(material)).hexdigest()
        assert target_fingerprint(view) == target_fingerprint(expected) == whole
    finally:
        ws.close()


def test_workspaces_of_killed_runs_are_swept(tmp_path: Path) -> None:
    import subprocess
    import sys

    from migrator.store.workspace_db import sweep_stale

    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True
    )
    dead = tmp_path / f"migrator-run-{int(child.stdout)}-abc"
    alive = tmp_path / f"migrator-run-{os.getpid()}-def"
    other = tmp_path / "migrator-run-notapid"
    for d in (dead, alive, other):
        d.mkdir()
        (d / "workspace.sqlite").write_bytes(b"x")
    assert sweep_stale(str(tmp_path)) == [str(dead)]
    assert not dead.exists() and alive.exists() and other.exists()


def _limit_file_size(max_bytes: int) -> None:
    """In the child: files may not grow past `max_bytes` (writes fail with EFBIG, as on a full
    disk, instead of the process being killed by SIGXFSZ)."""
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))


def test_a_full_disk_under_the_workspace_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    import subprocess

    from tests.helpers import fake_process

    sources = tmp_path / "exports"
    sources.mkdir()
    for i in range(400):
        (sources / f"wf-{i:04d}.json").write_bytes(orjson.dumps(small_export(f"Workflow {i:04d}")))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    with fake_process(tmp_path, {}) as fake:
        args = fake.cli("plan", str(sources), "--config", str(fake.config), "--quiet")
        env = {**fake.env, "TMPDIR": str(scratch)}
        done = subprocess.run(
            args,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=lambda: _limit_file_size(256 * 1024),
        )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert len(lines) == 1 and lines[0].startswith("migrator: error: the run's working space ")
    assert str(scratch) in lines[0] and "TMPDIR" in lines[0] and "run the same command" in lines[0]
    assert not list(scratch.iterdir())  # the failed run's workspace is removed all the same
