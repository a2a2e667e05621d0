"""The Zuora client package: OAuth tokens, the HTTP session and the per-tenant API client.

Only re-exports; the modules behind it are auth, http, calls, limiter and client (the pure retry decision and
pacing math they use live in migrator.core).
"""

from migrator.zuora.auth import TokenCache
from migrator.zuora.calls import (
    AttemptInfo,
    ClientStats,
    ImportAnswer,
    valid_track_id,
    validate_idempotency_key,
)
from migrator.zuora.client import ZuoraClient
from migrator.zuora.http import close_session, open_session

__all__ = [
    "AttemptInfo",
    "ClientStats",
    "ImportAnswer",
    "TokenCache",
    "ZuoraClient",
    "close_session",
    "open_session",
    "valid_track_id",
    "validate_idempotency_key",
]
