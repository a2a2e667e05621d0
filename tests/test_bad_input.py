"""Issue 8 end to end: bad inputs and bad configs through the real `migrator` CLI and the fake.

`migrator migrate` runs as a subprocess against the fake Zuora served in-process on 127.0.0.1, with
a source directory holding good documents next to every bad case of issue 8.
"""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from migrator.fake import FakeConfig
from tests.builders import delete_at, set_at, small_export
from tests.conftest import SAMPLES
from tests.helpers import (
    Env,
    assert_no_traceback,
    migrator_process,
    run_migrator,
    running_fake,
    write_config_file,
)

MAX_DOC_BYTES = 256 * 1024


base_doc = small_export


def changed(name: str, change: Any) -> bytes:
    d = base_doc(name)
    change(d)
    return orjson.dumps(d)


def _gzip_corrupt(raw: bytes) -> bytes:
    data = bytearray(gzip.compress(raw))
    mid = len(data) // 2
    for i in range(mid, mid + 8):
        data[i] ^= 0xFF
    return bytes(data)


def bad_cases() -> dict[str, tuple[bytes, str]]:
    """file name → (bytes, the JSON path its error must name; "a|b" when either is right)."""
    good = orjson.dumps(base_doc("Bad but plausible"))
    huge = base_doc("Far too large")
    huge["workflow"]["description"] = "x" * (MAX_DOC_BYTES + 1024)
    return {
        "not-json.json": (b"this is not json at all", "$"),
        "truncated.json": (good[: len(good) // 2], "$"),
        "truncated-gzip.json.gz": (gzip.compress(good)[:40], "$"),
        "corrupt-gzip.json.gz": (_gzip_corrupt(good), "$"),
        "empty.json": (b"", "$"),
        "not-utf8.json": (good.replace(b"Bad but plausible", b"Caf\xe9 \xff"), "$"),
        "top-level-array.json": (b"[" + good + b"]", "$"),
        "missing-workflow.json": (changed("x", delete_at(["workflow"])), "$.workflow"),
        "workflow-is-list.json": (changed("x", set_at(["workflow"], [])), "$.workflow"),
        "missing-tasks.json": (changed("x", delete_at(["tasks"])), "$.tasks"),
        "tasks-is-object.json": (changed("x", set_at(["tasks"], {})), "$.tasks"),
        "missing-linkages.json": (changed("x", delete_at(["linkages"])), "$.linkages"),
        "linkages-is-string.json": (changed("x", set_at(["linkages"], "nope")), "$.linkages"),
        "duplicate-task-id.json": (changed("x", set_at(["tasks", 1, "id"], 4)), "$.tasks[1].id"),
        "linkage-to-missing-task.json": (
            changed("x", set_at(["linkages", 1, "target_task_id"], 99)),
            "$.linkages[1].target_task_id",
        ),
        "no-entry-linkage.json": (
            changed(
                "x",
                set_at(
                    ["linkages"],
                    [
                        {
                            "source_workflow_id": None,
                            "source_task_id": 4,
                            "target_task_id": 3,
                            "linkage_type": "Success",
                        },
                        {
                            "source_workflow_id": None,
                            "source_task_id": 3,
                            "target_task_id": 2,
                            "linkage_type": "For Each",
                        },
                    ],
                ),
            ),
            "$.linkages",
        ),
        "entry-linkage-other-workflow.json": (
            changed("x", set_at(["linkages", 0, "source_workflow_id"], 8)),
            "$.linkages[0].source_workflow_id",
        ),
        "id-float.json": (changed("x", set_at(["tasks", 1, "id"], 3.5)), "$.tasks[1].id"),
        "id-bool.json": (changed("x", set_at(["tasks", 1, "id"], True)), "$.tasks[1].id"),
        "id-string.json": (changed("x", set_at(["tasks", 1, "id"], "3")), "$.tasks[1].id"),
        "id-over-2-63.json": (changed("x", set_at(["tasks", 1, "id"], 2**63)), "$.tasks[1].id"),
        # "$" when the reader refuses the number, "$.tasks[1].id" when it reads it as a float.
        "id-over-2-64.json": (
            good.replace(b'"id":3,', b'"id":18446744073709551616,'),
            "$|$.tasks[1].id",
        ),
        "workflow-id-float.json": (changed("x", set_at(["workflow", "id"], 7.0)), "$.workflow.id"),
        "parameters-not-object.json": (
            changed("x", set_at(["tasks", 2, "parameters"], ["a"])),
            "$.tasks[2].parameters",
        ),
        "empty-name.json": (changed("", lambda d: None), "$.workflow.name"),
        "nested-100k.json": (b'{"workflow":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "$"),
        "too-large.json": (orjson.dumps(huge), "$"),
        "gzip-bomb.json.gz": (
            gzip.compress(b'{"workflow": "' + b"a" * (8 * MAX_DOC_BYTES) + b'"}'),
            "$",
        ),
    }


def good_docs(src: Path) -> set[str]:
    """Write the good documents (two samples, a gzipped one, a BOM one); return their names."""
    names = set()
    for sample in ("01-welcome-new-account.json", "06-usage-overage-alert.json"):
        shutil.copy(SAMPLES / sample, src / sample)
        names.add(orjson.loads((SAMPLES / sample).read_bytes())["workflow"]["name"])
    (src / "good-gzip.json.gz").write_bytes(gzip.compress(orjson.dumps(base_doc("Good gzipped"))))
    (src / "good-bom.json").write_bytes(b"\xef\xbb\xbf" + orjson.dumps(base_doc("Good with a BOM")))
    names |= {"Good gzipped", "Good with a BOM"}
    return names


def write_config(tmp_path: Path, env: Env, settings: str = "") -> tuple[Path, dict[str, str]]:
    cfg = tmp_path / "migrator.toml"
    variables = write_config_file(cfg, env)
    if settings:
        cfg.write_text(cfg.read_text() + settings)
    return cfg, variables


@pytest.mark.anyio
@pytest.mark.parametrize(
    "logging", [[], ["--debug", "--log-format", "json"]], ids=["console", "debug-json"]
)
async def test_every_bad_file_fails_alone_and_only_good_ones_land(
    tmp_path: Path, logging: list[str]
) -> None:
    """A directory mixing good documents and every bad case of issue 8 exits 1, names each bad file and its JSON path in one line, prints no traceback, and imports exactly the good documents."""
    src = tmp_path / "src"
    src.mkdir()
    wanted = good_docs(src)
    cases = bad_cases()
    for name, (data, _) in cases.items():
        (src / name).write_bytes(data)
    report_path = tmp_path / "report.json"
    async with running_fake(FakeConfig.demo(2)) as env:
        cfg, variables = write_config(tmp_path, env, f"max_document_bytes = {MAX_DOC_BYTES}\n")
        run = await run_migrator(
            [
                "migrate",
                str(src),
                "--config",
                str(cfg),
                "--report",
                str(report_path),
                "--journal",
                str(tmp_path / "j.jsonl"),
                "--progress",
                "never",
                *logging,
            ],
            variables,
            tmp_path,
        )
        ledgers = {t: env.imports(t) for t in ("tenant-1", "tenant-2")}
    assert run.code == 1, run.err + run.out
    assert_no_traceback(run)
    if "json" in logging:  # machines can read every log line
        assert all(isinstance(orjson.loads(ln), dict) for ln in run.err.splitlines() if ln.strip())
    report = orjson.loads(report_path.read_bytes())
    items = report["items"]
    by_source: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        by_source.setdefault(item["source"], []).append(item)
    output_lines = (run.out + run.err).splitlines()
    for name, (_, json_path) in cases.items():
        path = str(src / name)
        entries = by_source.get(path)
        assert entries is not None, f"{name} is not in the report"
        assert {e["tenant"] for e in entries} == {"tenant-1", "tenant-2"}
        for entry in entries:
            assert entry["status"] == "failed"
            error = entry["error"]
            assert "\n" not in error
            assert any(error.startswith(f"{path}: {p}: ") for p in json_path.split("|")), (
                name,
                error,
            )
        # The terminal shows one line per tenant naming the file and the JSON path.
        shown = [
            ln
            for ln in output_lines
            if name in ln and any(f": {p}: " in ln for p in json_path.split("|"))
        ]
        assert len(shown) >= 2, (name, shown)
    # The good documents landed once in each tenant, and nothing else was sent.
    for tenant, ledger in ledgers.items():
        assert sorted(e["name"] for e in ledger) == sorted(wanted), tenant
    imported = [i for i in items if i["status"] == "imported"]
    assert len(imported) == 2 * len(wanted)
    assert {i["source"] for i in items} == {str(p) for p in src.iterdir()}


@pytest.mark.anyio
async def test_bom_document_alone_succeeds(tmp_path: Path) -> None:
    """A document starting with a UTF-8 BOM imports and the run exits 0."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "bom.json").write_bytes(b"\xef\xbb\xbf" + orjson.dumps(base_doc("BOM only")))
    async with running_fake(FakeConfig.demo(1)) as env:
        cfg, variables = write_config(tmp_path, env)
        run = await run_migrator(
            ["migrate", str(src), "--config", str(cfg), "--progress", "never"], variables, tmp_path
        )
        ledger = env.imports("tenant-1")
    assert run.code == 0, run.err + run.out
    assert_no_traceback(run)
    assert [e["name"] for e in ledger] == ["BOM only"]


@pytest.mark.anyio
async def test_missing_source_path_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    """A source path that does not exist is one line naming it, exit 2, and the good source beside it is not sent either."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.json").write_bytes(orjson.dumps(base_doc("Still fine")))
    missing = tmp_path / "nowhere.json"
    async with running_fake(FakeConfig.demo(1)) as env:
        cfg, variables = write_config(tmp_path, env)
        run = await run_migrator(
            ["migrate", str(src), str(missing), "--config", str(cfg), "--progress", "never"],
            variables,
            tmp_path,
        )
        ledger = env.imports("tenant-1")
    assert run.code == 2
    assert_no_traceback(run)
    assert run.err == f"migrator: error: {missing}: no such file or directory\n"
    assert ledger == []


# ---------------------------------------------------------------- configuration errors: exit 2


def config_text(url: str, tenant_extra: str = "", settings: str = "") -> str:
    return (
        "[tenants.prod]\n"
        f'base_url = "{url}"\n'
        'client_id = "cid"\n'
        'client_secret_env = "MIGRATOR_TEST_SECRET"\n'
        f"{tenant_extra}"
        f"{settings}"
    )


CONFIG_CASES = {
    "missing config file": (None, [], "config file not found"),
    "typo in a tenant key": (
        config_text("http://127.0.0.1:9", "max_concurency = 4\n"),
        [],
        "tenants.prod.max_concurency",
    ),
    "typo in a settings key": (
        config_text("http://127.0.0.1:9", settings="[settings]\nmax_atempts = 3\n"),
        [],
        "settings.max_atempts",
    ),
    "unknown top-level table": (
        config_text("http://127.0.0.1:9") + "[tenant.other]\nx = 1\n",
        [],
        ": tenant: unknown key",
    ),
    "not TOML": ("[tenants.prod\nbase_url = 1\n", [], "not valid TOML"),
    "secret env var not set": (
        config_text("http://127.0.0.1:9").replace(
            "MIGRATOR_TEST_SECRET", "MIGRATOR_TEST_UNSET_VAR"
        ),
        [],
        "tenants.prod.client_secret_env: environment variable MIGRATOR_TEST_UNSET_VAR is not set",
    ),
    "unknown --tenant": (
        config_text("http://127.0.0.1:9"),
        ["--tenant", "prdo"],
        "unknown tenant 'prdo'",
    ),
    "plain http to a remote host": (
        config_text("http://zuora.example.com"),
        [],
        "tenants.prod.base_url: plain http is only allowed",
    ),
    "secrets file missing": (
        config_text("https://zuora.example.com").replace(
            'client_secret_env = "MIGRATOR_TEST_SECRET"',
            'client_secret_file = "no-such-secret.txt"',
        ),
        [],
        "tenants.prod.client_secret_file: cannot read secrets file",
    ),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_configuration_errors_exit_2_in_one_line(tmp_path: Path, case: str) -> None:
    """Each configuration mistake exits 2 with exactly one stderr line naming the file and the key, and no traceback."""
    text, extra, expected = CONFIG_CASES[case]
    cfg = tmp_path / "migrator.toml"
    if text is not None:
        cfg.write_text(text)
    src = tmp_path / "src.json"
    src.write_bytes(orjson.dumps(base_doc("Never sent")))
    env = {k: v for k, v in os.environ.items() if k != "MIGRATOR_TEST_UNSET_VAR"}
    env["MIGRATOR_TEST_SECRET"] = "CANARY-config-secret-1234"
    args = ["migrate", str(src), "--config", str(cfg), "--progress", "never", *extra]
    run = migrator_process(args, env, tmp_path, timeout=60)
    assert run.code == 2, (run.out, run.err)
    assert_no_traceback(run)
    lines = [ln for ln in run.err.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("migrator: error: ")
    assert str(cfg) in lines[0], lines[0]
    assert expected in lines[0], lines[0]
    assert "CANARY-config-secret-1234" not in run.out + run.err


@pytest.mark.anyio
async def test_plan_over_bad_inputs_exits_1_and_sends_nothing(tmp_path: Path) -> None:
    """`migrator plan` over the same mix of good and bad files exits 1, names each bad file, prints no traceback and imports nothing."""
    src = tmp_path / "src"
    src.mkdir()
    good_docs(src)
    cases = bad_cases()
    for name, (data, _) in cases.items():
        (src / name).write_bytes(data)
    async with running_fake(FakeConfig.demo(1)) as env:
        cfg, variables = write_config(tmp_path, env, f"max_document_bytes = {MAX_DOC_BYTES}\n")
        run = await run_migrator(["plan", str(src), "--config", str(cfg)], variables, tmp_path)
        ledger = env.imports("tenant-1")
    assert run.code == 1, run.err + run.out
    assert_no_traceback(run)
    assert ledger == []
    for name, (_, json_path) in cases.items():
        assert any(
            name in ln and any(f": {p}: " in ln for p in json_path.split("|"))
            for ln in run.out.splitlines()
        ), name


@pytest.mark.anyio
async def test_journal_held_by_another_run_is_one_line_exit_2(tmp_path: Path) -> None:
    """A journal locked by another live run makes migrate exit 2 with one line naming the journal, no traceback, nothing sent."""
    from migrator.store.journal import Journal

    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.json").write_bytes(orjson.dumps(base_doc("Waits for the lock")))
    journal = tmp_path / "j.jsonl"
    async with running_fake(FakeConfig.demo(1)) as env:
        cfg, variables = write_config(tmp_path, env)
        async with Journal.open(str(journal), {"run_id": "holder", "tenants": {}}):
            run = await run_migrator(
                [
                    "migrate",
                    str(src),
                    "--config",
                    str(cfg),
                    "--journal",
                    str(journal),
                    "--progress",
                    "never",
                ],
                variables,
                tmp_path,
            )
        ledger = env.imports("tenant-1")
    assert run.code == 2, run.err + run.out
    assert_no_traceback(run)
    lines = [ln for ln in run.err.splitlines() if ln.strip()]
    assert (
        len(lines) == 1 and lines[0].startswith("migrator: error: ") and str(journal) in lines[0]
    ), lines
    assert ledger == []
