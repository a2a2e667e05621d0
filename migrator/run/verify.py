"""The verify pipeline (`migrator verify`): does each tenant hold, as some version, exactly what a migration would send?

Per tenant and document: the payload built for that tenant, hashed, against every version there.

Like `migrate`, it keeps its working set in the run's workspace (issue 4: memory is bounded by
concurrency, not by the number of documents): the documents are streamed from it a page at a
time, calls are resolved by asking it, each tenant's definitions are written to it as they are
read, and so is every outcome, which the report then reads back in order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

import anyio
import anyio.lowlevel
import structlog

from migrator.core.canonical import canonical_hash
from migrator.core.config import Settings, TenantConfig
from migrator.core.errors import InputError, ZuoraError
from migrator.core.payload import callee_ids, tenant_payload
from migrator.core.plan import SourceDoc, SourceIndex, TargetDefinition
from migrator.core.report import (
    ItemOutcome,
    Report,
    unreadable_outcomes,
)
from migrator.core.versions import is_valid_version, version_key
from migrator.run.context import choose_tenants, run_clients
from migrator.run.inputs import read_sources
from migrator.run.migrate import check_source_paths
from migrator.run.target import read_target
from migrator.run.tenant import NameSet, source_index
from migrator.store.cache import open_cache
from migrator.store.workspace import OutcomeLog, Workspace

log = structlog.get_logger("migrator.verify")


class VerifyStatus(StrEnum):
    """What verify says of one document in one tenant (the report's and the table's words)."""

    VERIFIED = "verified"  # a version of the target definition has exactly what would be sent
    DIFFERS = "differs"  # the definition exists but no version matches
    MISSING = "missing"  # no definition (or no callee)
    FAILED = "failed"  # could not be checked (unreadable source, unreachable tenant, ambiguous)


VERIFY_STATUSES = tuple(s.value for s in VerifyStatus)
VERIFY_FAILURES = tuple(s.value for s in VerifyStatus if s is not VerifyStatus.VERIFIED)
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
    chosen = choose_tenants(settings, tenants)
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
    wanted = NameSet(lambda n: n in callee_names or store.has_name(n))
    cache = await anyio.to_thread.run_sync(lambda: open_cache(settings, enabled=use_cache))
    notices: list[str] = []
    try:

        async def one(tenant: TenantConfig) -> None:
            client = clients[tenant.name]
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
                    # No versions list (issue 23): judged from the listing's versions, said once.
                    on_listed=lambda name, _id, note: notices.append(
                        f"{tenant.name}: workflow {name!r}: {note}"
                    ),
                    cache=cache.for_tenant(tenant) if cache is not None else None,
                )
            except (ZuoraError, InputError) as exc:
                # stdout (the report) says it, once per tenant; the log line only with --debug.
                log.debug("tenant failed", tenant=tenant.name, error=str(exc))
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

        async with (
            run_clients(settings, chosen, stopping) as clients,
            anyio.create_task_group() as tg,
        ):
            for tenant in chosen:
                tg.start_soon(one, tenant)
    finally:
        if cache is not None:
            cache.close()
    for outcome in unreadable_outcomes(store.errors, [t.name for t in chosen], verified=False):
        store.add_outcome(outcome)
    store.flush()
    return verify_report(OutcomeLog(store), sorted(notices))


def _check_unused(store: Workspace, chosen: Sequence[TenantConfig]) -> None:
    if store.outcome_count():
        raise ValueError("verify needs a workspace without outcomes: they would join its report")
    for tenant in chosen:
        if len(store.target(tenant.name)):
            raise ValueError(
                f"verify needs a workspace without tenant {tenant.name}'s definitions:"
                " it reads them itself"
            )


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
    call_targets = callee_ids(doc, index, target, tenant.name)
    if isinstance(call_targets, str):
        return _out(tenant, doc, "missing", target_workflow_id=definition.id, reason=call_targets)
    payload = tenant_payload(store.load(doc), call_targets, tenant)
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


def verify_report(items: Sequence[ItemOutcome], notices: Sequence[str] = ()) -> Report:
    """A report in verify's words: its statuses, and ok only when every item is verified;
    `notices`: what it could not see (a tenant without a versions list)."""
    return Report(
        items=items, statuses=VERIFY_STATUSES, failures=VERIFY_FAILURES, notices=tuple(notices)
    )


def all_verified(report: Report) -> bool:
    """Every item of the report verified (and at least one item)."""
    per = report.per_tenant()
    total = sum(sum(row.values()) for row in per.values())
    return total > 0 and total == sum(row.get("verified", 0) for row in per.values())
