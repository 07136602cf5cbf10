"""Holds (REG-4.3.1): footage kept past its window for an investigation, a third party's rights,
a complaint or an open request. Placing and releasing a hold is a custody entry and an event in
the same transaction."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlite_utils import Database

from camdock.catalog import custody
from camdock.catalog.custody import Action
from camdock.catalog.db import one, pk, rows, write_txn
from camdock.catalog.outbox import record
from camdock.clock import utcnow
from camdock.core.retention import Hold, HoldKind
from camdock.events import EventType, Topics

__all__ = ["active", "get", "listing", "place", "release"]

SCOPE = ("recording_id", "officer_badge", "camera_id", "range_start", "range_end")


def place(db: Database, hold: dict[str, Any], by: str, topics: Topics | None) -> int:
    """Record a hold (kind, case_ref, reason, review_by and a scope); returns its id."""
    with write_txn(db):
        row = {**hold, "placed_by": by, "placed_at": utcnow()}
        hold_id = pk(db.table("holds").insert(row).last_pk)
        details = {"hold": hold_id, **{k: v for k, v in hold.items() if v is not None}}
        custody.append(db, Action.HOLD, hold.get("recording_id"), by, details)
        if topics is not None:
            record(db, topics, EventType.HOLD_PLACED, data={**details, "by": by})
    return hold_id


def release(db: Database, hold_id: int, by: str, reason: str, topics: Topics | None) -> None:
    """Release a hold in force (the caller checked it is one)."""
    with write_txn(db):
        db.execute(
            "UPDATE holds SET released_by = ?, released_at = ?, release_reason = ? "
            "WHERE id = ? AND released_at IS NULL",
            (by, utcnow(), reason, hold_id),
        )
        row = one(db, "SELECT * FROM holds WHERE id = ?", (hold_id,))
        assert row is not None
        details = {"hold": hold_id, "case_ref": row["case_ref"], "reason": reason}
        custody.append(db, Action.RELEASE, row["recording_id"], by, details)
        if topics is not None:
            record(db, topics, EventType.HOLD_RELEASED, data={**details, "by": by})


def get(db: Database, hold_id: int) -> dict[str, Any] | None:
    """One hold's row."""
    return one(db, "SELECT * FROM holds WHERE id = ?", (hold_id,))


def listing(db: Database, *, released: bool = False) -> list[dict[str, Any]]:
    """Holds in force (and, with ``released``, the released ones too), oldest first."""
    if released:
        return rows(db, "SELECT * FROM holds ORDER BY id")
    return rows(db, "SELECT * FROM holds WHERE released_at IS NULL ORDER BY id")


def active(db: Database) -> list[Hold]:
    """The holds in force, as the retention core reads them."""
    return [as_hold(r) for r in listing(db)]


def as_hold(r: dict[str, Any]) -> Hold:
    """A hold row as the core's Hold."""
    return Hold(
        id=r["id"],
        kind=HoldKind(r["kind"]),
        case=r["case_ref"],
        reason=r["reason"],
        placed_by=r["placed_by"],
        recording_id=r["recording_id"],
        officer_badge=r["officer_badge"],
        camera_id=r["camera_id"],
        start=datetime.fromisoformat(r["range_start"]) if r["range_start"] else None,
        end=datetime.fromisoformat(r["range_end"]) if r["range_end"] else None,
        review_by=date.fromisoformat(r["review_by"]) if r["review_by"] else None,
    )
