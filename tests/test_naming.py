"""Filing names and duty slots (REG-4.2.3, REG-4.2.4)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from camdock.core.naming import (
    MAX_NAME_BYTES,
    DutySlots,
    Filing,
    footage_name,
    footage_relpath,
    recording_time,
    safe_component,
    safe_extension,
    time_from_name,
)
from camdock.core.retention import add_months, default_window
from conftest import TZ

FILING = Filing("王小明", "A12345", "CAM0001")
WINDOWS_RESERVED = set('<>:"/\\|?*')


def test_issue_example_name() -> None:
    """REG-4.2.4: the name carries the duty slot and the officer."""
    start = datetime(2026, 11, 28, 9, 30, 12, tzinfo=TZ)
    slot = DutySlots.every(240).slot_of(start)
    assert footage_name(start, slot, FILING, ".mp4") == (
        "20261128_0800-1200_王小明_A12345_CAM0001_093012.mp4"
    )
    # REG-4.2.3: folders by year, month, day
    assert footage_relpath(start, slot, FILING, ".mp4", seq=3) == PurePosixPath(
        "2026/11/28/20261128_0800-1200_王小明_A12345_CAM0001_093012_3.mp4"
    )


def test_slots_from_boundaries_wrap_midnight() -> None:
    slots = DutySlots.parse("06:00,14:00,22:00")
    night = slots.slot_of(datetime(2026, 11, 28, 2, 0, tzinfo=TZ))
    assert night.label == "2200-0600"
    assert night.start == datetime(2026, 11, 27, 22, 0, tzinfo=TZ)
    assert night.end == datetime(2026, 11, 28, 6, 0, tzinfo=TZ)
    assert slots.slot_of(datetime(2026, 11, 28, 22, 0, tzinfo=TZ)).label == "2200-0600"
    assert slots.slot_of(datetime(2026, 11, 28, 13, 59, 59, tzinfo=TZ)).label == "0600-1400"


def test_an_overnight_shift_files_under_the_day_it_started() -> None:
    """REG-4.2.3/4: a recording at 01:30 on the 29th belongs to the 22:00–06:00 duty that started
    on the 28th, and is filed with the one made at 23:59:30 on the 28th; its own time stays."""
    slots = DutySlots.parse("06:00,14:00,22:00")
    late = datetime(2026, 11, 28, 23, 59, 30, tzinfo=TZ)
    after_midnight = datetime(2026, 11, 29, 1, 30, tzinfo=TZ)
    a = footage_relpath(late, slots.slot_of(late), FILING, ".mp4")
    b = footage_relpath(after_midnight, slots.slot_of(after_midnight), FILING, ".mp4")
    assert a == PurePosixPath("2026/11/28/20261128_2200-0600_王小明_A12345_CAM0001_235930.mp4")
    assert b == PurePosixPath("2026/11/28/20261128_2200-0600_王小明_A12345_CAM0001_013000.mp4")


def test_slot_ending_at_midnight_reads_2400() -> None:
    assert DutySlots.every(240).slot_of(datetime(2026, 1, 1, 23, 0)).label == "2000-2400"


@pytest.mark.parametrize("bad", ["25:00", "8", "08:00,xx", "", "07:60"])
def test_bad_slot_boundaries_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        DutySlots.parse(bad)


@pytest.mark.parametrize("minutes", [0, -60, 7 * 60, 25 * 60])
def test_slot_length_must_divide_the_day(minutes: int) -> None:
    with pytest.raises(ValueError):
        DutySlots.every(minutes)


@given(
    minutes=st.sampled_from([30, 60, 120, 180, 240, 360, 480, 720, 1440]),
    first=st.times().map(lambda t: t.replace(second=0, microsecond=0, minute=0)),
    moment=st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30)),
)
def test_every_moment_is_in_exactly_its_slot(minutes: int, first: time, moment: datetime) -> None:
    slots = DutySlots.every(minutes, first)
    slot = slots.slot_of(moment)
    assert slot.start <= moment < slot.end
    assert slot.end - slot.start == timedelta(minutes=minutes)
    assert slot.start.time() in slots.boundaries


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("20261128_093012_0001.MP4", datetime(2026, 11, 28, 9, 30, 12, tzinfo=TZ)),
        ("CAM01_20261128093012.mp4", datetime(2026, 11, 28, 9, 30, 12, tzinfo=TZ)),
        ("2026-11-28_09-30-12.mov", datetime(2026, 11, 28, 9, 30, 12, tzinfo=TZ)),
        ("20261399_093012.mp4", None),  # not a date: falls back to mtime
        ("MOV_0001.MP4", None),
        ("120261128_093012.mp4", None),  # digits glued on: not a timestamp
    ],
)
def test_time_from_name(name: str, expected: datetime | None) -> None:
    assert time_from_name(name, TZ) == expected


def test_recording_time_prefers_name_and_keeps_plausible_mtime_as_end() -> None:
    end = datetime(2026, 11, 28, 9, 45, tzinfo=TZ)
    rt = recording_time("20261128_093012.MP4", int(end.timestamp() * 1e9), TZ)
    assert (rt.start, rt.end, rt.source) == (
        datetime(2026, 11, 28, 9, 30, 12, tzinfo=TZ),
        end,
        "name",
    )
    rt = recording_time("MOV_0001.MP4", int(end.timestamp() * 1e9), TZ)
    assert (rt.start, rt.end, rt.source) == (end, None, "mtime")
    # An mtime before the start (camera clock reset) is not taken as the end.
    rt = recording_time("20261128_093012.MP4", int((end - timedelta(days=3)).timestamp() * 1e9), TZ)
    assert rt.end is None


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("王小明", "王小明"),
        ('a<b>c:d"e/f\\g|h?i*j', "a-b-c-d-e-f-g-h-i-j"),
        ("  trailing dots...  ", "trailing-dots"),
        ("line\nbreak\ttab", "line-break-tab"),
        ("under_score", "under-score"),
        ("", "unknown"),
        ("...", "unknown"),
        ("Ｆｕｌｌ", "Ｆｕｌｌ"),
    ],
)
def test_safe_component(raw: str, safe: str) -> None:
    assert safe_component(raw, 60) == safe


@pytest.mark.parametrize(
    ("name", "ext"),
    [("a.MP4", ".mp4"), ("a.tar.gz", ".gz"), ("a", ""), ("a.m p4", ""), ("a.超", "")],
)
def test_safe_extension(name: str, ext: str) -> None:
    assert safe_extension(name) == ext


@given(
    officer=st.text(max_size=300),
    badge=st.text(max_size=300),
    camera=st.text(max_size=300),
    original=st.text(max_size=300),
    moment=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)),
    seq=st.integers(min_value=1, max_value=9999),
)
def test_any_input_gives_a_valid_name_on_ext4_exfat_ntfs(
    officer: str, badge: str, camera: str, original: str, moment: datetime, seq: int
) -> None:
    slot = DutySlots.every(240).slot_of(moment)
    rel = footage_relpath(
        moment, slot, Filing(officer, badge, camera), safe_extension(original), seq
    )
    name = rel.name
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES  # ext4
    assert len(name.encode("utf-16-le")) // 2 <= 255  # exFAT / NTFS
    assert not (WINDOWS_RESERVED & set(name))
    assert all(ord(c) >= 32 for c in name)
    assert name == name.rstrip(" .")
    assert rel.parts[:3] == (f"{moment:%Y}", f"{moment:%m}", f"{moment:%d}")
    assert len(rel.parts) == 4 and ".." not in rel.parts
    # Deterministic: the same inputs give the same name.
    assert (
        footage_relpath(moment, slot, Filing(officer, badge, camera), safe_extension(original), seq)
        == rel
    )


@given(
    a=st.tuples(st.text(max_size=20), st.integers(1, 50)),
    b=st.tuples(st.text(max_size=20), st.integers(1, 50)),
)
def test_distinct_sequence_numbers_never_collide(a: tuple[str, int], b: tuple[str, int]) -> None:
    moment = datetime(2026, 11, 28, 9, 30, 12)
    slot = DutySlots.every(240).slot_of(moment)
    if a[1] != b[1]:
        assert footage_name(moment, slot, FILING, ".mp4", a[1]) != footage_name(
            moment, slot, FILING, ".mp4", b[1]
        )


def test_retention_window_reg_4_3_1() -> None:
    """REG-4.3.1: at least one month, destroyed at the latest one year after recording."""
    from datetime import date

    # 31 Jan + one calendar month is 28 Feb, + 30 days is 2 Mar: the longer keeps (min_days).
    assert default_window(date(2026, 1, 31)) == (date(2026, 3, 2), date(2027, 1, 31))
    assert add_months(date(2024, 2, 29), 12) == date(2025, 2, 28)
    assert add_months(date(2026, 11, 28), 1) == date(2026, 12, 28)
