"""Reading the sources and the tenants for `migrator diff`, and judging each (tenant, workflow)
cell with migrator.core.drift: the async half of the drift matrix (issue 17).

Memory follows the project's rule (bounded by concurrency, not by the number of documents): the
sources' summaries and each tenant's definitions live in the run's workspace, bodies are loaded
and exported one per worker and dropped once their cell is judged. Only the cells themselves (the
report) stay in memory; a drifted cell keeps its two task graphs only when the HTML page is asked
for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

import anyio
import anyio.abc
import structlog

from migrator.core.canonical import canonical_hash
from migrator.core.config import Settings, TenantConfig
from migrator.core.document import validate_document
from migrator.core.drift import (
    EXTRA,
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
from migrator.core.errors import AuthError, InputError, MigratorError, ZuoraError, single_failure
from migrator.core.listing import active_version
from migrator.core.payload import callee_ids, tenant_payload
from migrator.core.plan import (
    SourceDoc,
    SourceIndex,
    TargetDefinition,
    TargetVersion,
    int_or_none,
)
from migrator.core.references import TenantSchema, check, missing_lines
from migrator.run.context import choose_tenants, unknown_tenant
from migrator.run.inputs import read_live_sources, read_sources
from migrator.run.references import read_schema
from migrator.run.target import definition_versions, for_each_definition, listed_id
from migrator.run.tenant import source_index
from migrator.store.cache import TenantCache, open_cache
from migrator.store.profiles import load_profile
from migrator.store.workspace import Workspace
from migrator.zuora import ZuoraClient, close_session, open_session

log = structlog.get_logger("migrator.diff")


class HashCache(Protocol):
    """The content-hash cache as one tenant sees it (the request-efficiency work's
    `store/cache.TenantCache`): a version's canonical hash as it stood at `updated_at`."""

    def get(self, definition_id: int, version_id: int, updated_at: str) -> str | None: ...

    def put(
        self, definition_id: int, version_id: int, updated_at: str, content_hash: str
    ) -> None: ...


CacheFor = Callable[[TenantConfig], "HashCache | None"]
CacheKeys = dict[int, tuple[int, str]]  # definition id → (compared version id, its updatedAt)


def select_tenants(
    settings: Settings, names: Sequence[str], from_tenant: str | None = None
) -> list[TenantConfig]:
    """The tenants to compare, in the order asked for (default: every configured one but the
    source tenant); an unknown name is a usage error."""
    if from_tenant is not None and from_tenant not in settings.tenants:
        raise unknown_tenant(settings, from_tenant, what="source tenant")
    chosen = [t for t in choose_tenants(settings, names) if t.name != from_tenant]
    if not chosen:
        raise MigratorError(
            f"diff: no tenant to compare with {from_tenant!r}: select another with --tenant"
        )
    return chosen


async def diff_cached(
    settings: Settings,
    sources: Sequence[str],
    tenants: Sequence[str] = (),
    *,
    use_cache: bool = True,
    **kwargs: Any,
) -> DriftReport:
    """`diff_tenants` with the content-hash cache open (unless `use_cache` is off): a version the
    cache knows to hold the source's content is in sync without an export."""
    cache = await anyio.to_thread.run_sync(lambda: open_cache(settings, enabled=use_cache))
    try:
        return await diff_tenants(
            settings,
            sources,
            tenants,
            cache_for=cache.for_tenant if cache is not None else None,
            **kwargs,
        )
    finally:
        if cache is not None:
            cache.close()


async def diff_tenants(
    settings: Settings,
    sources: Sequence[str],
    tenants: Sequence[str] = (),
    *,
    from_tenant: str | None = None,
    keep_graphs: bool = False,
    stopping: anyio.Event | None = None,
    cache_for: CacheFor | None = None,
) -> DriftReport:
    """The drift matrix of `sources` (or the active versions of `from_tenant`) against every
    selected tenant. A tenant that cannot be read fails its own cells; the rest goes on.
    `keep_graphs` keeps the task graphs of drifted cells (for the HTML page); `cache_for` gives
    each tenant's content-hash cache, so that a version known to match is not exported."""
    chosen = select_tenants(settings, tenants, from_tenant)
    session = open_session(settings)
    try:
        if from_tenant is not None:
            source_client = ZuoraClient(
                settings.tenants[from_tenant], session, settings, stopping=stopping
            )
            try:
                store = await read_live_sources(source_client, settings)
            except ZuoraError as exc:
                raise MigratorError(
                    f"source tenant {from_tenant} could not be read: {exc}"
                ) from None
        else:
            store = await anyio.to_thread.run_sync(read_sources, list(sources), settings)
        try:
            if not store.count() and not store.errors:
                where = f"tenant {from_tenant}" if from_tenant else ", ".join(sources)
                raise MigratorError(f"diff: no workflow documents in {where}: nothing to compare")
            columns = await _diff_all(
                settings, chosen, store, session, keep_graphs, stopping, cache_for
            )
            failed = tuple(
                SourceFailure(getattr(err, "source", "") or "", str(err)) for err in store.errors
            )
        finally:
            store.close()
    finally:
        await close_session(session)
    return DriftReport(tuple(columns), failed)


async def _diff_all(
    settings: Settings,
    chosen: Sequence[TenantConfig],
    store: Workspace,
    session: Any,
    keep_graphs: bool,
    stopping: anyio.Event | None,
    cache_for: CacheFor | None,
) -> list[TenantDrift]:
    index = source_index(store)
    columns: dict[str, TenantDrift] = {}

    async def one(tenant: TenantConfig) -> None:
        client = ZuoraClient(
            tenant, session, settings, stopping=stopping, profile=load_profile(settings, tenant)
        )
        cache = cache_for(tenant) if cache_for is not None else None
        try:
            notes: dict[int, str] = {}
            keys = await read_tenant(client, store, cache, notes)
            column = await diff_tenant(
                tenant, client, store, index, keep_graphs, cache=cache, keys=keys, notes=notes
            )
            if settings.reference_check != "off":
                own = cache if isinstance(cache, TenantCache) else None
                schema = await read_schema(client, store.all_references, own)
                column = _with_references(column, store, schema)
            columns[tenant.name] = column
        except (ZuoraError, InputError) as exc:
            # stdout (the report) says it, once per tenant; the log line only with --debug.
            log.debug("tenant failed", tenant=tenant.name, error=str(exc))
            # The client's errors already start with the tenant's name: say it once.
            text = str(exc).removeprefix(f"tenant {tenant.name}: ")
            reason = f"could not read tenant {tenant.name}: {text}"
            columns[tenant.name] = failed_tenant(tenant.name, list(store.names()), reason)

    with single_failure():
        async with anyio.create_task_group() as tg:
            for tenant in chosen:
                tg.start_soon(one, tenant)
    return [columns[t.name] for t in chosen]


async def read_tenant(
    client: ZuoraClient,
    store: Workspace,
    cache: HashCache | None = None,
    notes: dict[int, str] | None = None,
) -> CacheKeys:
    """Every definition of the tenant, with its versions, into the workspace: the listing a page
    at a time, one version listing per definition (extras need theirs too). No export: the
    compared version of a source name gets its content hash from the cache when it knows it.
    Returns, for those, the cache key of the compared version, to fill the cache after an
    export (as many entries as source names: the order of the report itself). A definition
    whose versions list answers 404 is read from its listing entry; `notes` then says, by
    definition id, what could not be seen."""
    keys: CacheKeys = {}

    async def load(entry: Mapping[str, Any]) -> None:
        name = entry.get("name")
        if not isinstance(name, str):
            return
        # An entry without an integer id fails this tenant's cells with one line (issue 21 #5).
        def_id = listed_id(entry, name, client.tenant.name)
        # No versions list on this tenant (issue 23 #5): what the listing shows is enough to
        # compare the running version; the note says what was not seen.
        listed, note = await definition_versions(client, def_id, entry)
        if note is not None and notes is not None:
            notes[def_id] = note
        active = active_version(entry)
        definition = TargetDefinition(
            id=def_id,
            name=name,
            versions=tuple(
                TargetVersion(int_or_none(v.get("id")), str(v.get("version") or "")) for v in listed
            ),
            active_version_id=int_or_none(active.get("id")) if active is not None else None,
        )
        compared = compared_version(definition)
        if cache is not None and compared is not None and compared.id is not None:
            updated = next(
                (v.get("updatedAt") for v in listed if int_or_none(v.get("id")) == compared.id),
                None,
            )
            if isinstance(updated, str) and store.has_name(name):
                keys[def_id] = (compared.id, updated)
                known = cache.get(def_id, compared.id, updated)
                if known is not None:
                    definition = replace(
                        definition,
                        versions=tuple(
                            replace(v, content_hash=known) if v.id == compared.id else v
                            for v in definition.versions
                        ),
                    )
        store.add_target(client.tenant.name, definition)

    await for_each_definition(client, load)
    return keys


async def diff_tenant(
    tenant: TenantConfig,
    client: ZuoraClient,
    store: Workspace,
    index: SourceIndex,
    keep_graphs: bool = False,
    *,
    cache: HashCache | None = None,
    keys: CacheKeys | None = None,
    notes: Mapping[int, str] | None = None,
) -> TenantDrift:
    """One tenant whose definitions are in the workspace: every source name judged by a pool of
    `max_concurrency` workers (one body and one export each at a time), then its extras. A cell
    of a definition in `notes` (read without its versions list) carries that note as its reason."""
    target = store.target(tenant.name)
    cells: dict[str, WorkflowDrift] = {}
    send: anyio.abc.ObjectSendStream[str]
    send, receive = anyio.create_memory_object_stream[str](0)

    async def worker(stream: anyio.abc.ObjectReceiveStream[str]) -> None:
        async with stream:
            async for name in stream:
                cell = await _judge(tenant, client, store, index, target, name, cache, keys or {})
                note = (notes or {}).get(int_or_none(cell.target_workflow_id) or -1)
                if note is not None and cell.reason is None:
                    cell = replace(cell, reason=note)
                cells[name] = cell if keep_graphs else replace(cell, comparison=None)

    with single_failure():
        async with anyio.create_task_group() as tg:
            with receive:
                for _ in range(max(1, tenant.max_concurrency)):
                    tg.start_soon(worker, receive.clone())
            async with send:
                for name in store.names():
                    await send.send(name)
    extras: dict[str, HeldWorkflow | Unreadable] = {}
    for name in target:
        if not store.has_name(name):
            extras[name] = _held_without_body(target[name])
    ordered = [cells[name] for name in sorted(cells)]
    return TenantDrift(tenant.name, (*ordered, *compare_tenant(tenant.name, {}, extras).workflows))


def _with_references(column: TenantDrift, store: Workspace, schema: TenantSchema) -> TenantDrift:
    """Each source cell with what its document names that the tenant lacks (a migration would
    block it there), judged as `migrate` judges it."""
    cells = []
    for cell in column.workflows:
        if cell.status != EXTRA and store.has_name(cell.name):
            doc = latest_by_name(store.iter_named(cell.name))[cell.name]
            refs = store.references_of([doc.key]).get(doc.key, [])
            lines = tuple(missing_lines(check(refs, schema), column.tenant))
            if lines:
                cell = replace(cell, references=lines)
        cells.append(cell)
    return replace(column, workflows=tuple(cells))


def _held_without_body(definitions: Sequence[TargetDefinition]) -> HeldWorkflow | Unreadable:
    if len(definitions) > 1:
        return _ambiguous(definitions)
    version = compared_version(definitions[0])
    return HeldWorkflow(definitions[0].id, version.version if version else None)


def _ambiguous(definitions: Sequence[TargetDefinition]) -> Unreadable:
    ids = ", ".join(str(d.id) for d in definitions)
    return Unreadable(
        f"{len(definitions)} definitions named {definitions[0].name!r} (ids {ids}): ambiguous"
    )


async def _judge(
    tenant: TenantConfig,
    client: ZuoraClient,
    store: Workspace,
    index: SourceIndex,
    target: Mapping[str, Sequence[TargetDefinition]],
    name: str,
    cache: HashCache | None = None,
    keys: CacheKeys | None = None,
) -> WorkflowDrift:
    """One cell: the name's latest source, as it would be sent to this tenant, against the
    version the tenant runs."""
    definitions = list(target.get(name, ()))
    if not definitions:
        return compare_pair(name, Unreadable("not read"), None)
    if len(definitions) > 1:
        return compare_pair(name, Unreadable("not read"), _ambiguous(definitions))
    definition = definitions[0]
    version = compared_version(definition)
    if version is None:
        # Nothing the tenant could run: a migration would give it its first version.
        return WorkflowDrift(
            name,
            MISSING,
            target_workflow_id=definition.id,
            reason=f"definition {definition.id} has no versions",
        )
    doc = latest_by_name(store.iter_named(name))[name]
    source = _payload(tenant, store, index, target, doc)
    held: HeldWorkflow | Unreadable
    if needs_export(source, version.content_hash) and not isinstance(source, Unreadable):
        held = await _export(tenant, client, definition, version)
        key = (keys or {}).get(definition.id)
        if cache is not None and key is not None and isinstance(held, HeldWorkflow) and held.data:
            cache.put(definition.id, key[0], key[1], canonical_hash(held.data))
    else:
        held = HeldWorkflow(definition.id, version.version, content_hash=version.content_hash)
    return compare_pair(name, source, held)


async def _export(
    tenant: TenantConfig, client: ZuoraClient, definition: TargetDefinition, version: TargetVersion
) -> HeldWorkflow | Unreadable:
    """The tenant's compared version, exported and checked to be a workflow document."""
    where = f"tenant {tenant.name}: workflow {definition.id} version {version.version}"
    try:
        data = await client.export_workflow(definition.id, version=version.version)
    except AuthError:
        raise  # the tenant's credentials: the whole tenant fails, once
    except ZuoraError as exc:
        return Unreadable(f"exporting version {version.version}: {exc}")
    try:
        validate_document(data, where)
    except InputError as exc:
        return Unreadable(str(exc))
    return HeldWorkflow(definition.id, version.version, data=data)


def _payload(
    tenant: TenantConfig,
    store: Workspace,
    index: SourceIndex,
    target: Mapping[str, Sequence[TargetDefinition]],
    doc: SourceDoc,
) -> dict[str, Any] | Unreadable:
    """What a migration would send this tenant for `doc` (as `verify` builds it), or why not."""
    call_targets = callee_ids(doc, index, target, tenant.name)
    if isinstance(call_targets, str):
        return Unreadable(call_targets)
    try:
        body = store.load(doc)
    except InputError as exc:
        return Unreadable(str(exc))
    return tenant_payload(body, call_targets, tenant)
