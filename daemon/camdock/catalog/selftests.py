"""REG-3.2's records: every pre-shift function test, the duty-log entries for failures, and the
spares lent to officers (whose footage is filed under the borrower until returned)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from sqlite_utils import Database

from camdock.catalog.db import Row, one, one_as, pk, rows, rows_as
from camdock.clock import utcnow

__all__ = [
    "DutyEntry",
    "DutyTest",
    "LastTest",
    "Lent",
    "Loan",
    "NewDutyEntry",
    "NewSelfTest",
    "add_duty_log",
    "add_loan",
    "add_selftest",
    "history",
    "last_drift",
    "last_selftest",
    "loans",
    "open_loan",
    "return_loan",
]


@dataclass(frozen=True)
class NewSelfTest:
    """A function test as the bay button records it (REG-3.2)."""

    passed: int  # 1 or 0
    checks: str  # JSON: [{name, ok, value, reason}]
    camera_id: str | None = None  # None: a camera that did not say who it is
    station: str | None = None
    bay: int | None = None
    usb_serial: str | None = None
    officer_badge: str | None = None
    officer_name: str | None = None
    drift_before: float | None = None
    drift_after: float | None = None
    battery: int | None = None


@dataclass(frozen=True)
class NewDutyEntry:
    """A duty-log entry (員警工作紀錄簿): a failed test or offload, in the officer's log."""

    entry: str
    officer_badge: str | None = None
    officer_name: str | None = None
    camera_id: str | None = None
    spare_camera_id: str | None = None
    selftest_id: int | None = None


def add_selftest(db: Database, test: NewSelfTest) -> int:
    """Record a function test (inside the caller's transaction); returns its id."""
    return pk(db.table("selftests").insert({"time": utcnow(), **asdict(test)}).last_pk)


def add_duty_log(db: Database, entry: NewDutyEntry) -> None:
    """A duty-log entry (員警工作紀錄簿), inside the caller's transaction."""
    db.table("duty_log").insert({"time": utcnow(), **asdict(entry)})


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


@dataclass(frozen=True)
class LastTest(Row):
    """A camera's latest function test, as the spare-lending check reads it."""

    passed: int
    battery: int | None
    time: str  # UTC ISO 8601


@dataclass(frozen=True)
class Loan(Row):
    """Who holds a spare camera not yet returned."""

    officer_badge: str
    officer_name: str


@dataclass(frozen=True)
class DutyTest(Row):
    """One pre-shift function test on the duty-log page (REG-3.2); ``failed`` names the checks
    that did not pass."""

    id: int
    time: str
    bay: int | None
    camera_id: str
    officer_badge: str | None
    officer_name: str | None
    passed: int
    drift_before: float | None
    drift_after: float | None
    battery: int | None
    failed: tuple[str, ...]


@dataclass(frozen=True)
class DutyEntry(Row):
    """One duty-log entry (員警工作紀錄簿): a failed test, a spare lent."""

    time: str
    officer_badge: str | None
    officer_name: str | None
    camera_id: str | None
    entry: str
    spare_camera_id: str | None
    selftest_id: int | None


def last_selftest(db: Database, camera_id: str) -> LastTest | None:
    """The camera's latest function test: passed, battery and time."""
    return one_as(
        LastTest,
        db,
        "SELECT passed, battery, time FROM selftests WHERE camera_id = ? ORDER BY id DESC LIMIT 1",
        (camera_id,),
    )


def open_loan(db: Database, spare_camera_id: str) -> Loan | None:
    """The borrower of a spare not yet returned, if any."""
    return one_as(
        Loan,
        db,
        "SELECT officer_badge, officer_name FROM loans WHERE "
        "spare_camera_id = ? AND returned_at IS NULL ORDER BY id DESC LIMIT 1",
        (spare_camera_id,),
    )


@dataclass(frozen=True)
class Lent(Row):
    """A spare lent (returned or not): which, to whom, when."""

    time: str
    spare_camera_id: str
    officer_badge: str
    officer_name: str | None
    returned_at: str | None


def loans(db: Database) -> list[Lent]:
    """Every spare lent, oldest first (``camdock simulate`` tells each bay's story)."""
    return rows_as(Lent, db, "SELECT time, spare_camera_id, officer_badge, officer_name, "
                   "returned_at FROM loans ORDER BY id")  # fmt: skip


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
) -> tuple[list[DutyTest], list[DutyEntry]]:
    """The pre-shift tests and the duty-log entries between ``start`` and ``end`` (UTC ISO),
    newest first: what the console's duty-log page shows (REG-3.2)."""
    tests = rows(
        db,
        "SELECT id, time, bay, camera_id, officer_badge, officer_name, passed, "
        "checks, drift_before, drift_after, battery FROM selftests WHERE time >= ? AND "
        "time <= ? ORDER BY time DESC, id DESC LIMIT ?",
        (start, end, limit),
    )
    entries = rows_as(
        DutyEntry,
        db,
        "SELECT time, officer_badge, officer_name, camera_id, entry, "
        "spare_camera_id, selftest_id FROM duty_log WHERE time >= ? AND time <= ? "
        "ORDER BY time DESC, id DESC LIMIT ?",
        (start, end, limit),
    )
    return [_duty_test(t) for t in tests], entries


@dataclass(frozen=True)
class DutyPage:
    """One page of the period's duty-log entries and of its pre-shift tests (each paged on its
    own, the same page number), with how many there are of each (issue 29)."""

    tests: list[DutyTest]
    entries: list[DutyEntry]
    tests_total: int
    entries_total: int


def duty_page(
    db: Database, start: str, end: str, *, descending: bool, offset: int, limit: int
) -> DutyPage:
    """Rows ``offset`` … ``offset + limit`` of the tests and of the duty-log entries between
    ``start`` and ``end`` (UTC ISO), by time (newest first with ``descending``), and the
    counts: what the console's duty-log page shows (REG-3.2)."""
    order = "DESC" if descending else "ASC"
    period = "WHERE time >= ? AND time <= ?"
    last = f"{period} ORDER BY time {order}, id {order} LIMIT ? OFFSET ?"
    test_cols = ("id, time, bay, camera_id, officer_badge, officer_name, passed, checks, "
                 "drift_before, drift_after, battery")  # fmt: skip
    entry_cols = "time, officer_badge, officer_name, camera_id, entry, spare_camera_id, selftest_id"
    tests = rows(db, f"SELECT {test_cols} FROM selftests {last}", (start, end, limit, offset))  # noqa: S608
    entries = rows_as(DutyEntry, db, f"SELECT {entry_cols} FROM duty_log {last}",  # noqa: S608
                      (start, end, limit, offset))  # fmt: skip
    counts = [
        int(db.execute(f"SELECT count(*) FROM {t} {period}", (start, end)).fetchone()[0])  # noqa: S608
        for t in ("selftests", "duty_log")
    ]
    return DutyPage([_duty_test(t) for t in tests], entries, *counts)


def _duty_test(row: dict[str, Any]) -> DutyTest:
    checks = json.loads(row["checks"] or "[]")
    failed = tuple(str(c.get("name")) for c in checks if not c.get("ok"))
    return DutyTest.from_row({**row, "failed": failed})
