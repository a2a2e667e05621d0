"""Doctor's verdicts: from what a tenant answered to checks (passed / differs / failed) and a profile.

Pure: run/doctor.py sends the requests and hands what it saw to these functions, which decide.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from itertools import pairwise
from typing import Any
from urllib.parse import urlsplit

from migrator.core.config import LOOPBACK_HOSTS
from migrator.core.logs import printable, redact_text
from migrator.core.pacing import parse_ratelimit_limit


class CheckStatus(StrEnum):
    """What `migrator doctor` says of one check; a failed one makes the tenant unusable."""

    PASSED = "passed"
    DIFFERS = "differs"  # works, but not as the spec says: the client copes
    FAILED = "failed"
    SKIPPED = "skipped"  # not learned this run (nothing to learn it from)


PASSED, DIFFERS, FAILED, SKIPPED = (s.value for s in CheckStatus)
STATUSES = tuple(s.value for s in CheckStatus)

# Spec §1.1: Zuora's REST hosts (workflow paths go directly under them, no /v1).
ZUORA_HOSTS: dict[str, str] = {
    "rest.test.zuora.com": "US Developer & Central Sandbox (Cloud 1)",
    "rest.sandbox.na.zuora.com": "US API Sandbox Cloud 1",
    "rest.apisandbox.zuora.com": "US API Sandbox Cloud 2",
    "rest.na.zuora.com": "US Production Cloud 1",
    "rest.zuora.com": "US Production Cloud 2",
    "rest.test.eu.zuora.com": "EU Developer & Central Sandbox",
    "rest.sandbox.eu.zuora.com": "EU API Sandbox",
    "rest.eu.zuora.com": "EU Production",
    "rest.test.ap.zuora.com": "APAC Developer & Central Sandbox",
    "rest.ap.zuora.com": "APAC Production",
    "rest.pt1.zuora.com": "US Performance Test",
}
HOSTS_HINT = "Zuora's REST hosts: " + ", ".join(f"https://{h}" for h in ZUORA_HOSTS)

THROWAWAY_PREFIX = "migrator-doctor-"
# The names doctor makes: the prefix and exactly 12 hex digits (its run id), the whole name
# (fullmatch: `$` would also match before a trailing newline).
THROWAWAY_NAME = re.compile(r"migrator-doctor-(?P<run>[0-9a-f]{12})")
# The marker doctor writes into its throwaway's description: which run made it, and when.
MARKER = re.compile(
    r"\[migrator-doctor run=(?P<run>[0-9a-f]{12}) at=(?P<at>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\]"
)
UNKNOWN_KEY = "migrator_doctor_unknown_key"  # sent in the throwaway; kept or dropped (§3.6)
LEASE_SECONDS = 15 * 60.0  # a throwaway younger than this may be another doctor run's, live
GZIP_MIN_BYTES = 1000  # §1.10: only bodies over this are compressed


@dataclass(frozen=True, slots=True)
class Check:
    """One line of doctor's output: what was checked, the verdict, what was seen, what to do."""

    name: str
    status: str  # PASSED | DIFFERS | FAILED | SKIPPED
    evidence: str
    hint: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "evidence": self.evidence,
            "hint": self.hint,
        }


def safe(text: str, limit: int = 160) -> str:
    """Server-sent text fit for one line: secrets redacted, control characters escaped, cut."""
    shown = printable(redact_text(text))
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def is_throwaway(name: object) -> bool:
    """Named exactly as doctor names its throwaways (a name is no proof of ownership: see
    `ownership`)."""
    return isinstance(name, str) and THROWAWAY_NAME.fullmatch(name) is not None


def marker(run: str, now: float) -> str:
    """The ownership marker for the description of run `run`'s throwaway, made at `now`."""
    at = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"[migrator-doctor run={run} at={at}]"


@dataclass(frozen=True, slots=True)
class Ownership:
    """A throwaway doctor can prove it made: the run that made it and when (epoch seconds)."""

    run: str
    created: float


def ownership(name: object, description: object) -> Ownership | None:
    """Proof that doctor made this definition: its exact throwaway name AND, in its
    description, the marker of the run the name carries. None: not provably doctor's."""
    if not isinstance(name, str) or not isinstance(description, str):
        return None
    named = THROWAWAY_NAME.fullmatch(name)
    found = MARKER.search(description)
    if named is None or found is None or found["run"] != named["run"]:
        return None
    try:
        created = datetime.strptime(found["at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None
    return Ownership(found["run"], created.timestamp())


def may_delete(owner: Ownership | None, own_run: str, now: float, lease: float) -> bool:
    """The ownership rule: delete only a provably doctor-made throwaway that is this run's own,
    or older than the lease (a younger one may be another doctor's, still in use)."""
    if owner is None:
        return False
    return owner.run == own_run or now - owner.created >= lease


def throwaway_document(name: str, *, mark: str = "") -> dict[str, Any]:
    """The smallest valid workflow doctor imports: an Export task whose file an Iterate task reads.

    Only the on-demand trigger is on (doctor runs it once: its Export task selects nothing); no
    callout or schedule ever starts it. The workflow object carries UNKNOWN_KEY. The Iterate task's `Subscription__1.csv.zip` names
    task 1's file: the export after import shows whether the server rewrote it (§9.1).
    """
    return {
        "workflow": {
            "id": 1,
            "name": name,
            # The marker first: a server that cuts long descriptions keeps it.
            "description": (mark + " " if mark else "")
            + "Created by `migrator doctor` to learn how this tenant's API behaves;"
            " doctor deletes it, and a later doctor run removes it if left behind.",
            "type": "Workflow::Setup",
            "version": "1.0.0",
            "call_type": "ASYNC",
            "ondemand_trigger": True,  # only so that POST /run is allowed to start it
            "callout_trigger": False,
            "scheduled_trigger": False,
            "priority": "Medium",
            "delete_ttl": 30,
            "parameters": {"fields": []},
            "data": {},
            "notifications": {},
            UNKNOWN_KEY: "does the tenant keep keys it does not know?",
        },
        "tasks": [
            {
                "id": 1,
                "name": "Export nothing",
                "action_type": "Export",
                "object": "Subscription",
                "task_id": None,
                "call_type": "SOAP",
                "parameters": {
                    "fields": {"Subscription": {"Id": "true"}},
                    "where_clause": "Id = 'migrator-doctor'",
                },
            },
            {
                "id": 2,
                "name": "Iterate over nothing",
                "action_type": "Iterate",
                "object": "Subscription__1.csv.zip",
                "task_id": 1,
                "parameters": {"iteration_type": "Default"},
            },
        ],
        "linkages": [
            {
                "source_workflow_id": 1,
                "source_task_id": None,
                "target_task_id": 1,
                "linkage_type": "Start",
            },
            {
                "source_workflow_id": None,
                "source_task_id": 1,
                "target_task_id": 2,
                "linkage_type": "Success",
            },
        ],
    }


# ---- where and who ------------------------------------------------------------------------


def base_url_check(base_url: str) -> Check:
    """The configured base URL against §1.1: a Zuora REST host, no path (above all no /v1)."""
    parts = urlsplit(base_url)
    host = (parts.hostname or "").lower().rstrip(".")
    path = parts.path.rstrip("/")
    if re.search(r"(^|/)v1(/|$)", path):
        return Check(
            "base-url",
            FAILED,
            f"{safe(base_url)} ends in {safe(path)}",
            "workflow paths go directly under the host (https://rest.zuora.com/workflows):"
            " remove /v1 from base_url",
        )
    if path:
        return Check(
            "base-url",
            DIFFERS,
            f"{safe(base_url)} has the path {safe(path)}",
            "Zuora's workflow paths are directly under the host; keep a path only for a proxy",
        )
    if host in ZUORA_HOSTS:
        return Check("base-url", PASSED, f"{host}: {ZUORA_HOSTS[host]}")
    if host in LOOPBACK_HOSTS or host.startswith("127."):
        return Check("base-url", PASSED, f"{host}: a loopback host (a fake Zuora or a tunnel)")
    hint = HOSTS_HINT
    if f"rest.{host}" in ZUORA_HOSTS:
        hint = f"{host} looks like a UI host: its REST host is https://rest.{host}"
    return Check("base-url", DIFFERS, f"{safe(host)} is not one of Zuora's REST hosts", hint)


def token_check(base_url: str, status: int | None, message: str) -> Check:
    """A refused or failed token request (§1.2), with the hint for the usual cause."""
    seen = safe(message, 240)
    if status is None:
        if "TLS" in message:
            hint = "the host's certificate did not verify: check the host name (" + HOSTS_HINT + ")"
        else:
            hint = "check the host name and the network (proxy, firewall); " + HOSTS_HINT
        return Check("credentials", FAILED, seen, hint)
    if status in (400, 401):
        hint = (
            "check client_id and client_secret; an OAuth client belongs to one data centre and"
            " one environment, so a client made in another (say the EU sandbox) is unknown at"
            f" {safe(base_url)}. " + HOSTS_HINT
        )
    elif status == 403:
        hint = "the OAuth client's user is not allowed to use the API; ask a Zuora admin"
    elif status == 404:
        hint = (
            f"no token endpoint at {safe(base_url)}/oauth/token: base_url must be the REST host"
            " itself, with no path such as /v1"
        )
    elif 300 <= status < 400:
        hint = (
            "the host redirects: base_url is probably the UI host; use the REST host. " + HOSTS_HINT
        )
    else:
        hint = "the token endpoint is failing; try again later"
    return Check("credentials", FAILED, seen, hint)


def api_access_check(status: int | None, detail: str, entity_ids: str | None) -> Check:
    """The first GET /workflows after a token was issued: 2xx, or why the API refused it."""
    if status is not None and 200 <= status < 300:
        return Check("credentials", PASSED, "token issued; GET /workflows answered " + str(status))
    seen = f"GET /workflows answered {status if status is not None else safe(detail)}"
    if status is not None and detail:
        seen += f": {safe(detail)}"
    entity = (
        "on a multi-entity tenant set entity_ids (sent as Zuora-Entity-Ids) in the tenant's table"
        if not entity_ids
        else "check entity_ids: the token must cover that entity"
    )
    if status == 401:
        hint = "the token was issued but refused: " + entity
    elif status == 403:
        hint = "the OAuth client's user lacks Workflow View access (§1.13), or " + entity
    elif status == 404:
        hint = "no /workflows under base_url: remove any path (/v1); is Workflow enabled for this tenant?"
    elif status is None:
        hint = "the token endpoint answered but the API did not: check proxies and the network"
    else:
        hint = "the API is failing; try again later"
    return Check("credentials", FAILED, seen, hint)


# ---- listing ------------------------------------------------------------------------------


def listing_check(ids: Sequence[int], pages: int, next_page_consistent: bool) -> Check:
    """All pages of GET /workflows: distinct ids, next_page only while more remain (§3.1)."""
    if len(set(ids)) != len(ids):
        return Check(
            "listing", FAILED, f"{len(ids)} definitions over {pages} pages, some listed twice"
        )
    if not next_page_consistent:
        return Check(
            "listing",
            DIFFERS,
            f"{len(ids)} definitions over {pages} pages; pagination.next_page was given on the"
            " last page (or missing before it)",
        )
    return Check("listing", PASSED, f"{len(ids)} definitions over {pages} page(s); {order(ids)}")


def order(ids: Sequence[int]) -> str:
    if len(ids) < 2:
        return "order not learned (fewer than 2)"
    if all(a > b for a, b in pairwise(ids)):
        return "ids descending"
    if all(a < b for a, b in pairwise(ids)):
        return "ids ascending"
    return "ids in no numeric order"


def rate_limit_verdict(
    headers: Iterable[Mapping[str, str]], configured_rpm: int | None
) -> tuple[Check, bool | None, int | None]:
    """RateLimit-* on the API's answers (§1.4, §1.5): present? which per-minute budget?"""
    seen = list(headers)
    if not seen:
        return Check("rate-limit", SKIPPED, "not learned: no API answer"), None, None
    limits = [h["ratelimit-limit"] for h in seen if "ratelimit-limit" in h]
    if not limits:
        return (
            Check(
                "rate-limit",
                DIFFERS,
                f"none of {len(seen)} answers carried RateLimit-* headers",
                "the client paces by requests_per_minute from the config (set it to the"
                " tenant's budget, §1.5)",
            ),
            False,
            None,
        )
    minute = [w.quota for w in parse_ratelimit_limit(limits[-1]) if w.seconds == 60]
    rpm = minute[0] if minute else None
    evidence = f"RateLimit-Limit: {safe(limits[-1])}"
    if "ratelimit-remaining" in seen[-1]:
        evidence += f"; remaining {safe(seen[-1]['ratelimit-remaining'])}"
    if rpm is None:
        return Check("rate-limit", DIFFERS, evidence + "; no per-minute window"), True, None
    if configured_rpm is not None and configured_rpm > rpm:
        return (
            Check(
                "rate-limit",
                DIFFERS,
                evidence + f"; {rpm} per minute announced",
                f"requests_per_minute = {configured_rpm} in the config is above it",
            ),
            True,
            rpm,
        )
    return Check("rate-limit", PASSED, evidence + f"; {rpm} per minute"), True, rpm


def gzip_verdict(sizes_and_encodings: Iterable[tuple[int, str | None]]) -> Check:
    """Answers over 1000 bytes to requests with Accept-Encoding: gzip came compressed (§1.10)."""
    big = [(size, enc) for size, enc in sizes_and_encodings if size > GZIP_MIN_BYTES]
    if not big:
        return Check("gzip", SKIPPED, "not learned: no answer over 1000 bytes")
    zipped = sum(1 for _, enc in big if enc and "gzip" in enc.lower())
    evidence = f"{zipped} of {len(big)} answers over 1000 bytes came gzip-compressed"
    if zipped == len(big):
        return Check("gzip", PASSED, evidence)
    return Check("gzip", DIFFERS, evidence, "larger answers cost more bandwidth; nothing breaks")


def error_body_shape(body: Any) -> str:
    """The shape of an error body, as §1.12 names them."""
    if isinstance(body, dict):
        if isinstance(body.get("errors"), list):
            return "{errors: [...]}"
        if isinstance(body.get("Errors"), list):
            return "{Errors: [...]}"
        if "reasons" in body:
            return "{success, reasons}"
        if "code" in body and "message" in body:
            return "{code, message}"
        if "message" in body:
            return "{message}"
        return "{" + ", ".join(safe(str(k), 20) for k in list(body)[:4]) + "}"
    return "not a JSON object"


def error_bodies_check(
    unauthorized: tuple[int | None, Any], missing: tuple[int | None, Any]
) -> Check:
    """What a bad token and an unknown definition answer (§1.12, §9.4): evidence only."""
    (s401, b401), (s404, b404) = unauthorized, missing
    evidence = f"bad token → {s401} {error_body_shape(b401)}; unknown export → {s404} {error_body_shape(b404)}"
    if s401 != 401 or s404 != 404:
        return Check(
            "error-bodies",
            DIFFERS,
            evidence,
            "expected 401 and 404; the client treats any 4xx as refused",
        )
    return Check("error-bodies", PASSED, evidence)


def export_check(status: int | None, body: Any, what: str) -> Check:
    """An export (§3.5) is a document: a workflow object, tasks and linkages lists."""
    if status != 200:
        return Check("export", FAILED, f"GET {what} answered {status}")
    if (
        isinstance(body, dict)
        and isinstance(body.get("workflow"), dict)
        and isinstance(body.get("tasks"), list)
        and isinstance(body.get("linkages"), list)
    ):
        return Check(
            "export",
            PASSED,
            f"GET {what}: {len(body['tasks'])} tasks, {len(body['linkages'])} linkages",
        )
    return Check("export", FAILED, f"GET {what}: not a workflow/tasks/linkages document")


# ---- the name filter --------------------------------------------------------------------------


NO_MATCH_SUFFIX = "-no-such-workflow"  # appended to a name: a query no definition matches


def name_filter_probes(name: str) -> tuple[str, str | None]:
    """The queries that tell the filter apart: the name without its first character (a
    substring, never the name), and the name with its case swapped (None: no cased letter)."""
    swapped = name.swapcase()
    return name[1:], (swapped if swapped != name else None)


def name_filter_verdict(
    name: str,
    exact: Sequence[str],
    inner: Sequence[str],
    swapped: Sequence[str] | None,
    absent: Sequence[str] = (),
) -> tuple[Check, str | None, bool | None]:
    """What GET /workflows?name= does (§3.1, §9.10), from the names each query returned;
    `absent` is what a query no name matches listed (`name` there: the filter is ignored)."""
    shown = safe(name, 60)
    if name not in exact:
        return (
            Check("name-filter", FAILED, f"?name={shown} did not list {shown}"),
            None,
            None,
        )
    unrelated = [n for n in exact if name.casefold() not in n.casefold()]
    if unrelated or name in absent:
        seen = (
            f"?name={shown} also listed {safe(unrelated[0], 60)}"
            if unrelated
            else f"a name no workflow has listed {shown}"
        )
        return (
            Check(
                "name-filter",
                DIFFERS,
                f"{seen}: the filter looks ignored",
                "the client compares names itself; it costs pages, not correctness",
            ),
            None,
            None,
        )
    mode = "contains" if name in inner else "exact"
    case = None if swapped is None else name not in swapped
    parts = [
        f"?name={safe(name[1:], 60)} {'listed' if mode == 'contains' else 'did not list'} {shown}"
    ]
    if swapped is not None:
        parts.append(f"?name={safe(name.swapcase(), 60)} {'did not list' if case else 'listed'} it")
    case_word = {True: "case-sensitive", False: "case-insensitive", None: "case not learned"}[case]
    evidence = f"{mode}, {case_word}: " + "; ".join(parts)
    if mode == "exact" and case is not False:
        return Check("name-filter", PASSED, evidence), mode, case
    return (
        Check(
            "name-filter",
            DIFFERS,
            evidence,
            "a name lookup may list other workflows; the client keeps only exact matches",
        ),
        mode,
        case,
    )


# ---- what a write answers ------------------------------------------------------------------


def import_answer_verdict(
    answer_id: object, definition_id: int, version_ids: Sequence[int]
) -> tuple[Check, str | None]:
    """Which id POST /workflows/import answered: the definition's or the version's (§9.3)."""
    is_definition = answer_id == definition_id
    is_version = answer_id in version_ids
    evidence = f"import answered id {safe(str(answer_id))}; definition {definition_id}, versions {list(version_ids)}"
    if is_definition and not is_version:
        return Check("import-answer", PASSED, "the definition id: " + evidence), "definition"
    if is_version and not is_definition:
        return (
            Check(
                "import-answer",
                DIFFERS,
                "the version id: " + evidence,
                "the client looks the definition up by name after a create",
            ),
            "version",
        )
    if is_definition and is_version:
        return Check("import-answer", DIFFERS, "ambiguous: " + evidence), None
    return Check("import-answer", FAILED, "neither: " + evidence), None


def replay_verdict(
    first: tuple[int | None, Any], second: tuple[int | None, Any]
) -> tuple[Check, str | None]:
    """One PATCH sent twice with one Idempotency-Key: replayed, or 409 (§1.8, §9.7)?"""
    (s1, b1), (s2, b2) = first, second
    evidence = f"first answer {s1}, the same key again → {s2}"
    if s1 is None or not 200 <= s1 < 300:
        return Check("idempotency", FAILED, evidence + ": the first write failed"), None
    if s2 == 409:
        same = " with the first body" if b2 == b1 else ""
        return (
            Check(
                "idempotency",
                DIFFERS,
                evidence + same,
                "a completed key answers 409 (the error-handling guide); the client reads"
                " 409 as done and looks the result up",
            ),
            "409",
        )
    if s2 == s1 and b2 == b1:
        return Check("idempotency", PASSED, evidence + ", the same body: replayed"), "replay"
    if s2 is not None and 200 <= s2 < 300:
        return (
            Check(
                "idempotency",
                DIFFERS,
                evidence + " with another body: the key may not be honoured",
                "without replay a lost answer may be applied twice; the client looks imports up",
            ),
            None,
        )
    return Check("idempotency", FAILED, evidence), None


def file_refs_verdict(exported: Any, sent_ref: str) -> tuple[Check, bool | None]:
    """After import, does the Iterate task's `Subscription__<id>` name the new Export task (§9.1)?"""
    tasks = exported.get("tasks") if isinstance(exported, dict) else None
    if not isinstance(tasks, list):
        return Check("file-refs", SKIPPED, "not learned: the export had no tasks"), None
    producer = next(
        (t for t in tasks if isinstance(t, dict) and t.get("action_type") == "Export"), None
    )
    reader = next(
        (t for t in tasks if isinstance(t, dict) and t.get("action_type") == "Iterate"), None
    )
    if producer is None or reader is None:
        return Check("file-refs", SKIPPED, "not learned: the export lost a task"), None
    new_ref = f"Subscription__{producer.get('id')}.csv.zip"
    got = reader.get("object")
    evidence = f"sent {sent_ref}; the Export task is now {producer.get('id')}, Iterate reads {safe(str(got))}"
    if got == sent_ref and new_ref == sent_ref:
        return Check("file-refs", SKIPPED, "not learned: task ids were kept; " + evidence), None
    if got == new_ref:
        return Check("file-refs", PASSED, "rewritten: " + evidence), True
    return (
        Check(
            "file-refs",
            DIFFERS,
            "not rewritten: " + evidence,
            "workflows whose tasks pass files (Name__<taskId>) arrive with dangling references;"
            " fix them in the tenant after migrating (spec §9.1)",
        ),
        False,
    )


def export_without_active_verdict(status: int | None) -> tuple[Check, str | None]:
    """Export with no version= of a definition without an active version (§3.5 [I])."""
    if status == 200:
        return Check("export-inactive", PASSED, "answered 200 with the latest version"), "latest"
    if status == 404:
        return (
            Check(
                "export-inactive",
                DIFFERS,
                "answered 404",
                "the client always names the version it exports",
            ),
            "404",
        )
    return Check("export-inactive", DIFFERS, f"answered {status}"), None


# ---- output ---------------------------------------------------------------------------------


def render_lines(checks: Iterable[Check]) -> list[str]:
    """One line per check (and its hint indented below), for a terminal."""
    lines = []
    for check in checks:
        lines.append(f"{check.status:<8} {check.name:<16} {check.evidence}")
        if check.hint and check.status != PASSED:
            lines.append(f"{'':<8} {'':<16} hint: {check.hint}")
    return lines


def usable(checks: Iterable[Check]) -> bool:
    """A tenant is usable when no check failed (differences are handled by the client)."""
    return all(c.status != FAILED for c in checks)
