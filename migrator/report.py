"""Outcomes of a run: one record per (tenant, document), the JSON report, the terminal table.

Pure: the engine hands over `ItemOutcome`s; this module only counts, orders and renders them
(rendered text goes through the log redaction, so a secret a server echoed never gets out).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from migrator.logs import redact_text

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


@dataclass(frozen=True, slots=True)
class Report:
    items: tuple[ItemOutcome, ...]
    notices: tuple[str, ...] = ()
    interrupted: bool = False
    plans: Mapping[str, Any] = field(default_factory=dict)  # per tenant, for `plan --out`

    def summary(self) -> dict[str, int]:
        counts = dict.fromkeys(
            ("imported", "skipped", "failed", "deferred", "planned", "blocked"), 0
        )
        for item in self.items:
            counts[item.status] = counts.get(item.status, 0) + 1
        return counts

    def per_tenant(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for item in self.items:
            row = out.setdefault(item.tenant, dict.fromkeys(STATUSES, 0))
            row[item.status] = row.get(item.status, 0) + 1
        return out

    @property
    def ok(self) -> bool:
        """True when nothing failed, was blocked, is left for another run, or failed --verify."""
        s = self.summary()
        return (
            s["failed"] == 0
            and s["deferred"] == 0
            and s["blocked"] == 0
            and not self.interrupted
            and not any(item.verified is False for item in self.items)
        )

    def to_json(self) -> dict[str, Any]:
        summary = self.summary()
        return {
            "summary": summary,
            "tenants": self.per_tenant(),
            "interrupted": self.interrupted,
            "notices": list(self.notices),
            "items": [
                {k: v for k, v in asdict(item).items() if v is not None or k in _ALWAYS}
                for item in sorted(self.items, key=_order)
            ],
        }

    def dumps(self) -> bytes:
        """The JSON report; any registered secret a server echoed into an error is redacted."""
        text = orjson.dumps(self.to_json(), option=orjson.OPT_INDENT_2).decode()
        return redact_text(text).encode() + b"\n"


_ALWAYS = {"tenant", "source", "workflow_name", "status", "target_workflow_id", "version", "error"}


def _order(item: ItemOutcome) -> tuple[str, str, str]:
    return (item.tenant, item.workflow_name, item.source)


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
    width = max([len("tenant"), *(len(t) for t in per)])
    header = "tenant".ljust(width) + "".join(f"  {s:>9}" for s in statuses)
    lines = [header, "-" * len(header)]
    for tenant in sorted(per):
        lines.append(
            tenant.ljust(width) + "".join(f"  {per[tenant].get(s, 0):>9}" for s in statuses)
        )
    return lines


def render_table(report: Report, *, detail: bool = True, width: int = 100) -> str:
    """A readable summary: one line per tenant, then every item that needs attention."""
    per_tenant = report.per_tenant()
    shown = [s for s in STATUSES if any(row.get(s) for row in per_tenant.values())] or ["imported"]
    lines = counts_table(report.items, shown)
    attention = [
        i
        for i in report.items
        if i.status in ("failed", "blocked", "deferred") or i.verified is False
    ]
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
        for item in sorted(attention, key=_order):
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
    checked = [i for i in report.items if i.verified is not None]
    if checked:
        same = sum(1 for i in checked if i.verified)
        lines.append(
            f"verified: {same} of {len(checked)} imports exported back identical to what was sent"
        )
    for notice in report.notices:
        lines.append(f"note: {notice}")
    return redact_text("\n".join(lines))


def render_items(items: Sequence[ItemOutcome]) -> str:
    """Every item on its own line (for `migrator plan` and `--dry-run`)."""
    lines = []
    for item in sorted(items, key=_order):
        what = item.action or item.status
        where = f" → definition {item.target_workflow_id}" if item.target_workflow_id else ""
        version = f" version {item.version}" if item.version else ""
        why = f": {item.error or item.reason}" if (item.error or item.reason) else ""
        lines.append(
            f"{item.tenant}: {item.workflow_name}: {item.status} {what}{version}{where}{why}"
        )
        for value in item.tenant_values or ():
            becomes = (
                f"→ {value['substitute']!r}"
                if value.get("substitute") is not None
                else "(no substitution: copied as is)"
            )
            lines.append(
                f"    tenant-specific {value['kind']} {value['value']!r} at {value['path']} {becomes}"
            )
    return redact_text("\n".join(lines))


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


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
