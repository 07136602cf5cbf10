"""The control protocol's machinery (protocol.py declares the operations with it): how an
operation is declared (``Op``, ``declare``), how its JSON arguments become its typed request
(``Args``, ``parse``: a ``BadRequest`` naming the field), and the kinds of error with the one
table from kind to HTTP status (``STATUS``) and to a command's exit code (``EXIT``)."""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from datetime import date, datetime
from enum import Enum, StrEnum
from typing import Any, ClassVar, Self, TypeVar

from camdock.core.access import Role
from camdock.errors import CamdockError, Conflict, ExitCode, Refused

__all__ = [
    "CHANNELS",
    "EVERYONE",
    "EXIT",
    "OPS",
    "STATUS",
    "Args",
    "BadRequest",
    "ErrorKind",
    "Op",
    "declare",
    "kind_of",
    "parse",
]

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
    if exc.exit_code == ExitCode.UNAVAILABLE:  # a drive's error: a destruction stays destroying
        return ErrorKind.UNAVAILABLE
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


def declare(name: str, roles: frozenset[Role] = EVERYONE, *, write: bool = False,
        passes_fd: bool = False, slow: bool = False, session: bool = True,
        errors: frozenset[ErrorKind] = frozenset()) -> Callable[[type[A]], type[A]]:  # fmt: skip
    """Register an operation's arguments class under ``name``, with who may call it."""

    def register(cls: type[A]) -> type[A]:
        cls.op = OPS[name] = Op(name, cls, roles, write, passes_fd, slow, session, errors)
        return cls

    return register


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
