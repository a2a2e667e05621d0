"""The end-to-end migration against every variant the fake can play (issues 18, 23).

For each preset in `FakeConfig.variants()`: the samples migrate into a fresh fake playing it, a
second run imports nothing, and the fake's ledger holds each document exactly once. Then (issue
23) the migrated samples back up, diff in sync and roll back against each variant, and a
listing's spelling costs no request.
"""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import pytest

from migrator.commands.backup import backup_tenant
from migrator.core.drift import IN_SYNC
from migrator.fake import FakeConfig
from migrator.run.diff import diff_tenants
from migrator.run.migrate import migrate
from migrator.run.options import MigrateOptions
from migrator.run.rollback import rollback_from_journal
from migrator.run.verify import verify_tenants
from tests.builders import ALL_BUT_FILE_REFS, _config, sample_docs
from tests.conftest import SAMPLES
from tests.helpers import running_fake

pytestmark = pytest.mark.anyio

# Why a variant cannot pass yet; each reason names what would make it pass.
_XFAIL = {
    # Not fixable in the client: the server gives tasks new ids on import, and a payload is
    # sent before they exist, so no payload can name them. See docs/remapping.md.
    "no-file-ref-rewrite": pytest.mark.xfail(
        strict=True,
        reason="spec §9.1: a tenant that renumbers tasks on import without rewriting "
        "`Name__<taskId>` file references leaves them dangling; the target then never matches "
        "the source, so every run imports the file-passing samples again (doctor reports it as "
        "file-refs: differs)",
    ),
}


_XFAIL["all-flipped"] = _XFAIL["no-file-ref-rewrite"]
# all-flipped with file references rewritten: every other open behaviour at once must pass.


def _variant_params() -> list[object]:
    names = [*FakeConfig.variants(), ALL_BUT_FILE_REFS]
    return [pytest.param(name, marks=_XFAIL[name]) if name in _XFAIL else name for name in names]


@pytest.mark.parametrize("variant", _variant_params())
async def test_samples_migrate_exactly_once_in_every_variant(tmp_path: Path, variant: str) -> None:
    """Migrating the samples twice into a tenant playing `variant` lands each document exactly once."""
    docs = sample_docs()
    config = _config(variant)
    async with running_fake(config) as env:
        journal = str(tmp_path / "j.jsonl")
        first = await migrate(env.settings, MigrateOptions(sources=[str(SAMPLES)], journal=journal))
        assert first.ok, first.to_json()
        landed = len(env.imports("tenant-1"))
        # A fresh journal: the second run must find everything on the target itself.
        again = await migrate(
            env.settings,
            MigrateOptions(sources=[str(SAMPLES)], journal=str(tmp_path / "j2.jsonl")),
        )
        assert again.ok, again.to_json()
        ledger = env.imports("tenant-1")
        assert len(ledger) == landed, "the second run imported something again"
        assert Counter(e["name"] for e in ledger) == Counter(d.name for d in docs)
        assert len({e["idempotency_key"] for e in ledger}) == len(ledger)
        if variant == "no-versions-list":
            # Planned from the listing's versions (issue 23): the report says what it could not see.
            assert again.notices and all("answered 404" in n for n in again.notices), again.notices
            checked = await verify_tenants(env.settings, [str(SAMPLES)])
            assert all(i.status == "verified" for i in checked.items), checked.to_json()
            assert any("read the listing instead" in n for n in checked.notices)


@pytest.mark.parametrize("variant", [*FakeConfig.variants(), ALL_BUT_FILE_REFS])
async def test_migrated_samples_back_up_diff_and_roll_back_in_every_variant(
    tmp_path: Path, variant: str
) -> None:
    """The samples migrated (and switched on) into a tenant playing `variant` back up completely, diff in sync (except what the variant cannot keep), and roll back."""
    config = _config(variant)
    async with running_fake(config) as env:
        journal = str(tmp_path / "j.jsonl")
        first = await migrate(
            env.settings,
            MigrateOptions(sources=[str(SAMPLES)], journal=journal, activation="always"),
        )
        assert first.ok, first.to_json()
        docs = sample_docs()
        count = len({d.name for d in docs})  # one definition per name, its active version

        backup = await backup_tenant(env.settings, "tenant-1", tmp_path / "backups")
        assert backup.exit_code == 0 and backup.complete, backup.message
        assert backup.versions == count
        if variant == "no-versions-list":
            # Every sample is active, so the listing's active version is what is backed up; the
            # versions list is never needed. --all-versions reads the listing and says so.
            full = await backup_tenant(
                env.settings, "tenant-1", tmp_path / "all", all_versions=True
            )
            assert full.exit_code == 0 and full.versions == len(docs)
            assert any("answered 404" in n for n in full.notices), full.notices
        snapshot = Path(backup.snapshot)
        blocks = [p for p in snapshot.rglob("*.json*") if b"workflow_definition" in _read(p)]
        assert bool(blocks) == config.export_workflow_definition

        drift = await diff_tenants(env.settings, [str(SAMPLES)])
        cells = drift.tenants[0].workflows
        drifted = {w.name for w in cells if w.status != IN_SYNC}
        if variant in ("no-file-ref-rewrite", "all-flipped"):
            assert drifted  # dangling file references (spec §9.1)
        else:
            # An old-shape export never shows the one sample's block (its own description, a
            # category): diff compares the source as such an export shows it (issue 23).
            assert not drifted, [(w.name, w.status, w.reason) for w in cells if w.status != IN_SYNC]
        if variant == "no-versions-list":
            assert all("answered 404" in (w.reason or "") for w in cells), cells

        # Deleting what the run created needs every version's id (the versions list) as proof
        # that all are migrator's (docs/rollout.md): without one, the definitions are switched
        # off instead.
        delete = variant != "no-versions-list"
        rolled = await rollback_from_journal(env.settings, journal, delete_created=delete)
        assert rolled.items and all(i.status != "failed" for i in rolled.items), [
            (i.status, i.error) for i in rolled.items if i.status == "failed"
        ]
        if delete:
            assert env.fake.state.list_definitions("tenant-1", {}) == []
        else:
            tenant = env.fake.state.tenants["tenant-1"]
            assert all(d.status == "Inactive" for d in tenant.definitions.values())


def _read(path: Path) -> bytes:
    raw = path.read_bytes()
    return gzip.decompress(raw) if path.suffix == ".gz" else raw


async def _requests_to_migrate_twice(tmp_path: Path, config: FakeConfig) -> int:
    """Every API request the fake answers while the samples migrate, then again (fresh journal)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    async with running_fake(config) as env:
        for run in ("a", "b"):
            report = await migrate(
                env.settings,
                MigrateOptions(sources=[str(SAMPLES)], journal=str(tmp_path / f"{run}.jsonl")),
            )
            assert report.ok, report.to_json()
        return sum(env.fake.calls.values())


@pytest.mark.parametrize("spelling", ["versions", "both"])
async def test_a_spelling_costs_no_request(tmp_path: Path, spelling: str) -> None:
    """Migrating the samples twice costs the same requests whichever way the listing spells the inactive versions (issue 23 #1)."""
    misspelled = await _requests_to_migrate_twice(tmp_path / "a", FakeConfig.demo(1))
    spelled = await _requests_to_migrate_twice(
        tmp_path / "b", FakeConfig.demo(1, listing_spelling=spelling)
    )
    assert spelled == misspelled
