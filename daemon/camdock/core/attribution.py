"""Whose footage is it? The officer who had the camera when the recording was made (REG-4.2.4),
not whoever has it when it is docked.

Pure: from the camera's dated assignment history (the station's config as the baseline, each
roster from the station server from its duty day on) and its loans (a tested spare lent after
a failed pre-shift test, REG-3.2), the recording's time decides. A recording that matches no
assignment is *unattributed*: still copied, verified, catalogued and cleared, filed apart, and
listed for the custodian to attribute.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from camdock.model import Officer

__all__ = ["Assignment", "Attributed", "Attribution", "Loan", "Source", "attribute"]


class Source(StrEnum):
    """Where a recording's officer came from (catalogued beside it)."""

    LOAN = "loan"  # a spare lent to the officer when the recording was made
    ROSTER = "roster"  # the station server's roster for that duty day
    CONFIG = "config"  # the station's configured assignment (the baseline)
    GIVEN = "given"  # named on the command line by the custodian who offloaded
    MANUAL = "manual"  # attributed later by a custodian (camdock attribute)
    UNATTRIBUTED = "unattributed"


@dataclass(frozen=True)
class Assignment:
    """Camera → officer from a duty day on (None: the configured baseline, since always)."""

    camera_id: str
    officer: Officer
    valid_from: date | None
    source: Source = Source.ROSTER


@dataclass(frozen=True)
class Loan:
    """A spare lent to an officer from ``start`` until it was returned (``end``, or still out)."""

    camera_id: str
    officer: Officer
    start: datetime
    end: datetime | None = None


@dataclass(frozen=True)
class Attributed:
    """The officer a recording is filed under (None: unattributed) and why."""

    officer: Officer | None
    source: Source


def attribute(
    camera_id: str,
    when: datetime,
    duty_day: date,
    assignments: Iterable[Assignment],
    loans: Iterable[Loan] = (),
) -> Attributed:
    """The officer who had ``camera_id`` at ``when`` (in the duty slot that began on
    ``duty_day``): a loan in force then, else the newest assignment from that day or before."""
    lent = [
        loan
        for loan in loans
        if loan.camera_id == camera_id
        and loan.start <= when
        and (loan.end is None or when < loan.end)
    ]
    if lent:
        return Attributed(max(lent, key=lambda loan: loan.start).officer, Source.LOAN)
    valid = [
        a
        for a in assignments
        if a.camera_id == camera_id and (a.valid_from is None or a.valid_from <= duty_day)
    ]
    if not valid:
        return Attributed(None, Source.UNATTRIBUTED)
    newest = max(valid, key=lambda a: a.valid_from or date.min)
    return Attributed(newest.officer, newest.source)


@dataclass(frozen=True)
class Attribution:
    """One camera's assignment history and loans, loaded once for an offload session."""

    camera_id: str
    assignments: tuple[Assignment, ...]
    loans: tuple[Loan, ...] = ()

    def resolve(self, when: datetime, duty_day: date) -> Attributed:
        """The officer a recording made at ``when`` (duty day ``duty_day``) is filed under."""
        return attribute(self.camera_id, when, duty_day, self.assignments, self.loans)
