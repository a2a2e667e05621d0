"""What a rollback puts back, pure: the targets a journal calls for (`RollbackLedger`) and, from
each definition as it is now (`Found`), the one action taken on it (`rollback_step`).

The list of steps is the plan: `--dry-run` renders it and the real run executes exactly it
(docs/rollout.md#rolling-back names the rules: ownership, changed since, forced).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class RollbackAction(StrEnum):
    """What a rollback does to one definition (the `action` of its report item)."""

    REACTIVATE = "reactivate"  # PATCH: the version active before, with its status
    DEACTIVATE = "deactivate"  # PATCH: status Inactive
    DELETE = "delete"  # DELETE: a definition the runs created (--delete-created)
    NONE = "none"  # already as wanted: no write
    SKIP = "skip"  # left alone on purpose (changed since the rollout, or unreadable)

    @property
    def writes(self) -> bool:
        return self in (RollbackAction.REACTIVATE, RollbackAction.DEACTIVATE, RollbackAction.DELETE)


class RollbackStatus(StrEnum):
    """How one rollback item ended (the `status` of its report item)."""

    ROLLED_BACK = "rolled_back"  # a write put it back
    UNCHANGED = "unchanged"  # already as it was: no write
    PLANNED = "planned"  # --dry-run: the write the run would send
    SKIPPED = "skipped"  # left alone: changed since the rollout (--force restores anyway)
    FAILED = "failed"  # the tenant refused, or it could not be read


ROLLBACK_STATUSES = tuple(s.value for s in RollbackStatus)
# A rollback that left something alone or could not put it back needs a person: exit 1.
ROLLBACK_FAILURES = (RollbackStatus.SKIPPED.value, RollbackStatus.FAILED.value)


@dataclass(frozen=True, slots=True)
class RollbackTarget:
    """One definition the journal's runs changed, and the state a rollback puts back: the version
    active before the first of those runs (and the status then), or Inactive for one they made.

    `ours` are the versions (strings) migrator switched on in it — for a definition it created,
    every version it imported there — and `ours_ids` their ids where the journal knows them:
    an active version outside both was put there by someone else."""

    tenant: str
    definition_id: int
    name: str
    created: bool
    version_id: int | None = None  # active before; None: there was none
    status: str = "Inactive"
    ours: frozenset[str] = frozenset()
    ours_ids: frozenset[int] = frozenset()

    def owns(self, version_id: int | None, version: str | None) -> bool:
        """Is this version one migrator brought (by its id or by its version string)?"""
        return (version_id is not None and version_id in self.ours_ids) or (
            version is not None and version in self.ours
        )


@dataclass(frozen=True, slots=True)
class Found:
    """A definition as the rollback read it. `versions` ((id, version) of each) is read only when
    deleting it is asked for: deletion needs proof that every version is migrator's."""

    exists: bool
    active_version_id: int | None = None
    active_version: str | None = None
    status: str = ""
    updated_at: str = ""
    versions: tuple[tuple[int | None, str], ...] | None = None


@dataclass(frozen=True, slots=True)
class RollbackStep:
    """The one action a rollback takes on a target, why, and the PATCH body when it patches."""

    target: RollbackTarget
    action: RollbackAction
    reason: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    found: Found = field(default_factory=lambda: Found(exists=False))


def _changed(found: Found) -> str:
    if found.active_version_id is None and found.active_version is None:
        return "changed since the rollout: no version is active"
    shown = found.active_version_id if found.active_version_id is not None else found.active_version
    return f"changed since the rollout: version id {shown} is active"


def rollback_step(
    target: RollbackTarget, found: Found, *, delete_created: bool = False, force: bool = False
) -> RollbackStep:
    """What to do so the definition is as the target wants, from how it is now.

    Rules: a definition whose active version is neither one migrator switched on nor the one it
    found before is left alone (`skip`) unless `force`; a definition migrator created is deleted
    only when every version it holds is one migrator imported (else it is set Inactive)."""

    def step(action: RollbackAction, reason: str, **fields: Any) -> RollbackStep:
        return RollbackStep(target, action, reason, fields, found)

    none, skip = RollbackAction.NONE, RollbackAction.SKIP
    if not found.exists:
        if target.created:
            return step(none, "already deleted")
        return step(none, f"definition {target.definition_id} no longer exists")
    active = found.active_version_id
    foreign_active = (active is not None or found.active_version is not None) and not target.owns(
        active, found.active_version
    )
    forced = ""
    if target.created:
        if foreign_active:
            if not force:
                return step(skip, _changed(found))
            forced = f" (forced: {_changed(found)})"
        if delete_created:
            if found.versions is None:
                foreign = ["its versions were not read"]
            else:
                foreign = [
                    f"{version or '?'} (version id {vid})"
                    for vid, version in found.versions
                    if not target.owns(vid, version)
                ]
            if not foreign:
                return step(RollbackAction.DELETE, "created by the rollout: delete" + forced)
            why = "holds version(s) migrator did not import: " + ", ".join(foreign)
            if found.status == "Inactive":
                return step(none, f"created by the rollout, not deleted: {why}; already Inactive")
            return step(
                RollbackAction.DEACTIVATE,
                f"created by the rollout, not deleted: {why}; set Inactive" + forced,
                status="Inactive",
            )
        if found.status == "Inactive":
            return step(none, "created by the rollout; already Inactive")
        return step(
            RollbackAction.DEACTIVATE,
            "created by the rollout: set Inactive" + forced,
            status="Inactive",
        )
    if target.version_id is None:
        # There was no active version before; a definition cannot be left without one again,
        # so it is made Inactive (it does not run) as it was.
        if found.status == "Inactive":
            return step(none, "had no active version before; already Inactive")
        if foreign_active:
            if not force:
                return step(skip, _changed(found))
            forced = f" (forced: {_changed(found)})"
        return step(
            RollbackAction.DEACTIVATE,
            "had no active version before: set Inactive" + forced,
            status="Inactive",
        )
    if active == target.version_id:
        if found.status == target.status:
            return step(none, f"version id {target.version_id} already active")
    elif foreign_active or active is None:
        if not force:
            return step(skip, _changed(found))
        forced = f" (forced: {_changed(found)})"
    return step(
        RollbackAction.REACTIVATE,
        f"version id {target.version_id} active again (was {active}), {target.status}" + forced,
        active_workflow_version_id=target.version_id,
        status=target.status,
    )


class RollbackLedger:
    """Folds a journal into rollback targets: the FIRST `activating` record of a definition says
    what was there before; a committed create makes it ours; every committed import and
    activation says which versions are migrator's (`ours`)."""

    def __init__(self) -> None:
        self._first: dict[tuple[str, int], RollbackTarget] = {}
        self._created: dict[tuple[str, int], str] = {}
        self._activated: dict[tuple[str, int], set[str]] = {}
        self._imported: dict[tuple[str, int], dict[str, int | None]] = {}  # version → id
        self.activations = 0  # activating records seen (a journal that switched nothing on: 0)

    def note(self, type: str, fields: Mapping[str, Any]) -> None:
        """`activating` (a journal record), `created` {tenant, definition_id, name} or
        `imported` {tenant, definition_id, version, version_id}."""
        tenant = fields.get("tenant")
        def_id = fields.get("definition_id")
        if not isinstance(tenant, str):
            return
        if type == "activating":
            self.activations += 1
            if not isinstance(def_id, int) or isinstance(def_id, bool) or fields.get("created"):
                return
            key = (tenant, def_id)
            if isinstance(fields.get("version"), str):
                self._activated.setdefault(key, set()).add(fields["version"])
            if key not in self._first:
                prev = fields.get("previous_version_id")
                self._first[key] = RollbackTarget(
                    tenant,
                    def_id,
                    str(fields.get("name") or ""),
                    created=False,
                    version_id=prev if isinstance(prev, int) else None,
                    status=str(fields.get("previous_status") or "Inactive"),
                )
        elif type == "created" and isinstance(def_id, int):
            self._created.setdefault((tenant, def_id), str(fields.get("name") or ""))
        elif type == "imported" and isinstance(def_id, int):
            version, vid = fields.get("version"), fields.get("version_id")
            if isinstance(version, str):
                known = self._imported.setdefault((tenant, def_id), {})
                if isinstance(vid, int) or known.get(version) is None:
                    known[version] = vid if isinstance(vid, int) else None

    def targets(self, tenants: Iterable[str] | None = None) -> list[RollbackTarget]:
        """Every target, by tenant and definition id; a definition the runs created wins over
        its activations (it goes back to not being used at all)."""
        wanted = None if tenants is None else set(tenants)
        out = []
        for key in sorted(set(self._first) | set(self._created)):
            if wanted is not None and key[0] not in wanted:
                continue
            imported = self._imported.get(key, {})
            if key in self._created:
                ours = set(imported)
                base = RollbackTarget(key[0], key[1], self._created[key], created=True)
            else:
                ours = self._activated.get(key, set())
                base = self._first[key]
            ids = {vid for version, vid in imported.items() if version in ours and vid is not None}
            out.append(
                RollbackTarget(
                    base.tenant,
                    base.definition_id,
                    base.name,
                    base.created,
                    base.version_id,
                    base.status,
                    frozenset(ours),
                    frozenset(ids),
                )
            )
        return out
