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
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pyotp
from sqlite_utils import Database

from camdock import clock, passwords, protocol
from camdock.adapters.control import Reply
from camdock.catalog import (
    custody,
    destruction,
    freezes,
    open_catalog,
    open_readonly,
    recordings,
    requests,
    rowchain,
    seals,
    selftests,
    viewings,
)
from camdock.catalog import holds as hold_rows
from camdock.catalog import staff as staff_rows
from camdock.catalog.db import write_txn
from camdock.config import Config
from camdock.core.access import Person, Role, State
from camdock.errors import CamdockError, Conflict, ExitCode
from camdock.model import Officer
from camdock.protocol import SEES_CATALOG, SEES_SEALS, SLOW_OPS, BadRequest, ErrorKind
from camdock.services import access, audit, retention
from camdock.services.attribute import attribute_recording
from camdock.services.seal import Sealing, confirm_day, seal_day
from camdock.station import consoleday

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
class Call:
    """One operation's context: the station, the staff member who asked, the catalog."""

    ctl: Control
    me: Person
    db: Database
    channel: str = "console"  # what the request came through: console or cli (issue 27)

    @property
    def cfg(self) -> Config:
        """The station's config."""
        return self.ctl.cfg

    @property
    def who(self) -> access.Acting:
        """The staff member as the services name them."""
        return access.Acting(self.me, self.me.label, self.channel)

    def local(self, moment: datetime) -> datetime:
        """A local date and time (YYYY-MM-DDTHH:MM) in the station's zone."""
        return moment.replace(tzinfo=self.cfg.tz)

    def today(self) -> date:
        """Today in the station's zone."""
        return clock.now().astimezone(self.cfg.tz).date()


A = TypeVar("A", bound=protocol.Args)
Handler = Callable[[Call, Any], Any]
# Each operation of the protocol that needs a session, and the function that answers it.
HANDLERS: dict[str, Handler] = {}


def _handles(args: type[A]) -> Callable[[Callable[[Call, A], Any]], Callable[[Call, A], Any]]:
    """Bind a handler to the operation the protocol declares for ``args``."""

    def register(fn: Callable[[Call, A], Any]) -> Callable[[Call, A], Any]:
        HANDLERS[args.op.name] = fn
        return fn

    return register


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
                 limits: Limits | None = None) -> None:  # fmt: skip
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
        self.chain_memo = consoleday.ChainMemo()  # the audit page's chain check (issue 29)
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
            return {"ok": True, "result": _person_json(me)}, None
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
        return {"ok": True, "result": {"token": token, "person": _person_json(person)}}

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


def _error(kind: ErrorKind, why: str) -> Reply:
    return {"ok": False, "status": protocol.STATUS[kind], "kind": kind.value, "error": why}, None


def _person_json(p: Person) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "roles": sorted(r.value for r in p.roles),
            "label": p.label}  # fmt: skip


def _fields(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


# --- reading ---------------------------------------------------------------------------------


@_handles(protocol.Session)
def _session_check(c: Call, a: protocol.Session) -> Any:
    """The person a live session is for (``handle`` answers it without opening the catalog)."""
    return _person_json(c.me)


@_handles(protocol.CatalogSearch)
def _search(c: Call, a: protocol.CatalogSearch) -> Any:
    return recordings.search(c.db, a.officer, a.camera, a.day)


@_handles(protocol.RecordingGet)
def _recording(c: Call, a: protocol.RecordingGet) -> Any:
    rec = recordings.get(c.db, a.id)
    if rec is None:
        raise CamdockError(f"沒有紀錄 No recording {a.id}", ExitCode.NOINPUT)
    day = date.fromisoformat(rec.relpath[:10].replace("/", "-"))
    return {
        "rec": rec,
        "copies": recordings.copies(c.db, a.id),
        "history": custody.history(c.db, a.id),
        "sealed": seals.current(c.db, day),
    }


@_handles(protocol.RequestsList)
def _requests(c: Call, a: protocol.RequestsList) -> Any:
    sees_all = bool(c.me.roles - {Role.OFFICER})
    return [r for r in requests.listing(c.db) if sees_all or r.applicant_id == c.me.id]


@_handles(protocol.RequestGet)
def _request(c: Call, a: protocol.RequestGet) -> Any:
    req = requests.get(c.db, a.number)
    if req is None or (c.me.roles == {Role.OFFICER} and req.applicant_id != c.me.id):
        # Answered as not found, and on the record: who tried what (REG-7.1; issue 27).
        why = "no such request" if req is None else "another officer's request"
        c.ctl.refuse(c.me.label, "request.get", why, a.number)
        raise CamdockError("沒有這份申請書 No such request", ExitCode.NOINPUT)
    recs = requests.recordings_of(c.db, req.id)
    if c.me.roles == {Role.OFFICER} and req.state in (State.DRAFT, State.SUBMITTED):
        # Before approval an officer sees only their own footage in it (issue 27, item 8).
        recs = [r for r in recs if r.officer_badge == c.me.id]
    return {"req": req, "recs": recs}


@_handles(protocol.SealsList)
def _seals(c: Call, a: protocol.SealsList) -> Any:
    days: dict[str, dict[str, Any]] = {}
    for s in seals.status(c.db):
        days.setdefault(s["day"], s)
    return {"days": list(days.values()), "dirty": sorted(seals.dirty(c.db))}


@_handles(protocol.HoldsList)
def _holds(c: Call, a: protocol.HoldsList) -> Any:
    return hold_rows.listing(c.db)


@_handles(protocol.RetentionPlan)
def _plan(c: Call, a: protocol.RetentionPlan) -> Any:
    plan = retention.plan_for(c.db, c.today())
    lists = [destruction.as_json(d, destruction.items(c.db, d.id))
             for d in destruction.listing(c.db)[:20]]  # fmt: skip
    return {"plan": {**_fields(plan), "alarms": plan.alarms}, "lists": lists,
            "auto": destruction.live_authorisation(c.db, c.today())}  # fmt: skip


@_handles(protocol.AttributionQueue)
def _queue(c: Call, a: protocol.AttributionQueue) -> Any:
    officers = [o.as_json() for o in c.cfg.officers.values()]
    return {"queue": recordings.unattributed(c.db), "officers": officers}


@_handles(protocol.DutyLog)
def _duty_log(c: Call, a: protocol.DutyLog) -> Any:
    """REG-3.2: the pre-shift tests and the duty-log entries of a period."""
    tests, entries = selftests.history(c.db, a.start, a.end)
    return {"tests": tests, "entries": entries}


@_handles(protocol.Register)
def _register(c: Call, a: protocol.Register) -> Any:
    return requests.register_between(c.db, a.start, a.end)


@_handles(protocol.AuditReport)
def _audit(c: Call, a: protocol.AuditReport) -> Any:
    """The six-monthly report (REG-7.2) for a period: the chain checked against the heads on
    the drives, again whenever anything it read changed (consoleday.ChainMemo, issue 29);
    fixity as the last scrub found it (a full read-back is `camdock audit
    --full`, hours of disk time, not a page load)."""
    return c.ctl.chain_memo.report(c.db, c.cfg, a.first, a.last, c.today(), c.me.label)


@_handles(protocol.Home)
def _home(c: Call, a: protocol.Home) -> Any:
    """Issue 29: the console's landing page, for this staff member's roles."""
    return consoleday.home(c.db, c.cfg, c.me, c.today())


@_handles(protocol.CatalogFind)
def _find(c: Call, a: protocol.CatalogFind) -> Any:
    return consoleday.find(c.db, a)


@_handles(protocol.CustodySearch)
def _custody_search(c: Call, a: protocol.CustodySearch) -> Any:
    """Who did what to which recording (REG-7.1), as the chain recorded it."""
    return consoleday.custody_page(c.db, c.cfg, a)


@_handles(protocol.VideoOpen)
def _video(c: Call, a: protocol.VideoOpen) -> tuple[int, dict[str, int]]:
    """A recording, opened only for a supervised viewing: an approved request that covers it,
    in its window, for its custodian (invariant 9). The descriptor goes to the console."""
    req = requests.get(c.db, a.number)
    if req is None or not any(r.id == a.id for r in requests.recordings_of(c.db, req.id)):
        # A recording outside a request: not found, and on the record (REG-7.1; issue 27).
        c.ctl.refuse(c.me.label, "view", f"recording {a.id} is not in request {a.number}",
                     a.number, {"recording": a.id})  # fmt: skip
        raise CamdockError("沒有此影音資料 Not in this request", ExitCode.NOINPUT)
    # The request and the recording as the chain has them: an approval typed into the catalog
    # streams nothing (issue 27, review).
    rowchain.require_rows(c.db, [("requests", [req.id]), ("request_recordings", [req.id, a.id])])
    rowchain.require_chained(c.db, a.id)
    access.authorize(c.db, c.who, "view", c.ctl.topics, access._rules(req), clock.now())
    path = recordings.plain_copy(c.db, a.id)
    if path is None:
        raise CamdockError("此檔案僅存於封存檔 Only in its seal", ExitCode.NOINPUT)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:  # the stream log: its register line and custody entry come when it ends (video.done)
        viewing = viewings.open_viewing(c.db, req.id, req.number, a.id, c.me.label, c.me.id)
    except BaseException:
        os.close(fd)
        raise
    return fd, {"viewing": viewing}


@_handles(protocol.VideoDone)
def _video_done(c: Call, a: protocol.VideoDone) -> Any:
    """The console's stream of a viewing ended: its register line and custody entry (REG-5.3)."""
    return viewings.close(c.db, a.viewing, c.me.id, a.sent)


# --- acting ----------------------------------------------------------------------------------


@_handles(protocol.RequestNew)
def _request_new(c: Call, a: protocol.RequestNew) -> Any:
    form = {"duty_item": a.duty_item, "kind": a.kind.value, "reason": a.reason,
            "purpose": a.purpose.value, "unit_supervisor": a.unit_supervisor,
            "applicant_unit": a.applicant_unit, "applicant_title": a.applicant_title,
            "viewing_at": c.local(a.viewing_at).isoformat() if a.viewing_at else None}  # fmt: skip
    scope = (a.officer, a.camera, c.local(a.begin), c.local(a.end))
    req = access.new_request(c.db, c.cfg, c.who, form, scope, c.ctl.topics)
    return {"number": req.number, "request": req,
            "recordings": requests.recordings_of(c.db, req.id)}  # fmt: skip


@_handles(protocol.RequestStep)
def _request_step(c: Call, a: protocol.RequestStep) -> Any:
    kw: dict[str, Any] = {}
    if a.action == "deny":
        kw["reason"] = a.reason
    if a.action == "schedule":
        if a.at is None:
            raise BadRequest("a time YYYY-MM-DDTHH:MM is needed", "at")
        start = c.local(a.at)
        kw |= {"start": start, "end": start + timedelta(minutes=a.minutes or 120)}
    if a.action == "approve":
        kw |= {"valid_days": a.valid_days, "note": a.note or None}
    if a.action == "view":
        kw["remarks"] = a.remarks or None
    req = access.step(c.db, c.who, a.number, a.action, c.ctl.topics, clock.now(), **kw)
    return {"request": req}


@_handles(protocol.RequestCopy)
def _request_copy(c: Call, a: protocol.RequestCopy) -> Any:
    to = Path(os.path.abspath(a.to))
    if not any(to == r or r in to.parents for r in c.ctl.export_roots) or ".." in to.parts:
        roots = ", ".join(str(r) for r in c.ctl.export_roots)
        raise BadRequest(
            f"匯出位置須在 {roots} 之下 the copy goes onto export media: under {roots}", "to"
        )
    sealing = Sealing.from_config(c.cfg)
    done = access.copy(c.db, c.who, a.number, to, sealing.key, c.ctl.topics,
                       medium=a.medium or None)  # fmt: skip
    return {**done, "folder": str(done["folder"])}


@_handles(protocol.SealCreate)
def _seal_create(c: Call, a: protocol.SealCreate) -> Any:
    """REG-4.2.5: a duty day sealed by hand, with the station's own key, naming who did it."""
    access.authorize(c.db, c.who, "seal", c.ctl.topics)
    made = seal_day(c.db, Sealing.from_config(c.cfg), a.day, c.me.label, c.me.id)
    return made.as_json() if made else None


@_handles(protocol.SealConfirm)
def _seal_confirm(c: Call, a: protocol.SealConfirm) -> Any:
    access.authorize(c.db, c.who, "confirm", c.ctl.topics)
    return confirm_day(c.db, Sealing(None, topics=c.ctl.topics), a.day, c.me.label, c.me.id)


@_handles(protocol.HoldPlace)
def _hold_place(c: Call, a: protocol.HoldPlace) -> Any:
    access.authorize(c.db, c.who, "hold", c.ctl.topics)
    try:
        return retention.place_hold(
            c.db, retention.Keeping.from_config(c.cfg), c.me.label, kind=a.kind, case=a.case,
            reason=a.reason, recording=a.recording, officer=a.officer, camera=a.camera,
            start=c.local(a.begin) if a.begin else None, end=c.local(a.end) if a.end else None,
            review_by=a.review_by, today=c.today())  # fmt: skip
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


@_handles(protocol.HoldRelease)
def _hold_release(c: Call, a: protocol.HoldRelease) -> Any:
    access.authorize(c.db, c.who, "release", c.ctl.topics)
    retention.release_hold(c.db, retention.Keeping.from_config(c.cfg), a.id, c.me.label,
                           a.reason)  # fmt: skip
    return None


@_handles(protocol.RetentionPropose)
def _propose(c: Call, a: protocol.RetentionPropose) -> Any:
    access.authorize(c.db, c.who, "destroy-propose", c.ctl.topics)
    try:
        chosen = [int(n) for n in a.recordings.split(",") if n.strip()] or None
    except ValueError:
        raise BadRequest("recording ids, comma-separated", "recordings") from None
    kw = {"reason": a.reason} if a.reason.strip() else {}
    return retention.propose_list(c.db, retention.Keeping.from_config(c.cfg), c.today(),
                                  c.me.label, c.me.id, recordings=chosen, **kw)  # fmt: skip


@_handles(protocol.RetentionAuthorise)
def _authorise(c: Call, a: protocol.RetentionAuthorise) -> Any:
    """An approver's standing authorisation, a record in the catalog (issue 27)."""
    access.authorize(c.db, c.who, "authorise", c.ctl.topics)
    return retention.authorise(c.db, a.ref, a.custodian, a.until, c.me.label, c.me.id,
                               c.today())  # fmt: skip


@_handles(protocol.RetentionApprove)
def _approve_list(c: Call, a: protocol.RetentionApprove) -> Any:
    access.authorize(c.db, c.who, "destroy-approve", c.ctl.topics)
    retention.approve_list(c.db, a.list, c.me.label, c.me.id, c.ctl.topics)
    return None


@_handles(protocol.RetentionDestroy)
def _destroy(c: Call, a: protocol.RetentionDestroy) -> Any:
    """Destruction only under an approved list (REG-4.3.1; issue 27)."""
    access.authorize(c.db, c.who, "destroy", c.ctl.topics)
    if a.list is None:
        raise retention.refuse_unapproved(c.db, c.me.label, c.ctl.topics)
    done = retention.execute_list(c.db, retention.Keeping.from_config(c.cfg), c.today(), a.list,
                                  c.me.label, c.me.id, resume=bool(a.resume))  # fmt: skip
    return [d.as_json() for d in done] if a.detail else len(done)


@_handles(protocol.Attribute)
def _attribute(c: Call, a: protocol.Attribute) -> Any:
    """REG-4.2.4: file an unattributed recording under the officer who recorded it."""
    access.authorize(c.db, c.who, "attribute", c.ctl.topics)
    officer: Officer | None = c.cfg.officers.get(a.officer)
    if officer is None:
        raise BadRequest(f"badge {a.officer!r} is not an officer of this station", "officer")
    drives = c.cfg.drives if c.cfg.require_mounts else ()
    done = attribute_recording(c.db, a.recording, officer, c.me.label, drives)
    return done.as_json()


@_handles(protocol.AuditResolve)
def _audit_resolve(c: Call, a: protocol.AuditResolve) -> Any:
    """Issue 26: an auditor puts a frozen recording back as the custody chain has it."""
    access.authorize(c.db, c.who, "resolve", c.ctl.topics)
    if not a.reason.strip():
        raise BadRequest("say what the auditor found", "reason")
    chosen = [(k, v) for k in ("recording", "hold", "request") if (v := getattr(a, k)) is not None]
    if len(chosen) != 1:
        raise BadRequest("name one recording, hold or request", "recording")
    kind, ident = chosen[0]
    restored = freezes.resolve(c.db, ident, c.me.label, a.reason.strip(), kind)
    return {kind: ident, "restored_from_chain": restored}


@_handles(protocol.AuditRecord)
def _audit_record(c: Call, a: protocol.AuditRecord) -> Any:
    """REG-7.2: the audit itself on the record, naming the auditor, with what it found."""
    access.authorize(c.db, c.who, "audit", c.ctl.topics)
    with write_txn(c.db):
        custody.append(c.db, custody.Action.AUDIT, None, c.me.label, {
            "full": bool(a.full), "problems": a.problems, "findings": a.findings,
            "copies_proven": a.copies_proven, "witness": a.witness})  # fmt: skip
    audit.publish_head(c.db, [str(d.root) for d in c.cfg.drives])
    return None
