"""Hostile review 2 of issues 27/29/31 (branch review2): each test a finding, failing before
its fix (REG-4.3.1, REG-7.1)."""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import date
from pathlib import Path

import pytest

from camdock.catalog import custody, open_catalog
from camdock.catalog import retention as retention_rows
from camdock.catalog.rowchain import Tampered
from camdock.core.bay import Phase
from camdock.events import Topics
from camdock.services.destroying import destroy
from camdock.services.retention import (
    authorise,
    daily_pass,
    plan_for,
    revoke_authorisation,
)
from camdock.sim.hotplug import fill_camera
from test_retention_gaps import LATER, _recordings
from test_station import START, running

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


def test_a_second_row_under_one_copy_key_is_named_and_removes_nothing(tmp_path: Path) -> None:
    """An insider rebuilds the copies table without its key and adds a second row under
    recording 1's key on d1, pointing at recording 2's file. The streamed check (issue 29)
    kept one live row per key (INSERT OR IGNORE) and the destruction's chain check read the
    first row of each key only: recording 1's destruction would have removed recording 2's
    copy (REG-4.3.1). Both now name the second row; nothing is removed."""
    d1, _, catalog, keep = _recordings(tmp_path, 2)
    db = open_catalog(catalog)
    other = db.execute("SELECT relpath FROM copies WHERE recording_id = 2 AND destination = ?",
                       (str(d1),)).fetchone()[0]  # fmt: skip
    db.close()
    _insider(
        catalog,
        "CREATE TABLE copies_x AS SELECT * FROM copies",
        "DROP TABLE copies",
        "ALTER TABLE copies_x RENAME TO copies",
        f"INSERT INTO copies SELECT * FROM copies WHERE recording_id = 2 AND destination = '{d1}'",  # noqa: S608
        "UPDATE copies SET recording_id = 1, sha256 = (SELECT sha256 FROM recordings WHERE "
        "id = 1) WHERE rowid = (SELECT max(rowid) FROM copies)",
    )
    db = open_catalog(catalog)
    problems = custody.verify(db)
    assert any("copies [1," in p and "share" in p for p in problems), problems
    with pytest.raises(Tampered, match="more than one row"):
        destroy(db, keep, LATER, "C1", recordings=[1])
    assert (d1 / other).exists(), "recording 2's copy was removed by recording 1's destruction"
    db.close()


async def test_another_camera_on_the_port_of_a_done_bay_is_offloaded(tmp_path: Path) -> None:
    """REG-2/REG-3: a bay shows DONE; its camera is pulled and another camera docked on the
    same port, the pull's "remove" lost (a udev monitor's buffer overflowed under a burst of
    docks). Its partition has the same device path; since 202e2ae a DONE bay ignored "the
    same partition again", so the second camera's footage was never offloaded while the bay
    went on showing the first camera's DONE. A partition of another camera is a new dock."""
    v1, v2 = tmp_path / "cam1", tmp_path / "cam2"
    fill_camera(v1, files=2, size=1000, seed=1, start=START)
    fill_camera(v2, files=3, size=1000, seed=2, start=START)
    async with running(tmp_path) as h:
        h.hot.dock("1-1", "SN0001", v1)
        await h.until(lambda: h.bay(1).state.phase is Phase.DONE)
        h.hot.dock("1-1", "SN0002", v2)  # the first one's "remove" never came
        completed = "SELECT count(*) FROM offload_sessions WHERE status = 'completed'"
        await h.until(lambda: h.catalog(completed) == [(2,)])
    assert h.catalog("SELECT count(*) FROM recordings") == [(5,)]


def test_a_destruction_a_crash_left_under_a_revoked_authorisation_is_not_finished(
    tmp_path: Path,
) -> None:
    """REG-4.3.1: the daily pass planned recording 1's destruction under standing authorisation
    保-12 and was killed before it removed anything (the recording is "destroying", every copy
    there). An approver then revokes 保-12. The next pass, with no authorisation in force,
    finished it all the same (finish_pending asked only holds): footage destroyed under a
    revoked authorisation. Now it is given up: live again, every copy kept."""
    _, _, catalog, keep = _recordings(tmp_path, 1)
    keep = dataclasses.replace(keep, topics=TOPICS)
    db = open_catalog(catalog)
    authorise(db, "保-12", "custodian-1", date(2028, 6, 1), "分局長 (P1)", "P1", LATER)
    # The pass's first step, as the killed one left it: planned, nothing removed.
    retention_rows.plan_destruction(db, 1, "custodian-1", "standing",
                                    "retention period ended (REG-4.3.1), standing "
                                    "authorisation 保-12 approved by 分局長 (P1)")  # fmt: skip
    assert len(retention_rows.pending(db)) == 1
    revoke_authorisation(db, "保-12", "分局長 (P1)", "P1", "改以清單核准", TOPICS)
    result = daily_pass(db, catalog, keep, LATER)
    assert result.destroyed == [], "finished under a revoked authorisation"
    assert retention_rows.pending(db) == [] and plan_for(db, LATER).live == 1
    copies = [r[0] for r in db.execute("SELECT destination || '/' || relpath FROM copies")]
    assert len(copies) == 2 and all(Path(c).exists() for c in copies)
    assert custody.verify(db) == []
    db.close()


def test_one_tampered_recording_does_not_stop_the_rest_of_the_days_list(tmp_path: Path) -> None:
    """REG-4.3.1, issue 27 gap 2: the day's due list tries every recording. A recording whose
    row an insider edited in sqlite3 is refused by the chain check (Tampered, a data error,
    not a Refused): it ended the whole pass, leaving the rest of the day (and the re-seal of
    a sealed day whose footage already went) undone, every day again. Now it is alarmed and
    the others go."""
    _, _, catalog, keep = _recordings(tmp_path, 3)
    keep = dataclasses.replace(keep, topics=TOPICS)
    _insider(catalog, "UPDATE recordings SET unit = 'edited' WHERE id = 1")
    db = open_catalog(catalog)
    authorise(db, "保-13", "custodian-1", date(2028, 6, 1), "分局長 (P1)", "P1", LATER)
    result = daily_pass(db, catalog, keep, LATER)
    assert sorted(d.recording for d in result.destroyed) == [2, 3], result.alarms
    assert any("recording" in a and "changed outside camdock" in a for a in result.alarms), (
        result.alarms
    )
    db.close()
