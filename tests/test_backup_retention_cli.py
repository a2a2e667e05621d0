"""Backup retention after partial backups, through the CLI over HTTP (issue 21, the tests): a
partial backup never prunes a complete one, `latest` stays on a complete snapshot, and the next
complete backup applies `--keep` to complete snapshots and removes the partial ones it supersedes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from migrator.store.snapshot import pointer_path
from tests.helpers import Env, manifest_of, preload, run_cli, running_fake, snapshot_dirs

pytestmark = pytest.mark.anyio

T1 = "tenant-1"


async def backup(env: Env, tmp_path: Path, keep: int) -> tuple[int, dict[str, Any]]:
    """`migrator backup --tenant tenant-1 --out out --all-versions --keep N --json`."""
    run = await run_cli(
        env, tmp_path, "backup", "--tenant", T1, "--out", "out", "--all-versions",
        "--keep", str(keep), "--json",
    )  # fmt: skip
    assert "Traceback" not in run.err
    return run.code, orjson.loads(run.out)


def latest(out: Path) -> Path:
    return out / pointer_path(out, T1).read_text().strip()


@pytest.mark.slow
async def test_partial_backups_never_prune_a_complete_one_and_latest_stays_complete(
    tmp_path: Path,
) -> None:
    """Two complete backups, then partial ones with --keep 1: no complete snapshot is removed and latest names the newest complete one; the next complete backup with --keep 1 keeps only itself."""
    out = tmp_path / "out"
    async with running_fake() as env:
        preload(env)
        code, first = await backup(env, tmp_path, keep=2)
        assert code == 0 and first["complete"] is True
        [def_id, *_] = env.fake.state.list_definitions(T1, {})
        env.fake.state.add_workflow(T1, {**manifest_doc(env, def_id)}, version="9.0")
        code, second = await backup(env, tmp_path, keep=2)
        assert code == 0 and second["complete"] is True and second["removed"] == []
        complete = {Path(first["snapshot"]).name, Path(second["snapshot"]).name}

        # One workflow listed without an integer id: backup skips it, so the snapshot is partial.
        broken = {def_id}
        real = env.fake.state.definition_json

        def definition_json(tenant: str, did: int, **kw: Any) -> dict[str, Any]:
            out = real(tenant, did, **kw)
            if did in broken:
                out["id"] = None
            return out

        env.fake.state.definition_json = definition_json  # type: ignore[method-assign]
        partials = []
        for _ in range(2):
            code, result = await backup(env, tmp_path, keep=1)
            assert code == 1, result
            assert result["complete"] is False and result["removed"] == []
            assert "PARTIAL" in result["message"]
            assert result["latest"] == second["snapshot"]
            partials.append(Path(result["snapshot"]).name)
            names = {p.name for p in snapshot_dirs(out)}
            assert complete <= names, "a partial backup removed a complete snapshot"
            assert latest(out).name == Path(second["snapshot"]).name
            assert manifest_of(latest(out))["complete"] is True
        assert {p.name for p in snapshot_dirs(out)} == complete | set(partials)

        broken.clear()
        env.fake.state.add_workflow(T1, manifest_doc(env, def_id), version="9.1")
        code, third = await backup(env, tmp_path, keep=1)
        assert code == 0 and third["complete"] is True, third
        assert {p.name for p in snapshot_dirs(out)} == {Path(third["snapshot"]).name}
        assert latest(out).name == Path(third["snapshot"]).name
        assert sorted(Path(r).name for r in third["removed"]) == sorted(complete | set(partials))


def manifest_doc(env: Env, definition_id: int) -> dict[str, Any]:
    """The tenant's latest version of a definition, as an export (to add a new version of it)."""
    return env.fake.state.export(T1, definition_id, "latest")
