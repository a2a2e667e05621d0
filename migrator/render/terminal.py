"""The drift matrix for a terminal: workflows by tenants, one symbol per cell, in column blocks
that fit the width, then the differences of each drifted pair. Pure: returns text.

Every name is made printable first, so nothing read from a tenant can recolour the terminal or
forge a line.
"""

from __future__ import annotations

import unicodedata
from collections import Counter

from migrator.core.drift import DRIFTED, EXTRA, FAILED, IN_SYNC, MISSING, DriftReport
from migrator.core.logs import printable

SYMBOLS = {IN_SYNC: "=", DRIFTED: "~", MISSING: "-", EXTRA: "+", FAILED: "!"}
NOT_HELD = " "  # a name some other tenant holds as an extra
LEGEND = "  ".join(f"{SYMBOLS[s]} {s}" for s in (IN_SYNC, DRIFTED, MISSING, EXTRA, FAILED))
ELLIPSIS = "…"
MAX_NAME = 40
MAX_TENANT = 12


def width(text: str) -> int:
    """Terminal columns `text` takes: wide (East Asian) characters two, combining marks none."""
    return sum(_char_width(ch) for ch in text)


def _char_width(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def fit(text: str, columns: int) -> str:
    """Printable `text` cut to `columns` (with an ellipsis when cut) and padded to exactly that."""
    text = printable(text)
    if width(text) > columns:
        out = []
        used = 0
        for ch in text:
            w = _char_width(ch)
            if used + w > columns - 1:
                break
            out.append(ch)
            used += w
        text = "".join(out) + ELLIPSIS
    return text + " " * (columns - width(text))


def render_matrix(report: DriftReport, *, columns: int = 80) -> str:
    """The matrix in blocks of as many tenant columns as fit in `columns`, then a legend."""
    names = report.names()
    if not report.tenants or not names:
        return "no workflows to compare\n" if report.tenants else "no tenants to compare\n"
    name_w = min(MAX_NAME, max(width(printable(n)) for n in names), max(columns // 2, 8))
    name_w = max(name_w, len("workflow"))
    tenant_w = min(MAX_TENANT, max(max(width(printable(t.tenant)) for t in report.tenants), 1))
    per_block = max(1, (columns - name_w) // (tenant_w + 1))
    grid = {(t.tenant, w.name): SYMBOLS[w.status] for t in report.tenants for w in t.workflows}
    lines: list[str] = []
    tenants = [t.tenant for t in report.tenants]
    for start in range(0, len(tenants), per_block):
        block = tenants[start : start + per_block]
        if start:
            lines.append("")
        lines.append(
            (fit("workflow", name_w) + "".join(" " + fit(t, tenant_w) for t in block)).rstrip()
        )
        for name in names:
            cells = "".join(" " + fit(grid.get((t, name), NOT_HELD), tenant_w) for t in block)
            lines.append((fit(name, name_w) + cells).rstrip())
    lines.append("")
    lines.append(LEGEND)
    counts = report.counts()
    lines.append(", ".join(f"{counts[s]} {s}" for s in counts if counts[s]))
    return "\n".join(lines) + "\n"


GROUP_AT = 3  # more failed cells than this with one reason on one tenant are one line


def render_details(report: DriftReport) -> str:
    """The differences of every drifted pair and the reason of every failed one, tenant by
    tenant; a tenant that could not be read (many cells, one reason) is one line."""
    lines: list[str] = []
    for failure in report.failed_sources:
        lines.append(f"failed source {printable(failure.source)}: {printable(failure.reason)}")
    for tenant in report.tenants:
        reasons = Counter(w.reason for w in tenant.workflows if w.status == FAILED)
        grouped = {reason for reason, n in reasons.items() if n > GROUP_AT}
        for reason in sorted(grouped, key=str):
            lines.append(
                f"{printable(tenant.tenant)}: {reasons[reason]} workflows failed: "
                f"{printable(reason or 'unknown reason')}"
            )
        for w in tenant.workflows:
            head = f"{printable(tenant.tenant)} / {printable(w.name)}"
            if w.status == DRIFTED:
                where = f"version {w.target_version}" if w.target_version else "no version"
                lines.append(
                    f"{head}: drifted ({printable(where)}, workflow {w.target_workflow_id})"
                )
                lines.extend(f"  {printable(d.describe())}" for d in w.differences)
            elif w.status == FAILED and w.reason not in grouped:
                lines.append(f"{head}: failed: {printable(w.reason or 'unknown reason')}")
            for line in w.references:  # a migration would block it in this tenant
                lines.append(f"{head}: would be blocked: {printable(line)}")
    return "\n".join(lines) + ("\n" if lines else "")


def render_report(report: DriftReport, *, columns: int = 80) -> str:
    """What `migrator diff` prints: the matrix, then the details (when there are any)."""
    details = render_details(report)
    return render_matrix(report, columns=columns) + ("\n" + details if details else "")
