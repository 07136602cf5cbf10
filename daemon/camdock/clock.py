"""Time, from one place that tests can set (retention and seals need "today").

Timestamps in the catalog are UTC ISO 8601 with microseconds and a ``Z``; they sort as text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "FixedClock", "SystemClock", "iso_utc", "utcnow"]


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


def iso_utc(moment: datetime) -> str:
    """``moment`` as the catalog writes time: UTC, ISO 8601, microseconds, ``Z``."""
    text = moment.astimezone(UTC).isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z")


def utcnow() -> str:
    """The current time as the catalog writes it."""
    return iso_utc(datetime.now(UTC))
