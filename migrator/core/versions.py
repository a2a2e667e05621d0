"""Workflow version strings: validity, numeric ordering, and choosing the next version number.

Zuora accepts `N`, `N.N` or `N.N.N` (spec §6); comparison is numeric per component, padded with 0.
"""

from __future__ import annotations

import re

# [Z] regex from Zuora's own tooling; \d is ASCII-only because Zuora compares these as integers.
_VERSION_RE = re.compile(r"\d+(?:\.\d+)?(?:\.\d+)?", re.ASCII)

FIRST_VERSION = "0.0.1"


def is_valid_version(text: object) -> bool:
    """True when `text` is a string Zuora accepts as a workflow version number."""
    return isinstance(text, str) and _VERSION_RE.fullmatch(text) is not None


def version_key(text: str) -> tuple[int, int, int]:
    """Sort key of a valid version: numeric per component, missing components count as 0."""
    if not is_valid_version(text):
        raise ValueError(f"not a workflow version number: {text!r}")
    parts = [int(p) for p in text.split(".")]
    parts += [0] * (3 - len(parts))
    return (parts[0], parts[1], parts[2])


def next_version(highest: str | None) -> str:
    """The smallest natural successor of `highest`: its last component plus one, same shape."""
    if highest is None:
        return FIRST_VERSION
    if not is_valid_version(highest):
        raise ValueError(f"not a workflow version number: {highest!r}")
    parts = highest.split(".")
    parts[-1] = str(int(parts[-1]) + 1)
    # int() drops leading zeros ("007" → "7") on the bumped part only; the others stay as written
    # because they compare equal numerically either way.
    return ".".join(parts)


def choose_version(wanted: str | None, highest: str | None) -> str:
    """`wanted` when it is valid and above `highest` (or nothing exists yet), else the next one."""
    if (
        wanted is not None
        and is_valid_version(wanted)
        and (highest is None or version_key(wanted) > version_key(highest))
    ):
        return wanted
    return next_version(highest)
