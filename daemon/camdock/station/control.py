"""What the console may ask of the station daemon over the control socket, and who may ask it
(ARCHITECTURE, "Who may write"; invariant 9).

The console is an unprivileged process: it renders pages, nothing more. Logging in, every
catalog read and every action happen here, in the daemon, through the same service functions
as the commands, so one set of rules decides and every refusal is recorded the same way:

- ``login`` checks the password against the catalog's hash (the config's, imported: catalog/
  staff) with the same work for an unknown id (a dummy hash), and a one-time code for
  approvers, supervisors and auditors; ids and passwords are bounded and logins rate-limited
  per client and for the station before anything is hashed; five failures in fifteen minutes
  lock the staff id out, recorded once when the lockout begins (issue 27). It answers a
  session token: every other operation carries it and acts as the staff member it was issued
  to, as the catalog has them now. Sessions live here: a token ends at its logout (the
  console's button ends every session of the person), when their password changes, idle or
  too old ([console]).
- each operation names the roles that may read what it returns; actions also go through the
  services' own ``authorize`` (which records refusals in the register and the custody log).

Each request runs on a control thread with its own catalog connection.
"""

from __future__ import annotations

import hmac
import logging
import os
import pwd
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp

from camdock import clock, passwords, protocol
from camdock.adapters.control import Reply
from camdock.catalog import (
    custody,
    open_catalog,
    open_readonly,
    requests,
    rowchain,
)
from camdock.catalog import staff as staff_rows
from camdock.config import Config
from camdock.core.access import Person, Role
from camdock.errors import CamdockError, Conflict
from camdock.protocol import SEES_CATALOG, SEES_SEALS, SLOW_OPS, BadRequest, ErrorKind
from camdock.station import consoleday
from camdock.station import ops_act as _ops_act  # noqa: F401 - registers its handlers
from camdock.station import ops_read as _ops_read  # noqa: F401 - registers its handlers
from camdock.station.calls import HANDLERS, Call, person_json

__all__ = [
    "HANDLERS",
    "LOCKOUT_AFTER",
    "NEEDS_OTP",
    "SEES_CATALOG",
    "SEES_SEALS",
    "SESSION_SECONDS",
    "SLOW_OPS",
    "SOCKET",
    "WEB_USER",
    "Call",
    "Control",
    "Limits",
    "peers",
]

log = logging.getLogger(__name__)

SOCKET = "control.sock"  # in the run directory
WEB_USER = "camdock-web"  # the console's system user (systemd/camdock-web.service, ansible)
SESSION_SECONDS = 8 * 3600  # a shift; then log in again (the default of [console])
# Where the console may have the daemon (root) write a verified copy: export media only.
EXPORT_ROOTS = (Path("/media"), Path("/mnt"))
LOCKOUT_AFTER, LOCKOUT_SECONDS = 5, 15 * 60
# Bounded before anything is hashed or remembered (issue 27): longer is never a login.
MAX_STAFF_ID, MAX_PASSWORD, MAX_CLIENT, MAX_OTP = 64, 1024, 64, 64
# Roles whose login needs a second factor (ARCHITECTURE, invariant 13).
NEEDS_OTP = frozenset({Role.APPROVER, Role.SUPERVISOR, Role.AUDITOR})


@dataclass(frozen=True)
class Limits:
    """How logging in is bounded (issue 27): lockout of a staff id, failures per client and
    for the whole station, and how much of it is remembered."""

    lockout_after: int = LOCKOUT_AFTER  # failures of one id within lockout_seconds lock it …
    lockout_seconds: float = LOCKOUT_SECONDS  # … for this long
    client_failures: int = 20  # failures from one client (uid + the console's client) …
    client_seconds: float = 5 * 60  # … within this, then that client waits
    global_failures: int = 120  # failures from everyone within global_seconds …
    global_seconds: float = 60  # … then every login waits (an id spray is throttled)
    tracked: int = 4096  # ids and clients remembered at most (the oldest forgotten first)
    sessions: int = 1024  # sessions at most (the longest idle ended first)


@dataclass
class _Session:
    staff: str
    started: float
    seen: float
    password_sha: str | None  # a password change ends every session made with the old one
    otp: bool = False  # opened with a second factor: a role that needs one later needs it here


class _Window:
    """Failure times per key within a window, for at most ``size`` keys: the bookkeeping of
    lockout and rate limits stays bounded whatever ids or clients are tried."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.times: OrderedDict[str, list[float]] = OrderedDict()

    def count(self, key: str, now: float, window: float) -> int:
        kept = [t for t in self.times.get(key, ()) if now - t < window]
        if kept:
            self.times[key] = kept
        else:
            self.times.pop(key, None)
        return len(kept)

    def add(self, key: str, now: float, limit: int) -> None:
        self.times.setdefault(key, []).append(now)
        self.times.move_to_end(key)
        del self.times[key][:-limit]  # more than the limit says nothing more
        while len(self.times) > self.size:
            self.times.popitem(last=False)

    def forget(self, key: str) -> None:
        self.times.pop(key, None)


class Control:
    """The daemon's side of the control socket: sessions, logging in, and the operations."""

    def __init__(self, cfg: Config, export_roots: tuple[Path, ...] = EXPORT_ROOTS,
                 limits: Limits | None = None, *,
                 memo: consoleday.ChainMemo | None = None) -> None:  # fmt: skip
        self.cfg = cfg
        self.topics = cfg.topics
        self.export_roots = export_roots
        self.limits = limits or Limits()
        self.idle = cfg.console.idle_minutes * 60.0
        self.lifetime = cfg.console.absolute_hours * 3600.0
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}  # token → session
        self._failures = _Window(self.limits.tracked)  # staff id → failure times
        self._clients = _Window(self.limits.tracked)  # client → failure times
        self._everyone: list[float] = []
        self._locked: OrderedDict[str, float] = OrderedDict()  # staff id → locked until
        # Unknown ids cost what known ones do (issue 27: ids must not be listed by timing).
        self._dummy = passwords.hash_password(secrets.token_urlsafe(24))
        # The audit page's chain check (issue 29), kept warm by the station (jobs.ChainWarm).
        self.chain_memo = memo or consoleday.ChainMemo()
        # The console's user speaks only as the console: a custody entry's channel is the
        # kernel's word (SO_PEERCRED), not the console process's (review of issue 27).
        self.console_uid = _uid_of(WEB_USER)
        db = open_catalog(cfg.catalog)
        try:  # the config's staff into the catalog, each change on the record (catalog/staff)
            for change in staff_rows.sync(db, cfg.staff, cfg.password_hashes):
                log.info("staff: %s", change)
        finally:
            db.close()

    def handle(self, request: dict[str, Any], uid: int) -> Reply:
        """Answer one request: ``{"op", "token", "args"}`` → ``{"ok", "result" | "error"}``.
        Who asks and whether their role may is settled before the arguments are read; every
        custody entry the request writes (refusals too) names its channel (issue 27)."""
        channel = request.get("channel", "console")
        if channel not in protocol.CHANNELS:
            return _error(ErrorKind.BAD_REQUEST, f"channel: one of {', '.join(protocol.CHANNELS)}")
        if uid == self.console_uid and uid != os.geteuid() and channel != "console":
            log.warning("control: the console's user (uid %d) asked as %r; refused", uid, channel)
            return _error(ErrorKind.BAD_REQUEST, "the console's user speaks only as the console")
        with custody.through(str(channel)):
            return self._handle(request, str(channel), uid)

    def _handle(self, request: dict[str, Any], channel: str, uid: int) -> Reply:
        raw, token = request.get("args"), request.get("token")
        if not isinstance(raw, dict | None):
            return _error(ErrorKind.BAD_REQUEST, "args must be an object")
        op = protocol.OPS.get(str(request.get("op")))
        if op is not None and not op.session:
            return self._session(op, raw, token, uid), None
        touch = not (op is protocol.Session.op and isinstance(raw, dict)
                     and raw.get("active") in (0, "0"))  # fmt: skip
        me = self._person(token, touch)
        if me is None:
            return _error(ErrorKind.UNAUTHENTICATED, "not logged in, or the session ended")
        if op is None:
            return _error(ErrorKind.NOT_FOUND, f"no operation {request.get('op')!r}")
        if not (me.roles & op.roles):
            self._refuse(me.label, op.name, "the role may not see this")
            return _error(
                ErrorKind.FORBIDDEN, "您的角色無權檢視此頁 Your role may not see this page"
            )
        try:
            args = op.args.parse(raw)
        except BadRequest as exc:
            return _error(ErrorKind.BAD_REQUEST, str(exc))
        if isinstance(args, protocol.Session):  # a live session, asked often: no catalog
            return {"ok": True, "result": person_json(me)}, None
        return self._run(op, me, args, channel)

    def _session(self, op: protocol.Op, raw: dict[str, Any] | None, token: Any,
                 uid: int) -> dict[str, Any]:  # fmt: skip
        """Log in, or out (this session; with ``everywhere`` every session of the person)."""
        try:
            args = op.args.parse(raw)
        except BadRequest as exc:
            return _error(ErrorKind.BAD_REQUEST, str(exc))[0]
        if isinstance(args, protocol.Login):
            return self._login(args, uid)
        assert isinstance(args, protocol.Logout)
        with self._lock:
            ended = self._sessions.pop(str(token), None)
            if ended is not None and args.everywhere:
                for t in [t for t, s in self._sessions.items() if s.staff == ended.staff]:
                    del self._sessions[t]
        return {"ok": True, "result": None}

    def _run(self, op: protocol.Op, me: Person, args: protocol.Args, channel: str) -> Reply:
        db = open_catalog(self.cfg.catalog) if op.write else open_readonly(self.cfg.catalog)
        try:
            result = HANDLERS[op.name](Call(self, me, db, channel), args)
        except Conflict as exc:  # someone else did it first (recorded): who, and when, here
            return _error(ErrorKind.CONFLICT, exc.told(self.cfg.tz))
        except CamdockError as exc:  # the rules said no (recorded), nothing to act on, …: why
            return _error(protocol.kind_of(exc), str(exc))
        finally:
            db.close()
        if op.passes_fd:  # the descriptor, and what the console needs to know of it
            assert isinstance(result, tuple)  # declared so (protocol, passes_fd)
            fd, about = result
            return {"ok": True, "result": about}, fd
        return {"ok": True, "result": result}, None

    @staticmethod
    def _now() -> float:
        return clock.now().timestamp()  # the project's clock: tests move it, never wait

    def _person(self, token: Any, touch: bool = True) -> Person | None:
        """The person a live session is for, as the catalog has them now (roles, today's
        roster grants); None when the session is unknown, idle too long, too old, or its
        person has left the staff or changed their password since."""
        if not isinstance(token, str):
            return None
        now = self._now()
        with self._lock:
            found = self._sessions.get(token)
            if found is None:
                return None
            if now - found.seen > self.idle or now - found.started > self.lifetime:
                del self._sessions[token]
                return None
        db = open_readonly(self.cfg.catalog)
        try:
            staff_rows.require_trusted(db, found.staff)
            row = staff_rows.get(db, found.staff)
            me = staff_rows.person(db, found.staff, clock.now())
        except rowchain.Tampered as exc:  # an edit outside camdock: nobody acts on it
            log.error("session of %s ended: %s", found.staff, exc)
            me = row = None
        finally:
            db.close()
        with self._lock:
            if me is None or row is None or row.password_sha != found.password_sha:
                self._sessions.pop(token, None)
                return None
            # A role that needs a second factor, gained since login (a roster's grant, a new
            # role): this session was not opened with one, so it ends (issue 27, review).
            if me.roles & NEEDS_OTP and not found.otp:
                self._sessions.pop(token, None)
                return None
            if touch:
                found.seen = max(found.seen, now)
        return me

    def _login(self, args: protocol.Login, uid: int) -> dict[str, Any]:
        """Check a password (and a second factor) with the same work for every bounded id,
        known or not; bounded and rate-limited before any hashing; a lockout is recorded once,
        when it begins."""
        lim, now = self.limits, self._now()
        sid, password = args.staff.strip(), args.password
        client = f"{uid}:{(args.client or '')[:MAX_CLIENT]}"
        wrong = _error(ErrorKind.UNAUTHENTICATED, "帳號或密碼錯誤 Wrong staff id or password")[0]
        with self._lock:
            busy = (self._clients.count(client, now, lim.client_seconds) >= lim.client_failures
                    or self._global(now) >= lim.global_failures)  # fmt: skip
            locked = self._locked.get(sid, 0.0) > now
        if busy or locked:  # nothing hashed, nothing written: an attempt costs nothing here
            why = "嘗試次數過多，請稍後再試 Too many attempts: try again later"
            return _error(ErrorKind.TOO_MANY, why)[0]
        if not sid or len(sid) > MAX_STAFF_ID or len(password.encode()) > MAX_PASSWORD:
            with self._lock:  # never a staff id: counted for the client, no id remembered
                self._clients.add(client, now, lim.client_failures)
                self._everyone.append(now)
            return wrong
        db = open_readonly(self.cfg.catalog)
        tampered: str | None = None
        try:
            row = staff_rows.get(db, sid)
            person = staff_rows.person(db, sid, clock.now())
            if row is not None:
                try:
                    staff_rows.require_trusted(db, sid)
                except rowchain.Tampered as exc:
                    tampered = str(exc)
        finally:
            db.close()
        usable = row is not None and person is not None and row.password_hash is not None
        stored = row.password_hash if usable and row is not None else None
        if not passwords.verify(password, stored or self._dummy) or stored is None:
            return self._failed(sid, client, now, wrong)
        assert person is not None and row is not None
        if tampered is not None:  # the staff record was edited outside camdock: refused
            self._refuse(person.label, "login", f"staff record changed outside camdock: {tampered}")
            return _error(ErrorKind.FORBIDDEN, "人員資料遭變更，須由稽核人員處理 The staff record "
                          "was changed outside camdock: an auditor must resolve it")[0]  # fmt: skip
        if person.roles & NEEDS_OTP:
            second = self._second_factor(person, args.otp)
            if second is False:
                return self._failed(sid, client, now, wrong)
            if second is not True:
                return second
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._failures.forget(sid)
            self._sessions[token] = _Session(sid, now, now, row.password_sha,
                                             bool(person.roles & NEEDS_OTP))  # fmt: skip
            while len(self._sessions) > lim.sessions:  # the longest idle goes first
                del self._sessions[min(self._sessions, key=lambda t: self._sessions[t].seen)]
        log.info("console: %s logged in", person.label)
        return {"ok": True, "result": {"token": token, "person": person_json(person)}}

    def _global(self, now: float) -> int:
        window = self.limits.global_seconds
        self._everyone = [t for t in self._everyone if now - t < window]
        return len(self._everyone)

    def _failed(self, sid: str, client: str, now: float, wrong: dict[str, Any]) -> dict[str, Any]:
        lim = self.limits
        with self._lock:
            self._clients.add(client, now, lim.client_failures)
            self._everyone.append(now)
            self._failures.add(sid, now, lim.lockout_after)
            locks = self._failures.count(sid, now, lim.lockout_seconds) >= lim.lockout_after
            if locks:
                self._failures.forget(sid)
                self._locked[sid] = now + lim.lockout_seconds
                self._locked.move_to_end(sid)
                while len(self._locked) > lim.tracked:
                    self._locked.popitem(last=False)
        if locks:  # once per lockout: one custody entry and one event, not one per attempt
            self._refuse(sid, "login", f"locked out for {lim.lockout_seconds / 60:.0f} minutes "
                         f"after {lim.lockout_after} failures")  # fmt: skip
        return wrong

    def _second_factor(self, person: Person, otp: str | None) -> bool | dict[str, Any]:
        """True: the one-time code (or an unused recovery code) is right and not replayed;
        False: it is wrong (a failure); otherwise the answer to give (not enrolled, no code)."""
        db = open_catalog(self.cfg.catalog)
        try:
            enrolled = staff_rows.totp_of(db, person.id)
            if enrolled is None:
                roles = ", ".join(sorted(r.value for r in person.roles & NEEDS_OTP))
                self._refuse(person.label, "login", f"no second factor enrolled ({roles})")
                return _error(ErrorKind.FORBIDDEN,
                              f"您的角色（{roles}）須使用一次性驗證碼，請先註冊 The role {roles} "
                              f"needs a one-time code: enrol first (camdock staff totp "
                              f"{person.id}, on the station, by its administrator)")[0]  # fmt: skip
            code = "".join((otp or "").split())
            if not code:
                return _error(ErrorKind.OTP_REQUIRED,
                              "請輸入一次性驗證碼 Enter the one-time code from your "
                              "authenticator app")[0]  # fmt: skip
            if len(code) > MAX_OTP:
                return False
            if code.isascii() and code.isdigit():
                totp = pyotp.TOTP(enrolled.secret)
                at = totp.timecode(clock.now())
                for step in (at - 1, at, at + 1):  # one step of clock drift either way
                    if hmac.compare_digest(totp.generate_otp(step), code):
                        return staff_rows.use_step(db, person.id, step)
                return False
            return staff_rows.use_recovery(db, person.id, code.upper(), person.label)
        finally:
            db.close()

    def _refuse(self, by: str, action: str, why: str) -> None:
        self.refuse(by, action, why)

    def refuse(self, by: str, action: str, why: str, number: str | None = None,
               extra: dict[str, Any] | None = None) -> None:  # fmt: skip
        """Record a refusal on a connection of its own (a reading operation's is read-only)."""
        db = open_catalog(self.cfg.catalog)
        try:
            requests.record_refusal(db, by, action, number, why, self.topics, extra)
        finally:
            db.close()


def peers() -> tuple[frozenset[int], int | None]:
    """Who may connect: root, the daemon's own user, and the console's user when the station
    has one; and the group the socket is given (the console user's), so its mode can be 0660."""
    try:
        web = pwd.getpwnam(WEB_USER)
    except KeyError:
        return frozenset({0, os.geteuid()}), None
    return frozenset({0, os.geteuid(), web.pw_uid}), web.pw_gid


def _uid_of(user: str) -> int | None:
    """A system user's uid; None when the station has no such user."""
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None


def _error(kind: ErrorKind, why: str) -> Reply:
    return {"ok": False, "status": protocol.STATUS[kind], "kind": kind.value, "error": why}, None
