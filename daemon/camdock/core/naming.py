"""Filing footage: duty slots, recording times and file names (REG-4.2.3, REG-4.2.4).

Pure functions, no I/O. A recording is filed as ``YYYY/MM/DD/<name>`` in every destination,
where the date is the recording's own (local) date and ``<name>`` carries the duty slot and the
officer, e.g. ``20261128_0800-1200_王小明_A12345_CAM0001_093012.mp4``.

Names must be valid on ext4, exFAT and NTFS: no reserved characters, no control characters, no
trailing dot or space, at most 255 bytes of UTF-8 (ext4) and 255 UTF-16 units (exFAT/NTFS).
Chinese is kept. Every field has a byte budget, so the whole name is bounded by construction.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import PurePosixPath
from typing import Literal

# Characters that exFAT/NTFS (and Windows tools reading the drive) refuse, plus '/' (ext4).
_RESERVED = set('<>:"/\\|?*')
# Byte budgets per field (UTF-8). With the fixed parts the name stays well under 255 bytes.
_OFFICER_BYTES = 60
_BADGE_BYTES = 32
_CAMERA_BYTES = 48
_EXT_CHARS = 8
MAX_NAME_BYTES = 255

TimeSource = Literal["name", "mtime"]


def _truncate_utf8(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` UTF-8 bytes without splitting a character."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    return raw[:limit].decode("utf-8", errors="ignore")


def safe_component(text: str, limit: int, fallback: str = "unknown") -> str:
    """One name field, safe on ext4/exFAT/NTFS: reserved and control characters become '-'."""
    text = unicodedata.normalize("NFC", text)
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in _RESERVED or cat.startswith("C") or cat in ("Zl", "Zp") or ch.isspace():
            out.append("-")
        elif ch == "_":
            # '_' separates the fields of a footage name; keep fields unambiguous.
            out.append("-")
        else:
            out.append(ch)
    cleaned = re.sub(r"-{2,}", "-", "".join(out))
    cleaned = _truncate_utf8(cleaned, limit).strip(" .-")
    return cleaned or fallback


def name_text(text: str) -> str:
    """A name as camdock keeps it: NFC (so 王小明 typed two ways is one officer), trimmed."""
    return unicodedata.normalize("NFC", text).strip()


def name_problem(text: str) -> str | None:
    """Why ``text`` cannot name an officer, a badge or a camera in footage names, or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8 (a legacy encoding such as Big5?); give it in UTF-8"
    if not safe_component(text, 1000, fallback=""):
        return f"{text!r} has no character a file name can keep (footage would file as nobody)"
    return None


def safe_extension(original_name: str) -> str:
    """The original file's extension, lower-cased, kept only when short and alphanumeric."""
    suffix = PurePosixPath(original_name).suffix.lower()
    ext = suffix[1:]
    if ext and len(ext) <= _EXT_CHARS and ext.isascii() and ext.isalnum():
        return "." + ext
    return ""


# ---------------------------------------------------------------------------------------------
# Duty slots


@dataclass(frozen=True)
class DutySlot:
    """The duty slot a recording falls in: a half-open local-time window [start, end)."""

    start: datetime
    end: datetime

    @classmethod
    def from_label(cls, start: datetime, label: str) -> DutySlot:
        """The slot that began at ``start`` with this label (as the catalog keeps it)."""
        end_text = label.partition("-")[2]
        if end_text == "2400":
            end_text = "0000"
        end = start.replace(hour=int(end_text[:2]), minute=int(end_text[2:]))
        if end <= start:
            end += timedelta(days=1)
        return cls(start, end)

    @property
    def label(self) -> str:
        """``0800-1200``; a slot that ends at midnight reads ``2000-2400``."""
        end = "2400" if self.end.time() == time(0) and self.end > self.start else f"{self.end:%H%M}"
        return f"{self.start:%H%M}-{end}"


@dataclass(frozen=True)
class DutySlots:
    """Slot boundaries in local time; a slot runs from one boundary to the next (past midnight)."""

    boundaries: tuple[time, ...]

    def __post_init__(self) -> None:
        if not self.boundaries:
            raise ValueError("duty slots need at least one boundary")
        if list(self.boundaries) != sorted(set(self.boundaries)):
            raise ValueError("duty slot boundaries must be strictly increasing")
        if any(b.second or b.microsecond or b.tzinfo for b in self.boundaries):
            raise ValueError("duty slot boundaries are whole minutes, without a time zone")

    @classmethod
    def every(cls, minutes: int, first: time = time(0)) -> DutySlots:
        """The day split into slots of ``minutes`` (a divisor of 24 h), starting at ``first``."""
        if minutes <= 0 or (24 * 60) % minutes:
            raise ValueError(f"slot length {minutes} min does not divide a day")
        base = first.hour * 60 + first.minute
        marks = sorted(((base + k * minutes) % (24 * 60)) for k in range(24 * 60 // minutes))
        return cls(tuple(time(m // 60, m % 60) for m in marks))

    @classmethod
    def parse(cls, text: str) -> DutySlots:
        """``"00:00,08:00,16:00"`` → slots; raises ValueError with the offending part."""
        parts = [p.strip() for p in text.split(",") if p.strip()]
        marks = []
        for part in parts:
            m = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", part)
            if not m:
                raise ValueError(f"{part!r} is not a time of day HH:MM")
            marks.append(time(int(m.group(1)), int(m.group(2))))
        return cls(tuple(sorted(set(marks))))

    @property
    def text(self) -> str:
        """The boundaries as the config and ``--slots`` write them: ``00:00,08:00,16:00``."""
        return ",".join(f"{b:%H:%M}" for b in self.boundaries)

    def longest_seconds(self) -> int:
        """The length of the longest slot (a camera must hold that much recording)."""
        marks = [b.hour * 3600 + b.minute * 60 for b in self.boundaries]
        gaps = [(marks[(i + 1) % len(marks)] - m) % 86400 or 86400 for i, m in enumerate(marks)]
        return max(gaps)

    def slot_of(self, moment: datetime) -> DutySlot:
        """The slot that contains ``moment`` (an aware or naive local datetime)."""
        day = moment.date()
        # Candidate starts: each boundary today, plus the last boundary yesterday (a slot that
        # wraps past midnight). The slot is the latest start at or before the moment.
        starts = [_at(day - timedelta(days=1), self.boundaries[-1], moment.tzinfo)]
        starts += [_at(day, b, moment.tzinfo) for b in self.boundaries]
        start = max(s for s in starts if s <= moment)
        following = [_at(start.date(), b, moment.tzinfo) for b in self.boundaries]
        following += [_at(start.date() + timedelta(days=1), self.boundaries[0], moment.tzinfo)]
        end = min(s for s in following if s > start)
        return DutySlot(start, end)


def _at(day: date, at: time, tz: tzinfo | None) -> datetime:
    return datetime.combine(day, at, tzinfo=tz)


# ---------------------------------------------------------------------------------------------
# Recording time

# Cameras name files after the moment recording started: 20261128_093012, 20261128093012,
# 2026-11-28_09-30-12, 2026_1128_093012 ... The first plausible date-time in the name wins.
_NAME_TIME = re.compile(
    r"(?<!\d)(20\d\d)[-_]?(\d\d)[-_]?(\d\d)[-_T ]?(\d\d)[-_:]?(\d\d)[-_:]?(\d\d)(?!\d)"
)


def time_from_name(name: str, tz: tzinfo) -> datetime | None:
    """The recording start encoded in a camera file name, in the station's zone, if any."""
    for m in _NAME_TIME.finditer(name):
        y, mo, d, h, mi, s = (int(g) for g in m.groups())
        try:
            return datetime(y, mo, d, h, mi, s, tzinfo=tz)
        except ValueError:
            continue
    return None


@dataclass(frozen=True)
class RecordingTime:
    """When a recording started (and ended, when known), and where that came from."""

    start: datetime
    end: datetime | None
    source: TimeSource


def recording_time(name: str, mtime_ns: int, tz: tzinfo) -> RecordingTime:
    """When a recording was made: from its file name when it carries a time, else its mtime.

    A camera writes the file until recording stops, so the mtime is the end of the recording;
    with a start from the name it is kept as the end when it is plausible (within 24 h after).
    Without a time in the name the mtime is all there is, and it is taken as the start.
    """
    mtime = datetime.fromtimestamp(mtime_ns / 1e9, tz).replace(microsecond=0)
    start = time_from_name(name, tz)
    if start is None:
        return RecordingTime(mtime, None, "mtime")
    end = mtime if start <= mtime <= start + timedelta(hours=24) else None
    return RecordingTime(start, end, "name")


# ---------------------------------------------------------------------------------------------
# Names


@dataclass(frozen=True)
class Filing:
    """Who and what a recording is filed under."""

    officer_name: str
    officer_badge: str
    camera_id: str


def footage_name(start: datetime, slot: DutySlot, filing: Filing, ext: str, seq: int = 1) -> str:
    """The file name of a recording; ``seq`` > 1 only when the plain name is taken (collision).

    The date is the duty day — the day the duty slot started (REG-4.2.3/4) — so an overnight
    shift's recordings after midnight file with the rest of that shift; the recording's own
    start time follows the officer and camera (the slot label says when it crosses midnight)."""
    if seq < 1:
        raise ValueError("seq starts at 1")
    fields = [
        f"{slot.start:%Y%m%d}",
        slot.label,
        safe_component(filing.officer_name, _OFFICER_BYTES),
        safe_component(filing.officer_badge, _BADGE_BYTES),
        safe_component(filing.camera_id, _CAMERA_BYTES),
        f"{start:%H%M%S}",
    ]
    if seq > 1:
        fields.append(str(seq))
    name = "_".join(fields) + ext
    # Bounded by construction; the assert documents the invariant the property tests check.
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES
    return name


UNATTRIBUTED = "unattributed"  # the folder (and officer field) of footage nobody is assigned


def unattributed(camera_id: str) -> Filing:
    """The filing of footage no known officer had: its own folder, the camera in its name."""
    return Filing(UNATTRIBUTED, "none", camera_id)


def footage_relpath(
    start: datetime, slot: DutySlot, filing: Filing, ext: str, seq: int = 1
) -> PurePosixPath:
    """``YYYY/MM/DD/<name>``: folders by year, month and day of the duty day (REG-4.2.3);
    unattributed footage goes to ``YYYY/MM/DD/unattributed/`` for the custodian."""
    name = footage_name(start, slot, filing, ext, seq)
    if filing.officer_name == UNATTRIBUTED:
        return PurePosixPath(*duty_day_folder(slot), UNATTRIBUTED, name)
    return PurePosixPath(*duty_day_folder(slot), name)


def duty_day_folder(slot: DutySlot) -> tuple[str, str, str]:
    """``(YYYY, MM, DD)`` of the day the duty slot started: where its recordings are filed."""
    day = slot.start
    return f"{day:%Y}", f"{day:%m}", f"{day:%d}"
