"""The drift matrix model (statuses, JSON, exit code) and its terminal and HTML renderings."""

from __future__ import annotations

import copy
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrator.core.canonical import canonical_hash
from migrator.core.document import document_from_data
from migrator.core.drift import (
    DRIFTED,
    EXTRA,
    FAILED,
    IN_SYNC,
    MISSING,
    DriftReport,
    HeldWorkflow,
    SourceFailure,
    TenantDrift,
    Unreadable,
    WorkflowDrift,
    compare_pair,
    compare_tenant,
    compared_version,
    failed_tenant,
    latest_by_name,
    needs_export,
)
from migrator.core.plan import TargetDefinition, TargetVersion
from migrator.core.remap import prepare_for_import, remap_task_ids
from migrator.render.html import CELL_CLASS, render_html
from migrator.render.terminal import fit, printable, render_report, width
from tests.builders import reminder_flow


def drifted_copy(subject: str = "B") -> dict[str, Any]:
    doc = reminder_flow()
    doc["tasks"][1]["parameters"]["email"]["subject"] = subject
    return doc


def small_report() -> DriftReport:
    sources: dict[str, Any] = {"Dunning": reminder_flow(), "Billing": reminder_flow()}
    prod = compare_tenant(
        "prod",
        sources,
        {
            "Dunning": HeldWorkflow(5, "0.0.2", drifted_copy()),
            "Billing": HeldWorkflow(6, "0.0.1", reminder_flow()),
            "Hand made": HeldWorkflow(9, "0.0.1", reminder_flow()),
        },
    )
    sandbox = compare_tenant(
        "sandbox", sources, {"Dunning": HeldWorkflow(3, "0.0.1", reminder_flow())}
    )
    return DriftReport((prod, sandbox))


# ------------------------------------------------------------------------------------- model


def test_each_status_of_a_pair() -> None:
    """In sync, drifted, missing and failed follow from what the tenant holds."""
    same = remap_task_ids(reminder_flow(), {1: 11, 2: 12, 3: 13})
    assert compare_pair("D", reminder_flow(), HeldWorkflow(1, "0.0.1", same)).status == IN_SYNC
    drifted = compare_pair("D", reminder_flow(), HeldWorkflow(1, "0.0.1", drifted_copy()))
    assert drifted.status == DRIFTED
    assert [d.describe() for d in drifted.differences] == [
        'task "Send reminder": parameters.email.subject: "A" → "B"'
    ]
    assert drifted.comparison is not None
    assert compare_pair("D", reminder_flow(), None).status == MISSING
    failed = compare_pair("D", reminder_flow(), Unreadable("export failed: HTTP 500"))
    assert (failed.status, failed.reason) == (FAILED, "export failed: HTTP 500")
    unreadable = compare_pair("D", Unreadable("callee X missing"), HeldWorkflow(1, "1", same))
    assert (unreadable.status, unreadable.target_workflow_id) == (FAILED, 1)


def test_tenant_substitutions_make_a_pair_in_sync() -> None:
    """The source is compared as a migration would send it: with the tenant's substitutions."""
    source = reminder_flow()
    source["tasks"][1]["parameters"]["email"]["to"] = "ops@sandbox.example.com"
    held = reminder_flow()
    held["tasks"][1]["parameters"]["email"]["to"] = "ops@example.com"
    payload = prepare_for_import(
        document_from_data(source, "dunning.json"),
        substitutions={"sandbox.example.com": "example.com"},
    )
    assert compare_pair("Dunning", payload, HeldWorkflow(1, "0.0.1", held)).status == IN_SYNC
    plain = prepare_for_import(document_from_data(source, "dunning.json"))
    assert compare_pair("Dunning", plain, HeldWorkflow(1, "0.0.1", held)).status == DRIFTED


def test_a_matching_content_hash_needs_no_export() -> None:
    """A tenant version whose cached hash matches is in sync without its document."""
    payload = reminder_flow()
    digest = canonical_hash(payload)
    assert not needs_export(payload, digest)
    assert needs_export(payload, "0" * 64)
    assert needs_export(payload, None)
    assert compare_pair("D", payload, HeldWorkflow(1, "1", content_hash=digest)).status == IN_SYNC
    with pytest.raises(ValueError, match="needed"):
        compare_pair("D", payload, HeldWorkflow(1, "1", content_hash="0" * 64))


def test_compared_version_is_the_active_one_else_the_highest() -> None:
    """The active version is compared; without one, the highest version number."""
    versions = (TargetVersion(10, "0.0.9"), TargetVersion(11, "0.0.10"), TargetVersion(12, "x"))
    assert compared_version(TargetDefinition(1, "D", versions, active_version_id=10)) == versions[0]
    assert compared_version(TargetDefinition(1, "D", versions)) == versions[1]
    assert compared_version(TargetDefinition(1, "D", ())) is None


def test_json_has_the_documented_shape() -> None:
    """to_json gives tenants → workflows with name, status, ids, version and differences."""
    out = small_report().to_json()
    assert set(out) == {"tenants", "failed_sources"}
    assert list(out["tenants"]) == ["prod", "sandbox"]
    prod = out["tenants"]["prod"]["workflows"]
    assert [(w["name"], w["status"]) for w in prod] == [
        ("Billing", IN_SYNC),
        ("Dunning", DRIFTED),
        ("Hand made", EXTRA),
    ]
    assert prod[1] == {
        "name": "Dunning",
        "status": DRIFTED,
        "target_workflow_id": 5,
        "target_version": "0.0.2",
        "differences": [
            {
                "path": 'tasks["Send reminder"].parameters.email.subject',
                "source": "A",
                "target": "B",
                "kind": "task-field",
            }
        ],
    }
    sandbox = out["tenants"]["sandbox"]["workflows"]
    assert sandbox[0]["status"] == MISSING and "reason" in sandbox[0]


def test_exit_code_counts_every_source_pair_but_not_extras() -> None:
    """0 only when every source workflow is in sync everywhere and every source was read."""
    ok = TenantDrift("t", (WorkflowDrift("A", IN_SYNC), WorkflowDrift("X", EXTRA)))
    assert DriftReport((ok,)).exit_code() == 0
    for status in (DRIFTED, MISSING, FAILED):
        bad = TenantDrift("u", (WorkflowDrift("A", status),))
        assert DriftReport((ok, bad)).exit_code() == 1
    assert DriftReport((ok,), (SourceFailure("a.json", "not JSON"),)).exit_code() == 1
    assert small_report().exit_code() == 1


def test_unreadable_tenant_fails_every_cell() -> None:
    """A tenant that cannot be read is failed for each source workflow, with the reason."""
    tenant = failed_tenant("eu", ["B", "A"], "login failed: 401")
    assert [(w.name, w.status, w.reason) for w in tenant.workflows] == [
        ("A", FAILED, "login failed: 401"),
        ("B", FAILED, "login failed: 401"),
    ]


# ---------------------------------------------------------------------------------- terminal


def wide_report(tenants: int, workflows: int) -> DriftReport:
    """`tenants` by `workflows` cells, mostly in sync, a few of every other status."""
    statuses = [IN_SYNC] * 20 + [DRIFTED, MISSING, FAILED]
    columns = []
    for t in range(tenants):
        cells = []
        for w in range(workflows):
            cells.append(WorkflowDrift(f"workflow-{w:03d}", statuses[(t * 7 + w) % len(statuses)]))
        cells.append(WorkflowDrift("hand made", EXTRA))
        columns.append(TenantDrift(f"tenant-{t:02d}-{'x' * (t % 9)}", tuple(cells)))
    return DriftReport(tuple(columns))


def test_matrix_fits_80_columns_for_a_handful_of_tenants() -> None:
    """Four tenants: one block, every line within 80 columns, a legend under it."""
    text = render_report(small_report())
    assert text.split("\n\n")[0].splitlines() == [
        "workflow  prod    sandbox",
        "Billing   =       -",
        "Dunning   ~       =",
        "Hand made +",
    ]
    assert all(width(line) <= 80 for line in text.splitlines())
    assert "= in-sync  ~ drifted  - missing  + extra  ! failed" in text
    assert "prod / Dunning: drifted (version 0.0.2, workflow 5)" in text
    assert '  task "Send reminder": parameters.email.subject: "A" → "B"' in text


def test_a_tenant_that_could_not_be_read_is_one_line_in_the_details() -> None:
    """Forty cells failed for one reason on one tenant are one line, not forty; a few failed
    cells keep a line each."""
    report = DriftReport(
        (
            failed_tenant("eu", [f"W{i}" for i in range(40)], "login failed: 401"),
            failed_tenant("us", ["A", "B"], "export failed: HTTP 500"),
        )
    )
    details = render_report(report).split("\n\n", 2)[2]
    assert details.splitlines() == [
        "eu: 40 workflows failed: login failed: 401",
        "us / A: failed: export failed: HTTP 500",
        "us / B: failed: export failed: HTTP 500",
    ]


def test_many_tenants_page_into_blocks_that_fit() -> None:
    """Thirty tenants are split into column blocks, each line within the width, each tenant shown."""
    report = wide_report(30, 12)
    text = render_report(report, columns=80)
    assert all(width(line) <= 80 for line in text.splitlines())
    headers = [line for line in text.splitlines() if line.startswith("workflow ")]
    assert len(headers) > 1
    shown = " ".join(headers)
    for t in report.tenants:
        assert fit(t.tenant, 12).strip() in shown


def test_long_names_are_cut_with_an_ellipsis() -> None:
    """A 200-character workflow name is cut to the name column and ends in an ellipsis."""
    long = "Quarterly " * 20
    report = DriftReport((TenantDrift("t", (WorkflowDrift(long, IN_SYNC),)),))
    line = render_report(report).splitlines()[1]
    assert "…" in line and width(line) <= 80


@given(st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=6, unique=True))
@settings(max_examples=80)
def test_hostile_names_cannot_escape_their_cell(names: list[str]) -> None:
    """Any names (ANSI escapes, CR, LF, BEL, wide or combining characters) keep the grid intact."""
    tenants = tuple(
        TenantDrift(
            n,
            tuple(
                WorkflowDrift(m, DRIFTED if i else FAILED, reason=m) for i, m in enumerate(names)
            ),
        )
        for n in names
    )
    text = render_report(DriftReport(tenants), columns=80)
    first_block = text.split("\n\n")[0].splitlines()
    assert len(first_block) == 1 + len(names)
    assert all(width(line) <= 80 for line in first_block)
    assert all(ch == "\n" or ch.isprintable() for ch in text)


def test_printable_escapes_control_characters() -> None:
    """ANSI escapes, CR, LF, BEL and bidi overrides are written as visible escapes."""
    assert printable("a\x1b[31mb\r\nc\x07\u202e") == "a\\x1b[31mb\\r\\nc\\x07\\u202e"
    assert printable("Résumé 中文") == "Résumé 中文"
    assert width("中文") == 4 and width(fit("中文中文", 5)) == 5


# -------------------------------------------------------------------------------------- HTML


class PageParser(HTMLParser):
    """Collects what the structure checks need from the page."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.cells: list[str | None] = []
        self.row_heads = 0
        self.details: list[str] = []
        self.svgs_in_details: dict[str, int] = {}
        self.current_details: str | None = None
        self.links: list[str] = []
        self.sources: list[str] = []
        self.scripts = 0
        self.tables = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self.tables += 1
        if tag == "tbody":
            self.stack.append("tbody")
        if tag == "td" and "tbody" in self.stack:
            self.cells.append(a.get("class"))
        if tag == "th" and "tbody" in self.stack:
            self.row_heads += 1
        if tag == "details":
            self.current_details = a.get("id")
            self.details.append(a.get("id") or "")
        if tag == "svg" and self.current_details:
            self.svgs_in_details[self.current_details] = (
                self.svgs_in_details.get(self.current_details, 0) + 1
            )
        if tag == "script":
            self.scripts += 1
        if tag == "link":
            self.sources.append(str(a.get("href")))
        for key in ("href", "xlink:href"):
            if key in a:
                self.links.append(str(a[key]))
        if "src" in a:
            self.sources.append(str(a["src"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self.stack.remove("tbody")
        if tag == "details":
            self.current_details = None


def test_page_for_50_tenants_by_200_workflows_is_small_and_well_formed() -> None:
    """50 tenants by 200 workflows with some drifted cells: under 200 KB, one cell per pair, an SVG pair per drift."""
    drifted_cells = {(3, 10), (17, 150), (42, 199), (0, 0)}
    comparison_cell = compare_pair("x", reminder_flow(), HeldWorkflow(1, "0.0.2", drifted_copy()))
    tenants = []
    for t in range(50):
        cells = []
        for w in range(200):
            name = f"Workflow number {w:03d}"
            if (t, w) in drifted_cells:
                cells.append(
                    WorkflowDrift(
                        name,
                        DRIFTED,
                        5,
                        "0.0.2",
                        comparison_cell.differences,
                        comparison=comparison_cell.comparison,
                    )
                )
            else:
                cells.append(WorkflowDrift(name, MISSING if (t + w) % 37 == 0 else IN_SYNC))
        tenants.append(TenantDrift(f"tenant-{t:02d}.example", tuple(cells)))
    page = render_html(DriftReport(tuple(tenants)), generated="2026-12-03")
    assert len(page.encode()) < 200_000
    parser = PageParser()
    parser.feed(page)
    assert parser.tables == 1
    assert parser.row_heads == 200
    assert len(parser.cells) == 50 * 200
    assert set(parser.cells) <= set(CELL_CLASS.values())
    assert parser.cells.count(CELL_CLASS[DRIFTED]) == len(drifted_cells)
    assert len(parser.details) == len(drifted_cells)
    assert all(parser.svgs_in_details[d] == 2 for d in parser.details)
    assert parser.sources == [] and all(link.startswith("#") for link in parser.links)
    assert parser.scripts == 1
    assert sorted(link[1:] for link in parser.links) == sorted(parser.details)


def test_page_escapes_hostile_names() -> None:
    """Names with markup and control characters are text on the page, never elements."""
    hostile = "<script>alert(1)</script>\x1b[31m\u202e"
    doc = reminder_flow()
    doc["tasks"][2]["name"] = hostile
    sources = {hostile: reminder_flow()}
    held = {
        hostile: HeldWorkflow(1, "1", doc),
        "<img src=x onerror=alert(1)>": HeldWorkflow(2, "1", doc),
    }
    page = render_html(DriftReport((compare_tenant(hostile, sources, held),)), title=hostile)
    parser = PageParser()
    parser.feed(page)
    assert parser.scripts == 1 and parser.sources == []
    assert "<script>alert" not in page and "<img" not in page
    assert "\x1b" not in page and "\u202e" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;\\x1b[31m\\u202e" in page


def test_page_shows_failures_once_per_reason() -> None:
    """A tenant that could not be read is one line naming its reason, not one per workflow."""
    report = DriftReport(
        (failed_tenant("eu", [f"W{i}" for i in range(40)], "login failed: 401"),),
        (SourceFailure("broken.json", "not valid JSON at line 1 column 1"),),
    )
    page = render_html(report)
    assert page.count("login failed: 401") == 1
    assert "failed source broken.json: not valid JSON at line 1 column 1" in page


def test_summary_matches_the_cells() -> None:
    """The page's header counts agree with the model's counts."""
    report = small_report()
    counts = report.counts()
    assert counts == {IN_SYNC: 2, DRIFTED: 1, MISSING: 1, EXTRA: 1, FAILED: 0}
    page = render_html(copy.deepcopy(report))
    assert "2 in-sync, 1 drifted, 1 missing, 1 extra" in page


def test_latest_source_of_each_name() -> None:
    """The highest version of a name is compared; an unversioned export counts as later."""

    def doc(name: str, version: str | None, source: str) -> Any:
        data = reminder_flow()
        data["workflow"].update(name=name, version=version)
        return document_from_data(data, source)

    docs = [
        doc("A", "0.0.9", "a1"),
        doc("A", "0.0.10", "a2"),
        doc("B", "1", "b1"),
        doc("B", None, "b2"),
    ]
    latest = latest_by_name(docs)
    assert {n: d.source for n, d in latest.items()} == {"A": "a2", "B": "b2"}
