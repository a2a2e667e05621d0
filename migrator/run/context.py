"""What every command's run is built from, said once: the chosen tenants (an unknown name is one
usage error), the run's one HTTP session and a client per tenant (closed however the run ends),
the `run_started` fields a journal-writing run records, and the check that a journal's ids
belong to the tenants configured now.

Commands enter it the same way: `commands/_common._settings` loads the settings, `run_with_signals`
hands the stop event in, and the pipeline opens `run_clients(settings, tenants, stopping)`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import anyio

from migrator import __version__
from migrator.core.config import Settings, TenantConfig
from migrator.core.errors import JournalError, MigratorError
from migrator.run.tenant import tenant_fingerprint
from migrator.store.profiles import load_profile
from migrator.zuora import ZuoraClient, close_session, open_session


def unknown_tenant(settings: Settings, name: str, *, what: str = "tenant") -> MigratorError:
    """The one error for a tenant name the configuration does not have."""
    return MigratorError(
        f"{settings.file}: unknown {what} {name!r}"
        f" (configured: {', '.join(sorted(settings.tenants))})"
    )


def choose_tenants(settings: Settings, names: Iterable[str] = ()) -> list[TenantConfig]:
    """The tenants named (each once, in the order given), or every configured one, sorted, when
    none is named; a name the configuration does not have is a usage error."""
    wanted = list(dict.fromkeys(names)) or sorted(settings.tenants)
    for name in wanted:
        if name not in settings.tenants:
            raise unknown_tenant(settings, name)
    return [settings.tenants[n] for n in wanted]


def run_started_fields(
    tenants: Iterable[TenantConfig], *, command: str | None = None, **extra: Any
) -> dict[str, Any]:
    """The fields of a run's `run_started` record: a run id, each tenant's fingerprint (so a
    later run can tell the journal's ids belong to it), the tool version; `command` for runs
    that are not migrations (`activate`, `rollback`)."""
    fields: dict[str, Any] = {
        "run_id": hashlib.sha256(f"{time.time()}".encode()).hexdigest()[:12],
        **({"command": command} if command else {}),
        **extra,
        "tenants": {t.name: tenant_fingerprint(t) for t in tenants},
        "tool_version": __version__,
    }
    return fields


def check_tenant_identity(
    history: Iterable[Mapping[str, Any] | Any],
    tenants: Iterable[TenantConfig],
    path: str,
    *,
    consequence: str = "its definition and version ids mean nothing here",
) -> None:
    """Refuse when a tenant's URL or client id is not the one the journal's runs recorded."""
    current = {t.name: tenant_fingerprint(t) for t in tenants}
    for record in history:
        fields = record if isinstance(record, Mapping) else getattr(record, "fields", {})
        for name, fp in (fields.get("tenants") or {}).items():
            if name in current and current[name] != fp:
                raise JournalError(
                    f"{path}: tenant {name!r} pointed at a different tenant (URL or client id) "
                    f"when this journal was written; {consequence}"
                )


@dataclass(frozen=True, slots=True)
class RunClients:
    """The run's one HTTP session and a client per chosen tenant, by name."""

    session: aiohttp.ClientSession
    clients: dict[str, ZuoraClient]

    def __getitem__(self, name: str) -> ZuoraClient:
        return self.clients[name]


@asynccontextmanager
async def run_clients(
    settings: Settings,
    tenants: Sequence[TenantConfig] = (),
    stopping: anyio.Event | None = None,
) -> AsyncIterator[RunClients]:
    """Open the run's session (inside the running loop) with a client per tenant, each handed
    the run's stop event and the tenant's saved doctor profile; the session is closed,
    shielded, however the run ends."""
    session = open_session(settings)
    try:
        yield RunClients(
            session,
            {
                t.name: ZuoraClient(
                    t, session, settings, stopping=stopping, profile=load_profile(settings, t)
                )
                for t in tenants
            },
        )
    finally:
        await close_session(session)
