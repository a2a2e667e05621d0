"""Tenant profiles: parsed strictly, saved atomically, and a damaged one is ignored, never fatal."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrator.core.config import Secret, Settings, TenantConfig
from migrator.core.profile import TenantProfile
from migrator.store.profiles import cache_root, load_profile, profile_path, save_profile


def _settings(tmp_path: Path) -> tuple[Settings, TenantConfig]:
    tenant = TenantConfig("t", "http://127.0.0.1:1", "cid", Secret("s3cret"))
    return Settings(file="x.toml", tenants={"t": tenant}, cache_dir=str(tmp_path)), tenant


def test_a_saved_profile_reads_back_equal(tmp_path: Path) -> None:
    """What save_profile writes, load_profile returns unchanged."""
    settings, tenant = _settings(tmp_path)
    profile = TenantProfile(
        import_response_id="version",
        name_filter="contains",
        name_filter_case_sensitive=False,
        requests_per_minute=300,
    )
    save_profile(settings, tenant, profile)
    assert load_profile(settings, tenant) == profile
    assert "s3cret" not in profile_path(settings, tenant).read_text()


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b"[]",
        b'{"format": "other"}',
        b'{"format": "migrator-profile/1", "name_filter": "fuzzy"}',
        b'{"format": "migrator-profile/1", "requests_per_minute": -1}',
    ],
)
def test_a_damaged_profile_is_ignored(tmp_path: Path, raw: bytes) -> None:
    """A damaged or foreign profile file reads as no profile at all."""
    settings, tenant = _settings(tmp_path)
    path = profile_path(settings, tenant)
    path.parent.mkdir(parents=True)
    path.write_bytes(raw)
    assert load_profile(settings, tenant) is None


def test_the_cache_folder_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without cache_dir the folder is $XDG_CACHE_HOME/migrator."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    settings = Settings(file="x.toml", tenants={})
    assert cache_root(settings) == tmp_path / "migrator"
