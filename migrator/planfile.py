"""Saved plans (`migrator plan --out FILE`, `migrate --plan FILE`): the `migrator-plan/1` file,
written a piece at a time, read back, and checked against a tenant's plan of this run."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from migrator import __version__
from migrator.errors import MigratorError, PlanError
from migrator.report import Report

if TYPE_CHECKING:
    from migrator.engine import TenantRun


class PlanRecords(Mapping[str, Any]):
    """Each planned tenant's saved-plan record, built from the workspace when asked for."""

    def __init__(self, runs: Mapping[str, TenantRun]) -> None:
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


def load_plan_file(path: str) -> dict[str, Any]:
    try:
        data = orjson.loads(open(path, "rb").read())  # noqa: SIM115 - small file, read at once
    except OSError as exc:
        raise MigratorError(f"{path}: cannot read the plan: {exc.strerror}") from None
    except orjson.JSONDecodeError:
        raise MigratorError(f"{path}: not a plan file (not JSON)") from None
    if (
        not isinstance(data, dict)
        or data.get("format") != PLAN_FORMAT
        or not isinstance(data.get("tenants"), dict)
    ):
        raise MigratorError(
            f"{path}: not a plan file written by `migrator plan --out` ({PLAN_FORMAT})"
        )
    data["path"] = path
    return data


def check_saved_plan(saved: Mapping[str, Any], run: TenantRun) -> None:
    """Refuse a tenant whose target, identity or plan changed since the plan was saved."""
    path = saved.get("path", "plan")
    name = run.tenant.name
    record = saved["tenants"].get(name)
    if record is None:
        raise PlanError(f"{path}: the plan has no tenant {name!r}; plan again with this tenant")
    if record.get("identity") != run.plan_head()["identity"]:
        raise PlanError(
            f"{path}: tenant {name!r} points at a different tenant than when planned; plan again"
        )
    if record.get("target") != run.target_fingerprint:
        raise PlanError(
            f"{path}: tenant {name!r} changed since planning (its workflows or versions differ); plan again"
        )

    def key(items: Any) -> list[tuple[Any, ...]]:
        return [(i.get("item"), i.get("action"), i.get("version")) for i in items]

    planned = ((i.doc.key, i.action.value, i.version) for i in run.store.planned_items(name))
    if any(a != b for a, b in itertools.zip_longest(key(record.get("items", [])), planned)):
        raise PlanError(
            f"{path}: the sources or the journal differ from the plan for tenant {name!r}; plan again"
        )
