"""`migrator status`: where a journal stands, per tenant, and what the next run would do.

Read-only: takes no lock and changes nothing, so it is safe while a migration is running.
"""

from __future__ import annotations

import argparse

import orjson

from migrator.commands import _options as opt
from migrator.commands._common import EXIT_ITEMS, EXIT_OK
from migrator.render.help import described
from migrator.render.status import render_status
from migrator.run.status import is_settled, status_data


def journal_status(path: str, *, as_json: bool = False) -> tuple[str, bool]:
    """Text (or JSON) for `migrator status`, and whether everything is settled."""
    data = status_data(path)
    if as_json:
        return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode(), is_settled(data)
    settled = is_settled(data)
    return render_status(data, settled), settled


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `migrator status`."""
    s = sub.add_parser(
        "status",
        help="where a journal stands: done, failed, in doubt, deferred",
        **described(
            "Say where a run's journal stands, per tenant: done, skipped, failed (with"
            " reasons), in doubt, deferred, and what the next run of the same command would do."
            " Reads only the journal; contacts no tenant.",
            exits={
                0: "the journal's work is settled",
                1: "something is left for another run, or the journal records no run",
                2: "the journal is missing or damaged",
            },
            example="migrator status --journal run.jsonl",
        ),
    )
    s.set_defaults(func=cmd_status)
    opt.journal(s, "the journal of the run to describe", required=True)
    opt.json(s, "print the status as JSON")
    opt.logging(s, config=False)


def cmd_status(args: argparse.Namespace) -> int:
    text, ok = journal_status(args.journal, as_json=args.json)
    print(text)
    return EXIT_OK if ok else EXIT_ITEMS
