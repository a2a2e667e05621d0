"""What `migrator doctor --save` keeps: the learned profile merged over the saved one, stored where
`migrate` finds it (the command only asks; the profile store is store/profiles.py's)."""

from __future__ import annotations

from migrator.core.config import Settings
from migrator.core.errors import MigratorError
from migrator.core.profile import merged
from migrator.run.doctor import DoctorResult
from migrator.store.profiles import load_profile, save_profile


def save_learned(settings: Settings, name: str, result: DoctorResult) -> str | None:
    """Store the profile over the saved one (what this run did not learn is kept); nothing is
    saved when a check failed: such a run taught nothing reliable. (A command that cannot work
    is itself something learned: `versions_list = false` is saved.)"""
    if not result.reliable:
        return None
    tenant = settings.tenants[name]
    profile = merged(result.profile, load_profile(settings, tenant))
    try:
        return str(save_profile(settings, tenant, profile))
    except OSError as exc:
        raise MigratorError(
            f"cannot save the tenant profile: {exc.strerror} ({exc.filename})"
        ) from None
