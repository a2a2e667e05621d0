"""One tenant's trouble stays that tenant's: rejected credentials or a failing server never stop the others."""

from __future__ import annotations

from dataclasses import replace

import pytest

from migrator.core.config import Secret
from migrator.fake import FakeConfig, FaultConfig
from migrator.run.migrate import migrate
from migrator.run.options import MigrateOptions
from tests.conftest import SAMPLES
from tests.helpers import running_fake

pytestmark = pytest.mark.anyio


async def test_rejected_credentials_fail_one_tenant_fast_while_the_rest_finish() -> None:
    """A tenant whose secret is wrong fails every item with one clear reason; the other tenants import everything."""
    async with running_fake() as env:
        tenants = dict(env.settings.tenants)
        tenants["tenant-2"] = replace(
            tenants["tenant-2"], client_secret=Secret("wrong-secret-value")
        )
        settings = replace(env.settings, tenants=tenants)
        report = await migrate(settings, MigrateOptions(sources=[str(SAMPLES)]))
        per = report.per_tenant()
        assert per["tenant-1"]["imported"] == per["tenant-3"]["imported"] > 0
        bad = [i for i in report.items if i.tenant == "tenant-2"]
        assert bad and all(i.status == "failed" for i in bad)
        errors = {i.error for i in bad}
        assert len(errors) == 1
        error = errors.pop() or ""
        assert "tenant-2" in error and "wrong-secret-value" not in error
        assert env.imports("tenant-2") == []


async def test_a_failing_server_for_one_tenant_defers_only_its_items() -> None:
    """A tenant whose every write answers 503 has its items deferred for the next run; the others land."""
    config = FakeConfig.demo(3)
    broken = replace(config.tenants[0], faults=FaultConfig(error_rate=1.0, error_statuses=(503,)))
    config = replace(config, tenants=[broken, *config.tenants[1:]])
    async with running_fake(config, max_attempts=2) as env:
        report = await migrate(env.settings, MigrateOptions(sources=[str(SAMPLES)]))
        per = report.per_tenant()
        assert per["tenant-2"]["imported"] == per["tenant-3"]["imported"] > 0
        assert per["tenant-1"]["imported"] == 0
        assert all(
            i.status in ("deferred", "blocked") for i in report.items if i.tenant == "tenant-1"
        )
        assert env.imports("tenant-1") == []
        assert not report.ok
