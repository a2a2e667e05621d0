"""`doctor`'s probe of one tenant: the requests, in order, and the checks, per-command verdicts
and profile they yield.

Read-only unless asked to write; then it creates one throwaway definition (`migrator-doctor-<run>`,
its description carrying the run's ownership marker), touches nothing else, and deletes it. It
deletes only what it can prove it made (core/doctor.may_delete): the exact name and the marker,
and, unless it is this run's own, older than the lease.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from migrator.core import capabilities as caps
from migrator.core import doctor as verdicts
from migrator.core.config import Settings, TenantConfig
from migrator.core.doctor import DIFFERS, FAILED, PASSED, SKIPPED, Check
from migrator.core.errors import ZuoraError
from migrator.core.paging import ListingStopped
from migrator.core.profile import TenantProfile
from migrator.zuora import open_session
from migrator.zuora.http import error_detail
from migrator.zuora.probe import Answer, ListingRefused, Probe

_NO_SUCH_ID = 2_147_483_647  # no tenant has used the largest 32-bit id yet
_PROBE_WAIT = 30.0  # doctor waits out a 429 this long at most (less if max_wait says so)


@dataclass(frozen=True)
class DoctorResult:
    checks: list[Check]
    profile: TenantProfile
    commands: list[caps.CommandVerdict] = field(default_factory=list)

    @property
    def reliable(self) -> bool:
        """No check failed: what was learned may be saved."""
        return verdicts.usable(self.checks)

    @property
    def usable(self) -> bool:
        """No check failed and no command is known not to work (exit 0)."""
        return self.reliable and caps.all_usable(self.commands)

    def to_json(self) -> dict[str, Any]:
        return {
            "checks": [c.to_json() for c in self.checks],
            "commands": [c.to_json() for c in self.commands],
            "profile": self.profile.to_json(),
        }


async def run_doctor(
    settings: Settings,
    tenant: TenantConfig,
    *,
    write: bool = False,
    lease: float = verdicts.LEASE_SECONDS,
    wall: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> DoctorResult:
    """Probe `tenant`; with `write`, create, change, run and delete one throwaway workflow.
    `lease`: a provably doctor-made throwaway younger than this is left alone (another doctor
    run may be using it)."""
    # A probe asks once: a doctor that retries for minutes hides what it came to find out.
    settings = dataclasses.replace(
        settings,
        max_attempts=min(settings.max_attempts, 2),
        max_wait=min(settings.max_wait, _PROBE_WAIT),
    )
    session = open_session(settings)
    try:
        probe = Probe(tenant, session, settings, sleep=sleep, wall=wall)
        doctor = _Doctor(settings, tenant, probe, lease=lease, wall=wall)
        await doctor.run(write)
        commands = caps.command_verdicts(doctor.probed, write=write) if doctor.reached else []
        return DoctorResult(doctor.checks, TenantProfile(**doctor.learned), commands)
    finally:
        await session.close()


class _Doctor:
    def __init__(
        self,
        settings: Settings,
        tenant: TenantConfig,
        probe: Probe,
        *,
        lease: float,
        wall: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.tenant = tenant
        self.probe = probe
        self.lease = lease
        self.wall = wall
        self.run_id = secrets.token_hex(6)  # also the throwaway's name: migrator-doctor-<run>
        self.checks: list[Check] = []
        self.probed: dict[str, caps.Probed] = {}  # endpoint → what its probe showed
        self.reached = False  # the API accepted the token: per-command verdicts mean something
        self.learned: dict[str, Any] = {
            "learned_at": datetime.now(UTC).isoformat(timespec="seconds")
        }

    def add(self, check: Check) -> None:
        self.checks.append(check)

    def saw(self, endpoint: str, answer: Answer, *, ok: bool | None = None) -> None:
        """Record what `endpoint`'s probe showed (the first failure wins over later successes)."""
        works = answer.ok if ok is None else ok
        if endpoint in self.probed and not self.probed[endpoint].works:
            return
        self.probed[endpoint] = caps.Probed(works, "works" if works else "answers " + _what(answer))

    async def run(self, write: bool) -> None:
        self.add(verdicts.base_url_check(self.tenant.base_url))
        if not await self._credentials():
            return
        self.reached = True
        listing = await self._listing()
        if listing is None:
            return
        ids = [d["id"] for d in listing if type(d.get("id")) is int]
        await self._pagination(ids)
        check, spelling = caps.listing_spelling_verdict(listing)
        self.add(check)
        self.learned["listing_key_spelling"] = spelling
        await self._leftovers(listing, write)
        real = [
            d
            for d in listing
            if not verdicts.is_throwaway(d.get("name")) and type(d.get("id")) is int
        ]
        await self._read_existing(real)
        await self._schema()
        await self._error_bodies()
        names = [d["name"] for d in real if isinstance(d.get("name"), str) and len(d["name"]) >= 2]
        if names:
            await self._name_filter(max(names, key=len))
        if write:
            await self._write(learn_filter=not names)
        elif not names:
            self.add(
                Check(
                    "name-filter",
                    SKIPPED,
                    "not learned: no workflows to query (doctor --write uses its own)",
                )
            )
        self._passive()

    # ---- read-only ------------------------------------------------------------------------

    async def _credentials(self) -> bool:
        try:
            await self.probe.auth.token()
        except ZuoraError as exc:
            self.add(verdicts.token_check(self.tenant.base_url, exc.status, str(exc)))
            return False
        first = await self.probe.send("GET", "/workflows", params={"page": "1", "page_length": "1"})
        detail = first.error or error_detail(_raw(first.body))
        check = verdicts.api_access_check(first.status, detail, self.tenant.entity_ids)
        self.add(check)
        return check.status == PASSED

    async def _listing(self) -> list[dict[str, Any]] | None:
        """Every page through the one listing reader (its repeat guard stops a looping server
        after the first page that brings nothing new)."""
        found: list[dict[str, Any]] = []
        sizes: list[int] = []
        hostile = 0
        try:
            async for page in self.probe.pages():
                sizes.append(len(page.data))
                for entry in page.fresh:
                    if not isinstance(entry, dict):
                        hostile += 1
                        continue
                    if type(entry.get("id")) is not int:
                        hostile += 1
                    found.append(entry)
        except ListingRefused as refused:
            what = _what(refused.answer)
            self.add(
                Check("listing", FAILED, f"GET /workflows page {refused.number} answered {what}")
            )
            self.probed["list"] = caps.Probed(False, f"answers {what}")
            return None
        except ListingStopped as stopped:
            self.add(
                Check(
                    "listing",
                    FAILED,
                    f"GET /workflows: {stopped}",
                    "the tenant's pagination never ends; no command can read its workflows",
                )
            )
            self.probed["list"] = caps.Probed(False, f"loops ({stopped})")
            return None
        self.probed["list"] = caps.Probed(True, "works")
        # next_page given on a page means more remain: every page before the last is as long as
        # the first, the last no longer, and never empty after a promise of more.
        consistent = (
            all(s == sizes[0] for s in sizes[:-1])
            and sizes[-1] <= sizes[0]
            and not (len(sizes) > 1 and sizes[-1] == 0)
        )
        ids = [d["id"] for d in found if type(d.get("id")) is int]
        self.add(verdicts.listing_check(ids, len(sizes), consistent))
        if hostile:
            self.add(
                Check(
                    "listing-ids",
                    DIFFERS,
                    f"{hostile} listed entries have no integer id (null, text or not an object)",
                    "migrator reports each such entry and works with the others",
                )
            )
        return found

    async def _page_of_one(self, page: int) -> tuple[list[Any], bool]:
        answer = await self.probe.send(
            "GET", "/workflows", params={"page": str(page), "page_length": "1"}
        )
        data = answer.body.get("data") if isinstance(answer.body, dict) else None
        ids = [d.get("id") for d in data if isinstance(d, dict)] if isinstance(data, list) else []
        pagination = answer.body.get("pagination") if isinstance(answer.body, dict) else None
        return ids, bool(isinstance(pagination, dict) and pagination.get("next_page"))

    async def _pagination(self, ids: list[int]) -> None:
        """Pages 1 and 2 of length 1, and page 1 again: ignored page_length vs unstable order."""
        if len(ids) < 2:
            check, _, _ = caps.pagination_verdict(ids, [], [], [], False)
            self.add(check)
            return
        first, has_next = await self._page_of_one(1)
        second, _ = await self._page_of_one(2)
        again, _ = await self._page_of_one(1)
        check, honoured, stable = caps.pagination_verdict(ids, first, second, again, has_next)
        self.add(check)
        self.learned["page_length_honoured"] = honoured
        self.learned["listing_order_stable"] = stable

    async def _owner(self, entry: dict[str, Any]) -> verdicts.Ownership | None:
        """Proof that doctor made `entry` (name and marker); the description is read from the
        definition itself when the listing does not carry it."""
        description = entry.get("description")
        if "description" not in entry and type(entry.get("id")) is int:
            shown = await self.probe.send("GET", f"/workflows/{entry['id']}")
            if isinstance(shown.body, dict) and shown.body.get("name") == entry.get("name"):
                description = shown.body.get("description")
        return verdicts.ownership(entry.get("name"), description)

    async def _leftovers(self, listing: list[dict[str, Any]], write: bool) -> None:
        """Throwaways of earlier doctor runs: deleted (with --write) only when provably doctor's
        and older than the lease; a younger one is left to its run; one without the marker is
        reported, never deleted."""
        named = [d for d in listing if verdicts.is_throwaway(d.get("name"))]
        if not named:
            self.add(Check("leftovers", PASSED, "no throwaway workflow of an earlier doctor run"))
            return
        now = self.wall()
        stale: list[int] = []
        live: list[str] = []
        unproven: list[str] = []
        for entry in named:
            owner = await self._owner(entry)
            shown = verdicts.safe(str(entry.get("id")), 24)
            if owner is None or type(entry.get("id")) is not int:
                unproven.append(shown)  # no proof, or no id to delete it by
            elif verdicts.may_delete(owner, self.run_id, now, self.lease):
                stale.append(entry["id"])
            else:
                live.append(shown)
        parts: list[str] = []
        status, hint = PASSED, None
        if stale and write:
            failed = [i for i in stale if not await self._delete(i)]
            removed = [i for i in stale if i not in failed]
            if removed:
                parts.append(
                    f"removed {len(removed)} throwaway workflow(s) of an earlier doctor run: ids {removed}"
                )
            if failed:
                parts.append(f"could not delete throwaway definitions {failed}")
                status = FAILED
        elif stale:
            parts.append(
                f"{len(stale)} throwaway workflow(s) of an earlier doctor run: ids {stale}"
            )
            status, hint = DIFFERS, "`migrator doctor --write` removes them"
        if live:
            parts.append(
                f"left alone: {len(live)} throwaway(s) of another doctor run within its lease"
                f" ({self.lease:.0f} s): ids {', '.join(live)}"
            )
        if unproven:
            parts.append(
                "named like doctor's throwaway but without its ownership marker (or an id),"
                f" never deleted: ids {', '.join(unproven)}"
            )
            if status == PASSED:
                status = DIFFERS
                hint = (
                    "doctor cannot prove it made them; delete them yourself if they are leftovers"
                )
        self.add(Check("leftovers", status, "; ".join(parts), hint))

    async def _read_existing(self, real: list[dict[str, Any]]) -> None:
        """The reads every command needs, on the first listed workflow: the definition, its
        versions list, its export by version and the latest."""
        if not real:
            self.add(Check("export", SKIPPED, "not learned: no workflow to export"))
            return
        entry = real[0]
        definition = entry["id"]
        self.saw("get", await self.probe.send("GET", f"/workflows/{definition}"))
        listed = await self.probe.send("GET", f"/workflows/{definition}/versions")
        data = listed.body.get("data") if isinstance(listed.body, dict) else None
        self.saw("versions", listed, ok=listed.ok and isinstance(data, list))
        self.learned["versions_list"] = listed.ok and isinstance(data, list)
        path = f"/workflows/{definition}/export"
        latest = await self.probe.send("GET", path, params={"version": "latest"})
        check = verdicts.export_check(latest.status, latest.body, path)
        self.add(check)
        self.saw("export-latest", latest, ok=check.status == PASSED)
        self.learned["export_has_workflow_definition"] = caps.workflow_definition_verdict(
            latest.body
        )
        version = caps.a_version(entry, data if isinstance(data, list) else [])
        if version is not None:
            named = await self.probe.send("GET", path, params={"version": version})
            self.saw(
                "export-version",
                named,
                ok=verdicts.export_check(named.status, named.body, path).status == PASSED,
            )

    async def _schema(self) -> None:
        """What the reference check reads: one describe (XML) and the custom object definitions."""
        described = await self.probe.send(
            "GET", "/v1/describe/Account", accept="application/xml, text/xml"
        )
        custom = await self.probe.send("GET", "/objects/definitions/default")
        self.saw("describe", described)
        self.saw("custom-objects", custom)
        self.add(caps.schema_check(described.status, custom.status))

    async def _error_bodies(self) -> None:
        bad = await self.probe.send(
            "GET", "/workflows", params={"page": "1", "page_length": "1"}, token="0" * 32
        )
        missing = await self.probe.send("GET", f"/workflows/{_NO_SUCH_ID}/export")
        self.add(
            verdicts.error_bodies_check((bad.status, bad.body), (missing.status, missing.body))
        )
        self.learned["error_body_shape"] = caps.error_shape_verdict(bad.body)

    async def _names(self, query: str) -> list[str]:
        found: list[str] = []
        try:
            async for page in self.probe.pages(query):
                found.extend(
                    d["name"]
                    for d in page.fresh
                    if isinstance(d, dict) and isinstance(d.get("name"), str)
                )
                if page.number >= 5:  # the queries are long names: a few pages at most
                    break
        except (ListingRefused, ListingStopped):
            pass
        return found

    async def _name_filter(self, name: str) -> None:
        inner, swapped = verdicts.name_filter_probes(name)
        exact = await self._names(name)
        inner_names = await self._names(inner)
        swapped_names = await self._names(swapped) if swapped is not None else None
        absent = await self._names(name + verdicts.NO_MATCH_SUFFIX)
        check, mode, case = verdicts.name_filter_verdict(
            name, exact, inner_names, swapped_names, absent
        )
        self.add(check)
        self.learned["name_filter"] = mode
        self.learned["name_filter_case_sensitive"] = case

    def _passive(self) -> None:
        """Verdicts on what every answer so far carried: rate-limit headers, 429s, gzip."""
        answers = [a for a in self.probe.answers if a.status is not None and a.status != 401]
        check, headers, rpm = verdicts.rate_limit_verdict(
            [a.headers for a in answers], self.tenant.requests_per_minute
        )
        self.add(check)
        self.learned["rate_limit_headers"] = headers
        self.learned["requests_per_minute"] = rpm
        check, retry_after, form = caps.retry_after_verdict(self.probe.throttles)
        self.add(check)
        self.learned["retry_after"] = retry_after
        self.learned["retry_after_form"] = form
        self.add(
            verdicts.gzip_verdict((a.size, a.headers.get("content-encoding")) for a in answers)
        )

    # ---- writes: one throwaway definition -------------------------------------------------

    async def _write(self, *, learn_filter: bool) -> None:
        name = verdicts.THROWAWAY_PREFIX + self.run_id
        mark = verdicts.marker(self.run_id, self.wall())
        key = f"{name}-{secrets.token_hex(4)}"
        created = await self.probe.send(
            "POST",
            "/workflows/import",
            params={"version": "1.0.0", "activate": "false"},
            json=verdicts.throwaway_document(name, mark=mark),
            idempotency_key=f"{key}-import",
        )
        self.saw("import", created)
        definition: int | None = None
        try:
            if not created.ok:
                self.add(
                    Check(
                        "import",
                        FAILED,
                        f"POST /workflows/import answered {_what(created)}",
                        "the OAuth client's user needs Workflow Manage access (§1.13)",
                    )
                )
                return  # it may have landed all the same: the cleanup looks for it
            definition, why, _ = await self._locate(name, created)
            if definition is None:
                self.add(Check("import", FAILED, f"imported, but {why}"))
                return
            self.add(Check("import", PASSED, f"created throwaway {name} (definition {definition})"))
            await self._writes_on(definition, name, mark, created, learn_filter, key)
        finally:
            await self._cleanup(name, created, definition)

    async def _writes_on(
        self, definition: int, name: str, mark: str, created: Answer, learn_filter: bool, key: str
    ) -> None:
        versions = await self._version_ids(definition, name)
        check, answer_id = verdicts.import_answer_verdict(
            created.body.get("id") if isinstance(created.body, dict) else None, definition, versions
        )
        self.add(check)
        self.learned["import_response_id"] = answer_id
        inactive = await self.probe.send("GET", f"/workflows/{definition}/export")
        check, mode = verdicts.export_without_active_verdict(inactive.status)
        self.add(check)
        self.learned["export_without_active"] = mode
        path = f"/workflows/{definition}/export"
        exported = await self.probe.send("GET", path, params={"version": "1.0.0"})
        self.saw(
            "export-version",
            exported,
            ok=verdicts.export_check(exported.status, exported.body, path).status == PASSED,
        )
        check, rewrites = verdicts.file_refs_verdict(exported.body, "Subscription__1.csv.zip")
        self.add(check)
        self.learned["rewrite_file_refs"] = rewrites
        check, kept = caps.unknown_keys_verdict(exported.body, verdicts.UNKNOWN_KEY)
        self.add(check)
        self.learned["keeps_unknown_keys"] = kept
        has_block = caps.workflow_definition_verdict(exported.body)
        if has_block is not None and not self.learned.get("export_has_workflow_definition"):
            self.learned["export_has_workflow_definition"] = has_block  # any export carrying it
        if "export-latest" not in self.probed:
            latest = await self.probe.send("GET", path, params={"version": "latest"})
            self.saw(
                "export-latest",
                latest,
                ok=verdicts.export_check(latest.status, latest.body, path).status == PASSED,
            )
        second = await self.probe.send(
            "POST",
            f"/workflows/{definition}/versions/import",
            params={"version": "1.0.1", "activate": "false"},
            json=verdicts.throwaway_document(name, mark=mark),
            idempotency_key=f"{key}-version",
            gzip_request=True,
        )
        self.saw("versions-import", second)
        if not second.ok:
            self.add(
                Check(
                    "version-import",
                    FAILED,
                    f"a gzip-compressed version import answered {_what(second)}",
                )
            )
            return
        versions_after = await self._version_ids(definition, name)
        new = [v for v in versions_after if v not in versions]
        if len(new) != 1:
            self.add(
                Check(
                    "version-import", FAILED, f"versions before {versions}, after {versions_after}"
                )
            )
            return
        self.add(
            Check("version-import", PASSED, f"a gzip-compressed body imported version {new[0]}")
        )
        patch = {"active_workflow_version_id": new[0], "status": "Active"}  # as activation sends it
        first = await self.probe.send(
            "PATCH", f"/workflows/{definition}", json=patch, idempotency_key=f"{key}-activate"
        )
        again = await self.probe.send(
            "PATCH", f"/workflows/{definition}", json=patch, idempotency_key=f"{key}-activate"
        )
        self.saw("patch", first)
        check, replay = verdicts.replay_verdict(
            (first.status, first.body), (again.status, again.body)
        )
        self.add(check)
        self.learned["idempotent_replay"] = replay
        shown = await self.probe.send("GET", f"/workflows/{definition}")
        self.saw("get", shown)
        active = shown.body.get("active_version") if isinstance(shown.body, dict) else None
        active_id = active.get("id") if isinstance(active, dict) else None
        if active_id == new[0]:
            self.add(
                Check("activate", PASSED, f"PATCH active_workflow_version_id made {new[0]} active")
            )
            await self._run(definition, key)
        else:
            self.add(
                Check(
                    "activate",
                    FAILED,
                    f"after PATCH the active version is {active_id}, not {new[0]}",
                )
            )
        if learn_filter:
            await self._name_filter(name)

    async def _run(self, definition: int, key: str) -> None:
        """One run of the throwaway (its Export task selects nothing) and one look at it: what
        a rollout's smoke runs send."""
        started = await self.probe.send(
            "POST", f"/workflows/{definition}/run", json={}, idempotency_key=f"{key}-run"
        )
        self.saw("run", started)
        run_id = started.body.get("id") if isinstance(started.body, dict) else None
        if not started.ok or type(run_id) is not int:
            what = _what(started) if not started.ok else "an answer without a run id"
            self.add(Check("run", FAILED, f"POST /workflows/{definition}/run: {what}"))
            return
        status = await self.probe.send("GET", f"/workflows/workflow_runs/{run_id}")
        self.saw("run-status", status)
        shown = status.body.get("status") if isinstance(status.body, dict) else None
        if status.ok:
            self.add(
                Check(
                    "run",
                    PASSED,
                    f"started run {run_id}; its status reads {verdicts.safe(str(shown))}",
                )
            )
        else:
            self.add(
                Check(
                    "run", FAILED, f"GET /workflows/workflow_runs/{run_id} answered {_what(status)}"
                )
            )

    async def _find(self, name: str) -> tuple[dict[str, Any] | None, bool]:
        """The listing entry named exactly `name`, walking every page (a server may ignore the
        filter and list oldest first); and whether the listing was read to its end."""
        try:
            async for page in self.probe.pages(name):
                for entry in page.fresh:
                    if isinstance(entry, dict) and entry.get("name") == name:
                        return entry, True
        except (ListingRefused, ListingStopped):
            return None, False
        return None, True

    async def _locate(self, name: str, created: Answer) -> tuple[int | None, str, bool]:
        """This run's throwaway: by its exact name in the listing (and its marker), else by the
        id the import answered when that definition carries the name and this run's marker."""
        entry, complete = await self._find(name)
        if entry is not None and type(entry.get("id")) is int:
            owner = await self._owner(entry)
            if owner is not None and owner.run == self.run_id:
                return int(entry["id"]), "", False
        answered = created.body.get("id") if isinstance(created.body, dict) else None
        if type(answered) is int:
            shown = await self.probe.send("GET", f"/workflows/{answered}")
            body = shown.body if isinstance(shown.body, dict) else {}
            owner = verdicts.ownership(body.get("name"), body.get("description"))
            if shown.ok and body.get("name") == name and owner and owner.run == self.run_id:
                return answered, "", False
        if entry is not None:
            seen = verdicts.safe(str(entry.get("id")), 24)
            why = f"{name} is listed with id {seen}, not a definition id doctor can use"
            return None, why, False
        if not complete:
            return None, f"the listing could not be read to look {name} up", False
        return None, f"no definition named {name} is listed", True

    async def _cleanup(self, name: str, created: Answer, definition: int | None) -> None:
        if definition is None:
            definition, why, absent = await self._locate(name, created)
            if definition is None:
                if absent:
                    self.add(Check("cleanup", PASSED, f"no definition named {name} is left"))
                else:
                    self.add(
                        Check(
                            "cleanup",
                            FAILED,
                            f"the throwaway {name} may be left: {why}",
                            "a later `migrator doctor --write` removes it once its lease is over;"
                            " or delete it by hand",
                        )
                    )
                return
        removed = await self._delete(definition)
        gone = await self.probe.send("GET", f"/workflows/{definition}")
        if removed and gone.status == 404:
            self.add(Check("cleanup", PASSED, f"deleted throwaway definition {definition}"))
            return
        self.add(
            Check(
                "cleanup",
                FAILED,
                f"definition {definition} still answers {_what(gone)} after DELETE",
                "a later `migrator doctor --write` removes it once its lease is over",
            )
        )

    async def _delete(self, definition: int) -> bool:
        answer = await self.probe.send("DELETE", f"/workflows/{definition}")
        self.saw("delete", answer, ok=answer.ok or answer.status == 404)
        return answer.ok or answer.status == 404

    async def _version_ids(self, definition: int, name: str) -> list[int]:
        """The definition's version ids: its versions list, else (where that list is missing)
        the active and latest inactive versions the definition and its listing entry show."""
        answer = await self.probe.send("GET", f"/workflows/{definition}/versions")
        data = answer.body.get("data") if isinstance(answer.body, dict) else None
        self.saw("versions", answer, ok=answer.ok and isinstance(data, list))
        if answer.ok and isinstance(data, list):
            self.learned.setdefault("versions_list", True)
            return [v["id"] for v in data if isinstance(v, dict) and type(v.get("id")) is int]
        self.learned["versions_list"] = False
        shown = await self.probe.send("GET", f"/workflows/{definition}")
        entry, _ = await self._find(name)  # the listing carries the inactive versions
        return caps.versions_shown(shown.body, entry)


def _what(answer: Answer) -> str:
    if answer.status is None:
        return answer.error or "nothing"
    detail = error_detail(_raw(answer.body))
    text = f"{answer.status} {verdicts.safe(detail)}".rstrip()
    if answer.refused_wait is not None:
        text += (
            f"; the server asks to wait {answer.refused_wait:.0f} s, more than max_wait"
            f" ({answer.wait_limit or 0:.0f} s): not waited, not sent again"
        )
    return text


def _raw(body: Any) -> bytes:
    return orjson.dumps(body) if body is not None else b""
