"""What a run is asked to do (MigrateOptions) and the counters it bumps as it goes (Progress).

The progress display and the periodic log lines read the counters; the pipeline only bumps them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from migrator.zuora import ZuoraClient

Activation = Literal["never", "always", "match"]


@dataclass(frozen=True)
class MigrateOptions:
    sources: Sequence[str] = ()
    tenants: Sequence[str] = ()  # empty: every tenant in the config
    journal: str | None = None
    activation: Activation = "never"
    dry_run: bool = False
    verify: bool = False
    retry_failed: bool = False
    strict: bool = False
    from_tenant: str | None = None
    shard: tuple[int, int] | None = None  # (index, count), 1-based index
    plan_file: str | None = None  # apply a plan saved by `migrator plan --out`, exactly
    # False with --no-cache: the content-hash cache is neither read nor written.
    use_cache: bool = True


@dataclass
class TenantProgress:
    total: int = 0
    done: int = 0
    imported: int = 0
    skipped: int = 0
    failed: int = 0  # the tenant refused it
    left: int = 0  # deferred or blocked: for another run, never counted as failed
    started: float = field(default_factory=time.monotonic)
    phase: str = "starting"


class Progress:
    """Per-tenant counters, read by the progress display and the periodic log lines."""

    def __init__(self) -> None:
        self.tenants: dict[str, TenantProgress] = {}
        self.clients: dict[str, ZuoraClient] = {}
        # A rollout's waves (number, label, tenants) and what each is doing (run/rollout.py).
        self.waves: list[tuple[int, str, tuple[str, ...]]] = []
        self.wave_state: dict[int, str] = {}

    def tenant(self, name: str) -> TenantProgress:
        return self.tenants.setdefault(name, TenantProgress())
