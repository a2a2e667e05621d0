"""The async pipeline: sources → per-tenant target state → plan → workers → journal → report.

The only module that knows the order of things. Each tenant runs in its own task and records its own
failures; only fatal errors (the journal cannot be written) stop the whole run.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any

import anyio
import structlog

from migrator.core.config import Settings, TenantConfig
from migrator.core.errors import (
    AuthError,
    InputError,
    MigratorError,
    PlanError,
    ZuoraError,
    single_failure,
)
from migrator.core.plan import Action
from migrator.core.report import ItemOutcome, Report, unreadable_outcomes
from migrator.core.rollout import check_smoke_sources, wave_number
from migrator.run.context import choose_tenants, run_clients, run_started_fields, unknown_tenant
from migrator.run.execute import TenantExecution
from migrator.run.history import (
    NullJournal,
    ReadOnlyJournal,
    carry_over,
    check_journal_matches,
    legacy_rekeys,
)
from migrator.run.inputs import read_live_sources, read_sources
from migrator.run.options import MigrateOptions, Progress
from migrator.run.planning import TenantPlanning, linked_names
from migrator.run.rollout import needs_journal, roll_out_runs
from migrator.run.tenant import RunParts, source_index, tenant_identity
from migrator.store.cache import open_cache
from migrator.store.planfile import PlanRecords, check_saved_plan, load_plan_file
from migrator.store.profiles import load_profile
from migrator.store.workspace import OutcomeLog, Workspace
from migrator.zuora import ZuoraClient

log = structlog.get_logger("migrator.engine")


class TenantRun(TenantPlanning, TenantExecution):
    """Everything one tenant's migration needs while it runs: plan it (run.planning), execute the
    plan (run.execute), settle an earlier run's unanswered import (run.recovery), switch on and
    check what it imported (run.activation), on the state of run.tenant."""


def select_tenants(settings: Settings, options: MigrateOptions) -> list[TenantConfig]:
    chosen = [t for t in choose_tenants(settings, options.tenants) if t.name != options.from_tenant]
    if options.shard is not None:
        index, count = options.shard
        chosen = [t for t in chosen if shard_of(t.name, count) == index]
    if settings.rollout is not None:
        # Tenants start (and get their OAuth tokens, minted at the per-IP pace) in the order
        # they will work: the first wave's first.
        rollout = settings.rollout
        chosen.sort(key=lambda t: (wave_number(rollout, t.name), t.name))
    return chosen


def check_source_paths(paths: Sequence[str]) -> None:
    """Refuse a source path that does not exist before any tenant is contacted: a typo in a
    path is a usage mistake, not one failed item per tenant."""
    for path in paths:
        try:
            os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            raise MigratorError(f"{path}: no such file or directory") from None
        except OSError:
            pass  # unreadable: reading it reports the reason as one failed item


def shard_of(tenant: str, count: int) -> int:
    """Deterministic 1-based shard of a tenant: the same on every host, whatever the order."""
    return int(hashlib.sha256(tenant.encode()).hexdigest(), 16) % count + 1


def inputs_fingerprint(
    store: Workspace, tenants: Sequence[TenantConfig], options: MigrateOptions
) -> str:
    h = hashlib.sha256()
    for key in store.sorted_keys():
        h.update(key.encode())
    for t in tenants:
        h.update(tenant_identity(t).encode())
    h.update(options.activation.encode())
    return h.hexdigest()


async def migrate(
    settings: Settings,
    options: MigrateOptions,
    *,
    progress: Progress | None = None,
    stopping: anyio.Event | None = None,
    journal_factory: Callable[..., Any] | None = None,
    aborting: anyio.Event | None = None,
) -> Report:
    """Run a migration (or a dry run) and return what happened, item by item.

    The report's items are read from the run's workspace (a temporary file, removed when the
    report is garbage-collected or `report.items.workspace.close()` is called).

    `stopping` set: take no new work, finish what is in flight. `aborting` set (a second Ctrl-C):
    cancel what is in flight too; every item not decided yet is deferred, and the report is
    still returned (the journal resolves an unanswered import on the next run).
    """
    progress = progress or Progress()
    stopping = stopping or anyio.Event()
    needs_journal(settings.rollout, options.journal, options.dry_run)
    tenants = select_tenants(settings, options)
    if not options.from_tenant:
        check_source_paths(options.sources)
    if options.from_tenant and not tenants and options.shard is None:
        raise MigratorError(
            f"--from-tenant {options.from_tenant}: it is also the only target tenant, so there is "
            "nothing to migrate to (name the targets with --tenant)"
        )
    notices: list[str] = []
    async with AsyncExitStack() as stack:
        session = (await stack.enter_async_context(run_clients(settings))).session
        if options.from_tenant:
            if options.from_tenant not in settings.tenants:
                raise unknown_tenant(settings, options.from_tenant, what="source tenant")
            source_client = ZuoraClient(
                settings.tenants[options.from_tenant], session, settings, stopping=stopping
            )
            store = await read_live_sources(source_client, settings)
        else:
            store = await anyio.to_thread.run_sync(read_sources, list(options.sources), settings)
        if store.count() == 0 and not store.errors:
            store.close()
            where = (
                f"source tenant {options.from_tenant} has no workflows"
                if options.from_tenant
                else f"{', '.join(options.sources) or 'no SOURCE given'}: no workflow documents "
                "(*.json, *.json.gz) found"
            )
            raise MigratorError(f"{where}; nothing to migrate")
        try:
            return await _migrate(
                settings,
                options,
                tenants,
                store,
                stack,
                session,
                progress,
                stopping,
                notices,
                journal_factory,
                aborting or anyio.Event(),
            )
        except BaseException:
            store.close()
            raise
    raise AssertionError("unreachable")  # pragma: no cover


async def _migrate(
    settings: Settings,
    options: MigrateOptions,
    tenants: list[TenantConfig],
    store: Workspace,
    stack: AsyncExitStack,
    session: Any,
    progress: Progress,
    stopping: anyio.Event,
    notices: list[str],
    journal_factory: Callable[..., Any] | None,
    aborting: anyio.Event,
) -> Report:
    # A plan file that cannot be read stops the run before the journal records it.
    saved = load_plan_file(options.plan_file) if options.plan_file else None
    if settings.rollout is not None:
        check_smoke_sources(settings.rollout, store.has_name, settings.file)
    journal: Any = NullJournal()
    if options.journal and options.dry_run:
        journal = ReadOnlyJournal(options.journal, store.journal_state())
        notices.extend(journal.notices)
        await carry_over(journal, await legacy_rekeys(journal.state, tenants, store), write=False)
    elif options.journal:
        from migrator.store.journal import Journal

        run_fields = run_started_fields(
            tenants, inputs_hash=inputs_fingerprint(store, tenants, options)
        )
        # Refuse before this run appends its run_started: a refused run leaves no trace
        # (its tenants would otherwise make every later run with the right config refuse).
        path = options.journal
        # The journal is folded into the workspace, not into a dict of every item it names.
        state = store.journal_state()
        earlier = await anyio.to_thread.run_sync(
            lambda: ReadOnlyJournal(path, state) if os.path.exists(path) else None
        )
        if earlier is not None:
            # Items an earlier release named by another key: matched in memory for the check...
            rekeys = await legacy_rekeys(earlier.state, tenants, store)
            await carry_over(earlier, rekeys, write=False)
            check_journal_matches(earlier, tenants, store, path)
        state.clear()
        factory = journal_factory or Journal.open
        journal = await stack.enter_async_context(factory(options.journal, run_fields, state=state))
        # ... and carried over for good once the journal is ours (read again: it may have moved).
        rekeys = await legacy_rekeys(journal.state, tenants, store)
        await carry_over(journal, rekeys, write=True)
        check_journal_matches(journal, tenants, store, options.journal)
        notices.extend(getattr(journal, "notices", []) or [])
    cache = await anyio.to_thread.run_sync(
        lambda: open_cache(settings, enabled=options.use_cache and not options.legacy)
    )
    if cache is not None:
        stack.callback(cache.close)
    runs: dict[str, TenantRun] = {}
    index = source_index(store)
    parts = RunParts(store, journal, options, settings, stopping, index, linked_names(store, index))

    def tenant_failed(run: TenantRun, exc: MigratorError) -> None:
        # The tenant as a whole cannot be worked (credentials, unreachable, changed since
        # planning): every item not yet decided gets that one reason; other tenants go on.
        permanent = isinstance(exc, (AuthError, PlanError)) or exc.__class__ is InputError
        undecided = store.undecided(run.tenant.name) if run.decided else store.iter_docs()
        for doc in undecided:
            store.add_outcome(
                ItemOutcome(
                    tenant=run.tenant.name,
                    source=doc.source,
                    workflow_name=doc.name,
                    status="failed" if permanent else "deferred",
                    error=str(exc),
                )
            )
        run.progress.phase = "failed"
        run.failed = True
        # stdout (the report) says it, once per tenant; the log line only with --debug.
        log.debug("tenant failed", tenant=run.tenant.name, error=str(exc))

    async def plan_one(tenant: TenantConfig) -> None:
        profile = load_profile(settings, tenant)
        client = ZuoraClient(tenant, session, settings, stopping=stopping, profile=profile)
        progress.clients[tenant.name] = client
        run = TenantRun(
            tenant,
            client,
            progress.tenant(tenant.name),
            parts,
            profile=profile,
            cache=cache.for_tenant(tenant) if cache is not None else None,
        )
        runs[tenant.name] = run
        try:
            await run.build_plan()
            if saved is not None:
                check_saved_plan(saved, run)
        except (ZuoraError, InputError, PlanError) as exc:
            tenant_failed(run, exc)

    async def execute_one(run: TenantRun) -> None:
        try:
            await run.execute()
        except (ZuoraError, InputError) as exc:
            tenant_failed(run, exc)

    async def record_planned(name: str, run: TenantRun) -> None:
        # What the tenant is about to send, so that `migrator status` can count what a killed
        # run never reached as pending. A record per thousand items keeps every line small.
        if not run.planned or run.failed:
            return
        keys = store.planned_keys(name, (Action.CREATE.value, Action.NEW_VERSION.value))
        chunk = list(itertools.islice(keys, PLANNED_PER_RECORD))
        while True:  # at least one record, even an empty one
            await journal.append("planned", tenant=name, items=chunk)
            chunk = list(itertools.islice(keys, PLANNED_PER_RECORD))
            if not chunk:
                break

    async def plan_and_execute(tenant: TenantConfig) -> None:
        await plan_one(tenant)
        run = runs[tenant.name]
        if run.failed or not run.planned:
            return
        if options.dry_run:
            notices.extend(run.problems)
        else:
            await record_planned(tenant.name, run)
        await execute_one(run)

    async def work() -> None:
        if not options.strict and not options.legacy and settings.rollout is None:
            # Each tenant needs only its own plan: it executes as soon as that is ready instead
            # of waiting for the slowest tenant's (tokens are minted in the order tenants start).
            with single_failure():
                async with anyio.create_task_group() as tg:
                    for tenant in tenants:
                        tg.start_soon(plan_and_execute, tenant)
            return
        # Phase 1: every tenant's plan, so that every blocking problem is known before anything
        # is written; with --strict, one problem anywhere means nothing is written anywhere; a
        # rollout's waves are assigned over every planned tenant.
        with single_failure():
            async with anyio.create_task_group() as tg:
                for tenant in tenants:
                    tg.start_soon(plan_one, tenant)
        problems = [p for run in runs.values() if run.planned for p in run.problems]
        hold = options.strict and bool(problems) and not options.dry_run
        if hold:
            notices.append(
                f"--strict: nothing was written because of {len(problems)} blocking problem(s): "
                + "; ".join(problems)
            )
        for run in runs.values():
            if run.planned and run.problems and options.dry_run:
                notices.extend(run.problems)
        if not hold and not options.dry_run:
            for name, run in sorted(runs.items()):
                await record_planned(name, run)
        # Phase 2: execute (a dry run only records what it would do); a rollout goes wave by wave.
        if settings.rollout is not None and not hold and not options.dry_run:
            assert options.journal is not None
            notices.extend(
                await roll_out_runs(
                    settings.rollout,
                    runs,
                    execute_one,
                    store=store,
                    journal=journal,
                    journal_path=options.journal,
                    progress=progress,
                    stopping=stopping,
                    shard=options.shard,
                )
            )
            return
        with single_failure():
            async with anyio.create_task_group() as tg:
                for run in runs.values():
                    if run.failed:
                        continue
                    if hold:
                        run.hold("not sent: --strict and the plan has blocking problems")
                        continue
                    tg.start_soon(execute_one, run)

    cut_short = await _unless_aborted(aborting, work)
    if cut_short:
        # Stopped at once: what was not decided is left for the next run, and said so.
        for tenant in tenants:
            for doc in store.undecided(tenant.name):
                store.add_outcome(
                    ItemOutcome(
                        tenant=tenant.name,
                        source=doc.source,
                        workflow_name=doc.name,
                        status="deferred",
                        error="not finished: the run was stopped at once; running again resumes",
                    )
                )
    for run in runs.values():
        notices.extend(run.notes)
    plans = PlanRecords(
        {name: run for name, run in sorted(runs.items()) if run.planned and not run.failed}
    )
    for outcome in unreadable_outcomes(store.errors, [t.name for t in tenants]):
        store.add_outcome(outcome)
    store.flush()
    report = Report(
        items=OutcomeLog(store),
        notices=tuple(notices),
        interrupted=stopping.is_set() or cut_short,
        plans=plans,
    )
    journal.finish(counts=report.summary(), interrupted=report.interrupted)
    return report


PLANNED_PER_RECORD = 1000


async def _unless_aborted(aborting: anyio.Event, fn: Callable[[], Awaitable[None]]) -> bool:
    """Run `fn`, cancelled at once when `aborting` is set; True when it was cut short."""
    with anyio.CancelScope() as scope, single_failure():
        async with anyio.create_task_group() as watcher:

            async def cancel_on_abort() -> None:
                await aborting.wait()
                scope.cancel()

            watcher.start_soon(cancel_on_abort)
            await fn()
            watcher.cancel_scope.cancel()
    return scope.cancel_called
