"""Access/copy requests (Annex 2) and the register (Annex 3): every change of a request is one
transaction with its custody entry and its event; a refusal is recorded the same way."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from camdock import clock
from camdock.catalog import custody
from camdock.catalog.custody import Action
from camdock.catalog.db import Row, one, one_as, pk, rows, rows_as, write_txn
from camdock.catalog.outbox import record
from camdock.catalog.recordings import Recording
from camdock.clock import utcnow
from camdock.core.access import Purpose, State
from camdock.events import EventType, Topics

__all__ = [
    "AccessRequest",
    "RegisterLine",
    "change",
    "create",
    "get",
    "held_recordings",
    "listing",
    "moved_by",
    "record_refusal",
    "recordings_of",
    "register_between",
]


@dataclass(frozen=True)
class AccessRequest(Row):
    """An access/copy request's row: Annex 2 field by field, and where it is (REG-5)."""

    id: int
    number: str  # YYYY-NNNN
    state: State
    created_by: str  # staff id
    created_at: str
    unit_full_name: str | None
    applicant_id: str  # staff id (the creator when none was given)
    applicant_unit: str | None
    applicant_title: str | None
    applicant_name: str | None
    recorded_by: str | None  # (1) the officer who recorded (badge)
    duty_item: str | None  # (2) duty item …
    range_start: str | None  # … and date/time slot (the selection's range)
    range_end: str | None
    camera_id: str | None
    kind: str  # (3)/(4) view | copy | both
    reason: str
    purpose: Purpose
    viewing_at: str | None
    unit_supervisor: str | None
    pr_consulted_by: str | None
    pr_consulted_at: str | None
    approved_by: str | None
    approved_at: str | None
    approved_until: str | None
    denied_by: str | None
    denied_reason: str | None
    handling_review: str | None
    scheduled_by: str | None
    window_start: str | None
    window_end: str | None
    acknowledged_by: str | None
    acknowledged_at: str | None
    closed_at: str | None
    approved_by_id: str | None = None  # staff id (m020): separated duties by identity


def _number(db: Database) -> str:
    year = clock.now().year
    last = one(
        db,
        "SELECT number FROM requests WHERE number LIKE ? ORDER BY id DESC LIMIT 1",
        (f"{year}-%",),
    )
    n = int(last["number"].split("-")[1]) + 1 if last else 1
    return f"{year}-{n:04d}"


def create(
    db: Database, row: dict[str, Any], recording_ids: list[int], by: str, topics: Topics | None
) -> AccessRequest:
    """A draft request with the recordings its selection resolved to."""
    with write_txn(db):
        number = _number(db)
        req = {**row, "number": number, "state": State.DRAFT, "created_at": utcnow()}
        req_id = pk(db.table("requests").insert(req).last_pk)
        db.conn.executemany(
            "INSERT INTO request_recordings (request_id, recording_id) VALUES (?, ?)",
            [(req_id, r) for r in recording_ids],
        )
        details = {
            "request": number,
            "recordings": recording_ids,
            "kind": row["kind"],
            "purpose": row["purpose"],
        }
        custody.append(db, Action.REQUEST, None, by, details)
        if topics is not None:
            record(
                db,
                topics,
                EventType.REQUEST_UPDATED,
                data={"request": number, "action": "request", "state": State.DRAFT, "by": by},
            )
    found = get(db, req_id)
    assert found is not None
    return found


def get(db: Database, request_id: int | str) -> AccessRequest | None:
    """A request by id or number."""
    if isinstance(request_id, str) and not request_id.isdigit():
        return one_as(AccessRequest, db, "SELECT * FROM requests WHERE number = ?", (request_id,))
    return one_as(AccessRequest, db, "SELECT * FROM requests WHERE id = ?", (int(request_id),))


def listing(db: Database) -> list[AccessRequest]:
    """Every request, newest first."""
    return rows_as(AccessRequest, db, "SELECT * FROM requests ORDER BY id DESC")


def recordings_of(db: Database, request_id: int) -> list[Recording]:
    """The recordings a request covers, with where they are."""
    return rows_as(
        Recording,
        db,
        "SELECT r.* FROM recordings r JOIN request_recordings q ON "
        "q.recording_id = r.id WHERE q.request_id = ? ORDER BY r.id",
        (request_id,),
    )


def change(
    db: Database,
    req: AccessRequest,
    action: Action,
    by: str,
    fields: dict[str, Any],
    topics: Topics | None,
    register: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
    guard: Callable[[AccessRequest], None] | None = None,
) -> None:
    """One step of a request (its fields, an Annex 3 line for a view or copy), with its custody
    entry and event, in one transaction. ``guard`` is the compare-and-set: it is given the row
    as it is inside the transaction, and raises (nothing written) when the step no longer
    applies to it, so the second of two approvals at once finds the first one's state."""
    with write_txn(db):
        if guard is not None:
            now = get(db, req.id)
            assert now is not None  # requests are never deleted
            guard(now)
        if fields:
            cols = ", ".join(f"{k} = ?" for k in fields)
            db.execute(
                f"UPDATE requests SET {cols} WHERE id = ?",  # noqa: S608 - our column names
                (*fields.values(), req.id),
            )
        if register is not None:
            db.table("register").insert({**register, "request_id": req.id, "time": utcnow()})
        entry = {
            "request": req.number,
            **(details or {}),
            **{k: v for k, v in fields.items() if k not in ("state",)},
            "state": fields.get("state", req.state),
        }
        custody.append(db, action, None, by, entry)
        if topics is not None:
            record(
                db,
                topics,
                EventType.REQUEST_UPDATED,
                data={
                    "request": req.number,
                    "action": action.value,
                    "state": entry["state"],
                    "by": by,
                },
            )


def moved_by(db: Database, number: str, state: State) -> tuple[str, str] | None:
    """Who put request ``number`` into ``state``, and when (ISO 8601): the custody entry that
    first recorded it there (a request's states only move forward)."""
    found = one(
        db,
        "SELECT actor, time FROM custody_log WHERE action != 'refused' AND "
        "json_extract(details, '$.request') = ? AND json_extract(details, '$.state') = ? "
        "ORDER BY id LIMIT 1",
        (number, state.value),
    )
    return (found["actor"], found["time"]) if found else None


def record_refusal(
    db: Database,
    by: str,
    action: str,
    number: str | None,
    reason: str,
    topics: Topics | None,
    extra: dict[str, Any] | None = None,
) -> None:
    """An attempt the rules refused: on the record too (REG-7.1). ``extra``: what else names
    it (a hold, a day; for a conflict, who acted first and when)."""
    with write_txn(db):
        details = {"attempted": action, "request": number, "reason": reason, **(extra or {})}
        custody.append(db, Action.REFUSED, None, by, details)
        if topics is not None:
            record(db, topics, EventType.ACCESS_REFUSED, data={**details, "by": by})


def held_recordings(db: Database, open_states: list[State]) -> dict[int, list[str]]:
    """Recordings that open requests cover, with the requests' numbers (REG-4.3.1)."""
    marks = ", ".join("?" for _ in open_states)
    found = rows(
        db,
        f"SELECT q.recording_id, r.number FROM request_recordings q JOIN requests r ON r.id = q.request_id WHERE r.state IN ({marks})",  # noqa: S608, E501 - only ? marks
        open_states,
    )
    held: dict[int, list[str]] = {}
    for f in found:
        held.setdefault(f["recording_id"], []).append(f["number"])
    return held


@dataclass(frozen=True)
class RegisterLine(Row):
    """An Annex 3 line (a view or a copy) with its request's fields (REG-5, REG-7.1)."""

    id: int
    request_id: int
    time: str
    kind: str  # view | copy
    recordings: tuple[int, ...]  # catalog ids (stored as JSON)
    custodian: str  # who supervised the viewing or made the copy
    medium: str | None
    manifest_sha256: str | None
    remarks: str | None
    viewing_id: int | None
    number: str
    applicant_unit: str | None
    applicant_title: str | None
    applicant_name: str | None
    purpose: Purpose
    approved_by: str | None
    approved_at: str | None
    pr_consulted_by: str | None
    acknowledged_at: str | None


def register_between(db: Database, start: str, end: str) -> list[RegisterLine]:
    """Annex 3 lines from ``start`` to ``end`` (UTC ISO), with their requests' fields."""
    found = rows(
        db,
        "SELECT g.*, q.number, q.applicant_unit, q.applicant_title, "
        "q.applicant_name, q.purpose, q.approved_by, q.approved_at, q.pr_consulted_by, "
        "q.acknowledged_at FROM register g JOIN requests q ON q.id = g.request_id "
        "WHERE g.time >= ? AND g.time <= ? ORDER BY g.id",
        (start, end),
    )
    return [
        RegisterLine.from_row({**f, "recordings": tuple(json.loads(f["recordings"]))})
        for f in found
    ]
