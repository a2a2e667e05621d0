"""Version strings: validity, numeric per-component ordering, and choosing the next version."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from migrator.core.versions import choose_version, is_valid_version, next_version, version_key

components = st.integers(min_value=0, max_value=10**6)
versions = st.lists(components, min_size=1, max_size=3).map(lambda ps: ".".join(map(str, ps)))


@pytest.mark.parametrize("text", ["1", "0.0.1", "2.10", "10.0.99", "007"])
def test_valid_versions(text: str) -> None:
    """Zuora's three accepted shapes (N, N.N, N.N.N) are valid."""
    assert is_valid_version(text)


@pytest.mark.parametrize(
    "text", ["", "1.", ".1", "1.2.3.4", "v1", "1.a", " 1", "١", None, 1, 1.0, "1\n"]
)
def test_invalid_versions(text: object) -> None:
    """Anything else, including non-strings and non-ASCII digits, is not a version."""
    assert not is_valid_version(text)


def test_examples() -> None:
    """The documented examples: 0.0.10 > 0.0.9, 1 > 0.0.9, padding with zeros."""
    assert version_key("0.0.10") > version_key("0.0.9")
    assert version_key("1") > version_key("0.0.9")
    assert version_key("1") == version_key("1.0.0") == (1, 0, 0)
    assert next_version(None) == "0.0.1"
    assert next_version("0.0.9") == "0.0.10"
    assert next_version("2") == "3"
    assert next_version("1.4") == "1.5"


def test_version_key_rejects_invalid() -> None:
    """version_key refuses a string that is not a version instead of guessing."""
    with pytest.raises(ValueError):
        version_key("1.x")


@given(st.lists(components, min_size=1, max_size=3), st.lists(components, min_size=1, max_size=3))
def test_ordering_is_numeric_per_component(a: list[int], b: list[int]) -> None:
    """Comparing versions equals comparing their zero-padded integer components."""
    pad = lambda ps: tuple(ps + [0] * (3 - len(ps)))  # noqa: E731
    va, vb = ".".join(map(str, a)), ".".join(map(str, b))
    assert (version_key(va) < version_key(vb)) == (pad(a) < pad(b))


@given(versions)
def test_next_version_is_greater(v: str) -> None:
    """The next version is always valid and strictly greater."""
    n = next_version(v)
    assert is_valid_version(n)
    assert version_key(n) > version_key(v)


@given(st.one_of(st.none(), versions, st.text(max_size=5)), st.one_of(st.none(), versions))
def test_choose_version_is_valid_and_above_highest(wanted: str | None, highest: str | None) -> None:
    """The chosen version is valid, above the highest, and is the wanted one whenever that qualifies."""
    chosen = choose_version(wanted, highest)
    assert is_valid_version(chosen)
    if highest is not None:
        assert version_key(chosen) > version_key(highest)
    if (
        wanted is not None
        and is_valid_version(wanted)
        and (highest is None or version_key(wanted) > version_key(highest))
    ):
        assert chosen == wanted
