"""`migrator activate`: switch on what a migration imported, as a separate rollout step.

Reads a journal; per tenant and definition, makes the highest committed version the active one.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from typing import Any

import anyio
import structlog

from migrator import __version__
from migrator.commands._common import (
    EXIT_ITEMS,
    EXIT_OK,
    _common,
    _settings,
    emit_report,
    run_with_signals,
)
from migrator.core.config import Settings, TenantConfig
from migrator.core.errors import AuthError, JournalError, MigratorError, ZuoraError
from migrator.core.journal_records import ItemState, Record
from migrator.core.listing import active_version, shown_versions
from migrator.core.logs import redact_text
from migrator.core.plan import activation_key, int_or_none
from migrator.core.report import ItemOutcome, Report, counts_table, human_lines
from migrator.core.rollout import Wave, assign_waves
from migrator.core.versions import is_valid_version, version_key
from migrator.render.help import described
from migrator.run.history import NullJournal
from migrator.run.migrate import _close_session
from migrator.run.resolve import pick_definition, version_in_entry
from migrator.run.rollback import DiscardState
from migrator.run.rollout import WaveRunner, wave_failures
from migrator.run.tenant import tenant_fingerprint, tenant_identity
from migrator.store.journal import read_state
from migrator.store.workspace import OutcomeLog, Workspace
from migrator.store.workspace_views import JournalState
from migrator.zuora import ZuoraClient, open_session

log = structlog.get_logger("migrator.activate")

# activated: switched on by this run · skipped: already active, or a lower version of a definition
# whose higher version is the one to activate · planned: --dry-run · failed: refused or unreachable
# deferred: not tried, a rollout wave before it halted
ACTIVATE_STATUSES = ("activated", "skipped", "planned", "failed", "deferred")


@dataclass(frozen=True, slots=True)
class Target:
    """One definition to switch on: the highest version the journal records for it."""

    tenant: str
    definition_id: int
    state: ItemState  # the journal item of the chosen version
    superseded: tuple[ItemState, ...] = ()  # lower versions of the same definition


def targets_from_journal(tenant: str, landed: Iterable[ItemState]) -> Iterator[Target | ItemState]:
    """From the tenant's committed and skipped items ordered by definition id (`landed`): one
    Target per definition (its highest version; the lower ones superseded), and each committed
    item that cannot be placed (no definition id or no valid version) as it is. Only one
    definition's items are held at a time."""
    group: list[ItemState] = []
    group_id: int | None = None

    def target() -> Target:
        group.sort(key=lambda s: version_key(str(s.version)), reverse=True)
        assert group_id is not None
        return Target(tenant, group_id, group[0], tuple(group[1:]))

    for st in landed:
        def_id = int_or_none(st.target_definition_id)
        if def_id is None or not st.version or not is_valid_version(st.version):
            if st.status == "done":  # a skip without a version (a duplicate) has nothing to place
                yield st
            continue
        if group and def_id != group_id:
            yield target()
            group = []
        group_id = def_id
        group.append(st)
    if group:
        yield target()


def _check_identity(history: Sequence[Record], chosen: Sequence[TenantConfig], path: str) -> None:
    current = {t.name: tenant_fingerprint(t) for t in chosen}
    for started in history:
        earlier = started.get("tenants") or {}
        for name, fp in earlier.items():
            if name in current and current[name] != fp:
                raise JournalError(
                    f"{path}: tenant {name!r} pointed at a different tenant (URL or client id) when "
                    "this journal was written; its definition and version ids mean nothing here"
                )


async def activate_from_journal(
    settings: Settings,
    journal_path: str,
    tenants: Sequence[str] = (),
    *,
    dry_run: bool = False,
    stopping: anyio.Event | None = None,
) -> Report:
    """Make each definition's highest committed version active, in every selected tenant.

    The journal is folded into a workspace table a line at a time and the outcomes go there
    too: memory does not grow with the journal (the report reads them back in order). Unless
    dry_run, the journal records what was active before each switch (for `migrator rollback`);
    with a [rollout], tenants go wave by wave (run/rollout.py)."""
    store = Workspace()
    try:
        state = store.journal_state()
        history, notices = read_state(journal_path, state)
        in_journal = sorted(state.tenants())
        if tenants:
            unknown = [n for n in tenants if n not in settings.tenants]
            if unknown:
                raise MigratorError(
                    f"{settings.file}: unknown tenant {unknown[0]!r} (configured: {', '.join(sorted(settings.tenants))})"
                )
            names = list(dict.fromkeys(tenants))
        else:
            names = [t for t in in_journal if t in settings.tenants]
            notices += [
                f"{journal_path}: tenant {t!r} is in the journal but not in {settings.file}; left alone"
                for t in in_journal
                if t not in settings.tenants
            ]
        chosen = [settings.tenants[n] for n in names]
        _check_identity(history, chosen, journal_path)
        session = open_session(settings)
        try:
            clients = {t.name: ZuoraClient(t, session, settings, stopping=stopping) for t in chosen}
            async with AsyncExitStack() as stack:
                journal: Any = NullJournal()
                if not dry_run:
                    from migrator.store.journal import Journal

                    fields = {
                        "run_id": hashlib.sha256(f"{time.time()}".encode()).hexdigest()[:12],
                        "command": "activate",
                        "tenants": {t.name: tenant_fingerprint(t) for t in chosen},
                        "tool_version": __version__,
                    }
                    # Folded once already (above); the writer's own fold is thrown away.
                    journal = await stack.enter_async_context(
                        Journal.open(journal_path, fields, state=DiscardState())
                    )
                    notices += journal.notices

                async def one(name: str) -> None:
                    try:
                        await place_unresolved(clients[name], state)
                    except ZuoraError as exc:
                        log.warning(
                            "could not look up unresolved imports", tenant=name, error=str(exc)
                        )
                    plan = targets_from_journal(name, state.landed(name))
                    await _activate_tenant(clients[name], plan, dry_run, store, journal)

                async def execute(wave: Wave) -> None:
                    async with anyio.create_task_group() as tg:
                        for name in wave.tenants:
                            tg.start_soon(one, name)

                if settings.rollout is None or dry_run:
                    await execute(Wave(1, tuple(names)))
                else:
                    runner = WaveRunner(
                        settings.rollout,
                        journal=journal,
                        journal_path=journal_path,
                        clients=clients,
                        record=store.add_outcome,
                        stopping=stopping,
                        run_id=os.urandom(8).hex(),
                    )

                    def hold(wave: Wave, reason: str) -> None:
                        for name in wave.tenants:
                            for entry in targets_from_journal(name, state.landed(name)):
                                held = entry if isinstance(entry, ItemState) else entry.state
                                store.add_outcome(_out(held, "deferred", error=reason))

                    await runner.run(
                        assign_waves(settings.rollout, names),
                        execute,
                        lambda wave: wave_failures(store, wave),
                        hold,
                    )
                    notices += runner.notices
                store.flush()
                journal.finish(counts=Report(items=OutcomeLog(store)).summary())
        finally:
            await _close_session(session)
        store.flush()
    except BaseException:
        store.close()
        raise
    return Report(items=OutcomeLog(store), notices=tuple(notices))


async def place_unresolved(client: ZuoraClient, state: JournalState) -> None:
    """Give the tenant's imports that were committed without a definition id (a run that ended
    before resolving them) the definition the listing shows for their name, one listing walk for
    all of them; an import whose name is not found stays unplaced (and is reported so)."""
    tenant = client.tenant.name
    unplaced = [
        st
        for st in state.landed(tenant)
        if st.status == "done" and st.target_definition_id is None and st.name
    ]
    if not unplaced:
        return
    names = {st.name for st in unplaced}
    found: dict[str, list[dict[str, Any]]] = {}
    async for page in client.workflow_pages():
        for entry in page:
            if entry.get("name") in names:
                found.setdefault(str(entry["name"]), []).append(entry)
    for st in unplaced:
        assert st.name is not None
        chosen = pick_definition(found.get(st.name, []), int_or_none(st.extra.get("answer_id")))
        if chosen is None:
            continue
        version_id, _ = version_in_entry(chosen, str(st.version))
        state[(tenant, st.item)] = replace(
            st,
            target_definition_id=int_or_none(chosen.get("id")),
            target_version_id=st.target_version_id if version_id is None else version_id,
        )


async def _activate_tenant(
    client: ZuoraClient,
    plan: Iterator[Target | ItemState],
    dry_run: bool,
    store: Workspace,
    journal: Any,
) -> None:
    """A few workers (the tenant's max_concurrency) take the plan's entries one at a time."""
    stop: list[str] = []

    async def worker() -> None:
        for entry in plan:  # shared: each entry goes to the one worker that takes it
            if isinstance(entry, ItemState):
                store.add_outcome(
                    _out(
                        entry,
                        "failed",
                        error="the journal records no definition id or version for it",
                    )
                )
                continue
            if stop:
                store.add_outcome(_out(entry.state, "failed", error=stop[0]))
            else:
                try:
                    store.add_outcome(await _activate_one(client, entry, dry_run, journal))
                except ZuoraError as exc:
                    if isinstance(exc, AuthError):
                        stop.append(str(exc))
                    store.add_outcome(_out(entry.state, "failed", error=str(exc)))
            chosen = entry.state.version
            for st in entry.superseded:
                store.add_outcome(
                    _out(
                        st,
                        "skipped",
                        reason=f"version {chosen} of the same definition is the one to activate",
                    )
                )

    async with anyio.create_task_group() as tg:
        for _ in range(max(1, client.tenant.max_concurrency)):
            tg.start_soon(worker)


def _out(st: ItemState, status: str, **kw: Any) -> ItemOutcome:
    return ItemOutcome(
        tenant=st.tenant,
        source=st.source or st.item,
        workflow_name=st.name or "",
        status=status,
        target_workflow_id=kw.pop("target_workflow_id", int_or_none(st.target_definition_id)),
        version=st.version,
        target_version_id=kw.pop("target_version_id", int_or_none(st.target_version_id)),
        action="activate",
        **kw,
    )


async def _activate_one(
    client: ZuoraClient, target: Target, dry_run: bool, journal: Any
) -> ItemOutcome:
    st, def_id = target.state, target.definition_id
    try:
        definition = await client.get_workflow(def_id)
    except ZuoraError as exc:
        if exc.status == 404:
            return _out(st, "failed", error=f"definition {def_id} no longer exists")
        raise
    version_id = int_or_none(st.target_version_id)
    if version_id is None:  # e.g. an import recovered from an unanswered request
        # What the answer shows first (either spelling), then the versions list.
        listed = [v for v in shown_versions(definition) if str(v.get("version")) == st.version]
        for v in listed or await client.list_versions(def_id):
            if str(v.get("version")) == st.version:
                version_id = int_or_none(v.get("id"))
        if version_id is None:
            return _out(st, "failed", error=f"version {st.version} of definition {def_id} is gone")
    active = active_version(definition)
    current = int_or_none(active.get("id")) if active is not None else None
    status = str(definition.get("status") or "")
    if current == version_id and status == "Active":
        return _out(st, "skipped", target_version_id=version_id, reason="already active")
    before = f"active version {current}" if current is not None else "no active version"
    if dry_run:
        return _out(
            st,
            "planned",
            target_version_id=version_id,
            reason=f"would activate version {st.version} ({before}, definition {status or 'status unknown'})",
        )
    # Before the switch, durably: what was active, so `migrator rollback` never guesses.
    await journal.append(
        "activating",
        tenant=st.tenant,
        name=st.name or "",
        definition_id=def_id,
        version=st.version,
        previous_version_id=current,
        previous_status=status or "Inactive",
        created=False,
    )
    key = activation_key(
        tenant_identity(client.tenant),
        def_id,
        version_id,
        current,
        status,
        str(definition.get("updatedAt") or ""),
    )
    answer = await client.update_workflow(
        def_id, {"active_workflow_version_id": version_id, "status": "Active"}, idempotency_key=key
    )
    now = answer.get("active_version")
    now_id = int_or_none(now.get("id")) if isinstance(now, dict) else None
    if now_id != version_id or answer.get("status") != "Active":
        return _out(
            st,
            "failed",
            target_version_id=version_id,
            error=f"asked to activate version id {version_id}; the tenant answered active version "
            f"{now_id}, status {answer.get('status')!r}",
        )
    # The printed report lists every switch: one voice on stdout, the detail only with --debug.
    log.debug("activated", tenant=client.tenant.name, definition=def_id, version=st.version)
    return _out(st, "activated", target_version_id=version_id, reason=f"was: {before}")


# ---------------------------------------------------------------------------------------------
# Rendering and the command


def render(report: Report) -> str:
    """Counts per tenant, every switch made or planned, every failure."""
    lines = counts_table(report.items, ACTIVATE_STATUSES)
    shown = [
        i for i in report.ordered() if i.status in ("activated", "planned", "failed", "deferred")
    ]
    if shown:
        lines.append("")
    for i in shown:
        lines.append(
            f"  {i.status:<9} {i.tenant}: {i.workflow_name} version {i.version} "
            f"(definition {i.target_workflow_id}): {i.error or i.reason or ''}"
        )
    for notice in report.notices:
        lines.append(f"note: {notice}")
    lines.append(summary_line(report))
    # Names come from the journal, the tenants and the config: no control character gets out.
    return redact_text(human_lines(lines))


def summary_line(report: Report) -> str:
    """The verdict line; a dry run counts what it would switch on, not what it switched on."""
    counts = report.summary()
    verdict = "ok" if report.ok else "attention needed"
    already = sum(1 for i in report.items if i.reason == "already active")
    done = (
        f"would activate {counts.get('planned', 0)}"
        if any(i.status == "planned" for i in report.items)
        else f"activated {counts.get('activated', 0)}"
    )
    return (
        f"migrator activate: {verdict}: {done}, already active {already}, "
        f"failed {counts.get('failed', 0)}"
    )


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `migrator activate`."""
    p = sub.add_parser(
        "activate",
        help="make the versions a journal records as imported the active ones",
        **described(
            "Switch on, per definition, the highest version the journal records as imported or"
            " found identical: import everywhere first, activate afterwards. Each switch is"
            " journaled first, so `migrator rollback` can put back what was active before.",
            more="With a [rollout] table in the config, tenants are switched on wave by wave"
            " and a failing wave halts the rest: see docs/rollout.md.",
            exits={
                0: "nothing failed",
                1: "some switch failed or was left undone",
                2: "configuration or journal error",
            },
            example="migrator activate --config migrator.toml --journal run.jsonl --dry-run",
        ),
    )
    p.set_defaults(func=cmd_activate)
    _common(p)
    p.add_argument(
        "--journal", required=True, metavar="FILE", help="the journal of the migration to switch on"
    )
    p.add_argument(
        "--tenant",
        action="append",
        default=[],
        metavar="NAME",
        help="tenant to switch on (repeatable; default: every tenant in the journal)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="show what would be switched on, change nothing"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--report", metavar="FILE", help="write the JSON report here")


def cmd_activate(args: argparse.Namespace) -> int:
    """0 nothing failed, 1 something did; configuration and journal errors raise (exit 2)."""
    settings = _settings(args)

    async def go(stopping: anyio.Event) -> Report:
        return await activate_from_journal(
            settings, args.journal, args.tenant, dry_run=args.dry_run, stopping=stopping
        )

    report = run_with_signals(go)
    emit_report(args, report, render)
    return EXIT_OK if report.ok else EXIT_ITEMS
