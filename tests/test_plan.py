"""The planner, pure: plain values in, a TenantPlan out."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from migrator.core.plan import (
    LEFT_BY_RETRY_FAILED,
    Action,
    Call,
    PlanOptions,
    PriorIntent,
    PriorState,
    SourceDoc,
    TargetDefinition,
    TargetVersion,
    idempotency_key,
    plan_tenant,
)
from tests.helpers import numeric_version


def doc(
    name: str,
    key: str,
    version: str | None = None,
    wid: int = 1,
    calls: tuple[Call, ...] = (),
    definition_id: int | None = None,
) -> SourceDoc:
    return SourceDoc(
        key=key,
        source=f"{key}.json",
        name=name,
        version=version,
        workflow_id=wid,
        calls=calls,
        definition_id=definition_id,
    )


def plan(
    docs: list[SourceDoc],
    target: dict[str, list[TargetDefinition]] | None = None,
    prior: dict[str, PriorState] | None = None,
    **opts: object,
) -> list:
    unbound = opts.pop("unbound", None)
    result = plan_tenant(
        "t",
        "https://x|id",
        docs,
        target or {},
        prior or {},
        options=PlanOptions(**opts),
        unbound=unbound,
    )  # type: ignore[arg-type]
    return result


def test_new_name_is_created_with_its_own_version() -> None:
    """A workflow missing from the target is created, keeping the source's version number."""
    p = plan([doc("A", "h1", "1.2.0")])
    [item] = p.items
    assert (item.action, item.version, item.target_definition_id) == (Action.CREATE, "1.2.0", None)


def test_existing_name_gets_a_version_above_the_target_highest() -> None:
    """A workflow present in the target gets a new version strictly above the target's highest, numerically."""
    target = {
        "A": [TargetDefinition(7, "A", (TargetVersion(1, "0.0.9"), TargetVersion(2, "0.0.10")))]
    }
    p = plan([doc("A", "h1", "0.0.3")], target)
    [item] = p.items
    assert item.action is Action.NEW_VERSION and item.target_definition_id == 7
    assert item.version == "0.0.11"  # numerically above 0.0.10 (not "0.0.4" nor "0.0.2")


def test_versions_of_one_name_go_in_ascending_order() -> None:
    """Several documents of one name are planned oldest version first: create, then new versions."""
    p = plan([doc("A", "h2", "1.10.0"), doc("A", "h1", "1.9.0"), doc("A", "h3", "2")])
    assert [(i.action, i.version) for i in p.items] == [
        (Action.CREATE, "1.9.0"),
        (Action.NEW_VERSION, "1.10.0"),
        (Action.NEW_VERSION, "2"),
    ]


def test_identical_content_on_target_is_skipped() -> None:
    """A document whose content hash equals a target version's is skipped, naming that version."""
    target = {"A": [TargetDefinition(7, "A", (TargetVersion(1, "3.0.0", "h1"),))]}
    [item] = plan([doc("A", "h1", "1.0.0")], target).items
    assert item.action is Action.SKIP and "3.0.0" in item.reason


def test_duplicate_content_in_sources_is_sent_once() -> None:
    """Two source files with the same content produce one import and one skip."""
    items = plan([doc("A", "h1", "1.0.0"), SourceDoc("h1", "copy.json", "A", "1.0.0", 2)]).items
    assert [i.action for i in items] == [Action.CREATE, Action.SKIP]


def test_journal_done_items_are_skipped_and_failed_ones_wait() -> None:
    """Done items are skipped; failed ones stay blocked unless --retry-failed, which then sends only them."""
    prior = {
        "h1": PriorState(status="done", version="1.0.0", target_definition_id=5),
        "h2": PriorState(status="failed", reason="400 bad", attempts=1),
    }
    docs = [doc("A", "h1", "1.0.0"), doc("B", "h2", "1.0.0"), doc("C", "h3", "1.0.0")]
    target = {"A": [TargetDefinition(5, "A", (TargetVersion(50, "1.0.0", None),))]}
    normal = {i.doc.key: i for i in plan(docs, target, prior).items}
    assert normal["h1"].action is Action.SKIP
    assert normal["h2"].action is Action.BLOCKED and "--retry-failed" in normal["h2"].reason
    assert normal["h3"].action is Action.CREATE
    retry = {i.doc.key: i for i in plan(docs, target, prior, retry_failed=True).items}
    assert retry["h2"].action is Action.CREATE
    assert retry["h3"].action is Action.SKIP
    # A retried failure gets a key of its own: the server stored the failure under the old one.
    assert retry["h2"].idempotency_key != idempotency_key(
        "https://x|id", "h2", "create", None, "1.0.0"
    )


def test_in_doubt_intent_is_resent_with_the_same_key() -> None:
    """An unanswered intent from an earlier run is resent with its own version and Idempotency-Key."""
    intent = PriorIntent(
        action="create",
        version="1.0.0",
        target_definition_id=None,
        idempotency_key="k-1",
        time=1000.0,
    )
    prior = {"h1": PriorState(status="in_doubt", intent=intent)}
    [item] = plan([doc("A", "h1", "1.0.0")], prior=prior, now=2000.0).items
    assert item.resumed and item.idempotency_key == "k-1" and item.version == "1.0.0"


def test_in_doubt_intent_older_than_the_key_life_gets_a_fresh_key() -> None:
    """After the server forgot the key (24 h), the intent is not reused blindly."""
    intent = PriorIntent(
        action="create", version="1.0.0", target_definition_id=None, idempotency_key="k-1", time=0.0
    )
    prior = {"h1": PriorState(status="in_doubt", intent=intent)}
    [item] = plan([doc("A", "h1", "1.0.0")], prior=prior, now=25 * 3600.0).items
    assert not item.resumed and item.idempotency_key != "k-1"


def test_callees_come_before_callers_and_missing_callees_block() -> None:
    """Callers are ordered after their callees; a call to a workflow found nowhere blocks the caller."""
    caller = doc("Caller", "h1", "1.0.0", wid=10, calls=(Call(3, "77", "Callee"),))
    callee = doc("Callee", "h2", "1.0.0", wid=20, definition_id=77)
    lost = doc("Lost", "h3", "1.0.0", wid=30, calls=(Call(4, "999", "Nowhere"),))
    p = plan([caller, callee, lost])
    names = [g.name for g in p.groups]
    assert names.index("Callee") < names.index("Caller")
    by_key = {i.doc.key: i for i in p.items}
    assert by_key["h1"].call_targets == {3: "Callee"}
    assert by_key["h3"].action is Action.BLOCKED and "Nowhere" in by_key["h3"].reason
    assert any("Nowhere" in problem for problem in p.problems)


def test_callee_found_only_on_the_target_resolves_by_name() -> None:
    """A callee that is not in the sources but exists in the target resolves through workflow_name."""
    caller = doc("Caller", "h1", calls=(Call(3, "555", "Shared"),))
    p = plan([caller], {"Shared": [TargetDefinition(40, "Shared")]})
    [item] = p.items
    assert item.action is Action.CREATE and item.call_targets == {3: "Shared"}


def test_call_cycles_are_reported() -> None:
    """Workflows calling each other in a circle are blocked, and the cycle is named."""
    a = doc("A", "h1", wid=1, calls=(Call(1, None, "B"),))
    b = doc("B", "h2", wid=2, calls=(Call(1, None, "A"),))
    p = plan([a, b])
    assert all(i.action is Action.BLOCKED and "cycle" in i.reason for i in p.items)
    assert any("cycle" in problem for problem in p.problems)


def test_ambiguous_target_name_blocks() -> None:
    """Two target definitions with the same name block that name rather than guessing."""
    target = {"A": [TargetDefinition(1, "A"), TargetDefinition(2, "A")]}
    [item] = plan([doc("A", "h1")], target).items
    assert item.action is Action.BLOCKED and "2 definitions" in item.reason


def test_strict_blocks_unbound_tenant_values() -> None:
    """With strict on, a document carrying an unbound tenant-specific value is blocked; without, it goes."""
    unbound = {"h1": ["saved provider 'saved_provider:abc' at $.tasks[0].parameters.auth"]}
    assert plan([doc("A", "h1")], unbound=unbound).items[0].action is Action.CREATE
    strict = plan([doc("A", "h1")], unbound=unbound, strict=True)
    assert strict.items[0].action is Action.BLOCKED and "saved_provider" in strict.items[0].reason


def test_idempotency_keys_are_deterministic_and_short() -> None:
    """The same import always gets the same key, a different target another, and keys fit in 255 chars."""
    a = idempotency_key("u|c", "h", "create", None, "1.0.0")
    assert a == idempotency_key("u|c", "h", "create", None, "1.0.0")
    assert a != idempotency_key("u|c2", "h", "create", None, "1.0.0")
    assert len(a) <= 255


versions = st.lists(
    st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(0, 30)), max_size=6
)


@given(target_versions=versions, source_versions=versions)
def test_planned_versions_strictly_increase_above_target(
    target_versions: list, source_versions: list
) -> None:
    """Whatever the numbers, planned versions of one name strictly increase and exceed every target version."""
    tv = tuple(TargetVersion(i, ".".join(map(str, v))) for i, v in enumerate(target_versions))
    target = {"A": [TargetDefinition(1, "A", tv)]} if tv else {}
    docs = [doc("A", f"h{i}", ".".join(map(str, v))) for i, v in enumerate(source_versions)]
    planned = [
        i.version
        for i in plan(docs, target).items
        if i.action in (Action.CREATE, Action.NEW_VERSION)
    ]
    keys = [numeric_version(v) for v in planned]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    if tv and keys:
        assert keys[0] > max(numeric_version(v.version) for v in tv)


def test_only_identical_content_skips_are_journal_facts() -> None:
    """A skip for identical content on the target is recorded; duplicates, done items and unselected ones never overwrite the journal."""
    target = {
        "A": [TargetDefinition(7, "A", (TargetVersion(1, "3.0.0", "h1"),))],
        "B": [TargetDefinition(5, "B", (TargetVersion(50, "1.0.0", None),))],
    }
    prior = {
        "h2": PriorState(status="done", version="1.0.0", target_definition_id=5),
        "h3": PriorState(status="deferred", reason="503"),
    }
    docs = [
        doc("A", "h1", "1.0.0"),
        doc("B", "h2"),
        doc("C", "h3"),
        SourceDoc("h3", "z-copy.json", "C", None, 9),
    ]
    items = plan(docs, target, prior).items
    recorded = {(i.doc.source, i.recorded) for i in items if i.action is Action.SKIP}
    assert recorded == {("h1.json", True), ("h2.json", False), ("z-copy.json", False)}
    retry = plan(docs, target, prior, retry_failed=True).items
    assert not any(i.recorded for i in retry if i.reason.startswith("not a failed item"))


def test_a_done_item_whose_workflow_is_gone_is_planned_again() -> None:
    """The journal is not the target: a done item whose name the tenant no longer has is planned
    as a create (its prior marked gone, so the run journals that first), and the later version
    of the same workflow follows it as a new version."""
    prior = {"h1": PriorState(status="done", version="1.0.0", target_definition_id=5)}
    docs = [doc("A", "h1", "1.0.0"), doc("A", "h2", "2.0.0")]
    items = {i.doc.key: i for i in plan(docs, {}, prior).items}
    assert items["h1"].action is Action.CREATE and items["h1"].version == "1.0.0"
    assert items["h1"].prior is not None and items["h1"].prior.status == "gone"
    assert items["h2"].action is Action.NEW_VERSION and items["h2"].version == "2.0.0"
    present = {"A": [TargetDefinition(5, "A", (TargetVersion(50, "1.0.0", None),))]}
    kept = {i.doc.key: i for i in plan(docs, present, prior).items}
    assert kept["h1"].action is Action.SKIP


def test_retry_failed_reports_settled_items_as_skipped_not_deferred() -> None:
    """Under --retry-failed an item an earlier run settled as identical content (journal
    `skipped`) is skipped as settled, not left for another run: only never-tried items wait."""
    prior = {
        "h1": PriorState(status="skipped", reason="identical to version 1.0.0 in tenant t"),
        "h2": PriorState(status="failed", reason="400 bad", attempts=1),
    }
    docs = [doc("A", "h1", "1.0.0"), doc("B", "h2", "1.0.0"), doc("C", "h3", "1.0.0")]
    retry = {i.doc.key: i for i in plan(docs, {}, prior, retry_failed=True).items}
    assert retry["h1"].action is Action.SKIP and retry["h1"].reason != LEFT_BY_RETRY_FAILED
    assert "earlier run" in retry["h1"].reason
    assert retry["h2"].action is Action.CREATE
    assert retry["h3"].reason == LEFT_BY_RETRY_FAILED
