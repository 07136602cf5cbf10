"""The console's day (issue 29): the home view, the catalog search (name, badge, camera, case,
days; paging, count, sort) and the custody-log search ("who viewed what", REG-7.1), through
Starlette's TestClient against the daemon's real side of the control socket and a real catalog
(tests/test_web_pages.py's station). Bad parameters are a 400 page, never a 500."""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

import test_web_pages
from camdock import clock, forms
from camdock.catalog import open_catalog, selftests, write_txn
from camdock.clock import FixedClock
from camdock.config import Config
from camdock.station.consoleday import ChainMemo
from camdock.station.control import Control
from camdock.station.jobs import ChainWarm
from test_web_pages import Station, _approved, _new_request, _token


@pytest.fixture
def station(tmp_path: Path) -> Iterator[Station]:
    """tests/test_web_pages.py's station: its daemon, its console, two recordings."""
    yield from test_web_pages.station.__wrapped__(tmp_path)


_ROWS = re.compile(r'<a href="/recordings/(\d+)">')


def _ids(html: str) -> list[int]:
    return [int(x) for x in _ROWS.findall(html)]


# --- the home view ---------------------------------------------------------------------------


def test_the_landing_page_is_the_home_view_and_the_bays_moved(station: Station) -> None:
    c = station.client("C1")
    r = c.get("/")
    assert r.status_code == 200, r.text
    assert "今日概況" in r.text and "Today at the station" in r.text
    # REG-3.2 / REG-4.2.7: the day's duty-log entry (the fixture's failed test) is counted.
    assert "/duty?from=2026-11-29&amp;to=2026-11-29" in r.text
    assert "員警工作紀錄簿登載" in r.text
    # The custodian sees the station's alarms and the unsealed day (2026-11-28, REG-4.2.5).
    assert "未封存之勤務日" in r.text and "2026-11-28" in r.text
    # A custodian is not an approver: the approvals wait for someone else.
    assert "待核准之調閱／複製申請" not in r.text
    assert c.get("/bays").status_code == 200 and "座號" in c.get("/bays").text


def test_an_approver_sees_what_waits_for_him_and_an_officer_only_his_own(
    station: Station,
) -> None:
    officer = station.client("D1")
    number = _new_request(officer)
    r = officer.post(f"/requests/{number}/submit", data={"csrf": _csrf_of(officer)})
    assert r.status_code == 303
    approver = station.client("P1").get("/")
    assert approver.status_code == 200
    tile = re.search(r'<span class="n">(\d+)</span><span class="zh">待核准之調閱', approver.text)
    assert tile is not None and tile.group(1) == "1", approver.text
    mine = officer.get("/")
    assert mine.status_code == 200
    assert "我未結案的申請" in mine.text
    # An officer sees neither the station's alarms nor the unsealed days, nor the approvals.
    assert "未封存之勤務日" not in mine.text and "待核准" not in mine.text


def _csrf_of(c: TestClient) -> str:
    return _token(c)


# --- the catalog search ----------------------------------------------------------------------


def test_the_catalog_finds_by_name_badge_camera_and_days(station: Station) -> None:
    c = station.client("C1")
    by_badge = c.get("/catalog?officer=A12345")
    by_name = c.get("/catalog?officer=王小")  # the start of a name
    assert by_badge.status_code == by_name.status_code == 200
    assert _ids(by_badge.text) == _ids(by_name.text) == [1]
    assert _ids(c.get("/catalog?camera=POOL01").text) == [2]
    days = c.get("/catalog?from=2026-11-28&to=2026-11-28")
    assert sorted(_ids(days.text)) == [1, 2] and "共 2 筆" in days.text
    assert _ids(c.get("/catalog?from=2026-11-29").text) == []
    assert _ids(c.get("/catalog?day=2026-11-28").text) != []  # links from before the range
    # Local time on the page: 09:00 in Taipei (the file's name), never UTC.
    assert "2026-11-28 09:00:00" in by_badge.text


def test_the_catalog_finds_a_case_by_its_hold_or_its_request(station: Station) -> None:
    number, _ = _approved(station)
    c = station.client("C1")
    assert _ids(c.get(f"/catalog?case={number}").text) == [1]
    r = c.post("/holds/new", data={"csrf": _csrf_of(c), "kind": "investigation",
                                   "case": "北市刑字第123號", "reason": "傷害案",
                                   "recording": "2"})  # fmt: skip
    assert r.status_code == 303, r.text
    assert _ids(c.get("/catalog?case=北市刑字第123號").text) == [2]
    assert _ids(c.get("/catalog?case=nothing-like-it").text) == []


def test_the_catalog_pages_and_sorts(station: Station) -> None:
    c = station.client("C1")
    newest = c.get("/catalog?sort=recorded&desc=1")
    oldest = c.get("/catalog?sort=recorded&desc=0")
    assert _ids(newest.text) == list(reversed(_ids(oldest.text))) and len(_ids(oldest.text)) == 2
    first = c.get("/catalog?sort=id&desc=0&per=1")
    assert first.status_code == 200 and _ids(first.text) == [1]
    assert "page=2" in first.text and 'rel="next"' in first.text
    second = c.get("/catalog?sort=id&desc=0&per=1&page=2")
    assert _ids(second.text) == [2] and 'rel="prev"' in second.text
    assert 'rel="next"' not in second.text
    assert _ids(c.get("/catalog?page=9").text) == []


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("day=2026", "from"),
        ("from=2026-02-30", "from"),
        ("to=yesterday", "to"),
        ("sort=sha256;DROP TABLE recordings", "sort"),
        ("desc=x", "desc"),
        ("page=0", "page"),
        ("page=-1", "page"),
        ("page=99999999999999999999999", "page"),
        ("per=100000", "per"),
        ("from=2026-12-01&to=2026-11-01", "from"),
    ],
)
def test_bad_catalog_parameters_are_a_clear_400(station: Station, query: str, names: str) -> None:
    r = station.client("C1").get(f"/catalog?{query}")
    assert r.status_code == 400, (query, r.status_code, r.text[:300])
    assert names in r.text and "無法執行" in r.text


def test_extreme_days_are_answered_not_crashed(station: Station) -> None:
    c = station.client("C1")
    for q in ("from=0001-01-01", "to=9999-12-31", "from=0001-01-01&to=9999-12-31"):
        r = c.get(f"/catalog?{q}")
        assert r.status_code == 200, (q, r.text[:300])
        assert sorted(_ids(r.text)) == [1, 2]
    for q in ("from=0001-01-01", "to=9999-12-31"):
        assert c.get(f"/custody?{q}").status_code == 200


def test_the_catalog_and_custody_log_are_not_an_officers(station: Station) -> None:
    officer = station.client("D1")
    for url in ("/catalog?officer=A12345", "/custody?person=C1"):
        r = officer.get(url)
        assert r.status_code == 403 and "無權" in r.text
    db = open_catalog(station.cfg.catalog)
    try:  # the refusals are on the record (REG-7.1)
        found = db.execute("SELECT count(*) FROM custody_log WHERE action = 'refused' AND "
                           "actor LIKE '%(D1)%'").fetchone()[0]  # fmt: skip
    finally:
        db.close()
    assert found >= 2


# --- the custody log -------------------------------------------------------------------------


def test_who_viewed_what(station: Station) -> None:
    _, custodian = _approved(station)
    r = custodian.get("/custody?person=P1")
    assert r.status_code == 200, r.text
    assert "核准 approved" in r.text or "approved" in r.text
    assert "王分局長 (P1)" in r.text
    by_name = custodian.get("/custody?person=王分局")
    assert "王分局長 (P1)" in by_name.text
    by_action = custodian.get("/custody?action=approve")
    assert "王分局長 (P1)" in by_action.text and "陳保管 (C1)" not in by_action.text
    one = custodian.get("/custody?recording=1&action=store")
    assert one.status_code == 200 and "共 1 筆" in one.text
    assert '<a href="/recordings/1">1</a>' in one.text
    # Times as people read them: Taipei, with the zone named once in the footer.
    assert re.search(r"2026-11-29 \d\d:\d\d:\d\d", r.text) and "+08:00" in r.text


def test_the_custody_log_pages(station: Station) -> None:
    c = station.client("C1")
    total = int(re.search(r"共 (\d+) 筆", c.get("/custody").text).group(1))  # type: ignore[union-attr]
    assert total > 2
    page_2 = c.get(f"/custody?page={(total - 1) // 50 + 2}")
    assert page_2.status_code == 200 and "沒有符合的紀錄" in page_2.text


@pytest.mark.parametrize(
    "query",
    [
        "action=delete-everything",
        "recording=abc",
        "recording=99999999999999999999999",
        "from=2026",
        "page=0",
        "page=100001",
    ],
)
def test_bad_custody_parameters_are_a_clear_400(station: Station, query: str) -> None:
    r = station.client("A1").get(f"/custody?{query}")
    assert r.status_code == 400, (query, r.status_code, r.text[:300])
    assert "無法執行" in r.text


# --- the audit page's chain check, kept per chain head and catalog -----------------------------


def test_the_audit_page_still_sees_an_edit_behind_the_catalogs_back(station: Station) -> None:
    """Invariant 12, REG-7.2: the console keeps the chain's check until what it read changes;
    an edit made with sqlite3 (no custody entry, the chain's head as it was) is still named on
    the next load."""
    auditor = station.client("A1")
    url = "/audit?from=2026-01-01&to=2030-12-31"
    first = auditor.get(url)
    assert first.status_code == 200 and "changed outside camdock" not in first.text
    assert auditor.get(url).text.count("changed outside camdock") == 0  # the kept check
    raw = sqlite3.connect(station.cfg.catalog)
    with raw:
        raw.execute("UPDATE recordings SET size = size + 1 WHERE id = 1")
    raw.close()
    after = auditor.get(url)
    assert after.status_code == 200
    assert "changed outside camdock" in after.text, after.text[:2000]


def test_the_audit_page_sees_an_edit_whose_file_times_were_put_back(station: Station) -> None:
    """Review F5: an insider who restores the catalog's and its WAL's modification times after
    an edit (``touch -d``) still has the edit named: the memo's key takes the WAL index's
    change counter and the files' ctime, which no one can set back."""
    auditor = station.client("A1")
    url = "/audit?from=2026-01-01&to=2030-12-31"
    assert "changed outside camdock" not in auditor.get(url).text
    files = [station.cfg.catalog, station.cfg.catalog.with_name(station.cfg.catalog.name + "-wal")]
    times = {f: f.stat() for f in files if f.exists()}
    raw = sqlite3.connect(station.cfg.catalog)
    with raw:
        raw.execute("UPDATE recordings SET size = size + 1 WHERE id = 1")
    raw.close()
    for f, st in times.items():
        if f.exists():  # the last connection to close may take the WAL away
            os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert "changed outside camdock" in auditor.get(url).text


# --- the audit page's chain check, kept warm by the daemon (issue 29) -------------------------


class _Host:
    """The station as station/jobs.ChainWarm sees it: its config, and whether a bay offloads."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.offloading = False

    def busy(self) -> bool:
        return self.offloading

    def status_changed(self) -> None:
        pass


def test_the_daemon_keeps_the_chain_check_warm_and_an_auditor_is_never_kept_waiting(
    station: Station,
) -> None:
    """Invariant 12, REG-7.2: the daemon checks the chain in the background while the bays are
    idle (never while one offloads), so the audit page is served from its result; while a
    newer check runs, the page gives the last result marked as of its time ("checking…")
    rather than waiting; once no check runs, an edit behind camdock's back is named."""
    cfg = station.cfg
    when = FixedClock(datetime(2026, 11, 29, 1, 30, tzinfo=UTC))  # 09:30 in Taipei
    memo = ChainMemo(when.now)
    assert Control(cfg, (station.tmp,), memo=memo).chain_memo is memo  # the station's memo
    host = _Host(cfg)
    job = ChainWarm(host, memo, first=0)
    db = open_catalog(cfg.catalog)
    try:
        host.offloading = True
        assert not job.once() and not memo.fresh(db, cfg)  # a bay offloads: nothing started
        host.offloading = False
        assert job.once() and memo.fresh(db, cfg)
        day = (date(2026, 1, 1), date(2030, 12, 31), date(2026, 11, 29))
        doc = memo.report(db, cfg, *day, "A1")
        assert doc["chain_checked_at"] == "2026-11-29T09:30:00+08:00"
        assert doc["chain_checking"] is None and doc["chain_problems"] == []
        raw = sqlite3.connect(cfg.catalog)
        with raw:
            raw.execute("UPDATE recordings SET size = size + 1 WHERE id = 1")
        raw.close()
        assert not memo.fresh(db, cfg)
        when.set(datetime(2026, 11, 29, 2, 0, tzinfo=UTC))
        with memo._checking:  # a check running (the daemon's): the asker does not wait
            memo._since = when.now()
            stale = memo.report(db, cfg, *day, "A1")
            assert not job.once()  # one check at a time
        assert stale["chain_checked_at"] == "2026-11-29T09:30:00+08:00"
        assert stale["chain_checking"] == "2026-11-29T10:00:00+08:00"
        assert stale["chain_problems"] == []
        body = forms.report_body(stale, cfg.unit, cfg.tz)
        assert "檢查中" in body and "checking…" in body and "2026-11-29 09:30" in body
        memo._since = None
        now = memo.report(db, cfg, *day, "A1")  # no check running: checked now
        assert now["chain_checked_at"] == "2026-11-29T10:00:00+08:00"
        assert any("changed outside camdock" in p for p in now["chain_problems"])
    finally:
        db.close()


# --- the duty log, paged (issue 29) ------------------------------------------------------------


def test_the_duty_log_pages_counts_and_sorts_by_time(station: Station) -> None:
    """REG-3.2: a period's duty-log entries come 50 a page with their count, newest first or
    oldest first; a page out of bounds is a 400 page."""
    db = open_catalog(station.cfg.catalog)
    with write_txn(db):
        for i in range(120):
            at = datetime(2026, 11, 20, 1, 0, tzinfo=UTC) + timedelta(minutes=i)
            with clock.using(FixedClock(at)):
                selftests.add_duty_log(db, selftests.NewDutyEntry(
                    officer_badge="A12345", officer_name="王小明", camera_id=f"CAM{i:04d}",
                    entry="攝影機功能檢測未通過：電量不足"))  # fmt: skip
    db.close()
    c = station.client("C1")
    url = "/duty?from=2026-11-20&to=2026-11-20"
    first = c.get(url)
    assert first.status_code == 200, first.text
    cams = re.findall(r"<td>(CAM0\d{3})</td>", first.text)
    assert cams == [f"CAM{i:04d}" for i in range(119, 69, -1)]  # the newest 50
    assert "工作紀錄 120 筆" in first.text and "120 duty-log entries" in first.text
    assert "第 1 / 3 頁" in first.text and "page 1 of 3" in first.text
    last = c.get(url + "&page=3")
    assert re.findall(r"<td>(CAM0\d{3})</td>", last.text) == [
        f"CAM{i:04d}" for i in range(19, -1, -1)
    ]
    assert 'rel="next"' not in last.text and 'rel="prev"' in last.text
    oldest = c.get(url + "&desc=0&page=2")
    assert re.findall(r"<td>(CAM0\d{3})</td>", oldest.text) == [
        f"CAM{i:04d}" for i in range(50, 100)
    ]
    assert "舊到新" in oldest.text and "oldest first" in oldest.text
    for bad in ("&page=0", "&page=x", "&page=100001", "&desc=maybe"):
        r = c.get(url + bad)
        assert r.status_code == 400, (bad, r.status_code)
