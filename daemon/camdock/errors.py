"""One error base for camdock, and every exit code in one table.

Commands map a ``CamdockError`` to its ``exit_code`` and print its message on one line; nothing
a user can cause ends in a traceback. The codes are sysexits.h's, so scripts and systemd can tell
the cases apart (systemd's ``RestartPreventExitStatus=78`` stops a restart loop on bad config).
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from enum import IntEnum

__all__ = [
    "CamdockError",
    "CameraError",
    "CameraGone",
    "CameraTimeout",
    "CatalogError",
    "ConfigError",
    "Conflict",
    "ExitCode",
    "MountError",
    "NotAuthenticated",
    "OffloadRefused",
    "Refused",
    "RosterError",
    "UnknownRecording",
    "UsageError",
]


class ExitCode(IntEnum):
    """What a ``camdock`` command's exit status means (README, "Exit codes")."""

    OK = 0  # done, everything verified
    FAILED = 1  # ran, but not everything succeeded (a file not verified, a check failed)
    USAGE = 64  # EX_USAGE: the command line asks for something impossible or unsafe
    DATAERR = 65  # EX_DATAERR: input data is malformed (a roster, a form)
    NOINPUT = 66  # EX_NOINPUT: a source or catalog does not exist or is unreadable
    NOUSER = 67  # EX_NOUSER: not authenticated (no credentials, a wrong password or code)
    UNAVAILABLE = 69  # EX_UNAVAILABLE: a device (camera port, GPIO) or the daemon is not there
    SOFTWARE = 70  # EX_SOFTWARE: an internal error (a bug); the message says what
    CANTCREAT = 73  # EX_CANTCREAT: a destination cannot be written
    IOERR = 74  # EX_IOERR: reading or writing failed part-way
    TEMPFAIL = 75  # EX_TEMPFAIL: busy (another process offloads that camera); try again
    NOPERM = 77  # EX_NOPERM: the rules do not allow it, or someone did it first (Conflict)
    CONFIG = 78  # EX_CONFIG: the configuration is invalid; every problem is listed


class CamdockError(Exception):
    """Base of every error camdock raises on purpose; carries the exit code for the CLI."""

    exit_code: ExitCode = ExitCode.SOFTWARE

    def __init__(self, message: str, exit_code: ExitCode | int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = ExitCode(exit_code)


class UsageError(CamdockError):
    """The command line asks for something impossible or unsafe."""

    exit_code = ExitCode.USAGE


class ConfigError(CamdockError):
    """The configuration is invalid; ``problems`` lists each one with its key path."""

    exit_code = ExitCode.CONFIG

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s)\n  " + "\n  ".join(problems))


class OffloadRefused(CamdockError):
    """The offload cannot start; nothing was written."""

    exit_code = ExitCode.USAGE


class CatalogError(CamdockError):
    """The catalog cannot be opened or written (a directory, not SQLite, read-only, full)."""

    exit_code = ExitCode.IOERR


class MountError(CamdockError):
    """A camera volume could not be mounted (or remounted) safely."""

    exit_code = ExitCode.IOERR


class RosterError(CamdockError):
    """A roster from the station server is invalid; ``problems`` lists each one."""

    exit_code = ExitCode.DATAERR

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class CameraError(CamdockError):
    """The camera answered with an error, or its command link failed."""

    exit_code = ExitCode.UNAVAILABLE


class CameraTimeout(CameraError):
    """The camera did not answer."""


class CameraGone(CameraError):
    """The camera's port vanished (pulled from the bay) or cannot be opened."""


class Refused(CamdockError):
    """The rules do not allow this (a destruction before the minimum, of held footage; a hold
    released twice); nothing was changed."""

    exit_code = ExitCode.NOPERM


class Conflict(Refused):
    """Someone else changed it first: the state this action needed was gone when its write
    transaction looked (two approvers at once, a hold released twice); nothing was changed.
    Names who did it first and when (``by``, ``at``: ISO 8601 with offset) so the person can
    see it; the console answers 409. Same exit code as any refusal."""

    def __init__(self, what: str, by: str | None = None, at: str | None = None,
                 tz: tzinfo | None = None) -> None:  # fmt: skip
        self.what, self.by, self.at = what, by, at
        super().__init__(self.told(tz))

    def told(self, tz: tzinfo | None = None) -> str:
        """The message, with the time in ``tz`` (None: the machine's zone): "request 2026-0001
        is already approved by 王大同 (P1) at 10:02 (2026-11-28)"."""
        text = self.what
        if self.by:
            text += f" by {self.by}"
        if self.at:
            try:
                local = datetime.fromisoformat(self.at).astimezone(tz)
                text += f" at {local:%H:%M} ({local:%Y-%m-%d})"
            except ValueError:
                text += f" at {self.at}"
        return text


class NotAuthenticated(CamdockError):
    """Nobody proved who acts: no credentials, a wrong password or one-time code, or an acting
    command on a station catalog that did not go through the daemon (REG-4.1.1)."""

    exit_code = ExitCode.NOUSER


class UnknownRecording(CamdockError):
    """No such recording in the catalog (or it was destroyed)."""

    exit_code = ExitCode.NOINPUT
