"""What `migrator COMMAND --help` says above and below the options: what the command is for,
its exit statuses and one example. Every subcommand's parser (the fake's too) is made with it."""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

WIDTH = 78


def described(
    summary: str, *, exits: dict[int, str], example: str, more: str = ""
) -> dict[str, Any]:
    """Keyword arguments for `add_parser`: the one-paragraph description (wrapped here, so the
    raw formatter keeps the example's line breaks) and an epilog with exit statuses and example."""
    paragraphs = [textwrap.fill(" ".join(summary.split()), WIDTH)]
    if more:
        paragraphs.append(textwrap.fill(" ".join(more.split()), WIDTH))
    codes = "\n".join(
        textwrap.fill(
            " ".join(text.split()), WIDTH, initial_indent=f"  {code}  ", subsequent_indent="     "
        )
        for code, text in sorted(exits.items())
    )
    epilog = f"exit status:\n{codes}\n\nexample:\n" + textwrap.indent(example.strip("\n"), "  ")
    return {
        "description": "\n\n".join(paragraphs),
        "epilog": epilog,
        "formatter_class": argparse.RawDescriptionHelpFormatter,
    }
