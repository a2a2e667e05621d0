"""Outcomes of a run: one record per (tenant, document), the JSON report, the terminal table.

Pure: the engine hands over `ItemOutcome`s; this module only counts, orders and renders them
(rendered text goes through the log redaction, so a secret a server echoed never gets out).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, runtime_checkable

import orjson

from migrator.core.logs import printable, redact_text

# imported: landed in this run · skipped: nothing to do (identical, done earlier, duplicate)
# planned: dry run · blocked: could not be sent (why is in `error`) · failed: the tenant refused it
# deferred: transient trouble or an unanswered import; running again finishes it
GROUP_AT = 3  # more items than this failing for one identical reason are listed as one line

STATUSES = ("imported", "skipped", "planned", "blocked", "failed", "deferred")


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    tenant: str
    source: str
    workflow_name: str
    status: str
    target_workflow_id: int | None = None
    version: str | None = None
    error: str | None = None
    reason: str | None = None  # why skipped, or what was planned
    action: str | None = None  # create | new_version (planned or done)
    target_version_id: int | None = None
    verified: bool | None = None  # set by --verify / migrator verify
    # Tenant-specific values the document holds (spec §4.6): each {path, kind, value, substitute},
    # substitute = what this tenant's table makes of the value, null when no entry covers it.
    tenant_values: tuple[dict[str, str | None], ...] | None = None
    # Dry runs: what a planned new version changes against the version it replaces, one line.
    change: str | None = None


_ALWAYS = {"tenant", "source", "workflow_name", "status", "target_workflow_id", "version", "error"}
_FIELDS = tuple(f.name for f in fields(ItemOutcome))


def outcome_json(item: ItemOutcome) -> dict[str, Any]:
    """An outcome as the report writes it: empty optional fields left out. The values are the
    outcome's own (it is frozen; the dict is only ever serialised): `asdict`'s deep copy of
    every value was a noticeable part of a fleet run's CPU, once per item."""
    return {k: v for k in _FIELDS if (v := getattr(item, k)) is not None or k in _ALWAYS}


def outcome_row(item: ItemOutcome) -> bytes:
    return orjson.dumps(outcome_json(item))


def outcome_from_row(raw: bytes) -> ItemOutcome:
    data = orjson.loads(raw)
    values = data.get("tenant_values")
    if values is not None:
        data["tenant_values"] = tuple(values)
    return ItemOutcome(**data)


@runtime_checkable
class StoredOutcomes(Protocol):
    """Outcomes kept outside memory (the run's workspace): counted there, iterated in order."""

    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[ItemOutcome]: ...
    def counts(self) -> dict[str, dict[str, int]]: ...
    def any_unverified(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Report:
    # A tuple from small tools; from `migrate`, a sequence read from the run's workspace, already
    # in report order, so that a run's memory does not grow with its outcomes.
    items: Sequence[ItemOutcome]
    notices: tuple[str, ...] = ()
    interrupted: bool = False
    plans: Mapping[str, Any] = field(default_factory=dict)  # per tenant, for `plan --out`
    # The command's own statuses and which of them need a person (rollback has its own: its
    # report never says `imported 0, blocked 0`); the default is migrate's.
    statuses: tuple[str, ...] = STATUSES
    failures: tuple[str, ...] = ("failed", "deferred", "blocked")

    def summary(self) -> dict[str, int]:
        if self.statuses is STATUSES:
            counts = dict.fromkeys(
                ("imported", "skipped", "failed", "deferred", "planned", "blocked"), 0
            )
        else:
            counts = dict.fromkeys(self.statuses, 0)
        for row in self.per_tenant().values():
            for status, n in row.items():
                counts[status] = counts.get(status, 0) + n
        return counts

    def per_tenant(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        if isinstance(self.items, StoredOutcomes):
            for tenant, row in sorted(self.items.counts().items()):
                out[tenant] = {**dict.fromkeys(self.statuses, 0), **row}
            return out
        for item in self.items:
            row = out.setdefault(item.tenant, dict.fromkeys(self.statuses, 0))
            row[item.status] = row.get(item.status, 0) + 1
        return out

    def ordered(self) -> Iterator[ItemOutcome]:
        """The items by tenant, workflow name and source."""
        return ordered(self.items)

    @property
    def ok(self) -> bool:
        """True when no item has one of the command's failure statuses (for migrate: failed,
        blocked, left for another run), nothing failed --verify and the run was not interrupted."""
        s = self.summary()
        return (
            all(s.get(status, 0) == 0 for status in self.failures)
            and not self.interrupted
            and not self._any_unverified()
        )

    def _any_unverified(self) -> bool:
        if isinstance(self.items, StoredOutcomes):
            return self.items.any_unverified()
        return any(item.verified is False for item in self.items)

    def to_json(self) -> dict[str, Any]:
        return orjson.loads(self.dumps())  # type: ignore[no-any-return]

    def chunks(self) -> Iterator[bytes]:
        """The JSON report, a piece at a time (a run's items are streamed, never all in memory);
        any registered secret a server echoed into an error is redacted."""
        head = {
            "summary": self.summary(),
            "tenants": self.per_tenant(),
            "interrupted": self.interrupted,
            "notices": list(self.notices),
        }
        text = orjson.dumps(head, option=orjson.OPT_INDENT_2).decode()
        yield redact_text(text[: text.rindex("}")].rstrip()).encode() + b',\n  "items": ['
        first = True
        for item in self.ordered():
            body = orjson.dumps(outcome_json(item), option=orjson.OPT_INDENT_2).decode()
            body = "\n".join("    " + line for line in body.splitlines())
            yield (b"\n" if first else b",\n") + redact_text(body).encode()
            first = False
        yield b"]\n}\n" if first else b"\n  ]\n}\n"

    def dumps(self) -> bytes:
        """The JSON report, whole (small runs and tests; the CLI writes `chunks()`)."""
        return b"".join(self.chunks())


def _order(item: ItemOutcome) -> tuple[str, str, str]:
    return (item.tenant, item.workflow_name, item.source)


def ordered(items: Iterable[ItemOutcome]) -> Iterator[ItemOutcome]:
    """Outcomes by tenant, workflow name and source; stored ones come that way already."""
    if isinstance(items, StoredOutcomes):
        return iter(items)
    return iter(sorted(items, key=_order))


def unreadable_outcomes(
    errors: Iterable[Exception], tenants: Iterable[str], **extra: Any
) -> list[ItemOutcome]:
    """One failed item per (unreadable source, tenant): the document never reached any tenant."""
    names = list(tenants)
    return [
        ItemOutcome(
            tenant=tenant,
            source=getattr(err, "source", ""),
            workflow_name="",
            status="failed",
            error=str(err),
            **extra,
        )
        for err in errors
        for tenant in names
    ]


def counts_table(items: Iterable[ItemOutcome], statuses: Sequence[str]) -> list[str]:
    """A header and one row per tenant counting its items in each of `statuses`."""
    per: dict[str, dict[str, int]] = {}
    for item in items:
        row = per.setdefault(item.tenant, dict.fromkeys(statuses, 0))
        row[item.status] = row.get(item.status, 0) + 1
    return counts_rows(per, statuses)


def counts_rows(per: Mapping[str, Mapping[str, int]], statuses: Sequence[str]) -> list[str]:
    """The counts table from tenant → status → count."""
    shown = {tenant: printable(tenant) for tenant in per}
    width = max([len("tenant"), *(len(t) for t in shown.values())])
    header = "tenant".ljust(width) + "".join(f"  {s:>9}" for s in statuses)
    lines = [header, "-" * len(header)]
    for tenant in sorted(per):
        lines.append(
            shown[tenant].ljust(width) + "".join(f"  {per[tenant].get(s, 0):>9}" for s in statuses)
        )
    return lines


def render_table(report: Report, *, detail: bool = True, width: int = 100) -> str:
    """A readable summary: one line per tenant, then every item that needs attention."""
    per_tenant = report.per_tenant()
    shown = [s for s in STATUSES if any(row.get(s) for row in per_tenant.values())] or ["imported"]
    lines = counts_rows(per_tenant, shown)
    checked = same = 0
    attention = []
    for i in report.ordered():
        if i.verified is not None:
            checked += 1
            same += bool(i.verified)
        if i.status in ("failed", "blocked", "deferred") or i.verified is False:
            attention.append(i)
    if detail and attention:
        lines.append("")
        lines.append("needs attention:")
        # A tenant-wide cause (rejected credentials, unreachable host) is said once, not per item.
        shared: dict[tuple[str, str, str], list[ItemOutcome]] = {}
        for item in attention:
            if item.error:
                shared.setdefault((item.tenant, item.status, item.error), []).append(item)
        grouped = {k: v for k, v in shared.items() if len(v) > GROUP_AT}
        for (tenant, status, error), group in sorted(grouped.items()):
            text = f"  {status:<8} {tenant}: {len(group)} items: {error}"
            lines.append(_clip(text, width * 3))
        for item in attention:
            if (item.tenant, item.status, item.error or "") in grouped:
                continue
            why = item.error or item.reason or ""
            if item.verified is False and not why:
                why = "--verify: the exported version differs from what was sent"
            # Input errors already start with the file name: say it once, so the JSON path and
            # the reason survive the clip however long the path is.
            where = "" if why.startswith(f"{item.source}: ") else f" ({item.source})"
            label = f"{item.workflow_name}{where}".strip()
            text = f"  {item.status:<8} {item.tenant}: {label + ': ' if label else ''}{why}"
            lines.append(_clip(text, width * 3))
    if checked:
        lines.append(
            f"verified: {same} of {checked} imports exported back identical to what was sent"
        )
    for notice in report.notices:
        lines.append(f"note: {notice}")
    return redact_text(human_lines(lines))


def render_items(items: Iterable[ItemOutcome]) -> str:
    """Every item on its own line (for `migrator plan` and `--dry-run`)."""
    lines = []
    for item in ordered(items):
        # "planned create", "imported new_version", but "skipped", never "skipped skipped".
        what = f" {item.action}" if item.action and item.action != item.status else ""
        where = f" → definition {item.target_workflow_id}" if item.target_workflow_id else ""
        version = f" version {item.version}" if item.version else ""
        why_text = item.error or item.reason or ""
        # A document that could not be read has no name: its file names it (once).
        label = item.workflow_name or item.source
        if not item.workflow_name and why_text.startswith(f"{item.source}: "):
            why_text = why_text[len(item.source) + 2 :]
        why = f": {why_text}" if why_text else ""
        lines.append(f"{item.tenant}: {label}: {item.status}{what}{version}{where}{why}")
        for value in item.tenant_values or ():
            becomes = (
                f"→ {value['substitute']!r}"
                if value.get("substitute") is not None
                else "(no substitution: copied as is)"
            )
            lines.append(
                f"    tenant-specific {value['kind']} {value['value']!r} at {value['path']} {becomes}"
            )
        if item.change:
            lines.append(f"    change: {item.change}")
    return redact_text(human_lines(lines))


def summary_line(report: Report) -> str:
    """One line a cron mail can carry: counts and the verdict."""
    s = report.summary()
    parts = [f"{k} {v}" for k, v in s.items() if v or k in ("imported", "failed")]
    verdict = "ok" if report.ok else ("interrupted" if report.interrupted else "attention needed")
    return (
        f"migrator: {verdict}: "
        + ", ".join(parts)
        + f" across {len(report.per_tenant())} tenant(s)"
    )


def human_lines(lines: Iterable[str]) -> str:
    """Lines for a terminal or a mail: each one's control characters escaped (names come from
    documents and tenants), then joined, so no name can recolour a terminal or forge a line."""
    return "\n".join(printable(line) for line in lines)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
