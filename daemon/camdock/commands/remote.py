"""Acting commands through the daemon (issue 27; ARCHITECTURE, "Who may write", invariant 13).

On a station (a config with staff, or a catalog that has them) every command that acts builds
the protocol's typed request (the same dataclasses the console sends), logs in over the
daemon's control socket as the person (``--as ID``, or ``--by ID``) with their password —
asked on the terminal, or the first line of ``--password-file`` for scripts, a file nobody else
may read — and a one-time code when the daemon asks for one, sends the request with the token
and the channel ``cli``, and logs out. The daemon decides with the console's rules and records
refusals (REG-4.1.1, REG-7.1); this module only carries the answer back as an exit code.

A development catalog, made without staff, keeps working directly; every line it prints and
every custody entry it writes says "unverified actor" (``UNVERIFIED``).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import stat
import sys
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from camdock import protocol
from camdock.adapters.control import call
from camdock.catalog import custody, requests
from camdock.catalog.db import DatabaseError
from camdock.config import Config
from camdock.errors import CamdockError, ExitCode, NotAuthenticated, UsageError
from camdock.protocol import EXIT, ErrorKind
from camdock.services.access import UNVERIFIED

__all__ = [
    "CHANNEL",
    "add_credentials",
    "ask",
    "is_station",
    "password_from",
    "refuse_direct",
    "socket_path",
    "verify_locally",
]

CHANNEL = "cli"
# The acts only a person takes: one of them recorded as authenticated makes a catalog a station's.
PERSON_ACTS = ("request", "submit", "consult", "approve", "deny", "schedule", "view", "copy",
               "acknowledge", "close", "hold-place", "hold-release", "seal-confirm", "attribute",
               "audit", "audit-resolve")  # fmt: skip
MAX_SECRET = 4096  # bytes read from a password or code file: its first line is all we need


def add_credentials(p: argparse.ArgumentParser, *, password_file: bool = True) -> None:
    """``--as STAFF`` and, where the command has none of its own, ``--password-file FILE``;
    ``--otp-file FILE`` for the one-time code."""
    p.add_argument("--as", dest="as_", metavar="STAFF",
                   help="your staff id; the daemon asks your password (as --by ID)")  # fmt: skip
    if password_file:
        p.add_argument("--password-file", type=Path, metavar="FILE",
                       help="your password, its first line (for scripts; mode 0600)")  # fmt: skip
    p.add_argument("--otp-file", type=Path, metavar="FILE",
                   help="your one-time code, its first line, if your role needs one")  # fmt: skip


def socket_path(cfg: Config) -> Path:
    """The daemon's control socket for this station."""
    from camdock.station.control import SOCKET  # the daemon's module: loaded only to act

    return cfg.run_dir / SOCKET


def is_station(cfg: Config | None, db: Database | None) -> bool:
    """Whether acting needs an authenticated person: the config names staff, or the catalog
    does (a ``staff`` table with rows, roster roles, or an act already recorded as done by an
    authenticated person through the console or the daemon's CLI channel)."""
    if cfg is not None and cfg.staff:
        return True
    return db is not None and custody.has_staff_marks(db, PERSON_ACTS, f"({UNVERIFIED})")


def refuse_direct(db: Database, cfg: Config | None, by: str, action: str) -> NotAuthenticated:
    """The refusal of an acting command that did not go through the daemon on a station,
    recorded in the custody log first (REG-7.1) when the catalog can be written."""
    why = ("not authenticated: on a station every acting command goes through the running "
           "daemon (--config FILE --as STAFF, the password asked on the terminal)")  # fmt: skip
    try:
        requests.record_refusal(db, by, action, None, why, cfg.topics if cfg else None,
                                {"channel": CHANNEL, "direct": True})  # fmt: skip
    except (DatabaseError, CamdockError, OSError) as exc:  # read-only: the refusal stands
        print(f"camdock: the refusal could not be recorded: {exc}", file=sys.stderr)
    return NotAuthenticated(why)


def password_from(path: Path, what: str = "--password-file") -> str:
    """The first line of a secret's file, refused when others may read it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise UsageError(f"{what}: cannot open {path}: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UsageError(f"{what}: {path} is not a regular file")
        if mode & (stat.S_IRGRP | stat.S_IROTH | stat.S_IWGRP | stat.S_IWOTH):
            raise UsageError(f"{what}: {path} may be read by others (mode "
                             f"{stat.S_IMODE(mode):04o}); chmod 600 it")  # fmt: skip
        data = os.read(fd, MAX_SECRET)
    finally:
        os.close(fd)
    line = data.decode("utf-8", "replace").splitlines()[0] if data else ""
    if not line:
        raise UsageError(f"{what}: {path} is empty")
    return line


def _staff(args: argparse.Namespace) -> str:
    staff = getattr(args, "as_", None) or getattr(args, "by", None)
    if not staff or not str(staff).strip():
        raise NotAuthenticated("name yourself: --as STAFF (your staff id); the daemon asks "
                               "for your password")  # fmt: skip
    return str(staff).strip()


def _secret(path: Path | None, prompt: str, what: str) -> str:
    if path is not None:
        return password_from(path, what)
    if not sys.stdin.isatty():
        raise NotAuthenticated(f"{prompt.rstrip(': ')} needed: there is no terminal to ask "
                               f"on; give {what} FILE")  # fmt: skip
    return getpass.getpass(prompt)


def _send(path: Path, doc: dict[str, Any], timeout: float | None) -> dict[str, Any]:
    try:
        answer, fd = call(path, {**doc, "channel": CHANNEL}, timeout)
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise CamdockError(
            f"the station daemon is not running ({path}: {exc.strerror}): acting commands go "
            "through the running daemon (camdock run)",
            ExitCode.UNAVAILABLE,
        ) from None
    except TimeoutError:
        raise CamdockError(f"the station daemon did not answer in time ({path})",
                           EXIT[ErrorKind.TIMEOUT]) from None  # fmt: skip
    except OSError as exc:  # a peer the daemon does not accept is cut off
        raise CamdockError(f"the station daemon's control socket {path}: {exc}",
                           ExitCode.UNAVAILABLE) from None  # fmt: skip
    if fd is not None:
        os.close(fd)
    return answer


def _record(cfg: Config, by: str, action: str, number: str | None, why: str) -> None:
    """An attempt without credentials into the station's custody log (REG-7.1), when this
    process may write the catalog (root on the station); else the refusal stands unrecorded."""
    from camdock.catalog import open_catalog

    try:
        db = open_catalog(cfg.catalog)
    except (DatabaseError, CamdockError, OSError):  # not writable here: nothing to record in
        return
    try:
        requests.record_refusal(db, by, action, number, why, cfg.topics, {"channel": CHANNEL})
    except (DatabaseError, CamdockError, OSError) as exc:  # a refusal is still a refusal
        print(f"camdock: the refusal could not be recorded: {exc}", file=sys.stderr)
    finally:
        db.close()


def verify_locally(cfg: Config, args: argparse.Namespace, action: str) -> str:
    """The staff id the command names, proven by their password against the config's hash:
    only for what is done while the daemon is stopped (restoring its catalog). Returns the id."""
    from camdock import passwords

    staff = _staff(args)
    password = _secret(getattr(args, "password_file", None), "password: ", "--password-file")
    stored = cfg.password_hashes.get(staff)
    if stored is None or not passwords.verify(password, stored):
        raise NotAuthenticated(f"{action}: wrong staff id or password")
    return staff


def _failed(answer: dict[str, Any]) -> CamdockError:
    """The daemon's refusal as the exit code its kind maps to (protocol.EXIT)."""
    try:
        kind = ErrorKind(str(answer.get("kind")))
    except ValueError:
        kind = ErrorKind.INTERNAL
    return CamdockError(str(answer.get("error") or kind.value), EXIT[kind])


def ask(cfg: Config, args: argparse.Namespace, request: protocol.Args) -> tuple[Any, str]:
    """Log in as the person the command names, send ``request`` and log out: its result and
    how the daemon names the person, or its refusal as a ``CamdockError`` with the exit code of
    its kind."""
    path = socket_path(cfg)
    try:
        staff = _staff(args)
        password = _secret(getattr(args, "password_file", None), "password: ", "--password-file")
    except NotAuthenticated as exc:  # no credentials at all: refused, and on the record
        action = str(getattr(request, "action", request.op.name))
        number = getattr(request, "number", None)
        _record(cfg, getattr(args, "by", None) or "?", action, number, str(exc))
        raise
    login = protocol.Login(staff, password)
    answer = _send(path, {"op": "login", "token": None, "args": login.args()}, 60.0)
    if not answer.get("ok") and answer.get("kind") == ErrorKind.OTP_REQUIRED:
        otp = _secret(getattr(args, "otp_file", None), "one-time code: ", "--otp-file")
        login = protocol.Login(staff, password, otp)
        answer = _send(path, {"op": "login", "token": None, "args": login.args()}, 60.0)
    if not answer.get("ok"):
        raise _failed(answer)
    token, label = answer["result"]["token"], str(answer["result"]["person"]["label"])
    try:
        timeout = None if request.op.slow else 60.0
        done = _send(path, {"op": request.op.name, "token": token, "args": request.args()},
                     timeout)  # fmt: skip
    finally:
        with contextlib.suppress(CamdockError):  # else it ends with the daemon's session limit
            _send(path, {"op": "logout", "token": token, "args": {}}, 10.0)
    if not done.get("ok"):
        raise _failed(done)
    return done.get("result"), label
