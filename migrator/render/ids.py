"""`migrator ids` for people: the id map a journal records as a table. Pure: rows in, printable
lines out (names and sources come from documents: escaping built in)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from migrator.render.outcomes import human_lines


class IdLine(Protocol):
    """One row of the id map (run/ids.IdRow)."""

    @property
    def tenant(self) -> str: ...
    @property
    def name(self) -> str | None: ...
    @property
    def version(self) -> str | None: ...
    @property
    def source(self) -> str | None: ...
    @property
    def source_version_id(self) -> int | None: ...
    @property
    def target_definition_id(self) -> int | None: ...
    @property
    def target_version_id(self) -> int | None: ...


def render_ids(rows: Iterable[IdLine]) -> str:
    """A header and one line per (tenant, document); a journal without imports says so."""
    header = f"{'tenant':<16} {'name':<32} {'version':<10} {'source id':>10} {'definition':>10} {'version id':>10}  source"
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row.tenant:<16} {row.name or '':<32} {row.version or '':<10} "
            f"{_id(row.source_version_id):>10} {_id(row.target_definition_id):>10} "
            f"{_id(row.target_version_id):>10}  {row.source or ''}"
        )
    if len(lines) == 2:
        lines.append("(the journal records no imported document)")
    return human_lines(lines)


def _id(value: int | None) -> str:
    return "-" if value is None else str(value)
