"""`migrator verify`: does each tenant hold, as some version, exactly what a migration would send?

Per tenant and document: the payload built for that tenant, hashed, against every version there.

Like `migrate`, it keeps its working set in the run's workspace (issue 4: memory is bounded by
concurrency, not by the number of documents): the documents are streamed from it a page at a
time, calls are resolved by asking it, each tenant's definitions are written to it as they are
read, and so is every outcome, which the report then reads back in order.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import anyio.lowlevel
import structlog

from migrator.commands._common import (
    EXIT_ITEMS,
    EXIT_OK,
    _common,
    _no_cache,
    _settings,
    emit_report,
    run_with_signals,
)
from migrator.core.canonical import canonical_hash
from migrator.core.config import Settings, TenantConfig
from migrator.core.errors import InputError, MigratorError, ZuoraError
from migrator.core.logs import redact_text
from migrator.core.plan import SourceDoc, SourceIndex, TargetDefinition, resolve_in
from migrator.core.remap import prepare_for_import
from migrator.core.report import (
    GROUP_AT,
    ItemOutcome,
    Report,
    counts_rows,
    human_lines,
    unreadable_outcomes,
)
from migrator.core.versions import is_valid_version, version_key
from migrator.render.help import described
from migrator.run.inputs import read_sources
from migrator.run.migrate import _close_session, check_source_paths
from migrator.run.target import read_target
from migrator.run.tenant import _Names, source_index
from migrator.store.cache import open_cache
from migrator.store.workspace import OutcomeLog, Workspace
from migrator.zuora import ZuoraClient, open_session

log = structlog.get_logger("migrator.verify")

# verified: a version of the target definition has exactly the content the migration would send
# differs: the definition exists but no version matches · missing: no definition (or no callee)
# failed: could not be checked (unreadable source, unreachable tenant, ambiguous name)
VERIFY_STATUSES = ("verified", "differs", "missing", "failed")
HASH_PREFIX = 12


async def verify_tenants(
    settings: Settings,
    sources: Sequence[str],
    tenants: Sequence[str] = (),
    *,
    store: Workspace | None = None,
    use_cache: bool = True,
    stopping: anyio.Event | None = None,
) -> Report:
    """Compare every source document with what each selected tenant holds; one outcome each.

    The report's items are read from the workspace. One made here from `sources` stays open
    while the report is used (removed when the report is garbage-collected, or by
    `report.items.workspace.close()`) and is closed here only on error. A `store` passed in
    stays the caller's, never closed here; it must not yet hold outcomes, nor definitions of
    the chosen tenants (they would be mixed into this report).
    """
    chosen = _select(settings, tenants)
    own = store is None
    if store is None:
        check_source_paths(sources)
        store = await anyio.to_thread.run_sync(read_sources, list(sources), settings)
    try:
        return await _verify_all(settings, chosen, store, use_cache=use_cache, stopping=stopping)
    except BaseException:
        if own:
            store.close()
        raise


async def _verify_all(
    settings: Settings,
    chosen: Sequence[TenantConfig],
    store: Workspace,
    *,
    use_cache: bool,
    stopping: anyio.Event | None = None,
) -> Report:
    _check_unused(store, chosen)
    index = source_index(store)
    # Callees named only by calls may be in a tenant without being among the sources. Only the
    # documents that call others (normally few) are read for them, as `migrate` does.
    callee_names = {c.workflow_name for d in store.callers() for c in d.calls if c.workflow_name}
    wanted = _Names(lambda n: n in callee_names or store.has_name(n))
    cache = await anyio.to_thread.run_sync(lambda: open_cache(settings, enabled=use_cache))
    session = open_session(settings)
    try:

        async def one(tenant: TenantConfig) -> None:
            client = ZuoraClient(tenant, session, settings, stopping=stopping)
            # Workflows whose versions list answered 404: their documents fail, no other.
            unreadable: dict[str, str] = {}

            def note_unreadable(name: str, _id: int, why: str) -> None:
                unreadable.setdefault(name, why)

            try:
                await read_target(
                    client,
                    wanted,
                    lambda d: store.add_target(tenant.name, d),
                    on_unreadable=note_unreadable,
                    cache=cache.for_tenant(tenant) if cache is not None else None,
                )
            except (ZuoraError, InputError) as exc:
                log.error("tenant failed", tenant=tenant.name, error=str(exc))
                for doc in store.iter_docs():
                    store.add_outcome(
                        _out(
                            tenant,
                            doc,
                            "failed",
                            # The client's errors name their tenant already.
                            error=f"could not check the tenant: {exc}",
                        )
                    )
                return
            await verify_tenant(tenant, store, index, unreadable)

        async with anyio.create_task_group() as tg:
            for tenant in chosen:
                tg.start_soon(one, tenant)
    finally:
        await _close_session(session)
        if cache is not None:
            cache.close()
    for outcome in unreadable_outcomes(store.errors, [t.name for t in chosen], verified=False):
        store.add_outcome(outcome)
    store.flush()
    return Report(items=OutcomeLog(store))


def _check_unused(store: Workspace, chosen: Sequence[TenantConfig]) -> None:
    if store.outcome_count():
        raise ValueError("verify needs a workspace without outcomes: they would join its report")
    for tenant in chosen:
        if len(store.target(tenant.name)):
            raise ValueError(
                f"verify needs a workspace without tenant {tenant.name}'s definitions:"
                " it reads them itself"
            )


def _select(settings: Settings, names: Sequence[str]) -> list[TenantConfig]:
    wanted = list(names) or sorted(settings.tenants)
    unknown = [n for n in wanted if n not in settings.tenants]
    if unknown:
        raise MigratorError(
            f"{settings.file}: unknown tenant {unknown[0]!r} (configured: {', '.join(sorted(settings.tenants))})"
        )
    return [settings.tenants[n] for n in dict.fromkeys(wanted)]


async def verify_tenant(
    tenant: TenantConfig,
    store: Workspace,
    index: SourceIndex,
    unreadable: Mapping[str, str] | None = None,
) -> None:
    """One tenant whose definitions are in the workspace: judge each document, streamed from
    the workspace, and record its outcome there. `unreadable` maps the names whose versions
    could not be read to why: their documents fail, with that reason."""
    target = store.target(tenant.name)
    unreadable = unreadable or {}
    for doc in store.iter_docs():
        try:
            if doc.name in unreadable:
                why = unreadable[doc.name]
                outcome = _out(tenant, doc, "failed", error=f"could not check it: {why}")
            else:
                outcome = _judge(tenant, store, doc, target, index)
        except InputError as exc:
            outcome = _out(tenant, doc, "failed", error=str(exc))
        store.add_outcome(outcome)
        await anyio.lowlevel.checkpoint()  # the other tenants read and judge meanwhile


def _out(tenant: TenantConfig, doc: SourceDoc, status: str, **kw: Any) -> ItemOutcome:
    return ItemOutcome(
        tenant=tenant.name,
        source=doc.source,
        workflow_name=doc.name,
        status=status,
        verified=status == "verified",
        **kw,
    )


def _judge(
    tenant: TenantConfig,
    store: Workspace,
    doc: SourceDoc,
    target: Mapping[str, Sequence[TargetDefinition]],
    index: SourceIndex,
) -> ItemOutcome:
    definitions = list(target.get(doc.name, ()))
    if not definitions:
        return _out(
            tenant, doc, "missing", reason=f"no workflow named {doc.name!r} in tenant {tenant.name}"
        )
    if len(definitions) > 1:
        ids = ", ".join(str(d.id) for d in definitions)
        return _out(
            tenant,
            doc,
            "failed",
            error=f"tenant {tenant.name} has {len(definitions)} definitions named {doc.name!r} (ids {ids})",
        )
    definition = definitions[0]
    # The callee ids this tenant gives the document's Execute::WorkflowTask calls.
    call_targets: dict[int, int] = {}
    for call in doc.calls:
        if call.workflow_id and "{{" in call.workflow_id:
            continue  # Liquid: resolved at run time, sent as written
        callee = resolve_in(call, index, target)
        callee_defs = target.get(callee, ()) if callee is not None else ()
        if len(callee_defs) != 1:
            what = repr(callee) if callee else f"id {call.workflow_id}, name {call.workflow_name!r}"
            why = "is not" if not callee_defs else "is ambiguous"
            return _out(
                tenant,
                doc,
                "missing",
                target_workflow_id=definition.id,
                reason=f"task {call.task_id} calls {what}, which {why} in tenant {tenant.name}",
            )
        call_targets[call.task_id] = callee_defs[0].id
    body = store.load(doc)
    payload = prepare_for_import(
        body, call_targets=call_targets, substitutions=tenant.substitutions
    )
    digest = canonical_hash(payload)
    for v in definition.versions:
        if v.content_hash == digest:
            return _out(
                tenant,
                doc,
                "verified",
                target_workflow_id=definition.id,
                target_version_id=v.id,
                version=v.version,
                reason=f"identical to version {v.version}",
            )
    valid = [v for v in definition.versions if is_valid_version(v.version)]
    if not valid:
        return _out(
            tenant,
            doc,
            "missing",
            target_workflow_id=definition.id,
            reason=f"definition {definition.id} has no versions",
        )
    highest = max(valid, key=lambda v: version_key(v.version))
    landed = (highest.content_hash or "unreadable")[:HASH_PREFIX]
    return _out(
        tenant,
        doc,
        "differs",
        target_workflow_id=definition.id,
        target_version_id=highest.id,
        version=highest.version,
        reason=(
            f"no version of definition {definition.id} matches: highest version {highest.version} "
            f"has content hash {landed}, expected {digest[:HASH_PREFIX]}"
        ),
    )


# ---------------------------------------------------------------------------------------------
# Rendering and the command


def _totals(report: Report) -> tuple[int, int, int]:
    """(tenants, items, verified items), counted by the report (in the workspace for a run)."""
    per = report.per_tenant()
    total = sum(sum(row.values()) for row in per.values())
    return len(per), total, sum(row.get("verified", 0) for row in per.values())


def all_verified(report: Report) -> bool:
    _, total, ok = _totals(report)
    return total > 0 and ok == total


def render(report: Report) -> str:
    """Counts per tenant, then every item that is not verified."""
    lines = counts_rows(report.per_tenant(), VERIFY_STATUSES)
    unverified = [i for i in report.ordered() if i.status != "verified"]
    if unverified:
        lines += ["", "not verified:"]
    # A tenant-wide cause (credentials refused, host unreachable) is said once per tenant.
    shared: dict[tuple[str, str, str], int] = {}
    for i in unverified:
        if i.error:
            key = (i.tenant, i.status, i.error)
            shared[key] = shared.get(key, 0) + 1
    grouped = {key for key, n in shared.items() if n > GROUP_AT}
    for tenant, status, error in sorted(grouped):
        lines.append(f"  {status:<8} {tenant}: {shared[(tenant, status, error)]} items: {error}")
    for i in unverified:
        if (i.tenant, i.status, i.error or "") in grouped:
            continue
        lines.append(
            f"  {i.status:<8} {i.tenant}: {i.workflow_name or i.source}"
            f"{f' ({i.source})' if i.workflow_name else ''}: {i.error or i.reason or ''}"
        )
    tenants, total, ok = _totals(report)
    verdict = "ok" if total > 0 and ok == total else "attention needed"
    lines.append(f"migrator verify: {verdict}: {ok} of {total} verified across {tenants} tenant(s)")
    # Names come from documents and tenants: no control character gets out.
    return redact_text(human_lines(lines))


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `migrator verify`."""
    p = sub.add_parser(
        "verify",
        help="check that each tenant holds exactly what the sources would migrate",
        **described(
            "Check, per tenant and document, that some version on the tenant holds exactly"
            " what a migration of the sources would send: verified, differs, missing or failed."
            " Changes nothing.",
            exits={
                0: "there is at least one item and every item is verified",
                1: "some item differs, is missing or failed",
                2: "usage or configuration error",
            },
            example="migrator verify exports/ --config migrator.toml --report verify.json",
        ),
    )
    p.set_defaults(func=cmd_verify)
    p.add_argument(
        "sources", nargs="+", metavar="SOURCE", help="export files, directories or snapshots"
    )
    _common(p)
    p.add_argument(
        "--tenant",
        action="append",
        default=[],
        metavar="NAME",
        help="tenant to check (repeatable; default: all)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--report", metavar="FILE", help="write the JSON report here")
    _no_cache(p)


def cmd_verify(args: argparse.Namespace) -> int:
    """0 every item verified, 1 otherwise; configuration errors raise (exit 2 in `cli.main`)."""
    settings = _settings(args)

    async def go(stopping: anyio.Event) -> Report:
        return await verify_tenants(
            settings, args.sources, args.tenant, use_cache=not args.no_cache, stopping=stopping
        )

    report = run_with_signals(go)
    emit_report(args, report, render)
    return EXIT_OK if all_verified(report) else EXIT_ITEMS
