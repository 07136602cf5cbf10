"""Hostile review 2 of issues 27/29/31 (branch review2): each test a finding, failing before
its fix (REG-4.3.1, REG-7.1)."""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import date
from pathlib import Path

from camdock.catalog import custody, open_catalog
from camdock.events import Topics
from camdock.services.retention import (
    authorise,
    daily_pass,
    plan_for,
    revoke_authorisation,
)
from test_retention_gaps import LATER, _recordings

TOPICS = Topics("camdock", "test-01")


def test_revoking_a_ref_recorded_twice_revokes_both(tmp_path: Path) -> None:
    """REG-4.3.1: the same written authorisation recorded twice (a corrected expiry, say):
    revoking its reference stops the daily pass under either row, not only the newest; the
    older row left in force would have gone on destroying, and could not be revoked at all
    (a second revocation found the newest already revoked)."""
    _, _, catalog, keep = _recordings(tmp_path, 2)
    keep = dataclasses.replace(keep, topics=TOPICS)
    db = open_catalog(catalog)
    authorise(db, "保-11", "custodian-1", date(2028, 6, 1), "分局長 (P1)", "P1", LATER)
    authorise(db, "保-11", "custodian-1", date(2028, 5, 1), "分局長 (P1)", "P1", LATER)
    revoke_authorisation(db, "保-11", "分局長 (P1)", "P1", "改以清單核准", TOPICS)
    result = daily_pass(db, catalog, keep, LATER)
    assert result.destroyed == [], "destroyed under a revoked reference"
    assert plan_for(db, LATER).live == 2
    assert custody.verify(db) == []
    db.close()


def _insider(catalog: Path, *sql: str) -> None:
    """An insider with the catalog open in sqlite3: plain SQL, none of camdock's hooks."""
    raw = sqlite3.connect(catalog)
    with raw:
        for s in sql:
            raw.execute(s)
    raw.close()


def test_a_blob_typed_into_a_text_column_is_reported_not_a_crash(tmp_path: Path) -> None:
    """The streamed chain check (issue 29) builds each row's JSON in SQLite; a BLOB put into
    a column not declared BLOB (SQLite lets any column hold one) made json_object fail, so
    the whole audit raised instead of naming the edit. The check names it, as before."""
    _, _, catalog, _keep = _recordings(tmp_path, 1)
    _insider(
        catalog,
        "UPDATE recordings SET relpath = X'41' WHERE id = 1",
        "UPDATE copies SET destination = X'42' WHERE rowid = (SELECT min(rowid) FROM copies)",
    )
    db = open_catalog(catalog)
    problems = custody.verify(db)
    assert any("recordings [1]: relpath is {'hex': '41'}" in p for p in problems), problems
    assert any(p.startswith("copies") and "42" in p for p in problems), problems
    db.close()
