"""Destruction only with approval (REG-4.3.1, REG-7.1; issue 27, item 6): a custodian proposes
a list, an approver (someone else, by staff id) approves it, only an approved list is executed,
each recording checked again when it is destroyed; the daemon destroys by itself only under a
standing authorisation recorded in the catalog, in force today. Races are forced with a barrier
before the write (tests/test_concurrency.py)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from camdock.catalog import custody, open_catalog
from camdock.catalog import destruction as destruction_rows
from camdock.config import Config, load
from camdock.core.retention import HoldKind
from camdock.errors import Conflict, ExitCode, Refused
from camdock.services import retention
from conftest import camdock_cmd, run
from test_access import _station
from test_concurrency import _entries, _on_catalog, _race, both_before  # noqa: F401 - fixture

LATER = date(2028, 1, 1)  # past every recording's destruction date
KEEP = retention.Keeping()


@pytest.fixture
def station(tmp_path: Path) -> Iterator[Config]:
    yield load(_station(tmp_path))


def _proposed(cfg: Config, by: str = "陳保管 (C1)", by_id: str = "C1") -> int:
    return _on_catalog(cfg, lambda db: retention.propose_list(db, KEEP, LATER, by, by_id))()


def _live(cfg: Config) -> int:
    con = sqlite3.connect(cfg.catalog)
    try:
        return int(con.execute("SELECT count(*) FROM recordings WHERE destroyed_at IS NULL")
                   .fetchone()[0])  # fmt: skip
    finally:
        con.close()


def test_the_proposer_may_not_approve_and_an_unapproved_list_is_not_executed(
    station: Config,
) -> None:
    cfg = station
    list_id = _proposed(cfg)
    db = open_catalog(cfg.catalog)
    try:
        with pytest.raises(Refused, match="only an approved list"):
            retention.execute_list(db, KEEP, LATER, list_id, "陳保管 (C1)", "C1")
        # The same staff id under another name is the same person (identity, never a name).
        with pytest.raises(Refused, match="they proposed"):
            retention.approve_list(db, list_id, "Chen (C1 as chief)", "C1", None)
        assert _live(cfg) == 3
        retention.approve_list(db, list_id, "王分局長 (P1)", "P1", None)
        done = retention.execute_list(db, KEEP, LATER, list_id, "陳保管 (C1)", "C1")
        assert sorted(d.recording for d in done) == [1, 2, 3] and _live(cfg) == 0
        found = destruction_rows.get(db, list_id)
        assert found is not None and found.state == "executed"
        assert custody.verify(db) == []
    finally:
        db.close()
    refused = [(r["attempted"], r["list"]) for r in _entries(cfg, "refused")]
    assert refused == [("destroy", list_id), ("destroy-approve", list_id)]
    reasons = {d["reason"] for d in _entries(cfg, "destroy")}
    gone = _entries(cfg, "destroy")
    assert len(gone) == 3 and all(f"list {list_id} approved by 王分局長 (P1)" in d["reason"]
                                  for d in gone), reasons  # fmt: skip


def test_each_recording_is_checked_again_when_the_list_is_executed(station: Config) -> None:
    cfg = station
    list_id = _proposed(cfg)
    db = open_catalog(cfg.catalog)
    try:
        retention.approve_list(db, list_id, "王分局長 (P1)", "P1", None)
        # After approval: a hold on one, another destroyed under a list of its own.
        retention.place_hold(db, KEEP, "林督導 (S1)", kind=HoldKind.INVESTIGATION, case="刑 9",
                             reason="r", recording=1)  # fmt: skip
        other = retention.propose_list(db, KEEP, LATER, "陳保管 (C1)", "C1", recordings=[2])
        retention.approve_list(db, other, "張副分局長 (P2)", "P2", None)
        retention.execute_list(db, KEEP, LATER, other, "陳保管 (C1)", "C1")
        done = retention.execute_list(db, KEEP, LATER, list_id, "陳保管 (C1)", "C1")
        outcomes = {i.recording_id: i.outcome for i in destruction_rows.items(db, list_id)}
    finally:
        db.close()
    assert [d.recording for d in done] == [3]
    assert "held" in outcomes[1] and outcomes[3] == "destroyed"
    assert outcomes[2].startswith("destroyed by 陳保管 (C1)")  # by the other list, once
    assert _live(cfg) == 1 and len(_entries(cfg, "destroy")) == 2


def test_two_approvers_at_once_approve_a_list_once(station: Config, both_before: Any) -> None:  # noqa: F811
    cfg = station
    list_id = _proposed(cfg)
    both_before(destruction_rows, "approve")

    def approve(by: str, by_id: str) -> Any:
        return _on_catalog(cfg, lambda db: retention.approve_list(db, list_id, by, by_id, None))

    out = _race(approve("王分局長 (P1)", "P1"), approve("張副分局長 (P2)", "P2"))
    lost = [r for r in out if isinstance(r, Exception)]
    assert len(lost) == 1 and isinstance(lost[0], Conflict), out
    approvals = _entries(cfg, "destroy-approve")
    assert len(approvals) == 1 and approvals[0]["actor"] == lost[0].by
    conflicts = [r for r in _entries(cfg, "refused") if r.get("conflict")]
    assert [(r["attempted"], r["list"]) for r in conflicts] == [("destroy-approve", list_id)]


def test_two_executions_at_once_execute_a_list_once(station: Config, both_before: Any) -> None:  # noqa: F811
    cfg = station
    list_id = _proposed(cfg)
    _on_catalog(cfg, lambda db: retention.approve_list(db, list_id, "王分局長 (P1)", "P1", None))()
    both_before(destruction_rows, "start")

    def execute(by: str) -> Any:
        return _on_catalog(cfg, lambda db: retention.execute_list(db, KEEP, LATER, list_id, by,
                                                                  by[-3:-1]))  # fmt: skip

    out = _race(execute("陳保管 (C1)"), execute("另一保管 (C2)"))
    lost = [r for r in out if isinstance(r, Exception)]
    assert len(lost) == 1 and isinstance(lost[0], Conflict), out
    assert len(_entries(cfg, "destroy")) == 3 and _live(cfg) == 0


@pytest.mark.parametrize("attempt", range(3))
def test_approve_and_execute_at_once_never_execute_an_unapproved_list(
    station: Config, monkeypatch: pytest.MonkeyPatch, attempt: int
) -> None:
    cfg = station
    list_id = _proposed(cfg)
    barrier = threading.Barrier(2, timeout=60)  # one for both: each waits for the other
    for name in ("approve", "start"):
        original = getattr(destruction_rows, name)

        def waiting(*args: Any, _original: Any = original, **kw: Any) -> Any:
            barrier.wait()
            return _original(*args, **kw)

        monkeypatch.setattr(destruction_rows, name, waiting)
    out = _race(
        _on_catalog(
            cfg, lambda db: retention.approve_list(db, list_id, "王分局長 (P1)", "P1", None)
        ),
        _on_catalog(
            cfg, lambda db: retention.execute_list(db, KEEP, LATER, list_id, "陳保管 (C1)", "C1")
        ),
    )
    assert not isinstance(out[0], Exception), out  # the approval stands either way
    if isinstance(out[1], Exception):  # the execution looked first: refused, recorded, nothing
        assert isinstance(out[1], Refused) and "only an approved list" in str(out[1])
        assert _live(cfg) == 3 and not _entries(cfg, "destroy")
        assert [r["attempted"] for r in _entries(cfg, "refused")] == ["destroy"]
    else:  # the approval was in first: executed under it
        assert _live(cfg) == 0
        execute = _entries(cfg, "destroy-execute")
        assert execute[0]["time"] > _entries(cfg, "destroy-approve")[0]["time"] or execute


def test_the_daily_pass_destroys_only_under_a_live_standing_authorisation(
    station: Config,
) -> None:
    cfg = station
    db = open_catalog(cfg.catalog)
    try:
        # A config's standing_authorisation alone authorises nothing any more.
        keep = retention.Keeping(retention.Policy(standing_authorisation="陳保管 (C1)"))
        first = retention.daily_pass(db, cfg.catalog, keep, LATER)
        assert not first.destroyed and any("no standing authorisation" in a
                                           for a in first.alarms)  # fmt: skip
        retention.authorise(db, "府警刑字 115-1", "C1", date(2027, 12, 31),
                            "王分局長 (P1)", "P1", date(2027, 12, 1))  # fmt: skip
        expired = retention.daily_pass(db, cfg.catalog, keep, LATER)
        assert not expired.destroyed and _live(cfg) == 3
        retention.authorise(db, "府警刑字 115-2", "C1", date(2028, 6, 30),
                            "王分局長 (P1)", "P1", LATER)  # fmt: skip
        done = retention.daily_pass(db, cfg.catalog, keep, LATER)
        assert len(done.destroyed) == 3 and _live(cfg) == 0
    finally:
        db.close()
    gone = _entries(cfg, "destroy")
    assert {d["authority"] for d in gone} == {"standing"}
    assert all("府警刑字 115-2 approved by 王分局長 (P1)" in d["reason"] for d in gone)
    [auth, _] = [e for e in _entries(cfg, "destroy-authorise")][::-1]
    assert auth["ref"] == "府警刑字 115-2" and auth["approved_by_id"] == "P1"


def test_a_standing_authorisation_names_another_custodian_for_a_year_at_most(
    station: Config,
) -> None:
    """Hostile review (issue 27): an approver authorising themselves, someone not on the staff,
    or for ever, is refused (the first two recorded)."""
    import pytest

    from camdock.catalog import staff as staff_rows
    from camdock.errors import CamdockError, Refused

    db = open_catalog(station.catalog)
    later = LATER + timedelta(days=30)
    try:
        staff_rows.sync(db, station.staff, station.password_hashes)  # as the daemon does at start
        for who in ("P1", "不存在的人 (ZZ)", "D1"):
            with pytest.raises(Refused):
                retention.authorise(db, "r", who, later, "王分局長 (P1)", "P1", LATER)
        with pytest.raises(CamdockError, match="a year at most"):
            retention.authorise(db, "r", "C1", date(9998, 12, 31), "王分局長 (P1)", "P1", LATER)
    finally:
        db.close()
    assert [e["attempted"] for e in _entries(station, "refused")] == ["authorise"] * 3


def test_the_commands_on_a_station_check_roles_and_record_refusals(tmp_path: Path) -> None:
    from test_retention import _age

    cfg_path = _station(tmp_path)
    cfg = load(cfg_path)
    _age(cfg.catalog)  # a year on: every recording is due
    base = ["--config", str(cfg_path), "--json"]

    def act(*args: str) -> Any:  # issue 27: a station's acts go through its daemon
        from stationd import acting

        return acting(cfg_path, *args, "--json")

    unlisted = act("retention", "destroy", "--by", "C1")
    assert unlisted.returncode == ExitCode.NOPERM, unlisted.stderr
    assert "approved destruction list" in unlisted.stderr
    officer = act("retention", "propose", "--by", "D1")
    assert officer.returncode == ExitCode.NOPERM  # an officer proposes nothing
    made = act("retention", "propose", "--by", "C1")
    assert made.returncode == 0 and json.loads(made.stdout)["list"]["recordings"] != []
    list_id = str(json.loads(made.stdout)["list"]["id"])
    assert act("retention", "approve", list_id, "--by", "C1").returncode == ExitCode.NOPERM
    ok = act("retention", "approve", list_id, "--by", "P1")
    assert ok.returncode == 0, ok.stderr
    auth = act("retention", "authorise", "--ref", "115-3", "--custodian", "C1", "--until",
               "2027-06-30", "--by", "C1")  # fmt: skip
    assert auth.returncode == ExitCode.NOPERM  # only an approver authorises
    lists = json.loads(run(camdock_cmd("retention", "lists", *base)).stdout)
    assert [d["state"] for d in lists["lists"]] == ["approved"]
    attempted = [r["attempted"] for r in _entries(cfg, "refused")]
    assert attempted == ["destroy", "destroy-propose", "destroy-approve", "retention.authorise"]


def test_the_register_records_destruction_and_the_report_finds_a_missing_line(
    station: Config,
) -> None:
    from zoneinfo import ZoneInfo

    from camdock.services import audit

    cfg = station
    list_id = _proposed(cfg)
    db = open_catalog(cfg.catalog)
    try:
        retention.approve_list(db, list_id, "王分局長 (P1)", "P1", None)
        retention.execute_list(db, KEEP, LATER, list_id, "陳保管 (C1)", "C1")

        def report() -> dict[str, Any]:
            return audit.period_report(db, ZoneInfo("Asia/Taipei"), date(2026, 1, 1),
                                       date(2026, 12, 31), date(2026, 11, 29), [], [], "A",
                                       False)["register"]  # fmt: skip

        assert report()["complete"] and report()["missing"] == []
        lines = db.execute("SELECT kind, recordings, actor FROM register_acts").fetchall()
        assert sorted(lines) == [("destroy", f"[{i}]", "陳保管 (C1)") for i in (1, 2, 3)]
    finally:
        db.close()
    con = sqlite3.connect(cfg.catalog)  # one line removed with another tool
    con.execute("DELETE FROM register_acts WHERE recordings = '[2]'")
    con.commit()
    con.close()
    db = open_catalog(cfg.catalog)
    try:
        assert not report()["complete"]
        assert report()["missing"] == ["recording 2: destroyed, no destruction line in the "
                                       "register"]  # fmt: skip
    finally:
        db.close()
