"""Events for the station server (REG-7.1, invariant 4 of ARCHITECTURE.md).

Every event is a row in the catalog's ``outbox`` table, written in the same SQLite transaction as
the state change it reports (a verified file, a cleared camera, a finished session) or, for
happenings that have no other record (a camera docked, an unknown device, a bay fault), in a
transaction of its own. The MQTT publisher (adapters/mqtt.py) drains the table in order and marks
a row delivered only after the broker's PUBACK, so nothing recorded is lost to a broker outage or
a restart. Each event carries a sortable unique id (UUIDv7) and the station's sequence number.

Topics (``<prefix>`` defaults to ``camdock``; the contract is docs/asyncapi.yaml):
    <prefix>/v1/<station>/status             retained "online" / "offline" (the Last Will)
    <prefix>/v1/<station>/bays/<n>/state     retained, the bay's current state as JSON
    <prefix>/v1/<station>/events/<type>      QoS 1, never retained, one message per event
    <prefix>/v1/<station>/roster             retained, from the server: assignments and slots
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlite_utils import Database

from camdock.adapters.catalog import utcnow

SCHEMA_VERSION = "v1"


class EventType(StrEnum):
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


def uuid7() -> str:
    """A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits; sorts by time."""
    ms = time.time_ns() // 1_000_000
    rand_a = int.from_bytes(os.urandom(2), "big") & 0xFFF
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return str(uuid.UUID(int=value))


@dataclass(frozen=True)
class Topics:
    prefix: str
    station: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{SCHEMA_VERSION}/{self.station}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def roster(self) -> str:
        return f"{self.base}/roster"

    def bay_state(self, bay: int) -> str:
        return f"{self.base}/bays/{bay}/state"

    def event(self, kind: EventType) -> str:
        return f"{self.base}/events/{kind.value}"


@dataclass(frozen=True)
class EventContext:
    """Who an offload's events are about: the station, the bay, the camera and its officer."""

    topics: Topics
    bay: int | None
    camera: str | None
    officer: dict[str, str] | None


def record(
    db: Database,
    topics: Topics,
    kind: EventType,
    *,
    bay: int | None = None,
    camera: str | None = None,
    officer: dict[str, str] | None = None,
    data: dict[str, Any] | None = None,
) -> str:
    """Insert an event into the outbox, inside the caller's transaction; returns its id.

    The sequence number is the row id, so it is assigned here and written into the payload in
    the same statement pair, still inside the transaction."""
    event_id = uuid7()
    now = utcnow()
    cur = db.execute(
        "INSERT INTO outbox (event_id, type, topic, payload, created_at) VALUES (?, ?, ?, '', ?)",
        (event_id, kind.value, topics.event(kind), now),
    )
    seq = int(cur.lastrowid or 0)
    payload = {
        "id": event_id,
        "seq": seq,
        "type": kind.value,
        "time": now,
        "station": topics.station,
        "bay": bay,
        "camera": camera,
        "officer": officer,
        "data": data or {},
    }
    db.execute(
        "UPDATE outbox SET payload = ? WHERE id = ?",
        (json.dumps(payload, ensure_ascii=False, separators=(",", ":")), seq),
    )
    return event_id


def in_context(db: Database, ctx: EventContext | None, kind: EventType, **data: Any) -> None:
    """Record an offload event when the offload has a station context (the CLI has none)."""
    if ctx is not None:
        record(db, ctx.topics, kind, bay=ctx.bay, camera=ctx.camera, officer=ctx.officer, data=data)
