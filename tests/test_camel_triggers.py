"""camelCase trigger keys (`calloutTrigger`, … as SDK-typed imports send, §9.13) are the same fact
as their snake_case names in the canonical form, are sent snake_case, and journals written
while they were dropped still resume (issue 23 #3)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from migrator.core.canonical import CAMEL_TRIGGERS, canonical_hash
from migrator.core.document import parse_document
from migrator.core.legacy_identity import LEGACY_IDENTITIES, legacy_keys
from migrator.core.remap import prepare_for_import
from migrator.fake import FakeConfig
from migrator.fake._document import CAMEL_TRIGGERS as FAKE_CAMEL_TRIGGERS
from migrator.run.migrate import migrate
from migrator.run.options import MigrateOptions
from tests.builders import small_export
from tests.canonical_reference import canonical_hash as reference_hash
from tests.helpers import running_fake

T1 = "tenant-1"


def _camel(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` with its workflow's triggers spelled camelCase (an SDK-typed export)."""
    wf = doc["workflow"]
    for camel, snake in CAMEL_TRIGGERS:
        wf[camel] = wf.pop(snake, snake == "ondemand_trigger")
    return doc


def test_the_client_and_the_fake_name_the_same_camel_case_triggers() -> None:
    """The canonical form maps exactly the camelCase trigger keys the fake plays."""
    assert CAMEL_TRIGGERS == FAKE_CAMEL_TRIGGERS


def test_camel_and_snake_case_triggers_hash_alike() -> None:
    """A document whose triggers are spelled camelCase hashes as the same document spelled snake_case; a different trigger value still counts."""
    snake = small_export("Camel")
    for _, key in CAMEL_TRIGGERS:
        snake["workflow"][key] = key == "ondemand_trigger"
    camel = _camel(json.loads(json.dumps(snake)))
    assert "callout_trigger" not in camel["workflow"]
    assert canonical_hash(camel) == canonical_hash(snake)
    changed = json.loads(json.dumps(camel))
    changed["workflow"]["calloutTrigger"] = True
    assert canonical_hash(changed) != canonical_hash(snake)
    both = json.loads(json.dumps(snake))
    both["workflow"]["calloutTrigger"] = True  # the snake_case spelling wins when both are given
    assert canonical_hash(both) == canonical_hash(snake)


def test_a_camel_case_document_is_sent_snake_case() -> None:
    """The payload carries each camelCase-only trigger under its snake_case name too."""
    doc = parse_document(json.dumps(_camel(small_export("Camel"))).encode(), "camel.json")
    payload = prepare_for_import(doc)
    assert payload["workflow"]["ondemand_trigger"] is True
    assert payload["workflow"]["callout_trigger"] is False


def test_journals_written_while_camel_case_triggers_were_dropped_resume() -> None:
    """The identity before this change (camelCase triggers dropped as unknown) is a legacy identity, and is the frozen reference's hash of the document without them."""
    doc = _camel(small_export("Camel"))
    names = {identity.name for identity in LEGACY_IDENTITIES}
    assert "snake-triggers" in names
    keys = legacy_keys(doc)
    old = canonical_hash(doc, camel=False)
    assert old in keys and old != canonical_hash(doc)
    without = json.loads(json.dumps(doc))
    for camel, _ in CAMEL_TRIGGERS:
        del without["workflow"][camel]
    assert old == reference_hash(without)


@pytest.mark.anyio
@pytest.mark.parametrize("variant", ["camel-case-triggers-kept", "documented"])
async def test_camel_case_documents_migrate_exactly_once(tmp_path: Path, variant: str) -> None:
    """A camelCase-triggered document lands once whether the tenant keeps or drops camelCase keys, with its triggers stored, and a second run (no cache) imports nothing."""
    source = tmp_path / "camel.json"
    source.write_text(json.dumps(_camel(small_export("Camel"))))
    async with running_fake(FakeConfig.demo(1).with_variant(variant)) as env:
        for run in ("a", "b"):
            report = await migrate(
                env.settings,
                MigrateOptions(
                    sources=[str(source)], journal=str(tmp_path / f"{run}.jsonl"), use_cache=False
                ),
            )
            assert report.ok, report.to_json()
        assert Counter(e["name"] for e in env.imports(T1)) == {"Camel": 1}
        [version] = env.fake.state.tenants[T1].versions.values()
        assert version.document["workflow"]["ondemand_trigger"] is True
