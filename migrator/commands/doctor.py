"""`migrator doctor`: probe one tenant for how its API behaves where the spec leaves it open.

One line per check and the learned profile (or `--json`); `--save` stores the profile where
`migrate` finds it. Read-only unless `--write`.
"""

from __future__ import annotations

import argparse

import orjson

from migrator.commands import _options as opt
from migrator.commands._common import EXIT_ITEMS, EXIT_OK, _settings, run_with_signals
from migrator.core.doctor import LEASE_SECONDS
from migrator.core.errors import MigratorError
from migrator.render.doctor import render_doctor
from migrator.render.help import described
from migrator.run.doctor import run_doctor
from migrator.run.doctor_profile import save_learned


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "doctor",
        help="probe one tenant: credentials, limits and the API's open questions",
        **described(
            "Check one tenant's credentials and base URL (with the fix for the usual"
            " mistakes), listing, the name filter, rate-limit headers, export and gzip, probe"
            " every endpoint some command needs and say per command whether it works there, and"
            " learn how its API behaves where the spec leaves it open. Read-only unless --write,"
            " which also creates, changes, runs and deletes one throwaway workflow (doctor deletes"
            " only what it can prove it made). --save stores the profile where migrate finds it.",
            exits={
                0: "the tenant is usable (nothing failed, every command checked works)",
                1: "a check failed, or a command is not usable (named on the last line)",
                2: "usage or configuration error (unknown tenant, bad config)",
            },
            example="migrator doctor --config migrator.toml --tenant staging --write --save",
        ),
    )
    opt.logging(p)
    opt.one_tenant(p, "the tenant to probe")
    p.add_argument(
        "--write",
        action="store_true",
        help="also create, change and delete one throwaway workflow (migrator-doctor-...)",
    )
    p.add_argument(
        "--lease",
        type=float,
        default=LEASE_SECONDS / 60,
        metavar="MINUTES",
        help="with --write, leave alone a throwaway of another doctor run younger than this"
        " (default 15)",
    )
    opt.json(p, 'print {"checks": [...], "commands": [...], "profile": {...}}')
    p.add_argument("--save", action="store_true", help="store the profile where migrate finds it")
    p.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    settings = _settings(args)
    tenant = settings.tenants.get(args.tenant)
    if tenant is None:
        known = ", ".join(sorted(settings.tenants))
        raise MigratorError(
            f"{settings.file}: unknown tenant {args.tenant!r} (configured: {known})"
        )
    if not args.lease >= 0:
        raise MigratorError("--lease must be a number of minutes, 0 or more")
    lease = args.lease * 60
    result = run_with_signals(
        lambda _stopping: run_doctor(settings, tenant, write=args.write, lease=lease)
    )
    saved = save_learned(settings, args.tenant, result) if args.save else None
    if args.json:
        data = result.to_json()
        if args.save:
            data["saved"] = saved  # null: not saved, a check failed
        print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    else:
        print(render_doctor(result, tenant, saved=saved, save=args.save))
    return EXIT_OK if result.usable else EXIT_ITEMS
