"""Reading a listing entry and an import answer whichever way the tenant writes them (issue 23)."""

from __future__ import annotations

from typing import Any

from migrator.core.listing import (
    active_version,
    definition_id_of,
    inactive_versions,
    listing_spelling,
    shown_versions,
    unseen_versions_note,
)
from migrator.zuora.calls import ImportAnswer

V1 = {"id": 689, "version": "0.0.1", "definitionId": 1}
V2 = {"id": 2483, "version": "0.0.2", "definitionId": 1}


def entry(**keys: Any) -> dict[str, Any]:
    return {"id": 1, "name": "W", "active_version": {"id": 7, "version": "1.0"}, **keys}


def test_both_spellings_give_the_same_inactive_versions() -> None:
    """The reference's misspelling, the live spelling and both at once read alike (§3.1 [O])."""
    assert inactive_versions(entry(latest_inactive_verisons=[V1, V2])) == [V1, V2]
    assert inactive_versions(entry(latest_inactive_versions=[V1, V2])) == [V1, V2]
    assert inactive_versions(
        entry(latest_inactive_verisons=[V1], latest_inactive_versions=[V1, V2])
    ) == [V1, V2]


def test_missing_or_malformed_lists_give_nothing() -> None:
    """An older tenant's entry (no list, null, or junk inside) shows no inactive versions."""
    assert inactive_versions({}) == []
    assert inactive_versions({"latest_inactive_versions": None}) == []
    assert inactive_versions({"latest_inactive_versions": ["x", 3, V1]}) == [V1]


def test_shown_versions_puts_the_active_one_first() -> None:
    """The active version, then the inactive ones; no active version is simply left out."""
    assert shown_versions(entry(latest_inactive_versions=[V1])) == [{"id": 7, "version": "1.0"}, V1]
    assert shown_versions({"active_version": None, "latest_inactive_versions": [V1]}) == [V1]
    assert active_version({"active_version": "x"}) is None


def test_definition_id_prefers_definition_id() -> None:
    """A version's `definitionId` wins; without one the caller's default stands."""
    assert definition_id_of(V1, 99) == 1
    assert definition_id_of({"id": 5}, 99) == 99
    assert definition_id_of({"definitionId": "12"}) == 12
    assert definition_id_of({"definitionId": True}) is None


def test_spelling_is_named() -> None:
    """Which spelling an entry uses is told apart (for doctor's profile)."""
    assert listing_spelling(entry(latest_inactive_verisons=[])) == "verisons"
    assert listing_spelling(entry(latest_inactive_versions=[])) == "versions"
    assert (
        listing_spelling(entry(latest_inactive_versions=[], latest_inactive_verisons=[])) == "both"
    )
    assert listing_spelling(entry()) is None


def test_unseen_note_says_what_was_not_seen() -> None:
    """The note names the 404 and how many versions the listing showed."""
    listed = [{"id": i, "version": f"0.0.{i}"} for i in range(10)]
    note = unseen_versions_note(1, entry(latest_inactive_versions=listed))
    assert "GET /workflows/1/versions answered 404" in note and "10 inactive versions" in note
    assert "beyond the 10 latest" in note


def test_import_answer_created_object() -> None:
    """An answer with `definitionId` (the created object, no envelope) names the definition and the version."""
    answer = ImportAnswer.read({"id": 2483, "definitionId": 1, "updatedAt": "t"}, new_version=False)
    assert (answer.id, answer.kind, answer.version_id, answer.updated_at) == (
        1,
        "definition",
        2483,
        "t",
    )


def test_import_answer_documented_shapes() -> None:
    """3.6's bare `id` is of unknown kind (§9.3); 3.7's definition object names the definition."""
    created = ImportAnswer.read({"id": 5, "success": True}, new_version=False)
    assert (created.id, created.kind, created.version_id) == (5, "unknown", None)
    version = ImportAnswer.read({"id": 5, "active_version": {"id": 6}}, new_version=True)
    assert (version.id, version.kind, version.version_id) == (5, "definition", None)
