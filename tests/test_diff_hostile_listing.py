"""`migrator diff` against a tenant whose listing has an entry without an integer id (issue 21 #5):
that tenant's cells fail with one line, as migrate and verify do; the healthy tenant's results,
the matrix and the HTML page are all there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from migrator.core.drift import FAILED, IN_SYNC
from migrator.fake import FakeConfig
from migrator.run.migrate import migrate
from migrator.run.options import MigrateOptions
from tests.builders import small_export
from tests.helpers import run_cli, running_fake, with_listing_id

pytestmark = pytest.mark.anyio

T1, T2 = "tenant-1", "tenant-2"


def write_sources(folder: Path, *names: str) -> Path:
    """One small export per name in `folder`."""
    folder.mkdir()
    for name in names:
        (folder / f"{name.lower()}.json").write_bytes(orjson.dumps(small_export(name)))
    return folder


@pytest.mark.parametrize("bad", [KeyError, None, "x7", 1.5, True])
async def test_diff_fails_only_the_tenant_with_a_listing_entry_without_an_integer_id(
    tmp_path: Path, bad: Any
) -> None:
    """A listing entry whose id is missing, null, a string, a float or a boolean fails that tenant's cells with one line (exit 1, no traceback); the healthy tenant's cells, the JSON and the HTML page are complete."""
    sources = write_sources(tmp_path / "src", "Alpha", "Beta")
    async with running_fake(FakeConfig.demo(2)) as env:
        report = await migrate(env.settings, MigrateOptions(sources=[str(sources)]))
        assert report.ok, report.to_json()
        [def_id, *_] = env.fake.state.list_definitions(T1, {})
        with_listing_id(env, def_id, bad)
        run = await run_cli(env, tmp_path, "diff", str(sources), "--json", "--html", "d.html")
        assert run.code == 1, run.err
        assert "Traceback" not in run.err
        data = orjson.loads(run.out)
        cells = {
            (t, w["name"]): w for t, column in data["tenants"].items() for w in column["workflows"]
        }
        assert {k: w["status"] for k, w in cells.items()} == {
            (T1, "Alpha"): FAILED,
            (T1, "Beta"): FAILED,
            (T2, "Alpha"): IN_SYNC,
            (T2, "Beta"): IN_SYNC,
        }
        reason = cells[(T1, "Alpha")]["reason"]
        assert "has no integer id" in reason and "\n" not in reason
        page = (tmp_path / "d.html").read_text()
        assert T2 in page and "Alpha" in page and "has no integer id" in page
