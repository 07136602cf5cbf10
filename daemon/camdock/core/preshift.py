"""What follows a pre-shift function test (REG-3.2), decided purely from its verdict: the
supervisor's notice, the duty-log entry, the spare and whether it is lent, and which events go
to the station server. The pre-shift service only carries this out."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from camdock.model import Officer

__all__ = ["Outcome", "Result", "Spare", "decide"]


class Result(StrEnum):
    """How the test ended, as far as records go."""

    INTERRUPTED = "interrupted"  # pulled mid-test: the test row only
    PASSED = "passed"
    FAILED = "failed"


@dataclass(frozen=True)
class Spare:
    """A docked spare camera that passed its own test recently."""

    bay: int
    camera_id: str


@dataclass(frozen=True)
class Outcome:
    """The records and guidance a finished test calls for."""

    result: Result
    notice: str | None = None  # to the supervisor (the selftest-failed event)
    duty_log: str | None = None  # the officer's duty-log entry
    spare: Spare | None = None  # the spare to light up
    loan: bool = False  # record the spare as lent to the officer
    take_me_for: str | None = None  # whose name the spare's bay shows


def decide(
    *,
    passed: bool,
    summary: str,
    interrupted: bool,
    bay: int,
    camera_id: str | None,
    officer: Officer | None,
    spare: Spare | None,
) -> Outcome:
    """The outcome of a test at ``bay`` of ``camera_id`` (assigned to ``officer``)."""
    if interrupted:
        return Outcome(Result.INTERRUPTED)
    if passed:
        return Outcome(Result.PASSED)
    who = officer.name if officer else "unassigned officer"
    notice = (
        f"Camera {camera_id} of {who} failed its pre-shift test at bay {bay}: "
        f"{summary}. Report it for repair (REG-3.2)."
    )
    entry = notice + (
        f" Spare {spare.camera_id} (bay {spare.bay}) issued."
        if spare
        else " No tested spare was available."
    )
    if spare and officer is None:
        # Nobody to file the spare's footage under: it keeps its own assignment.
        entry += " No loan recorded: the failed camera has no assigned officer."
    return Outcome(
        Result.FAILED,
        notice=notice,
        duty_log=entry,
        spare=spare,
        loan=spare is not None and officer is not None,
        take_me_for=(officer.name if officer else f"the officer of {camera_id}") if spare else None,
    )
