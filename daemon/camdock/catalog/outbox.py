"""The durable outbox (REG-7.1, invariant 4): events written in the same transaction as the
change they report, and drained in order by the MQTT publisher after the broker's PUBACK."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlite_utils import Database

from camdock import clock
from camdock.catalog import custody
from camdock.catalog.db import Row, rows_as, write_txn
from camdock.clock import iso_utc, utcnow
from camdock.events import EventContext, EventType, Topics, uuid7

__all__ = [
    "BATCH",
    "Pending",
    "in_context",
    "mark_delivered",
    "pending",
    "prune",
    "record",
    "undelivered",
]

BATCH = 200  # outbox rows in flight at once; PUBACKs come back in order
# Whether this process has recorded an event: a command that did wakes the daemon's publisher
# when it ends (cli.py, "wake" on the control socket) instead of leaving the events to its poll.
recorded_here = False


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
    global recorded_here
    recorded_here = True
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
        # The custody chain's head as of this event (invariant 6): the server keeps what it
        # saw, so a chain cut short or rewritten here afterwards no longer matches it.
        "custody": dict(zip(("seq", "hash"), custody.head(db), strict=True)),
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


@dataclass(frozen=True)
class Pending(Row):
    """An event waiting for the broker: its row id (the sequence), topic and JSON payload."""

    id: int
    topic: str
    payload: str


def pending(db: Database, limit: int = BATCH) -> list[Pending]:
    """The oldest undelivered events, in sequence order."""
    return rows_as(
        Pending,
        db,
        "SELECT id, topic, payload FROM outbox WHERE delivered_at IS NULL ORDER BY id LIMIT ?",
        (limit,),
    )


def mark_delivered(db: Database, ids: list[int]) -> None:
    """The broker acknowledged these events."""
    with write_txn(db):
        db.conn.executemany(
            "UPDATE outbox SET delivered_at = ? WHERE id = ?", [(utcnow(), i) for i in ids]
        )


def undelivered(db: Database) -> int:
    """How many events wait for the broker."""
    cur = db.execute("SELECT count(*) FROM outbox WHERE delivered_at IS NULL")
    return int(cur.fetchone()[0])


def prune(db: Database, days: int) -> int:
    """Delete events delivered more than ``days`` ago; returns how many."""
    cutoff = iso_utc(clock.now() - timedelta(days=days))
    with write_txn(db):
        cur = db.execute(
            "DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < ?", (cutoff,)
        )
    return cur.rowcount
