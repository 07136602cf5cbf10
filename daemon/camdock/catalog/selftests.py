"""REG-3.2's records: every pre-shift function test, the duty-log entries for failures, and the
spares lent to officers (whose footage is filed under the borrower until returned)."""

from __future__ import annotations

import json
from typing import Any

from sqlite_utils import Database

from camdock.catalog.db import one, pk, rows
from camdock.clock import utcnow

__all__ = [
    "add_duty_log",
    "add_loan",
    "add_selftest",
    "history",
    "last_drift",
    "last_selftest",
    "open_loan",
    "return_loan",
]


def add_selftest(db: Database, row: dict[str, Any]) -> int:
    """Record a function test (inside the caller's transaction); returns its id."""
    return pk(db.table("selftests").insert({"time": utcnow(), **row}).last_pk)


def add_duty_log(db: Database, row: dict[str, Any]) -> None:
    """A duty-log entry (員警工作紀錄簿), inside the caller's transaction."""
    db.table("duty_log").insert({"time": utcnow(), **row})


def add_loan(db: Database, spare_camera_id: str, badge: str, name: str, duty_slot: str) -> None:
    """A spare lent to an officer, inside the caller's transaction."""
    db.table("loans").insert(
        {
            "time": utcnow(),
            "spare_camera_id": spare_camera_id,
            "officer_badge": badge,
            "officer_name": name,
            "duty_slot": duty_slot,
        }
    )


def last_selftest(db: Database, camera_id: str) -> dict[str, Any] | None:
    """The camera's latest function test: passed, battery and time."""
    return one(
        db,
        "SELECT passed, battery, time FROM selftests WHERE camera_id = ? ORDER BY id DESC LIMIT 1",
        (camera_id,),
    )


def open_loan(db: Database, spare_camera_id: str) -> dict[str, Any] | None:
    """The borrower of a spare not yet returned, if any."""
    return one(
        db,
        "SELECT officer_badge, officer_name FROM loans WHERE "
        "spare_camera_id = ? AND returned_at IS NULL ORDER BY id DESC LIMIT 1",
        (spare_camera_id,),
    )


def return_loan(db: Database, spare_camera_id: str) -> None:
    """The spare's footage is offloaded: its loan ends (inside the caller's transaction)."""
    db.execute(
        "UPDATE loans SET returned_at = ? WHERE spare_camera_id = ? AND returned_at IS NULL",
        (utcnow(), spare_camera_id),
    )


def last_drift(db: Database, camera_id: str) -> float | None:
    """How far off the camera's clock was (seconds) before its last pre-shift sync, if known."""
    row = one(
        db,
        "SELECT drift_before FROM selftests WHERE camera_id = ? AND drift_before IS NOT NULL "
        "ORDER BY id DESC LIMIT 1",
        (camera_id,),
    )
    return float(row["drift_before"]) if row else None


def history(
    db: Database, start: str, end: str, limit: int = 1000
) -> dict[str, list[dict[str, Any]]]:
    """The pre-shift tests and the duty-log entries between ``start`` and ``end`` (UTC ISO),
    newest first: what the console's duty-log page shows (REG-3.2)."""
    tests = rows(db, "SELECT id, time, bay, camera_id, officer_badge, officer_name, passed, "
                 "checks, drift_before, drift_after, battery FROM selftests WHERE time >= ? AND "
                 "time <= ? ORDER BY time DESC, id DESC LIMIT ?", (start, end, limit))  # fmt: skip
    entries = rows(db, "SELECT time, officer_badge, officer_name, camera_id, entry, "
                   "spare_camera_id, selftest_id FROM duty_log WHERE time >= ? AND time <= ? "
                   "ORDER BY time DESC, id DESC LIMIT ?", (start, end, limit))  # fmt: skip
    for t in tests:
        t["failed"] = [
            c.get("name") for c in json.loads(t.pop("checks") or "[]") if not c.get("ok")
        ]
    return {"tests": tests, "entries": entries}
