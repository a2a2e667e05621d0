"""The fake Zuora's configuration: tenants, their limits and fault knobs, and the file loader.

Plain frozen dataclasses; a TOML or JSON file maps onto them key for key, and every problem in
such a file becomes a one-line `ConfigError` naming the file and the key.
"""

from __future__ import annotations

import hashlib
import json
import time
import tomllib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from migrator.core.errors import ConfigError

# A fixed namespace so demo client ids are the same on every machine and every run.
_DEMO_NAMESPACE = uuid.UUID("6f1c2a4e-9a53-4c55-8d52-7a6b0f7c1e42")


@dataclass(frozen=True)
class FaultConfig:
    """Per-tenant fault injection; every probability is drawn from the tenant's seeded generator."""

    error_rate: float = 0.0  # answer one of error_statuses without doing the work
    error_statuses: tuple[int, ...] = (500, 502, 503, 504)
    lost_response_rate: float = 0.0  # do the work, then drop the connection before answering
    reset_rate: float = 0.0  # reset the connection before doing the work
    latency: float = 0.0  # seconds added before handling each request
    latency_jitter: float = 0.0  # +/- uniform jitter around `latency`
    slow_body: float = 0.0  # seconds over which each response body is trickled out


# The custom fields a fake tenant has unless told otherwise: those the samples and the bench's
# generated documents name, so that they stay migratable (the reference check, docs/references.md).
# A tenant configured with `custom_fields` has exactly those; `{}` has none.
DEFAULT_CUSTOM_FIELDS: Mapping[str, tuple[str, ...]] = {
    "Account": (
        "AccountManager__c",
        "CreditHold__c",
        "CreditReview__c",
        "Description__c",
        "MonthlyCommit__c",
        "Onboarding__c",
        "PaymentRisk__c",
        "Region__c",
    ),
    "Contact": ("Description__c", "MarketingOptIn__c"),
    "Subscription": ("Description__c", "PriceUplift__c", "TrialEndDate__c", "UpliftWaivedBy__c"),
    "Invoice": ("Description__c",),
    "Payment": ("Description__c",),
    "Usage": ("Description__c",),
    "CreditMemo": ("Description__c",),
}


@dataclass(frozen=True)
class FakeTenant:
    """One tenant on the fake host, told apart from the others by its OAuth client credentials."""

    name: str
    client_id: str
    client_secret: str = field(repr=False)
    requests_per_minute: int = 2500
    max_concurrency: int = 40
    token_ttl: float = 3599
    faults: FaultConfig = field(default_factory=FaultConfig)
    # [D] §1.5 documents hour and day windows too; None leaves a window out.
    requests_per_hour: int | None = None
    requests_per_day: int | None = None
    # Runs of these workflows (by definition name) finish with one task in Error (§3.11).
    failing_runs: tuple[str, ...] = ()
    # Imports of these workflows (by name) are refused with 400, as by a tenant that lacks a
    # custom field the workflow uses.
    reject_imports: tuple[str, ...] = ()
    # The tenant's data model as `GET /v1/describe/{Object}` and `GET /objects/definitions/default`
    # tell it: custom fields per standard object ({"Account": ["Region__c"]}), custom object names.
    custom_fields: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: dict(DEFAULT_CUSTOM_FIELDS)
    )
    custom_objects: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Lists are welcome from callers and files; a tuple keeps the dataclass hashable.
        object.__setattr__(self, "failing_runs", tuple(self.failing_runs))
        object.__setattr__(self, "reject_imports", tuple(self.reject_imports))
        object.__setattr__(self, "custom_objects", tuple(self.custom_objects))
        object.__setattr__(
            self,
            "custom_fields",
            _Frozen({str(k): tuple(v) for k, v in dict(self.custom_fields).items()}),
        )


class _Frozen(dict[str, tuple[str, ...]]):
    """A dict that hashes (by its items), so that a tenant stays a hashable frozen dataclass."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))


# The allowed values of the string switches.
_CHOICES: dict[str, tuple[str, ...]] = {
    "idempotent_replay": ("replay", "409"),
    "import_response_id": ("definition", "version"),
    "export_without_active": ("latest", "404"),
    "name_filter": ("exact", "contains"),
    "retry_after": ("always", "concurrency-only", "never"),
    "error_bodies": ("sdk", "spec"),
    "listing_spelling": ("verisons", "versions", "both"),
    "import_answer": ("documented", "created-object"),
    "camel_case_triggers": ("dropped", "kept"),
    "schema_access": ("allowed", "403"),
}

# Named variants: each plays one way Zuora may answer where the spec leaves it open ([I]), so a
# suite can run the same end-to-end scenario against each. "documented" is the default config.
VARIANTS: dict[str, dict[str, Any]] = {
    "documented": {"keep_unknown_keys": False},  # §3.6 [Z]; see FakeConfig.keep_unknown_keys
    "version-id-answers": {"import_response_id": "version"},  # §9.3
    "substring-name-filter": {"name_filter": "contains"},  # §9.10
    "case-insensitive-filter": {"name_filter_case_sensitive": False},  # §9.10
    "substring-case-insensitive-filter": {
        "name_filter": "contains",
        "name_filter_case_sensitive": False,
    },
    "409-replay": {"idempotent_replay": "409"},  # §1.8 contradiction, §9.7
    "no-retry-after": {"retry_after": "never"},  # §9.6 (and beyond: not even on concurrency)
    "retry-after-on-concurrency-only": {"retry_after": "concurrency-only"},  # §9.6
    "no-ratelimit-headers": {"rate_limit_headers": False},  # §1.4 [S], §9.5
    # §1.12: the SDK's shapes are the default now (issue 23); this plays the spec's table.
    "sdk-error-bodies": {"error_bodies": "sdk"},  # §1.12, §9.4 (the default, named)
    "spec-error-bodies": {"error_bodies": "spec"},  # §1.12's table of OpenAPI schemas
    "export-404-without-active": {"export_without_active": "404"},  # §3.5 [I]
    "no-file-ref-rewrite": {"rewrite_file_refs": False},  # §9.1
    # §3.5 [O]: exports carry `workflow_definition` (the default now); the old shape without it.
    "workflow-definition-block": {"export_workflow_definition": True},  # the default, named
    "no-workflow-definition-block": {"export_workflow_definition": False},  # §3.5 [D] example
    "listing-spelled-versions": {"listing_spelling": "versions"},  # §3.1 [O]
    "listing-spelled-both": {"listing_spelling": "both"},  # §3.1 [O], both at once
    "version-definition-ids": {"version_definition_id": True},  # §3.1 [O] `definitionId`
    "created-object-answers": {"import_answer": "created-object"},  # §3.6 [O]
    "camel-case-triggers-kept": {"camel_case_triggers": "kept"},  # §9.13
    "put-settings": {"put_settings": True},  # §3.6 [O] PUT /workflows/{id}
    "no-versions-list": {"versions_list": False},  # §3.8 missing (issue 23 #5)
    "keeps-unknown-keys": {"keep_unknown_keys": True},  # against §3.6 [Z] (the old default)
    # A role without the describe and custom-object permissions: 403 on both (docs/references.md).
    "no-schema-permission": {"schema_access": "403"},
    # A listing that ignores `name` and lists oldest first (issue 21 #7).
    "ignores-name-filter-oldest-first": {"name_filter_ignored": True, "listing_oldest_first": True},
    "ignores-page-length": {"page_length_ignored": True},  # pages of 20 whatever is asked
}
# Every open behaviour played the other way at once, plus §3.6's dropping: the harshest tenant.
# Left out: the named defaults, one of two ways to play the same switch, a tenant without a
# versions list (every command copes by reading the listing, issue 23, but a rollback there
# switches off instead of deleting, which the rollback tests of all-flipped do not expect), and
# the old export shape (its own variant covers it).
VARIANTS["all-flipped"] = {
    k: v
    for name, knobs in VARIANTS.items()
    if name
    not in (
        "keeps-unknown-keys",
        "retry-after-on-concurrency-only",
        "sdk-error-bodies",
        "workflow-definition-block",
        "listing-spelled-both",
        "no-versions-list",
        "no-workflow-definition-block",
        # doctor's listing variants (issue 21 #7, 23 #4) stay out of it
        "ignores-name-filter-oldest-first",
        "ignores-page-length",
    )
    for k, v in knobs.items()
}


@dataclass(frozen=True)
class FakeConfig:
    """Everything the fake server needs; `clock` is wall time in seconds and injectable for tests."""

    tenants: list[FakeTenant]
    seed: int = 0
    idempotent_replay: str = "replay"  # or "409": the §1.8 contradiction as a switch
    token_requests_per_minute_per_ip: int = 100
    rewrite_file_refs: bool = True
    state_file: str | None = None
    seed_file: str | None = None
    idempotency_ttl: float = 24 * 3600.0
    idempotency_max_entries: int = 100_000
    max_body_bytes: int = 10 * 1024 * 1024
    page_length_max: int = 50
    gzip_min_bytes: int = 1000
    import_response_id: str = "definition"  # or "version": §9 open question 3
    export_without_active: str = "latest"  # or "404": export with no version= and no active one
    # §3.5 [O]: live tenants' exports carry `workflow_definition`; False plays the old shape.
    export_workflow_definition: bool = True
    name_filter: str = "exact"  # or "contains": §3.1 / §9.10
    name_filter_case_sensitive: bool = True  # §9.10
    retry_after: str = "always"  # on 429s; or "concurrency-only" (§9.6), or "never"
    rate_limit_headers: bool = True  # RateLimit-* on API answers (§1.4 [S]); False omits them
    error_bodies: str = "sdk"  # the shapes the official SDK models declare; or "spec" (§1.12)
    # §3.1 [O]: how the listing spells the inactive versions: the reference's (sic), the live
    # spelling, or both keys at once.
    listing_spelling: str = "verisons"
    version_definition_id: bool = False  # §3.1 [O]: version objects carry `definitionId`
    # §3.6 [O]: "documented" answers 3.6 with the reference's object; "created-object" answers
    # 3.6 and 3.7 with the created version's object (its `id`, `definitionId`), no envelope.
    import_answer: str = "documented"
    # §9.13: camelCase trigger keys under an import's `workflow` (`calloutTrigger`, ...) are
    # dropped like any unknown key, or "kept": read as the triggers when the snake_case is absent.
    camel_case_triggers: str = "dropped"
    put_settings: bool = False  # §3.6 [O]: serve PUT /workflows/{id} (a flat camelCase body)
    versions_list: bool = True  # False: GET /workflows/{id}/versions answers 404 (issue 23 #5)
    # False plays §3.6 [Z] (import drops unknown keys); the client's canonical form mirrors
    # WORKFLOW_KEYS/TASK_KEYS/LINKAGE_KEYS, so a dropped key never makes it import again.
    keep_unknown_keys: bool = False
    run_seconds: float = 0.5  # how long a run stays Processing before it is Finished (§3.11)
    # "403": GET /v1/describe/{Object} and GET /objects/definitions/default answer 403 (a role
    # without those permissions); "allowed" answers them from each tenant's custom_* knobs.
    schema_access: str = "allowed"
    name_filter_ignored: bool = False  # GET /workflows?name= lists every definition
    listing_oldest_first: bool = False  # GET /workflows lists ids ascending
    page_length_ignored: bool = False  # GET /workflows pages hold 20 whatever page_length asks
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}")
        if self.run_seconds < 0:
            raise ValueError("run_seconds must not be negative")
        names = [t.name for t in self.tenants]
        if len(set(names)) != len(names):
            raise ValueError("tenant names must be unique")
        ids = [t.client_id for t in self.tenants]
        if len(set(ids)) != len(ids):
            raise ValueError("tenant client ids must be unique")

    @classmethod
    def demo(cls, n: int = 3, *, seed: int = 0, **knobs: Any) -> FakeConfig:
        """Tenants "tenant-1".."tenant-n" with deterministic 36-char client ids and secrets."""
        return cls(tenants=[demo_tenant(i, seed=seed) for i in range(1, n + 1)], seed=seed, **knobs)

    @staticmethod
    def variants() -> dict[str, dict[str, Any]]:
        """Every named variant: preset name → the knobs it sets (see VARIANTS)."""
        return {name: dict(knobs) for name, knobs in VARIANTS.items()}

    def with_variant(self, name: str) -> FakeConfig:
        """This config with one named variant's knobs applied (ValueError for an unknown name)."""
        if name not in VARIANTS:
            raise ValueError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
        return replace(self, **VARIANTS[name])

    def tenant(self, name: str) -> FakeTenant:
        for t in self.tenants:
            if t.name == name:
                return t
        raise KeyError(name)


def demo_tenant(i: int, *, seed: int = 0, **knobs: Any) -> FakeTenant:
    """The i-th demo tenant; the same seed always gives the same credentials."""
    name = f"tenant-{i}"
    client_id = str(uuid.uuid5(_DEMO_NAMESPACE, f"{seed}:{name}"))
    secret = hashlib.sha256(f"migrator-fake:{seed}:{name}".encode()).hexdigest()[:40]
    return FakeTenant(name=name, client_id=client_id, client_secret=secret, **knobs)


# ---------------------------------------------------------------------------------------------
# File loading (TOML or JSON)

_FAULT_TYPES: dict[str, type] = {f.name: float for f in fields(FaultConfig)}
_TENANT_KEYS = {
    "name": str,
    "client_id": str,
    "client_secret": str,
    "requests_per_minute": int,
    "max_concurrency": int,
    "token_ttl": float,
    "requests_per_hour": int,
    "requests_per_day": int,
    "failing_runs": list,
    "reject_imports": list,
    "faults": dict,
    "custom_fields": dict,
    "custom_objects": list,
}
_TOP_KEYS: dict[str, type] = {
    "tenants": list,
    "demo_tenants": int,
    "seed": int,
    "idempotent_replay": str,
    "token_requests_per_minute_per_ip": int,
    "rewrite_file_refs": bool,
    "state_file": str,
    "seed_file": str,
    "idempotency_ttl": float,
    "idempotency_max_entries": int,
    "max_body_bytes": int,
    "page_length_max": int,
    "gzip_min_bytes": int,
    "import_response_id": str,
    "export_without_active": str,
    "export_workflow_definition": bool,
    "name_filter": str,
    "name_filter_case_sensitive": bool,
    "retry_after": str,
    "rate_limit_headers": bool,
    "error_bodies": str,
    "listing_spelling": str,
    "version_definition_id": bool,
    "import_answer": str,
    "camel_case_triggers": str,
    "put_settings": bool,
    "versions_list": bool,
    "keep_unknown_keys": bool,
    "run_seconds": float,
    "schema_access": str,
    "name_filter_ignored": bool,
    "listing_oldest_first": bool,
    "page_length_ignored": bool,
    "variant": str,
}


def _typed(value: Any, typ: type, file: str, key: str) -> Any:
    if typ is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if typ is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if typ in (str, bool, dict, list) and isinstance(value, typ):
        return value
    raise ConfigError(file, key, f"expected {typ.__name__}, got {type(value).__name__}")


def _faults(table: Mapping[str, Any], file: str, where: str) -> FaultConfig:
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _FAULT_TYPES:
            raise ConfigError(file, f"{where}.{key}", "unknown fault knob")
        if key == "error_statuses":
            if not isinstance(value, list) or not all(
                isinstance(s, int) and 400 <= s <= 599 for s in value
            ):
                raise ConfigError(file, f"{where}.{key}", "expected a list of HTTP statuses")
            out[key] = tuple(value)
            continue
        number = _typed(value, float, file, f"{where}.{key}")
        if number < 0 or (key.endswith("_rate") and number > 1):
            raise ConfigError(file, f"{where}.{key}", "out of range")
        out[key] = number
    return FaultConfig(**out)


def config_from_mapping(data: Mapping[str, Any], file: str) -> FakeConfig:
    """Build a FakeConfig from a parsed TOML/JSON table; errors name `file` and the key."""
    knobs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in _TOP_KEYS:
            raise ConfigError(file, key, "unknown key")
        knobs[key] = _typed(value, _TOP_KEYS[key], file, key)
    variant = knobs.pop("variant", None)
    if variant is not None:
        if variant not in VARIANTS:
            raise ConfigError(file, "variant", f"unknown variant; known: {', '.join(VARIANTS)}")
        # A preset first; keys written in the file win over it.
        knobs = {**VARIANTS[variant], **knobs}
    tenants: list[FakeTenant] = []
    seed = knobs.get("seed", 0)
    for i in range(1, knobs.pop("demo_tenants", 0) + 1):
        tenants.append(demo_tenant(i, seed=seed))
    for i, table in enumerate(knobs.pop("tenants", [])):
        where = f"tenants[{i}]"
        if not isinstance(table, dict):
            raise ConfigError(file, where, "expected a table")
        args: dict[str, Any] = {}
        for key, value in table.items():
            if key not in _TENANT_KEYS:
                raise ConfigError(file, f"{where}.{key}", "unknown key")
            args[key] = _typed(value, _TENANT_KEYS[key], file, f"{where}.{key}")
        for required in ("name", "client_id", "client_secret"):
            if not args.get(required):
                raise ConfigError(file, f"{where}.{required}", "missing")
        if "faults" in args:
            args["faults"] = _faults(args["faults"], file, f"{where}.faults")
        for key in ("failing_runs", "reject_imports"):
            if key in args:
                if not all(isinstance(n, str) for n in args[key]):
                    raise ConfigError(file, f"{where}.{key}", "expected a list of workflow names")
                args[key] = tuple(args[key])
        if "custom_objects" in args and not all(isinstance(n, str) for n in args["custom_objects"]):
            raise ConfigError(file, f"{where}.custom_objects", "expected a list of names")
        for obj, names in args.get("custom_fields", {}).items():
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ConfigError(
                    file, f"{where}.custom_fields.{obj}", "expected a list of field names"
                )
        tenants.append(FakeTenant(**args))
    if not tenants:
        raise ConfigError(file, "tenants", "at least one tenant is needed")
    base = Path(file).parent
    for key in ("state_file", "seed_file"):
        if key in knobs:
            knobs[key] = str(base / knobs[key])
    try:
        return FakeConfig(tenants=tenants, **knobs)
    except ValueError as exc:
        raise ConfigError(file, "", str(exc)) from None


def load_config(path: str) -> FakeConfig:
    """Read a `.toml` or `.json` config file into a FakeConfig (ConfigError on any problem)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(path, "", f"cannot read: {exc.strerror}") from None
    try:
        is_json = path.endswith(".json")
        data = json.loads(raw) if is_json else tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(
            path,
            "",
            f"not valid {'JSON' if path.endswith('.json') else 'TOML'}: {str(exc).splitlines()[0]}",
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(path, "", "expected a table at the top level")
    return config_from_mapping(data, path)


def with_tenant_knobs(config: FakeConfig, **knobs: Any) -> FakeConfig:
    """A copy of `config` with the same tenant-level knobs (and fault knobs) set on every tenant."""
    fault_keys = {k: v for k, v in knobs.items() if k in _FAULT_TYPES}
    tenant_keys = {k: v for k, v in knobs.items() if k not in _FAULT_TYPES}
    tenants = [
        replace(t, faults=replace(t.faults, **fault_keys), **tenant_keys) for t in config.tenants
    ]
    return replace(config, tenants=tenants)
