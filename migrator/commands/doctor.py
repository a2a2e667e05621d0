"""`migrator doctor`: probe one tenant for how its API behaves where the spec leaves it open.

One line per check and the learned profile (or `--json`); `--save` stores the profile where
`migrate` finds it. Read-only unless `--write`.
"""

from __future__ import annotations

import argparse

import orjson

from migrator.commands._common import EXIT_ITEMS, EXIT_OK, _common, _settings, run_with_signals
from migrator.core.config import Settings
from migrator.core.doctor import render_lines
from migrator.core.errors import MigratorError
from migrator.core.logs import printable
from migrator.core.profile import merged
from migrator.render.help import described
from migrator.run.doctor import DoctorResult, run_doctor
from migrator.store.profiles import load_profile, save_profile


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "doctor",
        help="probe one tenant: credentials, limits and the API's open questions",
        **described(
            "Check one tenant's credentials and base URL (with the fix for the usual"
            " mistakes), listing, the name filter, rate-limit headers, export and gzip, and learn"
            " how its API behaves where the spec leaves it open. Read-only unless --write, which"
            " also creates, changes and deletes one throwaway workflow. --save stores the"
            " profile where migrate finds it.",
            exits={
                0: "the tenant is usable (nothing failed)",
                1: "a check failed",
                2: "usage or configuration error (unknown tenant, bad config)",
            },
            example="migrator doctor --config migrator.toml --tenant staging --write --save",
        ),
    )
    _common(p)
    p.add_argument("--tenant", required=True, metavar="NAME", help="the tenant to probe")
    p.add_argument(
        "--write",
        action="store_true",
        help="also create, change and delete one throwaway workflow (migrator-doctor-...)",
    )
    p.add_argument("--json", action="store_true", help='print {"checks": [...], "profile": {...}}')
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
    result = run_with_signals(lambda _stopping: run_doctor(settings, tenant, write=args.write))
    saved = _save(settings, args.tenant, result) if args.save else None
    if args.json:
        data = result.to_json()
        if args.save:
            data["saved"] = saved  # null: not saved, a check failed
        print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    else:
        print(f"doctor {printable(tenant.name)} ({printable(tenant.base_url)})")
        for line in render_lines(result.checks):
            print(line)
        print("profile:")
        for key, value in result.profile.to_json().items():
            if key != "format":
                print(f"  {key}: {'not learned' if value is None else value}")
        if saved is not None:
            print(f"profile saved to {printable(saved)}")
        elif args.save:
            print("profile not saved: a check failed")
        verdict = "usable" if result.usable else "not usable: a check failed"
        print(f"migrator doctor: {verdict}")
    return EXIT_OK if result.usable else EXIT_ITEMS


def _save(settings: Settings, name: str, result: DoctorResult) -> str | None:
    """Store the profile over the saved one (what this run did not learn is kept); nothing is
    saved when a check failed: a tenant that is not usable taught nothing reliable."""
    if not result.usable:
        return None
    tenant = settings.tenants[name]
    profile = merged(result.profile, load_profile(settings, tenant))
    try:
        return str(save_profile(settings, tenant, profile))
    except OSError as exc:
        raise MigratorError(
            f"cannot save the tenant profile: {exc.strerror} ({exc.filename})"
        ) from None
