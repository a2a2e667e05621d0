"""What one tenant's calls report and must satisfy: counters, the attempt record handed to
observers, Zuora's rules for track ids and Idempotency-Keys, and the shapes of answers.

Plain values and checks, kept apart from the client that sends the calls.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from migrator.core.listing import definition_id_of
from migrator.core.plan import int_or_none

MAX_KEY_LENGTH = 255
_TRACK_ID = re.compile(r"^[\x20-\x7e]{1,64}$")


@dataclass(slots=True)
class ClientStats:
    """Counters for one tenant's client (read by the engine and the progress display)."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0  # 429 answers
    errors: int = 0  # calls that failed for good
    refreshes: int = 0  # tokens dropped after a 401


@dataclass(frozen=True, slots=True)
class AttemptInfo:
    """What one attempt did, handed to the optional on_attempt callback."""

    tenant: str
    method: str
    path: str
    attempt: int
    status: int | None
    error: str | None
    action: str  # "done" | "retry" | "refresh" | "give_up"
    delay: float
    track_id: str


def object_shape(body: Any) -> str | None:
    return None if isinstance(body, dict) else "response is not a JSON object"


def list_shape(body: Any) -> str | None:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        return "response has no list of objects under 'data'"
    return None


def valid_track_id(value: str) -> bool:
    """Zuora-Track-Id rules: ≤ 64 printable US-ASCII characters, none of : ; \" '."""
    return bool(_TRACK_ID.match(value)) and not any(c in value for c in ":;\"'")


_KEY = re.compile(r"[!-~]+")  # printable ASCII, no space


def validate_idempotency_key(key: str) -> str:
    """Return the key if Zuora accepts it (1..255 printable ASCII), else raise ValueError."""
    if (
        not isinstance(key, str)
        or not 1 <= len(key) <= MAX_KEY_LENGTH
        or _KEY.fullmatch(key) is None
    ):
        raise ValueError("idempotency key must be 1..255 printable ASCII characters without spaces")
    return key


@dataclass(frozen=True, slots=True)
class ImportAnswer:
    """What an import answered, read once here (spec §3.6, §3.7, §9.3).

    `id` is the id the answer carries: `definitionId` when it has one (the created object as a
    live tenant answers it, no `success` envelope [O]), else `id`. `kind` says what that id is
    when the answer itself shows it: "definition" (a `definitionId`, or 3.7's definition with its
    `active_version`), else "unknown" (3.6's bare `id`, definition or version: §9.3).
    `version_id` is the new version's id when the answer shows it beside a `definitionId`.
    `fields` is the whole answer (3.7's is the definition's listing-like object).
    """

    id: int | None
    kind: str  # "definition" | "unknown"
    version_id: int | None
    updated_at: str | None
    fields: Mapping[str, Any]

    @classmethod
    def read(cls, body: Mapping[str, Any], *, new_version: bool) -> ImportAnswer:
        """`body` of 3.6 (`new_version=False`) or 3.7 (`new_version=True`)."""
        definition_id = definition_id_of(body)
        plain = int_or_none(body.get("id"))
        updated = body.get("updatedAt")
        updated_at = updated if isinstance(updated, str) else None
        if definition_id is not None:
            version_id = plain if plain != definition_id else None
            return cls(definition_id, "definition", version_id, updated_at, body)
        # 3.7 answers the definition (with `active_version`): its `id` is the definition's.
        kind = "definition" if new_version else "unknown"
        return cls(plain, kind, None, updated_at, body)
