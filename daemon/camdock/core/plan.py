"""The offload plan, pure: where each camera file goes and under which temp name it is written.

A file's place follows from its name and mtime alone (REG-4.2.3: the day its duty slot
started decides the folder), so the plan is a function of the camera's listing; the service
journals it before any byte is written, which is what lets a re-run after a crash find every
temp it may have left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from camdock.core.naming import (
    DutySlot,
    DutySlots,
    RecordingTime,
    duty_day_folder,
    recording_time,
)

__all__ = [
    "TEMP_PREFIX",
    "TEMP_SUFFIX",
    "ClockCheck",
    "Placement",
    "is_temp_name",
    "place",
    "suspect_time",
    "temp_name",
]

# Work in progress lives under these names in the final directory (invariant 2): never
# mistaken for a recording, and the only names a recovery ever deletes.
TEMP_PREFIX = ".camdock-"
TEMP_SUFFIX = ".part"


@dataclass(frozen=True)
class ClockCheck:
    """What a camera's recording times must look like to be believed."""

    docked_at: datetime  # when the camera was docked (aware)
    not_before: datetime | None = None  # e.g. when the camera was registered
    # A recording cannot end up after the dock; a small margin for clocks that drift.
    future_tolerance: timedelta = timedelta(minutes=10)
    # Footage older than a year would already be past its destruction date (REG-4.3.1): a
    # camera that says so has a reset clock (1970, 2000, its factory date), not old footage.
    max_age: timedelta = timedelta(days=366)


def suspect_time(start: datetime, check: ClockCheck) -> str | None:
    """Why a recording time cannot be right, or None when it is plausible."""
    if check.not_before is not None and start < check.not_before:
        return f"recorded {start:%Y-%m-%d %H:%M}, before the camera was registered"
    if start > check.docked_at + check.future_tolerance:
        return f"recorded {start:%Y-%m-%d %H:%M}, after the camera was docked"
    if start < check.docked_at - check.max_age:
        return f"recorded {start:%Y-%m-%d %H:%M}, over a year before the camera was docked"
    return None


@dataclass(frozen=True)
class Placement:
    """When a recording was made, its duty slot, and the folder it is filed in."""

    when: RecordingTime
    slot: DutySlot
    suspect: str | None = None  # why the camera's time is not believed (filed by the dock)

    @property
    def dirrel(self) -> tuple[str, str, str]:
        """``(YYYY, MM, DD)`` of the duty day the recording belongs to (REG-4.2.3)."""
        return duty_day_folder(self.slot)


def place(
    name: str, mtime_ns: int, slots: DutySlots, tz: tzinfo, check: ClockCheck | None = None
) -> Placement:
    """Where a camera file called ``name`` with this mtime is filed: by its own duty slot, or,
    when the camera's clock cannot be right, by the duty slot of the dock (its own time kept)."""
    when = recording_time(name, mtime_ns, tz)
    suspect = suspect_time(when.start, check) if check is not None else None
    if suspect is not None and check is not None:
        return Placement(when, slots.slot_of(check.docked_at.astimezone(tz)), suspect)
    return Placement(when, slots.slot_of(when.start), None)


def temp_name(session: str, seq: int) -> str:
    """The temp name of a session's ``seq``-th file, the same in every destination."""
    return f"{TEMP_PREFIX}{session}-{seq:05d}{TEMP_SUFFIX}"


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is one of ours: a recovery deletes nothing else."""
    return name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)
