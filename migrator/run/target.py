"""A tenant's definitions as planning and verify need them: the workflow listing read a page at a
time, each wanted definition's versions (and their content hashes) read by a few workers, handed
to a sink as they arrive so that memory does not grow with the size of the tenant; and the
fingerprint of what was read (`migrate --plan` checks a tenant has not changed since)."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Container, Iterable, Mapping, Sequence
from typing import Any

import anyio
import anyio.abc
import orjson

from migrator.core.canonical import WORKFLOW_DEFINITION, canonical_hash
from migrator.core.errors import ZuoraError, single_failure
from migrator.core.listing import active_version, shown_versions, unseen_versions_note
from migrator.core.plan import TargetDefinition, TargetVersion, int_or_none
from migrator.store.cache import TenantCache
from migrator.store.workspace_views import TargetView
from migrator.zuora import ZuoraClient


async def read_target(
    client: ZuoraClient,
    names: Container[str],
    sink: Callable[[TargetDefinition], None],
    *,
    hash_names: Container[str] | None = None,
    on_unreadable: Callable[[str, int, str], None] | None = None,
    on_listed: Callable[[str, int, str], None] | None = None,
    cache: TenantCache | None = None,
    shapes: set[bool] | None = None,
    confirm: Callable[[], Iterable[str]] | None = None,
) -> None:
    """Hand `sink` each of the tenant's definitions whose name is in `names`, with its versions'
    hashes, as they are read: the listing is streamed a page at a time and a few workers read
    versions, so memory does not grow with the size of the tenant.

    Hashes need one export per version, so they are fetched only for `hash_names` (default:
    every name): a name whose documents the journal already settled needs none. A version the
    content-hash `cache` knows as it stands (same id, same `updatedAt`) is not exported; one that
    is exported goes into the cache. `shapes` collects whether each export read carried a
    `workflow_definition` block.

    `confirm` (for a tenant whose listing order is not stable between requests, so that a walk
    over its pages may miss a definition): after the walk, each name it gives that the walk did
    not list is looked up once more by `GET /workflows?name=` (issue 23).

    A listing entry without an integer id raises a one-line ZuoraError (this tenant fails, no
    other). A definition whose versions list answers 404 (or that the saved profile says the
    tenant has none of: then it is not asked) is read from its listing entry instead, its
    active and latest inactive versions (issue 23), and `on_listed(name, id, note)` is told what
    could not be seen; where the entry shows no version at all, it is not handed to `sink` but
    to `on_unreadable(name, id, reason)`: that workflow alone cannot be compared. Without
    `on_listed` the 404 goes to `on_unreadable` (or is raised) as it is.
    """

    async def digest_of(def_id: int, raw: Mapping[str, Any], into: dict[str, str | None]) -> None:
        version = str(raw["version"])
        version_id = int_or_none(raw.get("id"))
        updated = raw.get("updatedAt")
        key = (
            (version_id, updated)
            if cache is not None and version_id is not None and isinstance(updated, str)
            else None
        )
        if key is not None and cache is not None:
            known = cache.get(def_id, key[0], key[1])
            if known is not None:
                into[version] = known
                return
        try:
            exported = await client.export_workflow(def_id, version=version)
            if shapes is not None:  # whether this tenant's exports carry the block (§3.5)
                shapes.add(WORKFLOW_DEFINITION in exported)
            # Hashing a big export takes milliseconds: off the loop, which serves every tenant.
            digest = await anyio.to_thread.run_sync(canonical_hash, exported)
            into[version] = digest
            if key is not None and cache is not None:
                cache.put(def_id, key[0], key[1], digest)
        except ZuoraError as exc:
            if exc.status != 404:  # Zuora sometimes 404s single exports: not comparable
                raise
            into[version] = None
        except Exception:  # an export we cannot read is simply not comparable
            into[version] = None

    async def load(name: str, entry: Mapping[str, Any]) -> None:
        def_id = listed_id(entry, name, client.tenant.name)
        try:
            versions_raw: Sequence[Mapping[str, Any]] = await client.list_versions(def_id)
        except ZuoraError as exc:
            if exc.status != 404 or (on_unreadable is None and on_listed is None):
                raise
            versions_raw = shown_versions(entry)
            if on_listed is None or not versions_raw:
                if on_unreadable is None:
                    raise
                why = "answered 404" if client.asks_versions_list else "is missing (profile)"
                on_unreadable(name, def_id, f"GET /workflows/{def_id}/versions {why}")
                return
            on_listed(name, def_id, listed_note(client, def_id, entry))
        digests: dict[str, str | None] = {}
        if hash_names is None or name in hash_names:
            async with anyio.create_task_group() as tg:
                for v in versions_raw:
                    if v.get("version"):
                        tg.start_soon(digest_of, def_id, v, digests)
        versions = tuple(
            TargetVersion(
                id=int_or_none(v.get("id")),
                version=str(v.get("version") or ""),
                content_hash=digests.get(str(v.get("version") or "")),
            )
            for v in versions_raw
        )
        active = active_version(entry)
        active_id = int_or_none(active.get("id")) if active is not None else None
        if entry.get("status") == "Inactive":
            # An Inactive definition keeps its active version but runs nothing (a rollback sets
            # created definitions so): switching it on again must send the PATCH.
            active_id = None
        sink(TargetDefinition(id=def_id, name=name, versions=versions, active_version_id=active_id))

    listed: set[str] = set()

    async def wanted(entry: Mapping[str, Any]) -> None:
        name = entry.get("name")
        if isinstance(name, str) and name in names:
            listed.add(name)
            await load(name, entry)

    await for_each_definition(client, wanted)
    if confirm is not None:
        for name in confirm():
            if name in listed or name not in names:
                continue
            for entry in await client.list_workflows(name=name):
                if entry.get("name") == name:  # the server's filter may match more
                    listed.add(name)
                    await load(name, entry)


def listed_note(client: ZuoraClient, definition_id: int, entry: Mapping[str, Any]) -> str:
    """What reading `entry` in place of the definition's versions list could not see."""
    return unseen_versions_note(definition_id, entry, asked=client.asks_versions_list)


async def definition_versions(
    client: ZuoraClient, definition_id: int, entry: Mapping[str, Any]
) -> tuple[Sequence[Mapping[str, Any]], str | None]:
    """The definition's versions list; where the tenant has none (a 404, or the saved profile
    says so and nothing is asked), the versions its listing `entry` shows, with the note of
    what could not be seen (issue 23)."""
    try:
        return await client.list_versions(definition_id), None
    except ZuoraError as exc:
        if exc.status != 404:
            raise
        return shown_versions(entry), listed_note(client, definition_id, entry)


def listed_id(entry: Mapping[str, Any], name: str, tenant: str) -> int:
    """The definition id of a `GET /workflows` entry; a one-line ZuoraError when it has none."""
    value = entry.get("id")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ZuoraError(
            f"GET /workflows: the entry for workflow {name!r} has no integer id ({value!r})",
            tenant=tenant,
        )
    return value


TARGET_READERS = 8  # definitions read at once (the client's pacing still applies)


async def for_each_definition(
    client: ZuoraClient, handle: Callable[[Mapping[str, Any]], Awaitable[None]]
) -> None:
    """`handle` each entry of the tenant's workflow listing, the listing read a page at a time
    and a few entries handled at once. The first error ends it, unwrapped, so that the caller
    can fail this tenant alone instead of the whole run."""
    send: anyio.abc.ObjectSendStream[Mapping[str, Any]]
    send, receive = anyio.create_memory_object_stream[Mapping[str, Any]](0)

    async def worker(stream: anyio.abc.ObjectReceiveStream[Mapping[str, Any]]) -> None:
        async with stream:
            async for entry in stream:
                await handle(entry)

    with single_failure():
        async with anyio.create_task_group() as tg, send:
            with receive:
                readers = False
                async for page in client.workflow_pages():
                    if page and not readers:
                        # The readers start with the first entry: an empty tenant (a
                        # fleet's new ones) spawns none.
                        for _ in range(max(TARGET_READERS, client.tenant.max_concurrency)):
                            tg.start_soon(worker, receive.clone())
                        receive.close()
                        readers = True
                    for entry in page:
                        await send.send(entry)


def target_fingerprint(target: Mapping[str, Sequence[TargetDefinition]]) -> str:
    """A digest of everything planning read from a tenant: names, definitions, versions, hashes.

    Hashed a definition at a time, in (name, id) order: the same digest as the JSON array of the
    sorted material, without building it."""
    h = hashlib.sha256(b"[")
    first = True
    names = iter(target) if isinstance(target, TargetView) else sorted(target)  # already sorted
    for name in names:
        for d in sorted(target[name], key=lambda d: d.id):
            material = (name, d.id, sorted((v.version, v.content_hash or "") for v in d.versions))
            h.update(orjson.dumps(material) if first else b"," + orjson.dumps(material))
            first = False
    h.update(b"]")
    return h.hexdigest()
