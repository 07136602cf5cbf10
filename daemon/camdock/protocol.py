"""The control protocol, declared once: every operation the console may ask of the daemon, its
arguments as a typed request, who may call it, what it does, and the kinds of error it answers.

On the wire a request is ``{"op", "token", "args", "channel"}`` (``channel``: ``console``, the
default, or ``cli`` for ``camdock``'s acting commands; named in every custody entry) and an
answer ``{"ok", "result"}`` or ``{"ok": false, "status", "kind", "error"}`` (adapters/control.py
carries them). Here:

- each operation is a frozen dataclass of its arguments, registered by ``@_op`` with its name,
  the roles that may call it, whether it writes, passes a descriptor or is slow (its own
  workers on the socket; the console waits for it without a deadline), and its error kinds;
- ``parse`` turns the JSON ``args`` into that dataclass: an unknown field, a missing one or one
  of the wrong type is a ``BadRequest`` naming the field; ``args`` is the way back;
- an error has an ``ErrorKind``, and ``STATUS`` is the one table from kind to HTTP status, used
  by the daemon when it answers and by the console when it turns an answer into a page;
  ``kind_of`` maps camdock's exceptions to kinds, in one place.

The machinery (``Op``, ``Args``, ``parse``, the kinds and their tables) is in rpc.py and
re-exported here. The daemon's handlers (station/ops_read.py, station/ops_act.py) take these
requests; the console (web/) and the
acting commands (commands/remote.py) build them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from camdock.core.access import Purpose, Role
from camdock.core.retention import HoldKind
from camdock.rpc import (
    CHANNELS,
    EVERYONE,
    EXIT,
    OPS,
    STATUS,
    Args,
    BadRequest,
    ErrorKind,
    Op,
    kind_of,
    parse,
)
from camdock.rpc import declare as _op

__all__ = [
    "CHANNELS",
    "EVERYONE",
    "EXIT",
    "OPS",
    "SEES_AUDIT",
    "SEES_CATALOG",
    "SEES_SEALS",
    "SLOW_OPS",
    "STATUS",
    "Args",
    "BadRequest",
    "CatalogSort",
    "ErrorKind",
    "Op",
    "RequestKind",
    "kind_of",
    "parse",
]

SEES_CATALOG = frozenset({Role.CUSTODIAN, Role.SUPERVISOR, Role.APPROVER, Role.AUDITOR})
SEES_SEALS = frozenset({Role.SUPERVISOR, Role.APPROVER, Role.CUSTODIAN})
SEES_AUDIT = frozenset({Role.AUDITOR, Role.SUPERVISOR, Role.APPROVER})

# Fields whose names on the wire are Python keywords (``from``) or read oddly in Python.
_FROM, _TO = {"wire": "from"}, {"wire": "to"}


# --- the session -----------------------------------------------------------------------------


_LOGIN_ERRORS = frozenset(
    {ErrorKind.UNAUTHENTICATED, ErrorKind.TOO_MANY, ErrorKind.OTP_REQUIRED, ErrorKind.FORBIDDEN}
)


@_op("login", session=False, errors=_LOGIN_ERRORS)
@dataclass(frozen=True)
class Login(Args):
    """Log in: answers ``{"token", "person"}``. ``otp``: the one-time code (or a recovery
    code) approvers, supervisors and auditors need (without it: ``otp_required``); ``client``:
    who the console serves (its client's address), for the per-client limit."""

    staff: str
    password: str
    otp: str | None = None
    client: str | None = None


@_op("session")
@dataclass(frozen=True)
class Session(Args):
    """Whether this token's session is live: answers the person, as at login. ``active`` 0:
    a check that is not the person's doing (a live page's re-check) and leaves the idle clock
    as it is."""

    active: int = 1


@_op("logout", session=False)
@dataclass(frozen=True)
class Logout(Args):
    """End this token's session (whether or not it was still valid); with ``everywhere`` 1
    every session of its person (the console's log-out button). A command's own logout ends
    only its own session: the person's console and other commands go on."""

    everywhere: int = 0


@_op("form.forged")
@dataclass(frozen=True)
class FormForged(Args):
    """A post of this session that lacked its form's token (forged, or the form expired): the
    daemon records the refusal under the session's person (REG-7.1), so the console's refusal
    page says "recorded" only when it was (issue 29). ``url``: what the post was to."""

    url: str = ""


# --- reading ---------------------------------------------------------------------------------

_NOT_FOUND = frozenset({ErrorKind.NOT_FOUND})


@_op("catalog.search", SEES_CATALOG)
@dataclass(frozen=True)
class CatalogSearch(Args):
    """Recordings by officer, camera and day (any left out matches all)."""

    officer: str | None = None
    camera: str | None = None
    day: str | None = None


@_op("recording.get", SEES_CATALOG, errors=_NOT_FOUND)
@dataclass(frozen=True)
class RecordingGet(Args):
    """One recording: ``{"rec", "copies", "history", "sealed"}``."""

    id: int


@_op("requests.list")
@dataclass(frozen=True)
class RequestsList(Args):
    """The requests this staff member may see (an officer: their own)."""


@_op("request.get", errors=_NOT_FOUND)
@dataclass(frozen=True)
class RequestGet(Args):
    """One request and its recordings: ``{"req", "recs"}``."""

    number: str


@_op("seals.list", SEES_SEALS)
@dataclass(frozen=True)
class SealsList(Args):
    """Each duty day's seal and the days changed since: ``{"days", "dirty"}``."""


@_op("holds.list", SEES_CATALOG)
@dataclass(frozen=True)
class HoldsList(Args):
    """Every hold."""


@_op("retention.plan", SEES_CATALOG)
@dataclass(frozen=True)
class RetentionPlan(Args):
    """The retention plan as of today: ``{"plan", "auto"}``."""


@_op("attribution.queue", SEES_CATALOG)
@dataclass(frozen=True)
class AttributionQueue(Args):
    """The unattributed recordings and the officers: ``{"queue", "officers"}``."""


@_op("duty.log", SEES_CATALOG)
@dataclass(frozen=True)
class DutyLog(Args):
    """The pre-shift tests and duty-log entries between two UTC instants (REG-3.2): page
    ``page`` (from 1) of each, newest first unless ``desc`` is 0 (issue 29)."""

    start: str
    end: str
    desc: int = 1
    page: int = 1


@_op("register", SEES_CATALOG)
@dataclass(frozen=True)
class Register(Args):
    """The access/copy register between two UTC instants (Annex 3)."""

    start: str
    end: str


@_op("audit.report", SEES_AUDIT, slow=True)
@dataclass(frozen=True)
class AuditReport(Args):
    """The six-monthly audit report over the days ``from`` to ``to`` (REG-7.2)."""

    first: date = field(metadata=_FROM)
    last: date = field(metadata=_TO)


# --- the console's day (issue 29): home view, catalog search, custody log -------------------


class CatalogSort(StrEnum):
    """What the catalog search sorts by (catalog/search.SortKey: indexed columns only)."""

    RECORDED = "recorded"
    OFFICER = "officer"
    CAMERA = "camera"
    ID = "id"


@_op("home", EVERYONE)
@dataclass(frozen=True)
class Home(Args):
    """What waits today for this staff member: ``{"today", "alarms", "unsealed", "roles"}``."""


@_op("catalog.find", SEES_CATALOG)
@dataclass(frozen=True)
class CatalogFind(Args):
    """A page of recordings by officer (badge or name), camera, case (a hold's case number or
    a request's number) and duty days ``from``..``to``, sorted: ``{"total", "more", "offset",
    "rows"}``. ``page`` counts from 1; ``per`` at most 200."""

    officer: str | None = None
    camera: str | None = None
    case: str | None = None
    first: date | None = field(default=None, metadata=_FROM)
    last: date | None = field(default=None, metadata=_TO)
    sort: CatalogSort = CatalogSort.RECORDED
    desc: int = 1
    page: int = 1
    per: int = 50


@_op("custody.search", SEES_CATALOG)
@dataclass(frozen=True)
class CustodySearch(Args):
    """A page of custody-log entries, newest first, by person (a staff id or the start of a
    name), action, recording and days ``from``..``to`` in the station's zone: who viewed
    what (REG-7.1)."""

    person: str | None = None
    action: str | None = None
    recording: int | None = None
    first: date | None = field(default=None, metadata=_FROM)
    last: date | None = field(default=None, metadata=_TO)
    page: int = 1


_VIEW_ERRORS = frozenset({ErrorKind.NOT_FOUND, ErrorKind.FORBIDDEN})


@_op("video.open", write=True, passes_fd=True, errors=_VIEW_ERRORS)
@dataclass(frozen=True)
class VideoOpen(Args):
    """A recording of an approved request, opened for its supervised viewing (invariant 9):
    answers ``{"viewing"}`` with the descriptor; the stream log starts here."""

    number: str
    id: int


@_op("video.done", write=True, errors=frozenset({ErrorKind.NOT_FOUND, ErrorKind.CONFLICT}))
@dataclass(frozen=True)
class VideoDone(Args):
    """A viewing's stream ended (played out, or the client went away): its register line and
    custody entry, with the bytes sent (REG-5.3, REG-7.1)."""

    viewing: int
    sent: int


# --- acting ----------------------------------------------------------------------------------

_ACT_ERRORS = frozenset({ErrorKind.FORBIDDEN, ErrorKind.NOT_FOUND, ErrorKind.CONFLICT})


class RequestKind(StrEnum):
    """What a request asks for (Annex 2)."""

    VIEW = "view"
    COPY = "copy"
    BOTH = "both"


@_op("request.new", write=True, errors=_ACT_ERRORS)
@dataclass(frozen=True)
class RequestNew(Args):
    """A new access/copy request (Annex 2) over a selection: answers ``{"number"}``."""

    begin: datetime = field(metadata=_FROM)  # local time in the station's zone
    end: datetime = field(metadata=_TO)
    kind: RequestKind
    purpose: Purpose
    duty_item: str = ""
    reason: str = ""
    unit_supervisor: str = ""
    officer: str | None = None
    camera: str | None = None
    viewing_at: datetime | None = None  # the viewing asked for, local time
    applicant_unit: str = ""
    applicant_title: str = ""


@_op("request.step", write=True, errors=_ACT_ERRORS)
@dataclass(frozen=True)
class RequestStep(Args):
    """One step of a request (submit, approve, deny, schedule, …); ``schedule`` needs ``at``."""

    number: str
    action: str
    reason: str = ""
    at: datetime | None = None  # local time in the station's zone
    minutes: int | None = None  # the viewing's length; 120 when not given
    valid_days: int | None = None  # approve: the approval's lifetime; 30 when not given
    note: str = ""  # approve: the handling unit's review
    remarks: str = ""  # view: what the register notes


@_op("request.copy", write=True, slow=True, errors=_ACT_ERRORS)
@dataclass(frozen=True)
class RequestCopy(Args):
    """The request's verified copy onto export media: answers ``{"folder"}``."""

    number: str
    to: str
    medium: str = ""  # how the medium is recorded (label, serial)


@_op("seal.create", write=True, slow=True, errors=_ACT_ERRORS)
@dataclass(frozen=True)
class SealCreate(Args):
    """Seal a duty day by hand (the daemon seals by itself too), with the station's key."""

    day: date


@_op("seal.confirm", write=True, errors=_ACT_ERRORS)
@dataclass(frozen=True)
class SealConfirm(Args):
    """A supervisor confirms a day's seal."""

    day: date


@_op("hold.place", write=True, errors=_ACT_ERRORS)
@dataclass(frozen=True)
class HoldPlace(Args):
    """A hold on a recording or on an officer's footage: answers its id."""

    kind: HoldKind
    case: str = ""
    reason: str = ""
    recording: int | None = None
    officer: str | None = None
    camera: str | None = None
    begin: datetime | None = field(default=None, metadata=_FROM)  # local time, the scope's
    end: datetime | None = field(default=None, metadata=_TO)
    review_by: date | None = None


@_op("hold.release", write=True, errors=_ACT_ERRORS)
@dataclass(frozen=True)
class HoldRelease(Args):
    """Release a hold, with the reason."""

    id: int
    reason: str = ""


@_op("retention.propose", write=True, errors=_ACT_ERRORS)
@dataclass(frozen=True)
class RetentionPropose(Args):
    """A custodian proposes the list of what is due and not held (or of the recordings named,
    comma-separated): answers its number."""

    recordings: str = ""
    reason: str = ""


@_op("retention.authorise", frozenset({Role.APPROVER}), write=True, errors=_ACT_ERRORS)
@dataclass(frozen=True)
class RetentionAuthorise(Args):
    """An approver's standing authorisation for the daemon to destroy what is due (a record:
    reference, custodian, last day): answers its number."""

    ref: str
    custodian: str
    until: date


@_op("retention.revoke", frozenset({Role.APPROVER}), write=True, errors=_ACT_ERRORS)
@dataclass(frozen=True)
class RetentionRevoke(Args):
    """An approver revokes a standing authorisation by its reference number, with the reason:
    the daemon destroys nothing more under it (issue 27, gap 3)."""

    ref: str
    reason: str = ""


@_op("retention.approve", write=True, errors=_ACT_ERRORS)
@dataclass(frozen=True)
class RetentionApprove(Args):
    """An approver (not its proposer) approves a destruction list (REG-4.3.1)."""

    list: int


@_op("retention.destroy", write=True, slow=True, errors=_ACT_ERRORS)
@dataclass(frozen=True)
class RetentionDestroy(Args):
    """Execute an approved destruction list: answers how many recordings were destroyed (with
    ``detail`` = 1, each destruction). Without a list: refused and recorded (issue 27)."""

    list: int | None = None
    resume: int = 0  # take up a list whose execution was interrupted
    detail: int = 0


@_op("attribute", write=True, slow=True, errors=_ACT_ERRORS)
@dataclass(frozen=True)
class Attribute(Args):
    """File an unattributed recording under the officer who recorded it (REG-4.2.4)."""

    recording: int
    officer: str


@_op("audit.resolve", frozenset({Role.AUDITOR}), write=True, errors=_ACT_ERRORS)
@dataclass(frozen=True)
class AuditResolve(Args):
    """An auditor resolves a frozen recording, or a hold or request edited or deleted outside
    camdock: its rows as the chain has them (issue 26). Exactly one of the three."""

    recording: int | None
    reason: str
    hold: int | None = None
    request: int | None = None


@_op("audit.record", SEES_AUDIT, write=True, errors=_ACT_ERRORS)
@dataclass(frozen=True)
class AuditRecord(Args):
    """An audit ran (REG-7.2): the custody entry naming the auditor, with what it found."""

    problems: int
    findings: int = 0
    copies_proven: int = 0
    full: int = 0  # 1: every stored copy was re-hashed
    witness: str = ""


SLOW_OPS = frozenset(name for name, op in OPS.items() if op.slow)
