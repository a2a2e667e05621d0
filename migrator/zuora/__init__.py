"""The Zuora client package: retry decision, pacing, OAuth tokens and the per-tenant API client.

Only re-exports; the modules behind it are retry (pure), pacing (pure), auth, http and client.
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
from migrator.zuora.pacing import AdaptiveLimit, Pacer, parse_ratelimit_limit
from migrator.zuora.retry import Action, Decision, NetError, Outcome, Policy, decide

__all__ = [
    "Action",
    "AdaptiveLimit",
    "AttemptInfo",
    "ClientStats",
    "Decision",
    "NetError",
    "Outcome",
    "Pacer",
    "Policy",
    "TokenCache",
    "ZuoraClient",
    "decide",
    "open_session",
    "parse_ratelimit_limit",
    "valid_track_id",
    "validate_idempotency_key",
]
