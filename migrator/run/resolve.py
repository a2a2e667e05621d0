"""Finding the ids an import created, a listing page for many imports at once: the definition
(by name) and the version (by number) that report, journal and cache need, written as `resolved`.

An import is committed as soon as it is answered, with whatever ids are certain then (the answer's
id when the tenant profile says which id it is; the definition of a new version); the rest is
resolved here in batches of up to RESOLVE_BATCH, or at once when a later version or a caller of
the workflow needs its definition id before the batch would come.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from migrator.core.errors import ZuoraError
from migrator.core.listing import definition_id_of, shown_versions
from migrator.core.plan import PlannedItem, int_or_none
from migrator.run.tenant import TenantRun
from migrator.zuora import ZuoraClient

RESOLVE_BATCH = 50  # one listing page (page_length 50) answers this many new definitions


@dataclass(slots=True)
class Pending:
    """An answered import whose ids are not all known yet; its outcome waits for them."""

    name: str
    item: PlannedItem
    version: str
    action: str
    answer_id: int | None  # the import answer's `id` (a definition's or a version's)
    definition_id: int | None
    version_id: int | None
    updated_at: str | None  # the version's updatedAt, when an answer or a listing says it
    digest: str
    # Whether the tenant keeps what was sent, so the cache may say the version holds `digest`: not
    # for a document with file references unless the profile says import rewrites them (§9.1).
    keeps_content: bool = True


def version_in_entry(entry: Mapping[str, Any], version: str) -> tuple[int | None, str | None]:
    """The id (and updatedAt, when shown) of `version` among a listing entry's active version
    and latest inactive versions; (None, None) when the entry does not show it."""
    for v in shown_versions(entry):  # either spelling of the inactive ones (spec §3.1)
        if str(v.get("version")) == version:
            updated = v.get("updatedAt")
            return int_or_none(v.get("id")), updated if isinstance(updated, str) else None
    return None, None


async def listed_version(
    client: ZuoraClient, definition_id: int, version: str
) -> tuple[int | None, str | None]:
    """The id (and updatedAt) of `version` in the definition's versions list; (None, None) when
    the list does not show it or cannot be read."""
    try:
        for v in await client.list_versions(definition_id):
            if str(v.get("version")) == version:
                updated = v.get("updatedAt")
                return int_or_none(v.get("id")), updated if isinstance(updated, str) else None
    except ZuoraError:
        pass
    return None, None


def pick_definition(
    candidates: Sequence[Mapping[str, Any]], answer_id: int | None
) -> Mapping[str, Any] | None:
    """Which of the definitions named like an import is the one it created: the only one, else
    the one the answer's id names (as definition or as one of its versions), else the newest."""
    if len(candidates) == 1:
        return candidates[0]
    for entry in candidates:
        entry_id = int_or_none(entry.get("id"))
        if entry_id == answer_id:
            return entry
        for v in shown_versions(entry):
            # A version names its definition when it carries `definitionId` (§3.1 [O]).
            if int_or_none(v.get("id")) == answer_id and definition_id_of(v, entry_id) == entry_id:
                return entry
    ids = [e for e in candidates if int_or_none(e.get("id")) is not None]
    return max(ids, key=lambda e: int(e["id"])) if ids else None


class Resolution:
    """One tenant's answered imports whose ids are not all known yet: resolved at once
    (`resolve_now`) or a batch at a time (`settle`, `resolve_pending`)."""

    def __init__(self, run: TenantRun) -> None:
        self.run = run
        self.client = run.client
        self.pending: list[Pending] = []

    async def resolve_now(self, name: str, answer_id: int | None) -> tuple[int, Mapping[str, Any]]:
        """The definition a create just made, by one `name=` lookup (its listing entry too)."""
        candidates = [
            e for e in await self.client.list_workflows(name=name) if e.get("name") == name
        ]
        entry = pick_definition(candidates, answer_id)
        if entry is None:
            raise ZuoraError(
                f"tenant {self.run.tenant.name}: imported {name!r} but cannot find its definition",
                in_doubt=True,
            )
        return int(entry["id"]), entry

    async def settle(self, pending: Pending) -> None:
        """Record the import's outcome now if its ids are known, else queue it for a batch."""
        if pending.definition_id is not None and pending.version_id is not None:
            await self._resolved(pending, write=False)
            return
        self.pending.append(pending)
        if len(self.pending) >= RESOLVE_BATCH:
            await self.resolve_pending()

    async def resolve_pending(self) -> None:
        """Resolve every queued import from the workflow listing (stopping once all are found)."""
        batch, self.pending = self.pending, []
        if not batch:
            return
        names = {p.name for p in batch if p.definition_id is None}
        by_name: dict[str, list[Mapping[str, Any]]] = {}
        by_id: dict[int, Mapping[str, Any]] = {}
        wanted_ids = {p.definition_id for p in batch if p.definition_id is not None}
        pages = 0
        cut = False
        try:
            async for page in self.client.workflow_pages():
                pages += 1
                for entry in page:
                    entry_id = int_or_none(entry.get("id"))
                    if entry.get("name") in names:
                        by_name.setdefault(str(entry["name"]), []).append(entry)
                    if entry_id is not None and entry_id in wanted_ids:
                        by_id[entry_id] = entry
                missing = len(names - by_name.keys()) + len(wanted_ids - by_id.keys())
                if not missing:
                    break  # a name may have a twin further on only if someone made one meanwhile
                if pages >= missing:
                    # The listing's order puts the rest far away (a large tenant listed oldest
                    # first): a lookup each costs less than reading on.
                    cut = True
                    break
            if cut:
                for name in sorted(names - by_name.keys()):
                    named = await self.client.list_workflows(name=name)
                    by_name[name] = [e for e in named if e.get("name") == name]
        except ZuoraError:
            pass  # what is not found now is written without its ids (a later run resolves them)
        entries: list[Mapping[str, Any]] = []
        for p in batch:
            if p.definition_id is None:
                chosen = pick_definition(by_name.get(p.name, []), p.answer_id)
                p.definition_id = int_or_none(chosen.get("id")) if chosen else None
                entries.append(chosen or {})
            else:
                entries.append(by_id.get(p.definition_id) or {})
        async with anyio.create_task_group() as tg:
            for p, found in zip(batch, entries, strict=True):
                tg.start_soon(self._finish, p, found)

    async def _finish(self, p: Pending, entry: Mapping[str, Any]) -> None:
        if p.version_id is None or p.updated_at is None:
            version_id, updated = version_in_entry(entry, p.version)
            p.version_id = p.version_id if p.version_id is not None else version_id
            p.updated_at = p.updated_at or updated
        if p.version_id is None and p.definition_id is not None:
            # More newer versions than the listing shows, or an older tenant's entry.
            p.version_id, updated = await listed_version(self.client, p.definition_id, p.version)
            p.updated_at = p.updated_at or updated
        await self._resolved(p, write=True)

    async def _resolved(self, p: Pending, *, write: bool) -> None:
        """Journal the ids found after the commit, fill the cache, record the outcome."""
        if write and (p.definition_id is not None or p.version_id is not None):
            await self.run.journal.append(
                "resolved",
                tenant=self.run.tenant.name,
                item=p.item.doc.key,
                target_definition_id=p.definition_id,
                target_version_id=p.version_id,
            )
        cache = self.run.cache
        if (
            cache is not None
            and p.keeps_content
            and p.definition_id is not None
            and p.version_id is not None
            and p.updated_at is not None
        ):
            # What was sent is what the version holds (the content identity is what survives import).
            cache.put(p.definition_id, p.version_id, p.updated_at, p.digest)
        self._imported(p)

    def record_unresolved(self) -> None:
        """The run ends before the batch: the imports are recorded with the ids known so far."""
        batch, self.pending = self.pending, []
        for p in batch:
            self._imported(p)

    def _imported(self, p: Pending) -> None:
        reason = None
        if p.definition_id is None:
            reason = "its definition id is not known yet (the next run or `migrator activate` looks it up by name)"
        self.run.outcome(
            p.item,
            "imported",
            target_workflow_id=p.definition_id,
            target_version_id=p.version_id,
            action=p.action,
            verified=None,
            reason=reason,
        )
