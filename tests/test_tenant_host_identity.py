"""The duplicate-tenant check sees one host however it is spelled (issue 21 #12).

With `allow_insecure_http = true`, `[::ffff:127.0.0.1]` and `0x7f000001` named 127.0.0.1 without
being refused as the same tenant: every workflow was imported twice. Hosts are normalised with
`ipaddress` (and the classic inet_aton spellings every resolver accepts) before they are compared.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from migrator.core.config import normalised_host, parse_settings
from migrator.core.errors import ConfigError


def tables(*urls: str, client_id: str = "x") -> dict[str, Any]:
    return {
        "tenants": {
            f"t{i}": {
                "base_url": url,
                "client_id": client_id,
                "client_secret": "s",
                "allow_insecure_http": True,
            }
            for i, url in enumerate(urls)
        }
    }


LOOPBACK_SPELLINGS = [
    "http://127.0.0.1:8080",
    "http://[::ffff:127.0.0.1]:8080",
    "http://[::FFFF:7F00:1]:8080",
    "http://[0:0:0:0:0:ffff:7f00:1]:8080",
    "http://0x7f000001:8080",
    "http://0X7F000001:8080",
    "http://2130706433:8080",
    "http://127.1:8080",
    "http://127.0.1:8080",
    "http://0177.0.0.1:8080",
    "http://0x7f.0.0.1:8080",
    "http://127.0.0.2:8080",
    "http://LOCALHOST:8080",
    "http://localhost.:8080",
    "http://[::1]:8080",
    "http://[0:0:0:0:0:0:0:1]:8080",
]


@pytest.mark.parametrize("spelling", LOOPBACK_SPELLINGS)
def test_a_loopback_spelling_beside_127_0_0_1_is_the_same_tenant(spelling: str) -> None:
    """Any spelling of a loopback address beside http://127.0.0.1 with the same client id and port is refused as the same tenant."""
    with pytest.raises(ConfigError) as caught:
        parse_settings(tables("http://127.0.0.1:8080/", spelling), "m.toml", {})
    assert caught.value.key == "tenants.t1"
    assert "same tenant as tenants.t0" in caught.value.message


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("http://10.0.0.7", "http://0x0a000007:80"),
        ("http://10.0.0.7", "http://167772167"),
        ("http://10.0.0.7", "http://10.7"),
        ("http://10.0.0.7", "http://[::ffff:10.0.0.7]"),
        ("https://REST.Zuora.com.:443", "https://rest.zuora.com"),
        ("http://[2001:DB8::1]", "http://[2001:db8:0:0:0:0:0:1]:80"),
        ("https://bücher.example", "https://xn--bcher-kva.example"),
    ],
)
def test_other_hosts_are_compared_normalised(first: str, second: str) -> None:
    """Hex, decimal, short and IPv4-mapped IPv4 forms, IPv6 zero runs and case, host case, trailing dots, default ports and IDNA names are one host each."""
    with pytest.raises(ConfigError, match="same tenant"):
        parse_settings(tables(first, second), "m.toml", {})


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("http://10.0.0.7", "http://10.0.0.8"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8081"),
        ("http://10.0.0.7", "http://10.0.0.7.example"),
        ("http://[2001:db8::1]", "http://[2001:db8::2]"),
    ],
)
def test_different_hosts_stay_different_tenants(first: str, second: str) -> None:
    """Two addresses, two ports, or an IP beside a name that merely starts like it are two tenants."""
    settings = parse_settings(tables(first, second), "m.toml", {})
    assert sorted(settings.tenants) == ["t0", "t1"]


def inet_aton_spellings(address: int) -> list[str]:
    """Spellings getaddrinfo reads as the IPv4 `address`, written apart from migrator's parser."""
    a, b, c, d = address.to_bytes(4, "big")
    return [
        f"{a}.{b}.{c}.{d}",
        str(address),
        hex(address),
        hex(address).upper().replace("X", "x"),
        f"{a}.{(b << 16) | (c << 8) | d}",
        f"{a}.{b}.{(c << 8) | d}",
        f"0{a:o}.{hex(b)}.{c}.{d}",
        f"[::ffff:{a}.{b}.{c}.{d}]",
        f"[{ipaddress.IPv6Address((0xFFFF << 32) | address).exploded}]",
    ]


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_every_spelling_of_an_ipv4_address_normalises_alike(address: int) -> None:
    """Dotted, decimal, hex, short, octal and IPv4-mapped spellings of one IPv4 address give one normalised host."""
    forms = {normalised_host(s.strip("[]")) for s in inet_aton_spellings(address)}
    assert len(forms) == 1, forms


@given(st.integers(min_value=0, max_value=2**32 - 1), st.integers(min_value=0, max_value=2**32 - 1))
def test_distinct_ipv4_addresses_stay_distinct(a: int, b: int) -> None:
    """Two different non-loopback IPv4 addresses never normalise alike."""
    la, lb = ipaddress.IPv4Address(a), ipaddress.IPv4Address(b)
    assume(a != b)
    assume(not ((la.is_loopback or la.is_unspecified) and (lb.is_loopback or lb.is_unspecified)))
    assert normalised_host(str(la)) != normalised_host(str(lb))
