"""Reading a `GET /workflows` listing entry whichever way the tenant spells it (spec §3.1).

The reference spells the inactive versions `latest_inactive_verisons`; a live 2022 payload in
Zuora's own Deployment Manager reference and a public client written against live tenants spell
it `latest_inactive_versions` [O]. Version objects may carry `definitionId` [O]. Every reader of
a listing entry goes through these functions, so no spelling costs a request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Both wire spellings of the inactive versions, the reference's (sic) first.
INACTIVE_KEYS = ("latest_inactive_verisons", "latest_inactive_versions")
# §3.1 [S]: the listing shows at most this many inactive versions.
MAX_INACTIVE_SHOWN = 10


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def inactive_versions(entry: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The entry's latest inactive versions under either spelling (both read, each id once)."""
    out: list[Mapping[str, Any]] = []
    seen: set[Any] = set()
    for key in INACTIVE_KEYS:
        listed = entry.get(key)
        if not isinstance(listed, list):
            continue
        for v in listed:
            if not isinstance(v, Mapping):
                continue
            mark = _int(v.get("id"))
            if mark is not None and mark in seen:
                continue
            seen.add(mark)
            out.append(v)
    return out


def active_version(entry: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The entry's `active_version` object, or None (absent, null, or not an object)."""
    active = entry.get("active_version")
    return active if isinstance(active, Mapping) else None


def shown_versions(entry: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every version the entry shows: its active version first, then the inactive ones."""
    active = active_version(entry)
    return [*([active] if active is not None else []), *inactive_versions(entry)]


def definition_id_of(version: Mapping[str, Any], default: int | None = None) -> int | None:
    """A version object's definition id: its `definitionId` when given [O], else `default`."""
    found = _int(version.get("definitionId"))
    return found if found is not None else default


def listing_spelling(entry: Mapping[str, Any]) -> str | None:
    """Which spelling of the inactive versions an entry uses ("verisons", "versions", "both")."""
    has = [key for key in INACTIVE_KEYS if key in entry]
    if len(has) == 2:
        return "both"
    if has:
        return has[0].rsplit("_", 1)[1]
    return None


def unseen_versions_note(
    definition_id: int, entry: Mapping[str, Any], *, asked: bool = True
) -> str:
    """What a reader of `entry` in place of the versions list could not see (issue 23 #5);
    `asked=False` when the request was not sent because the saved tenant profile says the
    tenant has no versions list."""
    inactive = len(inactive_versions(entry))
    active = "its active version" if active_version(entry) is not None else "no active version"
    more = (
        f"; versions beyond the {MAX_INACTIVE_SHOWN} latest inactive ones are not seen"
        if inactive >= MAX_INACTIVE_SHOWN
        else "; an older tenant may show fewer versions than it has"
    )
    why = (
        "answered 404"
        if asked
        else "is missing on this tenant (the saved doctor profile says so; not asked)"
    )
    return (
        f"GET /workflows/{definition_id}/versions {why}: read the listing instead"
        f" ({active}, {inactive} inactive version{'s' if inactive != 1 else ''} shown){more}"
    )
