"""`doctor`'s probe of one tenant: the requests, in order, and the checks and profile they yield.

Read-only unless asked to write; then it creates one throwaway definition (`migrator-doctor-…`),
touches nothing else, deletes it, and removes any an earlier, killed doctor run left behind.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from migrator.core import doctor as verdicts
from migrator.core.config import Settings, TenantConfig
from migrator.core.doctor import FAILED, PASSED, SKIPPED, Check
from migrator.core.errors import ZuoraError
from migrator.core.profile import TenantProfile
from migrator.zuora import open_session
from migrator.zuora.http import error_detail
from migrator.zuora.probe import Answer, Probe

_PAGE = 50
_MAX_PAGES = 10_000
_NO_SUCH_ID = 2_147_483_647  # no tenant has used the largest 32-bit id yet


@dataclass(frozen=True)
class DoctorResult:
    checks: list[Check]
    profile: TenantProfile

    @property
    def usable(self) -> bool:
        return verdicts.usable(self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "checks": [c.to_json() for c in self.checks],
            "profile": self.profile.to_json(),
        }


async def run_doctor(
    settings: Settings,
    tenant: TenantConfig,
    *,
    write: bool = False,
    new_name: Callable[[], str] | None = None,
) -> DoctorResult:
    """Probe `tenant`; with `write`, create, change and delete one throwaway workflow."""
    # A probe asks once: a doctor that retries for minutes hides what it came to find out.
    settings = dataclasses.replace(settings, max_attempts=min(settings.max_attempts, 2))
    session = open_session(settings)
    try:
        doctor = _Doctor(settings, tenant, Probe(tenant, session, settings))
        await doctor.run(write, new_name or _throwaway_name)
        return DoctorResult(doctor.checks, TenantProfile(**doctor.learned))
    finally:
        await session.close()


def _throwaway_name() -> str:
    return verdicts.THROWAWAY_PREFIX + secrets.token_hex(6)


class _Doctor:
    def __init__(self, settings: Settings, tenant: TenantConfig, probe: Probe) -> None:
        self.settings = settings
        self.tenant = tenant
        self.probe = probe
        self.checks: list[Check] = []
        self.learned: dict[str, Any] = {
            "learned_at": datetime.now(UTC).isoformat(timespec="seconds")
        }

    def add(self, check: Check) -> None:
        self.checks.append(check)

    async def run(self, write: bool, new_name: Callable[[], str]) -> None:
        self.add(verdicts.base_url_check(self.tenant.base_url))
        if not await self._credentials():
            return
        listing = await self._listing()
        if listing is None:
            return
        await self._pagination([d["id"] for d in listing])
        await self._leftovers(listing, write)
        real = [d for d in listing if not verdicts.is_throwaway(d.get("name"))]
        await self._export_existing(real)
        await self._error_bodies()
        names = [d["name"] for d in real if isinstance(d.get("name"), str) and len(d["name"]) >= 2]
        if names:
            await self._name_filter(max(names, key=len))
        if write:
            await self._write(new_name(), learn_filter=not names)
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
        found: list[dict[str, Any]] = []
        consistent = True
        pages = 0
        for page in range(1, _MAX_PAGES + 1):
            answer = await self.probe.send(
                "GET", "/workflows", params={"page": str(page), "page_length": str(_PAGE)}
            )
            data = answer.body.get("data") if isinstance(answer.body, dict) else None
            if not answer.ok or not isinstance(data, list):
                self.add(
                    Check("listing", FAILED, f"GET /workflows page {page} answered {_what(answer)}")
                )
                return None
            pages += 1
            found.extend(d for d in data if isinstance(d, dict) and isinstance(d.get("id"), int))
            pagination = answer.body.get("pagination")
            next_page = pagination.get("next_page") if isinstance(pagination, dict) else None
            if not data or not next_page:
                consistent = consistent and (len(data) < _PAGE or not data)
                break
            if len(data) < _PAGE:
                consistent = False  # a short page that still promises more
        self.add(verdicts.listing_check([d["id"] for d in found], pages, consistent))
        return found

    async def _pagination(self, ids: list[int]) -> None:
        if len(ids) < 2:
            self.add(verdicts.pagination_check(ids, [], False))
            return
        seen: list[int] = []
        has_next = False
        for page in ("1", "2"):
            answer = await self.probe.send(
                "GET", "/workflows", params={"page": page, "page_length": "1"}
            )
            data = answer.body.get("data") if isinstance(answer.body, dict) else None
            if isinstance(data, list) and data and isinstance(data[0], dict):
                seen.append(data[0].get("id"))  # type: ignore[arg-type]
            if page == "1" and isinstance(answer.body, dict):
                pagination = answer.body.get("pagination")
                has_next = bool(isinstance(pagination, dict) and pagination.get("next_page"))
        self.add(verdicts.pagination_check(ids, seen, has_next))

    async def _leftovers(self, listing: list[dict[str, Any]], write: bool) -> None:
        left = [d for d in listing if verdicts.is_throwaway(d.get("name"))]
        if not left:
            self.add(Check("leftovers", PASSED, "no throwaway workflow of an earlier doctor run"))
            return
        ids = [d["id"] for d in left]
        if not write:
            self.add(
                Check(
                    "leftovers",
                    verdicts.DIFFERS,
                    f"{len(left)} throwaway workflow(s) of an earlier doctor run: ids {ids}",
                    "`migrator doctor --write` removes them",
                )
            )
            return
        failed = [i for i in ids if not (await self._delete(i))]
        if failed:
            self.add(Check("leftovers", FAILED, f"could not delete throwaway definitions {failed}"))
        else:
            self.add(
                Check(
                    "leftovers",
                    PASSED,
                    f"removed {len(ids)} throwaway workflow(s) of an earlier doctor run: ids {ids}",
                )
            )

    async def _export_existing(self, real: list[dict[str, Any]]) -> None:
        if not real:
            self.add(Check("export", SKIPPED, "not learned: no workflow to export"))
            return
        definition = real[0]["id"]
        path = f"/workflows/{definition}/export"
        answer = await self.probe.send("GET", path, params={"version": "latest"})
        self.add(verdicts.export_check(answer.status, answer.body, path))

    async def _error_bodies(self) -> None:
        bad = await self.probe.send(
            "GET", "/workflows", params={"page": "1", "page_length": "1"}, token="0" * 32
        )
        missing = await self.probe.send("GET", f"/workflows/{_NO_SUCH_ID}/export")
        self.add(
            verdicts.error_bodies_check((bad.status, bad.body), (missing.status, missing.body))
        )

    async def _names(self, query: str) -> list[str]:
        found: list[str] = []
        for page in range(1, 6):  # the queries are long names: a few pages at most
            answer = await self.probe.send(
                "GET",
                "/workflows",
                params={"page": str(page), "page_length": str(_PAGE), "name": query},
            )
            data = answer.body.get("data") if isinstance(answer.body, dict) else None
            if not answer.ok or not isinstance(data, list):
                break
            found.extend(
                d["name"] for d in data if isinstance(d, dict) and isinstance(d.get("name"), str)
            )
            pagination = answer.body.get("pagination")
            if not data or not (isinstance(pagination, dict) and pagination.get("next_page")):
                break
        return found

    async def _name_filter(self, name: str) -> None:
        inner, swapped = verdicts.name_filter_probes(name)
        exact = await self._names(name)
        inner_names = await self._names(inner)
        swapped_names = await self._names(swapped) if swapped is not None else None
        check, mode, case = verdicts.name_filter_verdict(name, exact, inner_names, swapped_names)
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
        check, retry_after = verdicts.retry_after_verdict(self.probe.throttles)
        self.add(check)
        self.learned["retry_after"] = retry_after
        self.add(
            verdicts.gzip_verdict((a.size, a.headers.get("content-encoding")) for a in answers)
        )

    # ---- writes: one throwaway definition -------------------------------------------------

    async def _write(self, name: str, *, learn_filter: bool) -> None:
        document = verdicts.throwaway_document(name)
        key = f"{name}-{secrets.token_hex(4)}"
        created = await self.probe.send(
            "POST",
            "/workflows/import",
            params={"version": "1.0.0", "activate": "false"},
            json=document,
            idempotency_key=f"{key}-import",
        )
        if not created.ok:
            self.add(
                Check(
                    "import",
                    FAILED,
                    f"POST /workflows/import answered {_what(created)}",
                    "the OAuth client's user needs Workflow Manage access (§1.13)",
                )
            )
            # It may have landed all the same: whatever carries the name goes.
            await self._remove_named(name)
            return
        definition = await self._find(name)
        try:
            if definition is None:
                self.add(
                    Check("import", FAILED, f"imported, but no definition named {name} is listed")
                )
                return
            self.add(Check("import", PASSED, f"created throwaway {name} (definition {definition})"))
            await self._writes_on(definition, name, created, learn_filter, key)
        finally:
            await self._cleanup(name, definition)

    async def _writes_on(
        self, definition: int, name: str, created: Answer, learn_filter: bool, key: str
    ) -> None:
        versions = await self._version_ids(definition)
        check, answer_id = verdicts.import_answer_verdict(
            created.body.get("id") if isinstance(created.body, dict) else None, definition, versions
        )
        self.add(check)
        self.learned["import_response_id"] = answer_id
        inactive = await self.probe.send("GET", f"/workflows/{definition}/export")
        check, mode = verdicts.export_without_active_verdict(inactive.status)
        self.add(check)
        self.learned["export_without_active"] = mode
        exported = await self.probe.send(
            "GET", f"/workflows/{definition}/export", params={"version": "1.0.0"}
        )
        check, rewrites = verdicts.file_refs_verdict(exported.body, "Subscription__1.csv.zip")
        self.add(check)
        self.learned["rewrite_file_refs"] = rewrites
        second = await self.probe.send(
            "POST",
            f"/workflows/{definition}/versions/import",
            params={"version": "1.0.1", "activate": "false"},
            json=verdicts.throwaway_document(name),
            idempotency_key=f"{key}-version",
            gzip_request=True,
        )
        if not second.ok:
            self.add(
                Check(
                    "version-import",
                    FAILED,
                    f"a gzip-compressed version import answered {_what(second)}",
                )
            )
            return
        versions_after = await self._version_ids(definition)
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
        patch = {"active_workflow_version_id": new[0]}
        first = await self.probe.send(
            "PATCH", f"/workflows/{definition}", json=patch, idempotency_key=f"{key}-activate"
        )
        again = await self.probe.send(
            "PATCH", f"/workflows/{definition}", json=patch, idempotency_key=f"{key}-activate"
        )
        check, replay = verdicts.replay_verdict(
            (first.status, first.body), (again.status, again.body)
        )
        self.add(check)
        self.learned["idempotent_replay"] = replay
        shown = await self.probe.send("GET", f"/workflows/{definition}")
        active = shown.body.get("active_version") if isinstance(shown.body, dict) else None
        active_id = active.get("id") if isinstance(active, dict) else None
        if active_id == new[0]:
            self.add(
                Check("activate", PASSED, f"PATCH active_workflow_version_id made {new[0]} active")
            )
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

    async def _cleanup(self, name: str, definition: int | None) -> None:
        removed = definition is not None and await self._delete(definition)
        if definition is not None and removed:
            gone = await self.probe.send("GET", f"/workflows/{definition}")
            if gone.status == 404:
                self.add(Check("cleanup", PASSED, f"deleted throwaway definition {definition}"))
                return
            self.add(
                Check(
                    "cleanup",
                    FAILED,
                    f"definition {definition} still answers {_what(gone)} after DELETE",
                )
            )
            return
        await self._remove_named(name)

    async def _remove_named(self, name: str) -> None:
        leftover = await self._find(name)
        if leftover is None:
            self.add(Check("cleanup", PASSED, f"no definition named {name} is left"))
        elif await self._delete(leftover):
            self.add(Check("cleanup", PASSED, f"deleted throwaway definition {leftover}"))
        else:
            self.add(
                Check(
                    "cleanup",
                    FAILED,
                    f"could not delete throwaway definition {leftover}",
                    "the next `migrator doctor --write` removes it",
                )
            )

    async def _delete(self, definition: int) -> bool:
        answer = await self.probe.send("DELETE", f"/workflows/{definition}")
        return answer.ok or answer.status == 404

    async def _find(self, name: str) -> int | None:
        """The definition named exactly `name` (compared here: the filter's semantics vary)."""
        answer = await self.probe.send(
            "GET", "/workflows", params={"page": "1", "page_length": str(_PAGE), "name": name}
        )
        data = answer.body.get("data") if isinstance(answer.body, dict) else None
        for item in data if isinstance(data, list) else []:
            if (
                isinstance(item, dict)
                and item.get("name") == name
                and isinstance(item.get("id"), int)
            ):
                return int(item["id"])
        return None

    async def _version_ids(self, definition: int) -> list[int]:
        answer = await self.probe.send("GET", f"/workflows/{definition}/versions")
        data = answer.body.get("data") if isinstance(answer.body, dict) else None
        return [
            v["id"]
            for v in (data if isinstance(data, list) else [])
            if isinstance(v, dict) and isinstance(v.get("id"), int)
        ]


def _what(answer: Answer) -> str:
    if answer.status is None:
        return answer.error or "nothing"
    detail = error_detail(_raw(answer.body))
    return f"{answer.status} {verdicts.safe(detail)}".rstrip()


def _raw(body: Any) -> bytes:
    return orjson.dumps(body) if body is not None else b""
