"""Offload sessions and their per-file journal: what a re-run after a crash resumes from
(invariant 3). A plan is journaled before any byte is written, so a re-run knows every temp
name the session may have created."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from camdock.catalog.db import Row, pk, rows, rows_as, write_txn
from camdock.clock import utcnow

__all__ = [
    "Running",
    "Uncleared",
    "begin",
    "confirm_clear",
    "finish",
    "journal",
    "journal_plan",
    "mark_interrupted",
    "planned_temps",
    "running",
    "unconfirmed_clears",
]


@dataclass(frozen=True)
class Running(Row):
    """A session recorded as running: alive, or killed mid-way (its lock tells which)."""

    id: int
    uid: str


@dataclass(frozen=True)
class Uncleared(Row):
    """A camera file an interrupted session catalogued and was told to clear, not recorded as
    cleared."""

    id: int
    source_relpath: bytes
    recording_id: int


def begin(db: Database, session: dict[str, Any]) -> int:
    """Insert a running session (inside the caller's transaction); returns its id."""
    row = {**session, "started_at": utcnow(), "status": "running"}
    return pk(db.table("offload_sessions").insert(row).last_pk)


def journal_plan(db: Database, session_id: int, entries: list[dict[str, Any]]) -> None:
    """Journal the planned files of a session, each with the temp paths it may create."""
    now = utcnow()
    with write_txn(db):
        db.table("offload_files").insert_all(
            {**e, "session_id": session_id, "state": "planned", "updated_at": now} for e in entries
        )


def journal(
    db: Database, session_id: int, seq: int, state: str, *, txn: bool = True, **extra: Any
) -> None:
    """Move one journaled file to ``state`` (with the columns in ``extra``)."""
    values = {"state": state, "updated_at": utcnow(), **extra}
    # Column names come from this module's callers' keyword arguments, never from input.
    sql = "UPDATE offload_files SET " + ", ".join(f"{k} = ?" for k in values)  # noqa: S608
    sql += " WHERE session_id = ? AND seq = ?"
    params = [*values.values(), session_id, seq]
    if txn:
        with write_txn(db):
            db.execute(sql, params)
    else:
        db.execute(sql, params)


def finish(db: Database, session_id: int, status: str, counts: dict[str, int]) -> None:
    """End a session (inside the caller's transaction): files that never reached the finisher
    are marked, the counts and the status written."""
    db.execute(
        "UPDATE offload_files SET state = ?, updated_at = ? "
        "WHERE session_id = ? AND state = 'planned'",
        ("cancelled" if status == "interrupted" else "failed", utcnow(), session_id),
    )
    db.table("offload_sessions").update(
        session_id, {"ended_at": utcnow(), "status": status, **counts}
    )


def running(db: Database) -> list[Running]:
    """Sessions recorded as running (alive, or killed mid-way)."""
    return rows_as(Running, db, "SELECT id, uid FROM offload_sessions WHERE status = 'running'")


def planned_temps(db: Database, session_id: int) -> list[str]:
    """The temp-path lists (JSON) of a session's files still planned."""
    return [
        r["temp_paths"] or "[]"
        for r in rows(
            db,
            "SELECT temp_paths FROM offload_files WHERE session_id = ? AND state = 'planned'",
            (session_id,),
        )
    ]


def mark_interrupted(db: Database, session_id: int) -> None:
    """A dead session: its planned files are abandoned, the session interrupted."""
    with write_txn(db):
        db.execute(
            "UPDATE offload_files SET state = 'abandoned', updated_at = ? "
            "WHERE session_id = ? AND state = 'planned'",
            (utcnow(), session_id),
        )
        db.execute(
            "UPDATE offload_sessions SET status = 'interrupted', ended_at = ? WHERE id = ?",
            (utcnow(), session_id),
        )


def unconfirmed_clears(db: Database, camera_id: str) -> list[Uncleared]:
    """Files an interrupted session catalogued and was told to clear, not recorded as cleared."""
    return rows_as(
        Uncleared,
        db,
        "SELECT f.id, f.source_relpath, f.recording_id FROM offload_files f "
        "JOIN offload_sessions s ON s.id = f.session_id "
        "JOIN recordings r ON r.id = f.recording_id "
        "WHERE s.camera_id = ? AND s.status = 'interrupted' AND s.clear_requested = 1 "
        "AND f.state = 'catalogued' AND r.cleared_at IS NULL",
        (camera_id,),
    )


def confirm_clear(db: Database, file_id: int, recording_id: int, now: str) -> None:
    """Record, inside the caller's transaction, that a camera file is gone after all."""
    db.execute(
        "UPDATE recordings SET cleared_at = ? WHERE id = ? AND cleared_at IS NULL",
        (now, recording_id),
    )
    db.table("offload_files").update(
        file_id, {"state": "cleared", "error": "deletion confirmed on re-run", "updated_at": now}
    )
