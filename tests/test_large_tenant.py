"""A tenant with more workflows than one page of the listing: its definitions are read a page at a
time by a bounded pool, into the workspace, for planning and for `--from-tenant` (issue 4)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from migrator.fake import FakeConfig
from migrator.fake._config import demo_tenant
from migrator.run.migrate import migrate
from migrator.run.options import MigrateOptions
from migrator.zuora.client import PAGE_LENGTH
from tests.builders import small_export
from tests.helpers import running_fake

pytestmark = pytest.mark.anyio

COUNT = 2 * PAGE_LENGTH + 20  # three pages


async def test_more_than_a_page_of_workflows_is_read_whole(tmp_path: Path) -> None:
    for i in range(COUNT):
        doc = small_export(f"workflow {i:03d}")
        (tmp_path / f"w{i:03d}.json").write_bytes(orjson.dumps(doc))
    config = FakeConfig(tenants=[demo_tenant(i, requests_per_minute=1_000_000) for i in (1, 2)])
    async with running_fake(config) as env:
        first = await migrate(
            env.settings, MigrateOptions(sources=[str(tmp_path)], tenants=["tenant-1"])
        )
        assert first.summary()["imported"] == COUNT and first.ok
        # Again without a journal: every definition is found on the target, over all three
        # pages, and recognised as identical content.
        again = await migrate(
            env.settings, MigrateOptions(sources=[str(tmp_path)], tenants=["tenant-1"])
        )
        assert again.summary()["skipped"] == COUNT and again.ok
        assert all("identical to version" in (i.reason or "") for i in again.items)
        assert len(env.imports("tenant-1")) == COUNT
        # Live from tenant-1 into tenant-2: every definition exported and imported once.
        live = await migrate(
            env.settings, MigrateOptions(from_tenant="tenant-1", tenants=["tenant-2"])
        )
        assert live.summary()["imported"] == COUNT and live.ok
        assert sorted(e["name"] for e in env.imports("tenant-2")) == [
            f"workflow {i:03d}" for i in range(COUNT)
        ]
