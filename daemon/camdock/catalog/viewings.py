"""Streamed viewings (REG-5.3, REG-7.1; issue 27, item 5): the stream log. A viewing is logged
when the daemon opens the recording for the console (who, which recording, which request,
when), and closed when the stream ends (when, bytes sent): the close writes the register line
(Annex 3) and the custody entry in one transaction. The report compares the two, so a viewing
whose register line is missing (or never closed) is found."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from sqlite_utils import Database

from camdock.catalog import custody
from camdock.catalog.custody import Action
from camdock.catalog.db import one, pk, rows, write_txn
from camdock.clock import utcnow
from camdock.errors import CamdockError, Conflict, ExitCode

__all__ = ["Closed", "close", "open_viewing", "unregistered"]


@dataclass(frozen=True)
class Closed:
    """A viewing ended: what its custody entry records (and the console is answered)."""

    request: str  # the request's number
    viewing: int
    start: str  # UTC ISO
    end: str
    bytes: int
    viewer_id: str


def open_viewing(
    db: Database, request_id: int, number: str, recording_id: int, viewer: str, viewer_id: str
) -> int:
    """Log a viewing as it starts; returns its id (the console names it when the stream ends)."""
    with write_txn(db):
        row = {
            "request_id": request_id,
            "recording_id": recording_id,
            "viewer": viewer,
            "viewer_id": viewer_id,
            "started_at": utcnow(),
        }
        viewing = pk(db.table("viewings").insert(row).last_pk)
        custody.append(
            db,
            Action.VIEW_START,
            recording_id,
            viewer,
            {"request": number, "viewing": viewing, "viewer_id": viewer_id},
        )
    return viewing


def close(db: Database, viewing: int, viewer_id: str, sent: int) -> Closed:
    """The stream ended (played out, or the client went away): the viewing's end and bytes, its
    register line and its custody entry, once (compare-and-set on ``ended_at IS NULL``); only
    the person it was opened for closes it."""
    with write_txn(db):
        found = one(
            db,
            "SELECT v.*, q.number FROM viewings v JOIN requests q ON "
            "q.id = v.request_id WHERE v.id = ?",
            (viewing,),
        )
        if found is None or found["viewer_id"] != viewer_id:
            raise CamdockError(f"沒有此調閱 No viewing {viewing} of yours", ExitCode.NOINPUT)
        if found["ended_at"] is not None:
            raise Conflict(f"viewing {viewing} already ended", found["viewer"], found["ended_at"])
        now = utcnow()
        db.execute(
            "UPDATE viewings SET ended_at = ?, bytes = ? WHERE id = ? AND ended_at IS NULL",
            (now, int(sent), viewing),
        )
        remarks = f"streamed {found['started_at']} – {now}, {int(sent)} bytes"
        db.table("register").insert(
            {
                "request_id": found["request_id"],
                "time": now,
                "kind": "view",
                "recordings": json.dumps([found["recording_id"]]),
                "custodian": found["viewer"],
                "remarks": remarks,
                "viewing_id": viewing,
            }
        )
        details = Closed(found["number"], viewing, found["started_at"], now, int(sent), viewer_id)
        custody.append(db, Action.VIEW, found["recording_id"], found["viewer"], asdict(details))
    return details


def unregistered(db: Database, start: str, end: str) -> list[str]:
    """Viewings started in [start, end] without their register line (never closed, or the line
    removed): what the report's completeness check names."""
    found = rows(
        db,
        "SELECT v.id, v.recording_id, v.viewer, v.started_at, v.ended_at FROM "
        "viewings v LEFT JOIN register g ON g.viewing_id = v.id WHERE v.started_at "
        "BETWEEN ? AND ? AND g.id IS NULL ORDER BY v.id",
        (start, end),
    )
    return [
        f"viewing {v['id']} of recording {v['recording_id']} by {v['viewer']} at "
        f"{v['started_at']}: "
        + ("no register line" if v["ended_at"] else "never closed, no register line")
        for v in found
    ]
