"""The background scrub's records (REG-7.2): which copies are due for proving, when each was
proven, and damage found and repaired, each with its custody entry and event."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlite_utils import Database

from camdock.catalog import custody, rowchain
from camdock.catalog.custody import Action
from camdock.catalog.db import Row, rows_as, write_txn
from camdock.catalog.outbox import record
from camdock.clock import utcnow
from camdock.events import EventType, Topics

__all__ = [
    "DueCopy",
    "chain_disagrees",
    "due",
    "proven",
    "record_damage",
    "record_repair",
    "totals",
]


@dataclass(frozen=True)
class DueCopy(Row):
    """A plain copy of a live recording to prove, with the recording's hash and size."""

    recording_id: int
    destination: str  # the destination root
    relpath: str
    proven_at: str | None
    sha256: str  # the recording's, as the catalog has it now
    size: int
    copy_sha256: str  # the copy's row
    chained_sha256: str | None  # what the recording's first 'store' entry of the chain says
    chained_size: int | None

    @property
    def agrees(self) -> bool:
        """The catalog says of this copy what the custody chain says: only then may a copy be
        judged, and repaired, by it (issue 26: never by a column someone may have edited)."""
        return (self.sha256, self.size) == (self.chained_sha256, self.chained_size) and (
            self.copy_sha256 == self.sha256
        )


def chain_disagrees(db: Database, copy: DueCopy) -> str | None:
    """Why the catalog's copy row is not the one the chain last gave it (its drive, path or
    hash edited outside camdock), or None: a copy is repaired only where it agrees."""
    key = json.dumps(
        [copy.recording_id, copy.destination], separators=(",", ":"), ensure_ascii=False
    )
    last = rowchain.last_state(db, "copies", key, follow=False)
    if last is None or last[1] is None:
        return f"its copy on {copy.destination} is not in the custody chain"
    said = last[1]
    for field, here in (("relpath", copy.relpath), ("sha256", copy.copy_sha256)):
        if said.get(field) != here:
            return f"its copy on {copy.destination}: {field} differs from the custody chain"
    return None


def due(db: Database, limit: int) -> list[DueCopy]:
    """The plain copies proven longest ago (live recordings), oldest first. One being
    destroyed is not scrubbed: a copy its destruction removed is not damage, and "repairing" it
    would bring back what is being destroyed (issue 28)."""
    return rows_as(
        DueCopy,
        db,
        "SELECT c.recording_id, c.destination, c.relpath, c.proven_at, r.sha256, r.size, "
        "c.sha256 AS copy_sha256, json_extract(s.details, '$.sha256') AS chained_sha256, "
        "json_extract(s.details, '$.size') AS chained_size FROM copies c JOIN recordings r "
        "ON r.id = c.recording_id LEFT JOIN custody_log s ON s.id = (SELECT min(id) FROM "
        "custody_log WHERE recording_id = c.recording_id AND action = 'store') "
        "WHERE r.destroyed_at IS NULL AND c.plain_removed_at IS NULL AND NOT EXISTS (SELECT 1 "
        "FROM destructions d WHERE d.recording_id = r.id AND d.state = 'planned') "
        "ORDER BY c.proven_at, c.recording_id LIMIT ?",
        (limit,),
    )


def totals(db: Database) -> tuple[int, int]:
    """(plain copies, their bytes): what one scrub cycle covers."""
    r = db.execute(
        "SELECT count(*), coalesce(sum(r.size), 0) FROM copies c JOIN recordings r "
        "ON r.id = c.recording_id WHERE r.destroyed_at IS NULL AND "
        "c.plain_removed_at IS NULL"
    ).fetchone()
    return int(r[0]), int(r[1])


def proven(db: Database, pairs: list[tuple[int, str]]) -> None:
    """These copies were just read back from disk and found intact."""
    now = utcnow()
    with write_txn(db):
        db.conn.executemany(
            "UPDATE copies SET proven_at = ? WHERE recording_id = ? AND destination = ?",
            [(now, r, d) for r, d in pairs],
        )


def record_damage(
    db: Database, copy: DueCopy, what: str, good: list[str], topics: Topics | None
) -> None:
    """A damaged copy (custody entry and a ``copy-damaged`` event, an alarm)."""
    details = {
        "destination": copy.destination,
        "path": copy.relpath,
        "damage": what,
        "good_copies": good,
    }
    with write_txn(db):
        custody.append(db, Action.DAMAGE, copy.recording_id, "camdock scrub", details)
        if topics is not None:
            record(
                db, topics, EventType.COPY_DAMAGED, data={"recording": copy.recording_id, **details}
            )


def record_repair(db: Database, copy: DueCopy, source: str, topics: Topics | None) -> None:
    """A damaged copy replaced from a good one, verified (custody entry and event)."""
    now = utcnow()
    details = {
        "destination": copy.destination,
        "path": copy.relpath,
        "from": source,
        "sha256": copy.sha256,
    }
    with write_txn(db):
        db.execute(
            "UPDATE copies SET proven_at = ?, verified_at = ? WHERE recording_id = ? AND "
            "destination = ?",
            (now, now, copy.recording_id, copy.destination),
        )
        custody.append(db, Action.REPAIR, copy.recording_id, "camdock scrub", details)
        if topics is not None:
            record(
                db,
                topics,
                EventType.COPY_REPAIRED,
                data={"recording": copy.recording_id, **details},
            )
