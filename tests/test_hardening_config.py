"""Configuration mistakes found by hostile input: one ConfigError line each, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from migrator.core.config import load_settings, parse_settings
from migrator.core.errors import ConfigError
from tests.helpers import migrator_process

ENV = {"S": "secret-value-1", "T": "secret-value-2"}


def tenant(name: str, url: str, client_id: str = "cid", extra: str = "") -> str:
    return (
        f"[tenants.{name}]\n"
        f'base_url = "{url}"\n'
        f'client_id = "{client_id}"\n'
        'client_secret_env = "S"\n'
        f"{extra}\n"
    )


def load(tmp_path: Path, text: str) -> ConfigError:
    cfg = tmp_path / "m.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, env=ENV)
    return info.value


BAD_URLS = {
    "unclosed IPv6 bracket": ("http://[::1", "not a valid URL"),
    "port out of range": ("http://127.0.0.1:70000", "not a valid URL"),
    "port not a number": ("http://127.0.0.1:http", "not a valid URL"),
    "port zero": ("http://127.0.0.1:0", "port must be between 1 and 65535"),
    "query": ("https://rest.zuora.com/?tenant=1", "must not have a query"),
    "empty query": ("https://rest.zuora.com/?", "must not have a query"),
    "fragment": ("https://rest.zuora.com/#top", "must not have a fragment"),
    "credentials in the URL": ("https://user:pw@rest.zuora.com", "must not carry credentials"),
    "space": ("https://rest.zuora.com /v1", "must not contain spaces"),
}


@pytest.mark.parametrize("case", sorted(BAD_URLS))
def test_bad_base_url_is_one_config_error_naming_file_and_key(tmp_path: Path, case: str) -> None:
    """Each malformed base_url raises ConfigError naming the file and tenants.prod.base_url."""
    url, expected = BAD_URLS[case]
    error = load(tmp_path, tenant("prod", url))
    assert error.file == str(tmp_path / "m.toml")
    assert error.key == "tenants.prod.base_url"
    assert expected in error.message, error.message
    assert "\n" not in str(error)


def test_secrets_file_that_is_not_utf8_is_one_config_error(tmp_path: Path) -> None:
    """A secrets file holding bytes that are not UTF-8 is a ConfigError naming the key, not a UnicodeDecodeError."""
    (tmp_path / "secret.txt").write_bytes(b"\xff\xfe\x00bad")
    text = tenant("prod", "https://rest.zuora.com").replace(
        'client_secret_env = "S"', 'client_secret_file = "secret.txt"'
    )
    error = load(tmp_path, text)
    assert error.key == "tenants.prod.client_secret_file"
    assert "not UTF-8" in error.message


def test_secrets_file_that_is_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """A FIFO given as the secrets file is refused at once (reading it would block for ever)."""
    os.mkfifo(tmp_path / "secret.txt")
    text = tenant("prod", "https://rest.zuora.com").replace(
        'client_secret_env = "S"', 'client_secret_file = "secret.txt"'
    )
    error = load(tmp_path, text)
    assert error.key == "tenants.prod.client_secret_file"
    assert "not a regular file" in error.message


SAME_TENANT = {
    "localhost vs 127.0.0.1": ("http://localhost:8080", "http://127.0.0.1:8080"),
    "ipv6 loopback": ("http://[::1]:8080", "http://127.0.0.1:8080/"),
    "host case": ("https://REST.zuora.com", "https://rest.zuora.com"),
    "default port": ("https://rest.zuora.com:443", "https://rest.zuora.com"),
    "path prefix": ("https://rest.zuora.com/v1", "https://rest.zuora.com"),
    "trailing dot": ("https://rest.zuora.com.", "https://rest.zuora.com"),
}


@pytest.mark.parametrize("case", sorted(SAME_TENANT))
def test_same_tenant_configured_twice_is_refused(tmp_path: Path, case: str) -> None:
    """Two tables with one client id on one host (spelled differently) are refused, naming both tables."""
    first, second = SAME_TENANT[case]
    error = load(tmp_path, tenant("eu", first) + tenant("eu-copy", second))
    assert error.key == "tenants.eu-copy"
    assert "tenants.eu" in error.message and "twice" in error.message


def test_different_client_ids_or_ports_or_entities_are_different_tenants() -> None:
    """One host with two client ids, two ports, or two entity ids is several tenants: accepted."""
    data = {
        "tenants": {
            "a": {"base_url": "http://127.0.0.1:8080", "client_id": "x", "client_secret": "s1"},
            "b": {"base_url": "http://127.0.0.1:8080", "client_id": "y", "client_secret": "s1"},
            "c": {"base_url": "http://127.0.0.1:8081", "client_id": "x", "client_secret": "s1"},
            "d": {
                "base_url": "http://127.0.0.1:8080",
                "client_id": "x",
                "client_secret": "s1",
                "entity_ids": "e2",
            },
        }
    }
    settings = parse_settings(data, "m.toml", {})
    assert sorted(settings.tenants) == ["a", "b", "c", "d"]


def test_request_timeout_and_max_wait_are_settings() -> None:
    """[settings] request_timeout and max_wait are read, range-checked, and default to 600 s and 900 s."""
    base = {
        "tenants": {"a": {"base_url": "https://z.example", "client_id": "x", "client_secret": "s"}}
    }
    defaults = parse_settings(base, "m.toml", {})
    assert (defaults.request_timeout, defaults.max_wait) == (600.0, 900.0)
    given = parse_settings(
        {**base, "settings": {"request_timeout": 30, "max_wait": 5}}, "m.toml", {}
    )
    assert (given.request_timeout, given.max_wait) == (30.0, 5.0)
    with pytest.raises(ConfigError) as info:
        parse_settings({**base, "settings": {"request_timeout": 0}}, "m.toml", {})
    assert info.value.key == "settings.request_timeout"


def test_token_requests_per_minute_is_a_setting() -> None:
    """[settings] token_requests_per_minute defaults to 90, is read as a whole number, and 0 is refused."""
    base = {
        "tenants": {"a": {"base_url": "https://z.example", "client_id": "x", "client_secret": "s"}}
    }
    assert parse_settings(base, "m.toml", {}).token_requests_per_minute == 90
    given = parse_settings({**base, "settings": {"token_requests_per_minute": 100}}, "m.toml", {})
    assert given.token_requests_per_minute == 100
    for bad in (0, 2.5, "90"):
        with pytest.raises(ConfigError) as info:
            parse_settings({**base, "settings": {"token_requests_per_minute": bad}}, "m.toml", {})
        assert info.value.key == "settings.token_requests_per_minute"


@pytest.mark.parametrize(
    "text",
    [
        tenant("prod", "http://[::1"),
        tenant("a", "http://localhost:9") + tenant("b", "http://127.0.0.1:9"),
    ],
    ids=["bad-ipv6", "duplicate"],
)
def test_cli_reports_config_mistake_in_one_line_with_exit_2(tmp_path: Path, text: str) -> None:
    """`migrate` with such a config exits 2 with one stderr line naming the file, and no traceback."""
    cfg = tmp_path / "m.toml"
    cfg.write_text(text)
    src = tmp_path / "doc.json"
    src.write_text("{}")
    args = ["migrate", str(src), "--config", str(cfg), "--progress", "never"]
    result = migrator_process(args, {**os.environ, **ENV}, tmp_path, timeout=120)
    assert result.code == 2, (result.out, result.err)
    lines = [ln for ln in result.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and str(cfg) in lines[0], lines
    assert "Traceback" not in result.err
