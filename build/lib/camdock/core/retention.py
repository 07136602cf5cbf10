"""Retention windows (REG-4.3.1): kept at least one month, destroyed at the latest one year after
the recording was made, unless on hold. Pure date arithmetic."""

from __future__ import annotations

import calendar
from datetime import date

MIN_RETENTION_MONTHS = 1
MAX_RETENTION_MONTHS = 12


def add_months(day: date, months: int) -> date:
    """``day`` plus whole calendar months, clamped to the month's end (31 Jan + 1 → 28/29 Feb)."""
    total = day.month - 1 + months
    year, month = day.year + total // 12, total % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def default_window(recorded: date) -> tuple[date, date]:
    """(retain_until, destroy_by): the earliest day destruction is allowed, and the latest day by
    which it is due (REG-4.3.1)."""
    return add_months(recorded, MIN_RETENTION_MONTHS), add_months(recorded, MAX_RETENTION_MONTHS)
