"""Where migrator keeps what it may forget: the cache folder, and doctor's tenant profiles in it.

Nothing here is a record: deleting the folder loses nothing but requests. A damaged or foreign
file is ignored with one warning line.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import orjson
import structlog

from migrator.core.config import Settings, TenantConfig
from migrator.core.profile import TenantProfile
from migrator.store.files import write_atomic

log = structlog.get_logger("migrator.cache")


def cache_root(settings: Settings) -> Path:
    """The cache folder: `[settings] cache_dir`, else $XDG_CACHE_HOME/migrator, else ~/.cache/migrator."""
    if settings.cache_dir:
        return Path(settings.cache_dir)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "migrator"


def tenant_key(tenant: TenantConfig) -> str:
    """A file-name-safe key for a tenant: who it is (URL and client id), never its secret."""
    identity = f"{tenant.base_url}|{tenant.client_id}"
    return hashlib.sha256(identity.encode()).hexdigest()[:24]


def profile_path(settings: Settings, tenant: TenantConfig) -> Path:
    return cache_root(settings) / "profiles" / f"{tenant_key(tenant)}.json"


def load_profile(settings: Settings, tenant: TenantConfig) -> TenantProfile | None:
    """The saved profile of a tenant, or None (none saved, or unusable: one warning line)."""
    path = profile_path(settings, tenant)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning(
            "ignoring the saved tenant profile",
            tenant=tenant.name,
            file=str(path),
            reason=exc.strerror,
        )
        return None
    try:
        return TenantProfile.from_json(orjson.loads(raw))
    except (orjson.JSONDecodeError, ValueError) as exc:
        log.warning(
            "ignoring a damaged tenant profile", tenant=tenant.name, file=str(path), reason=str(exc)
        )
        return None


def save_profile(settings: Settings, tenant: TenantConfig, profile: TenantProfile) -> Path:
    """Write the profile atomically (temp file + rename), so a reader never sees half of one."""
    path = profile_path(settings, tenant)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, orjson.dumps(profile.to_json(), option=orjson.OPT_INDENT_2), mode=0o644)
    return path
