"""Destruction per recording as a state machine, live → destroying → destroyed (REG-4.3.1,
REG-7.1; issue 28, item 4): the intent is chained before the first copy goes; a drive that
refuses (really read-only: a tmpfs remounted ro) leaves the recording "destroying" with an alarm
naming the drive, never a traceback; every resumed step asks the holds first; nothing ends live
with a copy gone, or destroyed with a copy left."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest
from sqlite_utils import Database

from camdock.catalog import custody, open_catalog, recordings
from camdock.catalog import retention as retention_rows
from camdock.catalog import scrub as scrub_rows
from camdock.catalog.rowchain import Tampered
from camdock.core.retention import HoldKind
from camdock.errors import ExitCode, Refused
from camdock.events import Topics
from camdock.services import audit
from camdock.services.retention import (
    DestructionStopped,
    Keeping,
    daily_pass,
    destroy,
    finish_pending,
    place_hold,
    plan_for,
    release_hold,
)
from conftest import camdock_cmd, make_camera, needs_root, offload, run, tmpfs
from test_retention import _age, _approved_list

TOPICS = Topics("camdock", "test-01")
LATER = date(2027, 12, 1)  # past every recording's year: each may go


@contextmanager
def _drives(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """The footage and backup drives as two real filesystems (tmpfs), two recordings filed."""
    with tmpfs(tmp_path / "footage", "16m") as d1, tmpfs(tmp_path / "backup", "16m") as d2:
        make_camera(tmp_path / "cam", 2, size=4096, seed=3)
        assert offload(tmp_path / "cam", [d1, d2], tmp_path / "c.db").ok
        yield d1, d2


@contextmanager
def _read_only(drive: Path) -> Iterator[None]:
    """The drive remounted read-only for real: unlink answers EROFS."""
    subprocess.run(["mount", "-o", "remount,ro", str(drive)], check=True)
    try:
        yield
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(drive)], check=True)


def _state(db: Database, rec_id: int) -> str:
    """live | destroying | destroyed, as the catalog says."""
    if retention_rows.candidate(db, rec_id) is None:
        return "destroyed"
    going = {d.recording for d in retention_rows.destroying(db)}
    return "destroying" if rec_id in going else "live"


def _actions(db: Database, rec_id: int) -> list[str]:
    found = db.execute("SELECT action FROM custody_log WHERE recording_id = ? ORDER BY id",
                       (rec_id,))  # fmt: skip
    return [r[0] for r in found]


@needs_root
def test_a_read_only_drive_leaves_the_recording_destroying_with_an_alarm_naming_it(
    tmp_path: Path,
) -> None:
    with _drives(tmp_path) as (d1, d2):
        keep = Keeping(roots=frozenset({str(d1), str(d2)}), topics=TOPICS)
        db = open_catalog(tmp_path / "c.db")
        rec = recordings.get(db, 1)
        assert rec is not None
        with _read_only(d2), pytest.raises(DestructionStopped) as stopped:
            destroy(db, keep, LATER, "陳保管 (C1)", recordings=[1])
        # The error names the drive and what it said; exit 69, one line, no traceback.
        assert stopped.value.exit_code == ExitCode.UNAVAILABLE
        assert str(d2) in str(stopped.value) and "Read-only file system" in str(stopped.value)
        assert not (d1 / rec.relpath).exists() and (d2 / rec.relpath).is_file()
        assert _state(db, 1) == "destroying"  # never live with a copy gone
        # The intent was chained before the first unlink; the stop is on the chain too.
        assert _actions(db, 1)[-2:] == ["destroy-start", "destroy-stop"]
        assert custody.verify(db) == []
        # The station shows it: the plan's alarms every day, and a retention-alarm event.
        p = plan_for(db, LATER)
        assert p.pending == (1,) and any(str(d2) in a for a in p.alarms)
        alarms = [json.loads(r[0]) for r in db.execute(
            "SELECT payload FROM outbox WHERE type = 'retention-alarm'")]  # fmt: skip
        assert alarms[-1]["data"]["destroying"][0]["drive"] == str(d2)
        # The audit knows the state: the removed copy is "destroying", not "missing"; the
        # scrub leaves it alone (it would "repair" what is being destroyed).
        findings, _ = audit.fixity(db, [str(d1), str(d2)], None)
        assert [(f.kind, f.recording) for f in findings] == [("destroying", 1)]
        assert 1 not in {c.recording_id for c in scrub_rows.due(db, 100)}
        # The drive is well again: the daily pass finishes it, every copy gone.
        done = finish_pending(db, keep, LATER)
        assert [d.recording for d in done] == [1] and _state(db, 1) == "destroyed"
        assert not (d2 / rec.relpath).exists() and recordings.copies(db, 1) == {}
        assert custody.verify(db) == []
        db.close()


@needs_root
def test_a_hold_placed_after_an_interrupted_destruction_stops_the_rerun(tmp_path: Path) -> None:
    with _drives(tmp_path) as (d1, d2):
        keep = Keeping(roots=frozenset({str(d1), str(d2)}), topics=TOPICS)
        db = open_catalog(tmp_path / "c.db")
        first, second = recordings.get(db, 1), recordings.get(db, 2)
        assert first is not None and second is not None
        with _read_only(d2), pytest.raises(DestructionStopped):
            destroy(db, keep, LATER, "C1", recordings=[1])
        # Another's intent committed and then a crash, before its first copy went.
        retention_rows.plan_destruction(db, 2, "C1", "manual", "retention period ended")
        assert _state(db, 2) == "destroying"
        assert (d1 / second.relpath).is_file() and (d2 / second.relpath).is_file()
        held = [place_hold(db, keep, "林督導 (S1)", kind=HoldKind.INVESTIGATION, case="刑案 7",
                           reason="偵查中", recording=r) for r in (1, 2)]  # fmt: skip
        # The re-run (the daily pass) asks the holds first: the remaining copy is kept.
        result = daily_pass(db, tmp_path / "c.db", Keeping(roots=None, topics=TOPICS), LATER)
        assert result.destroyed == []
        assert (d2 / first.relpath).is_file() and _state(db, 1) == "destroying"
        [going] = retention_rows.destroying(db)
        assert going.recording == 1 and "hold" in (going.stopped_reason or "")
        assert "remaining copy is kept" in (going.stopped_reason or "")
        assert any("recording 1 is being destroyed and stopped" in a for a in result.alarms)
        # Nothing was removed of the other: back to live, both copies there (abandoned).
        assert _state(db, 2) == "live" and (d1 / second.relpath).is_file()
        # A destruction asked for by hand is refused the same way, and nothing moves.
        with pytest.raises(Refused, match="held"):
            destroy(db, keep, LATER, "C1", recordings=[2])
        # The hold released: the next pass finishes the destruction it had stopped.
        release_hold(db, keep, held[0], "林督導 (S1)", "結案")
        done = finish_pending(db, keep, LATER)
        assert [d.recording for d in done] == [1] and not (d2 / first.relpath).exists()
        assert custody.verify(db) == []
        db.close()


@needs_root
def test_the_command_on_a_read_only_drive_says_so_in_one_line_and_resumes(tmp_path: Path) -> None:
    with _drives(tmp_path) as (d1, d2):
        catalog = tmp_path / "c.db"
        _age(catalog)
        base = ["--catalog", str(catalog)]
        list_id = _approved_list(base, "custodian-1", "approver-1")
        args = ("retention", "execute", "--list", str(list_id), "--by", "custodian-1", *base)
        with _read_only(d2):
            out = run(camdock_cmd(*args))
        assert out.returncode == ExitCode.UNAVAILABLE, out.stderr
        assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
        assert "Read-only file system" in out.stderr and str(d2) in out.stderr
        plan = run(camdock_cmd("retention", "plan", "--json", *base))
        doc = json.loads(plan.stdout)
        assert [d["recording"] for d in doc["destroying"]] == [1]
        assert doc["destroying"][0]["drive"] == str(d2)
        audited = run(camdock_cmd("audit", *base))
        assert audited.returncode == 0, audited.stdout + audited.stderr
        again = run(camdock_cmd(*args[:4], "--resume", *args[4:]))
        assert again.returncode == 0, again.stderr
        conn = sqlite3.connect(catalog)
        assert conn.execute("SELECT count(*) FROM recordings WHERE destroyed_at IS NULL"
                            ).fetchone() == (0,)  # fmt: skip
        conn.close()
        assert not [p for d in (d1, d2) for p in d.rglob("*.mp4")]


def _two_recordings(tmp_path: Path) -> tuple[Path, Path, Path, Keeping]:
    d1, d2 = tmp_path / "d1", tmp_path / "d2"
    d1.mkdir()
    d2.mkdir()
    make_camera(tmp_path / "cam", 2, size=4096, seed=5)
    assert offload(tmp_path / "cam", [d1, d2], tmp_path / "c.db").ok
    return d1, d2, tmp_path / "c.db", Keeping(roots=frozenset({str(d1), str(d2)}))


def _insider(catalog: Path, sql: str, *args: object) -> None:
    raw = sqlite3.connect(catalog)  # sqlite3 at the shell: no camdock, no triggers asked
    raw.execute(sql, args)
    raw.commit()
    raw.close()


def test_a_hold_deleted_in_sqlite3_destroys_nothing(tmp_path: Path) -> None:
    """REG-4.3.1, issue 28 (review): a hold row deleted outside camdock does not release the
    footage it kept; the destruction is refused as tampering and every copy stays."""
    d1, d2, catalog, keep = _two_recordings(tmp_path)
    db = open_catalog(catalog)
    place_hold(db, keep, "督察 (S1)", kind=HoldKind.INVESTIGATION, case="C-9",
               reason="court order", recording=1)  # fmt: skip
    rel = db.execute("SELECT relpath FROM recordings WHERE id = 1").fetchone()[0]
    db.close()
    _insider(catalog, "DELETE FROM holds")
    db = open_catalog(catalog)
    with pytest.raises(Tampered, match="holds"):
        destroy(db, keep, date(2027, 12, 1), "保管人 (C1)", reason="due")
    assert (d1 / rel).is_file() and (d2 / rel).is_file()
    assert db.execute("SELECT destroyed_at FROM recordings WHERE id = 1").fetchone()[0] is None
    db.close()


def test_a_copy_row_pointed_at_another_recording_removes_nothing(tmp_path: Path) -> None:
    """Issue 28 (review): a recording left destroying whose copy rows an insider points at
    another recording's files: finishing it removes nothing (the rows are not the chain's)."""
    d1, d2, catalog, keep = _two_recordings(tmp_path)
    db = open_catalog(catalog)
    paths = dict(db.execute("SELECT id, relpath FROM recordings").fetchall())
    retention_rows.plan_destruction(db, 1, "保管人 (C1)", "manual", "due")
    db.close()
    _insider(catalog, "UPDATE copies SET relpath = ? WHERE recording_id = 1", paths[2])
    db = open_catalog(catalog)
    with pytest.raises(Tampered, match="copies"):
        finish_pending(db, keep, date(2027, 12, 1))
    for d in (d1, d2):
        assert (d / paths[1]).is_file() and (d / paths[2]).is_file()
    db.close()


def test_a_destruction_typed_into_the_catalog_removes_nothing(tmp_path: Path) -> None:
    """Issue 28 (review): a 'planned' destruction inserted in sqlite3 (no chained intent) is
    never finished by the daily pass."""
    d1, d2, catalog, keep = _two_recordings(tmp_path)
    db = open_catalog(catalog)
    rel = db.execute("SELECT relpath FROM recordings WHERE id = 2").fetchone()[0]
    db.close()
    _insider(
        catalog,
        "INSERT INTO destructions (recording_id, state, actor, authority, "
        "reason, planned_at) VALUES (2, 'planned', 'x', 'manual', 'x', '2027-01-01')",
    )
    db = open_catalog(catalog)
    with pytest.raises(Tampered, match="destructions"):
        finish_pending(db, keep, date(2027, 12, 1))
    assert (d1 / rel).is_file() and (d2 / rel).is_file()
    db.close()
