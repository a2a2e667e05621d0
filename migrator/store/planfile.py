"""Saved plans (`migrator plan --out FILE`, `migrate --plan FILE`): the `migrator-plan/1` file,
written a piece at a time, read back a value at a time, and checked against a tenant's plan of
this run."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any, Protocol

import orjson

from migrator import __version__
from migrator.core.config import TenantConfig
from migrator.core.errors import MigratorError, PlanError
from migrator.core.report import Report
from migrator.store.workspace import Workspace


class PlannedTenant(Protocol):
    """What a saved plan needs of one tenant's planned run (migrator.run.migrate.TenantRun)."""

    tenant: TenantConfig
    store: Workspace
    target_fingerprint: str | None

    def plan_record(self) -> dict[str, Any]: ...

    def plan_head(self) -> dict[str, Any]: ...

    def plan_items(self) -> Iterator[dict[str, Any]]: ...


class PlanRecords(Mapping[str, Any]):
    """Each planned tenant's saved-plan record, built from the workspace when asked for."""

    def __init__(self, runs: Mapping[str, PlannedTenant]) -> None:
        self.runs = dict(runs)

    def __getitem__(self, name: str) -> dict[str, Any]:
        return self.runs[name].plan_record()

    def __iter__(self) -> Iterator[str]:
        return iter(self.runs)

    def __len__(self) -> int:
        return len(self.runs)


PLAN_FORMAT = "migrator-plan/1"


def _indented(value: Any, depth: int) -> bytes:
    body = orjson.dumps(value, option=orjson.OPT_INDENT_2)
    return b"\n".join(b"  " * depth + line for line in body.splitlines())


def plan_file_chunks(report: Report) -> Iterator[bytes]:
    """The saved form of a dry run's plans (`migrator plan --out FILE`), an item at a time."""
    head = {"format": PLAN_FORMAT, "tool_version": __version__, "created_at": time.time()}
    text = orjson.dumps(head, option=orjson.OPT_INDENT_2)
    yield text[: text.rindex(b"}")].rstrip() + b',\n  "tenants": {'
    plans = report.plans
    runs = plans.runs if isinstance(plans, PlanRecords) else None
    for n, name in enumerate(plans):
        yield (b"\n" if n == 0 else b",\n") + b"    " + orjson.dumps(name) + b": "
        if runs is None:
            yield _indented(plans[name], 2).lstrip()
            continue
        run = runs[name]
        record = _indented(run.plan_head(), 2).lstrip()
        yield record[: record.rindex(b"}")].rstrip() + b',\n      "items": ['
        first = True
        for item in run.plan_items():
            yield (b"\n" if first else b",\n") + _indented(item, 4)
            first = False
        yield b"]\n    }" if first else b"\n      ]\n    }"
    yield b"\n  }\n}\n" if plans else b"}\n}\n"


def plan_file_bytes(report: Report) -> bytes:
    return b"".join(plan_file_chunks(report))


@dataclass(frozen=True, slots=True)
class SavedTenant:
    """What `migrate --plan` checks of one tenant's saved record: the tenant it was planned for,
    the target as it was, and the planned items (counted and hashed, not kept)."""

    identity: Any
    target: Any
    items: int
    digest: str


@dataclass(frozen=True, slots=True)
class SavedPlan:
    path: str
    tenants: dict[str, SavedTenant]


def items_digest(items: Iterable[tuple[Any, Any, Any]]) -> tuple[int, str]:
    """(count, hash) of planned items as (item key, action, version) triples, in order."""
    h = hashlib.sha256()
    n = 0
    for triple in items:
        h.update(orjson.dumps(triple))
        h.update(b"\n")
        n += 1
    return n, h.hexdigest()


_NUMBER_GOES_ON = frozenset(".eE+-0123456789")


class _NotJSON(Exception):
    pass


class _Reader:
    """One JSON text read a value at a time: only a chunk of the file and the value being read
    are held (`json`'s C scanner on a sliding buffer). A saved plan of 100,000 items is checked
    without ever being in memory whole."""

    _DECODER = json.JSONDecoder()
    _SPACE = re.compile(r"[ \t\n\r]*")

    def __init__(self, file: IO[str], chunk: int) -> None:
        self.file = file
        self.chunk = chunk
        self.buf = ""
        self.pos = 0
        self.eof = False

    def _fill(self, want: int) -> bool:
        if self.eof:
            return False
        more = self.file.read(max(want, self.chunk))
        if not more:
            self.eof = True
            return False
        self.buf = self.buf[self.pos :] + more
        self.pos = 0
        return True

    def peek(self) -> str:
        """The next character that is not white space ('' at the end), not consumed."""
        while True:
            self.pos = self._SPACE.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf) or not self._fill(self.chunk):
                return self.buf[self.pos : self.pos + 1]

    def take(self, char: str) -> None:
        if self.peek() != char:
            raise _NotJSON
        self.pos += 1

    def value(self) -> Any:
        self.peek()
        want = self.chunk
        while True:
            try:
                value, end = self._DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError:
                # Cut off by the end of the buffer, or broken: read more (twice as much each
                # time, so a long value costs linear time), and only at the end call it broken.
                if self._fill(want):
                    want *= 2
                    continue
                raise _NotJSON from None
            # A number cut by the end of the buffer reads as a shorter one ("12" of "123", "1"
            # of "1.5"): when more may follow, read on and decode again.
            if (end == len(self.buf) or self.buf[end] in _NUMBER_GOES_ON) and self._fill(want):
                continue
            self.pos = end
            return value

    def members(self) -> Iterator[str]:
        """The keys of an object; the caller reads each key's value before asking for the next."""
        for _ in self._entries("{", "}"):
            key = self.value()
            if not isinstance(key, str):
                raise _NotJSON
            self.take(":")
            yield key

    def elements(self) -> Iterator[Any]:
        for _ in self._entries("[", "]"):
            yield self.value()

    def _entries(self, opening: str, closing: str) -> Iterator[None]:
        """Once per entry of an object or array; the caller reads the entry before the next."""
        self.take(opening)
        if self.peek() == closing:
            self.pos += 1
            return
        while True:
            yield
            if self.peek() == ",":
                self.pos += 1
            else:
                self.take(closing)
                return


def _saved_tenant(reader: _Reader, path: str, name: str) -> SavedTenant:
    head: dict[str, Any] = {}
    count, digest = items_digest(())
    if reader.peek() != "{":
        raise MigratorError(f"{path}: tenants.{name}: not a tenant's plan (not an object)")
    for key in reader.members():
        if key != "items":
            head[key] = reader.value()
            continue
        if reader.peek() != "[":
            raise MigratorError(f"{path}: tenants.{name}.items: not a list")

        def triples() -> Iterator[tuple[Any, Any, Any]]:
            for n, item in enumerate(reader.elements()):
                if not isinstance(item, dict):
                    raise MigratorError(f"{path}: tenants.{name}.items[{n}]: not an item")
                yield item.get("item"), item.get("action"), item.get("version")

        count, digest = items_digest(triples())
    return SavedTenant(head.get("identity"), head.get("target"), count, digest)


def load_plan_file(path: str, *, chunk: int = 1 << 16) -> SavedPlan:
    """Read a saved plan a value at a time; MigratorError naming the file if it is not one."""
    not_a_plan = MigratorError(
        f"{path}: not a plan file written by `migrator plan --out` ({PLAN_FORMAT})"
    )
    tenants: dict[str, SavedTenant] | None = None
    fmt: Any = None
    try:
        with open(path, encoding="utf-8") as file:
            reader = _Reader(file, chunk)
            if reader.peek() != "{":
                raise _NotJSON
            for key in reader.members():
                if key == "tenants":
                    if reader.peek() != "{":
                        raise not_a_plan
                    tenants = {}
                    for name in reader.members():
                        tenants[name] = _saved_tenant(reader, path, name)
                    continue
                value = reader.value()
                if key == "format":
                    fmt = value
                    if fmt != PLAN_FORMAT:  # before reading on through whatever this is
                        raise not_a_plan
            if reader.peek() != "":
                raise _NotJSON
    except OSError as exc:
        raise MigratorError(f"{path}: cannot read the plan: {exc.strerror}") from None
    except (_NotJSON, UnicodeDecodeError):
        raise MigratorError(f"{path}: not a plan file (not JSON)") from None
    if fmt != PLAN_FORMAT or tenants is None:
        raise not_a_plan
    return SavedPlan(path, tenants)


def check_saved_plan(saved: SavedPlan, run: PlannedTenant) -> None:
    """Refuse a tenant whose target, identity or plan changed since the plan was saved."""
    path = saved.path
    name = run.tenant.name
    record = saved.tenants.get(name)
    if record is None:
        raise PlanError(f"{path}: the plan has no tenant {name!r}; plan again with this tenant")
    if record.identity != run.plan_head()["identity"]:
        raise PlanError(
            f"{path}: tenant {name!r} points at a different tenant than when planned; plan again"
        )
    if record.target != run.target_fingerprint:
        raise PlanError(
            f"{path}: tenant {name!r} changed since planning (its workflows or versions differ); plan again"
        )
    planned = items_digest(
        (i.doc.key, i.action.value, i.version) for i in run.store.planned_items(name)
    )
    if planned != (record.items, record.digest):
        raise PlanError(
            f"{path}: the sources or the journal differ from the plan for tenant {name!r}; plan again"
        )
