"""What `migrator doctor` learned about one tenant's API where the spec leaves it open (§9).

A profile is advice, never a requirement: every field may be None (not learned), and a run
without a profile behaves correctly by looking things up.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

PROFILE_FORMAT = "migrator-profile/1"

_CHOICES: dict[str, tuple[object, ...]] = {
    "import_response_id": ("definition", "version"),
    "name_filter": ("exact", "contains"),
    "idempotent_replay": ("replay", "409"),
    "export_without_active": ("latest", "404"),
    "retry_after_form": ("seconds", "http-date", "both"),
    "listing_key_spelling": ("verisons", "versions", "both"),
    "error_body_shape": ("spec", "sdk", "other"),
}
_BOOLEANS = (
    "name_filter_case_sensitive",
    "retry_after",
    "rate_limit_headers",
    "rewrite_file_refs",
    "keeps_unknown_keys",
    "export_has_workflow_definition",
    "page_length_honoured",
    "listing_order_stable",
    "versions_list",
)


@dataclass(frozen=True)
class TenantProfile:
    """One tenant's learned behaviour; None means "not learned, assume nothing"."""

    import_response_id: str | None = (
        None  # "definition" | "version": the id POST /workflows/import answers
    )
    name_filter: str | None = None  # "exact" | "contains": GET /workflows?name=
    name_filter_case_sensitive: bool | None = None
    idempotent_replay: str | None = None  # "replay" | "409": a completed Idempotency-Key sent again
    retry_after: bool | None = None  # 429 answers carry Retry-After
    rate_limit_headers: bool | None = None  # answers carry RateLimit-* headers
    requests_per_minute: int | None = None  # the budget the headers announce
    rewrite_file_refs: bool | None = None  # import renames `Name__<taskId>` file references
    export_without_active: str | None = None  # "latest" | "404": export without version=
    retry_after_form: str | None = None  # "seconds" | "http-date" | "both": as 429s wrote it
    keeps_unknown_keys: bool | None = None  # import keeps keys it does not know (§3.6)
    export_has_workflow_definition: bool | None = None  # exports carry `workflow_definition`
    # "verisons" | "versions" | "both": the listing's latest_inactive_… key (§3.1, issue 23)
    listing_key_spelling: str | None = None
    error_body_shape: str | None = None  # "spec" ({errors}) | "sdk" ({message}) | "other"
    page_length_honoured: bool | None = None  # GET /workflows pages as long as asked
    listing_order_stable: bool | None = None  # the same listing request lists the same order
    versions_list: bool | None = None  # GET /workflows/{id}/versions answers (issue 23 #5)
    learned_at: str | None = None  # ISO-8601 UTC time of the doctor run

    def to_json(self) -> dict[str, Any]:
        return {"format": PROFILE_FORMAT, **asdict(self)}

    @classmethod
    def from_json(cls, data: object) -> TenantProfile:
        """Parse a saved profile; ValueError naming the key for anything malformed."""
        if not isinstance(data, Mapping) or data.get("format") != PROFILE_FORMAT:
            raise ValueError(f"not a {PROFILE_FORMAT} document")
        values: dict[str, Any] = {}
        for f in fields(cls):
            value = data.get(f.name)
            if value is None:
                continue
            if f.name in _CHOICES and value not in _CHOICES[f.name]:
                raise ValueError(f"{f.name}: {value!r} is not one of {_CHOICES[f.name]}")
            if f.name in _BOOLEANS:
                if not isinstance(value, bool):
                    raise ValueError(f"{f.name}: not a boolean")
            elif f.name == "requests_per_minute":
                if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                    raise ValueError(f"{f.name}: not a positive integer")
            elif not isinstance(value, str):
                raise ValueError(f"{f.name}: not a string")
            values[f.name] = value
        return cls(**values)


def merged(newer: TenantProfile, older: TenantProfile | None) -> TenantProfile:
    """`newer`, with what it did not learn (None) kept from `older`: a read-only doctor run
    must not forget what an earlier `--write` run learned."""
    if older is None:
        return newer
    values = {f.name: getattr(newer, f.name) for f in fields(TenantProfile)}
    for name, value in values.items():
        if value is None:
            values[name] = getattr(older, name)
    return TenantProfile(**values)


# ---- what the commands do with it (issue 23: each learned item is used) ------------------------


def versions_list_missing(profile: TenantProfile | None) -> bool:
    """The tenant is known to answer 404 for every `GET /workflows/{id}/versions`: the commands
    read the listing's versions without asking (no wasted request per definition)."""
    return profile is not None and profile.versions_list is False


def exports_lack_block(profile: TenantProfile | None, seen: Collection[bool] = ()) -> bool:
    """The tenant's exports never show a `workflow_definition` block (the old shape, §3.5):
    what this run's exports showed (`seen`: whether each carried one) when it read any, else
    the saved profile's `export_has_workflow_definition = false`. Then a document is compared
    by the hash of what such an export can show (its block left out), so a block that adds
    something does not make it look changed on every run the cache does not remember."""
    if seen:
        return True not in seen
    return profile is not None and profile.export_has_workflow_definition is False


def listing_order_unstable(profile: TenantProfile | None) -> bool:
    """The same listing request lists another order on this tenant (doctor's `pagination`): a
    walk over the pages may miss a definition, so a name it did not list is looked up by name
    before the plan creates it (one request per such name, never a duplicate definition)."""
    return profile is not None and profile.listing_order_stable is False


def uncompared_keys_note(
    profile: TenantProfile | None, tenant: str, found: Mapping[str, Collection[str]]
) -> str | None:
    """On a tenant that keeps keys import should drop (doctor's `keeps_unknown_keys`), one note
    naming the documents found identical whose unknown keys were not compared (`found`:
    source → its unknown keys), so a change in only those is not silently called "identical";
    None elsewhere, or when there are none."""
    if profile is None or profile.keeps_unknown_keys is not True or not found:
        return None
    keys = sorted({k for ks in found.values() for k in ks})
    shown = ", ".join(keys[:5]) + (f", … ({len(keys)} keys)" if len(keys) > 5 else "")
    sources = sorted(found)
    where = ", ".join(sources[:3]) + (f" and {len(sources) - 3} more" if len(sources) > 3 else "")
    return (
        f"{tenant}: this tenant keeps keys import should drop (doctor: keeps_unknown_keys), and"
        f" {len(sources)} document(s) found identical carry some ({shown}) that are not"
        f" compared: a change in only those is not sent ({where}); change another field, or"
        " import by hand, to send it"
    )
