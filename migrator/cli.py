"""The `migrator` command: build the parser from migrator.commands, run one, map errors to exits.

Exit status: 0 nothing failed; 1 some item failed, was blocked or is left for another run;
2 usage, configuration or fatal error (journal, lock). No traceback for anything a user can cause.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from migrator import __version__

# The exit statuses (migrator.commands._common holds them too; this module must not import the
# commands before main() can turn a Ctrl-C into one line).
EXIT_ITEMS, EXIT_FATAL = 1, 2


def build_parser() -> argparse.ArgumentParser:
    from migrator.commands import (
        activate,
        backup,
        diff,
        doctor,
        fake_zuora,
        ids,
        migrate,
        plan,
        rollback,
        status,
        verify,
    )

    parser = argparse.ArgumentParser(
        prog="migrator", description="Move Zuora Workflow definitions between tenants, safely."
    )
    parser.add_argument("--version", action="version", version=f"migrator {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    migrate.add_parser(sub)
    plan.add_parser(sub)
    status.add_parser(sub)
    verify.add_parser(sub)
    diff.add_parser(sub)
    activate.add_parser(sub)
    rollback.add_parser(sub)
    backup.add_backup_parser(sub)
    doctor.add_parser(sub)
    ids.add_parser(sub)
    fake_zuora.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a Ctrl-C at any moment (even while the modules load) is one line, exit 1."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("migrator: interrupted", file=sys.stderr)
        return EXIT_ITEMS
    except BrokenPipeError:
        # `migrator plan … | head`: the reader has gone; nothing left to say to it.
        _quiet_stdout()
        return EXIT_ITEMS


def _quiet_stdout() -> None:
    import os

    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), sys.stdout.fileno())


def _main(argv: Sequence[str] | None) -> int:
    # Loaded here, not at the top: a Ctrl-C while they load is then caught by main().
    from migrator.commands import fake_zuora
    from migrator.commands._common import log_level
    from migrator.core import logs
    from migrator.core.errors import MigratorError

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [fake_zuora.NAME]:
        return fake_zuora.cmd_fake_zuora(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.configure(args.log_format, log_level(args))
    try:
        handler: Callable[[argparse.Namespace], int] = args.func
        return handler(args)
    except MigratorError as exc:
        # Errors quote paths, tenant and workflow names: say() escapes and redacts them.
        logs.say(f"migrator: error: {exc}")
        return EXIT_FATAL
    except BaseExceptionGroup as group:
        # anyio task groups wrap what they raise (an unknown --tenant, a locked journal): a
        # user's mistake is still one line, never a traceback.
        leaves = _leaves(group)
        if leaves and any(isinstance(e, KeyboardInterrupt) for e in leaves):
            raise KeyboardInterrupt from None  # a Ctrl-C before the signal handlers were set
        if not leaves or not all(isinstance(e, MigratorError) for e in leaves):
            raise
        for text in dict.fromkeys(logs.redact_text(str(e)) for e in leaves):
            logs.say(f"migrator: error: {text}")
        return EXIT_FATAL


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
