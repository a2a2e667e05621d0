"""Every command's outcomes for people: one renderer (`render_outcomes`) and each command's
`Voice` — migrate and plan, verify, activate, rollback. Pure: a report in, printable lines out.

One shape for all: the counts table (from the report's own rows and statuses), the rows that need
saying, the notes, the summary line counted from the same rows as the table. Every line goes
through `human_lines` (escaping built in) and secrets a server echoed are redacted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from migrator.core.config import TenantConfig
from migrator.core.logs import printable, redact_text
from migrator.core.report import ItemOutcome, Report, ordered
from migrator.core.rollout import RolloutConfig, assign_waves

GROUP_AT = 3  # more listed items than this failing for one identical reason are one line
WIDTH = 100  # a listed line is clipped at three times this


def human_lines(lines: Iterable[str]) -> str:
    """Lines for a terminal or a mail: each one's control characters escaped (names come from
    documents and tenants), then joined, so no name can recolour a terminal or forge a line."""
    return "\n".join(printable(line) for line in lines)


@dataclass(frozen=True, slots=True)
class Voice:
    """How one command speaks of its rows: which statuses are columns, which rows are listed
    (and how), what is said after them, and the summary line."""

    listed: Callable[[ItemOutcome], bool]
    line: Callable[[ItemOutcome, int], str]  # (row, status width) → one listed line
    summary: Callable[[Report], str] | None
    heading: str | None = None  # above the listed rows (else a blank line)
    group: bool = False  # a tenant-wide cause said once per tenant, not per row
    # Which statuses are columns: all the command's (default) or only those with a count.
    columns: Callable[[Report, Mapping[str, Mapping[str, int]]], Sequence[str]] | None = None
    after: Callable[[Report], list[str]] | None = None  # lines between listing and notes
    table_when_empty: bool = True


def render_outcomes(report: Report, voice: Voice) -> str:
    """The one shape every command's outcomes take: counts table → listed rows → notes → summary."""
    per = report.per_tenant()
    lines: list[str] = []
    if voice.table_when_empty or per:
        columns = voice.columns(report, per) if voice.columns else report.statuses
        lines += counts_rows(per, columns)
    width = max(len(s) for s in report.statuses)
    listed = [i for i in report.ordered() if voice.listed(i)]
    if listed:
        lines += ["", voice.heading] if voice.heading else [""]
    grouped: set[tuple[str, str, str]] = set()
    if voice.group:
        # A tenant-wide cause (credentials refused, host unreachable) is said once per tenant.
        shared: dict[tuple[str, str, str], int] = {}
        for i in listed:
            if i.error:
                key = (i.tenant, i.status, i.error)
                shared[key] = shared.get(key, 0) + 1
        grouped = {key for key, n in shared.items() if n > GROUP_AT}
        for tenant, status, error in sorted(grouped):
            n = shared[(tenant, status, error)]
            lines.append(_clip(f"  {status:<{width}} {tenant}: {n} items: {error}"))
    lines += [
        _clip(voice.line(i, width))
        for i in listed
        if (i.tenant, i.status, i.error or "") not in grouped
    ]
    if voice.after:
        lines += voice.after(report)
    lines += [f"note: {notice}" for notice in report.notices]
    if voice.summary:
        lines.append(voice.summary(report))
    # Names come from documents, journals, tenants and servers: no control character gets out.
    return redact_text(human_lines(lines))


def counts_rows(
    per: Mapping[str, Mapping[str, int]],
    statuses: Sequence[str],
    *,
    labels: Mapping[str, str] | None = None,
) -> list[str]:
    """The counts table from tenant → status → count (`labels`: a column's name, if not its status)."""
    shown = {tenant: printable(tenant) for tenant in per}
    width = max([len("tenant"), *(len(t) for t in shown.values())])
    names = {s: (labels or {}).get(s, s) for s in statuses}
    # A column is as wide as its name (rolled_back), at least 9: numbers stand under names.
    cols = [(s, max(9, len(names[s]))) for s in statuses]
    header = "tenant".ljust(width) + "".join(f"  {names[s]:>{w}}" for s, w in cols)
    lines = [header, "-" * len(header)]
    for tenant in sorted(per):
        lines.append(
            shown[tenant].ljust(width) + "".join(f"  {per[tenant].get(s, 0):>{w}}" for s, w in cols)
        )
    return lines


def _clip(text: str, limit: int = WIDTH * 3) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _why(i: ItemOutcome) -> str:
    return i.error or i.reason or ""


# migrate and plan ---------------------------------------------------------------------------


def _migrate_columns(report: Report, per: Mapping[str, Mapping[str, int]]) -> list[str]:
    return [s for s in report.statuses if any(row.get(s) for row in per.values())] or [
        report.statuses[0]
    ]


def _needs_attention(i: ItemOutcome) -> bool:
    return i.status in ("failed", "blocked", "deferred") or i.verified is False


def _attention_line(i: ItemOutcome, width: int) -> str:
    why = _why(i)
    if i.verified is False and not why:
        why = "--verify: the exported version differs from what was sent"
    # Input errors already start with the file name: say it once, so the JSON path and the
    # reason survive the clip however long the path is.
    where = "" if why.startswith(f"{i.source}: ") else f" ({i.source})"
    label = f"{i.workflow_name}{where}".strip()
    return f"  {i.status:<{width}} {i.tenant}: {label + ': ' if label else ''}{why}"


def _verified_line(report: Report) -> list[str]:
    checked = same = 0
    for i in report.ordered():
        if i.verified is not None:
            checked += 1
            same += bool(i.verified)
    if not checked:
        return []
    return [f"verified: {same} of {checked} imports exported back identical to what was sent"]


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


MIGRATE = Voice(
    listed=_needs_attention,
    line=_attention_line,
    summary=summary_line,
    heading="needs attention:",
    group=True,
    columns=_migrate_columns,
    after=_verified_line,
)
ATTENTION = Voice(  # migrate's table without its summary line
    listed=_needs_attention,
    line=_attention_line,
    summary=None,
    heading="needs attention:",
    group=True,
    columns=_migrate_columns,
    after=_verified_line,
)
# Below a preview (plan, --dry-run), whose listing already said every row: the counts only.
PREVIEW = Voice(
    listed=lambda i: False, line=_attention_line, summary=None, columns=_migrate_columns
)


def render_table(report: Report) -> str:
    """migrate's counts per tenant, every item that needs attention, the notes (no summary)."""
    return render_outcomes(report, ATTENTION)


def render_migrate(report: Report, *, dry_run: bool = False) -> str:
    """`migrator migrate`: the table, what needs attention, notes, summary; a dry run lists
    every item first and then only counts (each row said once)."""
    if not dry_run:
        return render_outcomes(report, MIGRATE)
    preview = replace(PREVIEW, summary=summary_line)
    return render_items(report.items) + "\n\n" + render_outcomes(report, preview)


def render_plan(
    report: Report, rollout: RolloutConfig | None = None, tenants: Sequence[TenantConfig] = ()
) -> str:
    """`migrator plan`: every item, the counts, and the waves a rollout would run."""
    text = render_items(report.items) + "\n\n" + render_outcomes(report, PREVIEW)
    return text + ("\n" + render_waves(rollout, tenants) if rollout is not None else "")


def render_items(items: Iterable[ItemOutcome]) -> str:
    """Every item on its own line (for `migrator plan` and `--dry-run`)."""
    rows = list(ordered(items))
    # A tenant-wide cause (credentials refused, host unreachable) is said once per tenant.
    shared = Counter((i.tenant, i.status, i.error) for i in rows if _plain_failure(i))
    grouped = {key for key, n in shared.items() if n > GROUP_AT}
    lines = []
    for item in rows:
        key = (item.tenant, item.status, item.error)
        if key in grouped:
            grouped.discard(key)
            lines.append(f"{item.tenant}: {shared[key]} items: {item.status}: {item.error}")
            continue
        if _plain_failure(item) and shared[key] > GROUP_AT:
            continue
        # "planned create", "imported new_version", but "skipped", never "skipped skipped".
        what = f" {item.action}" if item.action and item.action != item.status else ""
        where = f" → definition {item.target_workflow_id}" if item.target_workflow_id else ""
        version = f" version {item.version}" if item.version else ""
        why_text = _why(item)
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


def _plain_failure(i: ItemOutcome) -> bool:
    """An item whose line would be only its error (nothing of its own to list under it)."""
    return bool(i.error) and not i.tenant_values and not i.change


def render_waves(rollout: RolloutConfig, tenants: Sequence[TenantConfig]) -> str:
    """The selected tenants' waves, in the order `migrate` runs them."""
    lines = [
        f"rollout: {len(rollout.waves)} wave(s) configured; a wave halts the rollout when more "
        f"than {rollout.failure_tolerance} of its tenants fail"
        + ("; a halt rolls that wave back" if rollout.rollback_on_halt else "")
    ]
    for wave in assign_waves(rollout, [t.name for t in tenants]):
        lines.append(f"  {wave.label}: {', '.join(wave.tenants)}")
    for name, smoke in sorted(rollout.smoke.items()):
        lines.append(f"  smoke run after each wave: {name!r} (timeout {smoke.timeout_s:g} s)")
    return human_lines(lines)


# verify -------------------------------------------------------------------------------------


def _verify_line(i: ItemOutcome, width: int) -> str:
    name = f"{i.workflow_name} ({i.source})" if i.workflow_name else i.source
    return f"  {i.status:<{width}} {i.tenant}: {name}: {_why(i)}"


def _verify_summary(report: Report) -> str:
    per = report.per_tenant()
    total = sum(sum(row.values()) for row in per.values())
    ok = sum(row.get("verified", 0) for row in per.values())
    verdict = "ok" if total > 0 and ok == total else "attention needed"
    return f"migrator verify: {verdict}: {ok} of {total} verified across {len(per)} tenant(s)"


VERIFY = Voice(
    listed=lambda i: i.status != "verified",
    line=_verify_line,
    summary=_verify_summary,
    heading="not verified:",
    group=True,
)


def render_verify(report: Report) -> str:
    """Counts per tenant, then every item that is not verified, then the verdict."""
    return render_outcomes(report, VERIFY)


# activate -----------------------------------------------------------------------------------


def _activate_line(i: ItemOutcome, width: int) -> str:
    return (
        f"  {i.status:<{width}} {i.tenant}: {i.workflow_name} version {i.version} "
        f"(definition {i.target_workflow_id}): {_why(i)}"
    )


def activate_summary_line(report: Report) -> str:
    """The verdict line, counted from the same rows as the table above it (skipped: already
    active, or a lower version of a definition switched on); a dry run counts what it would
    switch on."""
    counts = report.summary()
    verdict = "ok" if report.ok else "attention needed"
    done = (
        f"would activate {counts['planned']}"
        if counts["planned"]
        else f"activated {counts['activated']}"
    )
    deferred = f", deferred {counts['deferred']}" if counts["deferred"] else ""
    return (
        f"migrator activate: {verdict}: {done}, skipped {counts['skipped']}, "
        f"failed {counts['failed']}{deferred}"
    )


ACTIVATE = Voice(
    listed=lambda i: i.status in ("activated", "planned", "failed", "deferred"),
    line=_activate_line,
    summary=activate_summary_line,
)


def render_activate(report: Report) -> str:
    """Counts per tenant, every switch made or planned, every failure, the notes, the verdict."""
    return render_outcomes(report, ACTIVATE)


# rollback -----------------------------------------------------------------------------------


def _rollback_line(i: ItemOutcome, width: int) -> str:
    return (
        f"  {i.status:<{width}} {i.tenant}: {i.workflow_name} (definition {i.target_workflow_id}): "
        f"{i.action}: {_why(i)}"
    )


def _rollback_summary(report: Report) -> str:
    counts = report.summary()
    verdict = "ok" if report.ok else "attention needed"
    return f"migrator rollback: {verdict}: " + ", ".join(
        f"{s.replace('_', ' ')} {counts.get(s, 0)}" for s in report.statuses
    )


ROLLBACK = Voice(
    listed=lambda i: i.status != "unchanged",
    line=_rollback_line,
    summary=_rollback_summary,
    table_when_empty=False,
)


def render_rollback(report: Report) -> str:
    """Counts per tenant, every action but `none` with its reason, the notes, the verdict."""
    return render_outcomes(report, ROLLBACK)
