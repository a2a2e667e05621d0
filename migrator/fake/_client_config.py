"""A migrator config for a running fake (`fake-zuora --write-config FILE`, and `make demo`).

Writes FILE (TOML, one [tenants."NAME"] table per fake tenant, pointing at the fake's URL) and
each tenant's secret in its own file under `FILE.secrets/` (folder 0700, files 0600).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from migrator.core.invocation import migrator_words
from migrator.fake._config import FakeTenant


def how_to_run_migrator() -> list[str]:
    """The words that start `migrator` from the current folder, as this process was started
    (`.venv/bin/migrator` after `make demo`, `migrator` when that is on PATH): hints print them."""

    def real(path: str | None) -> str | None:
        return os.path.realpath(path) if path and os.path.isfile(path) else None

    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    return migrator_words(
        argv0=argv0,
        argv0_real=real(argv0),
        executable=sys.executable,
        on_path=real(shutil.which("migrator")),
        beside=real(os.path.join(os.path.dirname(sys.executable), "migrator")),
        cwd=os.getcwd(),
    )


def secrets_dir(config_path: Path) -> Path:
    """Where the secrets of the config at `config_path` go: `FILE.secrets/` beside it."""
    return config_path.with_name(config_path.name + ".secrets")


def write_client_config(path: str | Path, base_url: str, tenants: Sequence[FakeTenant]) -> Path:
    """Write a migrator config for `tenants` served at `base_url`; return the secrets folder.

    The config names each secret file relative to itself, so the pair can be moved together.
    Both are replaced whole (temporary file and rename): a reader never sees half of either.
    """
    config = Path(path)
    secrets = secrets_dir(config)
    secrets.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(secrets, 0o700)
    lines = [
        "# Written by `migrator fake-zuora --write-config`: the built-in fake Zuora (not Zuora!)",
        f"# serving at {base_url}. It works while that fake runs; a fake started again on another",
        "# port writes it again. Secrets are in the files named below (mode 0600).",
        "",
    ]
    for tenant in tenants:
        secret_file = secrets / f"{tenant.name}.secret"
        _write_private(secret_file, tenant.client_secret + "\n")
        lines += [
            f"[tenants.{_toml(tenant.name)}]",
            f"base_url = {_toml(base_url)}",
            f"client_id = {_toml(tenant.client_id)}",
            f"client_secret_file = {_toml(f'{secrets.name}/{secret_file.name}')}",
            "",
        ]
    _write_private(config, "\n".join(lines), mode=0o644)
    return secrets


def _toml(text: str) -> str:
    # A JSON string is a TOML basic string when non-ASCII stays as is (no surrogate escapes).
    return json.dumps(text, ensure_ascii=False)


def _write_private(path: Path, text: str, *, mode: int = 0o600) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fh.fileno(), mode)  # a .tmp left by an earlier run keeps its old mode
        fh.write(text)
    tmp.replace(path)
