"""Time, from one place that tests can set (retention and seals need "today").

Every "now" the package reads comes from :func:`now`: the machine's clock in a station, the
clock a test set with :func:`using` in a test, so that no test depends on the calendar (issue 24).
Timestamps in the catalog are UTC ISO 8601 with microseconds and a ``Z``; they sort as text.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = [
    "Clock",
    "FixedClock",
    "ProcessClock",
    "RunningClock",
    "SystemClock",
    "iso_utc",
    "now",
    "using",
    "utcnow",
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
