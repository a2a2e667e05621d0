"""A journal written by an earlier release resumes correctly (issue 21 #10).

tests/data/legacy_journal/ holds what release 3b5c74c (the last whose item keys hashed keys that
import drops) left after six SIGKILLs under 30 % lost answers: its journal, with imports in doubt,
done and deferred, the sources it read (documents carrying `ui_trigger`, a task's `notes`, a
linkage's `ui_route` and a top-level `exported_by`), and the fake's state at that moment (its
workflows and the ledger of the imports that landed). make_fixture.py there says how it was made.

That release's own lost answers already imported two documents twice (it could not recognise its
own landed imports, the defect its successor fixed); today's migrator must add nothing to that.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrator.core.canonical import canonical_hash
from migrator.core.errors import InputError
from migrator.core.journal_records import Record, decode_line, encode
from migrator.core.legacy_identity import LEGACY_IDENTITIES, every_key_hash, kept_keys_hash
from migrator.fake import FakeConfig
from migrator.run.tenant import tenant_fingerprint
from migrator.store.journal import read_journal
from migrator.store.sources import discover, read_document
from tests.canonical_reference import canonical_hash as reference_hash
from tests.conftest import SAMPLES
from tests.helpers import Env, run_migrator, running_fake, write_config_file
from tests.strategies import documents, json_values

pytestmark = pytest.mark.anyio

FIXTURE = Path(__file__).parent / "data" / "legacy_journal"
TENANTS = ("tenant-1", "tenant-2")


def fixture_journal_for(env: Env, dest: Path) -> Path:
    """The fixture's journal, its run_started records pointed at this test's fake.

    The fixture was written against a fake on another port; a journal names its tenants by a
    fingerprint of URL and client id, which this run must match. Only `tenants` of each
    run_started changes (re-encoded with its checksum); every item record stays byte-identical.
    """
    fingerprints = {name: tenant_fingerprint(env.settings.tenants[name]) for name in TENANTS}
    out = []
    for line in (FIXTURE / "journal.jsonl").read_bytes().splitlines(keepends=True):
        record = decode_line(line)
        if record.type == "run_started":
            fields = {**record.fields, "tenants": fingerprints}
            line = encode(Record(record.seq, record.type, record.t, fields))
        out.append(line)
    dest.write_bytes(b"".join(out))
    return dest


def fixture_fake() -> FakeConfig:
    return FakeConfig.demo(len(TENANTS))


def load_fixture_state(env: Env) -> Counter[tuple[str, str]]:
    """Put the fake in the state the earlier release left it in; returns its ledger's counts."""
    env.fake.state.load_json(orjson.loads((FIXTURE / "fake-state.json").read_bytes()))
    return Counter((e["tenant"], e["name"]) for e in env.fake.ledger())


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(documents(), st.dictionaries(st.sampled_from(["ui_trigger", "notes", "x"]), json_values))
def test_every_key_identity_is_the_earlier_releases_hash(
    doc: dict[str, object], extra: dict[str, object]
) -> None:
    """The frozen every-key identity gives the frozen reference's hash, dropped keys included, for any valid document."""
    doc["workflow"] = {**doc["workflow"], **extra}  # type: ignore[dict-item]
    tasks = doc["tasks"]
    assert isinstance(tasks, list)
    tasks[0] = {**extra, **tasks[0]}
    links = doc["linkages"]
    assert isinstance(links, list)
    if links:
        links[0] = {**extra, **links[0]}
    doc.update({f"top_{k}": v for k, v in extra.items()})
    assert every_key_hash(doc) == reference_hash(doc)


def kept_by_import(data: dict[str, object]) -> dict[str, object]:
    """`data` as import keeps it, by the fake's own lists (apart from the client's), with the
    workflow_definition block the frozen reference leaves out of the hash."""
    from migrator.fake._document import LINKAGE_KEYS, TASK_KEYS, WORKFLOW_KEYS

    def only(record: object, keys: frozenset[str]) -> object:
        return (
            {k: v for k, v in record.items() if k in keys} if isinstance(record, dict) else record
        )

    out = {
        k: v
        for k, v in data.items()
        if k in ("workflow", "tasks", "linkages", "workflow_definition")
    }
    out["workflow"] = only(out["workflow"], WORKFLOW_KEYS)
    for part, keys in (("tasks", TASK_KEYS), ("linkages", LINKAGE_KEYS)):
        records = out[part]
        assert isinstance(records, list)
        out[part] = [only(r, keys) for r in records]
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    documents(),
    st.fixed_dictionaries(
        {},
        optional={
            "name": st.text(max_size=8),
            "description": st.text(max_size=8),
            "category": st.text(max_size=8),
            "ui_page_roles": st.lists(st.text(max_size=4), max_size=2),
        },
    ),
)
def test_kept_keys_identity_is_the_hash_before_the_definition_block_counted(
    doc: dict[str, object], block: dict[str, object]
) -> None:
    """The kept-keys identity of a document with a workflow_definition block is the frozen reference's hash of what import keeps, the block left out as that release left it out."""
    doc["workflow_definition"] = block
    assert kept_keys_hash(doc) == reference_hash(kept_by_import(doc))
    if block.get("category"):  # today it counts: a journal of that release names another key
        assert kept_keys_hash(doc) != canonical_hash(doc)


def test_every_key_identity_on_the_samples() -> None:
    """Every valid sample (file references, merges, calls) gets the frozen reference's hash."""
    seen = 0
    for item in discover([str(SAMPLES)]):
        try:
            doc = read_document(item)
        except InputError:  # the samples include refused documents
            continue
        assert every_key_hash(doc.data) == reference_hash(doc.data)
        seen += 1
    assert seen >= 20


def test_the_fixture_is_an_earlier_releases_journal() -> None:
    """The fixture's item keys are the earlier identity of its sources, none is today's, and the earlier release left imports in doubt, done and deferred in it."""
    view = read_journal(FIXTURE / "journal.jsonl")
    today = set()
    earlier = set()
    for item in discover([str(FIXTURE / "sources")]):
        doc = read_document(item)
        today.add(doc.content_hash)
        earlier.add(reference_hash(doc.data))
    items = {item for _, item in view.state}
    assert items <= earlier
    assert not items & today
    statuses = Counter(st.status for st in view.state.values())
    assert statuses["in_doubt"] >= 2 and statuses["done"] >= 2 and statuses["deferred"] >= 2


def test_every_legacy_identity_names_the_fixtures_items() -> None:
    """The fixture's keys are found among the legacy identities of its sources (the mapping a resume uses)."""
    view = read_journal(FIXTURE / "journal.jsonl")
    legacy = set()
    for item in discover([str(FIXTURE / "sources")]):
        doc = read_document(item)
        legacy |= {identity.key(doc.data) for identity in LEGACY_IDENTITIES}
    assert {item for _, item in view.state} <= legacy


@pytest.mark.timeout(180)
async def test_todays_migrator_resumes_an_earlier_releases_journal(tmp_path: Path) -> None:
    """Resuming the earlier release's killed journal exits 0 without the false 'no longer in the sources' refusal, lands every document on every tenant, imports none the earlier release had landed again, and leaves the journal settled."""
    sources = tmp_path / "sources"
    shutil.copytree(FIXTURE / "sources", sources)
    names = {read_document(item).name for item in discover([str(sources)])}
    async with running_fake(fixture_fake()) as env:
        before = load_fixture_state(env)
        journal = fixture_journal_for(env, tmp_path / "j.jsonl")
        config = tmp_path / "migrator.toml"
        variables = write_config_file(config, env)
        args = ["--config", str(config), "--journal", str(journal)]
        result = await run_migrator(
            ["migrate", str(sources), *args, "--progress", "never"], variables, tmp_path
        )
        out = result.out + result.err
        assert result.code == 0, out
        assert "no longer in the sources" not in out
        assert "Traceback" not in out

        after = Counter((e["tenant"], e["name"]) for e in env.fake.ledger())
        for tenant in TENANTS:
            for name in names:
                landed_before = before[(tenant, name)]
                # On the target now, and imported by today's run only if it was not there.
                assert after[(tenant, name)] == max(landed_before, 1), (tenant, name, out)

        # Every item the earlier release wrote is carried over to today's key, durably.
        view = read_journal(journal)
        today = {read_document(item).content_hash for item in discover([str(sources)])}
        assert {item for _, item in view.state} <= today
        assert sum(1 for r in view.records if r.type == "rekeyed") == len(
            read_journal(FIXTURE / "journal.jsonl").state
        )

        status = await run_migrator(["status", "--journal", str(journal)], variables, tmp_path)
        assert status.code == 0, status.out + status.err


@pytest.mark.timeout(180)
async def test_a_legacy_in_doubt_import_without_its_source_is_refused_truthfully(
    tmp_path: Path,
) -> None:
    """With the source of one of the earlier release's unanswered imports removed, the resume refuses with exit 2, names the file the import was read from and sends nothing."""
    view = read_journal(FIXTURE / "journal.jsonl")
    doubt = next(st for st in view.state.values() if st.status == "in_doubt")
    assert doubt.source is not None
    gone = Path(doubt.source).name
    sources = tmp_path / "sources"
    shutil.copytree(FIXTURE / "sources", sources)
    (sources / gone).unlink()
    async with running_fake(fixture_fake()) as env:
        before = load_fixture_state(env)
        journal = fixture_journal_for(env, tmp_path / "j.jsonl")
        config = tmp_path / "migrator.toml"
        variables = write_config_file(config, env)
        args = ["--config", str(config), "--journal", str(journal), "--progress", "never"]
        result = await run_migrator(["migrate", str(sources), *args], variables, tmp_path)
        out = result.out + result.err
        assert result.code == 2, out
        assert "no document in the sources has their content" in out
        assert gone in out and "restore those sources" in out
        assert Counter((e["tenant"], e["name"]) for e in env.fake.ledger()) == before
