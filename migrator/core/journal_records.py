"""The journal's records, pure: the format, encode and decode a line, scan a journal for its
longest valid prefix, fold records into each item's state. No files here; see docs/journal.md.
"""

from __future__ import annotations

import io
import re
import zlib
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

import orjson

from migrator.core.errors import JournalError

FORMAT_VERSION = 1

ITEM_TYPES = frozenset(
    {
        "intent",
        "committed",
        "failed",
        "deferred",
        "skipped",
        "verified",
        "resolved",
        "gone",
        "rekeyed",
    }
)
RECORD_TYPES = ITEM_TYPES | {
    "run_started",
    "planned",
    "run_finished",
    # rollouts (core/rollout.py): before a version is switched on, smoke runs, waves, rollbacks
    "activating",
    "smoke",
    "wave",
    "rollback",
}
RESERVED = frozenset({"v", "seq", "type", "t", "crc"})
# Field names that suggest a credential: such a field is refused rather than written to disk.
_SECRET_NAME = re.compile(r"secret|token|password|passwd|authorization", re.IGNORECASE)

Status = Literal["pending", "in_doubt", "done", "failed", "deferred", "skipped"]
STATUSES: tuple[Status, ...] = ("pending", "in_doubt", "done", "failed", "deferred", "skipped")
ItemKey = tuple[str, str]

# Every line ends with this member; its value is the CRC32 (8 lower-case hex digits) of the line
# with the member removed, which is exactly orjson.dumps(record without crc, OPT_SORT_KEYS).
_CRC_PREFIX = b',"crc":"'
_CRC_SUFFIX_LEN = len(_CRC_PREFIX) + 8 + 2  # ,"crc":"  + 8 hex + "}
_HEX = frozenset(b"0123456789abcdef")


@dataclass(frozen=True, slots=True)
class Record:
    """One journal record: sequence number, type, unix time, and its type's fields."""

    seq: int
    type: str
    t: float
    fields: Mapping[str, Any] = field(default_factory=dict)

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)


@dataclass(frozen=True, slots=True)
class ScanResult:
    """The longest valid prefix of a journal: its records, its length, and the cut tail if any."""

    records: list[Record]
    valid_length: int
    torn_tail: bytes | None = None
    torn_line: int | None = None  # 1-based line number of the cut tail


@dataclass(frozen=True, slots=True)
class ItemState:
    """Where one (tenant, item) stands after folding every record about it."""

    tenant: str
    item: str
    status: Status
    attempts: int = 0  # intents seen
    action: str | None = None
    name: str | None = None
    source: str | None = None
    version: str | None = None
    idempotency_key: str | None = None
    target_definition_id: Any = None
    target_version_id: Any = None
    intent_time: float | None = None
    reason: str | None = None
    verified: bool | None = None
    verify_detail: str | None = None
    last_seq: int = 0
    last_time: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One run as the journal tells it: its run_started record and its run_finished, if any."""

    started: Record
    finished: Record | None


def _check_names(value: Any, where: str) -> None:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            if not isinstance(key, str):
                raise ValueError(f"journal field {where}: keys must be strings")
            if _SECRET_NAME.search(key):
                raise ValueError(
                    f"journal field {where}{key!r} looks secret-bearing; the journal never "
                    "stores credentials"
                )
            _check_names(inner, f"{where}{key}.")
    elif isinstance(value, list | tuple):
        for inner in value:
            _check_names(inner, where)


def encode(record: Record) -> bytes:
    """The record as one journal line (bytes, ending in a newline), checksum included.

    Raises ValueError for an unknown type, a reserved or secret-looking field name, or an item
    record without string `tenant` and `item`; TypeError for a value JSON can't hold.
    """
    if record.type not in RECORD_TYPES:
        raise ValueError(f"unknown journal record type {record.type!r}")
    clash = RESERVED.intersection(record.fields)
    if clash:
        raise ValueError(f"journal fields {sorted(clash)} are reserved")
    _check_names(record.fields, "")
    if record.type in ITEM_TYPES:
        for name in ("tenant", "item"):
            if not isinstance(record.fields.get(name), str):
                raise ValueError(f"a {record.type} record needs a string {name!r}")
    body = orjson.dumps(
        {
            **record.fields,
            "v": FORMAT_VERSION,
            "seq": record.seq,
            "type": record.type,
            "t": record.t,
        },
        option=orjson.OPT_SORT_KEYS,
    )
    crc = b"%08x" % zlib.crc32(body)
    return body[:-1] + _CRC_PREFIX + crc + b'"}\n'


class _BadLine(JournalError):
    """A line that is not a valid record; `intact` when its checksum held (so not a torn write)."""

    def __init__(self, reason: str, *, intact: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.intact = intact


def decode_line(line: bytes) -> Record:
    """Parse one journal line (with or without its newline); JournalError says what is wrong."""
    if line.endswith(b"\n"):
        line = line[:-1]
    if len(line) <= _CRC_SUFFIX_LEN or not line.endswith(b'"}'):
        raise _BadLine("no checksum")
    cut = len(line) - _CRC_SUFFIX_LEN
    if line[cut : cut + len(_CRC_PREFIX)] != _CRC_PREFIX:
        raise _BadLine("no checksum")
    crc_hex = line[cut + len(_CRC_PREFIX) : -2]
    if not _HEX.issuperset(crc_hex):
        raise _BadLine("malformed checksum")
    body = line[:cut] + b"}"
    if zlib.crc32(body) != int(crc_hex, 16):
        raise _BadLine("checksum mismatch")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _BadLine("not JSON", intact=True) from None
    if not isinstance(data, dict):
        raise _BadLine("not a JSON object", intact=True)
    v = data.pop("v", None)
    seq = data.pop("seq", None)
    rtype = data.pop("type", None)
    t = data.pop("t", None)
    if v != FORMAT_VERSION:
        raise _BadLine(
            f"format version {v!r} is not supported (this migrator reads version "
            f"{FORMAT_VERSION}; a newer migrator wrote it?)",
            intact=True,
        )
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise _BadLine("bad sequence number", intact=True)
    if not isinstance(rtype, str) or not isinstance(t, int | float) or isinstance(t, bool):
        raise _BadLine("bad type or time", intact=True)
    if rtype in ITEM_TYPES and not (
        isinstance(data.get("tenant"), str) and isinstance(data.get("item"), str)
    ):
        raise _BadLine(f"a {rtype} record without tenant and item", intact=True)
    return Record(seq=seq, type=rtype, t=float(t), fields=data)


def _damaged(source: str, lineno: int, why: str) -> JournalError:
    keep = lineno - 1
    truncate = (
        f"or keep the {keep} good records before it (head -n {keep} {source} > {source}.fixed)"
        if keep
        else "or delete it"
    )
    return JournalError(
        f"{source}: the journal is damaged at line {lineno} ({why}); move it aside and run with "
        f"--journal NEW (work already imported is detected on the target), {truncate}"
    )


_RECORD_END = re.compile(rb',"crc":"[0-9a-f]{8}"\}')


def _refuse_run_together(line: bytes, source: str, lineno: int) -> None:
    """Raise when the last line, about to be cut as torn, starts with a whole valid record
    followed by more bytes: that record's newline was changed (damage, not a crash: an append
    torn part-way leaves a prefix of its lines, and every line it completed ends in a newline),
    and cutting would silently drop a record acknowledged as durable. NULs after it are a torn
    write's (the record belonged to the unacknowledged group), not damage."""
    body = line.removesuffix(b"\n")
    for match in _RECORD_END.finditer(body):
        rest = body[match.end() :]
        if not rest.strip(b"\x00"):
            return
        try:
            decode_line(body[: match.end()] + b"\n")
        except _BadLine:
            continue
        raise _damaged(source, lineno, "a whole record runs into the next line (a newline is gone)")


def scan(data: bytes, source: str = "journal") -> ScanResult:
    """The longest valid prefix of journal bytes; only the last line may be cut as torn.

    A last line without its newline, or whose checksum fails, is an append that never completed:
    it is cut and returned as `torn_tail`. Anything wrong before the last line (bad checksum, not
    JSON, a sequence gap or regression) raises JournalError naming the line and what to do.
    """
    tail = ScanTail()
    records = list(scan_lines(io.BytesIO(data), source, tail))
    return ScanResult(records, tail.valid_length, tail.torn_tail, tail.torn_line)


@dataclass(slots=True)
class ScanTail:
    """What `scan_lines` found after the records: the valid length and the torn tail, if any."""

    valid_length: int = 0
    torn_tail: bytes | None = None
    torn_line: int | None = None
    last_seq: int = 0


def scan_lines(lines: Iterable[bytes], source: str, tail: ScanTail) -> Iterator[Record]:
    """`scan`, streamed: the records of an iterable of lines (a file opened "rb"), one at a time,
    so that a long journal is never in memory whole; `tail` is filled in when it ends."""
    pos = 0
    lineno = 0
    expected_seq = 1
    it = iter(lines)
    line = next(it, None)
    while line is not None:
        lineno += 1
        following = next(it, None)
        if not line.endswith(b"\n"):
            # No newline: the write was torn part-way (whatever it holds, it was never
            # acknowledged), unless a whole record ends inside it: a line before lost its newline.
            _refuse_run_together(line, source, lineno)
            tail.valid_length, tail.torn_tail, tail.torn_line = pos, line, lineno
            return
        try:
            record = decode_line(line)
        except _BadLine as bad:
            if following is None and not bad.intact:
                _refuse_run_together(line, source, lineno)
                tail.valid_length, tail.torn_tail, tail.torn_line = pos, line, lineno
                return
            raise _damaged(source, lineno, bad.reason) from None
        if record.seq != expected_seq:
            why = "sequence gap" if record.seq > expected_seq else "sequence goes backwards"
            raise _damaged(source, lineno, f"{why}: {record.seq} after {expected_seq - 1}")
        yield record
        tail.last_seq = record.seq
        expected_seq += 1
        pos += len(line)
        line = following
    tail.valid_length = pos


_STANDARD = frozenset(
    {
        "tenant",
        "item",
        "action",
        "name",
        "source",
        "version",
        "idempotency_key",
        "target_definition_id",
        "target_version_id",
        "reason",
        "permanent",
        "ok",
        "detail",
    }
)


def fold(records: Iterable[Record]) -> dict[ItemKey, ItemState]:
    """Each (tenant, item)'s state after the records, in order (see `fold_into`)."""
    state: dict[ItemKey, ItemState] = {}
    fold_into(records, state)
    return state


def fold_into(records: Iterable[Record], state: MutableMapping[ItemKey, ItemState]) -> None:
    """Fold the records into `state` (a dict, or a table on disk for long journals).

    intent → in_doubt until an outcome; committed → done, and final (nothing later undoes it but
    `gone`: the target no longer holds it, so it is pending again, its attempts kept);
    failed / deferred / skipped → that status; verified only annotates; resolved fills in the
    ids a committed import was written without; rekeyed carries an item an earlier release
    named by another key over to today's (`to`). Fields not part of the format (e.g.
    `plan_hash`) are kept in `extra`, the latest value winning.
    """
    for record in records:
        if record.type not in ITEM_TYPES:
            continue
        f = record.fields
        key: ItemKey = (f["tenant"], f["item"])
        if record.type == "rekeyed":
            to = f.get("to")
            if isinstance(to, str):
                rekey_item(state, key, to, record.seq, record.t)
            continue
        cur = state.get(key) or ItemState(tenant=key[0], item=key[1], status="pending")
        if cur.status == "done" and record.type not in ("verified", "resolved", "gone"):
            continue
        extra = {k: v for k, v in f.items() if k not in _STANDARD}
        common: dict[str, Any] = {
            "name": f.get("name", cur.name),
            "source": f.get("source", cur.source),
            "last_seq": record.seq,
            "last_time": record.t,
            "extra": {**cur.extra, **extra} if extra else cur.extra,
        }
        if record.type == "intent":
            cur = replace(
                cur,
                status="in_doubt",
                attempts=cur.attempts + 1,
                action=f.get("action"),
                version=f.get("version"),
                idempotency_key=f.get("idempotency_key"),
                target_definition_id=f.get("target_definition_id"),
                target_version_id=None,
                intent_time=record.t,
                reason=None,
                **common,
            )
        elif record.type == "committed":
            cur = replace(
                cur,
                status="done",
                version=f.get("version", cur.version),
                target_definition_id=f.get("target_definition_id", cur.target_definition_id),
                target_version_id=f.get("target_version_id"),
                reason=None,
                **common,
            )
        elif record.type == "skipped":
            # A skip for identical content names the version already there, so that
            # `migrator activate` can switch it on like an import.
            cur = replace(
                cur,
                status="skipped",
                reason=f.get("reason"),
                version=f.get("version", cur.version),
                target_definition_id=f.get("target_definition_id", cur.target_definition_id),
                **common,
            )
        elif record.type in ("failed", "deferred"):
            status: Status = record.type  # type: ignore[assignment]
            cur = replace(cur, status=status, reason=f.get("reason"), **common)
        elif record.type == "resolved":
            if cur.status != "done":
                continue  # ids of an import that is not (or no longer) done mean nothing
            definition_id = f.get("target_definition_id")
            version_id = f.get("target_version_id")
            cur = replace(
                cur,
                target_definition_id=cur.target_definition_id
                if definition_id is None
                else definition_id,
                target_version_id=cur.target_version_id if version_id is None else version_id,
                **common,
            )
        elif record.type == "gone":
            cur = replace(
                cur,
                status="pending",
                target_definition_id=None,
                target_version_id=None,
                reason=f.get("reason"),
                **common,
            )
        else:  # verified
            detail = f.get("detail")
            cur = replace(
                cur,
                verified=bool(f.get("ok")),
                verify_detail=None if detail is None else str(detail),
                **common,
            )
        state[key] = cur


def rekey_item(
    state: MutableMapping[ItemKey, ItemState], key: ItemKey, to: str, seq: int, t: float
) -> None:
    """Move an item's state to the key `to` of the same tenant. When `to` already has a state
    (two earlier keys for one document today), a done item wins over one that is not: its
    import is on the target; otherwise the state already there stays."""
    old = state.get(key)
    if old is None or to == key[1]:
        return
    del state[key]
    new_key: ItemKey = (key[0], to)
    cur = state.get(new_key)
    if cur is not None and (cur.status == "done" or old.status != "done"):
        return
    state[new_key] = replace(old, item=to, last_seq=seq, last_time=t)


def summarize(
    state: Mapping[ItemKey, ItemState], expected: Iterable[ItemKey] = ()
) -> dict[str, dict[Status, int]]:
    """Per tenant, how many items are in each status; `expected` items the journal lacks count
    as pending. Tenants are sorted; every status is present (zero when none)."""
    counts: dict[str, dict[Status, int]] = {}

    def bump(tenant: str, status: Status) -> None:
        per = counts.setdefault(tenant, dict.fromkeys(STATUSES, 0))
        per[status] += 1

    for st in state.values():
        bump(st.tenant, st.status)
    for key in expected:
        if key not in state:
            bump(key[0], "pending")
    return {tenant: counts[tenant] for tenant in sorted(counts)}


def runs(records: Iterable[Record]) -> list[RunInfo]:
    """The runs the journal records, oldest first; `finished` is None for a run that crashed."""
    out: list[RunInfo] = []
    for record in records:
        if record.type == "run_started":
            out.append(RunInfo(record, None))
        elif record.type == "run_finished" and out and out[-1].finished is None:
            out[-1] = RunInfo(out[-1].started, record)
    return out


def torn_notice(source: str, result: ScanResult | ScanTail, *, cut: bool) -> str:
    assert result.torn_tail is not None
    verb = "cut" if cut else "ignored"
    return (
        f"{source}: {verb} an incomplete last line (line {result.torn_line}, "
        f"{len(result.torn_tail)} bytes): an append that never completed"
    )


class JournalWriter(Protocol):
    """What a pipeline writes to: `store.journal.Journal`, or a stand-in that writes nowhere
    (`NullJournal`, also read-only). `state` is the folded state at open, `run_history` the
    earlier runs' `run_started` records, `notices` what opening it had to say."""

    @property
    def state(self) -> Mapping[Any, Any]: ...

    @property
    def notices(self) -> list[str]: ...

    @property
    def run_history(self) -> list[Any]: ...

    async def append(self, type: str, **fields: Any) -> Any: ...

    def finish(self, **fields: Any) -> None: ...
