"""A bay's state machine: pure, one function from (state, event) to the next state.

The station service turns hardware and engine happenings into events, feeds them through
``step`` and acts on the new phase (start an offload, show an LED pattern). Nothing here does
I/O, so every path is tested exhaustively.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class Phase(StrEnum):
    """Where a bay is in its cycle; each phase has one LED pattern."""

    EMPTY = "empty"
    IDENTIFYING = "identifying"  # a registered camera is docked: mounting, planning
    UNKNOWN_DEVICE = "unknown-device"  # USB storage that is not a registered camera (REG-2)
    OFFLOADING = "offloading"
    VERIFYING = "verifying"  # every byte read; read-back and catalogue still running
    DONE = "done"  # every recording verified in every destination and cleared
    FAULT = "fault"  # needs a person: a long press acknowledges
    INTERRUPTED = "interrupted"  # pulled mid-offload; docking again resumes
    TESTING = "testing"  # the pre-shift function test (REG-3.2)
    TEST_PASSED = "test-passed"
    TEST_FAILED = "test-failed"
    TAKE_ME = "take-me"  # a tested spare the officer should take
    # A footage or backup drive is missing (REG-4.2.1): nothing is copied or cleared; the
    # offload starts by itself when the drive is back.
    STORAGE_MISSING = "storage-missing"


class Notice(StrEnum):
    """A short overlay on the LED that answers a button press, then the phase shows again."""

    REFUSED = "refused"  # not now (offload running, nothing docked)
    UNAVAILABLE = "unavailable"  # the function test is not available on this station
    ACKNOWLEDGED = "acknowledged"


BUSY = frozenset({Phase.IDENTIFYING, Phase.OFFLOADING, Phase.VERIFYING, Phase.TESTING})


@dataclass(frozen=True)
class BayState:
    """A bay's whole state, as the LED, the server and the simulator show it."""

    number: int
    phase: Phase = Phase.EMPTY
    docked: bool = False
    serial: str | None = None
    camera_id: str | None = None
    officer: str | None = None
    files_total: int = 0
    files_done: int = 0
    bytes_total: int = 0
    bytes_done: int = 0
    message: str = ""
    notice: Notice | None = None

    @property
    def progress(self) -> float:
        """Bytes done over bytes total, 0.0 to 1.0."""
        return self.bytes_done / self.bytes_total if self.bytes_total else 0.0


# Events --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Docked:
    """A camera (or unknown storage) appeared in the bay."""

    serial: str
    camera_id: str | None  # None: not a registered camera
    officer: str | None = None


@dataclass(frozen=True)
class Undocked:
    """The camera was taken out."""

    pass


@dataclass(frozen=True)
class OffloadStarted:
    """The engine scanned the camera."""

    files: int
    bytes: int


@dataclass(frozen=True)
class CopyProgress:
    """Bytes and files done so far."""

    bytes_done: int
    files_done: int


@dataclass(frozen=True)
class OffloadFinished:
    """The engine finished: everything verified and cleared, or not."""

    ok: bool
    message: str = ""


@dataclass(frozen=True)
class Failed:
    """Something went wrong that a person must look at (mount failed, bay task crashed)."""

    message: str


@dataclass(frozen=True)
class StorageLost:
    """The destination drives cannot be proven: the offload waits (REG-4.2.1)."""

    message: str


@dataclass(frozen=True)
class StorageBack:
    """Every destination drive is proven again."""


@dataclass(frozen=True)
class ShortPress:
    """The bay's button, pressed briefly: the pre-shift test."""

    selftest_available: bool = False


@dataclass(frozen=True)
class LongPress:
    """The bay's button, held: acknowledge a fault."""

    pass


@dataclass(frozen=True)
class TestFinished:
    """The pre-shift function test's verdict (REG-3.2)."""

    passed: bool
    message: str = ""


@dataclass(frozen=True)
class TakeMe:
    """This bay holds the tested spare the station picked for an officer whose camera failed."""

    for_officer: str


Event = (
    Docked
    | Undocked
    | OffloadStarted
    | CopyProgress
    | OffloadFinished
    | Failed
    | ShortPress
    | LongPress
    | TestFinished
    | TakeMe
    | StorageLost
    | StorageBack
)


# One exhaustive match over every event: read as a table of transitions, not split on purpose.
def step(s: BayState, e: Event) -> BayState:
    """The next state of a bay. Events that make no sense in a phase change nothing."""
    s = replace(s, notice=None)
    match e:
        case Docked(serial, camera_id, officer):
            if s.phase in BUSY:
                return s  # the same camera announced twice (partition + disk): idempotent
            phase = Phase.IDENTIFYING if camera_id else Phase.UNKNOWN_DEVICE
            message = "" if camera_id else f"USB device {serial} is not a registered camera"
            if s.phase is Phase.FAULT:
                return replace(s, docked=True, serial=serial, camera_id=camera_id, officer=officer)
            return BayState(s.number, phase, True, serial, camera_id, officer, message=message)
        case Undocked():
            if s.phase in BUSY:
                return replace(
                    s,
                    phase=Phase.INTERRUPTED,
                    docked=False,
                    message="camera removed before the offload finished",
                )
            if s.phase in (Phase.FAULT, Phase.INTERRUPTED):
                return replace(s, docked=False)  # stays visible until acknowledged or re-docked
            return BayState(s.number)
        case OffloadStarted(files, total):
            if s.phase is not Phase.IDENTIFYING:
                return s
            return replace(
                s,
                phase=Phase.OFFLOADING,
                files_total=files,
                bytes_total=total,
                files_done=0,
                bytes_done=0,
            )
        case CopyProgress(done, files_done):
            if s.phase not in (Phase.OFFLOADING, Phase.VERIFYING):
                return s
            reading_done = s.bytes_total > 0 and done >= s.bytes_total
            phase = Phase.VERIFYING if reading_done else Phase.OFFLOADING
            return replace(s, phase=phase, bytes_done=done, files_done=files_done)
        case OffloadFinished(ok, message):
            if s.phase not in BUSY:
                return s
            if ok:
                return replace(
                    s,
                    phase=Phase.DONE,
                    bytes_done=s.bytes_total,
                    files_done=s.files_total,
                    message=message,
                )
            return replace(s, phase=Phase.FAULT, message=message)
        case Failed(message):
            return replace(s, phase=Phase.FAULT, message=message)
        case StorageLost(message):
            if s.phase not in BUSY or s.phase is Phase.TESTING or not s.docked:
                return s
            return replace(
                s,
                phase=Phase.STORAGE_MISSING,
                files_done=0,
                bytes_done=0,
                message=f"{message}; nothing copied, the camera keeps its footage",
            )
        case StorageBack():
            if s.phase is not Phase.STORAGE_MISSING:
                return s
            return replace(s, phase=Phase.IDENTIFYING, message="")
        case ShortPress(available):
            if s.phase in BUSY or not s.docked or s.phase is Phase.UNKNOWN_DEVICE:
                return replace(s, notice=Notice.REFUSED)
            if not available:
                return replace(s, notice=Notice.UNAVAILABLE)
            return replace(s, phase=Phase.TESTING, message="")
        case TestFinished(passed, message):
            if s.phase is not Phase.TESTING:
                return s
            phase = Phase.TEST_PASSED if passed else Phase.TEST_FAILED
            return replace(s, phase=phase, message=message)
        case TakeMe(officer):
            if not s.docked or s.phase in BUSY:
                return s
            return replace(s, phase=Phase.TAKE_ME, message=f"spare for {officer}: take this camera")
        case LongPress():
            if s.phase is Phase.FAULT or (s.phase is Phase.INTERRUPTED and not s.docked):
                if s.docked:
                    return replace(
                        s,
                        phase=Phase.INTERRUPTED,
                        notice=Notice.ACKNOWLEDGED,
                        message="fault acknowledged; re-dock to retry",
                    )
                return BayState(s.number, notice=Notice.ACKNOWLEDGED)
            return replace(s, notice=Notice.REFUSED)
    return s
