"""`migrator fake-zuora`: serve the built-in fake Zuora; its own parser (in migrator.fake) reads
every argument after the command name.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

NAME = "fake-zuora"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `migrator fake-zuora` (for --help; `main` hands its arguments to the fake)."""
    f = sub.add_parser(
        "fake-zuora",
        help="serve the built-in fake Zuora (not Zuora!) for demos and tests",
        add_help=False,
    )
    f.add_argument(
        "rest",
        nargs=argparse.REMAINDER,
        metavar="...",
        help="the fake's own options: `migrator fake-zuora --help` lists them",
    )


def cmd_fake_zuora(argv: Sequence[str]) -> int:
    from migrator.fake import main as fake_main

    return fake_main(list(argv))
