"""The dated assignment history (REG-4.2.4): each roster's camera → officer from its duty day
on, and the loans of spares, as the attribution of a recording needs them."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from sqlite_utils import Database

from camdock.catalog.db import one, rows
from camdock.clock import iso_utc, utcnow
from camdock.core.attribution import Assignment, Loan, Source
from camdock.model import Officer

__all__ = ["granted", "history", "loans", "record_roles", "record_roster"]


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


def record_roles(
    db: Database, duty_day: str, granted: dict[str, tuple[str, str, list[str]]], tz: tzinfo = UTC
) -> None:
    """The latest roster's role grants replace the previous ones (inside the caller's
    transaction): badge → (name, unit, roles). Each lasts the duty day it names, midnight to
    midnight in the station's zone ``tz`` (issue 27: a one-day grant is not for six weeks)."""
    start = datetime.combine(date.fromisoformat(duty_day), time(0), tz)
    end = datetime.combine(date.fromisoformat(duty_day) + timedelta(days=1), time(0), tz)
    db.execute("DELETE FROM roster_roles")
    for badge, (name, unit, roles) in granted.items():
        row = {
            "badge": badge,
            "name": name,
            "unit": unit,
            "roles": json.dumps(sorted(roles)),
            "duty_day": duty_day,
            "received_at": utcnow(),
            "valid_from": iso_utc(start),
            "valid_until": iso_utc(end),
        }
        db.table("roster_roles").insert(row)


def granted(db: Database, badge: str, now: datetime) -> tuple[str, str, list[str]] | None:
    """The roles the latest roster granted ``badge`` for the duty day ``now`` is in: (name,
    unit, roles), or None (none, or the day it named is over or not yet begun)."""
    at = iso_utc(now)
    r = one(
        db,
        "SELECT name, unit, roles FROM roster_roles WHERE badge = ? AND valid_from <= ? "
        "AND ? < valid_until",
        (badge, at, at),
    )
    return (r["name"], r["unit"] or "", json.loads(r["roles"])) if r else None
