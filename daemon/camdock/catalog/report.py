"""What the six-monthly audit report (REG-7.2, REG-7.3) reads from the catalog for a period:
pre-shift tests, failed filings, attribution, retention, seals, the register against the
custody log, fixity. Times are UTC ISO strings; days are the station's duty days."""

from __future__ import annotations

import json
from typing import Any

from sqlite_utils import Database

from camdock.catalog import search, viewings
from camdock.catalog.db import rows

__all__ = ["period"]


def period(
    db: Database, start: str, end: str, day_start: str, day_end: str, today: str
) -> dict[str, Any]:
    """Every section's figures for the period [start, end] (UTC) / [day_start, day_end]."""
    between = (start, end)
    return {
        **_offloads(db, between),
        "retention": _retention(db, between, today),
        "seals": _seals(db, day_start, day_end),
        **_access_and_fixity(db, between),
    }


def _offloads(db: Database, between: tuple[str, str]) -> dict[str, Any]:
    """Self-tests, offload sessions, the duty log and the recordings taken in."""
    tests = rows(
        db,
        "SELECT officer_badge, officer_name, camera_id, count(*) AS tests, "
        "sum(passed) AS passed FROM selftests WHERE time BETWEEN ? AND ? GROUP BY "
        "officer_badge, officer_name, camera_id ORDER BY officer_badge, camera_id",
        between,
    )
    sessions = rows(
        db,
        "SELECT status, count(*) AS n, sum(files_failed) AS files_failed FROM "
        "offload_sessions WHERE started_at BETWEEN ? AND ? GROUP BY status",
        between,
    )
    duty_log = rows(
        db,
        "SELECT time, officer_badge, officer_name, camera_id, entry FROM duty_log "
        "WHERE time BETWEEN ? AND ? ORDER BY time",
        between,
    )
    recs = db.execute(
        "SELECT count(*), coalesce(sum(attribution = 'unattributed'), 0), "
        "coalesce(sum(time_suspect), 0) FROM recordings WHERE ingested_at BETWEEN ? AND ?",
        between,
    ).fetchone()
    return {
        "selftests": tests,
        "sessions": sessions,
        "duty_log": duty_log,
        "recordings": {"ingested": recs[0], "unattributed": recs[1], "time_suspect": recs[2]},
    }


def _retention(db: Database, between: tuple[str, str], today: str) -> dict[str, Any]:
    """What was destroyed (and any too early), what is overdue, holds past their review."""
    # Candidates: destroyed before the day after retain_until in UTC. Whether the destruction
    # was early is decided on the station's day (services/audit.py), not on a UTC date.
    early = rows(
        db,
        "SELECT id, relpath, destroyed_at, retain_until FROM recordings WHERE "
        "destroyed_at IS NOT NULL AND destroyed_at < date(retain_until, '+1 day')",
    )
    overdue = db.execute(
        "SELECT count(*) FROM recordings WHERE destroyed_at IS NULL AND destroy_by < ?", (today,)
    ).fetchone()[0]
    destroyed = db.execute(
        "SELECT count(*) FROM recordings WHERE destroyed_at BETWEEN ? AND ?", between
    ).fetchone()[0]
    review = rows(
        db,
        "SELECT id, kind, case_ref, review_by FROM holds WHERE released_at IS "
        "NULL AND review_by < ?",
        (today,),
    )
    return {
        "destroyed": destroyed,
        "destroyed_early": early,
        "overdue_now": overdue,
        "holds_past_review": review,
    }


def _seals(db: Database, day_start: str, day_end: str) -> dict[str, Any]:
    """The duty days with footage, and which were sealed and confirmed."""
    days = list(search.footage_days(db, day_start, day_end))  # a seek a day (issue 29)
    sealed = {
        r["day"]: r
        for r in rows(
            db,
            "SELECT day, max(confirmed_by) AS confirmed_by, "
            "max(sealed_by) AS sealed_by FROM seals WHERE state = "
            "'verified' AND day BETWEEN ? AND ? GROUP BY day",
            (day_start, day_end),
        )
    }
    return {
        "days": len(days),
        "sealed": sum(d in sealed for d in days),
        "confirmed": sum(bool(sealed.get(d, {}).get("confirmed_by")) for d in days),
        "unsealed": [d for d in days if d not in sealed],
        "unconfirmed": [d for d in days if d in sealed and not sealed[d]["confirmed_by"]],
    }


def _destructions_missing(db: Database, between: tuple[str, str]) -> list[str]:
    """The register's destruction lines (REG-7.1) against two sources written apart from it:
    the custody log's destruction entries and the catalog's tombstones. A recording destroyed in
    the period that one of them has and the register does not is named."""

    def ids(sql: str) -> set[int]:
        return {int(r["i"]) for r in rows(db, sql, between)}

    lines: set[int] = set()
    for r in rows(
        db,
        "SELECT recordings FROM register_acts WHERE kind = 'destroy' AND time BETWEEN ? AND ?",
        between,
    ):
        lines |= set(json.loads(r["recordings"]))
    entries = ids(
        "SELECT recording_id AS i FROM custody_log WHERE action = 'destroy' AND time "
        "BETWEEN ? AND ?"
    )
    tombs = ids("SELECT id AS i FROM recordings WHERE destroyed_at BETWEEN ? AND ?")
    return [
        f"recording {i}: destroyed, no destruction line in the register"
        for i in sorted((entries | tombs) - lines)
    ]


def _access_and_fixity(db: Database, between: tuple[str, str]) -> dict[str, Any]:
    """The register and its custody entries, refusals, the scrub's findings, the audits."""
    register = db.execute(
        "SELECT kind, count(*) FROM register WHERE time BETWEEN ? AND ? GROUP BY kind", between
    ).fetchall()
    entries = db.execute(
        "SELECT action, count(*) FROM custody_log WHERE action IN ('view', "
        "'copy') AND time BETWEEN ? AND ? GROUP BY action",
        between,
    ).fetchall()
    refused = db.execute(
        "SELECT count(*) FROM custody_log WHERE action = 'refused' AND time BETWEEN ? AND ?",
        between,
    ).fetchone()[0]
    damage = db.execute(
        "SELECT action, count(*) FROM custody_log WHERE action IN ('damage', "
        "'repair') AND time BETWEEN ? AND ? GROUP BY action",
        between,
    ).fetchall()
    audits = [
        {"time": r["time"], "actor": r["actor"], **json.loads(r["details"])}
        for r in rows(
            db,
            "SELECT time, actor, details FROM custody_log WHERE action = 'audit' AND time BETWEEN "
            "? AND ? ORDER BY id",
            between,
        )
    ]
    return {
        "register": {
            "lines": dict(register),
            "custody_entries": dict(entries),
            "refusals": refused,
            "missing": viewings.unregistered(db, *between) + _destructions_missing(db, between),
        },
        "fixity": {"scrub": dict(damage), "audits": audits},
    }
