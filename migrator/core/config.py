"""Configuration: TOML file → typed, validated, frozen settings.

Every error names the file and the key (`tenants.prod.max_concurrency`). Secrets are wrapped in
`Secret`, whose repr and str never show the value.
"""

from __future__ import annotations

import ipaddress
import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

from migrator.core.errors import ConfigError
from migrator.core.rollout import RolloutConfig, parse_rollout

REFERENCE_CHECKS = ("block", "warn", "off")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


class Secret:
    """A credential that never shows itself in logs, reprs, tracebacks or reports."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class TenantConfig:
    """One target (or source) tenant: where it is, how to log in, how hard to push it."""

    name: str
    base_url: str
    client_id: str
    client_secret: Secret
    requests_per_minute: int | None = None
    max_concurrency: int = 8
    entity_ids: str | None = None
    # Tenant-specific values (saved providers, report ids, ...): source value → this tenant's value.
    substitutions: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    """The whole run's configuration."""

    file: str
    tenants: Mapping[str, TenantConfig]
    max_connections: int = 64
    connect_timeout: float = 10.0
    read_timeout: float = 130.0  # Zuora's gateway gives up at 120 s; wait a little longer.
    max_attempts: int = 6
    backoff_base: float = 0.5
    backoff_cap: float = 60.0
    max_document_bytes: int = 32 * 1024 * 1024
    max_response_bytes: int = 64 * 1024 * 1024
    # Where the content-hash cache and doctor profiles live; None: $XDG_CACHE_HOME/migrator
    # (~/.cache/migrator). A relative path is relative to the config file.
    cache_dir: str | None = None
    # Whole-request deadline (send, headers and the full body): a server that dribbles a byte
    # at a time never trips the per-read timeout.
    request_timeout: float = 600.0
    # The longest pause a server may impose (Retry-After, an exhausted RateLimit-Reset): longer
    # requests are capped here and the call that asked gives up as retryable.
    max_wait: float = 900.0
    # Token requests in any rolling 60 s from this process (Zuora allows 100 a minute per client
    # IP; the rest is headroom for other processes behind the same address).
    token_requests_per_minute: int = 90
    # [rollout]: waves, failure tolerance, smoke runs (docs/rollout.md); None: every tenant at once.
    rollout: RolloutConfig | None = None
    # What a custom field or custom object a tenant lacks does to a document (docs/references.md):
    # "block" it there, "warn" and send it, or "off" (no describe requests at all).
    reference_check: str = "block"


_TENANT_KEYS = {
    "base_url",
    "client_id",
    "client_id_env",
    "client_secret",
    "client_secret_env",
    "client_secret_file",
    "requests_per_minute",
    "max_concurrency",
    "entity_ids",
    "allow_insecure_http",
    "substitutions",
}
_SETTINGS_KEYS = {
    "max_connections": (int, 1, 10_000),
    "connect_timeout": (float, 0.1, 600.0),
    "read_timeout": (float, 0.1, 3600.0),
    "max_attempts": (int, 1, 100),
    "backoff_base": (float, 0.0, 600.0),
    "backoff_cap": (float, 0.0, 3600.0),
    "max_document_bytes": (int, 1024, 1 << 34),
    "max_response_bytes": (int, 1024, 1 << 34),
    "request_timeout": (float, 1.0, 86400.0),
    "max_wait": (float, 0.0, 86400.0),
    "token_requests_per_minute": (int, 1, 10_000),
}


def load_settings(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate a config file; raise ConfigError naming the file and key on any problem."""
    file = str(path)
    try:
        raw = Path(file).read_bytes()
    except FileNotFoundError:
        raise ConfigError(file, "", "config file not found") from None
    except OSError as exc:
        raise ConfigError(file, "", f"cannot read config file: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ConfigError(file, "", "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, "", f"not valid TOML: {exc}") from None
    return parse_settings(data, file, os.environ if env is None else env)


def parse_settings(data: Mapping[str, Any], file: str, env: Mapping[str, str]) -> Settings:
    """Validate an already-parsed TOML mapping (pure apart from reading secret files)."""
    unknown = set(data) - {"tenants", "settings", "rollout"}
    if unknown:
        raise ConfigError(
            file, sorted(unknown)[0], "unknown key (expected [tenants.*], [settings] or [rollout])"
        )
    tenants_raw = data.get("tenants")
    if not isinstance(tenants_raw, dict) or not tenants_raw:
        raise ConfigError(file, "tenants", "at least one [tenants.NAME] table is required")
    tenants = {name: _parse_tenant(name, table, file, env) for name, table in tenants_raw.items()}
    _refuse_duplicates(tenants, file)
    settings_raw = data.get("settings", {})
    if not isinstance(settings_raw, dict):
        raise ConfigError(file, "settings", "must be a table")
    values: dict[str, Any] = {}
    for key, value in settings_raw.items():
        if key == "reference_check":
            if value not in REFERENCE_CHECKS:
                raise ConfigError(
                    file, "settings.reference_check", 'must be "block", "warn" or "off"'
                )
            values[key] = value
            continue
        if key == "cache_dir":
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(file, "settings.cache_dir", "must be a non-empty path string")
            values[key] = str(Path(file).parent / value)
            continue
        if key not in _SETTINGS_KEYS:
            raise ConfigError(
                file,
                f"settings.{key}",
                f"unknown key (known: {', '.join(sorted([*_SETTINGS_KEYS, 'cache_dir', 'reference_check']))})",
            )
        typ, lo, hi = _SETTINGS_KEYS[key]
        values[key] = _number(value, typ, lo, hi, file, f"settings.{key}")
    if "rollout" in data:
        values["rollout"] = parse_rollout(data["rollout"], file, tenants)
    return Settings(file=file, tenants=tenants, **values)


def _parse_tenant(name: str, table: Any, file: str, env: Mapping[str, str]) -> TenantConfig:
    where = f"tenants.{name}"
    if not isinstance(table, dict):
        raise ConfigError(file, where, "must be a table")
    if not name or any(c in name for c in "/\\:\x00") or name != name.strip():
        raise ConfigError(
            file, where, "tenant names may not be empty or contain / \\ : or edge spaces"
        )
    for key in table:
        if key not in _TENANT_KEYS:
            raise ConfigError(
                file, f"{where}.{key}", f"unknown key (known: {', '.join(sorted(_TENANT_KEYS))})"
            )
    base_url = _string(table, "base_url", file, where, required=True)
    assert base_url is not None
    parts = _split_base_url(base_url, file, f"{where}.base_url")
    insecure_ok = table.get("allow_insecure_http", False)
    if not isinstance(insecure_ok, bool):
        raise ConfigError(file, f"{where}.allow_insecure_http", "must be true or false")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS and not insecure_ok:
        raise ConfigError(
            file,
            f"{where}.base_url",
            "plain http is only allowed for loopback hosts; use https (or set allow_insecure_http = true)",
        )
    client_id = _from_env_or_value(table, "client_id", file, where, env)
    if client_id is None:
        raise ConfigError(file, f"{where}.client_id", "required (client_id or client_id_env)")
    secret = _secret(table, file, where, env)
    rpm = table.get("requests_per_minute")
    if rpm is not None:
        rpm = _number(rpm, int, 1, 10_000_000, file, f"{where}.requests_per_minute")
    conc = _number(table.get("max_concurrency", 8), int, 1, 1000, file, f"{where}.max_concurrency")
    entity_ids = _string(table, "entity_ids", file, where)
    subs_raw = table.get("substitutions", {})
    if not isinstance(subs_raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in subs_raw.items()
    ):
        raise ConfigError(file, f"{where}.substitutions", "must be a table of string = string")
    return TenantConfig(
        name=name,
        base_url=base_url.rstrip("/"),
        client_id=client_id,
        client_secret=secret,
        requests_per_minute=rpm,
        max_concurrency=conc,
        entity_ids=entity_ids,
        substitutions=dict(subs_raw),
    )


def _split_base_url(base_url: str, file: str, key: str) -> SplitResult:
    """The parts of a base URL, or ConfigError saying in one line what is wrong with it."""
    if any(not c.isprintable() or c.isspace() for c in base_url):
        raise ConfigError(file, key, "must not contain spaces or control characters")
    try:
        parts = urlsplit(base_url)
        port = parts.port  # raises ValueError when out of range or not a number
    except ValueError as exc:
        raise ConfigError(file, key, f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(file, key, "must be an http(s) URL with a host")
    if port == 0:
        raise ConfigError(file, key, "port must be between 1 and 65535, got 0")
    if "?" in base_url:
        raise ConfigError(file, key, "must not have a query (?...): API paths are appended to it")
    if "#" in base_url:
        raise ConfigError(file, key, "must not have a fragment (#...)")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            file, key, "must not carry credentials (user@host): use client_id and client_secret"
        )
    return parts


_DIGITS = {8: frozenset("01234567"), 10: frozenset("0123456789"), 16: frozenset("0123456789abcdef")}


def _inet_aton(host: str) -> int | None:
    """The IPv4 address the classic resolver reads in `host` (`127.1`, `0x7f000001`,
    `2130706433`, `0177.0.0.1`: one to four parts, each decimal, 0x-hex or 0-octal, the last
    filling the remaining bytes), or None when it is not one."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = []
    for part in parts:
        if part[:2] in ("0x", "0X"):
            digits, base = part[2:], 16
        elif len(part) > 1 and part.startswith("0"):
            digits, base = part[1:], 8
        else:
            digits, base = part, 10
        if not digits or not _DIGITS[base].issuperset(digits.lower()):
            return None
        values.append(int(digits, base))
    last_bits = 8 * (5 - len(values))
    if any(v > 255 for v in values[:-1]) or values[-1] >= 1 << last_bits:
        return None
    address = 0
    for v in values[:-1]:
        address = address << 8 | v
    return address << last_bits | values[-1]


def normalised_host(host: str) -> str:
    """One spelling per host: case, a trailing dot and brackets dropped; an IP address in its
    compressed form (IPv4-mapped IPv6 and the classic IPv4 spellings as plain IPv4); every
    loopback or unspecified address and `localhost` as "loopback"; a Unicode name as IDNA."""
    host = host.lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        number = _inet_aton(host)
        ip = None if number is None else ipaddress.IPv4Address(number)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip is not None:
        return "loopback" if ip.is_loopback or ip.is_unspecified else ip.compressed
    if host in LOOPBACK_HOSTS:
        return "loopback"
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def tenant_identity(tenant: TenantConfig) -> tuple[str, int, str, str | None]:
    """What makes two tenant tables the same tenant: host (`normalised_host`: every spelling of
    one address, loopback names, case), port (the default one filled in), client id and entity
    ids. The path prefix does not count: one client id belongs to one tenant whatever path
    reaches it."""
    parts = urlsplit(tenant.base_url)
    host = normalised_host(parts.hostname or "")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return host, port, tenant.client_id, tenant.entity_ids


def _refuse_duplicates(tenants: Mapping[str, TenantConfig], file: str) -> None:
    """Two tables for one tenant would send every workflow twice: refuse the second."""
    seen: dict[tuple[str, int, str, str | None], str] = {}
    for name, tenant in tenants.items():
        identity = tenant_identity(tenant)
        first = seen.setdefault(identity, name)
        if first != name:
            raise ConfigError(
                file,
                f"tenants.{name}",
                f"same tenant as tenants.{first} (same host and client_id): every workflow "
                "would be imported twice; remove one of the two tables",
            )


def _string(
    table: Mapping[str, Any], key: str, file: str, where: str, required: bool = False
) -> str | None:
    value = table.get(key)
    if value is None:
        if required:
            raise ConfigError(file, f"{where}.{key}", "required")
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(file, f"{where}.{key}", "must be a non-empty string")
    return value


def _from_env_or_value(
    table: Mapping[str, Any], key: str, file: str, where: str, env: Mapping[str, str]
) -> str | None:
    direct = _string(table, key, file, where)
    var = _string(table, f"{key}_env", file, where)
    if direct is not None and var is not None:
        raise ConfigError(file, f"{where}.{key}_env", f"give {key} or {key}_env, not both")
    if var is not None:
        value = env.get(var)
        if not value:
            raise ConfigError(file, f"{where}.{key}_env", f"environment variable {var} is not set")
        return value
    return direct


def _secret(table: Mapping[str, Any], file: str, where: str, env: Mapping[str, str]) -> Secret:
    given = [k for k in ("client_secret", "client_secret_env", "client_secret_file") if k in table]
    if len(given) != 1:
        raise ConfigError(
            file,
            f"{where}.client_secret_env",
            "give exactly one of client_secret_env, client_secret_file or client_secret",
        )
    key = given[0]
    if key == "client_secret_file":
        path = _string(table, key, file, where)
        assert path is not None
        resolved = Path(file).parent / path
        try:
            mode = resolved.stat().st_mode
            if not stat.S_ISREG(mode):
                raise ConfigError(
                    file, f"{where}.{key}", f"secrets file {path} is not a regular file"
                )
            text = resolved.read_bytes().decode("utf-8").strip()
        except UnicodeDecodeError:
            raise ConfigError(
                file, f"{where}.{key}", f"secrets file {path} is not UTF-8 text"
            ) from None
        except OSError as exc:
            raise ConfigError(
                file, f"{where}.{key}", f"cannot read secrets file: {exc.strerror}"
            ) from None
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            import structlog

            structlog.get_logger("migrator.config").warning(
                "secrets file is readable by other users; chmod 600 it",
                file=str(resolved),
                tenant=where.split(".", 1)[1],
            )
        if not text:
            raise ConfigError(file, f"{where}.{key}", "secrets file is empty")
        return Secret(text)
    value = _from_env_or_value(table, "client_secret", file, where, env)
    assert value is not None
    return Secret(value)


def _number(value: Any, typ: type, lo: float, hi: float, file: str, key: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(file, key, f"must be a number between {lo:g} and {hi:g}")
    if typ is int and not isinstance(value, int):
        raise ConfigError(file, key, "must be a whole number")
    if not lo <= value <= hi:
        raise ConfigError(file, key, f"must be between {lo:g} and {hi:g}, got {value}")
    return typ(value)
