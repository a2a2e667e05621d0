"""Migrator's request pattern before issue 15, for bench_requests' "today" rows, written with
migrator's public client instead of a switch inside migrator.

What migrator did then, per tenant: every tenant's target read (listing pages, each source
name's versions list, an export per version: no content-hash cache) before any tenant sends;
then per document whose content is not on the target, its import, a `name=` lookup for the
definition a create made (unless the answer names it) and the versions list for the new version's
id; a worker per slot of the tenant's `max_concurrency`. No tenant profile is read, no journal
is written (neither sends a request).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import anyio

from migrator.core.canonical import canonical_hash
from migrator.core.config import Settings, TenantConfig
from migrator.core.document import ExportDocument
from migrator.core.payload import tenant_payload
from migrator.core.plan import TargetDefinition, int_or_none
from migrator.core.versions import choose_version
from migrator.run.context import run_clients
from migrator.run.resolve import listed_version, pick_definition
from migrator.run.target import read_target
from migrator.store.sources import discover, read_document
from migrator.zuora import ZuoraClient


@dataclass(frozen=True)
class Imported:
    tenant: str
    name: str
    definition_id: int | None
    version_id: int | None


async def migrate_as_before(
    settings: Settings, sources: Sequence[str], tenants: Sequence[str] = ()
) -> list[Imported]:
    """Migrate `sources` into `tenants` (default: every configured tenant) as migrator did before
    issue 15; what each tenant imported."""
    docs = sorted((read_document(item) for item in discover(list(sources))), key=lambda d: d.name)
    chosen = [settings.tenants[name] for name in tenants or settings.tenants]
    targets: dict[str, dict[str, TargetDefinition]] = {}
    imported: list[Imported] = []
    async with run_clients(settings, chosen) as run:

        async def read(tenant: TenantConfig) -> None:
            found = targets[tenant.name] = {}

            def keep(definition: TargetDefinition) -> None:
                found.setdefault(definition.name, definition)

            await read_target(run.clients[tenant.name], {d.name for d in docs}, keep)

        async def send(tenant: TenantConfig) -> None:
            client = run.clients[tenant.name]
            todo = iter(docs)

            async def worker() -> None:
                for doc in todo:
                    done = await _send(client, tenant, doc, targets[tenant.name].get(doc.name))
                    if done is not None:
                        imported.append(done)

            async with anyio.create_task_group() as tg:
                for _ in range(max(1, tenant.max_concurrency)):
                    tg.start_soon(worker)

        for phase in (read, send):  # every tenant planned before any sends
            async with anyio.create_task_group() as tg:
                for tenant in chosen:
                    tg.start_soon(phase, tenant)
    return imported


async def _send(
    client: ZuoraClient, tenant: TenantConfig, doc: ExportDocument, target: TargetDefinition | None
) -> Imported | None:
    payload = tenant_payload(doc, {}, tenant)
    digest = canonical_hash(payload)
    if target is not None and any(v.content_hash == digest for v in target.versions):
        return None  # identical content is on the target already
    version = choose_version(doc.version, target.highest_version if target else None)
    key = os.urandom(16).hex()
    if target is not None:
        definition_id: int | None = target.id
        await client.import_version(
            target.id, payload, version=version, activate=False, idempotency_key=key
        )
    else:
        answer = await client.import_workflow(
            payload, version=version, activate=False, idempotency_key=key
        )
        definition_id = answer.id if answer.kind == "definition" else None
        if definition_id is None:  # the definition it made, looked up by name at once
            named = [
                e for e in await client.list_workflows(name=doc.name) if e.get("name") == doc.name
            ]
            entry = pick_definition(named, answer.id)
            definition_id = int_or_none(entry.get("id")) if entry else None
    version_id = None
    if definition_id is not None:  # the new version's id, from the versions list
        version_id, _ = await listed_version(client, definition_id, version)
    return Imported(tenant.name, doc.name, definition_id, version_id)
