"""What the control operations answer, typed on the daemon's side: a page's rows as the catalog
gives them (frozen dataclasses), one value per operation that answers more than one list. On
the wire each is a JSON object with these field names (adapters/controlwire.jsonable), so the
console reads ``doc["rec"]`` where the handler wrote ``RecordingPage.rec``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from camdock.catalog.custody import Entry
from camdock.catalog.recordings import Copy, Recording, Unattributed
from camdock.catalog.requests import AccessRequest
from camdock.catalog.seals import Seal
from camdock.catalog.selftests import DutyEntry, DutyTest

__all__ = [
    "DutyLogPage",
    "QueuePage",
    "RecordingPage",
    "RequestMade",
    "RequestPage",
    "RequestStepped",
    "SealsPage",
]


@dataclass(frozen=True)
class RecordingPage:
    """``recording.get``: one recording, its copies, its custody history, its day's seal."""

    rec: Recording
    copies: dict[str, Copy]
    history: list[Entry]
    sealed: list[Seal]


@dataclass(frozen=True)
class RequestPage:
    """``request.get``: a request, the recordings the asker may see in it, and the steps the
    asker may take on it now (the console offers only those)."""

    req: AccessRequest
    recs: list[Recording]
    steps: list[str]


@dataclass(frozen=True)
class SealsPage:
    """``seals.list``: each day's seal in force (its first archive) and the days to seal."""

    days: list[Seal]
    dirty: list[str]


@dataclass(frozen=True)
class QueuePage:
    """``attribution.queue``: recordings filed under a pool camera, and whom they may go to."""

    queue: list[Unattributed]
    officers: list[dict[str, Any]]  # Officer.as_json: JSON as the console shows it


@dataclass(frozen=True)
class DutyLogPage:
    """``duty.log``: the period's pre-shift tests and duty-log entries (REG-3.2)."""

    tests: list[DutyTest]
    entries: list[DutyEntry]
    tests_total: int
    entries_total: int
    offset: int
    per: int


@dataclass(frozen=True)
class RequestMade:
    """``request.new``: the draft, its number, the recordings its selection resolved to."""

    number: str
    request: AccessRequest
    recordings: list[Recording]


@dataclass(frozen=True)
class RequestStepped:
    """``request.step``: the request as the step left it."""

    request: AccessRequest
