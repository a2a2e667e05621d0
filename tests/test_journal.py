"""Journal unit tests: encode/decode/scan/fold on plain values, then the writer, recovery and lock."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from migrator.core.errors import JournalError
from migrator.core.journal_records import Record, decode_line, encode, fold, runs, scan, summarize
from migrator.store import lock as jlock
from migrator.store.journal import Journal, read_journal

RUN = {"run_id": "r1", "inputs_hash": "ih", "config_hash": "ch", "tool_version": "0.1.0"}


def rec(seq: int, type: str, **fields: Any) -> Record:
    return Record(seq, type, 1000.0 + seq, fields)


def journal_bytes(*records: Record) -> bytes:
    return b"".join(encode(r) for r in records)


def intent(seq: int, item: str = "h1", tenant: str = "prod", **extra: Any) -> Record:
    fields = {
        "tenant": tenant,
        "item": item,
        "action": "create",
        "name": "WF",
        "version": "1.0",
        "target_definition_id": None,
        "idempotency_key": f"key-{item}-{seq}",
        "source": "a.json",
    }
    return rec(seq, "intent", **{**fields, **extra})


# --- encode / decode ---------------------------------------------------------------------------


def test_encode_round_trips_through_decode() -> None:
    """A record encodes to one checksummed line that decodes back to the same record."""
    r = intent(3, plan_hash="p")
    line = encode(r)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode_line(line) == r


def test_checksum_covers_the_canonical_bytes_without_crc() -> None:
    """The crc member is the CRC32 of the sorted-keys JSON of the record without it."""
    import zlib

    line = encode(rec(1, "skipped", tenant="t", item="i", reason="same"))
    data = orjson.loads(line)
    crc = data.pop("crc")
    assert crc == f"{zlib.crc32(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)):08x}"
    assert data["v"] == 1 and data["seq"] == 1 and data["type"] == "skipped"


@pytest.mark.parametrize("name", ["client_secret", "token", "Password", "authorization"])
def test_encode_refuses_secret_looking_fields(name: str) -> None:
    """Field names that look like credentials are refused, even nested ones."""
    with pytest.raises(ValueError, match="secret"):
        encode(rec(1, "run_started", **{name: "x"}))
    with pytest.raises(ValueError, match="secret"):
        encode(rec(1, "run_started", argv={"opts": [{name: "x"}]}))


def test_encode_refuses_unknown_types_reserved_names_and_missing_keys() -> None:
    """Unknown record types, reserved field names and item records without keys are bugs."""
    with pytest.raises(ValueError, match="unknown"):
        encode(rec(1, "comitted", tenant="t", item="i"))
    with pytest.raises(ValueError, match="reserved"):
        encode(Record(1, "run_started", 1.0, {"seq": 4}))
    with pytest.raises(ValueError, match="tenant"):
        encode(rec(1, "committed", item="i"))


def test_decode_rejects_a_flipped_byte() -> None:
    """Any changed byte in a line fails its checksum."""
    line = bytearray(encode(intent(1)))
    line[10] ^= 0x01
    with pytest.raises(JournalError, match="checksum"):
        decode_line(bytes(line))


def test_decode_rejects_a_newer_format_version() -> None:
    """A line written by a newer format version is refused, not misread."""
    line = encode(rec(1, "run_started")).replace(b'"v":1', b'"v":2')
    data = orjson.loads(line)
    data.pop("crc")
    import zlib

    body = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    line = body[:-1] + b',"crc":"%08x"}\n' % zlib.crc32(body)
    with pytest.raises(JournalError, match="format version 2"):
        decode_line(line)


# --- scan ----------------------------------------------------------------------------------------


def test_scan_reads_a_clean_journal() -> None:
    """A well-formed journal scans to all its records with nothing cut."""
    data = journal_bytes(
        rec(1, "run_started"), intent(2), rec(3, "committed", tenant="prod", item="h1")
    )
    result = scan(data)
    assert [r.seq for r in result.records] == [1, 2, 3]
    assert result.valid_length == len(data) and result.torn_tail is None


def test_scan_cuts_a_last_line_without_newline() -> None:
    """A last line missing its newline is an unfinished append: cut and reported."""
    good = journal_bytes(rec(1, "run_started"), intent(2))
    tail = encode(rec(3, "committed", tenant="prod", item="h1"))[:-5]
    result = scan(good + tail)
    assert len(result.records) == 2
    assert result.valid_length == len(good)
    assert result.torn_tail == tail and result.torn_line == 3


def test_scan_cuts_a_garbled_last_line() -> None:
    """A final newline-terminated line whose checksum fails is cut as torn."""
    good = journal_bytes(rec(1, "run_started"))
    bad = bytearray(encode(intent(2)))
    bad[5] = ord("#")
    result = scan(good + bytes(bad))
    assert result.valid_length == len(good) and result.torn_tail == bytes(bad)


def test_scan_refuses_damage_before_the_last_line() -> None:
    """A bad checksum in the middle raises, naming the line and how to proceed."""
    lines = [encode(rec(1, "run_started")), encode(intent(2)), encode(intent(3, "h2"))]
    bad = bytearray(lines[1])
    bad[8] ^= 0x20
    with pytest.raises(JournalError) as err:
        scan(lines[0] + bytes(bad) + lines[2], "j.jsonl")
    msg = str(err.value)
    assert "j.jsonl" in msg and "line 2" in msg and "--journal NEW" in msg and "head -n 1" in msg
    assert "\n" not in msg


def test_scan_refuses_sequence_gaps_and_regressions() -> None:
    """Sequence numbers must run 1, 2, 3, ...; a gap or step back is damage."""
    with pytest.raises(JournalError, match=r"line 2.*sequence gap"):
        scan(journal_bytes(rec(1, "run_started"), intent(3)))
    with pytest.raises(JournalError, match=r"line 3.*backwards"):
        scan(journal_bytes(rec(1, "run_started"), intent(2), intent(2)))
    with pytest.raises(JournalError, match="line 1"):
        scan(journal_bytes(rec(2, "run_started")))


def test_scan_of_empty_input() -> None:
    """An empty journal has no records and nothing to cut."""
    assert scan(b"") == type(scan(b""))([], 0, None, None)


# --- fold ----------------------------------------------------------------------------------------


def test_fold_intent_without_outcome_is_in_doubt() -> None:
    """An intent with no later outcome leaves the item in doubt, with the intent's fields."""
    st = fold([rec(1, "run_started"), intent(2)])[("prod", "h1")]
    assert st.status == "in_doubt" and st.attempts == 1
    assert st.idempotency_key == "key-h1-2" and st.version == "1.0" and st.action == "create"
    assert st.intent_time == 1002.0 and st.name == "WF" and st.source == "a.json"


def test_fold_committed_is_final() -> None:
    """committed makes an item done, and later records don't undo it (verified only annotates)."""
    records = [
        intent(1),
        rec(
            2,
            "committed",
            tenant="prod",
            item="h1",
            target_definition_id=7,
            target_version_id=70,
            version="1.0",
        ),
        intent(3),
        rec(4, "failed", tenant="prod", item="h1", reason="late", permanent=True),
        rec(5, "verified", tenant="prod", item="h1", ok=True, detail="same content"),
    ]
    st = fold(records)[("prod", "h1")]
    assert st.status == "done" and st.attempts == 1
    assert (st.target_definition_id, st.target_version_id) == (7, 70)
    assert st.verified is True and st.verify_detail == "same content"


def test_fold_outcomes_and_retries() -> None:
    """failed, deferred and skipped set their status; a later intent counts another attempt."""
    records = [
        intent(1, "a"),
        rec(2, "deferred", tenant="prod", item="a", reason="429"),
        rec(3, "skipped", tenant="prod", item="b", reason="unchanged"),
        intent(4, "c"),
        rec(5, "failed", tenant="prod", item="c", reason="400 invalid", permanent=True),
        intent(6, "a"),
    ]
    state = fold(records)
    assert state[("prod", "a")].status == "in_doubt" and state[("prod", "a")].attempts == 2
    assert state[("prod", "b")].status == "skipped" and state[("prod", "b")].reason == "unchanged"
    assert state[("prod", "c")].status == "failed" and state[("prod", "c")].reason == "400 invalid"


def test_fold_keeps_extra_fields_and_separates_tenants() -> None:
    """Fields outside the format are folded through; the same item differs per tenant."""
    state = fold([intent(1, plan_hash="p1"), intent(2, tenant="uat"), intent(3, plan_hash="p2")])
    assert state[("prod", "h1")].extra == {"plan_hash": "p2"}
    assert state[("uat", "h1")].attempts == 1 and state[("prod", "h1")].attempts == 2


def test_summarize_counts_per_tenant_with_pending() -> None:
    """summarize counts each status per tenant and counts expected-but-unseen items as pending."""
    state = fold([intent(1, "a"), rec(2, "committed", tenant="prod", item="a"), intent(3, "b")])
    counts = summarize(state, expected=[("prod", "a"), ("prod", "z"), ("uat", "y")])
    assert counts["prod"]["done"] == 1 and counts["prod"]["in_doubt"] == 1
    assert counts["prod"]["pending"] == 1 and counts["uat"]["pending"] == 1
    assert list(counts) == ["prod", "uat"]


def test_runs_pairs_starts_with_finishes() -> None:
    """runs() pairs each run_started with its run_finished; a crashed run has none."""
    records = [
        rec(1, "run_started", run_id="a"),
        rec(2, "run_finished"),
        rec(3, "run_started", run_id="b"),
    ]
    out = runs(records)
    assert [(r.started.get("run_id"), r.finished is not None) for r in out] == [
        ("a", True),
        ("b", False),
    ]


# --- the writer ----------------------------------------------------------------------------------


class CountingIO:
    """os.write/os.fsync stand-ins that count calls and can be told to fail."""

    def __init__(self, fail_fsync_after: int | None = None, fail_errno: int = 28) -> None:
        self.writes = 0
        self.fsyncs = 0
        self.fail_fsync_after = fail_fsync_after
        self.fail_errno = fail_errno

    def write(self, fd: int, data: bytes) -> int:
        self.writes += 1
        return os.write(fd, data)

    def fsync(self, fd: int) -> None:
        if self.fail_fsync_after is not None and self.fsyncs >= self.fail_fsync_after:
            raise OSError(self.fail_errno, os.strerror(self.fail_errno))
        self.fsyncs += 1
        os.fsync(fd)


@pytest.mark.anyio
async def test_open_appends_run_started_and_run_finished(tmp_path: Path) -> None:
    """A session writes run_started at open and run_finished with the finish fields at close."""
    path = tmp_path / "j.jsonl"
    async with Journal.open(path, RUN) as journal:
        assert journal.state == {} and journal.run_history == []
        await journal.append("skipped", tenant="prod", item="h", reason="same")
        journal.finish(counts={"skipped": 1})
    view = read_journal(path)
    assert [r.type for r in view.records] == ["run_started", "skipped", "run_finished"]
    assert view.records[0].get("run_id") == "r1"
    assert view.records[-1].fields == {"counts": {"skipped": 1}, "interrupted": False}
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert not jlock.lock_path_for(path).exists()


@pytest.mark.anyio
async def test_reopen_folds_previous_runs(tmp_path: Path) -> None:
    """A second session sees the first one's state and run history and continues the sequence."""
    path = tmp_path / "j.jsonl"
    async with Journal.open(path, RUN) as journal:
        await journal.append("intent", tenant="prod", item="h", idempotency_key="k")
    async with Journal.open(path, {**RUN, "run_id": "r2"}) as journal:
        assert journal.state[("prod", "h")].status == "in_doubt"
        assert [r.get("run_id") for r in journal.run_history] == ["r1"]
        record = await journal.append("committed", tenant="prod", item="h", target_version_id=9)
        assert record.seq == 5
    assert read_journal(path).state[("prod", "h")].status == "done"


@pytest.mark.anyio
async def test_concurrent_appends_are_durable_ordered_and_batched(tmp_path: Path) -> None:
    """Many tasks appending at once all get durable records, seq strictly increasing, in few fsyncs."""
    path = tmp_path / "j.jsonl"
    io = CountingIO()
    got: list[int] = []

    async def worker(n: int) -> None:
        for i in range(10):
            record = await journal.append(
                "intent", tenant="t", item=f"{n}-{i}", idempotency_key="k"
            )
            got.append(record.seq)

    async with Journal.open(path, RUN, write=io.write, fsync=io.fsync) as journal:
        async with anyio.create_task_group() as tg:
            for n in range(50):
                tg.start_soon(worker, n)
        batches = journal.batches
    records = read_journal(path).records
    assert len(records) == 502
    assert [r.seq for r in records] == list(range(1, 503))
    assert sorted(got) == list(range(2, 502))
    # 500 appends from 50 concurrent tasks: group commit must share fsyncs between them.
    assert batches <= 100 and io.fsyncs == io.writes == batches + 1


@pytest.mark.anyio
async def test_fsync_failure_stops_the_journal_cleanly(tmp_path: Path) -> None:
    """A failing fsync fails the waiting append and every later one with one clear JournalError."""
    path = tmp_path / "j.jsonl"
    io = CountingIO(fail_fsync_after=1)
    with pytest.raises(JournalError) as err:
        async with Journal.open(path, RUN, write=io.write, fsync=io.fsync) as journal:
            with pytest.raises(JournalError, match="No space left"):
                await journal.append("intent", tenant="t", item="i")
            with pytest.raises(JournalError):
                await journal.append("intent", tenant="t", item="j")
            assert journal.failed is not None
    msg = str(err.value)
    assert str(path) in msg and "nothing after the last durable record counts as done" in msg
    assert not jlock.lock_path_for(path).exists()


@pytest.mark.anyio
async def test_body_exception_marks_run_interrupted(tmp_path: Path) -> None:
    """An exception leaving the block propagates unchanged and run_finished says interrupted."""
    path = tmp_path / "j.jsonl"
    with pytest.raises(KeyError):
        async with Journal.open(path, RUN):
            raise KeyError("boom")
    assert read_journal(path).records[-1].fields == {"interrupted": True}


@pytest.mark.anyio
async def test_cancellation_still_closes_the_journal(tmp_path: Path) -> None:
    """Cancelling the block still writes run_finished (interrupted) and releases the lock."""
    path = tmp_path / "j.jsonl"
    with anyio.CancelScope() as scope:
        async with Journal.open(path, RUN) as journal:
            await journal.append("intent", tenant="t", item="i")
            scope.cancel()
            await anyio.sleep_forever()
    records = read_journal(path).records
    assert [r.type for r in records] == ["run_started", "intent", "run_finished"]
    assert records[-1].get("interrupted") is True
    assert not jlock.lock_path_for(path).exists()


@pytest.mark.anyio
async def test_open_cuts_a_torn_tail_and_reports_it(tmp_path: Path) -> None:
    """Opening a journal with a torn last line cuts it, says so, and appends after the cut."""
    path = tmp_path / "j.jsonl"
    good = journal_bytes(rec(1, "run_started"), intent(2))
    path.write_bytes(good + encode(rec(3, "committed", tenant="prod", item="h1"))[:20])
    async with Journal.open(path, RUN) as journal:
        assert any("incomplete last line (line 3" in n for n in journal.notices)
        assert journal.state[("prod", "h1")].status == "in_doubt"
    records = read_journal(path).records
    assert [r.seq for r in records] == [1, 2, 3, 4]


@pytest.mark.anyio
async def test_open_refuses_a_damaged_journal(tmp_path: Path) -> None:
    """Damage before the last line refuses to open, changes nothing, and leaves no lock."""
    path = tmp_path / "j.jsonl"
    data = journal_bytes(rec(1, "run_started"), intent(2), intent(3, "x")).replace(
        b"create", b"crea7e", 1
    )
    path.write_bytes(data)
    with pytest.raises(JournalError, match="line 2"):
        async with Journal.open(path, RUN):
            pass
    assert path.read_bytes() == data
    assert not jlock.lock_path_for(path).exists()


def test_read_journal_reports_without_cutting(tmp_path: Path) -> None:
    """read_journal reports a torn tail but never changes the file; a missing file is an error."""
    path = tmp_path / "j.jsonl"
    data = journal_bytes(rec(1, "run_started")) + b'{"v":1,"se'
    path.write_bytes(data)
    view = read_journal(path)
    assert len(view.records) == 1 and "ignored an incomplete last line" in view.notices[0]
    assert path.read_bytes() == data
    with pytest.raises(JournalError, match="no journal"):
        read_journal(tmp_path / "missing.jsonl")


# --- the lock ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_live_lock_is_refused(tmp_path: Path) -> None:
    """A second open while a live process holds the lock fails naming that pid."""
    path = tmp_path / "j.jsonl"
    async with Journal.open(path, RUN):
        with pytest.raises(JournalError, match=f"another migrator \\(pid {os.getpid()}\\)"):
            async with Journal.open(path, RUN):
                pass
    async with Journal.open(path, RUN):
        pass  # released on exit: a later run gets it


@pytest.mark.anyio
async def test_stale_lock_is_replaced_and_reported(tmp_path: Path) -> None:
    """A lock left by a dead process on this host is removed, reported, and taken."""
    path = tmp_path / "j.jsonl"
    stale = jlock.LockInfo(pid=999_999_999, host=socket.gethostname(), started=1.0)
    jlock.lock_path_for(path).write_bytes(stale.to_bytes())
    async with Journal.open(path, RUN) as journal:
        assert any("stale lock" in n and "999999999" in n for n in journal.notices)
    assert not jlock.lock_path_for(path).exists()


def test_lock_from_another_host_is_refused(tmp_path: Path) -> None:
    """A lock from another host can't be judged from here: refused, saying what to delete."""
    path = tmp_path / "j.jsonl"
    jlock.lock_path_for(path).write_bytes(jlock.LockInfo(1, "elsewhere", 1.0).to_bytes())
    with pytest.raises(JournalError, match=r"on host elsewhere.*delete"):
        jlock.acquire(path)


def test_release_leaves_someone_elses_lock(tmp_path: Path) -> None:
    """Releasing never removes a lock that another process has taken since."""
    path = tmp_path / "j.jsonl"
    held = jlock.acquire(path)
    other = jlock.LockInfo(held.info.pid + 1, held.info.host, 2.0)
    held.path.write_bytes(other.to_bytes())
    jlock.release(held)
    assert held.path.exists()


@pytest.mark.skipif(jlock.process_start(os.getpid()) is None, reason="needs /proc")
def test_lock_of_a_reused_pid_is_stale(tmp_path: Path) -> None:
    """A lock whose pid now belongs to a different process (other start ticks) is stale."""
    path = tmp_path / "j.jsonl"
    me = os.getpid()
    start = jlock.process_start(me)
    assert start is not None
    reused = jlock.LockInfo(me, socket.gethostname(), 1.0, start + 1)
    jlock.lock_path_for(path).write_bytes(reused.to_bytes())
    held = jlock.acquire(path)
    assert held.notice is not None and "stale lock" in held.notice
    assert held.info.proc_start == start
    jlock.release(held)


def test_lock_cleans_temporaries_of_dead_processes(tmp_path: Path) -> None:
    """A `<lock>.<pid>.tmp` left by a process killed mid-acquire is removed by the next acquire."""
    path = tmp_path / "j.jsonl"
    leftover = tmp_path / "j.jsonl.lock.999999999.tmp"
    leftover.write_bytes(b"{}")
    jlock.release(jlock.acquire(path))
    assert not leftover.exists()


@pytest.mark.anyio
async def test_write_that_makes_no_progress_stops_the_journal(tmp_path: Path) -> None:
    """A write that writes nothing (a full disk) is an error, not an endless loop."""
    path = tmp_path / "j.jsonl"
    with pytest.raises(JournalError, match="No space left"):
        async with Journal.open(path, RUN, write=lambda fd, data: 0):
            pass


@pytest.mark.anyio
async def test_bad_run_fields_write_nothing(tmp_path: Path) -> None:
    """Run fields that can't be journaled (a secret) refuse the open and leave no stray records."""
    path = tmp_path / "j.jsonl"
    with pytest.raises(ValueError, match="secret"):
        async with Journal.open(path, {"client_secret": "x"}):
            pass
    assert read_journal(path).records == []
    assert not jlock.lock_path_for(path).exists()


@pytest.mark.anyio
async def test_read_journal_says_when_a_run_is_writing(tmp_path: Path) -> None:
    """Reading a journal that a live migrator holds says so in the notices."""
    path = tmp_path / "j.jsonl"
    async with Journal.open(path, RUN):
        view = read_journal(path)
        assert any(f"pid {os.getpid()}" in n for n in view.notices)
    assert read_journal(path).notices == []


@pytest.mark.anyio
async def test_journal_in_a_missing_directory_is_one_clear_error(tmp_path: Path) -> None:
    """A journal path whose directory does not exist gives a one-line JournalError naming it."""
    path = tmp_path / "nowhere" / "j.jsonl"
    with pytest.raises(JournalError) as err:
        async with Journal.open(path, RUN):
            pass
    assert str(tmp_path / "nowhere") in str(err.value) and "\n" not in str(err.value)


CHILD = """
import sys, anyio
from migrator.store.journal import Journal

async def main():
    async with Journal.open(sys.argv[1], {"run_id": "child"}) as journal:
        async def worker(n):
            i = 0
            while True:
                record = await journal.append("intent", tenant="t", item=f"{n}-{i}")
                print(record.seq, flush=True)
                i += 1
        async with anyio.create_task_group() as tg:
            for n in range(8):
                tg.start_soon(worker, n)

anyio.run(main)
"""


def test_sigkill_loses_no_acknowledged_record(tmp_path: Path) -> None:
    """A process SIGKILLed while appending leaves every acknowledged record readable; the next
    open replaces its stale lock and continues the sequence."""
    import signal
    import subprocess
    import sys

    path = tmp_path / "j.jsonl"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).parent.parent,
    )
    assert child.stdout is not None
    acked = [int(child.stdout.readline()) for _ in range(200)]
    child.send_signal(signal.SIGKILL)
    child.wait()
    acked += [int(line) for line in child.stdout.read().split()]
    seqs = {r.seq for r in read_journal(path).records}
    assert set(acked) <= seqs

    async def reopen() -> list[str]:
        async with Journal.open(path, RUN) as journal:
            return journal.notices

    notices = anyio.run(reopen, backend="asyncio")
    assert any("stale lock" in n and str(child.pid) in n for n in notices)
    records = read_journal(path).records
    assert [r.seq for r in records] == list(range(1, len(records) + 1))


def test_fold_resolved_fills_in_the_ids_of_a_done_item() -> None:
    """A `resolved` record gives a committed-without-ids item its ids; it changes nothing for an
    item that is not done, and a null in it never erases an id already known."""
    committed = rec(
        2, "committed", tenant="prod", item="h1", target_definition_id=None, version="1.0"
    )
    records = [
        intent(1),
        committed,
        rec(
            3, "resolved", tenant="prod", item="h1", target_definition_id=7, target_version_id=None
        ),
        rec(
            4, "resolved", tenant="prod", item="h1", target_definition_id=None, target_version_id=70
        ),
        rec(5, "resolved", tenant="prod", item="h2", target_definition_id=8, target_version_id=80),
    ]
    state = fold(records)
    st = state[("prod", "h1")]
    assert st.status == "done" and (st.target_definition_id, st.target_version_id) == (7, 70)
    assert ("prod", "h2") not in state


def test_fold_gone_reopens_a_done_item() -> None:
    """`gone` (the target no longer holds what was imported) makes a done item pending again,
    without its ids; the next intent and commit then fold as for any item."""
    records = [
        intent(1),
        rec(2, "committed", tenant="prod", item="h1", target_definition_id=7, target_version_id=70),
        rec(3, "gone", tenant="prod", item="h1", reason="deleted"),
    ]
    st = fold(records)[("prod", "h1")]
    assert st.status == "pending" and st.target_definition_id is None and st.attempts == 1
    records += [
        intent(4),
        rec(5, "committed", tenant="prod", item="h1", target_definition_id=9, target_version_id=90),
    ]
    st = fold(records)[("prod", "h1")]
    assert st.status == "done" and st.attempts == 2
    assert (st.target_definition_id, st.target_version_id) == (9, 90)
