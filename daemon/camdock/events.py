"""Events for the station server (REG-7.1, invariant 4 of ARCHITECTURE.md).

Every event is a row in the catalog's ``outbox`` table, written in the same SQLite transaction as
the state change it reports (a verified file, a cleared camera, a finished session) or, for
happenings that have no other record (a camera docked, an unknown device, a bay fault), in a
transaction of its own. The MQTT publisher (station/publisher.py) drains the table in order
and marks a row delivered only after the broker's PUBACK, so nothing recorded is lost to a broker
outage or a restart. Each event carries a sortable unique id (UUIDv7) and the station's
sequence number. The outbox writes live in ``catalog/outbox.py``; this module is the vocabulary.

An offload also reports its progress while it runs, as the typed ``Progress`` events below
(frozen dataclasses, handled with ``match``): the engine sends them, the bay consumes them, and
the ones that are committed changes carry the same names as the station server's events.

Topics (``<prefix>`` defaults to ``camdock``; the contract is docs/asyncapi.yaml):
    <prefix>/v1/<station>/status             retained "online" / "offline" (the Last Will)
    <prefix>/v1/<station>/bays/<n>/state     retained, the bay's current state as JSON
    <prefix>/v1/<station>/events/<type>      QoS 1, never retained, one message per event
    <prefix>/v1/<station>/roster             retained, from the server: assignments and slots
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "SCHEMA_VERSION",
    "BytesCopied",
    "EventContext",
    "EventType",
    "FileCleared",
    "FileFailed",
    "FileStarted",
    "FileVerified",
    "Progress",
    "SessionEnded",
    "SessionStarted",
    "Topics",
    "uuid7",
]

SCHEMA_VERSION = "v1"


class EventType(StrEnum):
    """The station server's event types: the last level of ``…/events/<type>``."""

    CAMERA_DOCKED = "camera-docked"
    UNKNOWN_DEVICE = "unknown-device"
    OFFLOAD_STARTED = "offload-started"
    OFFLOAD_PROGRESS = "offload-progress"
    FILE_VERIFIED = "file-verified"
    OFFLOAD_COMPLETED = "offload-completed"
    OFFLOAD_FAILED = "offload-failed"
    CAMERA_CLEARED = "camera-cleared"
    CAMERA_REMOVED = "camera-removed"
    BAY_FAULT = "bay-fault"
    ROSTER_APPLIED = "roster-applied"
    ROSTER_REJECTED = "roster-rejected"
    SELFTEST_PASSED = "selftest-passed"
    SELFTEST_FAILED = "selftest-failed"
    SPARE_ASSIGNED = "spare-assigned"
    STORAGE_MISSING = "storage-missing"
    STORAGE_RESTORED = "storage-restored"
    # Retention (REG-4.3.1, REG-4.3.2)
    HOLD_PLACED = "hold-placed"
    HOLD_RELEASED = "hold-released"
    RECORDING_DESTROYED = "recording-destroyed"
    RETENTION_ALARM = "retention-alarm"
    CATALOG_BACKED_UP = "catalog-backed-up"
    CATALOG_BACKUP_FAILED = "catalog-backup-failed"
    # Destruction only with approval (REG-4.3.1, REG-7.1; issue 27)
    DESTRUCTION_PROPOSED = "destruction-proposed"
    DESTRUCTION_APPROVED = "destruction-approved"
    DESTRUCTION_EXECUTED = "destruction-executed"
    AUTHORISATION_REVOKED = "authorisation-revoked"
    # The daily seal (REG-4.2.5)
    DAY_SEALED = "day-sealed"
    SEAL_CONFIRMED = "seal-confirmed"
    SEAL_ALARM = "seal-alarm"
    # The access/copy workflow (REG-5)
    COPY_DAMAGED = "copy-damaged"
    COPY_REPAIRED = "copy-repaired"
    REQUEST_UPDATED = "request-updated"
    ACCESS_REFUSED = "access-refused"
    # Invariant 6: the chain's head, when no other event has carried it out yet
    CUSTODY_HEAD = "custody-head"


def uuid7() -> str:
    """A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits; sorts by time."""
    ms = time.time_ns() // 1_000_000
    rand_a = int.from_bytes(os.urandom(2), "big") & 0xFFF
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return str(uuid.UUID(int=value))


@dataclass(frozen=True)
class Topics:
    """The station's MQTT topics under ``<prefix>/v1/<station>``."""

    prefix: str
    station: str

    @property
    def base(self) -> str:
        """The station's topic root."""
        return f"{self.prefix}/{SCHEMA_VERSION}/{self.station}"

    @property
    def status(self) -> str:
        """Retained online/offline, the Last Will."""
        return f"{self.base}/status"

    @property
    def alarm(self) -> str:
        """Retained: an alarm that could not go through the outbox (state disk full)."""
        return f"{self.base}/alarm"

    @property
    def roster(self) -> str:
        """Where the station server publishes the roster."""
        return f"{self.base}/roster"

    def bay_state(self, bay: int) -> str:
        """A bay's retained state."""
        return f"{self.base}/bays/{bay}/state"

    def event(self, kind: EventType) -> str:
        """Where events of one type go."""
        return f"{self.base}/events/{kind.value}"


@dataclass(frozen=True)
class EventContext:
    """Who an offload's events are about: the station, the bay, the camera and its officer."""

    topics: Topics
    bay: int | None
    camera: str | None
    officer: dict[str, str] | None


# ---------------------------------------------------------------------------------------------
# An offload's progress, as the engine reports it (on its threads; the station moves each to
# the event loop). Committed changes (verified, cleared) are already in the outbox when sent.


@dataclass(frozen=True)
class SessionStarted:
    """The camera was scanned: this many files and bytes to offload."""

    session: str
    files: int
    bytes: int


@dataclass(frozen=True)
class FileStarted:
    """Reading a file from the camera began."""

    source: str
    size: int


@dataclass(frozen=True)
class BytesCopied:
    """So many bytes of a file are copied (sent a few times a second, not per chunk)."""

    source: str
    done: int


@dataclass(frozen=True)
class FileVerified:
    """A file is verified in every destination and catalogued."""

    source: str
    sha256: str
    path: str


@dataclass(frozen=True)
class FileFailed:
    """A file could not be offloaded; it stays on the camera."""

    source: str
    error: str


@dataclass(frozen=True)
class FileCleared:
    """A verified, catalogued file was deleted from the camera (REG-4.1.2)."""

    source: str


@dataclass(frozen=True)
class SessionEnded:
    """The session is over: completed, failed or interrupted."""

    session: str
    status: str


Progress = (
    SessionStarted | FileStarted | BytesCopied | FileVerified | FileFailed | FileCleared
    | SessionEnded
)  # fmt: skip
