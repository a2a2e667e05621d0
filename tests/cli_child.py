"""What runs in a `migrator` child forked by tests.helpers' CLI fork server, apart from pytest.

`python -m migrator.cli ARGS` spends most of its CPU importing aiohttp and migrator before
it does anything, and the suite starts a few hundred of them. The fork server (one per test
worker, a fresh interpreter) imports this module once; every child is then forked from it with
everything loaded and runs `run(...)`: its own process, pid, environment, folder, stdout, stderr
and exit status, exactly as the interpreter would have given them. This module imports nothing
of pytest or the tests, so a child is as clean as a new interpreter (no fixture, no logging set
by the suite). Tests about starting the interpreter itself, signals, kills or the installed
script keep starting real interpreters.
"""

from __future__ import annotations

import gc
import os
import pkgutil
import sys
import traceback
from collections.abc import Mapping, Sequence
from importlib import import_module

import migrator
import migrator.cli


def _preload() -> None:
    """Import every migrator module a command may load on demand (all but the `__main__`s and
    the demo), so that a child imports nothing."""
    for info in pkgutil.walk_packages(migrator.__path__, "migrator."):
        if info.name.endswith("__main__") or info.name == "migrator.demo":
            continue
        import_module(info.name)


_preload()
# What was imported stays shared with every child: out of the collector's sight, the child's
# first collections do not touch (and so copy) every page of it.
gc.freeze()


def run(argv: Sequence[str], env: Mapping[str, str], cwd: str, out: str, err: str) -> None:
    """Be `python -m migrator.cli ARGV` run in `cwd` with exactly `env`, writing its stdout and
    stderr to the files `out` and `err`; exit with its status (a traceback and 1 for an uncaught
    exception, as the interpreter does)."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, out), (2, err)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    # The streams a new interpreter would open on these files (same locale, same encoding).
    sys.stdout, sys.stderr = (
        open(fd, "w", encoding=stream.encoding, errors=stream.errors, closefd=False)  # noqa: SIM115
        for fd, stream in ((1, sys.__stdout__), (2, sys.__stderr__))
    )
    sys.argv = [migrator.cli.__file__, *argv]
    try:
        code = migrator.cli.main(list(argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, int | None):
            print(exc.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    sys.stderr.flush()
    os._exit(code)
