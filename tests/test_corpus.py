"""The 17 real exports in ../shared/corpus/real: each parses (the empty skeleton is refused) and
survives prepare_for_import valid and with an equal canonical hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrator.core.canonical import canonical_hash
from migrator.core.document import parse_document, validate_document
from migrator.core.errors import InputError
from migrator.core.remap import find_tenant_values, prepare_for_import, remap_task_ids
from tests.conftest import SHARED_CORPUS

SKELETON = "zca-workflow-skeleton.json"


def corpus_files() -> list[Path]:
    if not SHARED_CORPUS.is_dir():
        return []
    return sorted(SHARED_CORPUS.glob("*.json"))


FILES = corpus_files()
needs_corpus = pytest.mark.skipif(not FILES, reason=f"shared corpus not present at {SHARED_CORPUS}")


@needs_corpus
def test_corpus_is_complete() -> None:
    """The corpus holds the 17 expected exports, the skeleton among them."""
    assert len(FILES) == 17
    assert SKELETON in {f.name for f in FILES}


@needs_corpus
@pytest.mark.parametrize(
    "path",
    [f for f in FILES if f.name != SKELETON] or [None],
    ids=lambda p: p.name if p else "none",
)
def test_real_export_round_trips(path: Path) -> None:
    """A real export parses, and its import payload is valid with the same canonical hash."""
    doc = parse_document(path.read_bytes(), str(path))
    payload = prepare_for_import(doc)
    validate_document(payload, "payload")
    assert canonical_hash(payload) == doc.content_hash
    ids = sorted(t["id"] for t in doc.data["tasks"])
    shifted = remap_task_ids(doc.data, {old: old + 1000 for old in ids})
    assert canonical_hash(shifted) == doc.content_hash
    find_tenant_values(doc.data)


@needs_corpus
def test_file_refs_follow_their_producer() -> None:
    """In the Salto export, the Iterate task's file name points at the renumbered Export task."""
    path = (
        SHARED_CORPUS / "salto-sandbox-wf1-resume-subscriptions-for-accounts-with-zero-balanc.json"
    )
    payload = prepare_for_import(parse_document(path.read_bytes(), str(path)))
    export = next(t for t in payload["tasks"] if t["action_type"] == "Export")
    iterate = next(t for t in payload["tasks"] if t["action_type"] == "Iterate")
    assert iterate["object"] == f"Subscription__{export['id']}.csv.zip"


@needs_corpus
def test_skeleton_is_rejected() -> None:
    """The empty skeleton is refused with the reason Zuora would give."""
    path = SHARED_CORPUS / SKELETON
    with pytest.raises(InputError) as info:
        parse_document(path.read_bytes(), str(path))
    assert str(info.value) == f"{path}: $.tasks: no tasks — Zuora rejects an empty import"


@needs_corpus
def test_callout_url_is_a_tenant_value() -> None:
    """A literal callout URL in a real export is listed as a tenant-specific value."""
    path = SHARED_CORPUS / "zca-b8a81a1-uc4-bill-run-invoice-export.json"
    values = find_tenant_values(parse_document(path.read_bytes(), str(path)).data)
    assert any(
        v.kind == "callout_url" and v.value == "https://myexternalsystem.com/invoices"
        for v in values
    )
