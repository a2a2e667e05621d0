"""The report: its JSON shape (issue 2's contract), the terminal table, and the plan listing."""

from __future__ import annotations

import orjson

from migrator.core.report import ItemOutcome, Report
from migrator.render.outcomes import render_items, render_table, summary_line


def items() -> tuple[ItemOutcome, ...]:
    return (
        ItemOutcome(
            "t1", "a.json", "A", "imported", target_workflow_id=5, version="1.0.0", action="create"
        ),
        ItemOutcome(
            "t1",
            "b.json",
            "B",
            "skipped",
            target_workflow_id=6,
            version="2.0.0",
            reason="identical",
        ),
        ItemOutcome(
            "t2", "a.json", "A", "failed", error="tenant t2: POST /workflows/import: 400 bad"
        ),
        ItemOutcome(
            "t2",
            "c.json",
            "C",
            "planned",
            action="new_version",
            version="1.1.0",
            tenant_values=(
                {
                    "path": "$.tasks[0].parameters.auth",
                    "kind": "saved_provider",
                    "value": "saved_provider:abc",
                    "substitute": None,
                },
            ),
        ),
    )


def test_json_report_has_the_documented_shape() -> None:
    """The JSON report has summary counts and items with tenant, source, workflow_name, status, target_workflow_id, version and error."""
    data = orjson.loads(Report(items=items()).dumps())
    assert (
        data["summary"]["imported"] == 1
        and data["summary"]["skipped"] == 1
        and data["summary"]["failed"] == 1
    )
    for entry in data["items"]:
        assert {
            "tenant",
            "source",
            "workflow_name",
            "status",
            "target_workflow_id",
            "version",
            "error",
        } <= set(entry)
    assert data["tenants"]["t2"]["failed"] == 1


def test_ok_only_when_nothing_failed_or_waits() -> None:
    """A report is ok with imports and skips only; a failure, a block, a deferral or an interruption is not ok."""
    good = Report(items=items()[:2])
    assert good.ok
    assert not Report(items=items()).ok
    assert not Report(items=items()[:2], interrupted=True).ok


def test_table_lists_tenants_and_what_needs_attention() -> None:
    """The table has one row per tenant and lists every failed item with its reason."""
    text = render_table(Report(items=items()))
    assert "t1" in text and "t2" in text
    assert "needs attention" in text and "400 bad" in text


def test_plan_listing_shows_tenant_specific_values() -> None:
    """Each planned item lists its tenant-specific values and whether the tenant's table rewrites them."""
    text = render_items(items())
    assert "t2: C: planned new_version version 1.1.0" in text
    assert (
        "tenant-specific saved_provider 'saved_provider:abc' at $.tasks[0].parameters.auth (no substitution"
        in text
    )


def test_summary_line_is_one_line_with_a_verdict() -> None:
    """The closing summary is one line a cron mail can carry, saying whether attention is needed."""
    line = summary_line(Report(items=items()))
    assert "\n" not in line and "attention needed" in line and "imported 1" in line


def test_one_tenant_wide_failure_is_listed_once() -> None:
    """Many items failing for the same reason in one tenant are listed as one line with their count."""
    same = tuple(
        ItemOutcome("t9", f"{n}.json", f"W{n}", "failed", error="tenant t9: credentials rejected")
        for n in range(10)
    )
    text = render_table(Report(items=same + items()))
    assert "t9: 10 items: tenant t9: credentials rejected" in text
    assert "W3" not in text
    assert "400 bad" in text  # other failures are still listed one by one


def test_plan_listing_says_each_status_once_and_names_unreadable_files() -> None:
    """A skipped item reads "skipped", not "skipped skipped"; an unreadable file is named by its path, never by an empty name."""
    text = render_items(
        (
            ItemOutcome("t1", "b.json", "B", "skipped", version="2.0.0", reason="identical"),
            ItemOutcome("t1", "x.json", "", "failed", error="x.json: $.tasks: not a list"),
        )
    )
    assert text.splitlines() == [
        "t1: x.json: failed: $.tasks: not a list",
        "t1: B: skipped version 2.0.0: identical",
    ]


def test_a_report_knows_which_of_its_statuses_are_failures() -> None:
    """A verify report full of `differs` is not ok, and its summary speaks verify's words only;
    an activate report with a deferred item is not ok either."""
    from migrator.run.activate import activate_report
    from migrator.run.verify import verify_report

    def one(status: str) -> ItemOutcome:
        return ItemOutcome(tenant="t", source="a.json", workflow_name="A", status=status)

    assert verify_report((one("verified"),)).ok
    differs = verify_report((one("verified"), one("differs")))
    assert not differs.ok
    assert differs.summary() == {"verified": 1, "differs": 1, "missing": 0, "failed": 0}
    assert not verify_report((one("missing"),)).ok
    assert activate_report((one("activated"), one("skipped"))).ok
    assert not activate_report((one("deferred"),)).ok
