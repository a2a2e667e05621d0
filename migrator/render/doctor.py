"""`migrator doctor` for people: the checks, the per-command verdicts, the learned profile and the
verdict line. Pure: a doctor's result in, printable lines out (escaping built in)."""

from __future__ import annotations

from typing import Protocol

from migrator.core.capabilities import NOT_USABLE, CommandVerdict
from migrator.core.config import TenantConfig
from migrator.core.doctor import Check, render_lines
from migrator.core.profile import TenantProfile
from migrator.render.outcomes import human_lines


class DoctorOutcome(Protocol):
    """What run/doctor.DoctorResult gives the renderer."""

    @property
    def checks(self) -> list[Check]: ...
    @property
    def profile(self) -> TenantProfile: ...
    @property
    def commands(self) -> list[CommandVerdict]: ...
    @property
    def reliable(self) -> bool: ...


def render_doctor(
    result: DoctorOutcome, tenant: TenantConfig, *, saved: str | None, save: bool
) -> str:
    """The doctor's answer: checks, commands, profile, whether it was saved, the verdict."""
    lines = [f"doctor {tenant.name} ({tenant.base_url})", *render_lines(result.checks)]
    if result.commands:
        lines.append("commands:")
        lines += [f"  {verdict.line()}" for verdict in result.commands]
    lines.append("profile:")
    for key, value in result.profile.to_json().items():
        if key != "format":
            lines.append(f"  {key}: {'not learned' if value is None else value}")
    if saved is not None:
        lines.append(f"profile saved to {saved}")
    elif save:
        lines.append("profile not saved: a check failed")
    lines.append(f"migrator doctor: {doctor_verdict(result)}")
    return human_lines(lines)


def doctor_verdict(result: DoctorOutcome) -> str:
    """`usable`, or why not: a check failed, or the commands that cannot work there."""
    if not result.reliable:
        return "not usable: a check failed"
    broken = [v.command for v in result.commands if v.verdict == NOT_USABLE]
    if broken:
        return "not usable for " + ", ".join(broken)
    return "usable"
