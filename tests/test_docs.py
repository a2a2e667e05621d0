"""The documentation stays true to the code: every option of every command is in docs/cli.md."""

from __future__ import annotations

import argparse
import re

from migrator.cli import build_parser
from tests.conftest import ROOT


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_every_option_of_every_command_is_documented() -> None:
    text = (ROOT / "docs" / "cli.md").read_text()
    sections = dict(re.findall(r"^## (\w[\w-]*)\n(.*?)(?=^## |\Z)", text, re.S | re.M))
    shared = sections["Conventions"]  # the options every command shares
    missing = []
    for name, parser in _commands().items():
        if name == "fake-zuora":
            continue  # documented in docs/fake-zuora.md, its own parser
        where = sections.get(name, "") + shared
        assert name in sections, f"docs/cli.md has no section for `{name}`"
        for action in parser._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help" and flag not in where:
                    missing.append(f"{name} {flag}")
    assert not missing, f"options missing from docs/cli.md: {missing}"
