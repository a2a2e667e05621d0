"""Journal property tests: any cut or corruption gives a valid prefix's state or a clear refusal."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from migrator.core.errors import JournalError
from migrator.core.journal_records import Record, decode_line, encode, fold, scan
from migrator.store.journal import Journal, read_journal
from tests.strategies import journals

PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def intact_lines(original: list[Record], first_damaged_byte: int) -> int:
    """How many of the original's lines end before `first_damaged_byte` (they are untouched)."""
    end = 0
    for n, record in enumerate(original):
        end += len(encode(record))
        if end > first_damaged_byte:
            return n
    return len(original)


def assert_prefix_or_refusal(
    original: list[Record], damaged: bytes, first_damaged_byte: int
) -> None:
    """The damaged bytes scan to a prefix of the original (with its fold) that keeps every line
    before the damage, or raise JournalError: never a shorter prefix that silently drops them.
    And only the file's last line may be cut: damage before it raises, whatever follows."""
    try:
        result = scan(damaged, "j.jsonl")
    except JournalError as err:
        msg = str(err)
        assert "j.jsonl" in msg and "\n" not in msg
        return
    # Where the bytes first differ (an inserted byte may equal the one it pushes along).
    raw = b"".join(encode(r) for r in original)
    differ = next((i for i, (a, b) in enumerate(zip(raw, damaged, strict=False)) if a != b), None)
    first_difference = min(len(raw), len(damaged)) if differ is None else differ
    last_line_start = damaged.rfind(b"\n", 0, len(damaged) - 1) + 1
    assert first_difference >= last_line_start, "damage before the last line was not refused"
    cut = damaged[result.valid_length :]
    assert cut == (result.torn_tail or b""), "bytes left out without being reported cut"
    assert b"\n" not in cut[:-1], "a line before the last was cut instead of refused"
    k = len(result.records)
    assert k >= intact_lines(original, first_damaged_byte), (k, first_damaged_byte)
    assert result.records == original[:k]
    assert fold(result.records) == fold(original[:k])
    assert damaged[: result.valid_length] == b"".join(encode(r) for r in original[:k])


@PROPS
@given(journals(), st.data())
def test_encode_decode_round_trip(records: list[Record], data: st.DataObject) -> None:
    """Every record decodes back to itself from its encoded line."""
    for record in records:
        assert decode_line(encode(record)) == record


@PROPS
@given(journals(), st.data())
def test_cut_anywhere_gives_a_prefix(records: list[Record], data: st.DataObject) -> None:
    """Cutting the journal at any byte offset scans cleanly to a prefix of its records."""
    raw = b"".join(encode(r) for r in records)
    offset = data.draw(st.integers(0, len(raw)))
    result = scan(raw[:offset])
    k = len(result.records)
    assert result.records == records[:k]
    assert result.valid_length + len(result.torn_tail or b"") == offset
    # Whole lines are never lost: only the line the cut falls in goes.
    assert result.valid_length == len(b"".join(encode(r) for r in records[:k]))
    assert raw[result.valid_length : offset].count(b"\n") == 0


@PROPS
@given(journals(), st.data())
def test_one_changed_byte_is_a_prefix_or_a_refusal(
    records: list[Record], data: st.DataObject
) -> None:
    """Changing any one byte gives the state of a valid prefix or a clear JournalError."""
    raw = bytearray(b"".join(encode(r) for r in records))
    i = data.draw(st.integers(0, len(raw) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != raw[i]))
    raw[i] = new
    assert_prefix_or_refusal(records, bytes(raw), i)


@PROPS
@given(journals(), st.data())
def test_splices_are_a_prefix_or_a_refusal(records: list[Record], data: st.DataObject) -> None:
    """Overwriting, deleting or inserting a run of bytes, then maybe cutting, never misleads."""
    raw = b"".join(encode(r) for r in records)
    start = data.draw(st.integers(0, len(raw)))
    end = data.draw(st.integers(start, min(len(raw), start + 64)))
    patch = data.draw(st.binary(max_size=64) | st.sampled_from([b"\n", b"\x00" * 16, b"}\n{"]))
    damaged = raw[:start] + patch + raw[end:]
    first_damaged_byte = start if (patch or start < end) else len(raw)
    if data.draw(st.booleans()):
        cut = data.draw(st.integers(0, len(damaged)))
        damaged = damaged[:cut]
        first_damaged_byte = min(first_damaged_byte, cut)
    assert_prefix_or_refusal(records, damaged, first_damaged_byte)


@PROPS
@given(journals(), st.data())
def test_damage_before_the_last_line_is_refused(records: list[Record], data: st.DataObject) -> None:
    """Any one byte changed in a line that is not the file's last (its newline included) raises JournalError naming the line: a crash tears only the end, so this is never cut silently."""
    lines = [encode(r) for r in records]
    assume(len(lines) >= 2)
    i = data.draw(st.integers(0, len(lines) - 2))
    # The newline itself often: a record run into the next line must not pass for a torn one.
    pos = data.draw(st.just(len(lines[i]) - 1) | st.integers(0, len(lines[i]) - 1))
    line = bytearray(lines[i])
    line[pos] = data.draw(st.integers(0, 255).filter(lambda b: b != line[pos]))
    damaged = b"".join([*lines[:i], bytes(line), *lines[i + 1 :]])
    with pytest.raises(JournalError, match=r"j\.jsonl: the journal is damaged at line \d+"):
        scan(damaged, "j.jsonl")


@PROPS
@given(journals(), st.data())
def test_duplicated_or_dropped_lines_are_refused(
    records: list[Record], data: st.DataObject
) -> None:
    """A line repeated or missing before the end (a bad copy or merge) is refused, not folded."""
    lines = [encode(r) for r in records]
    assume(len(lines) >= 3)
    i = data.draw(st.integers(0, len(lines) - 2))
    dup = [*lines[: i + 1], lines[i], *lines[i + 1 :]]
    drop = lines[:i] + lines[i + 1 :]
    for bad in (dup, drop):
        with pytest.raises(JournalError):
            scan(b"".join(bad))


@settings(max_examples=25, deadline=None)
@given(journals(), st.data())
def test_reopening_a_cut_journal_resumes_from_the_prefix(
    records: list[Record], data: st.DataObject
) -> None:
    """Opening a journal cut anywhere recovers the prefix's state and continues its sequence."""
    raw = b"".join(encode(r) for r in records)
    offset = data.draw(st.integers(0, len(raw)))
    prefix = scan(raw[:offset]).records
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "j.jsonl"
        path.write_bytes(raw[:offset])

        async def reopen() -> None:
            async with Journal.open(path, {"run_id": "again"}) as journal:
                assert journal.state == fold(prefix)

        anyio.run(reopen, backend="asyncio")
        after = read_journal(path).records
    assert after[: len(prefix)] == prefix
    assert [r.type for r in after[len(prefix) :]] == ["run_started", "run_finished"]
    assert [r.seq for r in after] == list(range(1, len(after) + 1))


@PROPS
@given(journals())
def test_fold_invariants(records: list[Record]) -> None:
    """An item with a committed record is done; attempts count its intents up to the commit."""
    state = fold(records)
    for (tenant, item), item_state in state.items():
        mine = [r for r in records if r.get("tenant") == tenant and r.get("item") == item]
        types = [r.type for r in mine]
        if "committed" in types:
            assert item_state.status == "done"
            assert item_state.attempts == types[: types.index("committed")].count("intent")
        else:
            assert item_state.attempts == types.count("intent")
            last = [t for t in types if t != "verified"]
            expected = {"intent": "in_doubt"}.get(last[-1], last[-1]) if last else "pending"
            assert item_state.status == expected
