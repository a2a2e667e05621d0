"""What one tenant's calls report and must satisfy: counters, the attempt record handed to
observers, Zuora's rules for track ids and Idempotency-Keys, and the shapes of answers.

Plain values and checks, kept apart from the client that sends the calls.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

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


def validate_idempotency_key(key: str) -> str:
    """Return the key if Zuora accepts it (1..255 printable ASCII), else raise ValueError."""
    if (
        not isinstance(key, str)
        or not 1 <= len(key) <= MAX_KEY_LENGTH
        or not all(" " < c <= "~" for c in key)
    ):
        raise ValueError("idempotency key must be 1..255 printable ASCII characters without spaces")
    return key
