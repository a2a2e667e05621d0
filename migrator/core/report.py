"""Outcomes of a run: one record per (tenant, document), the report model and its JSON.

Pure: the engine hands over `ItemOutcome`s; this module only counts, orders and writes them as
JSON (a secret a server echoed is redacted). Text for people is render/outcomes.py's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

import orjson

from migrator.core.logs import redact_text


class ItemStatus(StrEnum):
    """What migrate (and plan) say of one document in one tenant."""

    IMPORTED = "imported"  # landed in this run
    SKIPPED = "skipped"  # nothing to do: identical, done earlier, a duplicate
    PLANNED = "planned"  # a dry run: what the run would do
    BLOCKED = "blocked"  # could not be sent (why is in `error`)
    FAILED = "failed"  # the tenant refused it
    # Left for another run, which finishes it: transient trouble, an unanswered import, or not
    # reached (the run stopped, credentials refused). `migrator status` says the same word.
    DEFERRED = "deferred"


STATUSES = tuple(s.value for s in ItemStatus)
# Items that need a person or another run: a report holding any of them is not ok (exit 1).
FAILURES = (ItemStatus.FAILED.value, ItemStatus.DEFERRED.value, ItemStatus.BLOCKED.value)


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    tenant: str
    source: str
    workflow_name: str
    status: str
    target_workflow_id: int | None = None
    version: str | None = None
    error: str | None = None
    reason: str | None = None  # why skipped, or what was planned
    action: str | None = None  # create | new_version (planned or done)
    target_version_id: int | None = None
    verified: bool | None = None  # set by --verify / migrator verify
    # Tenant-specific values the document holds (spec §4.6): each {path, kind, value, substitute},
    # substitute = what this tenant's table makes of the value, null when no entry covers it.
    tenant_values: tuple[dict[str, str | None], ...] | None = None
    # Dry runs: what a planned new version changes against the version it replaces, one line.
    change: str | None = None


_ALWAYS = {"tenant", "source", "workflow_name", "status", "target_workflow_id", "version", "error"}
_FIELDS = tuple(f.name for f in fields(ItemOutcome))


def outcome_json(item: ItemOutcome) -> dict[str, Any]:
    """An outcome as the report writes it: empty optional fields left out. The values are the
    outcome's own (it is frozen; the dict is only ever serialised): `asdict`'s deep copy of
    every value was a noticeable part of a fleet run's CPU, once per item."""
    return {k: v for k in _FIELDS if (v := getattr(item, k)) is not None or k in _ALWAYS}


def outcome_row(item: ItemOutcome) -> bytes:
    return orjson.dumps(outcome_json(item))


def outcome_from_row(raw: bytes) -> ItemOutcome:
    data = orjson.loads(raw)
    values = data.get("tenant_values")
    if values is not None:
        data["tenant_values"] = tuple(values)
    return ItemOutcome(**data)


@runtime_checkable
class StoredOutcomes(Protocol):
    """Outcomes kept outside memory (the run's workspace): counted there, iterated in order."""

    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[ItemOutcome]: ...
    def counts(self) -> dict[str, dict[str, int]]: ...
    def any_unverified(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Report:
    # A tuple from small tools; from `migrate`, a sequence read from the run's workspace, already
    # in report order, so that a run's memory does not grow with its outcomes.
    items: Sequence[ItemOutcome]
    notices: tuple[str, ...] = ()
    interrupted: bool = False
    plans: Mapping[str, Any] = field(default_factory=dict)  # per tenant, for `plan --out`
    # The command's own statuses and which of them need a person (rollback has its own: its
    # report never says `imported 0, blocked 0`); the default is migrate's.
    statuses: tuple[str, ...] = STATUSES
    failures: tuple[str, ...] = FAILURES

    def summary(self) -> dict[str, int]:
        if self.statuses is STATUSES:
            counts = dict.fromkeys(
                ("imported", "skipped", "failed", "deferred", "planned", "blocked"), 0
            )
        else:
            counts = dict.fromkeys(self.statuses, 0)
        for row in self.per_tenant().values():
            for status, n in row.items():
                counts[status] = counts.get(status, 0) + n
        return counts

    def per_tenant(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        if isinstance(self.items, StoredOutcomes):
            for tenant, row in sorted(self.items.counts().items()):
                out[tenant] = {**dict.fromkeys(self.statuses, 0), **row}
            return out
        for item in self.items:
            row = out.setdefault(item.tenant, dict.fromkeys(self.statuses, 0))
            row[item.status] = row.get(item.status, 0) + 1
        return out

    def ordered(self) -> Iterator[ItemOutcome]:
        """The items by tenant, workflow name and source."""
        return ordered(self.items)

    @property
    def ok(self) -> bool:
        """True when no item has one of the command's failure statuses (for migrate: failed,
        blocked, left for another run), nothing failed --verify and the run was not interrupted."""
        s = self.summary()
        return (
            all(s.get(status, 0) == 0 for status in self.failures)
            and not self.interrupted
            and not self._any_unverified()
        )

    def _any_unverified(self) -> bool:
        if isinstance(self.items, StoredOutcomes):
            return self.items.any_unverified()
        return any(item.verified is False for item in self.items)

    def to_json(self) -> dict[str, Any]:
        return orjson.loads(self.dumps())  # type: ignore[no-any-return]

    def chunks(self) -> Iterator[bytes]:
        """The JSON report, a piece at a time (a run's items are streamed, never all in memory);
        any registered secret a server echoed into an error is redacted."""
        head = {
            "summary": self.summary(),
            "tenants": self.per_tenant(),
            "interrupted": self.interrupted,
            "notices": list(self.notices),
        }
        text = orjson.dumps(head, option=orjson.OPT_INDENT_2).decode()
        yield redact_text(text[: text.rindex("}")].rstrip()).encode() + b',\n  "items": ['
        first = True
        for item in self.ordered():
            body = orjson.dumps(outcome_json(item), option=orjson.OPT_INDENT_2).decode()
            body = "\n".join("    " + line for line in body.splitlines())
            yield (b"\n" if first else b",\n") + redact_text(body).encode()
            first = False
        yield b"]\n}\n" if first else b"\n  ]\n}\n"

    def dumps(self) -> bytes:
        """The JSON report, whole (small runs and tests; the CLI writes `chunks()`)."""
        return b"".join(self.chunks())


def _order(item: ItemOutcome) -> tuple[str, str, str]:
    return (item.tenant, item.workflow_name, item.source)


def ordered(items: Iterable[ItemOutcome]) -> Iterator[ItemOutcome]:
    """Outcomes by tenant, workflow name and source; stored ones come that way already."""
    if isinstance(items, StoredOutcomes):
        return iter(items)
    return iter(sorted(items, key=_order))


def unreadable_outcomes(
    errors: Iterable[Exception], tenants: Iterable[str], **extra: Any
) -> list[ItemOutcome]:
    """One failed item per (unreadable source, tenant): the document never reached any tenant."""
    names = list(tenants)
    return [
        ItemOutcome(
            tenant=tenant,
            source=getattr(err, "source", ""),
            workflow_name="",
            status="failed",
            error=str(err),
            **extra,
        )
        for err in errors
        for tenant in names
    ]
