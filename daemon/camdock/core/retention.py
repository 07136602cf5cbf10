"""Retention, holds and what may be destroyed (REG-4.3.1). Pure: dates and frozen records in,
decisions out.

REG-4.3.1: footage is kept at least one month (longer where a law says so, or to protect a third
party's rights) and, unless needed to investigate a crime or other unlawful act, destroyed at the
latest one year after it was made. The station's ``[retention]`` policy may keep footage longer
than the minimum and destroy it sooner than the maximum, never the other way: the window is the
policy's days, clamped by the calendar month and year of the regulation (30 days after 1 March is
31 March, one day short of "one month").

The calendar rule, kept everywhere: months count from the day the recording was **made** (its
start in the station's zone), never from the duty day it is filed under (a recording at 01:30
on 1 March in a night slot that began on 28 February counts from 1 March). One month after
1 March is 1 April: the first day it may be destroyed. Where the later month has no such day
(31 January + one month), the minimum rounds **up** to the first of the next month (1 March:
never less than a month kept) and the maximum rounds **down** to the month's last day (29
February 2028 + one year = 28 February 2029: never more than a year kept).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum

__all__ = [
    "MAX_DAYS",
    "MIN_DAYS",
    "Candidate",
    "Hold",
    "HoldKind",
    "Plan",
    "Policy",
    "RequestHold",
    "add_months",
    "covering",
    "default_window",
    "plan",
    "refusal",
]

MIN_RETENTION_MONTHS = 1
MAX_RETENTION_MONTHS = 12
MIN_DAYS, MAX_DAYS = 30, 365  # the bounds a config may choose within (check-config enforces)


def add_months(day: date, months: int, *, round_up: bool = False) -> date:
    """``day`` plus whole calendar months. A month without that day: its last day (31 Jan + 1
    → 28/29 Feb), or with ``round_up`` the first of the month after (31 Jan + 1 → 1 Mar)."""
    total = day.month - 1 + months
    year, month = day.year + total // 12, total % 12 + 1
    last = calendar.monthrange(year, month)[1]
    if day.day > last and round_up:
        return date(year, month, last) + timedelta(days=1)
    return date(year, month, min(day.day, last))


@dataclass(frozen=True)
class Policy:
    """``[retention]``: how long footage is kept. ``standing_authorisation``: the custodian
    under whose standing authorisation the daemon destroys due footage by itself (None: due
    footage waits for ``camdock retention destroy --by STAFF``)."""

    min_days: int = MIN_DAYS
    max_days: int = MAX_DAYS
    standing_authorisation: str | None = None
    authorisation_ref: str | None = None  # the written authorisation's reference number
    backup_generations: int = 14  # catalog backups kept on each drive

    def window(self, recorded: date) -> tuple[date, date]:
        """(retain_until, destroy_by): the first day destruction is allowed, and the day by
        which it is due, for footage made on ``recorded`` (the station's zone)."""
        earliest = max(recorded + timedelta(days=self.min_days),
                       add_months(recorded, MIN_RETENTION_MONTHS, round_up=True))  # fmt: skip
        latest = min(recorded + timedelta(days=self.max_days),
                     add_months(recorded, MAX_RETENTION_MONTHS))  # fmt: skip
        return earliest, max(latest, earliest)


def default_window(recorded: date) -> tuple[date, date]:
    """(retain_until, destroy_by) under the regulation's own bounds."""
    return Policy().window(recorded)


class HoldKind(StrEnum):
    """Why footage is kept. Only an investigation may keep it past one year (REG-4.3.1)."""

    INVESTIGATION = "investigation"  # a crime or other unlawful act
    THIRD_PARTY = "third-party"  # a third party's legal rights
    COMPLAINT = "complaint"  # a citizen's complaint
    REQUEST = "request"  # an open access/copy request covers it (REG-5)

    @property
    def may_pass_max(self) -> bool:
        """Whether footage under this hold may be kept past the one-year limit."""
        return self is HoldKind.INVESTIGATION


@dataclass(frozen=True)
class Hold:
    """A hold in force: one recording, or an officer's or camera's footage over a time range
    (footage that arrives later is covered too)."""

    id: int
    kind: HoldKind
    case: str
    reason: str
    placed_by: str
    recording_id: int | None = None
    officer_badge: str | None = None
    camera_id: str | None = None
    start: datetime | None = None  # the range's ends, timezone-aware
    end: datetime | None = None
    review_by: date | None = None
    recordings: frozenset[int] = frozenset()  # an open request's recordings (kind REQUEST)

    def covers(self, c: Candidate) -> bool:
        """Whether this hold keeps recording ``c``: a range holds the recordings whose own
        time span (start to end) overlaps it, not those whose duty slot merely starts in it.
        A recording whose camera clock is suspect is judged by its recorded and its duty time
        alike: a hold errs on keeping."""
        if self.recordings:
            return c.id in self.recordings
        if self.recording_id is not None:
            return c.id == self.recording_id
        if self.officer_badge is not None and c.officer_badge != self.officer_badge:
            return False
        if self.camera_id is not None and c.camera_id != self.camera_id:
            return False
        if c.span is not None and not c.suspect:
            first, last = c.span
            return (self.end is None or first <= self.end) and (
                self.start is None or last >= self.start
            )
        return any(self._in_range(t) for t in c.times)

    def _in_range(self, t: datetime) -> bool:
        return (self.start is None or t >= self.start) and (self.end is None or t <= self.end)


@dataclass(frozen=True)
class Candidate:
    """What retention needs of one live recording."""

    id: int
    retain_until: date
    destroy_by: date
    camera_id: str
    officer_badge: str | None = None
    times: tuple[datetime, ...] = ()  # recorded start, duty slot start
    relpath: str = ""
    span: tuple[datetime, datetime] | None = None  # recorded start and end (end: start if unknown)
    suspect: bool = False  # the camera's clock was not believed (filed by the dock's time)

    def as_json(self) -> dict[str, object]:
        """The recording in ``retention plan --json``."""
        return {"recording": self.id, "path": self.relpath, "camera": self.camera_id,
                "officer": self.officer_badge, "retain_until": self.retain_until.isoformat(),
                "destroy_by": self.destroy_by.isoformat()}  # fmt: skip


def covering(holds: Iterable[Hold], c: Candidate) -> list[Hold]:
    """The holds in force that keep ``c``."""
    return [h for h in holds if h.covers(c)]


def refusal(c: Candidate, today: date, holds: Iterable[Hold], policy: Policy) -> str | None:
    """Why ``c`` may not be destroyed today (invariant 8), or None when it may. The window is
    checked twice: as catalogued, and as the policy computes it from the recording's day now."""
    # The later of the recording's own day and its duty day: a camera clock gone back to 1970
    # must not make footage due at once (the dock's day is the floor).
    day = max(t.date() for t in c.times) if c.times else c.retain_until
    earliest = max(c.retain_until, policy.window(day)[0] if c.times else c.retain_until)
    if today < earliest:
        return f"kept until {earliest.isoformat()} at least (REG-4.3.1: one month minimum)"
    if held := covering(holds, c):
        refs = ", ".join(f"hold {h.id} ({h.kind.value}, {h.case})" for h in held)
        return f"held: {refs}"
    return None


@dataclass(frozen=True)
class Plan:
    """A day's retention pass: what is due and may go, what is held, what is late."""

    today: date
    due: tuple[Candidate, ...]  # past destroy_by or on it, not held: destroy now
    held: tuple[tuple[Candidate, tuple[int, ...]], ...]  # due, but kept by these holds
    overdue: tuple[Candidate, ...]  # past destroy_by and not destroyed: an alarm
    held_past_max: tuple[Candidate, ...]  # past one year under a hold that may not keep it
    review_due: tuple[Hold, ...]  # holds past their review date: an alarm
    destroyable: int  # live recordings past their minimum (destroyable on request)
    becomes_destroyable: int  # of those, the ones whose minimum ends today
    live: int  # recordings not destroyed
    pending: tuple[int, ...] = field(default=())  # recordings "destroying" (not finished)
    # Destructions that stopped part-way, each why (a drive's error, a hold since): an alarm
    # every day until handled (issue 28).
    stopped: tuple[str, ...] = field(default=())
    requests: tuple[RequestHold, ...] = field(default=())  # what each open request holds

    @property
    def alarms(self) -> list[str]:
        """What needs a person today (invariant 8: an alarm every day until handled)."""
        out = []
        if self.overdue:
            out.append(f"{len(self.overdue)} recording(s) past their destruction date "
                       "(REG-4.3.1) and not held")  # fmt: skip
        if self.held_past_max:
            out.append(f"{len(self.held_past_max)} recording(s) kept past one year by a hold "
                       "that is not an investigation")  # fmt: skip
        if self.review_due:
            ids = ", ".join(str(h.id) for h in self.review_due)
            out.append(f"hold(s) {ids} past their review date")
        return out + list(self.stopped)


@dataclass(frozen=True)
class RequestHold:
    """What an open access/copy request holds (REG-4.3.1) and until when: an approval until it
    expires (``until``, ISO 8601), a draft until ``[access] draft_days`` after it was made,
    a submitted request until it is decided, a done one until it is closed (``until`` None)."""

    request: str  # its number
    state: str
    recordings: tuple[int, ...]
    until: str | None
    note: str  # what ends it


def plan(
    today: date,
    due: Iterable[Candidate],
    holds: Iterable[Hold],
    *,
    destroyable: int,
    becomes_destroyable: int,
    live: int,
    pending: tuple[int, ...] = (),
) -> Plan:
    """Decide the pass from the recordings due by ``today`` (``destroy_by <= today``) and the
    holds in force; the counts come from the catalog as they are."""
    holds = tuple(holds)
    free, held, overdue, past_max = [], [], [], []
    for c in due:
        keeping = covering(holds, c)
        if keeping:
            held.append((c, tuple(h.id for h in keeping)))
            if c.destroy_by < today and not any(h.kind.may_pass_max for h in keeping):
                past_max.append(c)
            continue
        free.append(c)
        if c.destroy_by < today:
            overdue.append(c)
    review = tuple(h for h in holds if h.review_by is not None and h.review_by < today)
    return Plan(today, tuple(free), tuple(held), tuple(overdue), tuple(past_max), review,
                destroyable, becomes_destroyable, live, pending)  # fmt: skip
