"""The commands' options, each declared once: a command's parser is a list of these calls (the
help text is the command's where the option means something of its own there)."""

from __future__ import annotations

import argparse

Parser = argparse.ArgumentParser


def shard_value(text: str) -> tuple[int, int]:
    """`--shard I/N` as (I, N), refused in argparse's words when it is not 1 <= I <= N."""
    try:
        index_s, count_s = text.split("/")
        index, count = int(index_s), int(count_s)
    except ValueError:
        raise argparse.ArgumentTypeError("expected I/N, e.g. 1/4") from None
    if not 1 <= index <= count:
        raise argparse.ArgumentTypeError("expected 1 <= I <= N")
    return index, count


def logging(
    p: Parser, *, config: bool = True, quiet_help: str = "only warnings and errors on stderr"
) -> None:
    """`--config` (unless the command reads no config), `--log-format`, `--debug`, `--quiet`."""
    if config:
        p.add_argument(
            "--config", required=True, metavar="FILE", help="TOML file with [tenants.NAME] tables"
        )
    p.add_argument(
        "--log-format",
        choices=("console", "json"),
        default="console",
        help="log lines for people or machines",
    )
    p.add_argument(
        "--debug", action="store_true", help="log every request attempt (secrets stay redacted)"
    )
    p.add_argument("--quiet", action="store_true", help=quiet_help)


def sources(p: Parser, help: str, *, required: bool = False) -> None:
    """The SOURCE paths (at least one when `required`)."""
    p.add_argument("sources", nargs="+" if required else "*", metavar="SOURCE", help=help)


def tenants(p: Parser, help: str) -> None:
    """`--tenant NAME`, repeatable, default all."""
    p.add_argument("--tenant", action="append", default=[], metavar="NAME", help=help)


def one_tenant(p: Parser, help: str) -> None:
    """`--tenant NAME`, exactly one (backup, doctor)."""
    p.add_argument("--tenant", required=True, metavar="NAME", help=help)


def from_tenant(
    p: Parser, help: str = "read the sources live from this tenant instead of files"
) -> None:
    p.add_argument("--from-tenant", metavar="NAME", help=help)


def journal(p: Parser, help: str, *, required: bool = False) -> None:
    p.add_argument("--journal", required=required, metavar="FILE", help=help)


def report(p: Parser) -> None:
    p.add_argument("--report", metavar="FILE", help="write the JSON report here")


def json(p: Parser, help: str = "print the report as JSON") -> None:
    p.add_argument("--json", action="store_true", help=help)


def dry_run(p: Parser, help: str) -> None:
    p.add_argument("--dry-run", action="store_true", help=help)


def strict(p: Parser, help: str) -> None:
    p.add_argument("--strict", action="store_true", help=help)


def shard(p: Parser, help: str) -> None:
    p.add_argument("--shard", type=shard_value, metavar="I/N", help=help)


def no_cache(p: Parser) -> None:
    """`--no-cache`, on every command that reads targets."""
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="neither read nor fill the content-hash cache: export every version compared",
    )
