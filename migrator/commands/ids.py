"""`migrator ids`: the id map of what a journal records as imported, per tenant.

Read-only and offline: the journal alone, no config, no request. Pipeline in migrator.run.ids.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Iterable

import orjson

from migrator.commands import _options as opt
from migrator.commands._common import EXIT_ITEMS, EXIT_OK
from migrator.render.help import described
from migrator.render.ids import render_ids
from migrator.run.ids import ID_FIELDS, IdRow, id_rows


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `migrator ids`."""
    s = sub.add_parser(
        "ids",
        help="the id map a journal records: source ids → ids in each tenant",
        **described(
            "Print, per tenant, every workflow the journal records as imported: its name,"
            " version, source (file or source tenant), the source's version id (the export's"
            " workflow.id; null in journals written before migrator recorded it) and its"
            " definition and version ids in the tenant. Systems that start workflows by id"
            " (POST /workflows/{id}/run) need exactly this after a migration. Reads only the"
            " journal; contacts no tenant.",
            exits={
                0: "every id is known",
                1: "some imported document has an id not known yet (null: the next run of the"
                " same command, or `migrator activate`, looks it up)",
                2: "the journal is missing or damaged",
            },
            example="migrator ids --journal run.jsonl --tenant prod --json > prod-ids.json",
        ),
    )
    s.set_defaults(func=cmd_ids)
    opt.journal(s, "the journal of the runs", required=True)
    opt.tenants(s, "only this tenant (repeatable; default: every tenant the journal names)")
    form = s.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help='print {"tenants": {NAME: [ {…}, … ]}}')
    form.add_argument(
        "--csv", action="store_true", help="print CSV, one row per (tenant, document)"
    )
    opt.logging(s, config=False)


def cmd_ids(args: argparse.Namespace) -> int:
    rows = id_rows(args.journal, args.tenant)
    if args.json:
        complete = _json(rows, args.tenant)
    elif args.csv:
        complete = _csv(rows)
    else:
        complete = _text(rows)
    return EXIT_OK if complete else EXIT_ITEMS


def _json(rows: Iterable[IdRow], tenants: list[str]) -> bool:
    per: dict[str, list[dict[str, object]]] = {t: [] for t in tenants}
    complete = True
    for row in rows:
        per.setdefault(row.tenant, []).append(row.data())
        complete = complete and row.complete
    sys.stdout.write(orjson.dumps({"tenants": per}, option=orjson.OPT_INDENT_2).decode() + "\n")
    return complete


def _csv(rows: Iterable[IdRow]) -> bool:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["tenant", *ID_FIELDS])
    complete = True
    for row in rows:
        data = row.data()
        writer.writerow([row.tenant, *("" if data[f] is None else data[f] for f in ID_FIELDS)])
        complete = complete and row.complete
        if out.tell() > 64 * 1024:
            sys.stdout.write(out.getvalue())
            out.seek(0)
            out.truncate()
    sys.stdout.write(out.getvalue())
    return complete


def _text(rows: Iterable[IdRow]) -> bool:
    kept = list(rows)
    print(render_ids(kept))
    return all(row.complete for row in kept)
