"""Resuming from a journal, in process against the fake over real HTTP (issue 5).

In-doubt items, tenants that cannot be worked, refusals, torn/damaged journals, --retry-failed, the lock.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest

from migrator.core.errors import JournalError
from migrator.core.report import Report
from migrator.fake import FaultConfig
from migrator.fake._state import errors_list
from migrator.run.migrate import migrate
from migrator.run.options import MigrateOptions
from migrator.store.journal import Journal, read_journal
from tests.conftest import ROOT, SAMPLES
from tests.helpers import (
    CALLEE,
    T1,
    VAT,
    WELCOME,
    Crash,
    Env,
    crashing,
    hooked,
    key_of,
    running_fake,
    write_config_file,
)

pytestmark = pytest.mark.anyio

OVERAGE = str(SAMPLES / "06-usage-overage-alert.json")
CALLER = str(SAMPLES / "10-quote-enrichment.json")


def options(journal: Path, *sources: str, **kw: Any) -> MigrateOptions:
    return MigrateOptions(sources=list(sources), tenants=[T1], journal=str(journal), **kw)


def by_source(report: Report) -> dict[str, Any]:
    return {item.source: item for item in report.items}


def landed(env: Env, tenant: str = T1) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for entry in env.imports(tenant):
        out.setdefault(entry["name"], []).append(entry)
    return out


async def test_in_doubt_intent_that_never_arrived_is_resent_with_its_key(tmp_path: Path) -> None:
    """A run that dies after its intent is durable but before the import is sent leaves the item in doubt, and the next run sends it with that very Idempotency-Key, once."""
    journal = tmp_path / "j.jsonl"

    def die_at_intent(type: str, fields: Mapping[str, Any]) -> None:
        if type == "intent":
            raise Crash

    async with running_fake() as env:
        await crashing(
            migrate(env.settings, options(journal, WELCOME), journal_factory=hooked(die_at_intent))
        )
        assert env.imports(T1) == []
        state = read_journal(journal).state[(T1, key_of(WELCOME))]
        assert state.status == "in_doubt" and state.idempotency_key

        report = await migrate(env.settings, options(journal, WELCOME))
        assert report.ok, report.to_json()
        [entry] = env.imports(T1)
        assert entry["idempotency_key"] == state.idempotency_key
        assert entry["version"] == state.version
        assert read_journal(journal).state[(T1, key_of(WELCOME))].status == "done"


async def test_in_doubt_imports_that_landed_are_recognised_on_the_target(tmp_path: Path) -> None:
    """Imports whose answers were lost land once: the next run finds them on the target (by content, also for a caller whose ids were remapped) and sends nothing again."""
    journal = tmp_path / "j.jsonl"
    lose_answers = {"Quote Enrichment", "Welcome Email for New Accounts"}

    def lose_answer_of_some(type: str, fields: Mapping[str, Any]) -> None:
        # Only these imports lose their answer; everything before them is answered.
        if type == "intent" and fields["name"] in lose_answers:
            env.fake.set_faults(T1, FaultConfig(lost_response_rate=1.0))

    async with running_fake(max_attempts=1, max_concurrency=1) as env:
        first = await migrate(
            env.settings,
            options(journal, CALLEE, CALLER, WELCOME),
            journal_factory=hooked(lose_answer_of_some),
        )
        items = by_source(first)
        assert items[CALLEE].status == "imported"
        assert items[CALLER].status == items[WELCOME].status == "deferred"
        assert "may have landed" in (items[CALLER].error or "")
        assert {n: len(e) for n, e in landed(env).items()} == {
            "Price Lookup Service": 1,
            "Quote Enrichment": 1,
            "Welcome Email for New Accounts": 1,
        }

        env.fake.set_faults(T1, FaultConfig())
        second = await migrate(env.settings, options(journal, CALLEE, CALLER, WELCOME))
        assert second.ok, second.to_json()
        assert len(env.imports(T1)) == 3, "nothing is imported a second time"
        items = by_source(second)
        assert items[CALLER].status == "imported" and "landed" in (items[CALLER].reason or "")
        assert items[WELCOME].status == "skipped" and "identical" in (items[WELCOME].reason or "")
        state = read_journal(journal).state
        caller = state[(T1, key_of(CALLER))]
        assert caller.status == "done" and caller.extra.get("recovered") is True
        assert caller.target_definition_id == landed(env)["Quote Enrichment"][0]["definition_id"]
        assert state[(T1, key_of(WELCOME))].status == "skipped"


async def test_caller_of_a_deferred_callee_is_finished_by_the_next_plain_run(
    tmp_path: Path,
) -> None:
    """When a callee's import is deferred (a transient error), its caller waits for the next run instead of failing for good: running the same command again imports both."""
    journal = tmp_path / "j.jsonl"

    def fail_callee(type: str, fields: Mapping[str, Any]) -> None:
        if type == "intent" and fields["name"] == "Price Lookup Service":
            env.fake.set_faults(T1, FaultConfig(error_rate=1.0, error_statuses=(503,)))
        if type == "deferred":
            env.fake.set_faults(T1, FaultConfig())

    async with running_fake(max_attempts=1, max_concurrency=1) as env:
        first = await migrate(
            env.settings, options(journal, CALLEE, CALLER), journal_factory=hooked(fail_callee)
        )
        assert by_source(first)[CALLEE].status == "deferred"
        assert by_source(first)[CALLER].status != "failed", by_source(first)[CALLER]
        second = await migrate(env.settings, options(journal, CALLEE, CALLER))
        assert second.ok, second.to_json()
        assert {n: len(e) for n, e in landed(env).items()} == {
            "Price Lookup Service": 1,
            "Quote Enrichment": 1,
        }


async def test_journal_for_another_tenant_refuses_and_does_not_poison_the_journal(
    tmp_path: Path,
) -> None:
    """A journal written for tenant-1 refuses to resume once tenant-1 names another tenant (clear one-line JournalError, nothing sent), and the refused run leaves the journal usable with the original config."""
    journal = tmp_path / "j.jsonl"
    async with running_fake() as env:
        assert (await migrate(env.settings, options(journal, WELCOME))).ok
        other = env.config.tenant("tenant-2")
        moved = replace(
            env.settings.tenants[T1],
            client_id=other.client_id,
            client_secret=env.settings.tenants["tenant-2"].client_secret,
        )
        elsewhere = replace(env.settings, tenants={**env.settings.tenants, T1: moved})
        with pytest.raises(JournalError) as info:
            await migrate(elsewhere, options(journal, WELCOME, VAT))
        message = str(info.value)
        assert "'tenant-1' pointed at a different tenant" in message and "--journal" in message
        assert "\n" not in message
        assert env.imports("tenant-2") == [] and len(env.imports(T1)) == 1

        again = await migrate(env.settings, options(journal, WELCOME, VAT))
        assert again.ok, again.to_json()
        assert {n: len(e) for n, e in landed(env).items()} == {
            "Welcome Email for New Accounts": 1,
            "Normalise VAT Numbers": 1,
        }


async def test_torn_last_line_is_cut_reported_and_the_run_resumes(tmp_path: Path) -> None:
    """A journal whose last line was torn mid-write (here: a committed record) is cut, the cut is reported, and the run resumes, finding that import on the target instead of sending it again."""
    journal = tmp_path / "j.jsonl"

    def die_after_commit(type: str, fields: Mapping[str, Any]) -> None:
        if type == "committed":
            raise Crash

    async with running_fake() as env:
        await crashing(
            migrate(
                env.settings, options(journal, WELCOME), journal_factory=hooked(die_after_commit)
            )
        )
        lines = journal.read_bytes().splitlines(keepends=True)
        # The crash left …, intent, committed, run_finished: keep half of the committed line.
        assert b'"type":"committed"' in lines[-2]
        torn = b"".join(lines[:-2]) + lines[-2][: len(lines[-2]) // 2]
        journal.write_bytes(torn)
        assert read_journal(journal).state[(T1, key_of(WELCOME))].status == "in_doubt"

        report = await migrate(env.settings, options(journal, WELCOME, VAT))
        assert report.ok, report.to_json()
        assert any(
            f"cut an incomplete last line (line {len(lines) - 1}," in n for n in report.notices
        ), report.notices
        assert len(env.imports(T1)) == 2
        assert by_source(report)[WELCOME].status == "skipped"
        view = read_journal(journal)
        assert view.notices == [] and journal.read_bytes().startswith(
            torn[: len(torn) - len(lines[-2]) // 2]
        )


async def test_damage_before_the_last_line_refuses_with_the_line_number(tmp_path: Path) -> None:
    """One changed byte in the middle of the journal makes the run refuse, naming the line and what to do, without sending anything or touching the file."""
    journal = tmp_path / "j.jsonl"
    async with running_fake() as env:
        assert (await migrate(env.settings, options(journal, WELCOME))).ok
        lines = journal.read_bytes().splitlines(keepends=True)
        assert len(lines) >= 4
        lines[1] = lines[1].replace(b'"type":"', b'"type":"X', 1)
        damaged = b"".join(lines)
        journal.write_bytes(damaged)
        with pytest.raises(JournalError) as info:
            await migrate(env.settings, options(journal, WELCOME, VAT))
        message = str(info.value)
        assert "damaged at line 2" in message and "--journal" in message and "head -n 1" in message
        assert journal.read_bytes() == damaged
        assert len(env.imports(T1)) == 1


async def test_retry_failed_sends_only_the_failed_items(tmp_path: Path) -> None:
    """--retry-failed sends again only the item the target refused (400) under a fresh Idempotency-Key; deferred and never-tried items are left alone and reported as deferred (the run is not ok), done ones as skipped."""
    journal = tmp_path / "j.jsonl"
    failed_keys: list[str] = []

    def refuse_welcome_defer_overage(type: str, fields: Mapping[str, Any]) -> None:
        if type == "intent" and fields["name"] == "Welcome Email for New Accounts":
            failed_keys.append(fields["idempotency_key"])
            env.fake.set_faults(T1, FaultConfig(error_rate=1.0, error_statuses=(400,)))
        elif type == "intent" and fields["name"] == "Usage Overage Alert":
            env.fake.set_faults(T1, FaultConfig(error_rate=1.0, error_statuses=(503,)))
        elif type in ("failed", "deferred"):
            env.fake.set_faults(T1, FaultConfig())

    async with running_fake(max_attempts=1, max_concurrency=1) as env:
        first = await migrate(
            env.settings,
            options(journal, WELCOME, OVERAGE, CALLEE),
            journal_factory=hooked(refuse_welcome_defer_overage),
        )
        items = by_source(first)
        assert (items[WELCOME].status, items[OVERAGE].status, items[CALLEE].status) == (
            "failed",
            "deferred",
            "imported",
        )
        assert set(landed(env)) == {"Price Lookup Service"}

        retry_opts = options(journal, WELCOME, OVERAGE, CALLEE, VAT, retry_failed=True)
        retry = await migrate(env.settings, retry_opts)
        items = by_source(retry)
        assert items[WELCOME].status == "imported"
        assert items[CALLEE].status == "skipped", items[CALLEE]
        for left in (OVERAGE, VAT):
            assert items[left].status == "deferred", items[left]
            assert "--retry-failed sends only failed items" in (items[left].error or "")
        assert not retry.ok  # never `ok … exit 0` with items still to send
        assert set(landed(env)) == {"Price Lookup Service", "Welcome Email for New Accounts"}
        [welcome] = landed(env)["Welcome Email for New Accounts"]
        assert welcome["idempotency_key"] not in failed_keys

        # The items --retry-failed left alone are for the next plain run.
        rest = await migrate(env.settings, options(journal, WELCOME, OVERAGE, CALLEE, VAT))
        assert rest.ok, rest.to_json()
        assert {n: len(e) for n, e in landed(env).items()} == {
            "Price Lookup Service": 1,
            "Welcome Email for New Accounts": 1,
            "Usage Overage Alert": 1,
            "Normalise VAT Numbers": 1,
        }


async def test_a_refused_item_is_not_resent_by_a_plain_run(tmp_path: Path) -> None:
    """A plain run leaves an item the target refused as failed, saying to use --retry-failed, and sends nothing for it."""
    journal = tmp_path / "j.jsonl"

    def refuse(type: str, fields: Mapping[str, Any]) -> None:
        if type == "intent":
            env.fake.set_faults(T1, FaultConfig(error_rate=1.0, error_statuses=(400,)))
        elif type == "failed":
            env.fake.set_faults(T1, FaultConfig())

    async with running_fake(max_attempts=1) as env:
        first = await migrate(
            env.settings, options(journal, WELCOME), journal_factory=hooked(refuse)
        )
        assert by_source(first)[WELCOME].status == "failed"
        again = await migrate(env.settings, options(journal, WELCOME))
        [item] = again.items
        assert item.status == "blocked" and "--retry-failed" in (item.error or "")
        assert env.imports(T1) == []


async def test_second_migrator_on_the_same_journal_is_refused_by_the_lock(tmp_path: Path) -> None:
    """While one migrator holds a journal, another run on it (in process, and a second CLI process) is refused naming the holder's pid, and sends nothing."""
    journal = tmp_path / "j.jsonl"
    async with running_fake() as env:
        async with Journal.open(journal, {"run_id": "holder"}):
            with pytest.raises(JournalError) as info:
                await migrate(env.settings, options(journal, WELCOME))
            assert f"another migrator (pid {os.getpid()})" in str(info.value)

            config = tmp_path / "m.toml"
            variables = write_config_file(config, env)
            result = await anyio.run_process(
                [
                    sys.executable,
                    "-m",
                    "migrator.cli",
                    "migrate",
                    WELCOME,
                    "--config",
                    str(config),
                    "--journal",
                    str(journal),
                    "--progress",
                    "never",
                ],
                env={**os.environ, **variables},
                cwd=ROOT,
                check=False,
            )
            stderr = result.stderr.decode()
            assert result.returncode == 2, stderr
            assert f"another migrator (pid {os.getpid()})" in stderr
            assert "Traceback" not in stderr
        assert env.imports(T1) == []
        # Released: the same journal is usable again.
        assert (await migrate(env.settings, options(journal, WELCOME))).ok


async def test_a_tenant_whose_target_cannot_be_read_is_deferred_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When reading one tenant's existing versions fails (5xx after the retries), only that tenant's items are deferred, the other tenants are migrated, and the next run finishes it."""
    journal = tmp_path / "j.jsonl"
    async with running_fake(max_attempts=2) as env:
        existing = json.loads(Path(WELCOME).read_bytes())
        existing["tasks"][0]["name"] = "changed on the target"
        env.fake.state.add_workflow(T1, existing, version="0.9.0")
        export = env.fake.state.export

        def export_down_in_t1(tenant: str, definition_id: int, version: str | None) -> Any:
            if tenant == T1:
                raise errors_list(503, "export is down")
            return export(tenant, definition_id, version)

        monkeypatch.setattr(env.fake.state, "export", export_down_in_t1)
        every = MigrateOptions(sources=[WELCOME], journal=str(journal))
        first = await migrate(env.settings, every)
        status = {item.tenant: item.status for item in first.items}
        assert status == {T1: "deferred", "tenant-2": "imported", "tenant-3": "imported"}
        assert "503" in (next(i for i in first.items if i.tenant == T1).error or "")

        monkeypatch.setattr(env.fake.state, "export", export)
        second = await migrate(env.settings, every)
        assert second.ok, second.to_json()
        for tenant in ("tenant-1", "tenant-2", "tenant-3"):
            assert [e["name"] for e in env.imports(tenant)] == ["Welcome Email for New Accounts"]


async def test_credentials_rejected_mid_run_stop_that_tenant_alone(tmp_path: Path) -> None:
    """When one tenant's credentials are revoked mid-run, that tenant stops with the auth error while the others finish, and once the credentials work again a plain re-run finishes it with nothing imported twice."""
    journal = tmp_path / "j.jsonl"
    original = ""

    def revoke_at_first_t1_intent(type: str, fields: Mapping[str, Any]) -> None:
        if (
            type == "intent"
            and fields["tenant"] == T1
            and env.fake.tenants[T1].client_secret == original
        ):
            env.fake.set_tenant(T1, client_secret="revoked-" + original)
            env.fake.expire_tokens(T1)

    async with running_fake(max_concurrency=1) as env:
        original = env.fake.tenants[T1].client_secret
        every = MigrateOptions(sources=[WELCOME, CALLEE, VAT], journal=str(journal))
        first = await migrate(
            env.settings, every, journal_factory=hooked(revoke_at_first_t1_intent)
        )
        by_tenant: dict[str, set[str]] = {}
        for item in first.items:
            by_tenant.setdefault(item.tenant, set()).add(item.status)
        assert by_tenant["tenant-2"] == by_tenant["tenant-3"] == {"imported"}
        assert "imported" not in by_tenant[T1]
        # The tenant stops at the first rejection: one intent, the rest never tried.
        records = read_journal(journal).records
        t1 = [r for r in records if r.get("tenant") == T1 and r.type in ("intent", "deferred")]
        assert [r.type for r in t1] == ["intent", "deferred"]
        t1_items = [i for i in first.items if i.tenant == T1]
        assert len(t1_items) == 3 and all(i.status == "deferred" for i in t1_items)
        assert sum("not sent:" in (i.error or "") for i in t1_items) == 2

        env.fake.set_tenant(T1, client_secret=original)
        second = await migrate(env.settings, every)
        assert second.ok, second.to_json()
        for tenant in ("tenant-1", "tenant-2", "tenant-3"):
            assert sorted(e["name"] for e in env.imports(tenant)) == [
                "Normalise VAT Numbers",
                "Price Lookup Service",
                "Welcome Email for New Accounts",
            ]


async def test_in_doubt_item_whose_source_was_removed_refuses_until_restored(
    tmp_path: Path,
) -> None:
    """A resume without the source of an unanswered import refuses (naming the workflow and what to do) and sends nothing; with the source back, the run settles it once."""
    journal = tmp_path / "j.jsonl"

    def die_at_intent(type: str, fields: Mapping[str, Any]) -> None:
        if type == "intent":
            raise Crash

    async with running_fake() as env:
        await crashing(
            migrate(env.settings, options(journal, WELCOME), journal_factory=hooked(die_at_intent))
        )
        size = journal.stat().st_size
        with pytest.raises(JournalError) as info:
            await migrate(env.settings, options(journal, VAT))
        message = str(info.value)
        assert "unanswered" in message and "'Welcome Email for New Accounts'" in message
        assert "restore those sources" in message
        assert journal.stat().st_size == size and env.imports(T1) == []

        report = await migrate(env.settings, options(journal, WELCOME, VAT))
        assert report.ok, report.to_json()
        assert sorted(e["name"] for e in env.imports(T1)) == [
            "Normalise VAT Numbers",
            "Welcome Email for New Accounts",
        ]
