"""The fake Zuora's pure state: definitions, versions, runs, the ledger, and what they look like.

No I/O and no await; every time comes from the injected clock. The document rules (validation,
id reallocation, kept keys) live in `_document`, the error shapes in `_errors`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from migrator.fake._config import FakeConfig
from migrator.fake._document import (
    VERSION_RE,
    WORKFLOW_DEFINITION,
    content_sha256,
    is_int,
    next_version,
    reallocate,
    timestamp,
    validate_import,
    version_key,
)
from migrator.fake._errors import ApiError, capital_errors, errors_list
from migrator.fake._records import Definition, LedgerEntry, TenantState, Version, later
from migrator.fake._runs import RESERVED_RUN_KEYS, Run, run_json, run_name, run_started_json

_TRIGGERS = (
    ("calloutTrigger", "callout_trigger"),
    ("ondemandTrigger", "ondemand_trigger"),
    ("scheduledTrigger", "scheduled_trigger"),
)


def _settings_reasons(
    body: Mapping[str, Any], strings: Iterable[str], booleans: Iterable[str], *, nullable: bool
) -> list[dict[str, str]]:
    """The 422 ValidationErrors reasons of a PATCH or PUT body (`nullable`: a string field may
    be null)."""
    reasons: list[dict[str, str]] = []
    for key in strings:
        value = body.get(key)
        if key in body and not isinstance(value, str) and not (nullable and value is None):
            reasons.append({"title": f"{key} must be a string", "fieldName": key})
    for key in booleans:
        if key in body and not isinstance(body[key], bool):
            reasons.append({"title": f"{key} must be a boolean", "fieldName": key})
    if "priority" in body and body["priority"] not in ("High", "Medium", "Low"):
        reasons.append({"title": "priority must be High, Medium or Low", "fieldName": "priority"})
    if "status" in body and body["status"] not in ("Active", "Inactive"):
        reasons.append({"title": "status must be Active or Inactive", "fieldName": "status"})
    return reasons


class FakeState:
    """All tenants' workflows and the import ledger; methods raise ApiError with Zuora's shapes."""

    def __init__(
        self,
        tenant_names: Iterable[str],
        *,
        clock: Callable[[], float],
        switches: FakeConfig | None = None,
    ) -> None:
        """`switches`: the config whose behaviour switches (name filter, listing spelling, ...)
        the state plays; the defaults when None."""
        self.clock = clock
        self.switches = switches if switches is not None else FakeConfig(tenants=[])
        self.tenants: dict[str, TenantState] = {}
        for index, name in enumerate(tenant_names):
            # Far-apart id ranges per tenant, so an id used against the wrong tenant shows up.
            self.tenants[name] = TenantState(next_id=100 + 100_000 * index)
        self.ledger_entries: list[LedgerEntry] = []
        # Every definition write that took effect (PATCH, DELETE), oldest first: what a test
        # compares a preview with (a replayed Idempotency-Key never reaches here).
        self.write_log: list[dict[str, Any]] = []

    # -- lookups -------------------------------------------------------------------------------

    def _tenant(self, tenant: str) -> TenantState:
        try:
            return self.tenants[tenant]
        except KeyError:
            raise KeyError(f"unknown tenant {tenant!r}") from None

    def _definition(self, tenant: str, definition_id: int, *, capital: bool = False) -> Definition:
        found = self._tenant(tenant).definitions.get(definition_id)
        if found is None:
            msg = f"Workflow {definition_id} not found"
            raise capital_errors(404, msg) if capital else errors_list(404, msg)
        return found

    def versions_of(self, tenant: str, definition_id: int) -> list[Version]:
        ts = self._tenant(tenant)
        d = self._definition(tenant, definition_id)
        return [ts.versions[v] for v in d.version_ids]

    def ledger(self, tenant: str | None = None) -> list[dict[str, Any]]:
        return [e.as_dict() for e in self.ledger_entries if tenant is None or e.tenant == tenant]

    # -- imports -------------------------------------------------------------------------------

    def _check_version(self, existing: list[Version], wanted: Any) -> str:
        if not isinstance(wanted, str) or not VERSION_RE.match(wanted):
            raise errors_list(400, f"Invalid version {wanted!r}: expected N, N.N or N.N.N")
        for v in existing:
            if version_key(v.version) == version_key(wanted):
                raise errors_list(400, f"Version {wanted} already exists")
        if existing:
            highest = max(existing, key=lambda v: version_key(v.version))
            if version_key(wanted) < version_key(highest.version):
                raise errors_list(
                    400,
                    f"Version {wanted} must be greater than the highest version {highest.version}",
                )
        return wanted

    def _commit(
        self,
        tenant: str,
        definition: Definition,
        payload: dict[str, Any],
        version: str,
        activate: bool,
        idempotency_key: str | None,
        record: bool,
    ) -> Version:
        ts = self._tenant(tenant)
        now = self.clock()
        version_id = ts.allocate()
        doc = reallocate(
            payload,
            version_id,
            version,
            ts.allocate,
            rewrite_file_refs=self.switches.rewrite_file_refs,
            keep_unknown_keys=self.switches.keep_unknown_keys,
            camel_case_triggers=self.switches.camel_case_triggers == "kept",
        )
        stored = Version(version_id, definition.id, version, doc, now, now)
        ts.versions[version_id] = stored
        definition.version_ids.append(version_id)
        definition.updated_at = later(definition.updated_at, now)
        if activate:
            definition.active_version_id = version_id  # the previous one is deactivated
            definition.status = "Active"
        if record:
            self.ledger_entries.append(
                LedgerEntry(
                    tenant,
                    definition.id,
                    version_id,
                    version,
                    definition.name,
                    idempotency_key,
                    content_sha256(payload),
                    timestamp(now),
                )
            )
        return stored

    def import_workflow(
        self,
        tenant: str,
        payload: Any,
        *,
        version: str | None = None,
        activate: bool = False,
        definition_id: int | None = None,
        idempotency_key: str | None = None,
        record: bool = True,
    ) -> tuple[Definition, Version]:
        """§3.6: a new definition with its first version (or, [I], under `definition_id`)."""
        problems = validate_import(payload)
        if problems:
            raise errors_list(400, *problems)
        if definition_id is not None:
            return self.import_version(
                tenant,
                definition_id,
                payload,
                version=version or payload["workflow"].get("version") or "0.0.1",
                activate=activate,
                idempotency_key=idempotency_key,
                record=record,
            )
        wanted = version if version is not None else (payload["workflow"].get("version") or "0.0.1")
        self._check_version([], wanted)
        ts = self._tenant(tenant)
        now = self.clock()
        wf = payload["workflow"]
        description = wf.get("description")
        definition = Definition(
            id=ts.allocate(),
            name=wf["name"],
            description=description if isinstance(description, str) else "",
            status="Inactive",
            created_at=now,
            updated_at=now,
        )
        ts.definitions[definition.id] = definition
        stored = self._commit(
            tenant, definition, payload, wanted, activate, idempotency_key, record
        )
        return definition, stored

    def import_version(
        self,
        tenant: str,
        definition_id: int,
        payload: Any,
        *,
        version: str | None,
        activate: bool = False,
        idempotency_key: str | None = None,
        record: bool = True,
    ) -> tuple[Definition, Version]:
        """§3.7: a new version of an existing definition; `version` is required and must grow."""
        definition = self._definition(tenant, definition_id)
        problems = validate_import(payload)
        if problems:
            raise errors_list(400, *problems)
        if version is None:
            raise errors_list(400, "Query parameter version is required")
        wanted = self._check_version(self.versions_of(tenant, definition_id), version)
        stored = self._commit(
            tenant, definition, payload, wanted, activate, idempotency_key, record
        )
        return definition, stored

    def add_workflow(
        self,
        tenant: str,
        document: Any,
        *,
        version: str | None = None,
        activate: bool = False,
        definition_id: int | None = None,
    ) -> tuple[int, int]:
        """Pre-load a workflow (tests, seed files): same rules as import, kept out of the ledger."""
        if definition_id is None:
            d, v = self.import_workflow(
                tenant, document, version=version, activate=activate, record=False
            )
        else:
            # With no version given, a pre-loaded version goes one above the highest so far.
            existing = self.versions_of(tenant, definition_id)
            highest = max((v.version for v in existing), key=version_key, default=None)
            wanted = version or (next_version(highest) if highest else "0.0.1")
            d, v = self.import_version(
                tenant, definition_id, document, version=wanted, activate=activate, record=False
            )
        return d.id, v.id

    def alter_version(
        self, tenant: str, version_id: int, change: Callable[[dict[str, Any]], None]
    ) -> None:
        """Edit a stored version's document in place (tests of drift detection)."""
        ts = self._tenant(tenant)
        stored = ts.versions[version_id]
        change(stored.document)
        now = self.clock()
        stored.updated_at = later(stored.updated_at, now)
        definition = ts.definitions[stored.definition_id]
        definition.updated_at = later(definition.updated_at, now)

    # -- reads ---------------------------------------------------------------------------------

    def _version_summary(self, tenant: str, v: Version, *, full: bool) -> dict[str, Any]:
        d = self._tenant(tenant).definitions[v.definition_id]
        wf = v.document["workflow"]
        out: dict[str, Any] = {
            "id": v.id,
            "version": v.version,
            "description": wf.get("description") or "",
            "status": "Active" if d.active_version_id == v.id else "Inactive",
            "type": "Workflow::Setup",
        }
        if self.switches.version_definition_id:  # §3.1 [O]: the live payload's version objects
            out["definitionId"] = v.definition_id
        if full:
            out["name"] = wf.get("name")
            for camel, snake in _TRIGGERS:
                out[camel] = bool(wf.get(snake))
            out["interval"] = wf.get("interval")
            out["timezone"] = wf.get("timezone")
            out["priority"] = wf.get("priority")
            out["createdAt"] = timestamp(v.created_at)
            out["updatedAt"] = timestamp(v.updated_at)
        return out

    def _shown_version(self, tenant: str, d: Definition) -> Version | None:
        ts = self._tenant(tenant)
        if d.active_version_id is not None:
            return ts.versions[d.active_version_id]
        if d.version_ids:
            return max(
                (ts.versions[i] for i in d.version_ids), key=lambda v: version_key(v.version)
            )
        return None

    def definition_json(
        self, tenant: str, definition_id: int, *, inactive_list: bool = False, priority: bool = True
    ) -> dict[str, Any]:
        """§3.1/§3.2 camelCase definition object; triggers come from the active (else latest) one."""
        ts = self._tenant(tenant)
        d = self._definition(tenant, definition_id)
        shown = self._shown_version(tenant, d)
        wf = shown.document["workflow"] if shown else {}
        out: dict[str, Any] = {
            "id": d.id,
            "name": d.name,
            "description": d.description,
            "status": d.status,
        }
        for camel, snake in _TRIGGERS:
            out[camel] = bool(wf.get(snake))
        out["interval"] = wf.get("interval")
        out["timezone"] = wf.get("timezone")
        if priority:
            out["priority"] = wf.get("priority")
        out["createdAt"] = timestamp(d.created_at)
        out["updatedAt"] = timestamp(d.updated_at)
        active = ts.versions.get(d.active_version_id) if d.active_version_id else None
        out["active_version"] = (
            self._version_summary(tenant, active, full=False) if active else None
        )
        if inactive_list:
            inactive = [ts.versions[i] for i in d.version_ids if i != d.active_version_id]
            inactive.sort(key=lambda v: version_key(v.version), reverse=True)
            listed = [self._version_summary(tenant, v, full=True) for v in inactive[:10]]
            # §3.1: the reference spells it `latest_inactive_verisons` (sic); a live payload
            # `latest_inactive_versions` [O]; the switch plays either or both.
            if self.switches.listing_spelling in ("verisons", "both"):
                out["latest_inactive_verisons"] = listed
            if self.switches.listing_spelling in ("versions", "both"):
                out["latest_inactive_versions"] = copy.deepcopy(listed)
        return out

    def name_matches(self, name: str, wanted: str) -> bool:
        """§3.1 `name` filter, §9.10 [I]: exact or substring, case-sensitive or not (switches)."""
        if not self.switches.name_filter_case_sensitive:
            name, wanted = name.casefold(), wanted.casefold()
        return wanted in name if self.switches.name_filter == "contains" else name == wanted

    def list_definitions(self, tenant: str, filters: Mapping[str, str]) -> list[int]:
        """§3.1 filters (`name` per the switches, [I]); ids descending ([I], as SALTO-MOCK shows)."""
        ts = self._tenant(tenant)
        out: list[int] = []
        for d in sorted(ts.definitions.values(), key=lambda d: d.id, reverse=True):
            if "name" in filters and not self.name_matches(d.name, filters["name"]):
                continue
            shown = self._shown_version(tenant, d)
            wf = shown.document["workflow"] if shown else {}
            keep = True
            for _, snake in _TRIGGERS:
                if snake in filters:
                    keep = keep and bool(wf.get(snake)) == (filters[snake].lower() == "true")
            if "interval" in filters and wf.get("interval") != filters["interval"]:
                keep = False
            if keep:
                out.append(d.id)
        return out

    def list_versions(self, tenant: str, definition_id: int) -> list[dict[str, Any]]:
        """§3.8: every version, no pagination; `status` added ([I], the spec allows it)."""
        return [
            self._version_summary(tenant, v, full=True)
            for v in self.versions_of(tenant, definition_id)
        ]

    def export(self, tenant: str, definition_id: int, version: str | None) -> dict[str, Any]:
        """§3.5: the stored document with its new ids; default active, `latest` = highest."""
        d = self._definition(tenant, definition_id)
        versions = self.versions_of(tenant, definition_id)
        chosen: Version | None
        if version is None:
            chosen = self._shown_version(tenant, d)
            if d.active_version_id is None and self.switches.export_without_active == "404":
                chosen = None
            if chosen is None:
                raise errors_list(404, f"Workflow {definition_id} has no active version")
        elif version == "latest":
            chosen = max(versions, key=lambda v: version_key(v.version)) if versions else None
            if chosen is None:
                raise errors_list(404, f"Workflow {definition_id} has no versions")
        elif not VERSION_RE.match(version):
            raise errors_list(400, f"Invalid version {version!r}")
        else:
            chosen = next(
                (v for v in versions if version_key(v.version) == version_key(version)), None
            )
            if chosen is None:
                raise errors_list(404, f"Version {version} of workflow {definition_id} not found")
        doc = copy.deepcopy(chosen.document)
        stored_block = doc.pop(WORKFLOW_DEFINITION, None)
        if self.switches.export_workflow_definition:
            # §3.5 [O]: `{workflow_definition, workflow, tasks, linkages}`. [I] The block's name
            # and description are the version's own unless the import sent others.
            wf = doc["workflow"]
            block: dict[str, Any] = {
                "name": wf.get("name"),
                "description": wf.get("description") or "",
            }
            if isinstance(stored_block, dict):
                block.update(stored_block)
            doc = {WORKFLOW_DEFINITION: block, **doc}
        return doc

    # -- writes besides import -----------------------------------------------------------------

    def patch_definition(self, tenant: str, definition_id: int, body: Any) -> dict[str, Any]:
        """§3.3: validate (422 ValidationErrors), then rename / set status / switch active version."""
        d = self._definition(tenant, definition_id, capital=True)
        if not isinstance(body, dict):
            raise ApiError(
                422,
                {
                    "success": False,
                    "reasons": [
                        {"title": "The request body must be a JSON object", "fieldName": ""}
                    ],
                },
            )
        triggers = ("ondemand_trigger", "callout_trigger", "scheduled_trigger")
        reasons = _settings_reasons(body, ("name", "description"), triggers, nullable=False)
        avid = body.get("active_workflow_version_id")
        if avid is not None and not is_int(avid):
            reasons.append(
                {
                    "title": "active_workflow_version_id must be an integer",
                    "fieldName": "active_workflow_version_id",
                }
            )
        if reasons:
            raise ApiError(422, {"success": False, "reasons": reasons})
        if avid is not None and avid not in d.version_ids:
            raise capital_errors(404, f"Version {avid} not found in workflow {definition_id}")
        now = self.clock()
        if "name" in body:
            d.name = body["name"]
        if "description" in body:
            d.description = body["description"]
        if "status" in body:
            d.status = body["status"]
        if avid is not None:
            d.active_version_id = avid
        d.updated_at = later(d.updated_at, now)
        self.write_log.append(
            {"tenant": tenant, "definition_id": definition_id, "method": "PATCH", "body": body}
        )
        return self.definition_json(tenant, definition_id, priority=False)

    def put_settings(self, tenant: str, definition_id: int, body: Any) -> dict[str, Any]:
        """§3.6 [O]: `PUT /workflows/{id}` with a flat camelCase body (name, description,
        triggers, priority, interval, timezone, status). [I] The definition's fields change, and
        the settings of the version it shows (the active one, else the highest); 422 like PATCH."""
        d = self._definition(tenant, definition_id, capital=True)
        if not isinstance(body, dict):
            body = {"": body}
        strings = ("name", "description", "interval", "timezone")
        triggers = [camel for camel, _ in _TRIGGERS]
        reasons = _settings_reasons(body, strings, triggers, nullable=True)
        if "" in body:
            reasons.append({"title": "The request body must be a JSON object", "fieldName": ""})
        if reasons:
            raise ApiError(422, {"success": False, "reasons": reasons})
        now = self.clock()
        for key in ("name", "description", "status"):
            if key in body:
                setattr(d, key, body[key])
        shown = self._shown_version(tenant, d)
        if shown is not None:
            wf = shown.document["workflow"]
            for camel, snake in _TRIGGERS:
                if camel in body:
                    wf[snake] = body[camel]
            for key in ("priority", "interval", "timezone"):
                if key in body:
                    wf[key] = body[key]
            shown.updated_at = later(shown.updated_at, now)
        d.updated_at = later(d.updated_at, now)
        return self.definition_json(tenant, definition_id)

    def delete_definition(self, tenant: str, definition_id: int) -> dict[str, Any]:
        """§3.4: removes the definition and all its versions."""
        ts = self._tenant(tenant)
        d = self._definition(tenant, definition_id, capital=True)
        for vid in d.version_ids:
            ts.versions.pop(vid, None)
        del ts.definitions[definition_id]
        self.write_log.append(
            {"tenant": tenant, "definition_id": definition_id, "method": "DELETE"}
        )
        return {"id": definition_id, "success": True}

    def delete_version(self, tenant: str, version_id: int) -> dict[str, Any]:
        """§3.9: 403 for the active version; 404 ([I], capital shape) for an unknown one."""
        ts = self._tenant(tenant)
        v = ts.versions.get(version_id)
        if v is None:
            raise capital_errors(404, f"Version {version_id} not found")
        d = ts.definitions[v.definition_id]
        if d.active_version_id == version_id:
            raise capital_errors(403, "The active version cannot be deleted")
        d.version_ids.remove(version_id)
        del ts.versions[version_id]
        d.updated_at = later(d.updated_at, self.clock())
        return {"id": version_id, "success": True}

    # -- runs (§3.10, §3.11) ---------------------------------------------------------------------

    def start_run(
        self, tenant: str, definition_id: int, body: Any, *, fails: bool = False
    ) -> dict[str, Any]:
        """§3.10: 409 for a run id, 404 unknown, 400 Inactive [D], 406 a required input missing."""
        ts = self._tenant(tenant)
        if definition_id in ts.runs:
            raise errors_list(409, f"{definition_id} is a workflow run, not a workflow")
        d = self._definition(tenant, definition_id)
        if d.status != "Active" or d.active_version_id is None:
            # [D] only Active definitions run (§2, §3.3); the status and body are [I] (§7.5).
            raise errors_list(400, f"Workflow {definition_id} is inactive and cannot be run")
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise errors_list(400, "The run body must be a JSON object of input parameters")
        reserved = sorted(RESERVED_RUN_KEYS.intersection(body))
        if reserved:
            raise errors_list(400, *(f"{k} is a reserved key" for k in reserved))
        active = ts.versions[d.active_version_id]
        fields = (active.document["workflow"].get("parameters") or {}).get("fields") or []
        missing = [
            f.get("callout_id") or f.get("field_name")
            for f in fields
            if isinstance(f, dict)
            and f.get("required") in (True, "true")
            and (f.get("callout_id") or f.get("field_name")) not in body
        ]
        if missing:
            raise ApiError(
                406,
                {
                    "parameters": body,
                    "errors": [
                        {"title": f"{m} is required", "code": "invalid", "status": 406}
                        for m in missing
                    ],
                },
            )
        ts.run_counter += 1
        run = Run(
            id=ts.allocate(),
            name=run_name(active.id, ts.run_counter),
            definition_id=d.id,
            version_id=active.id,
            task_count=len(active.document["tasks"]),
            created_at=self.clock(),
            duration=self.switches.run_seconds,
            fails=fails,
            parameters=copy.deepcopy(body),
        )
        ts.runs[run.id] = run
        return run_started_json(run)

    def get_run(self, tenant: str, run_id: int) -> dict[str, Any]:
        """§3.11: the run as of now; 404 `{errors}` for an unknown id [I]."""
        run = self._tenant(tenant).runs.get(run_id)
        if run is None:
            raise errors_list(404, f"Workflow run {run_id} not found")
        return run_json(run, self.clock())

    # -- persistence ---------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """Everything needed to carry the state across a restart (no secrets live here)."""
        return {
            "format": 1,
            "tenants": {
                name: {
                    "next_id": ts.next_id,
                    "definitions": [vars(d) for d in ts.definitions.values()],
                    "versions": [vars(v) for v in ts.versions.values()],
                    "runs": [vars(r) for r in ts.runs.values()],
                    "run_counter": ts.run_counter,
                }
                for name, ts in self.tenants.items()
            },
            "ledger": [e.as_dict() for e in self.ledger_entries],
        }

    def load_json(self, data: Mapping[str, Any]) -> None:
        """Replace the state of the tenants named in `data` (others are left as they are)."""
        for name, table in data["tenants"].items():
            if name not in self.tenants:
                continue
            ts = TenantState(next_id=table["next_id"])
            for raw in table["definitions"]:
                d = Definition(**raw)
                ts.definitions[d.id] = d
            for raw in table["versions"]:
                v = Version(**raw)
                ts.versions[v.id] = v
            for raw in table.get("runs", []):
                r = Run(**raw)
                ts.runs[r.id] = r
            ts.run_counter = table.get("run_counter", 0)
            self.tenants[name] = ts
        self.ledger_entries = [
            LedgerEntry(**e) for e in data.get("ledger", []) if e["tenant"] in self.tenants
        ]

    def reset(self) -> None:
        """Forget every workflow and the ledger (ids restart too)."""
        for index, name in enumerate(self.tenants):
            self.tenants[name] = TenantState(next_id=100 + 100_000 * index)
        self.ledger_entries.clear()
        self.write_log.clear()
