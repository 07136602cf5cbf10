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

The daemon's handlers (station/control.py) take these requests; the console (web/) and the
acting commands (commands/remote.py) build them.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from datetime import date, datetime
from enum import Enum, StrEnum
from typing import Any, ClassVar, Self, TypeVar

from camdock.core.access import Purpose, Role
from camdock.core.retention import HoldKind
from camdock.errors import CamdockError, Conflict, ExitCode, Refused

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
EVERYONE = frozenset(Role)
# Who may name themselves as the channel of a request: the daemon's own acts are never asked.
CHANNELS = ("console", "cli")


class ErrorKind(StrEnum):
    """What went wrong, as the console needs to tell it apart."""

    BAD_REQUEST = "bad_request"  # a missing, unknown or malformed argument
    UNAUTHENTICATED = "unauthenticated"  # no session, or it ended
    OTP_REQUIRED = "otp_required"  # the password was right; the role needs its one-time code
    FORBIDDEN = "forbidden"  # the role or the rules say no (recorded)
    NOT_FOUND = "not_found"  # no such operation, recording, request
    CONFLICT = "conflict"  # it cannot be done in the state things are in
    TOO_MANY = "too_many"  # locked out after repeated failures, or too many attempts
    INTERNAL = "internal"  # a bug in the daemon
    UNAVAILABLE = "unavailable"  # the daemon is not running
    TIMEOUT = "timeout"  # the daemon did not answer in time


# The one table from an error's kind to the HTTP status the console answers with.
STATUS: dict[ErrorKind, int] = {
    ErrorKind.BAD_REQUEST: 400,
    ErrorKind.UNAUTHENTICATED: 401,
    ErrorKind.OTP_REQUIRED: 401,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.TOO_MANY: 429,
    ErrorKind.INTERNAL: 500,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.TIMEOUT: 504,
}


# The one table from an error's kind to the exit code of a command that asked the daemon
# (commands/remote.py; README, "Exit codes").
EXIT: dict[ErrorKind, ExitCode] = {
    ErrorKind.BAD_REQUEST: ExitCode.USAGE,
    ErrorKind.UNAUTHENTICATED: ExitCode.NOUSER,
    ErrorKind.OTP_REQUIRED: ExitCode.NOUSER,
    ErrorKind.FORBIDDEN: ExitCode.NOPERM,  # refused, and recorded by the daemon
    ErrorKind.NOT_FOUND: ExitCode.NOINPUT,
    ErrorKind.CONFLICT: ExitCode.NOPERM,  # someone did it first: the message names who, when
    ErrorKind.TOO_MANY: ExitCode.TEMPFAIL,
    ErrorKind.INTERNAL: ExitCode.SOFTWARE,
    ErrorKind.UNAVAILABLE: ExitCode.UNAVAILABLE,
    ErrorKind.TIMEOUT: ExitCode.TEMPFAIL,
}


class BadRequest(CamdockError):
    """A request the console should never have sent: ``field`` is missing, unknown or of the
    wrong type (or, with no field, the request as a whole is malformed)."""

    exit_code = ExitCode.USAGE

    def __init__(self, why: str, name: str | None = None) -> None:
        super().__init__(f"{name}: {why}" if name else why)
        self.field = name


def kind_of(exc: CamdockError) -> ErrorKind:
    """The kind of a camdock error, as the daemon answers it: the rules' refusal is forbidden,
    a missing thing not found, anything else that could not be done a conflict."""
    if isinstance(exc, BadRequest):
        return ErrorKind.BAD_REQUEST
    if isinstance(exc, Conflict):  # someone did it first: who and when
        return ErrorKind.CONFLICT
    if isinstance(exc, Refused) or exc.exit_code == ExitCode.NOPERM:
        return ErrorKind.FORBIDDEN
    if exc.exit_code == ExitCode.NOINPUT:
        return ErrorKind.NOT_FOUND
    return ErrorKind.CONFLICT


@dataclass(frozen=True)
class Op:
    """One operation: its name, its arguments, who may call it and what it does."""

    name: str
    args: type[Args]
    roles: frozenset[Role] = EVERYONE
    write: bool = False  # opens the catalog for writing
    passes_fd: bool = False  # answers with a descriptor (the result is null)
    slow: bool = False  # may take minutes: its own workers, no deadline at the console
    session: bool = True  # needs a logged-in staff member's token
    errors: frozenset[ErrorKind] = frozenset()  # the domain errors it may answer


class Args:
    """The base of every operation's arguments."""

    op: ClassVar[Op]

    @classmethod
    def parse(cls, raw: Any) -> Self:
        """The arguments from a JSON object (see the module's ``parse``)."""
        return parse(cls, raw)

    def args(self) -> dict[str, Any]:
        """The arguments as JSON, the way ``parse`` reads them back."""
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, Enum):
                value = value.value
            elif isinstance(value, datetime):
                value = value.replace(tzinfo=None).isoformat(timespec="minutes")
            elif isinstance(value, date):
                value = value.isoformat()
            out[f.metadata.get("wire", f.name)] = value
        return out


OPS: dict[str, Op] = {}
A = TypeVar("A", bound=Args)


def _op(name: str, roles: frozenset[Role] = EVERYONE, *, write: bool = False,
        passes_fd: bool = False, slow: bool = False, session: bool = True,
        errors: frozenset[ErrorKind] = frozenset()) -> Callable[[type[A]], type[A]]:  # fmt: skip
    def register(cls: type[A]) -> type[A]:
        cls.op = OPS[name] = Op(name, cls, roles, write, passes_fd, slow, session, errors)
        return cls

    return register


# Fields whose names on the wire are Python keywords (``from``) or read oddly in Python.
_FROM, _TO = {"wire": "from"}, {"wire": "to"}


_NEEDS = {
    str: "a text is needed",
    int: "a number is needed",
    date: "a day YYYY-MM-DD is needed",
    datetime: "a time YYYY-MM-DDTHH:MM is needed",
}


def _value(kind: Any, value: Any, name: str) -> Any:
    """``value`` as ``kind``; an optional kind takes None or "" as None."""
    if isinstance(kind, types.UnionType):
        if value is None or value == "":
            return None
        kind = next(k for k in typing.get_args(kind) if k is not type(None))
    try:
        if kind is str and isinstance(value, str):
            return value
        if kind is int and not isinstance(value, bool) and isinstance(value, int | str):
            number = int(value)
            if -(2**63) <= number < 2**63:  # what SQLite holds (a larger one is a 400, not a 500)
                return number
        if kind in (date, datetime) and isinstance(value, str):
            return kind.fromisoformat(value)
        if isinstance(kind, type) and issubclass(kind, Enum):
            return kind(value)
    except ValueError:
        pass
    if isinstance(kind, type) and issubclass(kind, Enum):
        choices = ", ".join(str(k.value) for k in kind)
        raise BadRequest(f"{value!r} is not one of {choices}", name)
    raise BadRequest(_NEEDS.get(kind, "malformed"), name)


def parse(cls: type[A], raw: Any) -> A:
    """``cls`` from the JSON object ``raw``: each field by its type, its default when absent;
    an unknown field, a missing one or one of the wrong type is a ``BadRequest`` naming it."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise BadRequest("args must be an object")
    hints = typing.get_type_hints(cls)
    known = {f.metadata.get("wire", f.name): f for f in fields(cls)}  # type: ignore[arg-type]
    for name in raw:
        if name not in known:
            raise BadRequest("no such argument", str(name))
    got: dict[str, Any] = {}
    for name, f in known.items():
        if name in raw:
            got[f.name] = _value(hints[f.name], raw[name], name)
        elif f.default is MISSING:
            raise BadRequest(_NEEDS.get(hints[f.name], "needed"), name)
    return cls(**got)


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
    """The pre-shift tests and duty-log entries between two UTC instants (REG-3.2)."""

    start: str
    end: str


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
