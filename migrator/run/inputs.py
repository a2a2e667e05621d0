"""Reading a run's sources into its workspace: files, folders and snapshots, or a live tenant.

Summaries only stay in the workspace; bodies are reloaded when they are sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import anyio
import orjson

from migrator.core.config import Settings
from migrator.core.document import parse_document
from migrator.core.errors import InputError, MigratorError, ZuoraError
from migrator.core.listing import active_version
from migrator.run.target import for_each_definition
from migrator.store.sources import (
    discover,
    find_snapshots,
    read_document,
    read_manifest,
    verify_snapshot,
)
from migrator.store.workspace import Workspace
from migrator.zuora import ZuoraClient


def read_sources(paths: Sequence[str], settings: Settings) -> Workspace:
    """Discover and validate every document; bad ones become one-line errors, the rest go on.

    A snapshot (a directory with a manifest) is checked whole first: a damaged one refuses the
    run before anything is imported, listing every problem.
    """
    store = Workspace(max_bytes=settings.max_document_bytes)
    try:
        _read_into(store, paths, settings)
    except BaseException:
        store.close()
        raise
    return store


def _read_into(store: Workspace, paths: Sequence[str], settings: Settings) -> None:
    subs = {name: t.substitutions for name, t in settings.tenants.items() if t.substitutions}
    active: dict[tuple[str, str], bool | None] = {}
    for path in find_snapshots(paths):
        problems = verify_snapshot(path)
        if problems:
            raise MigratorError(
                f"{path}: damaged snapshot, nothing was imported "
                f"({len(problems)} problem(s)): " + "; ".join(problems)
            )
        _, entries = read_manifest(path)
        active.update({(path, e.path): e.active for e in entries})
    entries_iter = iter(discover(paths))
    while True:
        try:
            entry = next(entries_iter)
        except StopIteration:
            break
        except InputError as exc:  # a directory that cannot be listed: report it, go on
            store.errors.append(exc)
            continue
        try:
            doc = read_document(entry, max_bytes=settings.max_document_bytes)
        except InputError as exc:
            store.errors.append(exc)
            continue
        known = active.get((entry.path, entry.member)) if entry.member is not None else None
        store.add(doc, item=entry, substitutions=subs, active=known)
    store.flush()


async def read_live_sources(client: ZuoraClient, settings: Settings) -> Workspace:
    """Every definition of a source tenant, exported (active version, else the latest), each
    written to the workspace as it arrives: a page of the listing and a few exports in memory."""
    store = Workspace(max_bytes=settings.max_document_bytes)
    subs = {name: t.substitutions for name, t in settings.tenants.items() if t.substitutions}

    async def export_one(definition: Mapping[str, Any]) -> None:
        raw_id = definition.get("id")
        if type(raw_id) is not int:
            where = f"tenant {client.tenant.name}: workflow {definition.get('name')!r}"
            store.errors.append(
                InputError(where, "$.id", f"listed without an integer id ({raw_id!r})")
            )
            return
        def_id = raw_id
        source = f"tenant {client.tenant.name}: workflow {def_id}"
        active = active_version(definition)
        version = active.get("version") if active is not None else "latest"
        try:
            body = await client.export_workflow(def_id, version=version or "latest")
        except ZuoraError as exc:
            store.errors.append(InputError(source, "$", str(exc)))
            return
        raw = orjson.dumps(body)
        try:
            # Parsing and hashing a big export takes milliseconds: off the loop.
            doc = await anyio.to_thread.run_sync(
                partial(
                    parse_document,
                    raw,
                    source,
                    max_bytes=settings.max_document_bytes,
                    definition_id=def_id,
                )
            )
        except InputError as exc:
            store.errors.append(exc)
            return
        store.add(doc, raw=raw, active=bool(active), substitutions=subs)

    try:
        await for_each_definition(client, export_one)
    except BaseException:
        store.close()
        raise
    store.errors.sort(key=lambda e: str(e))
    store.flush()
    return store
