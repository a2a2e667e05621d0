"""Stateful, property-based end-to-end tests: generated worlds migrated over real HTTP to the fake.

A *world* is a set of generated export documents (several names, several versions of a name, exact
copies, calls between workflows by id, by name, by Liquid, to a workflow that is nowhere) and a
pre-existing state per target tenant (some names already there with their own versions, sometimes
twice). Each example starts a fresh fake on 127.0.0.1 and checks, per tenant, against the fake's
own record (ledger and exports), never against what migrator says about itself:

1. exactly once: every distinct content of a name lands once (or was already there), a second run
   with a fresh journal imports nothing; versions grow in import order above what was there;
   callees land before callers and callers carry the callee's definition id in that tenant;
   `report.ok` unless the world has a legitimate hazard (missing callee, cycle, ambiguous target)
   and then nothing of the hazard is written;
2. with faults (lost responses, 5xx, resets) and a journal, runs repeated until ok give the same
   landed content and versions as a fault-free run;
3. round trip: every landed version exports back with the canonical hash of the prepared payload;
4. a dry run predicts the real run: per item the same action and version.
"""

from __future__ import annotations

import copy
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from migrator.core import logs
from migrator.core.canonical import canonical_hash
from migrator.core.document import parse_document
from migrator.core.errors import MigratorError
from migrator.core.remap import apply_substitutions, prepare_for_import, set_workflow_id
from migrator.core.report import Report
from migrator.core.versions import version_key
from migrator.fake import FakeConfig, FaultConfig, serve
from migrator.fake._config import with_tenant_knobs
from migrator.run.migrate import migrate
from migrator.run.options import MigrateOptions
from tests.helpers import settings_for
from tests.strategies import documents

TENANTS = ("tenant-1", "tenant-2")
NAMES = ("Alpha", "Beta", "Gamma ü/..", "Delta")
OUTSIDE = "Outside"  # a callee that only some targets hold, never in the sources
EXECUTE = "Execute::WorkflowTask"
SUBSTITUTIONS = [
    ("https://erp.example.com", "https://erp.tenant.example.com"),
    ("saved_provider:1b2c-3d", "saved_provider:9f9f-0a"),
    ("Data", "Info"),
]
SOURCE_VERSIONS = [None, None, "0.0.1", "1", "2.3", "0.0.10", "5", "0.0.9"]
TARGET_VERSIONS = ["0.0.1", "0.0.9", "1", "1.5", "3", "10"]

PROPS = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
    # No shrinking: every example runs a fake and migrations over HTTP, and shrinking one takes
    # minutes; the examples are small already.
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
)


# ---------------------------------------------------------------------------------------------
# Worlds


@dataclass
class Doc:
    file: str
    data: dict[str, Any]
    # calling task id → the callee name the call means (None: Liquid, decided in the tenant)
    calls: dict[int, str | None] = field(default_factory=dict)
    missing: bool = False  # some call names a workflow that is nowhere
    by_id_only: set[int] = field(
        default_factory=set
    )  # source workflow ids called with a wrong name

    @property
    def name(self) -> str:
        return str(self.data["workflow"]["name"])


@dataclass
class World:
    docs: list[Doc]
    # tenant → list of definitions, each a list of (version, document)
    target: dict[str, list[tuple[str, list[tuple[str, dict[str, Any]]]]]]
    hazards: bool
    subs: dict[str, dict[str, str]] = field(default_factory=dict)  # tenant → substitution table


def _execute_tasks(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in data["tasks"] if t.get("action_type") == EXECUTE]


@st.composite
def worlds(draw: st.DrawFn, hazards: bool | None = None) -> World:
    hazardous = draw(st.booleans()) if hazards is None else hazards
    names = list(NAMES[: draw(st.integers(1, len(NAMES)))])
    # Calls go only to names earlier in this order unless hazards are allowed (then cycles,
    # self calls and missing callees may occur).
    order = draw(st.permutations(names))
    bodies: list[dict[str, Any]] = []
    for name in names:
        for _ in range(draw(st.integers(1, 3))):
            body = draw(documents(max_tasks=4))
            body["workflow"]["name"] = name
            version = draw(st.sampled_from(SOURCE_VERSIONS))
            body["workflow"].pop("version", None)
            if version is not None:
                body["workflow"]["version"] = version
            bodies.append(body)
    # Unique source workflow ids, so a call by id means one workflow.
    bodies = [set_workflow_id(b, 1000 + i) for i, b in enumerate(bodies)]
    wid_name = {b["workflow"]["id"]: b["workflow"]["name"] for b in bodies}
    docs: list[Doc] = []
    fresh = iter(range(700_000, 800_000))
    for body in bodies:
        name = body["workflow"]["name"]
        earlier = [n for n in order[: order.index(name)]]
        allowed = [*names, OUTSIDE] if hazardous else [*earlier, OUTSIDE]
        calls: dict[int, str | None] = {}
        missing = False
        by_id_only: set[int] = set()
        for task in _execute_tasks(body):
            kinds = ["liquid"] + (["name", "id", "id_with_wrong_name"] if allowed else [])
            if hazardous:
                kinds.append("missing")
            kind = draw(st.sampled_from(kinds))
            params = task["parameters"]
            if kind == "liquid":
                params["workflow_id"] = "{{ Data.Callee }}"
                calls[task["id"]] = None
                continue
            if kind == "missing":
                params["workflow_id"] = str(next(fresh))
                params["workflow_name"] = "Nowhere"
                missing = True
                continue
            callee = draw(st.sampled_from(allowed))
            ids = [w for w, n in wid_name.items() if n == callee]
            if kind == "name" or not ids:
                params["workflow_id"] = draw(st.sampled_from([None, str(next(fresh))]))
                params["workflow_name"] = callee
            else:
                wid = draw(st.sampled_from(ids))
                params["workflow_id"] = str(wid)
                params["workflow_name"] = "misleading" if kind == "id_with_wrong_name" else callee
                if kind == "id_with_wrong_name":
                    by_id_only.add(wid)
            calls[task["id"]] = callee
        docs.append(Doc(file="", data=body, calls=calls, missing=missing, by_id_only=by_id_only))
    # Exact copies and same content under another id/version.
    for _ in range(draw(st.integers(0, 2))):
        original = draw(st.sampled_from(docs))
        data = copy.deepcopy(original.data)
        if draw(st.booleans()):
            data = set_workflow_id(data, 5000 + len(docs))
            data["workflow"]["version"] = draw(st.sampled_from(["0.0.2", "7"]))
        docs.append(
            Doc(
                file="",
                data=data,
                calls=dict(original.calls),
                missing=original.missing,
                by_id_only=set(original.by_id_only),
            )
        )
    docs = draw(st.permutations(docs))
    for i, d in enumerate(docs):
        d.file = f"d{i:02d}.json"
    # Substitution tables per tenant (tenant-specific values of the generated documents).
    subs = {
        tenant: dict(draw(st.lists(st.sampled_from(SUBSTITUTIONS), max_size=2, unique=True)))
        for tenant in TENANTS
    }
    # What each target holds before the run.
    target: dict[str, list[tuple[str, list[tuple[str, dict[str, Any]]]]]] = {}
    for tenant in TENANTS:
        defs: list[tuple[str, list[tuple[str, dict[str, Any]]]]] = []
        for name in [*names, OUTSIDE]:
            # Without hazards every call to OUTSIDE must find it (once) in every target.
            if not (name == OUTSIDE and not hazardous) and not draw(st.booleans()):
                continue
            copies = 2 if hazardous and draw(st.integers(0, 4)) == 0 else 1
            for _ in range(copies):
                versions = sorted(
                    draw(
                        st.lists(
                            st.sampled_from(TARGET_VERSIONS), min_size=1, max_size=2, unique=True
                        )
                    ),
                    key=version_key,
                )
                contents = []
                for v in versions:
                    same = [d for d in docs if d.name == name and not d.calls and not d.missing]
                    if same and draw(st.booleans()):
                        content = copy.deepcopy(draw(st.sampled_from(same)).data)
                        if draw(st.booleans()):  # as an earlier migration would have left it
                            content = apply_substitutions(content, subs[tenant])
                    else:
                        content = draw(documents(max_tasks=3))
                        for t in _execute_tasks(content):
                            t["parameters"]["workflow_id"] = "{{ Data.X }}"
                        content["workflow"]["name"] = name
                    contents.append((v, content))
                defs.append((name, contents))
        target[tenant] = defs
    return World(docs=list(docs), target=target, hazards=hazardous, subs=subs)


# ---------------------------------------------------------------------------------------------
# Running a world


@dataclass
class Landed:
    """One tenant's state as the fake holds it, read from the fake directly."""

    by_name: dict[str, list[int]]  # name → definition ids
    versions: dict[int, list[tuple[str, str]]]  # definition id → [(version, canonical hash)]
    # definition id → [(version, canonical hash with callee ids replaced by callee names)]
    named: dict[int, list[tuple[str, str]]] = field(default_factory=dict, compare=False)


def landed(fake: Any, tenant: str) -> Landed:
    state = fake.state
    by_name: dict[str, list[int]] = defaultdict(list)
    versions: dict[int, list[tuple[str, str]]] = {}
    named: dict[int, list[tuple[str, str]]] = {}
    names = {
        d: state.definition_json(tenant, d)["name"] for d in state.list_definitions(tenant, {})
    }
    for def_id, name in names.items():
        by_name[name].append(def_id)
        versions[def_id], named[def_id] = [], []
        for v in state.list_versions(tenant, def_id):
            exported = state.export(tenant, def_id, v["version"])
            versions[def_id].append((v["version"], canonical_hash(exported)))
            for task in _execute_tasks(exported):
                ref = task["parameters"].get("workflow_id")
                if isinstance(ref, str) and ref.isdigit() and int(ref) in names:
                    task["parameters"]["workflow_id"] = "@" + names[int(ref)]
            named[def_id].append((v["version"], canonical_hash(exported)))
    return Landed(dict(by_name), versions, named)


def preload(fake: Any, world: World) -> dict[str, Landed]:
    for tenant, defs in world.target.items():
        for _, contents in defs:
            def_id = None
            for version, content in contents:
                def_id, _ = fake.state.add_workflow(
                    tenant, copy.deepcopy(content), version=version, definition_id=def_id
                )
    return {t: landed(fake, t) for t in TENANTS}


def write_sources(world: World, directory: Path) -> list[str]:
    paths = []
    for d in world.docs:
        path = directory / d.file
        path.write_bytes(orjson.dumps(d.data))
        paths.append(str(path))
    return paths


def hazard_names(world: World, tenant: str, held: Landed | None = None) -> set[str]:
    """Names whose documents may legitimately not land in `tenant`, closed over callers; `held`
    is what the tenant holds before the run (default: the world's pre-existing target)."""
    before: dict[str, int] = defaultdict(int)
    if held is None:
        for name, _ in world.target[tenant]:
            before[name] += 1
    else:
        before.update({name: len(ids) for name, ids in held.by_name.items()})
    names = {d.name for d in world.docs}
    bad: set[str] = {n for n in names if before[n] > 1}
    edges: dict[str, set[str]] = defaultdict(set)
    wids = {d.data["workflow"]["id"] for d in world.docs}
    for d in world.docs:
        if d.missing or not d.by_id_only <= wids:
            bad.add(d.name)  # a callee known only by the id of a document not in the sources
        for callee in d.calls.values():
            if callee is None:
                continue
            if callee == d.name:
                bad.add(d.name)  # calls itself: its own id is needed before it exists
            elif callee not in names and before[callee] != 1:
                bad.add(d.name)  # neither in the sources nor (once) in the tenant
            elif callee in names:
                edges[d.name].add(callee)
            if callee in names and before[callee] > 1:
                bad.add(d.name)

    # cycles
    def reaches(a: str, b: str, seen: set[str]) -> bool:
        for c in edges[a]:
            if c == b or (c not in seen and (seen.add(c) or reaches(c, b, seen))):
                return True
        return False

    bad |= {n for n in names if reaches(n, n, set())}
    changed = True
    while changed:
        changed = False
        for n in names - bad:
            if edges[n] & bad:
                bad.add(n)
                changed = True
    return bad


def expected_hash(doc: Doc, tenant_ids: dict[str, int], subs: dict[str, str]) -> str | None:
    """Canonical hash of the payload of `doc` in a tenant whose definitions are `tenant_ids`."""
    parsed = parse_document(orjson.dumps(doc.data), doc.file)
    targets: dict[int, int] = {}
    for task_id, callee in doc.calls.items():
        if callee is None:
            continue
        if callee not in tenant_ids:
            return None
        targets[task_id] = tenant_ids[callee]
    return canonical_hash(prepare_for_import(parsed, call_targets=targets, substitutions=subs))


def by_source(report: Report, tenant: str) -> dict[str, Any]:
    return {Path(i.source).name: i for i in report.items if i.tenant == tenant}


def check_world(
    world: World, fake: Any, before: dict[str, Landed], report: Report, *, ledger_from: int = 0
) -> dict[str, Landed]:
    """Every property of one finished migration, per tenant, against the fake's own state."""
    after = {t: landed(fake, t) for t in TENANTS}
    for tenant in TENANTS:
        ledger = [
            e for i, e in enumerate(fake.ledger()) if i >= ledger_from and e["tenant"] == tenant
        ]
        pre, post = before[tenant], after[tenant]
        bad = hazard_names(world, tenant, pre)
        items = by_source(report, tenant)
        # Definitions: one per name, unless the target already had two (then nothing new).
        for name, ids in post.by_name.items():
            assert len(ids) == len(pre.by_name.get(name, [])) or (
                len(ids) == 1 and not pre.by_name.get(name)
            ), (tenant, name, ids)
        unique_ids = {n: ids[0] for n, ids in post.by_name.items() if len(ids) == 1}
        # Exactly once: within a definition no landed content repeats, unless it was already
        # there twice before the run.
        for def_id, versions in post.versions.items():
            old = dict(pre.versions.get(def_id, []))
            new = [(v, h) for v, h in versions if v not in old]
            hashes_old = set(old.values())
            hashes_new = [h for _, h in new]
            assert len(set(hashes_new)) == len(hashes_new), (tenant, def_id, versions)
            assert not (set(hashes_new) & hashes_old), (tenant, def_id, versions)
            # Versions above what was there, increasing in import order (the ledger's order).
            in_order = [e["version"] for e in ledger if e["definition_id"] == def_id]
            assert sorted(in_order, key=version_key) == in_order, in_order
            assert len(set(map(version_key, in_order))) == len(in_order), in_order
            if old and in_order:
                top = max(old, key=version_key)
                assert version_key(in_order[0]) > version_key(top), (old, in_order)
        assert len(ledger) == sum(
            len(v) - len(pre.versions.get(d, [])) for d, v in post.versions.items()
        )
        # Round trip + what landed is what was meant: each document not hazardous has its
        # payload's canonical hash among its name's versions; each new version is some document's
        # payload.
        expected_by_name: dict[str, set[str]] = defaultdict(set)
        for d in world.docs:
            h = expected_hash(d, unique_ids, world.subs[tenant])
            if h is not None:
                expected_by_name[d.name].add(h)
            if d.name in bad:
                continue
            assert h is not None, (tenant, d.file)
            landed_hashes = {lh for _, lh in post.versions[unique_ids[d.name]]}
            assert h in landed_hashes, (tenant, d.file, items.get(d.file))
        for def_id, versions in post.versions.items():
            old = dict(pre.versions.get(def_id, []))
            name = next(n for n, ids in post.by_name.items() if def_id in ids)
            for v, h in versions:
                if v not in old:
                    assert h in expected_by_name[name], (tenant, name, v)
        # Callees before callers: the import of a document with a call comes after its callee's
        # definition exists (it existed before the run, or was created earlier in the ledger).
        first_seen: dict[int, int] = {}
        for index, entry in enumerate(ledger):
            first_seen.setdefault(entry["definition_id"], index)
        landed_hash = {(d, v): h for d, versions in post.versions.items() for v, h in versions}
        for d in world.docs:
            if d.name in bad or not d.calls:
                continue
            h = expected_hash(d, unique_ids, world.subs[tenant])
            imports = [
                i
                for i, e in enumerate(ledger)
                if landed_hash[(e["definition_id"], e["version"])] == h
            ]
            for callee in {c for c in d.calls.values() if c is not None}:
                callee_id = unique_ids[callee]
                if imports and callee_id not in pre.versions:
                    assert first_seen[callee_id] < min(imports), (tenant, d.name, callee)
        # The verdict: not ok only for hazardous names.
        for item in items.values():
            if item.status not in ("imported", "skipped"):
                assert item.workflow_name in bad, (tenant, item)
        # Nothing of a hazard was written beyond what preceded it in its name's order.
        for d in world.docs:
            if d.missing and d.file in items:
                assert items[d.file].status in ("blocked", "skipped"), items[d.file]
    if not any(hazard_names(world, t, before[t]) for t in TENANTS):
        assert report.ok, report.to_json()
    return after


def _new_versions(before: Landed, after: Landed) -> dict[str, list[tuple[str, str]]]:
    """name → [(version, canonical hash)] landed by the run, in version order."""
    out: dict[str, list[tuple[str, str]]] = {}
    for name, ids in after.by_name.items():
        rows: list[tuple[str, str]] = []
        for def_id in ids:
            old = dict(before.versions.get(def_id, []))
            rows += [(v, h) for v, h in after.named[def_id] if v not in old]
        out[name] = sorted(rows, key=lambda r: version_key(r[0]))
    return out


def run(fn: Any, *args: Any) -> Any:
    logs.configure("console", "warning")  # debug lines of thousands of requests cost seconds
    return anyio.run(fn, *args, backend="asyncio")


# ---------------------------------------------------------------------------------------------
# 1 + 3 + 4: exactly once, round trip, the dry run predicts the real run


def _prediction(dry: Report, real: Report) -> None:
    """Per (tenant, source): the dry run's action and version are what the real run did."""
    real_items = {(i.tenant, i.source): i for i in real.items}
    for p in dry.items:
        r = real_items[(p.tenant, p.source)]
        if p.status == "planned":
            assert r.status == "imported" and r.action == p.action and r.version == p.version, (
                p,
                r,
            )
        elif p.status == "skipped":
            assert r.status == "skipped", (p, r)
        else:
            assert (r.status, r.error) == (p.status, p.error), (p, r)


@pytest.mark.slow
@PROPS
@given(worlds(), st.sampled_from(["never", "always"]))
def test_migrate_twice_exactly_once_and_predicted(world: World, activation: Any) -> None:
    """Two runs (the second with a fresh journal) over any world: every property of the module
    docstring's points 1, 3 and 4 holds, per tenant, against the fake's own record; with
    activation, the second run switches nothing (it used to switch each older identical version
    on in turn before the latest again)."""

    async def scenario() -> None:
        config = FakeConfig.demo(len(TENANTS))
        async with serve(config) as fake:
            settings_ = settings_for(fake, config, max_concurrency=4, substitutions=world.subs)
            before = preload(fake, world)
            with tempfile.TemporaryDirectory() as tmp:
                sources = write_sources(world, Path(tmp))
                options = MigrateOptions(
                    sources=sources, journal=str(Path(tmp) / "j1.jsonl"), activation=activation
                )
                dry = await migrate(settings_, MigrateOptions(sources=sources, dry_run=True))
                assert fake.ledger() == []
                first = await migrate(settings_, options)
                after = check_world(world, fake, before, first)
                _prediction(dry, first)
                count = len(fake.ledger())
                dry2 = await migrate(settings_, MigrateOptions(sources=sources, dry_run=True))
                second = await migrate(
                    settings_,
                    MigrateOptions(
                        sources=sources, journal=str(Path(tmp) / "j2.jsonl"), activation=activation
                    ),
                )
                switched = [i for i in second.items if "; activated" in (i.reason or "")]
                assert not switched, switched
                assert len(fake.ledger()) == count, second.to_json()
                check_world(world, fake, before, second)
                assert {t: landed(fake, t) for t in TENANTS} == after
                assert second.summary()["imported"] == 0
                if first.ok:
                    assert second.ok, second.to_json()
                    assert all(i.status == "skipped" for i in second.items)
                    _prediction(dry2, second)

    run(scenario)


# ---------------------------------------------------------------------------------------------
# 2: faults and a journal give the same result as no faults


FAULTS = FaultConfig(lost_response_rate=0.15, error_rate=0.1, reset_rate=0.05)


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    phases=PROPS.phases,
)
@given(worlds(hazards=False), st.integers(0, 2**16))
def test_faults_with_journal_converge_to_the_fault_free_result(world: World, seed: int) -> None:
    """Runs repeated with one journal against a faulty fake end ok, with exactly the versions and
    contents a fault-free run lands (definition ids aside)."""

    async def once(faults: FaultConfig | None) -> dict[str, dict[str, list[tuple[str, str]]]]:
        config = FakeConfig.demo(len(TENANTS), seed=seed)
        if faults is not None:
            config = with_tenant_knobs(config, **vars(faults))
        async with serve(config) as fake:
            settings_ = settings_for(
                fake, config, max_concurrency=4, max_attempts=3, substitutions=world.subs
            )
            # Pre-load with no faults in the way (add_workflow is direct state access anyway).
            before = preload(fake, world)
            with tempfile.TemporaryDirectory() as tmp:
                sources = write_sources(world, Path(tmp))
                options = MigrateOptions(sources=sources, journal=str(Path(tmp) / "j.jsonl"))
                for _ in range(12):
                    report = await migrate(settings_, options)
                    if report.ok:
                        break
                assert report.ok, report.to_json()
                if faults is not None:
                    for tenant in TENANTS:
                        fake.set_faults(tenant, FaultConfig())
                check_world(world, fake, before, report)
                out = {}
                for tenant in TENANTS:
                    after = landed(fake, tenant)
                    out[tenant] = _new_versions(before[tenant], after)
                return out

    clean = run(once, None)
    faulty = run(once, FAULTS)
    for tenant in TENANTS:
        for name in sorted(set(clean[tenant]) | set(faulty[tenant])):
            assert faulty[tenant].get(name) == clean[tenant].get(name), (
                tenant,
                name,
                faulty[tenant].get(name),
                clean[tenant].get(name),
            )


# ---------------------------------------------------------------------------------------------
# Examples the properties found, kept as plain tests


def _caller(
    name: str, callee: dict[str, Any], *, workflow_id: int, version: str | None = None
) -> dict[str, Any]:
    """A two-task document named `name` whose second task calls `callee` ({"id"?, "name"?})."""
    data: dict[str, Any] = {
        "workflow": {
            "id": workflow_id,
            "name": name,
            "parameters": {"fields": []},
            "type": "Workflow::Setup",
        },
        "tasks": [
            {
                "id": 1,
                "name": "start",
                "action_type": "Email",
                "parameters": {"body": name},
                "task_id": None,
            },
            {
                "id": 2,
                "name": "call",
                "action_type": EXECUTE,
                "parameters": {
                    "workflow_id": callee.get("id"),
                    "workflow_name": callee.get("name"),
                },
                "task_id": 1,
            },
        ],
        "linkages": [
            {
                "source_workflow_id": workflow_id,
                "source_task_id": None,
                "target_task_id": 1,
                "linkage_type": "Start",
            },
            {
                "source_workflow_id": None,
                "source_task_id": 1,
                "target_task_id": 2,
                "linkage_type": "Success",
            },
        ],
    }
    if version is not None:
        data["workflow"]["version"] = version
    return data


async def _dry_and_real(docs: list[dict[str, Any]], tmp: Path) -> tuple[Report, Report, Any]:
    config = FakeConfig.demo(1)
    async with serve(config) as fake:
        settings_ = settings_for(fake, config)
        paths = []
        for i, data in enumerate(docs):
            path = tmp / f"d{i:02d}.json"
            path.write_bytes(orjson.dumps(data))
            paths.append(str(path))
        dry = await migrate(settings_, MigrateOptions(sources=paths, dry_run=True))
        real = await migrate(settings_, MigrateOptions(sources=paths, journal=str(tmp / "j.jsonl")))
        return dry, real, fake.ledger()


@pytest.mark.anyio
async def test_a_workflow_calling_itself_is_blocked_when_it_does_not_exist_yet(
    tmp_path: Path,
) -> None:
    """Its own id is only known once created: the plan blocks it (it used to plan a create that
    every run then deferred, 'callee has no definition'); a later version may call itself."""
    dry, real, ledger = await _dry_and_real(
        [
            _caller("Loop", {"name": "Loop"}, workflow_id=5, version="1"),
            _caller("Loop", {"id": "5"}, workflow_id=6, version="2"),
        ],
        tmp_path,
    )
    _prediction(dry, real)
    assert {i.status for i in real.items} == {"blocked"}
    assert "calls this workflow itself" in (real.items[0].error or "")
    assert ledger == []


@pytest.mark.anyio
async def test_callers_of_a_workflow_that_cannot_be_imported_are_blocked(tmp_path: Path) -> None:
    """A caller of a blocked callee (here: in a call cycle) that is not in the tenant is blocked in
    the plan, up the call chain, and the real run does the same (it used to plan them and then
    defer them in every run: 'callee has no definition')."""
    dry, real, ledger = await _dry_and_real(
        [
            _caller("A", {"name": "B"}, workflow_id=5),
            _caller("B", {"name": "A"}, workflow_id=6),
            _caller("C", {"id": "5"}, workflow_id=7),
            _caller("D", {"name": "C"}, workflow_id=8),
            _caller("E", {"id": "{{ Data.X }}"}, workflow_id=9),
        ],
        tmp_path,
    )
    _prediction(dry, real)
    status = {i.workflow_name: (i.status, i.error) for i in real.items}
    assert status["C"] == ("blocked", "calls 'A', which is blocked in tenant tenant-1")
    assert status["D"] == ("blocked", "calls 'C', which is blocked in tenant tenant-1")
    assert [e["name"] for e in ledger] == ["E"]


def _plain(name: str, body: str, *, workflow_id: int) -> dict[str, Any]:
    data = _caller(name, {}, workflow_id=workflow_id)
    data["tasks"][1]["action_type"] = "Export"
    data["tasks"][1]["parameters"] = {"body": body}
    return data


@pytest.mark.anyio
async def test_a_rerun_plan_skips_callers_already_on_the_target(tmp_path: Path) -> None:
    """After a migration, the dry run of the same sources says skip for a caller too (it said
    'new version' for every document with a call, and the real run then skipped it)."""
    docs = [
        _plain("Callee", "x", workflow_id=5),
        _caller("Caller", {"id": "5"}, workflow_id=6),
        _caller("Liquid", {"id": "{{ Data.Callee }}"}, workflow_id=7),
    ]
    config = FakeConfig.demo(1)
    async with serve(config) as fake:
        settings_ = settings_for(fake, config)
        paths = []
        for i, data in enumerate(docs):
            path = tmp_path / f"d{i:02d}.json"
            path.write_bytes(orjson.dumps(data))
            paths.append(str(path))
        first = await migrate(settings_, MigrateOptions(sources=paths))
        assert first.ok and first.summary()["imported"] == 3
        dry = await migrate(settings_, MigrateOptions(sources=paths, dry_run=True))
        real = await migrate(settings_, MigrateOptions(sources=paths))
        assert {i.status for i in dry.items} == {"skipped"}, dry.to_json()
        _prediction(dry, real)
        assert len(fake.ledger()) == 3


@pytest.mark.anyio
async def test_a_resumed_caller_keeps_the_version_it_landed_as(tmp_path: Path) -> None:
    """A caller's import whose answer was lost lands once; the next run records it under the
    version it landed as, and its later version takes the next number, as without the fault (the
    next run used to plan a fresh number for it, so the later version skipped one)."""
    from tests.helpers import hooked

    docs = [
        _plain("Callee", "x", workflow_id=5),
        _caller("Caller", {"id": "5"}, workflow_id=6),
        _caller("Caller", {"id": "5", "name": "Callee"}, workflow_id=7) | {},
    ]
    docs[2]["tasks"][0]["parameters"]["body"] = "second"
    config = FakeConfig.demo(1)
    async with serve(config) as fake:
        settings_ = settings_for(fake, config, max_attempts=1, max_concurrency=1)
        paths = []
        for i, data in enumerate(docs):
            path = tmp_path / f"d{i:02d}.json"
            path.write_bytes(orjson.dumps(data))
            paths.append(str(path))
        journal = str(tmp_path / "j.jsonl")

        def lose(type: str, fields: Any) -> None:
            if type == "intent" and fields["name"] == "Caller":
                fake.set_faults("tenant-1", FaultConfig(lost_response_rate=1.0))

        first = await migrate(
            settings_, MigrateOptions(sources=paths, journal=journal), journal_factory=hooked(lose)
        )
        assert not first.ok
        fake.set_faults("tenant-1", FaultConfig())
        dry = await migrate(settings_, MigrateOptions(sources=paths, journal=journal, dry_run=True))
        second = await migrate(settings_, MigrateOptions(sources=paths, journal=journal))
        assert second.ok, second.to_json()
        _prediction(dry, second)
        assert [(e["name"], e["version"]) for e in fake.ledger()] == [
            ("Callee", "0.0.1"),
            ("Caller", "0.0.1"),
            ("Caller", "0.0.2"),
        ]


@pytest.mark.anyio
async def test_a_rerun_with_activation_leaves_the_latest_version_active(tmp_path: Path) -> None:
    """Re-running `--activate` over a migrated workflow switches nothing: it used to switch
    version 1 on (identical, skipped) and then version 2 again, putting the old one live between."""
    docs = [_plain("W", "one", workflow_id=5), _plain("W", "two", workflow_id=6)]
    docs[0]["workflow"]["version"], docs[1]["workflow"]["version"] = "1", "2"
    config = FakeConfig.demo(1)
    async with serve(config) as fake:
        settings_ = settings_for(fake, config)
        paths = []
        for i, data in enumerate(docs):
            path = tmp_path / f"d{i:02d}.json"
            path.write_bytes(orjson.dumps(data))
            paths.append(str(path))
        options = MigrateOptions(sources=paths, activation="always")
        assert (await migrate(settings_, options)).ok
        patches: list[Any] = []
        patch = fake.state.patch_definition
        fake.state.patch_definition = lambda *a: patches.append(a) or patch(*a)  # type: ignore[method-assign]
        again = await migrate(settings_, options)
        assert again.ok and patches == []
        assert [i.reason for i in again.items] == [
            "identical to version 1 in tenant tenant-1",
            "identical to version 2 in tenant tenant-1; already active",
        ]


@pytest.mark.anyio
async def test_activation_after_an_inactive_run_switches_the_latest_version_on(
    tmp_path: Path,
) -> None:
    """After an inactive import of two versions, `--activate` with the same journal switches the
    latest one on, once, whether the earlier versions are skipped as done or as identical."""
    docs = [_plain("W", "one", workflow_id=5), _plain("W", "two", workflow_id=6)]
    docs[0]["workflow"]["version"], docs[1]["workflow"]["version"] = "1", "2"
    config = FakeConfig.demo(1)
    async with serve(config) as fake:
        settings_ = settings_for(fake, config)
        paths = []
        for i, data in enumerate(docs):
            path = tmp_path / f"d{i:02d}.json"
            path.write_bytes(orjson.dumps(data))
            paths.append(str(path))
        journal = str(tmp_path / "j.jsonl")
        # Version 1 on the target before (identical), version 2 through the journal (done).
        assert (await migrate(settings_, MigrateOptions(sources=paths[:1]))).ok
        assert (await migrate(settings_, MigrateOptions(sources=paths, journal=journal))).ok
        patches: list[Any] = []
        patch = fake.state.patch_definition
        fake.state.patch_definition = lambda *a: patches.append(a) or patch(*a)  # type: ignore[method-assign]
        again = await migrate(
            settings_, MigrateOptions(sources=paths, journal=journal, activation="always")
        )
        assert again.ok, again.to_json()
        assert len(patches) == 1
        [def_id] = fake.state.list_definitions("tenant-1", {})
        assert fake.state.definition_json("tenant-1", def_id)["active_version"]["version"] == "2"


# ---------------------------------------------------------------------------------------------
# Stateful: sources grow, the target is edited by someone else, journals kept or replaced


@pytest.mark.slow
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    phases=PROPS.phases,
)
@given(worlds(hazards=False), st.data())
def test_runs_over_growing_sources_and_an_edited_target(world: World, data: st.DataObject) -> None:
    """Sources arrive in batches; between runs someone adds versions on the target; each run keeps
    the journal or starts a new one. After every run each document so far is on the target once,
    new versions sit above everything that was there, and the run is ok."""
    batches = [data.draw(st.integers(0, 2), label=f"batch of {d.file}") for d in world.docs]
    steps = [
        (data.draw(st.booleans(), label="new journal"), data.draw(st.booleans(), label="edit"))
        for _ in range(3)
    ]

    async def scenario() -> None:
        config = FakeConfig.demo(len(TENANTS))
        async with serve(config) as fake:
            settings_ = settings_for(fake, config, max_concurrency=3, substitutions=world.subs)
            preload(fake, world)
            with tempfile.TemporaryDirectory() as tmp:
                journal = str(Path(tmp) / "j0.jsonl")
                for step, (new_journal, edit) in enumerate(steps):
                    if edit:
                        for tenant in TENANTS:
                            for def_id in fake.state.list_definitions(tenant, {})[:2]:
                                name = fake.state.definition_json(tenant, def_id)["name"]
                                other = data.draw(documents(max_tasks=2), label="edit")
                                for t in _execute_tasks(other):
                                    t["parameters"]["workflow_id"] = "{{ Data.X }}"
                                other["workflow"]["name"] = name
                                fake.state.add_workflow(tenant, other, definition_id=def_id)
                    if new_journal:
                        journal = str(Path(tmp) / f"j{step + 1}.jsonl")
                    now = World(
                        docs=[d for d, b in zip(world.docs, batches, strict=True) if b <= step],
                        target=world.target,
                        hazards=False,
                        subs=world.subs,
                    )
                    sources = write_sources(now, Path(tmp))
                    before = {t: landed(fake, t) for t in TENANTS}
                    ledger_before = len(fake.ledger())
                    if not now.docs:
                        # Nothing to migrate is said, never reported as an ok run.
                        with pytest.raises(MigratorError, match="nothing to migrate"):
                            await migrate(
                                settings_, MigrateOptions(sources=sources, journal=journal)
                            )
                        assert len(fake.ledger()) == ledger_before
                        continue
                    report = await migrate(
                        settings_, MigrateOptions(sources=sources, journal=journal)
                    )
                    check_world(now, fake, before, report, ledger_from=ledger_before)

    run(scenario)
