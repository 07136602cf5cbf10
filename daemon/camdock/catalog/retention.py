"""What the daily retention pass reads (REG-4.3.1), and destruction's two writes: the plan
before any copy is removed, the tombstone after every copy is gone. The pass reads live
recordings through partial indexes on their dates (schema m007), never the whole catalog."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
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
    "CopyPlace",
    "Destroying",
    "Planned",
    "abandon",
    "alarm",
    "candidate",
    "counts",
    "destroying",
    "due",
    "fate",
    "known",
    "live_in_scope",
    "pending",
    "plan_destruction",
    "record_destroyed",
    "runner_lock",
    "stop",
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
        d_id = pk(db.table("destructions").insert(row).last_pk)
        # live → destroying: the intent is chained before the first copy is removed (issue 28)
        copies = rows(db, "SELECT destination, relpath FROM copies WHERE recording_id = ? "
                      "ORDER BY destination", (recording_id,))  # fmt: skip
        custody.append(db, Action.DESTROY_START, recording_id, actor,
                       {"destruction": d_id, "state": "destroying", "authority": authority,
                        "reason": reason, "copies": copies})  # fmt: skip
        return d_id


def runner_lock(db: Database) -> Path:
    """The lock every runner of a destruction takes, beside the catalog (the daemon's threads
    and commands alike): one removes copies while no other abandons or stops it."""
    return Path(db.execute("PRAGMA database_list").fetchone()[2] + ".destroying.lock")


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


@dataclass(frozen=True)
class CopyPlace:
    """Where one copy of a recording is: its drive's root as the catalog names it, and the
    file under it."""

    destination: str
    relpath: str


@dataclass(frozen=True)
class Planned:
    """A destruction planned and not yet done (the recording is "destroying"): who, under
    what authority and why, the recording's hash, size and file, and its copies in the order
    they were made (the footage drive's, then the backup's)."""

    id: int
    recording_id: int
    actor: str
    authority: str
    reason: str
    planned_at: str
    sha256: str
    size: int
    relpath: str
    copies: tuple[CopyPlace, ...]


def pending(db: Database) -> list[Planned]:
    """Destructions a crash (or a stop) left planned, oldest first."""
    found = rows(db, "SELECT d.id, d.recording_id, d.actor, d.authority, d.reason, "
                 "d.planned_at, r.sha256, r.size, r.relpath FROM destructions d "
                 "JOIN recordings r ON r.id = d.recording_id WHERE d.state = 'planned' "
                 "ORDER BY d.id")  # fmt: skip
    out = []
    for d in found:
        copies = rows(db, "SELECT destination, relpath FROM copies WHERE recording_id = ? "
                      "ORDER BY rowid", (d["recording_id"],))  # fmt: skip
        out.append(Planned(**d, copies=tuple(CopyPlace(**c) for c in copies)))
    return out


def abandon(db: Database, destruction_id: int) -> None:
    """A planned destruction that removed nothing and is no longer allowed: destroying → live
    (every copy is still there), on the chain."""
    with write_txn(db):
        found = one(db, "SELECT recording_id FROM destructions WHERE id = ? AND state = "
                    "'planned'", (destruction_id,))  # fmt: skip
        if found is None:  # finished or abandoned by another process meanwhile
            return
        db.execute("UPDATE destructions SET state = 'abandoned', done_at = ? WHERE id = ? "
                   "AND state = 'planned'", (utcnow(), destruction_id))  # fmt: skip
        custody.append(db, Action.DESTROY_STOP, found["recording_id"], "camdock",
                       {"destruction": destruction_id, "state": "live",
                        "reason": "no longer allowed and nothing removed"})  # fmt: skip


def stop(db: Database, destruction_id: int, reason: str, drive: str | None,
         topics: Topics | None) -> None:  # fmt: skip
    """A destruction that could not go on (a drive's error, a hold placed since): it stays
    "destroying" and says why; on the chain, and an alarm the station shows (issue 28)."""
    with write_txn(db):
        found = one(db, "SELECT recording_id, stopped_reason FROM destructions WHERE id = ? "
                    "AND state = 'planned'", (destruction_id,))  # fmt: skip
        if found is None or found["stopped_reason"] == reason:  # said already: once a change
            return
        db.execute("UPDATE destructions SET stopped_reason = ?, stopped_drive = ?, "
                   "stopped_at = ? WHERE id = ?",
                   (reason, drive, utcnow(), destruction_id))  # fmt: skip
        rec_id = found["recording_id"]
        details = {"destruction": destruction_id, "state": "destroying", "reason": reason,
                   "drive": drive}  # fmt: skip
        custody.append(db, Action.DESTROY_STOP, rec_id, "camdock", details)
        if topics is not None:
            record(db, topics, EventType.RETENTION_ALARM, data={
                "alarms": [f"recording {rec_id} is being destroyed and stopped: {reason}"],
                "overdue": [], "held_past_max": [], "review_due": [],
                "destroying": [{"recording": rec_id, "drive": drive,
                                "reason": reason}]})  # fmt: skip


@dataclass(frozen=True)
class Destroying:
    """A recording being destroyed (live → destroying → destroyed), and why it stopped."""

    recording: int
    destruction: int
    actor: str
    since: str
    stopped_reason: str | None
    stopped_drive: str | None

    def as_json(self) -> dict[str, Any]:
        """For ``--json``."""
        return {"recording": self.recording, "state": "destroying",
                "destruction": self.destruction, "by": self.actor, "since": self.since,
                "stopped": self.stopped_reason, "drive": self.stopped_drive}  # fmt: skip

    @property
    def alarm(self) -> str:
        """The alarm a stopped destruction raises every day until handled."""
        return f"recording {self.recording} is being destroyed and stopped: {self.stopped_reason}"


def destroying(db: Database) -> list[Destroying]:
    """Every recording in the state "destroying" (a destruction planned, not finished)."""
    return [Destroying(r["recording_id"], r["id"], r["actor"], r["planned_at"],
                       r["stopped_reason"], r["stopped_drive"])
            for r in rows(db, "SELECT id, recording_id, actor, planned_at, stopped_reason, "
                          "stopped_drive FROM destructions WHERE state = 'planned' "
                          "ORDER BY id")]  # fmt: skip


def record_destroyed(
    db: Database,
    destruction: Planned,
    removed: list[dict[str, Any]],
    topics: Topics | None,
) -> None:
    """Every copy is gone: the tombstone (the row keeps hash, size, who, when, why), the copies'
    rows, the custody entry (REG-4.3.1, REG-7.1) and the event, in one transaction.
    ``removed``: each copy as the custody entry names it (destination, relpath, outcome)."""
    now = utcnow()
    rec_id, actor = destruction.recording_id, destruction.actor
    details = {
        "sha256": destruction.sha256,
        "size": destruction.size,
        "path": destruction.relpath,
        "authority": destruction.authority,
        "reason": destruction.reason,
        "copies": removed,
    }
    with write_txn(db):
        # The compare-and-set: only a planned destruction finishes, once (two processes may
        # finish the same interrupted one).
        if not db.execute("UPDATE destructions SET state = 'done', done_at = ? WHERE id = ? "
                          "AND state = 'planned'", (now, destruction.id)).rowcount:  # fmt: skip
            first = fate(db, rec_id) or ("finished", None, None)
            raise Conflict(f"recording {rec_id} is already {first[0]}", *first[1:])
        db.execute(
            "UPDATE recordings SET destroyed_at = ?, destroyed_by = ?, destroy_reason = ? "
            "WHERE id = ? AND destroyed_at IS NULL",
            (now, actor, destruction.reason, rec_id),
        )
        db.execute("DELETE FROM copies WHERE recording_id = ?", (rec_id,))
        # The register (紀錄清冊) records destruction too (REG-7.1; issue 27).
        db.table("register_acts").insert({"time": now, "kind": "destroy",
                                          "recordings": json.dumps([rec_id]), "actor": actor,
                                          "authority": destruction.authority,
                                          "remarks": destruction.reason})  # fmt: skip
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
