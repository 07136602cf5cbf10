"""The dated assignment history (REG-4.2.4): each roster's camera → officer from its duty day
on, and the loans of spares, as the attribution of a recording needs them."""

from __future__ import annotations

from datetime import date, datetime

from sqlite_utils import Database

from camdock.catalog.db import rows
from camdock.clock import utcnow
from camdock.core.attribution import Assignment, Loan, Source
from camdock.model import Officer

__all__ = ["history", "loans", "record_roster"]


def record_roster(db: Database, duty_day: str, assignments: dict[str, Officer]) -> None:
    """Keep a roster's assignments (inside the caller's transaction); a corrected roster for the
    same duty day replaces that day's."""
    now = utcnow()
    for camera_id, officer in assignments.items():
        db.execute(
            "INSERT INTO assignments (camera_id, valid_from, officer_badge, officer_name, unit, "
            "received_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (camera_id, valid_from) DO UPDATE "
            "SET officer_badge = excluded.officer_badge, officer_name = excluded.officer_name, "
            "unit = excluded.unit, received_at = excluded.received_at",
            (camera_id, duty_day, officer.badge, officer.name, officer.unit, now),
        )


def history(db: Database, camera_id: str) -> list[Assignment]:
    """Every roster assignment of the camera, oldest first."""
    return [
        Assignment(
            camera_id,
            Officer(r["officer_badge"], r["officer_name"], r["unit"] or ""),
            date.fromisoformat(r["valid_from"]),
            Source.ROSTER,
        )
        for r in rows(
            db,
            "SELECT * FROM assignments WHERE camera_id = ? ORDER BY valid_from",
            (camera_id,),
        )
    ]


def loans(db: Database, camera_id: str, unit: str) -> list[Loan]:
    """Every loan of the spare ``camera_id``, with its start and return."""
    return [
        Loan(
            camera_id,
            Officer(r["officer_badge"], r["officer_name"], unit),
            datetime.fromisoformat(r["time"]),
            datetime.fromisoformat(r["returned_at"]) if r["returned_at"] else None,
        )
        for r in rows(
            db,
            "SELECT officer_badge, officer_name, time, returned_at FROM loans "
            "WHERE spare_camera_id = ? ORDER BY id",
            (camera_id,),
        )
    ]
