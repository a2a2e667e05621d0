"""A workflow deleted in the tenant is imported again by the next run (issue 14 #2).

Zuora remembers an Idempotency-Key for 24 hours (spec §1.8): a create that follows a deletion
must not reuse the key of the create that made the deleted definition, or it gets the old answer
back. Deleting goes over HTTP (`DELETE /workflows/{id}`), as a user in the tenant would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from migrator.fake import FakeConfig, FaultConfig
from migrator.run.migrate import migrate
from migrator.run.options import MigrateOptions
from tests.builders import small_export
from tests.fake.helpers import Caller
from tests.helpers import Env, hooked, running_fake

pytestmark = pytest.mark.anyio

T1 = "tenant-1"


async def delete_in_tenant(env: Env, definition_id: int) -> None:
    """`DELETE /workflows/{id}` on the fake, as a user of the tenant would."""
    tenant = next(t for t in env.config.tenants if t.name == T1)
    async with aiohttp.ClientSession() as session:
        answer = await Caller(session, env.fake, tenant).call(
            "DELETE", f"/workflows/{definition_id}"
        )
    assert answer.status == 200, answer.body


def _source(tmp_path: Path) -> str:
    path = tmp_path / "resume.json"
    path.write_text(json.dumps(small_export()))
    return str(path)


async def test_deleted_workflow_is_imported_again(tmp_path: Path) -> None:
    """Import, delete in the tenant, re-run (new journal, as a restore does): the workflow is created again under a new key and a new definition."""
    source = _source(tmp_path)
    async with running_fake(FakeConfig.demo(1)) as env:
        first = await migrate(
            env.settings, MigrateOptions(sources=[source], journal=str(tmp_path / "a.jsonl"))
        )
        [item] = first.items
        assert item.status == "imported"
        await delete_in_tenant(env, item.target_workflow_id)

        again = await migrate(
            env.settings, MigrateOptions(sources=[source], journal=str(tmp_path / "b.jsonl"))
        )
        [item2] = again.items
        assert item2.status == "imported", again.to_json()
        assert item2.target_workflow_id != item.target_workflow_id
        ledger = env.imports(T1)
        assert len(ledger) == 2
        assert ledger[0]["idempotency_key"] != ledger[1]["idempotency_key"]
        assert env.fake.state.export(T1, item2.target_workflow_id, None)["workflow"]["name"] == (
            "Resume"
        )


async def test_deleted_workflow_restored_through_a_lost_answer(tmp_path: Path) -> None:
    """After a deletion, a re-run whose create loses its answer is resumed with that same new key and lands exactly once more."""
    source = _source(tmp_path)
    journal = str(tmp_path / "b.jsonl")
    async with running_fake(FakeConfig.demo(1), max_attempts=1) as env:
        first = await migrate(
            env.settings, MigrateOptions(sources=[source], journal=str(tmp_path / "a.jsonl"))
        )
        await delete_in_tenant(env, first.items[0].target_workflow_id)

        def lose(type: str, fields: Any) -> None:
            if type == "intent":
                env.fake.set_faults(T1, FaultConfig(lost_response_rate=1.0))

        lost = await migrate(
            env.settings,
            MigrateOptions(sources=[source], journal=journal),
            journal_factory=hooked(lose),
        )
        assert [i.status for i in lost.items] == ["deferred"], lost.to_json()
        env.fake.set_faults(T1, FaultConfig())
        resumed = await migrate(env.settings, MigrateOptions(sources=[source], journal=journal))
        assert resumed.ok, resumed.to_json()
        ledger = env.imports(T1)
        assert len(ledger) == 2, ledger  # the first import and the restore: nothing twice
        definitions = env.fake.state.list_definitions(T1, {})
        assert len(definitions) == 1


async def test_deleted_workflow_is_imported_again_with_the_same_journal(tmp_path: Path) -> None:
    """Import, delete in the tenant over HTTP, re-run with the SAME journal while the server still remembers the first create's key: the workflow is created again once, under a new key and a new definition, the journal records it gone then done with the new ids, and a third run imports nothing."""
    from migrator.core.journal_records import scan
    from migrator.store.journal import read_journal

    source = _source(tmp_path)
    journal = tmp_path / "j.jsonl"
    options = MigrateOptions(sources=[source], journal=str(journal))
    async with running_fake(FakeConfig.demo(1)) as env:
        first = await migrate(env.settings, options)
        [item] = first.items
        assert item.status == "imported"
        await delete_in_tenant(env, item.target_workflow_id)

        again = await migrate(env.settings, options)
        [item2] = again.items
        assert item2.status == "imported", again.to_json()
        assert item2.target_workflow_id != item.target_workflow_id
        ledger = env.imports(T1)
        assert len(ledger) == 2
        assert ledger[0]["idempotency_key"] != ledger[1]["idempotency_key"]
        assert ledger[1]["definition_id"] == item2.target_workflow_id
        assert env.fake.state.export(T1, item2.target_workflow_id, None)["workflow"]["name"] == (
            "Resume"
        )
        types = [r.type for r in scan(journal.read_bytes()).records if r.get("tenant") == T1]
        assert types.count("gone") == 1
        assert types.index("gone") < max(i for i, t in enumerate(types) if t == "committed")
        [state] = read_journal(journal).state.values()
        assert state.status == "done"
        assert state.target_definition_id in (None, item2.target_workflow_id)

        third = await migrate(env.settings, options)
        assert [i.status for i in third.items] == ["skipped"], third.to_json()
        assert len(env.imports(T1)) == 2
