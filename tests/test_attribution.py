"""Whose footage it is: the officer who had the camera when it was recorded (REG-4.2.4), from
the configured baseline, each roster's duty day and the loans of spares; and camera clocks that
cannot be right (filed by the dock, flagged). Pure functions first, then the real station."""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from camdock import clock
from camdock.core.attribution import Assignment, Loan, Source, attribute
from camdock.core.bay import Phase
from camdock.core.naming import DutySlots
from camdock.core.plan import ClockCheck, place
from camdock.model import Officer
from camdock.sim.hotplug import fill_camera
from conftest import make_camera, offload, tree_hashes
from test_station import running

TZ = ZoneInfo("Asia/Taipei")
WANG = Officer("A12345", "王小明", "U")
LI = Officer("B23456", "李美玲", "U")
CHEN = Officer("C34567", "陳志豪", "U")
BASE = Assignment("CAM0001", WANG, None, Source.CONFIG)
ROSTER_29 = Assignment("CAM0001", LI, date(2026, 11, 29))


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=TZ)


def test_yesterdays_footage_stays_with_yesterdays_officer() -> None:
    """A roster for the 29th arrived before the camera was docked: the 28th's recordings are
    still the configured officer's, the 29th's the new assignee's."""
    history = [BASE, ROSTER_29]
    assert attribute("CAM0001", at(28, 23), date(2026, 11, 28), history).officer == WANG
    got = attribute("CAM0001", at(29, 9), date(2026, 11, 29), history)
    assert (got.officer, got.source) == (LI, Source.ROSTER)


def test_an_overnight_recording_follows_its_duty_day() -> None:
    """01:30 on the 29th belongs to the duty that began on the 28th, so to the 28th's roster."""
    history = [BASE, ROSTER_29]
    assert attribute("CAM0001", at(29, 1, 30), date(2026, 11, 28), history).officer == WANG


def test_a_loan_covers_what_was_recorded_while_it_was_out() -> None:
    loan = Loan("SPARE01", CHEN, at(29, 7), at(29, 17))
    spare = [Assignment("SPARE01", WANG, None, Source.CONFIG)]
    got = attribute("SPARE01", at(29, 9), date(2026, 11, 29), spare, [loan])
    assert (got.officer, got.source) == (CHEN, Source.LOAN)
    assert attribute("SPARE01", at(29, 6), date(2026, 11, 29), spare, [loan]).officer == WANG
    assert attribute("SPARE01", at(29, 18), date(2026, 11, 29), spare, [loan]).officer == WANG


def test_a_pool_camera_is_unattributed() -> None:
    got = attribute("POOL1", at(29, 9), date(2026, 11, 29), [BASE])
    assert (got.officer, got.source) == (None, Source.UNATTRIBUTED)


@given(day=st.integers(1, 28), hour=st.integers(0, 23))
def test_the_newest_assignment_not_after_the_duty_day_wins(day: int, hour: int) -> None:
    history = [BASE, Assignment("CAM0001", LI, date(2026, 2, 10)), ROSTER_29]
    when = datetime(2026, 2, day, hour, tzinfo=TZ)
    got = attribute("CAM0001", when, when.date(), history).officer
    assert got == (LI if when.date() >= date(2026, 2, 10) else WANG)


def test_camera_clocks_that_cannot_be_right_are_filed_by_the_dock() -> None:
    """A reset clock (1970, 2000, a factory date a year back) or one ahead of the dock: the
    camera's time is kept, the folder is the dock's duty day, the reason is given."""
    slots = DutySlots.parse("06:00,14:00,22:00")
    check = ClockCheck(at(29, 9))
    reset = 12 * 10**9  # a camera whose clock restarted at the epoch: mtime 1970, no name time
    cases = [
        ("MOV0001.MP4", reset, "19700101_080012"),
        ("20000101_080000.MP4", 0, "20000101_080000"),
        ("20250101_120000.MP4", 0, "20250101_120000"),
        ("20310101_090000.MP4", 0, "20310101_090000"),
    ]
    for name, mtime_ns, stamp in cases:
        p = place(f"DCIM/{name}", mtime_ns, slots, TZ, check)
        assert p.suspect is not None, stamp
        assert p.dirrel == ("2026", "11", "29") and p.slot.label == "0600-1400"
        assert f"{p.when.start:%Y%m%d_%H%M%S}" == stamp  # the camera's own time is kept
    fine = place("DCIM/20261128_233000.MP4", 0, slots, TZ, check)
    assert fine.suspect is None and fine.dirrel == ("2026", "11", "28")
    registered = ClockCheck(at(29, 9), not_before=at(1, 0))
    assert place("DCIM/20261031_120000.MP4", 0, slots, TZ, registered).suspect


def test_suspect_times_are_flagged_and_kept_within_retention(tmp_path: Path) -> None:
    """Issue 11's reset camera: a recording dated 1970 must not be due for destruction at
    once (REG-4.3.1); it is filed by the dock's duty day and flagged in the catalog."""
    cam, d1, d2, catalog = tmp_path / "cam", tmp_path / "d1", tmp_path / "d2", tmp_path / "c.db"
    d1.mkdir(), d2.mkdir()
    (cam / "DCIM").mkdir(parents=True)
    clip = cam / "DCIM" / "MOV0001.MP4"
    clip.write_bytes(b"reset clock" * 1000)
    os.utime(clip, (12, 12))  # the camera's clock restarted at 1970
    report = offload(cam, [d1, d2], catalog)
    assert report.ok and any("camera clock suspect" in w for w in report.warnings)
    con = sqlite3.connect(catalog)
    con.row_factory = sqlite3.Row
    [row] = con.execute("SELECT * FROM recordings").fetchall()
    con.close()
    today = clock.now().astimezone(TZ).date()
    assert row["time_suspect"] == 1 and "over a year before" in row["time_note"]
    assert row["recorded_start"].startswith("1970-01-01")
    assert date.fromisoformat(row["destroy_by"]) > today
    assert date.fromisoformat(row["retain_until"]) >= today
    assert row["relpath"].startswith(f"{today:%Y/%m/%d}/")


async def test_the_station_files_by_who_had_the_camera(tmp_path: Path) -> None:
    """REG-4.2.4 at the station: yesterday's shift docked after today's roster arrived is filed
    under yesterday's officer; a pool camera's footage is copied, verified, catalogued and
    cleared, filed under unattributed/ for the custodian."""
    extra = '\n[[cameras]]\nserial = "POOL1"\nid = "POOL01"\n'
    extra += '\n[[bays]]\nnumber = 3\nusb_port = "1-3"\nbutton = 15\n'
    extra += "led = { red = 12, amber = 13, green = 14 }\n"
    now = clock.now().astimezone(TZ)
    yesterday = (now - timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
    cam1, pool = tmp_path / "cam1", tmp_path / "pool"
    fill_camera(cam1, files=2, size=2048, seed=1, start=yesterday.replace(tzinfo=None))
    make_camera(pool, 1)  # recorded 2026-11-28, on a camera nobody is assigned
    async with running(tmp_path, config_extra=extra) as h:
        roster = {
            "version": 1,
            "date": f"{now:%Y-%m-%d}",
            "assignments": [{"camera": "CAM0001", "officer": "B23456"}],
        }
        h.station.apply_roster(json.dumps(roster).encode())
        await h.station.store.call(lambda db: None)  # the roster's history is committed
        assert h.station.cfg.officer_for(h.station.cfg.cameras["SN0001"]).badge == "B23456"  # type: ignore[union-attr]
        h.hot.dock("1-1", "SN0001", cam1)
        h.hot.dock("1-3", "POOL1", pool)
        await h.until(lambda: h.bay(1).state.phase is Phase.DONE)
        await h.until(lambda: h.bay(3).state.phase is Phase.DONE)
        rows = h.catalog(
            "SELECT camera_id, officer_badge, attribution, relpath FROM recordings ORDER BY id"
        )
    mine = [r for r in rows if r[0] == "CAM0001"]
    assert len(mine) == 2 and all(r[1:3] == ("A12345", "config") for r in mine)
    assert all("_王小明_A12345_CAM0001_" in r[3] for r in mine)
    [(_, badge, source, rel)] = [r for r in rows if r[0] == "POOL01"]
    assert (badge, source) == (None, "unattributed")
    assert rel.startswith("2026/11/28/unattributed/") and "_unattributed_none_POOL01_" in rel
    assert tree_hashes(cam1) == {} and tree_hashes(pool) == {}
