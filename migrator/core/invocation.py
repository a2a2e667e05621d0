"""How to start migrator again from here: the first words of every command a hint prints.

Pure: the caller passes what the process knows (its argv[0], its interpreter, what `migrator` on
PATH is); `migrator.fake.how_to_run_migrator()` gathers them.
"""

from __future__ import annotations

import posixpath


def migrator_words(
    *,
    argv0: str,
    argv0_real: str | None,
    executable: str,
    on_path: str | None,
    beside: str | None,
    cwd: str,
) -> list[str]:
    """The words that start `migrator` when typed in `cwd`, the way this process was started.

    - as the `migrator` script (`argv0_real` is it, resolved): `migrator` when that name on PATH
      (`on_path`, resolved) is this very script, else the path as it was typed (`.venv/bin/migrator`);
    - as `python -m migrator` (or `-m migrator.fake`): that interpreter with `-m migrator`;
    - otherwise (the demo, a test): the `migrator` script beside the interpreter (`beside`,
      resolved) when there is one, else the interpreter with `-m migrator`.
    Paths under `cwd` are shown relative to it, as a user in that folder would type them.
    """
    if posixpath.basename(argv0) == "migrator" and argv0_real is not None:
        return ["migrator"] if on_path == argv0_real else [argv0]
    if beside is not None and posixpath.basename(argv0) != "__main__.py":
        return ["migrator"] if on_path == beside else [_shown(beside, cwd)]
    return [_shown(executable, cwd), "-m", "migrator"]


def _shown(path: str, cwd: str) -> str:
    if cwd and posixpath.isabs(path) and path.startswith(cwd.rstrip("/") + "/"):
        return posixpath.relpath(path, cwd)
    return path
