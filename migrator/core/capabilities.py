"""Doctor's answer per command: which endpoints each command sends, and from what the probes of
those endpoints saw, whether the command can work on a tenant (issue 23 #4).

Pure: run/doctor.py probes the endpoints and records each as works / fails (why) / not checked;
`command_verdicts` decides. Also the verdicts of what doctor learns in passing: how Retry-After
is written, which spelling the listing uses, error body shapes, unknown keys, workflow_definition.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from migrator.core.doctor import DIFFERS, PASSED, SKIPPED, Check, safe
from migrator.core.listing import listing_spelling, shown_versions

# What doctor probes, as a user would name the request.
ENDPOINTS: dict[str, str] = {
    "list": "GET /workflows?page_length=50",
    "get": "GET /workflows/{id}",
    "versions": "GET /workflows/{id}/versions",
    "export-version": "GET /workflows/{id}/export?version=…",
    "export-latest": "GET /workflows/{id}/export?version=latest",
    "import": "POST /workflows/import",
    "versions-import": "POST /workflows/{id}/versions/import",
    "patch": "PATCH /workflows/{id}",
    "delete": "DELETE /workflows/{id}",
    "run": "POST /workflows/{id}/run",
    "run-status": "GET /workflows/workflow_runs/{id}",
    "describe": "GET /v1/describe/{Object}",
    "custom-objects": "GET /objects/definitions/default",
}
WRITES = frozenset({"import", "versions-import", "patch", "delete", "run", "run-status"})

# The endpoints each command sends (run/ and commands/ through ZuoraClient), in the order a
# failure is worth naming.
COMMANDS: dict[str, tuple[str, ...]] = {
    "migrate": (
        "list",
        "versions",
        "export-version",
        "import",
        "versions-import",
        "patch",
        "describe",
        "custom-objects",
    ),
    "plan": ("list", "versions", "export-version", "describe", "custom-objects"),
    "verify": ("list", "versions", "export-version"),
    "diff": ("list", "versions", "export-version"),
    "backup": ("list", "versions", "export-version"),
    "activate": ("list", "get", "versions", "patch"),
    "rollback": ("list", "get", "versions", "patch", "delete"),
    "migrate --from-tenant": ("list", "export-latest"),
    "rollout smoke runs": ("run", "run-status"),
}

# Where a command still works without an endpoint, and what it does instead: (command,
# endpoint) → how it copes. Such a failure makes the command "usable" with the limit named.
_NOT_CHECKED = "the reference check reads nothing there: every reference is 'not checked'"
_LISTED = (
    "reads the listing's active and latest inactive versions (at most 10) instead and names"
    " what it could not see"
)
FALLBACKS: dict[tuple[str, str], str] = {
    **{
        (command, endpoint): _NOT_CHECKED
        for command in ("migrate", "plan")
        for endpoint in ("describe", "custom-objects")
    },
    # issue 23: without a versions list backup, diff, plan, verify and migrate read the listing
    # instead, activate finds a version among those the definition shows, and a rollback
    # switches the definitions it created off (deleting needs the list as proof).
    **{
        (command, "versions"): _LISTED
        for command in ("backup", "diff", "plan", "verify", "migrate")
    },
    ("activate", "versions"): (
        "finds a version among the active and latest inactive versions its listing entry shows"
    ),
    ("rollback", "versions"): "switches the definitions it created off instead of deleting them",
}

USABLE, NOT_USABLE, NOT_CHECKED = "usable", "not usable", "not checked"


@dataclass(frozen=True, slots=True)
class Probed:
    """What one endpoint's probe showed: works (True), fails (False), and the evidence."""

    works: bool
    evidence: str  # for a failure: "answers 404", "answered 429; the server asks …"


@dataclass(frozen=True, slots=True)
class CommandVerdict:
    """One command on this tenant: usable, not usable (the first failing endpoint), or not
    checked (an endpoint it needs was not probed: why)."""

    command: str
    verdict: str
    reason: str | None = None

    def line(self) -> str:
        return f"{self.command}: {self.verdict}" + (f" ({self.reason})" if self.reason else "")

    def to_json(self) -> dict[str, Any]:
        return {"command": self.command, "verdict": self.verdict, "reason": self.reason}


def command_verdicts(probed: Mapping[str, Probed], *, write: bool) -> list[CommandVerdict]:
    """Per command, from the endpoints probed: a failing endpoint makes it not usable; one never
    probed makes it not checked (a write needs --write; a read needs a workflow to read)."""
    out: list[CommandVerdict] = []
    for command, needs in COMMANDS.items():
        failing = [e for e in needs if e in probed and not probed[e].works]
        coped = [e for e in failing if (command, e) in FALLBACKS]
        failing = [e for e in failing if e not in coped]
        missing = [e for e in needs if e not in probed]
        limits = "; ".join(
            f"limited: {ENDPOINTS[e]} {probed[e].evidence}, {FALLBACKS[command, e]}" for e in coped
        )
        if failing:
            first = failing[0]
            reason = f"{ENDPOINTS[first]} {probed[first].evidence}"
            out.append(CommandVerdict(command, NOT_USABLE, reason))
        elif missing:
            first = missing[0]
            why = (
                "needs --write"
                if first in WRITES and not write
                else "no workflow to read"
                if not write
                else "not reached"
            )
            out.append(CommandVerdict(command, NOT_CHECKED, f"{ENDPOINTS[first]}: {why}"))
        else:
            out.append(CommandVerdict(command, USABLE, limits or None))
    return out


def schema_check(describe: int | None, custom: int | None) -> Check:
    """Whether the role may read the tenant's data model, as the reference check does
    (docs/references.md): `GET /v1/describe/Account` and the custom object definitions."""
    evidence = (
        f"GET /v1/describe/Account answered {describe}; GET /objects/definitions/default"
        f" answered {custom}"
    )
    if describe == 200 and custom == 200:
        return Check("schema", PASSED, evidence)
    return Check(
        "schema",
        DIFFERS,
        evidence,
        "the role lacks the describe or custom object permission: the reference check of"
        " migrate and plan will say 'not checked' for every reference (docs/references.md)",
    )


def all_usable(verdicts: Iterable[CommandVerdict]) -> bool:
    """Exit 0 only when no command is known not to work (not checked ones do not count)."""
    return all(v.verdict != NOT_USABLE for v in verdicts)


# ---- learned in passing -----------------------------------------------------------------------


def retry_after_verdict(forms: Sequence[str | None]) -> tuple[Check, bool | None, str | None]:
    """Whether the 429s seen carried Retry-After (§9.6), and in which form: "seconds",
    "http-date" or "both" (the client reads both)."""
    if not forms:
        return Check("retry-after", SKIPPED, "not learned: no 429 answer seen"), None, None
    carried = [f for f in forms if f is not None]
    usable = sorted({f for f in carried if f != "unusable"})
    form = None if not usable else usable[0] if len(usable) == 1 else "both"
    evidence = f"{len(carried)} of {len(forms)} 429 answers carried Retry-After"
    if form is not None:
        evidence += f" ({form})"
    if len(carried) == len(forms) and "unusable" not in carried:
        return Check("retry-after", PASSED, evidence), True, form
    return (
        Check("retry-after", DIFFERS, evidence, "the client backs off by itself when it is absent"),
        False,
        form,
    )


def listing_spelling_verdict(entries: Iterable[Any]) -> tuple[Check, str | None]:
    """Which key the listing's inactive versions come under: the reference's misspelled
    `latest_inactive_verisons`, the live payload's `latest_inactive_versions`, or both (§3.1),
    read by core/listing as every command reads it."""
    seen = {
        found
        for entry in entries
        if isinstance(entry, Mapping)
        for found in [listing_spelling(entry)]
        if found is not None
    }
    if not seen:
        return Check(
            "listing-spelling", SKIPPED, "not learned: no listing entry carried either key"
        ), None
    spelling = seen.pop() if len(seen) == 1 else "both"
    evidence = (
        f"inactive versions are listed under latest_inactive_{spelling}"
        if spelling != "both"
        else "both spellings of latest_inactive_versions are listed"
    )
    return Check("listing-spelling", PASSED, evidence), spelling


def _shown(body: Any) -> list[Mapping[str, Any]]:
    return shown_versions(body) if isinstance(body, Mapping) else []


def versions_shown(*bodies: Any) -> list[int]:
    """The version ids the definitions or listing entries show (where the versions list is
    missing): their active and latest inactive versions, either spelling."""
    found = [v for body in bodies for v in _shown(body)]
    return sorted({v["id"] for v in found if type(v.get("id")) is int})


def a_version(entry: Any, versions: Sequence[Any]) -> str | None:
    """A version string of a definition to export by: from its versions list, else the
    active or an inactive version its listing entry shows."""
    for v in [*versions, *_shown(entry)]:
        if isinstance(v, Mapping) and isinstance(v.get("version"), str) and v["version"]:
            return str(v["version"])
    return None


def error_shape_verdict(unauthorized: Any) -> str | None:
    """The family of error bodies (§1.12): "spec" ({errors: [...]} on a 401), "sdk" (the SDK's
    {message}), or "other"; None when there was no body."""
    if unauthorized is None:
        return None
    if isinstance(unauthorized, dict):
        if isinstance(unauthorized.get("errors"), list):
            return "spec"
        if set(unauthorized) == {"message"}:
            return "sdk"
    return "other"


def unknown_keys_verdict(exported: Any, key: str) -> tuple[Check, bool | None]:
    """After importing a workflow carrying `key`, does its export still carry it (§3.6)?"""
    workflow = exported.get("workflow") if isinstance(exported, dict) else None
    if not isinstance(workflow, dict):
        return Check("unknown-keys", SKIPPED, "not learned: the export had no workflow"), None
    if key in workflow:
        return (
            Check(
                "unknown-keys",
                DIFFERS,
                f"the export still carries {key}: unknown keys are kept",
                "against §3.6 [Z]; migrator compares what survives an import either way",
            ),
            True,
        )
    return Check("unknown-keys", PASSED, f"{key} was dropped on import (§3.6)"), False


def workflow_definition_verdict(exported: Any) -> bool | None:
    """Whether an export carries the `workflow_definition` block (§3.5, issue 23)."""
    if not isinstance(exported, dict) or not isinstance(exported.get("workflow"), dict):
        return None
    return "workflow_definition" in exported


def pagination_verdict(
    listing: Sequence[Any],
    first: Sequence[Any],
    second: Sequence[Any],
    again: Sequence[Any],
    has_next: bool,
) -> tuple[Check, bool | None, bool | None]:
    """Pages 1 and 2 of length 1 (and page 1 asked again) against the full listing's ids:
    "ignores page_length" (a page of 1 brought more) is told apart from "unstable order"
    (the same request listed another first entry). Returns (check, page_length honoured,
    order stable)."""
    if len(listing) < 2:
        return Check("pagination", SKIPPED, "not learned: fewer than 2 definitions"), None, None
    if len(first) > 1:
        return (
            Check(
                "pagination",
                DIFFERS,
                f"page_length=1 answered {len(first)} entries: page_length is ignored",
                "the client reads pages by number whatever their length; nothing breaks",
            ),
            False,
            list(first[:1]) == list(again[:1]),
        )
    if list(first) != list(again):
        return (
            Check(
                "pagination",
                DIFFERS,
                f"page 1 of length 1 listed {safe(str(list(first)))}, then {safe(str(list(again)))}:"
                " the listing order is not stable between requests",
                "a definition may be listed twice or missed while paging; migrator's listing"
                " reader drops repeats, and re-lists to confirm a missing name",
            ),
            True,
            False,
        )
    if [*first, *second] != list(listing[:2]):
        return (
            Check(
                "pagination",
                DIFFERS,
                f"pages of 1 gave ids {safe(str([*first, *second]))}, the full listing starts"
                f" {safe(str(list(listing[:2])))}",
                "page 2 of length 1 is not the second definition: pages of other lengths"
                " are numbered differently",
            ),
            True,
            True,
        )
    return (
        Check("pagination", PASSED, "page_length=1: pages 1 and 2 match the full listing"),
        True,
        True,
    )
