"""`migrator verify`: does each tenant hold, as some version, exactly what a migration would send?
Parses, calls run/verify.py's pipeline, renders its report."""

from __future__ import annotations

import argparse

from migrator.commands import _options as opt
from migrator.commands._common import report_command
from migrator.render.help import described
from migrator.render.outcomes import render_verify
from migrator.run.verify import all_verified, verify_tenants


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `migrator verify`."""
    p = sub.add_parser(
        "verify",
        help="check that each tenant holds exactly what the sources would migrate",
        **described(
            "Check, per tenant and document, that some version on the tenant holds exactly"
            " what a migration of the sources would send: verified, differs, missing or failed."
            " Changes nothing.",
            exits={
                0: "there is at least one item and every item is verified",
                1: "some item differs, is missing or failed",
                2: "usage or configuration error",
            },
            example="migrator verify exports/ --config migrator.toml --report verify.json",
        ),
    )
    p.set_defaults(func=cmd_verify)
    opt.sources(p, "export files, directories or snapshots", required=True)
    opt.logging(p)
    opt.tenants(p, "tenant to check (repeatable; default: all)")
    opt.json(p)
    opt.report(p)
    opt.no_cache(p)


def cmd_verify(args: argparse.Namespace) -> int:
    """0 every item verified, 1 otherwise; configuration errors raise (exit 2 in `cli.main`)."""
    return report_command(
        args,
        lambda settings, stopping: verify_tenants(
            settings, args.sources, args.tenant, use_cache=not args.no_cache, stopping=stopping
        ),
        render_verify,
        ok=all_verified,
    )
