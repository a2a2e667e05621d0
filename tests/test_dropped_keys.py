"""Keys Zuora drops on import do not count in a document's identity (issue 14 #1).

The client's kept-key lists mirror the fake's; a document carrying `ui_trigger` (and other
dropped keys) lands once, is skipped as identical by a run with a new journal, verifies, and a
lost answer to its import is recovered on resume rather than sent again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from migrator.core import canonical
from migrator.core.canonical import canonical_hash
from migrator.fake import FakeConfig, FaultConfig
from migrator.fake import _document as fake_document
from migrator.run.migrate import migrate
from migrator.run.options import MigrateOptions
from migrator.run.verify import all_verified, verify_tenants
from tests.builders import small_export
from tests.helpers import hooked, running_fake

pytestmark = pytest.mark.anyio

T1 = "tenant-1"
# The frozen reference's hash of tests.builders.small_export() (tests/canonical_reference.py).
SMALL_EXPORT_HASH = "03a31443d602c32fad68c30af7f449c81002d8064eaf110951415a6d5fc835b6"


def with_dropped_keys() -> dict[str, Any]:
    """small_export() plus a key import drops at every level: workflow, task, linkage, top."""
    doc = small_export()
    doc["workflow"]["ui_trigger"] = {"button": "Run now", "position": [1, 2]}
    doc["tasks"][1]["notes"] = "set by the UI"
    doc["linkages"][2]["ui_route"] = [[0, 1]]
    doc["exported_by"] = "someone"
    return doc


def test_client_lists_are_the_fakes() -> None:
    """The canonical form keeps exactly the keys the fake's import keeps (one rule, two copies)."""
    assert canonical.WORKFLOW_KEYS == fake_document.WORKFLOW_KEYS
    assert canonical.TASK_KEYS == fake_document.TASK_KEYS
    assert canonical.LINKAGE_KEYS == fake_document.LINKAGE_KEYS
    assert canonical.WORKFLOW_DEFINITION_KEYS == fake_document.WORKFLOW_DEFINITION_KEYS


def test_dropped_keys_do_not_count_in_the_hash() -> None:
    """A document hashes as the frozen reference hashes it without the keys import drops."""
    assert canonical_hash(small_export()) == SMALL_EXPORT_HASH
    assert canonical_hash(with_dropped_keys()) == SMALL_EXPORT_HASH


def test_kept_keys_still_count() -> None:
    """A kept key (internal_group on a linkage, a task's tags) still changes the hash."""
    doc = small_export()
    doc["linkages"][1]["internal_group"] = "g1"
    assert canonical_hash(doc) != SMALL_EXPORT_HASH
    doc = small_export()
    doc["tasks"][0]["tags"] = ["x"]
    assert canonical_hash(doc) != SMALL_EXPORT_HASH


def _write(tmp_path: Path) -> str:
    path = tmp_path / "resume.json"
    path.write_text(json.dumps(with_dropped_keys()))
    return str(path)


def documented() -> FakeConfig:
    """A fake that drops what Zuora drops (spec §3.6)."""
    return FakeConfig.demo(1, keep_unknown_keys=False)


async def test_rerun_with_new_journal_skips_identical_and_verifies(tmp_path: Path) -> None:
    """Imported once, a document with ui_trigger is skipped as identical by a run with a fresh journal, and verify says verified."""
    source = _write(tmp_path)
    async with running_fake(documented()) as env:
        first = await migrate(
            env.settings, MigrateOptions(sources=[source], journal=str(tmp_path / "a.jsonl"))
        )
        assert [i.status for i in first.items] == ["imported"], first.to_json()
        stored = env.fake.state.export(T1, first.items[0].target_workflow_id, None)
        assert "ui_trigger" not in stored["workflow"]  # the fake did drop it

        again = await migrate(
            env.settings, MigrateOptions(sources=[source], journal=str(tmp_path / "b.jsonl"))
        )
        assert [i.status for i in again.items] == ["skipped"], again.to_json()
        assert "identical to version" in (again.items[0].reason or "")
        assert len(env.imports(T1)) == 1

        checked = await verify_tenants(env.settings, [source])
        assert [i.status for i in checked.items] == ["verified"]
        assert all_verified(checked)


async def test_lost_answer_to_such_an_import_is_recovered(tmp_path: Path) -> None:
    """An import of a document with dropped keys whose answers are all lost lands once: the resume finds it on the target instead of sending a second version."""
    source = _write(tmp_path)
    journal = str(tmp_path / "j.jsonl")
    # One attempt: its answer is lost. (A retry would be answered by the server's replay of the
    # stored answer, and an answered import is committed at once, its ids resolved later.)
    async with running_fake(documented(), max_attempts=1) as env:

        def lose(type: str, fields: Any) -> None:
            if type == "intent":
                env.fake.set_faults(T1, FaultConfig(lost_response_rate=1.0))

        first = await migrate(
            env.settings,
            MigrateOptions(sources=[source], journal=journal),
            journal_factory=hooked(lose),
        )
        assert [i.status for i in first.items] == ["deferred"], first.to_json()
        assert len(env.imports(T1)) == 1  # it landed; the answer did not

        env.fake.set_faults(T1, FaultConfig())
        resumed = await migrate(env.settings, MigrateOptions(sources=[source], journal=journal))
        # Found on the target by content (as for any plain document whose answer was lost).
        assert [i.status for i in resumed.items] == ["skipped"], resumed.to_json()
        assert "identical to version 0.0.2" in (resumed.items[0].reason or "")
        assert len(env.imports(T1)) == 1


async def test_a_definition_block_is_sent_kept_and_verified(tmp_path: Path) -> None:
    """A document's `workflow_definition` block is sent on import, kept by the tenant (its kept keys), shown by export, and the landed version verifies (issue 23 #2)."""
    doc = small_export()
    doc["workflow_definition"] = {
        "name": doc["workflow"]["name"],
        "description": "The definition's own words",
        "category": "Billing",
        "ui_page_roles": [],
        "id": 4242,  # the source tenant's definition id: import drops it
    }
    source = tmp_path / "blocked.json"
    source.write_text(json.dumps(doc))
    async with running_fake(FakeConfig.demo(1)) as env:
        report = await migrate(
            env.settings,
            MigrateOptions(sources=[str(source)], verify=True, journal=str(tmp_path / "j")),
        )
        assert report.ok and report.items[0].verified is True, report.to_json()
        [entry] = env.imports("tenant-1")
        exported = env.fake.state.export("tenant-1", entry["definition_id"], None)
        assert exported["workflow_definition"] == {
            "name": doc["workflow"]["name"],
            "description": "The definition's own words",
            "category": "Billing",
            "ui_page_roles": [],
        }
        assert canonical_hash(exported) == canonical_hash(doc)
