"""Running a rollout wave by wave: a wave's tenants together, then smoke runs of what they switched
on, then the verdict; a halt holds every later wave (and, asked to, rolls the wave back).

The decisions are core/rollout.py's; `migrate` and `activate` hand in how to run a wave's
tenants, how to tell which failed, and how to hold a tenant that must not be touched.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any

import anyio
import structlog

from migrator.core.errors import MigratorError, ZuoraError, single_failure
from migrator.core.journal_records import Record
from migrator.core.logs import redact_text
from migrator.core.plan import Action, int_or_none
from migrator.core.remap import apply_substitutions
from migrator.core.report import ItemOutcome
from migrator.core.rollback import ROLLBACK_FAILURES
from migrator.core.rollout import (
    RolloutConfig,
    SmokeLedger,
    Wave,
    WaveVerdict,
    assign_waves,
    judge_run,
    peer_verdict,
    peer_wave_verdict,
    tenant_failure,
)
from migrator.run.options import Progress
from migrator.run.rollback import DiscardState, read_rollback_targets, rollback
from migrator.run.tenant import TenantState, tenant_identity
from migrator.store.journal import read_state
from migrator.store.workspace import Workspace
from migrator.zuora import ZuoraClient

log = structlog.get_logger("migrator.rollout")

POLL_FIRST, POLL_MAX = 0.2, 5.0  # seconds between polls of a smoke run, doubling
SHARD_POLL = 0.5  # seconds between looks at the other shards' journals


def _failed_list(failed: Mapping[str, str]) -> list[dict[str, str]]:
    # A list, not a mapping: tenant names become values, never field names (the journal refuses
    # field names that look secret-bearing, and a tenant may well be called "token-eu").
    return [{"tenant": t, "why": why} for t, why in sorted(failed.items())]


def read_peer_waves(journal_path: str, count: int) -> dict[int, dict[int, str]]:
    """Shard → wave → step, from the latest run of each other journal in the journal's folder
    whose wave records carry a shard of `count` (a journal that cannot be read is left out).

    A run that finished before this shard's run started is an earlier round: its passed waves
    still count, its halts do not (that shard is expected to run again)."""
    own = os.path.abspath(journal_path)
    folder = os.path.dirname(own)
    try:
        mine = _latest_run(own)
        names = sorted(os.listdir(folder))
    except (OSError, MigratorError):
        return {}
    my_start = mine[0].t if mine else 0.0
    out: dict[int, dict[int, str]] = {}
    newest: dict[int, float] = {}
    for name in names:
        path = os.path.join(folder, name)
        if path == own or not name.endswith((".jsonl", ".journal")):
            continue
        try:
            latest = _latest_run(path)
        except MigratorError:
            continue
        if not latest:
            continue
        finished = [r.t for r in latest if r.type == "run_finished"]
        stale = bool(finished) and finished[0] < my_start
        steps: dict[int, str] = {}
        shard_index: int | None = None
        for record in latest:
            index, _, of = str(record.get("shard") or "").partition("/")
            wave = record.get("wave")
            if record.type != "wave" or of != str(count) or not index.isdigit():
                continue
            if not isinstance(wave, int):
                continue
            shard_index = int(index)
            step = str(record.get("step"))
            if not stale or step == "passed":
                steps[wave] = step
        if shard_index is not None and latest[0].t >= newest.get(shard_index, -1.0):
            newest[shard_index] = latest[0].t
            out[shard_index] = steps
    return out


def _latest_run(path: str) -> list[Record]:
    """The journal's last run: its run_started, wave records and run_finished, in order."""
    kept, _ = read_state(path, DiscardState(), keep=("run_started", "wave", "run_finished"))
    latest: list[Record] = []
    for record in kept:
        latest = [record] if record.type == "run_started" else [*latest, record]
    return latest


def needs_journal(rollout: RolloutConfig | None, journal: str | None, dry_run: bool) -> None:
    """A rollout records its waves, halts and activations: refuse one without a journal."""
    if rollout is not None and not dry_run and not journal:
        raise MigratorError(
            "a [rollout] needs --journal FILE: the journal records each wave, a halt, the "
            "smoke runs and what `migrator rollback` puts back"
        )


def wave_failures(store: Workspace, wave: Wave) -> dict[str, str]:
    """The wave's tenants that failed it (tenant → why), from their outcomes so far."""
    counts = store.outcome_counts()
    unverified = store.unverified_tenants()
    out = {}
    for tenant in wave.tenants:
        why = tenant_failure(counts.get(tenant, {}), unverified=tenant in unverified)
        if why is not None:
            out[tenant] = why
    return out


def hold_tenant(run: TenantState, reason: str) -> None:
    """A planned tenant of a later wave after a halt: nothing is sent, every import says why."""
    for item in run.store.planned_items(run.tenant.name):
        if item.action in (Action.CREATE, Action.NEW_VERSION):
            run._outcome(item, "deferred", error=reason)
        elif item.action is Action.BLOCKED:
            run._outcome(item, "blocked", error=item.reason)
        else:
            run._outcome(item, "skipped", reason=item.reason)
    run.progress.phase = "held"


def read_smoke_ledger(journal_path: str) -> SmokeLedger:
    """The journal's activations and smoke runs, folded (a line at a time)."""
    ledger = SmokeLedger()

    def watch(record: Record) -> None:
        if record.type in ("activating", "committed", "smoke"):
            ledger.note(record.type, record.seq, record.fields)

    read_state(journal_path, DiscardState(), keep=(), watch=watch)
    return ledger


class WaveRunner:
    """One rollout over the selected tenants' waves: run, smoke-test, judge, halt or go on."""

    def __init__(
        self,
        rollout: RolloutConfig,
        *,
        journal: Any,
        journal_path: str,
        clients: Mapping[str, ZuoraClient],
        record: Callable[[ItemOutcome], None],
        progress: Progress | None = None,
        stopping: anyio.Event | None = None,
        run_id: str = "",
        shard: tuple[int, int] | None = None,
    ) -> None:
        self.rollout = rollout
        self.journal = journal
        self.journal_path = journal_path
        self.clients = clients
        self.record = record
        self.progress = progress or Progress()
        self.stopping = stopping or anyio.Event()
        self.run_id = run_id
        self.shard = f"{shard[0]}/{shard[1]}" if shard else None
        self._shard = shard
        # Wait for the other shards' waves (their journals in this journal's folder)?
        self.waits = bool(rollout.wait_for_shards and shard is not None and shard[1] > 1)
        self.notices: list[str] = []
        self.halted: WaveVerdict | None = None

    def _show(self, wave: Wave, state: str) -> None:
        self.progress.wave_state[wave.number] = state

    async def run(
        self,
        waves: Sequence[Wave],
        execute: Callable[[Wave], Awaitable[None]],
        failures: Callable[[Wave], dict[str, str]],
        hold: Callable[[Wave, str], None],
    ) -> None:
        """Each wave in turn; the next only once this one is finished and healthy."""
        self.progress.waves = [(w.number, w.label, w.tenants) for w in waves]
        for wave in waves:
            self._show(wave, "waiting")
        for i, wave in enumerate(waves):
            if self.stopping.is_set():
                for later in waves[i:]:
                    hold(later, "not started: the run was asked to stop")
                    self._show(later, "not started (stopping)")
                return
            if i > 0 and self.waits:
                self._show(wave, "waiting for the other shards")
                why = await self._wait_for_shards(wave)
                if why is not None:
                    await self._wave_record(wave, "held", reason=why)
                    self.notices.append(f"{wave.label}: held: {why}")
                    for later in waves[i:]:
                        hold(later, f"not sent: {why}; run again once every shard has passed")
                        self._show(later, f"held: {why}")
                    return
            self._show(wave, "running")
            await self._wave_record(wave, "started")
            await execute(wave)
            if self.stopping.is_set():
                # A stop is not a halt: the wave is left unjudged (no verdict in the journal) and
                # the same command finishes it, then the rest.
                self._show(wave, "stopped")
                for later in waves[i + 1 :]:
                    hold(later, "not started: the run was asked to stop")
                    self._show(later, "not started (stopping)")
                return
            failed = failures(wave)
            for tenant, whys in (await self._smoke(wave, set(failed))).items():
                failed[tenant] = tenant_failure({}, smoke_failures=whys) or ""
            verdict = WaveVerdict(wave, failed, self.rollout.failure_tolerance)
            if not verdict.halted:
                await self._wave_record(wave, "passed", failed=_failed_list(failed))
                self._show(
                    wave, "passed" + (f" ({len(failed)} tenant(s) failed)" if failed else "")
                )
                self.notices.append(
                    f"{wave.label}: passed"
                    + "".join(f"; {t} failed: {why}" for t, why in sorted(failed.items()))
                )
                if self.waits and self.rollout.rollback_on_halt:
                    why = await self._peer_halt(wave)
                    if why is not None:
                        await self._halted_elsewhere(wave, why)
                        for later in waves[i + 1 :]:
                            hold(later, f"not sent: {why}; run again once every shard has passed")
                            self._show(later, f"held: {why}")
                        return
                continue
            self.halted = verdict
            reason = verdict.reason()
            await self._wave_record(wave, "halted", failed=_failed_list(failed), reason=reason)
            self._show(wave, f"halted: {len(failed)} tenant(s) failed")
            self.notices.append(reason)
            log.debug("rollout halted", wave=wave.number, failed=sorted(failed))  # the note says it
            if self.rollout.rollback_on_halt:
                await self._rollback(wave)
            for later in waves[i + 1 :]:
                hold(later, verdict.held_reason())
                self._show(later, f"held: wave {wave.number} halted")
            return

    async def _wave_record(self, wave: Wave, step: str, **fields: Any) -> None:
        await self.journal.append(
            "wave",
            wave=wave.number,
            step=step,
            tenants=list(wave.tenants),
            shard=self.shard,
            **fields,
        )

    async def _wait_for_shards(self, wave: Wave) -> str | None:
        """Until every other shard passed the wave before (None), or why this shard holds."""
        assert self._shard is not None
        me, count = self._shard
        with anyio.move_on_after(self.rollout.shard_wait_s):
            while True:
                peers = await anyio.to_thread.run_sync(read_peer_waves, self.journal_path, count)
                go, why = peer_verdict(peers, me, count, wave.number)
                if go:
                    return None
                if why is not None:
                    return why
                if self.stopping.is_set():
                    return "the run was asked to stop while waiting for the other shards"
                await anyio.sleep(SHARD_POLL)
        return (
            f"the other shards did not pass wave {wave.number - 1} within "
            f"{self.rollout.shard_wait_s:g} s (shard_wait_s)"
        )

    async def _peer_halt(self, wave: Wave) -> str | None:
        """Once this shard passed `wave` (with rollback_on_halt): wait until every other shard
        judged it too; why, when one halted it (this shard then rolls its own tenants back)."""
        assert self._shard is not None
        me, count = self._shard
        self._show(wave, "passed; waiting for the other shards' verdict")
        with anyio.move_on_after(self.rollout.shard_wait_s):
            while not self.stopping.is_set():
                peers = await anyio.to_thread.run_sync(read_peer_waves, self.journal_path, count)
                done, why = peer_wave_verdict(peers, me, count, wave.number)
                if done:
                    self._show(wave, "passed")
                    return why
                await anyio.sleep(SHARD_POLL)
        self.notices.append(
            f"{wave.label}: the other shards did not judge it within "
            f"{self.rollout.shard_wait_s:g} s (shard_wait_s); a halt there is not rolled back here"
        )
        return None

    async def _halted_elsewhere(self, wave: Wave, why: str) -> None:
        """Another shard halted a wave this shard passed: roll this shard's tenants of it back,
        record the halt, and say so on each of those tenants (the run is not ok)."""
        reason = f"{wave.label}: {why}: this shard's tenants of the wave are rolled back"
        await self._wave_record(wave, "halted", failed=[], reason=reason)
        self._show(wave, f"halted: {why}")
        self.notices.append(reason)
        log.debug("rollout halted by another shard", wave=wave.number, why=why)  # a note says it
        await self._rollback(wave)
        for tenant in wave.tenants:
            if tenant in self.clients:
                self.record(
                    ItemOutcome(
                        tenant=tenant,
                        source=f"rollout (wave {wave.number})",
                        workflow_name="",
                        status="deferred",
                        error=f"{why}; rolled back (rollback_on_halt): run every shard again "
                        "once the cause is fixed",
                        action="rollback",
                    )
                )

    # ---- smoke runs --------------------------------------------------------------------------

    async def _smoke(self, wave: Wave, skip: set[str]) -> dict[str, list[str]]:
        """Run every due smoke workflow in the wave's healthy tenants; tenant → failures."""
        if not self.rollout.smoke:
            return {}
        ledger = await anyio.to_thread.run_sync(read_smoke_ledger, self.journal_path)
        failures: dict[str, list[str]] = {}

        async def tenant_smoke(tenant: str, due: list[tuple[str, int | None]]) -> None:
            for name, def_id in due:
                ok, detail = await self._smoke_one(wave, tenant, name, def_id)
                if not ok:
                    failures.setdefault(tenant, []).append(f"{name}: {detail}")

        async with anyio.create_task_group() as tg:
            for tenant in wave.tenants:
                due = ledger.due(tenant, self.rollout.smoke)
                if tenant not in skip and due and tenant in self.clients:
                    tg.start_soon(tenant_smoke, tenant, due)
        return failures

    async def _smoke_one(
        self, wave: Wave, tenant: str, name: str, def_id: int | None
    ) -> tuple[bool, str]:
        client = self.clients[tenant]
        smoke = self.rollout.smoke[name]
        run_id: int | None = None
        try:
            if def_id is None:
                def_id = await _find_definition(client, name)
            params = apply_substitutions(dict(smoke.parameters), client.tenant.substitutions)
            material = "\x1f".join(
                [tenant_identity(client.tenant), "smoke", str(def_id), self.run_id]
            )
            key = "migrator-smoke-" + hashlib.sha256(material.encode()).hexdigest()[:40]
            started = await client.run_workflow(def_id, params, idempotency_key=key)
            run_id = int_or_none(started.get("id"))
            if run_id is None:
                ok, detail = False, "the run's answer carries no run id"
            else:
                ok, detail = await _poll(client, run_id, smoke.timeout_s)
        except ZuoraError as exc:
            ok, detail = (
                False,
                f"the run was refused or could not be followed: {redact_text(str(exc))}",
            )
        await self.journal.append(
            "smoke",
            tenant=tenant,
            name=name,
            wave=wave.number,
            definition_id=def_id,
            workflow_run_id=run_id,
            ok=ok,
            detail=detail,
        )
        if ok:
            self.notices.append(
                f"smoke run of {name!r} in {tenant} ({wave.label}, run {run_id}): passed"
            )
        else:
            # Said once: as the report's failed row (run id and detail), not again as a note.
            self.record(
                ItemOutcome(
                    tenant=tenant,
                    source=f"smoke run (wave {wave.number})",
                    workflow_name=name,
                    status="failed",
                    target_workflow_id=def_id,
                    error=f"smoke run {run_id}: {detail}",
                    action="smoke",
                )
            )
        # The report says it (a note or a row): the log line is for --debug only.
        log.debug("smoke run", tenant=tenant, workflow=name, ok=ok, detail=detail)
        return ok, detail

    # ---- rollback on halt ----------------------------------------------------------------------

    async def _rollback(self, wave: Wave) -> None:
        """`migrator rollback` for the wave's tenants, same plan and rules (no --force): a
        definition changed since the rollout is left alone, and the item says so."""
        targets, _, _, _ = await anyio.to_thread.run_sync(
            read_rollback_targets, self.journal_path, list(wave.tenants)
        )
        targets = [t for t in targets if t.tenant in self.clients]
        if not targets:
            self.notices.append(f"rollback_on_halt: {wave.label} changed no active version")
            return
        for outcome in await rollback(self.clients, targets, self.journal):
            if outcome.status not in ROLLBACK_FAILURES:
                self.notices.append(
                    f"rollback_on_halt: {outcome.tenant}: {outcome.workflow_name} "
                    f"(definition {outcome.target_workflow_id}): {outcome.status}: "
                    f"{outcome.action}: {outcome.reason or ''}"
                )
            else:  # said once, as a failed item of the run
                left = outcome.status == "skipped"
                self.record(
                    ItemOutcome(
                        tenant=outcome.tenant,
                        source=f"rollback (wave {wave.number})",
                        workflow_name=outcome.workflow_name,
                        status="failed",
                        target_workflow_id=outcome.target_workflow_id,
                        error=f"rollback_on_halt: {outcome.error or outcome.reason}"
                        + (
                            "; left alone (`migrator rollback --force` restores it)" if left else ""
                        ),
                        action="rollback",
                    )
                )


async def _find_definition(client: ZuoraClient, name: str) -> int:
    # An entry without an integer id cannot be run (issue 14 #5: one line, not a traceback).
    found = [
        e
        for e in await client.list_workflows(name=name)
        if e.get("name") == name and type(e.get("id")) is int
    ]
    if len(found) != 1:
        raise ZuoraError(
            f"tenant {client.tenant.name}: {len(found)} definitions named {name!r}; cannot tell "
            "which to run"
        )
    return int(found[0]["id"])


async def _poll(client: ZuoraClient, run_id: int, limit_s: float) -> tuple[bool, str]:
    """Follow a run until it finishes, an error task shows, or the timeout passes."""
    delay = POLL_FIRST
    with anyio.move_on_after(limit_s):
        while True:
            run = await client.get_workflow_run(run_id)
            tasks = run.get("tasks")
            verdict, detail = judge_run(
                str(run.get("status")), tasks if isinstance(tasks, dict) else {}
            )
            if verdict is not None:
                return verdict, detail
            await anyio.sleep(delay)
            delay = min(delay * 2, POLL_MAX)
    return False, f"not finished after {limit_s:g} s (timeout_s)"


async def roll_out_runs(
    rollout: RolloutConfig,
    runs: Mapping[str, TenantState],
    execute_one: Callable[[Any], Coroutine[Any, Any, None]],
    *,
    store: Workspace,
    journal: Any,
    journal_path: str,
    progress: Progress,
    stopping: anyio.Event,
    shard: tuple[int, int] | None = None,
) -> list[str]:
    """`migrate`'s second phase in waves: the planned tenants of a wave execute together; the
    next wave starts once this one is finished and healthy. Returns the rollout's notices."""
    waits = rollout.wait_for_shards and shard is not None and shard[1] > 1
    waves = assign_waves(rollout, runs, keep_empty=waits)
    runner = WaveRunner(
        rollout,
        journal=journal,
        journal_path=journal_path,
        clients=progress.clients,
        record=store.add_outcome,
        progress=progress,
        stopping=stopping,
        run_id=os.urandom(8).hex(),
        shard=shard,
    )

    async def execute(wave: Wave) -> None:
        with single_failure():
            async with anyio.create_task_group() as tg:
                for name in wave.tenants:
                    run = runs[name]
                    if run.planned and not run.failed:
                        tg.start_soon(execute_one, run)

    def hold(wave: Wave, reason: str) -> None:
        for name in wave.tenants:
            run = runs[name]
            if run.planned and not run.failed:
                hold_tenant(run, reason)

    await runner.run(waves, execute, lambda wave: wave_failures(store, wave), hold)
    return runner.notices
