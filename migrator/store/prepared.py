"""Payloads prepared for sending, shared by the tenants of one run (issue 25 #3).

When many tenants start at once, each sends the same source documents: without this, every
tenant read the file again, parsed and validated it, hashed its canonical form, built the
payload and hashed that, all in a worker thread it waited for. A payload depends only on the
document's content (its key), the callee ids it points at and the tenant's substitution table,
so the first tenant to send a document prepares it and the others take that (waiting for it
when they ask while it is being prepared).

Bounded: at most `max_bytes` of serialised payloads (the least recently used go first) and none
bigger than `max_entry_bytes`, so a run's memory still does not grow with its documents; tenants
that start together send the same documents at about the same time, which is when this helps.
Only the serialised payload is kept (bytes: what is held is what is counted).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import orjson

MAX_BYTES = 4 * 1024 * 1024  # serialised payloads held at once
MAX_ENTRY_BYTES = 256 * 1024  # a bigger payload is prepared by each tenant itself


@dataclass(frozen=True, slots=True)
class Prepared:
    """One payload as a tenant sends it: serialised (the request body is made of it; the parsed
    payload is not kept), its canonical hash, whether the document names another task's file."""

    body: bytes
    digest: str
    file_refs: bool


def payload_key(
    doc_key: str, source: str, call_targets: Mapping[int, int], substitutions: Mapping[str, str]
) -> Hashable:
    """Everything a prepared payload depends on."""
    return (
        doc_key,
        source,
        tuple(sorted(call_targets.items())),
        tuple(sorted(substitutions.items())),
    )


class PreparedPayloads:
    """A bounded, thread-safe store of `Prepared` payloads by `payload_key` (a worker thread
    prepares, the event loop looks up)."""

    def __init__(
        self, *, max_bytes: int = MAX_BYTES, max_entry_bytes: int = MAX_ENTRY_BYTES
    ) -> None:
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self._entries: OrderedDict[Hashable, Prepared] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._preparing: dict[Hashable, anyio.Event] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Prepared | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found

    def prepared(
        self, key: Hashable, payload: dict[str, Any], digest: str, file_refs: bool
    ) -> Prepared:
        """`payload` serialised and kept for the next tenant (unless it is too big)."""
        entry = Prepared(orjson.dumps(payload), digest, file_refs)
        size = len(entry.body)
        if size > self.max_entry_bytes:
            return entry
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old.body)
            self._entries[key] = entry
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= len(dropped.body)
        return entry

    async def get_or_prepare(self, key: Hashable, make: Callable[[], Prepared]) -> Prepared:
        """The payload under `key`, else `make()` run in a worker thread (reading, parsing and
        hashing a big document takes milliseconds: too long for the event loop). Tenants that
        start together ask for the same document at the same moment: while one prepares it the
        others wait for that instead of preparing it too (called on the event loop only)."""
        found = self.get(key)
        if found is not None:
            return found
        busy = self._preparing.get(key)
        if busy is not None:
            await busy.wait()
            found = self.get(key)
            if found is not None:
                return found
            # That one failed, or its payload is too big to keep: this tenant prepares its own.
            return await anyio.to_thread.run_sync(make)
        done = self._preparing[key] = anyio.Event()
        try:
            return await anyio.to_thread.run_sync(make)
        finally:
            del self._preparing[key]
            done.set()

    def __len__(self) -> int:
        return len(self._entries)
