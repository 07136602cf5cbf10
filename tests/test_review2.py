"""Hostile review 2 of issues 27/29/31 (branch review2): each test a finding, failing before
its fix (REG-4.3.1, REG-7.1)."""

from __future__ import annotations

import dataclasses
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
