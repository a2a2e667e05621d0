"""Seed files: pre-load workflows and versions per tenant before the fake starts serving.

A JSON file `{"tenants": {NAME: [{"file": PATH | "document": {...}, "version": V, "activate": B}]}}`;
rows whose workflow name already exists in that tenant become new versions of that definition.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from migrator.core.errors import ConfigError
from migrator.fake._errors import ApiError
from migrator.fake._state import FakeState


def load_seed_file(state: FakeState, path: str) -> list[tuple[str, int, int]]:
    """Apply a seed file to `state`; returns (tenant, definition_id, version_id) per row."""
    try:
        data = orjson.loads(Path(path).read_bytes())
    except OSError as exc:
        raise ConfigError(path, "", f"cannot read: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise ConfigError(path, "", f"not valid JSON: {exc}") from None
    tenants = data.get("tenants") if isinstance(data, dict) else None
    if not isinstance(tenants, dict):
        raise ConfigError(path, "tenants", "expected an object of tenant name → list of rows")
    out: list[tuple[str, int, int]] = []
    for tenant, rows in tenants.items():
        if tenant not in state.tenants:
            raise ConfigError(path, f"tenants.{tenant}", "no such tenant in the fake's config")
        if not isinstance(rows, list):
            raise ConfigError(path, f"tenants.{tenant}", "expected a list")
        for i, row in enumerate(rows):
            where = f"tenants.{tenant}[{i}]"
            out.append((tenant, *_seed_row(state, tenant, row, Path(path).parent, path, where)))
    return out


def _seed_row(
    state: FakeState, tenant: str, row: Any, base: Path, path: str, where: str
) -> tuple[int, int]:
    if not isinstance(row, dict):
        raise ConfigError(path, where, "expected an object")
    document = row.get("document")
    if "file" in row:
        try:
            document = orjson.loads((base / str(row["file"])).read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ConfigError(path, f"{where}.file", f"cannot load: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigError(path, where, "needs `file` or `document`")
    version = row.get("version")
    activate = bool(row.get("activate", False))
    name = (document.get("workflow") or {}).get("name")
    existing = next(
        (d.id for d in state.tenants[tenant].definitions.values() if d.name == name), None
    )
    try:
        return state.add_workflow(
            tenant, document, version=version, activate=activate, definition_id=existing
        )
    except ApiError as exc:
        raise ConfigError(path, where, f"rejected: {orjson.dumps(exc.body).decode()}") from None
