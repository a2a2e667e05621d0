"""The Zuora client package: OAuth tokens, the HTTP session and the per-tenant API client.

Only re-exports; the modules behind it are auth, http and client (the pure retry decision and
pacing math they use live in migrator.core).
"""

from migrator.zuora.auth import TokenCache
from migrator.zuora.client import (
    AttemptInfo,
    ClientStats,
    ZuoraClient,
    valid_track_id,
    validate_idempotency_key,
)
from migrator.zuora.http import open_session

__all__ = [
    "AttemptInfo",
    "ClientStats",
    "TokenCache",
    "ZuoraClient",
    "open_session",
    "valid_track_id",
    "validate_idempotency_key",
]
