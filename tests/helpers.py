"""Test helpers: a running fake with matching migrator settings, and ledger queries."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from migrator.core.config import Secret, Settings, TenantConfig
from migrator.fake import FakeConfig, RunningFake, serve


@dataclass
class Env:
    fake: RunningFake
    config: FakeConfig
    settings: Settings

    def imports(self, tenant: str) -> list[dict[str, Any]]:
        return self.fake.ledger(tenant)

    def import_counts(self, tenant: str) -> Counter[str]:
        """How many times each workflow name was imported into the tenant."""
        return Counter(e["name"] for e in self.fake.ledger(tenant))


def numeric_version(text: str) -> tuple[int, ...]:
    """A version's numeric order, written apart from migrator's version_key (the oracle for it):
    components compared as integers, missing ones as 0 ("1" == "1.0.0" < "1.0.10")."""
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def settings_for(fake: RunningFake, config: FakeConfig, **tenant_knobs: Any) -> Settings:
    tenants = {
        t.name: TenantConfig(
            name=t.name,
            base_url=fake.base_url,
            client_id=t.client_id,
            client_secret=Secret(t.client_secret),
            max_concurrency=tenant_knobs.get("max_concurrency", 8),
            requests_per_minute=tenant_knobs.get("requests_per_minute"),
            substitutions=tenant_knobs.get("substitutions", {}).get(t.name, {}),
        )
        for t in config.tenants
    }
    return Settings(
        file="test.toml",
        tenants=tenants,
        max_attempts=tenant_knobs.get("max_attempts", 6),
        backoff_base=tenant_knobs.get("backoff_base", 0.01),
        backoff_cap=tenant_knobs.get("backoff_cap", 0.2),
        read_timeout=tenant_knobs.get("read_timeout", 10.0),
    )


@asynccontextmanager
async def running_fake(config: FakeConfig | None = None, **tenant_knobs: Any) -> AsyncIterator[Env]:
    config = config or FakeConfig.demo(3)
    async with serve(config) as fake:
        yield Env(fake=fake, config=config, settings=settings_for(fake, config, **tenant_knobs))


def write_config_file(
    path: Path, env: Env, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """A TOML config for the env's tenants with secrets in environment variables; returns the env."""
    variables: dict[str, str] = {}
    lines = []
    for t in env.config.tenants:
        var = "TEST_SECRET_" + t.name.upper().replace("-", "_")
        variables[var] = t.client_secret
        lines += [
            f'[tenants."{t.name}"]',
            f'base_url = "{env.fake.base_url}"',
            f'client_id = "{t.client_id}"',
            f'client_secret_env = "{var}"',
            "",
        ]
    lines += ["[settings]", "backoff_base = 0.01", "backoff_cap = 0.2", ""]
    path.write_text("\n".join(lines))
    return variables


T = TypeVar("T")


def traced_peak(fn: Callable[[], T]) -> tuple[T, int]:
    """`fn()`'s result and the peak of Python memory allocated while it ran (tracemalloc)."""
    import tracemalloc

    tracemalloc.start()
    try:
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak
