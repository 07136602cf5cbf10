"""The console's searches (issue 29): the catalog by officer (name or badge), camera, case and
duty days, paged, counted and sorted; the custody log by person, action, recording and time
("who viewed what", REG-7.1); and the counts the home view opens with.

Every query here is bounded: a page of at most ``MAX_PER_PAGE`` rows, sort keys from a fixed
table (never text from the URL), and each filter on a column an index serves (m023): the pages
must answer in under 300 ms on a year's catalog (bench/web_bench.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from sqlite_utils import Database

from camdock.catalog.db import Row, rows, rows_as
from camdock.catalog.recordings import Recording

__all__ = [
    "MAX_COUNT",
    "MAX_PER_PAGE",
    "CustodyEntry",
    "CustodyPage",
    "Found",
    "SortKey",
    "Today",
    "custody_entries",
    "footage_days",
    "recordings",
    "today",
    "unsealed_days",
]

MAX_PER_PAGE = 200
# A count past this is shown as "more than": counting every match of a loose filter on a year's
# log would cost more than the page (the rows themselves come from an index, newest first).
MAX_COUNT = 10_000


class SortKey(StrEnum):
    """The catalog search's sort keys: each names an indexed column (m023), never SQL."""

    RECORDED = "recorded"
    OFFICER = "officer"
    CAMERA = "camera"
    ID = "id"


_ORDER = {
    SortKey.RECORDED: "recorded_start {d}, id {d}",
    SortKey.OFFICER: "officer_name {d}, recorded_start {d}, id {d}",
    SortKey.CAMERA: "camera_id {d}, recorded_start {d}, id {d}",
    SortKey.ID: "id {d}",
}


@dataclass(frozen=True)
class Found:
    """One page of a search: its rows, how many match in all (capped at ``MAX_COUNT``: then
    ``more`` is true), and where the page starts."""

    total: int
    more: bool
    offset: int
    rows: list[Recording]


@dataclass(frozen=True)
class CustodyEntry(Row):
    """A custody-log entry as the console lists it (its hash stays in the chain)."""

    id: int
    time: str
    action: str
    recording_id: int | None
    actor: str
    channel: str | None
    details: str


@dataclass(frozen=True)
class CustodyPage:
    """One page of the custody log."""

    total: int
    more: bool
    offset: int
    rows: list[CustodyEntry]


def _glob(text: str) -> str:
    """``text`` as a literal inside a GLOB pattern (GLOB, unlike LIKE, is served by an index
    for a prefix; its specials are escaped by brackets)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _count(db: Database, where: str, params: list[object], table: str) -> tuple[int, bool]:
    sql = f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE {where} LIMIT ?)"  # noqa: S608
    n = int(db.execute(sql, [*params, MAX_COUNT + 1]).fetchone()[0])
    return min(n, MAX_COUNT), n > MAX_COUNT


def recordings(
    db: Database,
    *,
    officer: str | None = None,
    camera: str | None = None,
    case: str | None = None,
    first: date | None = None,
    last: date | None = None,
    sort: SortKey = SortKey.RECORDED,
    descending: bool = True,
    offset: int = 0,
    limit: int = 50,
) -> Found:
    """Recordings by officer (badge, or a name or the start of one), camera, case (a hold's
    case number or a request's number) and duty days ``first``..``last`` (their folders,
    REG-4.2.3), tombstones included; one page, sorted by ``sort``."""
    where, params = ["1"], list[object]()
    if officer:
        where.append("(officer_badge = ? OR officer_name GLOB ?)")
        params += [officer, _glob(officer) + "*"]
    if camera:
        where.append("camera_id = ?")
        params.append(camera)
    if first is not None:  # the folders are YYYY/MM/DD/: a day's range is its prefix
        where.append("relpath >= ?")
        params.append(first.strftime("%Y/%m/%d/").rjust(11, "0"))
    if last is not None:
        where.append("relpath < ?")  # "0" sorts right after "/": the whole last day
        params.append(last.strftime("%Y/%m/%d0").rjust(11, "0"))
    if case:
        where.append(_case_clause(db, case, params))
    clause = " AND ".join(where)
    total, more = _count(db, clause, params, "recordings")
    order = _ORDER[sort].format(d="DESC" if descending else "ASC")
    found = rows_as(Recording, db, f"SELECT * FROM recordings WHERE {clause} "  # noqa: S608
                    f"ORDER BY {order} LIMIT ? OFFSET ?", [*params, limit, offset])  # fmt: skip
    return Found(total, more, offset, found)


def _case_clause(db: Database, case: str, params: list[object]) -> str:
    """The recordings a case names: those in a request of that number, and those every hold
    with that case number covers (one recording, or an officer's/camera's over a range)."""
    parts = ["id IN (SELECT rr.recording_id FROM request_recordings rr JOIN requests q ON "
             "q.id = rr.request_id WHERE q.number = ?)"]  # fmt: skip
    params.append(case)
    for h in rows(db, "SELECT recording_id, officer_badge, camera_id, range_start, range_end "
                  "FROM holds WHERE case_ref = ? LIMIT 50", (case,)):  # fmt: skip
        if h["recording_id"] is not None:
            parts.append("id = ?")
            params.append(h["recording_id"])
            continue
        scope = []
        for col, value in (("officer_badge", h["officer_badge"]), ("camera_id", h["camera_id"])):
            if value is not None:
                scope.append(f"{col} = ?")
                params.append(value)
        if h["range_start"] is not None:
            scope.append("recorded_start >= ?")
            params.append(h["range_start"])
        if h["range_end"] is not None:
            scope.append("recorded_start <= ?")
            params.append(h["range_end"])
        parts.append("(" + " AND ".join(scope or ["1"]) + ")")
    return "(" + " OR ".join(parts) + ")"


def custody_entries(
    db: Database,
    *,
    actors: tuple[str, ...] = (),
    actor_prefix: str | None = None,
    staff_id: str | None = None,
    action: str | None = None,
    recording: int | None = None,
    start: str | None = None,
    end: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> CustodyPage:
    """Custody entries, newest first: by the exact labels ``actors`` (a staff member as the log
    names them, ``name (id)``), a staff id under any name, or a label's start, by action,
    recording and UTC ISO range."""
    where, params = ["1"], list[object]()
    if actors or actor_prefix or staff_id:
        who = []
        if staff_id:  # every label the log gave them, "name (id)", under any name they had
            who.append("actor GLOB ?")
            params.append("* (" + _glob(staff_id) + ")")
        if actors:
            who.append(f"actor IN ({', '.join('?' * len(actors))})")
            params += list(actors)
        if actor_prefix:
            who.append("actor GLOB ?")
            params.append(_glob(actor_prefix) + "*")
        where.append("(" + " OR ".join(who) + ")")
    if action:
        where.append("action = ?")
        params.append(action)
    if recording is not None:
        where.append("recording_id = ?")
        params.append(recording)
    if start:
        where.append("time >= ?")
        params.append(start)
    if end:
        where.append("time <= ?")
        params.append(end)
    clause = " AND ".join(where)
    total, more = _count(db, clause, params, "custody_log")
    has_channel = any(c[1] == "channel" for c in db.execute("PRAGMA table_info(custody_log)"))
    channel = "channel" if has_channel else "NULL AS channel"
    found = rows_as(CustodyEntry, db, f"SELECT id, time, action, recording_id, actor, {channel}, "  # noqa: S608
                    f"details FROM custody_log WHERE {clause} ORDER BY id DESC LIMIT ? OFFSET ?",
                    [*params, limit, offset])  # fmt: skip
    return CustodyPage(total, more, offset, found)


@dataclass(frozen=True)
class Today:
    """What the home view counts for a day (UTC ISO bounds ``start``..``end``)."""

    failed_offloads: int  # offload sessions that failed or were interrupted
    failed_tests: int  # pre-shift function tests that failed (REG-3.2)
    duty_log: int  # duty-log entries (a failed test, a filing not completed: REG-4.2.7)
    damaged: int  # copies the scrub found damaged (custody 'damage' entries)
    submitted: int  # requests waiting for an approver (REG-5.1)
    media_unconsulted: int  # approved-to-be media requests the PR unit has not seen (REG-6)
    lists_proposed: int  # destruction lists waiting for an approver
    seals_unconfirmed: int  # sealed days no supervisor confirmed (REG-4.2.5)
    frozen: int  # recordings frozen: catalog and chain disagree (invariant 12)
    my_open: int  # the staff member's own requests still open
    my_failed_tests: int  # their own failed tests of the day


def _n(db: Database, sql: str, params: tuple[object, ...] = ()) -> int:
    return int(db.execute(sql, params).fetchone()[0])


def today(db: Database, start: str, end: str, staff_id: str) -> Today:
    """The day's counts for the home view; ``staff_id``'s own among them."""
    span = (start, end)
    return Today(
        failed_offloads=_n(db, "SELECT count(*) FROM offload_sessions WHERE started_at >= ? AND "
                           "started_at <= ? AND status IN ('failed', 'interrupted')", span),
        failed_tests=_n(db, "SELECT count(*) FROM selftests WHERE time >= ? AND time <= ? AND "
                        "passed = 0", span),
        duty_log=_n(db, "SELECT count(*) FROM duty_log WHERE time >= ? AND time <= ?", span),
        damaged=_n(db, "SELECT count(*) FROM custody_log WHERE action = 'damage' AND time >= ? "
                   "AND time <= ?", span),
        submitted=_n(db, "SELECT count(*) FROM requests WHERE state = 'submitted'"),
        media_unconsulted=_n(db, "SELECT count(*) FROM requests WHERE state = 'submitted' AND "
                             "purpose = 'media' AND pr_consulted_at IS NULL"),
        lists_proposed=_n(db, "SELECT count(*) FROM destruction_lists WHERE state = 'proposed'"),
        seals_unconfirmed=_n(db, "SELECT count(DISTINCT day) FROM seals WHERE state = "
                             "'verified' AND confirmed_at IS NULL"),
        frozen=_n(db, "SELECT count(*) FROM freezes WHERE resolved_at IS NULL"),
        my_open=_n(db, "SELECT count(*) FROM requests WHERE applicant_id = ? AND state IN "
                   "('draft', 'approved', 'scheduled', 'done')", (staff_id,)),
        my_failed_tests=_n(db, "SELECT count(*) FROM selftests s WHERE s.time >= ? AND "
                           "s.time <= ? AND s.passed = 0 AND s.officer_badge = ?",
                           (*span, staff_id)),
    )  # fmt: skip


def footage_days(db: Database, first: str, last: str) -> Iterator[str]:
    """The duty days (YYYY-MM-DD) from ``first`` to ``last`` that have recordings, in order.
    Walks the day folders by the recordings' path index, one seek a day (no scan of a
    year's recordings)."""
    low = first.replace("-", "/") + "/"
    stop = last.replace("-", "/") + "0"  # "0" sorts right after "/": the whole last day
    while True:
        nxt = db.execute("SELECT relpath FROM recordings WHERE relpath >= ? AND relpath < ? "
                         "ORDER BY relpath LIMIT 1", (low, stop)).fetchone()  # fmt: skip
        if nxt is None:
            return
        day = str(nxt[0])[:10]
        low = day + "0"  # past every file of that day
        yield day.replace("/", "-")


def unsealed_days(db: Database, before: date, limit: int = 400) -> list[str]:
    """Duty days before ``before`` with recordings and no seal in force, oldest first."""
    sealed = {r["day"] for r in rows(db, "SELECT DISTINCT day FROM seals WHERE state = "
                                     "'verified'")}  # fmt: skip
    found: list[str] = []
    last = before.toordinal() - 1
    if last < 1:
        return found
    for day in footage_days(db, "0001-01-01", date.fromordinal(last).isoformat()):
        if day not in sealed:
            found.append(day)
            if len(found) >= limit:
                break
    return found
