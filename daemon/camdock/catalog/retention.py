"""What the daily retention pass reads (REG-4.3.1), and destruction's two writes: the plan
before any copy is removed, the tombstone after every copy is gone. The pass reads live
recordings through partial indexes on their dates (schema m007), never the whole catalog."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from sqlite_utils import Database

from camdock.catalog import custody, rowchain
from camdock.catalog.custody import Action
from camdock.catalog.db import one, pk, rows, write_txn
from camdock.catalog.outbox import record
from camdock.clock import utcnow
from camdock.core.retention import Candidate
from camdock.errors import Conflict
from camdock.events import EventType, Topics

__all__ = [
    "abandon",
    "alarm",
    "candidate",
    "counts",
    "due",
    "fate",
    "known",
    "live_in_scope",
    "pending",
    "plan_destruction",
    "record_destroyed",
]

# The columns retention reads: a constant, never input (hence the noqa on the queries).
_COLUMNS = ("id, retain_until, destroy_by, camera_id, officer_badge, recorded_start, "
            "duty_slot_start, relpath, recorded_end, time_suspect")  # fmt: skip


def _candidate(r: dict[str, Any]) -> Candidate:
    times = tuple(datetime.fromisoformat(t) for t in (r["recorded_start"], r["duty_slot_start"])
                  if t)  # fmt: skip
    span = None
    if r["recorded_start"]:
        first = datetime.fromisoformat(r["recorded_start"])
        span = (first, datetime.fromisoformat(r["recorded_end"]) if r["recorded_end"] else first)
    return Candidate(r["id"], date.fromisoformat(r["retain_until"]),
                     date.fromisoformat(r["destroy_by"]), r["camera_id"], r["officer_badge"],
                     times, r["relpath"], span, bool(r["time_suspect"]))  # fmt: skip


def live_in_scope(db: Database, camera: str | None, officer: str | None) -> list[Candidate]:
    """Live recordings of a camera and/or an officer (what a range hold may cover now)."""
    sql = f"SELECT {_COLUMNS} FROM recordings WHERE destroyed_at IS NULL"  # noqa: S608
    params: list[str] = []
    for column, value in (("camera_id", camera), ("officer_badge", officer)):
        if value is not None:
            sql += f" AND {column} = ?"  # a constant column name
            params.append(value)
    return [_candidate(r) for r in rows(db, sql, params)]


def known(db: Database, *, camera: str | None = None, officer: str | None = None) -> bool:
    """Whether the catalog has ever filed footage of this camera (agency id) or officer."""
    column, value = ("camera_id", camera) if camera is not None else ("officer_badge", officer)
    sql = f"SELECT 1 FROM recordings WHERE {column} = ? LIMIT 1"  # noqa: S608 - a constant
    return db.execute(sql, (value,)).fetchone() is not None


def due(db: Database, today: date) -> list[Candidate]:
    """Live recordings whose destruction date is today or past, oldest first."""
    sql = f"SELECT {_COLUMNS} FROM recordings WHERE destroyed_at IS NULL AND destroy_by <= ? "  # noqa: S608
    found = rows(db, sql + "ORDER BY destroy_by, id", (today.isoformat(),))
    return [_candidate(r) for r in found]


def candidate(db: Database, recording_id: int) -> Candidate | None:
    """One live recording as retention judges it (None: unknown or destroyed)."""
    sql = f"SELECT {_COLUMNS} FROM recordings WHERE id = ? AND destroyed_at IS NULL"  # noqa: S608
    r = one(db, sql, (recording_id,))
    return _candidate(r) if r else None


def counts(db: Database, today: date) -> tuple[int, int, int]:
    """(destroyable, becoming destroyable today, live): from the partial index, no scan."""
    day = today.isoformat()
    q = "SELECT count(*) FROM recordings WHERE destroyed_at IS NULL"
    destroyable = db.execute(f"{q} AND retain_until <= ?", (day,)).fetchone()[0]
    today_n = db.execute(f"{q} AND retain_until = ?", (day,)).fetchone()[0]
    live = db.execute(q).fetchone()[0]
    return int(destroyable), int(today_n), int(live)


def plan_destruction(db: Database, recording_id: int, actor: str, authority: str, reason: str,
                     guard: Callable[[], None] | None = None) -> int:  # fmt: skip
    """Journal a destruction before any copy is removed (its own transaction). The
    compare-and-set: a recording already destroyed, or with a destruction planned by someone
    else, is a ``Conflict`` naming who and when; ``guard`` checks the rules (a hold placed a
    moment ago) inside the same transaction, raising to refuse."""
    with write_txn(db):
        if (first := fate(db, recording_id)) is not None:
            raise Conflict(f"recording {recording_id} is already {first[0]}", *first[1:])
        if guard is not None:
            guard()
        rowchain.require_chained(db, recording_id)  # never on a forged date or path (issue 26)
        row = {"recording_id": recording_id, "state": "planned", "actor": actor,
               "authority": authority, "reason": reason, "planned_at": utcnow()}  # fmt: skip
        return pk(db.table("destructions").insert(row).last_pk)


def fate(db: Database, recording_id: int) -> tuple[str, str, str] | None:
    """("destroyed" | "being destroyed", by whom, since when) for a recording destroyed or with a
    destruction under way; None for one live and untouched (or unknown)."""
    gone = one(db, "SELECT destroyed_by, destroyed_at FROM recordings WHERE id = ? AND "
               "destroyed_at IS NOT NULL", (recording_id,))  # fmt: skip
    if gone is not None:
        return "destroyed", gone["destroyed_by"], gone["destroyed_at"]
    going = one(db, "SELECT actor, planned_at FROM destructions WHERE recording_id = ? AND "
                "state = 'planned' ORDER BY id LIMIT 1", (recording_id,))  # fmt: skip
    if going is not None:
        return "being destroyed", going["actor"], going["planned_at"]
    return None


def pending(db: Database) -> list[dict[str, Any]]:
    """Destructions a crash interrupted, with the recording's hash, size and copies."""
    found = rows(db, "SELECT d.*, r.sha256, r.size, r.relpath FROM destructions d "
                 "JOIN recordings r ON r.id = d.recording_id WHERE d.state = 'planned' "
                 "ORDER BY d.id")  # fmt: skip
    for d in found:
        d["copies"] = rows(db, "SELECT destination, relpath FROM copies WHERE recording_id = ?",
                           (d["recording_id"],))  # fmt: skip
    return found


def abandon(db: Database, destruction_id: int) -> None:
    """A planned destruction that removed nothing and is no longer allowed."""
    with write_txn(db):
        db.execute("UPDATE destructions SET state = 'abandoned', done_at = ? WHERE id = ?",
                   (utcnow(), destruction_id))  # fmt: skip


def record_destroyed(
    db: Database,
    destruction: dict[str, Any],
    removed: list[dict[str, Any]],
    topics: Topics | None,
) -> None:
    """Every copy is gone: the tombstone (the row keeps hash, size, who, when, why), the copies'
    rows, the custody entry (REG-4.3.1, REG-7.1) and the event, in one transaction."""
    now = utcnow()
    rec_id, actor = destruction["recording_id"], destruction["actor"]
    details = {
        "sha256": destruction["sha256"],
        "size": destruction["size"],
        "path": destruction["relpath"],
        "authority": destruction["authority"],
        "reason": destruction["reason"],
        "copies": removed,
    }
    with write_txn(db):
        # The compare-and-set: only a planned destruction finishes, once (two processes may
        # finish the same interrupted one).
        if not db.execute("UPDATE destructions SET state = 'done', done_at = ? WHERE id = ? "
                          "AND state = 'planned'", (now, destruction["id"])).rowcount:  # fmt: skip
            first = fate(db, rec_id) or ("finished", None, None)
            raise Conflict(f"recording {rec_id} is already {first[0]}", *first[1:])
        db.execute(
            "UPDATE recordings SET destroyed_at = ?, destroyed_by = ?, destroy_reason = ? "
            "WHERE id = ? AND destroyed_at IS NULL",
            (now, actor, destruction["reason"], rec_id),
        )
        db.execute("DELETE FROM copies WHERE recording_id = ?", (rec_id,))
        custody.append(db, Action.DESTROY, rec_id, actor, details)
        if topics is not None:
            record(db, topics, EventType.RECORDING_DESTROYED,
                   data={"recording": rec_id, "by": actor, **details})  # fmt: skip


def alarm(db: Database, topics: Topics | None, kind: EventType, data: dict[str, Any]) -> None:
    """Record a retention alarm or backup event on its own (the outbox keeps it)."""
    if topics is None:
        return
    with write_txn(db):
        record(db, topics, kind, data=json.loads(json.dumps(data, default=str)))
