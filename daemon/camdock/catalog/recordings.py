"""Recordings (Annex 1) and their verified copies: the lookups the offload needs, and the two
writes that change a recording's custody — stored, cleared — each in one transaction with its
journal entry, its custody entry and its event."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from sqlite_utils import Database

from camdock.catalog import custody, sessions
from camdock.catalog.custody import Action
from camdock.catalog.db import Row, one, one_as, pk, rows, rows_as, write_txn
from camdock.catalog.outbox import in_context
from camdock.clock import utcnow
from camdock.core.attribution import Source
from camdock.events import EventContext, EventType

__all__ = [
    "Copy",
    "LiveCopy",
    "LiveRef",
    "Recording",
    "Stored",
    "Unattributed",
    "by_content",
    "by_source",
    "copies",
    "get",
    "listing",
    "plain_copy",
    "record_clear",
    "relpath_taken",
    "search",
    "store",
    "unattributed",
]


@dataclass(frozen=True)
class Recording(Row):
    """One recording's catalog row (Annex 1; a tombstone once destroyed, REG-4.3.1)."""

    id: int
    sha256: str
    size: int
    camera_id: str
    officer_name: str | None
    officer_badge: str | None
    unit: str | None
    duty_slot: str  # "0800-1200"
    duty_slot_start: str
    recorded_start: str
    recorded_end: str | None
    time_source: str  # name | mtime
    original_name: str  # for display (odd bytes escaped)
    original_name_raw: bytes  # the exact bytes
    source_mtime_ns: int
    relpath: str  # YYYY/MM/DD/<name>, the same in every destination
    offload_session_id: int | None
    ingested_at: str
    cleared_at: str | None  # REG-4.1.2
    retain_until: str | None
    destroy_by: str | None
    hold: int
    hold_reason: str | None
    destroyed_at: str | None
    destroyed_by: str | None
    attribution: Source | None
    time_suspect: int
    time_note: str | None
    camera_drift: float | None
    destroy_reason: str | None


@dataclass(frozen=True)
class Copy(Row):
    """Where a recording is stored, and when that copy was verified and last proven."""

    recording_id: int
    destination: str  # the destination root
    relpath: str
    sha256: str
    verified_at: str
    plain_removed_at: str | None  # only in its day's seal since (REG-4.2.5)
    proven_at: str | None  # REG-7.2


@dataclass(frozen=True)
class LiveRef(Row):
    """A live recording as a request's selection reads it."""

    id: int
    recorded_start: str
    officer_badge: str | None
    camera_id: str


@dataclass(frozen=True)
class LiveCopy(Row):
    """A copy of a live recording, with the recording's hash and size (the audit's read)."""

    recording_id: int
    destination: str
    relpath: str
    plain_removed_at: str | None
    sha256: str
    size: int


@dataclass(frozen=True)
class Unattributed(Row):
    """A recording no officer is known for, as the custodian's queue shows it (REG-4.2.4)."""

    id: int
    camera_id: str
    recorded_start: str
    duty_slot: str
    relpath: str
    size: int
    sha256: str
    ingested_at: str
    time_suspect: int
    time_note: str | None


def by_source(
    db: Database, camera_id: str, raw: bytes, size: int, mtime_ns: int
) -> Recording | None:
    """The recording this camera file was catalogued as (same path, size and mtime), if any."""
    return one_as(
        Recording,
        db,
        "SELECT * FROM recordings WHERE camera_id = ? AND original_name_raw = ? "
        "AND size = ? AND source_mtime_ns = ?",
        (camera_id, raw, size, mtime_ns),
    )


def by_content(db: Database, camera_id: str, sha256: str) -> Recording | None:
    """The recording with this content from this camera: never catalogued twice."""
    return one_as(
        Recording,
        db,
        "SELECT * FROM recordings WHERE camera_id = ? AND sha256 = ?",
        (camera_id, sha256),
    )


def copies(db: Database, recording_id: int) -> dict[str, Copy]:
    """A recording's verified copies, by destination root."""
    found = rows_as(Copy, db, "SELECT * FROM copies WHERE recording_id = ?", (recording_id,))
    return {c.destination: c for c in found}


def live_of(db: Database, officer: str | None, camera: str | None) -> list[LiveRef]:
    """The live recordings of an officer and/or camera (None: any), oldest first."""
    return rows_as(
        LiveRef,
        db,
        "SELECT id, recorded_start, officer_badge, camera_id FROM recordings WHERE "
        "destroyed_at IS NULL AND (? IS NULL OR officer_badge = ?) AND "
        "(? IS NULL OR camera_id = ?) ORDER BY recorded_start, id",
        (officer, officer, camera, camera),
    )


def destinations(db: Database) -> list[str]:
    """The destination roots the catalog records copies on."""
    found = rows(db, "SELECT DISTINCT destination FROM copies ORDER BY destination")
    return [r["destination"] for r in found]


def live_copies(db: Database) -> list[LiveCopy]:
    """Every copy of a live recording, with the recording's hash and size, drive by drive."""
    return rows_as(
        LiveCopy,
        db,
        "SELECT c.recording_id, c.destination, c.relpath, c.plain_removed_at, r.sha256, r.size "
        "FROM copies c JOIN recordings r ON r.id = c.recording_id WHERE r.destroyed_at IS NULL "
        "ORDER BY c.destination, c.relpath",
    )


def relpath_taken(db: Database, relpath: str) -> bool:
    """Whether a catalogued recording is filed under this name."""
    return one(db, "SELECT id FROM recordings WHERE relpath = ?", (relpath,)) is not None


@dataclass(frozen=True)
class NewRecording:
    """The Annex 1 columns of a new recording as the offload files it (its path, session and
    time of ingest are added by ``store``)."""

    sha256: str
    size: int
    camera_id: str
    officer_name: str | None
    officer_badge: str | None
    unit: str | None
    attribution: str  # core.attribution.Source's value
    time_suspect: int
    time_note: str | None
    camera_drift: float | None
    duty_slot: str
    duty_slot_start: str
    recorded_start: str
    recorded_end: str | None
    time_source: str
    original_name: str
    original_name_raw: bytes
    source_mtime_ns: int
    retain_until: str
    destroy_by: str
    hold: int = 0


@dataclass(frozen=True)
class Stored:
    """One verified file to store: the recording row (when new) and where its copies are."""

    session_id: int
    seq: int
    existing_id: int | None  # the recording it already is, or None for a new row
    recording: NewRecording
    relpath: str
    sha256: str
    new_destinations: tuple[str, ...]  # roots verified in this session
    actor: str
    custody_details: dict[str, Any]
    event: EventContext | None
    event_data: dict[str, Any]


def store(db: Database, s: Stored) -> int:
    """Write a verified recording, its copies, its journal entry, its 'store' custody entry
    (REG-7.1) and its event in one transaction; returns the recording id."""
    now = utcnow()
    with write_txn(db):
        if s.existing_id is not None:
            rec_id = s.existing_id
        else:
            row = {
                **asdict(s.recording),
                "relpath": s.relpath,
                "offload_session_id": s.session_id,
                "ingested_at": now,
            }
            rec_id = pk(db.table("recordings").insert(row).last_pk)
        for dest in s.new_destinations:
            db.table("copies").insert(
                {
                    "recording_id": rec_id,
                    "destination": dest,
                    "relpath": s.relpath,
                    "sha256": s.sha256,
                    "verified_at": now,
                }
            )
        sessions.journal(
            db, s.session_id, s.seq, "catalogued", txn=False, sha256=s.sha256, recording_id=rec_id
        )
        if s.new_destinations:
            custody.append(db, Action.STORE, rec_id, s.actor, s.custody_details)
        in_context(
            db,
            s.event,
            EventType.FILE_VERIFIED,
            **s.event_data,
            recording=rec_id,
            already_catalogued=s.existing_id is not None,
        )
    return rec_id


def record_clear(
    db: Database,
    *,
    session_id: int,
    seq: int,
    recording_id: int,
    actor: str,
    details: dict[str, Any],
    event: EventContext | None,
    event_data: dict[str, Any],
) -> None:
    """REG-4.1.2: the camera's copy is gone; cleared_at, journal, custody and event at once."""
    with write_txn(db):
        db.execute(
            "UPDATE recordings SET cleared_at = ? WHERE id = ? AND cleared_at IS NULL",
            (utcnow(), recording_id),
        )
        sessions.journal(db, session_id, seq, "cleared", txn=False)
        custody.append(db, Action.CLEAR, recording_id, actor, details)
        in_context(db, event, EventType.CAMERA_CLEARED, **event_data, recording=recording_id)


def get(db: Database, recording_id: int) -> Recording | None:
    """One recording's catalog row."""
    return one_as(Recording, db, "SELECT * FROM recordings WHERE id = ?", (recording_id,))


def unattributed(db: Database) -> list[Unattributed]:
    """Recordings no officer is known for, oldest first: the custodian's queue (REG-4.2.4)."""
    return rows_as(
        Unattributed,
        db,
        "SELECT id, camera_id, recorded_start, duty_slot, relpath, size, sha256, ingested_at, "
        "time_suspect, time_note FROM recordings WHERE attribution = 'unattributed' "
        "AND destroyed_at IS NULL ORDER BY recorded_start, id",
    )


def listing(
    db: Database,
    *,
    day: str | None = None,
    officer: str | None = None,
    start: str | None = None,
    end: str | None = None,
) -> list[Recording]:
    """Annex 1 lines: a duty day's recordings (its folder) or an officer's over a range
    (recorded start, ISO), tombstones included."""
    if day is not None:
        low = day.replace("-", "/") + "/"
        return rows_as(
            Recording,
            db,
            "SELECT * FROM recordings WHERE relpath >= ? AND relpath < ? ORDER BY relpath",
            (low, low[:-1] + "0"),
        )
    return rows_as(
        Recording,
        db,
        "SELECT * FROM recordings WHERE officer_badge = ? AND "
        "recorded_start >= ? AND recorded_start <= ? ORDER BY recorded_start, id",
        (officer, start or "", end or "9999"),
    )


def search(
    db: Database, officer: str | None, camera: str | None, day: str | None, limit: int = 500
) -> list[Recording]:
    """The console's catalog search: by officer badge, camera and duty day (each optional),
    newest first, at most ``limit``."""
    if day:
        found = listing(db, day=day)
        return [
            r
            for r in found
            if (officer is None or r.officer_badge == officer)
            and (camera is None or r.camera_id == camera)
        ][:limit]
    return rows_as(
        Recording,
        db,
        "SELECT * FROM recordings WHERE (? IS NULL OR officer_badge "
        "= ?) AND (? IS NULL OR camera_id = ?) ORDER BY id DESC LIMIT ?",
        (officer, officer, camera, camera, limit),
    )


def plain_copy(db: Database, recording_id: int) -> str | None:
    """A copy of the recording still there as a plain file (not only in its day's seal):
    the path under its destination root, or None."""
    for cp in rows(
        db,
        "SELECT destination, relpath FROM copies WHERE recording_id = ? AND "
        "plain_removed_at IS NULL ORDER BY destination",
        (recording_id,),
    ):
        path = Path(cp["destination"], *PurePosixPath(cp["relpath"]).parts)
        if path.is_file():
            return str(path)
    return None
