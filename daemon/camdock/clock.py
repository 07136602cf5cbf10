"""Time, from one place that tests can set (retention and seals need "today").

Every "now" the package reads comes from :func:`now`: the machine's clock in a station, the
clock a test set with :func:`using` in a test, so that no test depends on the calendar (issue 24).
Timestamps in the catalog are UTC ISO 8601 with microseconds and a ``Z``; they sort as text.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol

__all__ = [
    "Clock",
    "FixedClock",
    "ProcessClock",
    "RunningClock",
    "SystemClock",
    "as_moment",
    "iso_local",
    "iso_utc",
    "local_day",
    "local_text",
    "machine_zone",
    "now",
    "using",
    "utcnow",
    "zone_label",
]


class Clock(Protocol):
    """Where "now" comes from."""

    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class SystemClock:
    """The machine's clock (kept on NTP by chrony on a station)."""

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(UTC)


class FixedClock:
    """A clock that stands still until told otherwise: tests travel through time with it."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        """The time it was set to."""
        return self.at

    def set(self, at: datetime) -> None:
        """Move the clock to ``at``."""
        self.at = at


class RunningClock:
    """A clock set to a moment that then runs at the machine's pace (its monotonic clock), so
    that what happens in order is stamped in order; the calendar never enters."""

    def __init__(self, at: datetime) -> None:
        self.at = at
        self._since = time.monotonic()

    def now(self) -> datetime:
        """The moment it was set to, plus the time that has passed since."""
        return self.at + timedelta(seconds=time.monotonic() - self._since)


_clock: Clock = SystemClock()


def now() -> datetime:
    """The current time (UTC, aware) by the process's clock: the machine's, or a test's (a
    test's clock may be set in any zone; the package always gets UTC)."""
    return _clock.now().astimezone(UTC)


class ProcessClock:
    """The process's clock as a Clock object, for a part that takes one (the station): the
    machine's, or whatever a test set with :func:`using`, read at each call."""

    def now(self) -> datetime:
        """The current time (UTC) by the process's clock."""
        return now()


@contextmanager
def using(clock: Clock) -> Iterator[Clock]:
    """Within the block, every "now" of this process comes from ``clock``."""
    global _clock
    before, _clock = _clock, clock
    try:
        yield clock
    finally:
        _clock = before


def iso_utc(moment: datetime) -> str:
    """``moment`` as the catalog writes time: UTC, ISO 8601, microseconds, ``Z``."""
    text = moment.astimezone(UTC).isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z")


def utcnow() -> str:
    """The current time as the catalog writes it."""
    return iso_utc(now())


# --- time as people read it ------------------------------------------------------------------
# One formatter for every form, page, PDF and CLI line: the station's zone, ``YYYY-MM-DD HH:MM``
# (seconds where a record needs them), the zone named once per document (``zone_label``).
# Machines (CSV, JSON) get ISO 8601 with the offset (``iso_local``), never a bare UTC date.


def as_moment(value: str | datetime) -> datetime:
    """A catalog time (ISO 8601, ``Z`` or an offset) as an aware datetime; a naive one is UTC."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def local_text(value: str | datetime | None, tz: tzinfo, *, seconds: bool = False) -> str:
    """``2026-12-03 05:39`` (with ``seconds``, ``05:39:07``) in the station's zone; None → ""."""
    if value is None or value == "":
        return ""
    return f"{as_moment(value).astimezone(tz):%Y-%m-%d %H:%M{':%S' if seconds else ''}}"


def local_day(value: str | datetime | None, tz: tzinfo) -> str:
    """The station's day of a moment (``2026-12-03``); a bare day stays as it is."""
    if value is None or value == "":
        return ""
    if isinstance(value, str) and len(value) == 10:
        return value
    return f"{as_moment(value).astimezone(tz):%Y-%m-%d}"


def iso_local(value: str | datetime | None, tz: tzinfo) -> str | None:
    """ISO 8601 with the station's offset, to the second (``2026-12-03T05:39:07+08:00``)."""
    if value is None or value == "":
        return None
    return as_moment(value).astimezone(tz).isoformat(timespec="seconds")


def zone_label(tz: tzinfo, at: datetime | None = None) -> str:
    """The zone as a document names it once: ``Asia/Taipei (UTC+08:00)``."""
    moment = (at or now()).astimezone(tz)
    offset = moment.strftime("%z")
    name = getattr(tz, "key", None) or moment.tzname() or "UTC"
    return f"{name} (UTC{offset[:3]}:{offset[3:]})"


def machine_zone() -> tzinfo:
    """The machine's zone (/etc/localtime), else UTC: where no station config names one."""
    from zoneinfo import ZoneInfo

    try:
        with open("/etc/localtime", "rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError):
        return UTC
