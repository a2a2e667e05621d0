"""The payloads one tenant prepared, shared with the other tenants of the run (issue 25 #3)."""

from __future__ import annotations

import gzip
import threading

import anyio
import orjson
import pytest

from migrator.store.prepared import Prepared, PreparedPayloads, payload_key
from migrator.zuora.http import gzip_body


def test_a_payload_is_found_only_under_what_it_was_prepared_from() -> None:
    """Another document, callee map or substitution table is another key: a tenant never
    takes a payload prepared for a different one."""
    shared = PreparedPayloads()
    key = payload_key("k1", "a.json", {3: 40}, {"old": "new"})
    shared.prepared(key, {"workflow": {"name": "a"}}, "digest", False)
    assert shared.get(payload_key("k1", "a.json", {3: 40}, {"old": "new"})) is not None
    for other in (
        payload_key("k2", "a.json", {3: 40}, {"old": "new"}),
        payload_key("k1", "a.json", {3: 41}, {"old": "new"}),
        payload_key("k1", "a.json", {}, {"old": "new"}),
        payload_key("k1", "a.json", {3: 40}, {"old": "other"}),
        payload_key("k1", "a.json", {3: 40}, {}),
    ):
        assert shared.get(other) is None


def test_the_prepared_body_is_the_payload_serialised() -> None:
    """What is kept to send is exactly `orjson.dumps(payload)`, with its digest and flag."""
    shared = PreparedPayloads()
    payload = {"workflow": {"name": "a"}, "tasks": [{"id": 1}]}
    entry = shared.prepared("k", payload, "d", True)
    assert entry.body == orjson.dumps(payload)
    assert (entry.digest, entry.file_refs) == ("d", True)
    assert shared.get("k") == entry


def test_held_payloads_are_bounded_least_recently_used_first() -> None:
    """No more than max_bytes of serialised payloads are held (the least recently used go
    first), and a payload over max_entry_bytes is never held."""
    shared = PreparedPayloads(max_bytes=100, max_entry_bytes=60)
    blob = {"x": "a" * 30}  # 40 bytes serialised
    shared.prepared("one", blob, "d", False)
    shared.prepared("two", blob, "d", False)
    assert shared.get("one") is not None  # now the most recently used
    shared.prepared("three", blob, "d", False)
    assert shared.get("two") is None
    assert shared.get("one") is not None and shared.get("three") is not None
    big = shared.prepared("big", {"x": "a" * 80}, "d", False)
    assert big.body == orjson.dumps({"x": "a" * 80})
    assert shared.get("big") is None
    assert len(shared) == 2


def test_a_repeated_body_is_compressed_to_the_same_bytes() -> None:
    """gzip_body remembers recent bodies: the same body gives the same bytes, which decompress
    to it."""
    body = orjson.dumps({"tasks": [{"id": n, "name": f"task {n}"} for n in range(300)]})
    first = gzip_body(body)
    assert gzip_body(bytes(body)) == first
    assert gzip.decompress(first) == body


@pytest.mark.anyio
async def test_tenants_asking_at_once_prepare_a_payload_once() -> None:
    """Tenants that ask for the same payload while one prepares it wait for that one instead of
    preparing it too; a failure is each asker's own (they then prepare it themselves)."""
    shared = PreparedPayloads()
    release = threading.Event()
    made: list[str] = []

    def make() -> Prepared:
        made.append("k")
        release.wait()
        return shared.prepared("k", {"a": 1}, "d", False)

    got: list[Prepared] = []

    async def ask() -> None:
        got.append(await shared.get_or_prepare("k", make))

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(ask)
        await anyio.wait_all_tasks_blocked()
        release.set()
    assert made == ["k"]
    assert len(got) == 5 and all(g is got[0] for g in got)

    calls: list[int] = []

    def broken() -> Prepared:
        calls.append(1)
        raise ValueError("the file changed")

    for _ in range(2):
        with pytest.raises(ValueError):
            await shared.get_or_prepare("other", broken)
    assert len(calls) == 2
