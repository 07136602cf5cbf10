"""Holds (REG-4.3.1): footage kept past its window for an investigation, a third party's rights,
a complaint or an open request. Placing and releasing a hold is a custody entry and an event in
the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlite_utils import Database

from camdock.catalog import custody
from camdock.catalog.custody import Action
from camdock.catalog.db import Row, one, one_as, pk, rows_as, write_txn
from camdock.catalog.outbox import record
from camdock.clock import utcnow
from camdock.core.retention import Hold, HoldKind
from camdock.errors import CamdockError, Conflict, ExitCode, UnknownRecording
from camdock.events import EventType, Topics

__all__ = ["PlacedHold", "active", "get", "listing", "place", "release"]

SCOPE = ("recording_id", "officer_badge", "camera_id", "range_start", "range_end")
# The same hold in force: kind, case and scope (SCOPE's columns, in order).
_SAME = ("SELECT * FROM holds WHERE released_at IS NULL AND kind = ? AND case_ref = ? AND "
         "recording_id IS ? AND officer_badge IS ? AND camera_id IS ? AND range_start IS ? "
         "AND range_end IS ?")  # fmt: skip


@dataclass(frozen=True)
class PlacedHold(Row):
    """A hold's row (REG-4.3.1): its kind, case, scope, and who placed and released it."""

    id: int
    kind: HoldKind
    case_ref: str  # the case or reference number
    reason: str
    recording_id: int | None  # the scope: one recording, or an officer's and/or camera's
    officer_badge: str | None  # footage over a range
    camera_id: str | None
    range_start: str | None  # ISO 8601 with offset
    range_end: str | None
    review_by: str | None  # YYYY-MM-DD: past it, an alarm
    placed_by: str
    placed_at: str
    released_by: str | None
    released_at: str | None
    release_reason: str | None


def place(db: Database, hold: dict[str, Any], by: str, topics: Topics | None) -> int:
    """Record a hold (kind, case_ref, reason, review_by and a scope); returns its id. The same
    hold (kind, case and scope) already in force is a ``Conflict`` naming who placed it, and a
    recording destroyed meanwhile is unknown: both checked inside the transaction."""
    with write_txn(db):
        rec = hold.get("recording_id")
        if rec is not None and one(db, "SELECT id FROM recordings WHERE id = ? AND "
                                   "destroyed_at IS NULL", (rec,)) is None:  # fmt: skip
            raise UnknownRecording(f"no recording {rec} in the catalog (or destroyed)")
        same = one_as(PlacedHold, db, _SAME, (hold["kind"], hold["case_ref"],
                                               *(hold.get(k) for k in SCOPE)))  # fmt: skip
        if same is not None:
            raise Conflict(f"hold {same.id} (case {same.case_ref}) is already in force, placed",
                           same.placed_by, same.placed_at)  # fmt: skip
        row = {**hold, "placed_by": by, "placed_at": utcnow()}
        hold_id = pk(db.table("holds").insert(row).last_pk)
        details = {"hold": hold_id, **{k: v for k, v in hold.items() if v is not None}}
        custody.append(db, Action.HOLD, rec, by, details)
        if topics is not None:
            record(db, topics, EventType.HOLD_PLACED, data={**details, "by": by})
    return hold_id


def release(db: Database, hold_id: int, by: str, reason: str, topics: Topics | None) -> None:
    """Release a hold in force: compare-and-set on ``released_at IS NULL``, so of two releases
    at once the second is a ``Conflict`` naming who released it and when (nothing written)."""
    with write_txn(db):
        changed = db.execute(
            "UPDATE holds SET released_by = ?, released_at = ?, release_reason = ? "
            "WHERE id = ? AND released_at IS NULL",
            (by, utcnow(), reason, hold_id),
        ).rowcount
        row = one_as(PlacedHold, db, "SELECT * FROM holds WHERE id = ?", (hold_id,))
        if row is None:
            raise CamdockError(f"no hold {hold_id}", ExitCode.NOINPUT)
        if not changed:
            raise Conflict(f"hold {hold_id} is already released", row.released_by,
                           row.released_at)  # fmt: skip
        details = {"hold": hold_id, "case_ref": row.case_ref, "reason": reason}
        custody.append(db, Action.RELEASE, row.recording_id, by, details)
        if topics is not None:
            record(db, topics, EventType.HOLD_RELEASED, data={**details, "by": by})


def get(db: Database, hold_id: int) -> PlacedHold | None:
    """One hold's row."""
    return one_as(PlacedHold, db, "SELECT * FROM holds WHERE id = ?", (hold_id,))


def listing(db: Database, *, released: bool = False) -> list[PlacedHold]:
    """Holds in force (and, with ``released``, the released ones too), oldest first."""
    if released:
        return rows_as(PlacedHold, db, "SELECT * FROM holds ORDER BY id")
    return rows_as(PlacedHold, db, "SELECT * FROM holds WHERE released_at IS NULL ORDER BY id")


def active(db: Database) -> list[Hold]:
    """The holds in force, as the retention core reads them."""
    return [as_hold(r) for r in listing(db)]


def as_hold(r: PlacedHold) -> Hold:
    """A hold row as the core's Hold."""
    return Hold(
        id=r.id,
        kind=r.kind,
        case=r.case_ref,
        reason=r.reason,
        placed_by=r.placed_by,
        recording_id=r.recording_id,
        officer_badge=r.officer_badge,
        camera_id=r.camera_id,
        start=datetime.fromisoformat(r.range_start) if r.range_start else None,
        end=datetime.fromisoformat(r.range_end) if r.range_end else None,
        review_by=date.fromisoformat(r.review_by) if r.review_by else None,
    )
