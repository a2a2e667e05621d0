"""Fleet rollouts, pure: the `[rollout]` table, which wave each tenant is in, when a wave halts,
which smoke runs are due, whether a shard may start (or keep) a wave (see docs/rollout.md).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from migrator.core.errors import ConfigError

_GLOB = frozenset("*?[")
_ROLLOUT_KEYS = (
    "waves",
    "failure_tolerance",
    "rollback_on_halt",
    "smoke",
    "wait_for_shards",
    "shard_wait_s",
)
_SMOKE_KEYS = ("parameters", "timeout_s")
# §3.10: keys a run's body must not use.
RESERVED_RUN_KEYS = frozenset({"controller", "action", "id", "user_email", "user_token", "format"})
DEFAULT_SMOKE_TIMEOUT = 600.0


@dataclass(frozen=True, slots=True)
class SmokeRun:
    """One `[rollout.smoke."NAME"]` table: run NAME with these parameters, give up after timeout_s."""

    workflow: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    timeout_s: float = DEFAULT_SMOKE_TIMEOUT


@dataclass(frozen=True, slots=True)
class RolloutConfig:
    """The `[rollout]` table: the waves (tenant names or shell patterns), how many tenants of a
    wave may fail before the rollout halts, whether a halt rolls that wave back, the smoke runs."""

    waves: tuple[tuple[str, ...], ...]
    failure_tolerance: int = 0
    rollback_on_halt: bool = False
    smoke: Mapping[str, SmokeRun] = field(default_factory=dict)
    # With --shard: before each wave, wait until every other shard (its journal in the same
    # folder) has passed the wave before; hold when one halted (docs/rollout.md).
    wait_for_shards: bool = False
    shard_wait_s: float = 3600.0


@dataclass(frozen=True, slots=True)
class Wave:
    """The selected tenants of one wave. `number` is 1-based and the same whatever is selected
    (the tenants no pattern matches are wave len(waves) + 1), so shards and runs agree on it."""

    number: int
    tenants: tuple[str, ...]
    patterns: tuple[str, ...] = ()  # empty for the wave of unmatched tenants

    @property
    def label(self) -> str:
        what = ", ".join(self.patterns) if self.patterns else "tenants no wave names"
        return f"wave {self.number} ({what})"


def is_pattern(text: str) -> bool:
    return any(c in _GLOB for c in text)


def parse_rollout(raw: Any, file: str, tenant_names: Iterable[str]) -> RolloutConfig:
    """Validate a `[rollout]` table against the configured tenants; ConfigError names file and key."""
    names = sorted(tenant_names)
    if not isinstance(raw, dict):
        raise ConfigError(file, "rollout", "must be a table")
    for key in raw:
        if key not in _ROLLOUT_KEYS:
            raise ConfigError(
                file, f"rollout.{key}", f"unknown key (known: {', '.join(_ROLLOUT_KEYS)})"
            )
    waves_raw = raw.get("waves")
    if not isinstance(waves_raw, list) or not waves_raw:
        raise ConfigError(
            file, "rollout.waves", 'must be a non-empty list of lists, e.g. [["canary"], ["*"]]'
        )
    waves: list[tuple[str, ...]] = []
    named_in: dict[str, int] = {}
    for i, wave in enumerate(waves_raw, start=1):
        where = f"rollout.waves[{i - 1}]"
        if (
            not isinstance(wave, list)
            or not wave
            or not all(isinstance(p, str) and p.strip() for p in wave)
        ):
            raise ConfigError(file, where, "must be a non-empty list of tenant names or patterns")
        for pattern in wave:
            if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
                raise ConfigError(
                    file, where, f"{pattern!r} matches no configured tenant ({', '.join(names)})"
                )
            if not is_pattern(pattern):
                if pattern in named_in and named_in[pattern] != i:
                    raise ConfigError(
                        file,
                        where,
                        f"tenant {pattern!r} is already named in wave {named_in[pattern]}",
                    )
                named_in[pattern] = i
        waves.append(tuple(wave))
    tolerance = raw.get("failure_tolerance", 0)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 0:
        raise ConfigError(file, "rollout.failure_tolerance", "must be a whole number >= 0")
    rollback = raw.get("rollback_on_halt", False)
    if not isinstance(rollback, bool):
        raise ConfigError(file, "rollout.rollback_on_halt", "must be true or false")
    smoke_raw = raw.get("smoke", {})
    if not isinstance(smoke_raw, dict):
        raise ConfigError(file, "rollout.smoke", 'must be a table of [rollout.smoke."NAME"] tables')
    smoke = {name: _parse_smoke(name, table, file) for name, table in smoke_raw.items()}
    wait = raw.get("wait_for_shards", False)
    if not isinstance(wait, bool):
        raise ConfigError(file, "rollout.wait_for_shards", "must be true or false")
    wait_s = _seconds(raw.get("shard_wait_s", 3600.0), 7 * 86_400, file, "rollout.shard_wait_s")
    return RolloutConfig(tuple(waves), tolerance, rollback, smoke, wait, wait_s)


def _seconds(value: Any, most: int, file: str, key: str) -> float:
    """A finite number of seconds in (0, most]; ConfigError naming `key` otherwise."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 < value <= most
    ):
        raise ConfigError(file, key, f"must be a number of seconds, 0 < s <= {most}")
    return float(value)


def _parse_smoke(name: str, table: Any, file: str) -> SmokeRun:
    where = f"rollout.smoke.{name}"
    if not name.strip():
        raise ConfigError(file, where, "the workflow name may not be empty")
    if not isinstance(table, dict):
        raise ConfigError(file, where, "must be a table")
    for key in table:
        if key not in _SMOKE_KEYS:
            raise ConfigError(
                file, f"{where}.{key}", f"unknown key (known: {', '.join(_SMOKE_KEYS)})"
            )
    params = table.get("parameters", {})
    if not isinstance(params, dict):
        raise ConfigError(file, f"{where}.parameters", "must be a table")
    reserved = sorted(RESERVED_RUN_KEYS.intersection(params))
    if reserved:
        raise ConfigError(
            file, f"{where}.parameters.{reserved[0]}", "is reserved by Zuora and may not be sent"
        )
    timeout = _seconds(
        table.get("timeout_s", DEFAULT_SMOKE_TIMEOUT), 86_400, file, f"{where}.timeout_s"
    )
    return SmokeRun(name, dict(params), timeout)


def check_smoke_sources(rollout: RolloutConfig, has_name: Any, file: str) -> None:
    """Refuse a smoke workflow no source contains (`has_name(name) -> bool`), before any request."""
    for name in rollout.smoke:
        if not has_name(name):
            raise ConfigError(
                file, f"rollout.smoke.{name}", "no source contains a workflow of that name"
            )


def wave_number(rollout: RolloutConfig, tenant: str) -> int:
    """The first wave whose names or patterns match the tenant; unmatched: one after the last."""
    for i, wave in enumerate(rollout.waves, start=1):
        if any(fnmatch.fnmatchcase(tenant, p) for p in wave):
            return i
    return len(rollout.waves) + 1


def assign_waves(
    rollout: RolloutConfig, tenants: Iterable[str], *, keep_empty: bool = False
) -> list[Wave]:
    """The selected tenants in waves, in wave order; waves with no selected tenant left out
    (kept with `keep_empty`: a shard that waits for the others records every wave)."""
    by_wave: dict[int, list[str]] = {}
    if keep_empty:
        by_wave = {n: [] for n in range(1, len(rollout.waves) + 2)}
    for tenant in tenants:
        by_wave.setdefault(wave_number(rollout, tenant), []).append(tenant)
    out = []
    for number in sorted(by_wave):
        patterns = rollout.waves[number - 1] if number <= len(rollout.waves) else ()
        out.append(Wave(number, tuple(sorted(by_wave[number])), patterns))
    return out


@dataclass(frozen=True, slots=True)
class WaveVerdict:
    """How a wave ended: the tenants that failed it (tenant → why) and whether it halts."""

    wave: Wave
    failed: Mapping[str, str]
    tolerance: int

    @property
    def halted(self) -> bool:
        return len(self.failed) > self.tolerance

    def reason(self) -> str:
        n = len(self.failed)
        head = (
            f"{self.wave.label} halted the rollout: {n} of {len(self.wave.tenants)} tenant(s) "
            f"failed (failure_tolerance {self.tolerance})"
        )
        return head + "".join(f"; {t}: {why}" for t, why in sorted(self.failed.items()))

    def held_reason(self) -> str:
        """What a later wave's items say: not sent, and which wave halted."""
        n = len(self.failed)
        return (
            f"not sent: wave {self.wave.number} halted the rollout ({n} of "
            f"{len(self.wave.tenants)} tenant(s) failed, failure_tolerance {self.tolerance}); "
            "fix the cause and run the same command again to resume"
        )


def tenant_failure(
    counts: Mapping[str, int],
    *,
    unverified: bool = False,
    smoke_failures: Sequence[str] = (),
) -> str | None:
    """Why a tenant failed its wave (None: it passed): an item failed, blocked or not done, a
    `--verify` difference, a failed smoke run."""
    parts = [f"{counts[s]} {s}" for s in ("failed", "blocked", "deferred") if counts.get(s)]
    if unverified:
        parts.append("--verify found a difference")
    parts.extend(f"smoke run {s}" for s in smoke_failures)
    return ", ".join(parts) if parts else None


# ---- smoke runs: which are due -------------------------------------------------------------


class SmokeLedger:
    """Folds the journal's `activating` and `smoke` records: a smoke run of NAME in a tenant is due
    when NAME was switched on there after the last smoke run of it that passed."""

    def __init__(self) -> None:
        self._activated: dict[tuple[str, str], tuple[int, int | None]] = {}  # → (seq, def id)
        self._passed: dict[tuple[str, str], int] = {}

    def note(self, type: str, seq: int, fields: Mapping[str, Any]) -> None:
        tenant, name = fields.get("tenant"), fields.get("name")
        if not isinstance(tenant, str) or not isinstance(name, str):
            return
        if type == "activating":
            def_id = fields.get("definition_id")
            earlier = self._activated.get((tenant, name))
            if def_id is None and earlier is not None:
                def_id = earlier[1]
            self._activated[(tenant, name)] = (seq, def_id if isinstance(def_id, int) else None)
        elif type == "committed" and (tenant, name) in self._activated:
            # A create's activating record cannot know the new definition's id: its commit does.
            seq0, def_id = self._activated[(tenant, name)]
            if def_id is None and isinstance(fields.get("target_definition_id"), int):
                self._activated[(tenant, name)] = (seq0, fields["target_definition_id"])
        elif type == "smoke" and fields.get("ok") is True:
            self._passed[(tenant, name)] = seq

    def due(self, tenant: str, workflows: Iterable[str]) -> list[tuple[str, int | None]]:
        """(name, definition id) of each smoke workflow switched on in the tenant since it last
        passed; the id is None when the journal does not know it (the run looks it up)."""
        out = []
        for name in sorted(workflows):
            activated = self._activated.get((tenant, name))
            if activated is None:
                continue
            if self._passed.get((tenant, name), 0) < activated[0]:
                out.append((name, activated[1]))
        return out


def judge_run(status: str, tasks: Mapping[str, Any]) -> tuple[bool | None, str]:
    """A polled run (§3.11): (True, _) passed, (False, why) failed, (None, _) still going."""
    errors = tasks.get("error") if isinstance(tasks, Mapping) else None
    if isinstance(errors, int) and errors > 0:
        return False, f"{errors} task(s) ended in error"
    if status == "Finished":
        return True, "finished with no error task"
    if status in ("Stopped", "Stopping"):
        return False, f"the run was {status.lower()}"
    return None, status


def peer_verdict(
    peers: Mapping[int, Mapping[int, str]], me: int, count: int, wave: int
) -> tuple[bool, str | None]:
    """May this shard start `wave`? From each shard's latest run, wave → step ("started",
    "passed", "halted", "held"): (True, None) every other shard passed the wave before; (False,
    why) one halted or held an earlier wave; (False, None) keep waiting."""
    waiting = False
    for shard in range(1, count + 1):
        if shard == me:
            continue
        steps = peers.get(shard, {})
        for number in sorted(steps):
            if number < wave and steps[number] in ("halted", "held"):
                return False, f"shard {shard}/{count} {steps[number]} wave {number}"
        if steps.get(wave - 1) != "passed":
            waiting = True
    return (False, None) if waiting else (True, None)


def peer_wave_verdict(
    peers: Mapping[int, Mapping[int, str]], me: int, count: int, wave: int
) -> tuple[bool, str | None]:
    """Did every other shard judge `wave` too? (True, None) all passed or held it; (True, why)
    one halted it (this shard rolls its own tenants of the wave back, docs/rollout.md#shards);
    (False, None) keep waiting."""
    waiting = False
    for shard in range(1, count + 1):
        if shard == me:
            continue
        step = peers.get(shard, {}).get(wave)
        if step == "halted":
            return True, f"shard {shard}/{count} halted wave {wave}"
        if step not in ("passed", "held"):
            waiting = True
    return (False, None) if waiting else (True, None)
