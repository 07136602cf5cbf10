"""The offload plan, pure: where each camera file goes and under which temp name it is written.

A file's place follows from its name and mtime alone (REG-4.2.3: the day its duty slot
started decides the folder), so the plan is a function of the camera's listing; the service
journals it before any byte is written, which is what lets a re-run after a crash find every
temp it may have left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo

from camdock.core.naming import (
    DutySlot,
    DutySlots,
    RecordingTime,
    duty_day_folder,
    recording_time,
)

__all__ = ["TEMP_PREFIX", "TEMP_SUFFIX", "Placement", "is_temp_name", "place", "temp_name"]

# Work in progress lives under these names in the final directory (invariant 2): never
# mistaken for a recording, and the only names a recovery ever deletes.
TEMP_PREFIX = ".camdock-"
TEMP_SUFFIX = ".part"


@dataclass(frozen=True)
class Placement:
    """When a recording was made, its duty slot, and the folder it is filed in."""

    when: RecordingTime
    slot: DutySlot

    @property
    def dirrel(self) -> tuple[str, str, str]:
        """``(YYYY, MM, DD)`` of the duty day the recording belongs to (REG-4.2.3)."""
        return duty_day_folder(self.slot)


def place(name: str, mtime_ns: int, slots: DutySlots, tz: tzinfo) -> Placement:
    """Where a camera file called ``name`` with this mtime is filed."""
    when = recording_time(name, mtime_ns, tz)
    return Placement(when, slots.slot_of(when.start))


def temp_name(session: str, seq: int) -> str:
    """The temp name of a session's ``seq``-th file, the same in every destination."""
    return f"{TEMP_PREFIX}{session}-{seq:05d}{TEMP_SUFFIX}"


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is one of ours: a recovery deletes nothing else."""
    return name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)
