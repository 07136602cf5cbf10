"""What the console may ask of the station daemon over the control socket, and who may ask it
(ARCHITECTURE, "Who may write"; invariant 9).

The console is an unprivileged process: it renders pages, nothing more. Logging in, every
catalog read and every action happen here, in the daemon, through the same service functions
as the commands, so one set of rules decides and every refusal is recorded the same way:

- ``login`` checks the password against the config's hash and answers a session token; five
  failures in fifteen minutes lock the staff id out (recorded). Every other operation carries a
  token and acts as the staff member it was issued to; a token ends at logout or after a shift.
- each operation names the roles that may read what it returns; actions also go through the
  services' own ``authorize`` (which records refusals in the register and the custody log).

Each request runs on a control thread with its own catalog connection.
"""

from __future__ import annotations

import logging
import os
import pwd
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlite_utils import Database

from camdock import clock, passwords, protocol
from camdock.adapters.control import Reply
from camdock.catalog import (
    custody,
    destruction,
    open_catalog,
    open_readonly,
    recordings,
    requests,
    seals,
    selftests,
    viewings,
)
from camdock.catalog import holds as hold_rows
from camdock.config import Config
from camdock.core.access import Person, Role, State
from camdock.errors import CamdockError, Conflict, ExitCode
from camdock.model import Officer
from camdock.protocol import SEES_CATALOG, SEES_SEALS, SLOW_OPS, BadRequest, ErrorKind
from camdock.services import access, audit, retention
from camdock.services.attribute import attribute_recording
from camdock.services.seal import Sealing, confirm_day

__all__ = [
    "HANDLERS",
    "SEES_CATALOG",
    "SEES_SEALS",
    "SESSION_SECONDS",
    "SLOW_OPS",
    "SOCKET",
    "WEB_USER",
    "Call",
    "Control",
    "peers",
]

log = logging.getLogger(__name__)

SOCKET = "control.sock"  # in the run directory
WEB_USER = "camdock-web"  # the console's system user (systemd/camdock-web.service, ansible)
SESSION_SECONDS = 8 * 3600  # a shift; then log in again
# Where the console may have the daemon (root) write a verified copy: export media only.
EXPORT_ROOTS = (Path("/media"), Path("/mnt"))
LOCKOUT_AFTER, LOCKOUT_SECONDS = 5, 15 * 60


@dataclass(frozen=True)
class Call:
    """One operation's context: the station, the staff member who asked, the catalog."""

    ctl: Control
    me: Person
    db: Database

    @property
    def cfg(self) -> Config:
        """The station's config."""
        return self.ctl.cfg

    @property
    def who(self) -> access.Acting:
        """The staff member as the services name them."""
        return access.Acting(self.me, self.me.label)

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


class Control:
    """The daemon's side of the control socket: sessions, lockout, and the operations."""

    def __init__(self, cfg: Config, export_roots: tuple[Path, ...] = EXPORT_ROOTS) -> None:
        self.cfg = cfg
        self.topics = cfg.topics
        self.export_roots = export_roots
        self._lock = threading.Lock()
        self._sessions: dict[str, tuple[str, float]] = {}  # token → (staff id, started)
        self._failures: dict[str, list[float]] = {}

    def handle(self, request: dict[str, Any], uid: int) -> Reply:
        """Answer one request: ``{"op", "token", "args"}`` → ``{"ok", "result" | "error"}``.
        Who asks and whether their role may is settled before the arguments are read."""
        raw, token = request.get("args"), request.get("token")
        if not isinstance(raw, dict | None):
            return _error(ErrorKind.BAD_REQUEST, "args must be an object")
        op = protocol.OPS.get(str(request.get("op")))
        if op is not None and not op.session:
            return self._session(op, raw, token), None
        me = self._person(token)
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
        return self._run(op, me, args)

    def _session(self, op: protocol.Op, raw: dict[str, Any] | None, token: Any) -> dict[str, Any]:
        """Log in, or out."""
        try:
            args = op.args.parse(raw)
        except BadRequest as exc:
            return _error(ErrorKind.BAD_REQUEST, str(exc))[0]
        if isinstance(args, protocol.Login):
            return self._login(args)
        with self._lock:
            self._sessions.pop(str(token), None)
        return {"ok": True, "result": None}

    def _run(self, op: protocol.Op, me: Person, args: protocol.Args) -> Reply:
        db = open_catalog(self.cfg.catalog) if op.write else open_readonly(self.cfg.catalog)
        try:
            result = HANDLERS[op.name](Call(self, me, db), args)
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

    def _person(self, token: Any) -> Person | None:
        if not isinstance(token, str):
            return None
        with self._lock:
            found = self._sessions.get(token)
            if found is None:
                return None
            if time.monotonic() - found[1] > SESSION_SECONDS:
                del self._sessions[token]
                return None
        return self.cfg.staff.get(found[0])

    def _login(self, args: protocol.Login) -> dict[str, Any]:
        sid, password = args.staff.strip(), args.password
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._failures.get(sid, []) if now - t < LOCKOUT_SECONDS]
            locked = len(recent) >= LOCKOUT_AFTER
        if locked:
            self._refuse(sid or "?", "login", "locked out after repeated failures")
            return _error(
                ErrorKind.TOO_MANY, "嘗試次數過多，請稍後再試 Too many attempts: try again later"
            )[0]
        stored = self.cfg.password_hashes.get(sid)
        person = self.cfg.staff.get(sid)
        if stored is None or person is None or not passwords.verify(password, stored):
            with self._lock:
                self._failures[sid] = [*recent, now]
            return _error(ErrorKind.UNAUTHENTICATED, "帳號或密碼錯誤 Wrong staff id or password")[0]
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._failures.pop(sid, None)
            self._sessions[token] = (sid, now)
        log.info("console: %s logged in", person.label)
        return {"ok": True, "result": {"token": token, "person": _person_json(person)}}

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
    """The six-monthly report (REG-7.2) for a period: the chain checked now, against the heads
    on the drives; fixity as the last scrub found it (a full read-back is `camdock audit
    --full`, hours of disk time, not a page load)."""
    roots = [str(d.root) for d in c.cfg.drives]
    problems = audit.chain(c.db, roots)
    return audit.period_report(c.db, c.cfg.tz, a.first, a.last, c.today(), problems, [],
                               c.me.label, False)  # fmt: skip


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
            "purpose": a.purpose.value, "unit_supervisor": a.unit_supervisor}  # fmt: skip
    scope = (a.officer, a.camera, c.local(a.begin), c.local(a.end))
    req = access.new_request(c.db, c.cfg, c.who, form, scope, c.ctl.topics)
    return {"number": req.number}


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
    access.step(c.db, c.who, a.number, a.action, c.ctl.topics, clock.now(), **kw)
    return None


@_handles(protocol.RequestCopy)
def _request_copy(c: Call, a: protocol.RequestCopy) -> Any:
    to = Path(os.path.abspath(a.to))
    if not any(to == r or r in to.parents for r in c.ctl.export_roots) or ".." in to.parts:
        roots = ", ".join(str(r) for r in c.ctl.export_roots)
        raise BadRequest(
            f"匯出位置須在 {roots} 之下 the copy goes onto export media: under {roots}", "to"
        )
    sealing = Sealing.from_config(c.cfg)
    done = access.copy(c.db, c.who, a.number, to, sealing.key, c.ctl.topics)
    return {"folder": str(done["folder"])}


@_handles(protocol.SealConfirm)
def _seal_confirm(c: Call, a: protocol.SealConfirm) -> Any:
    access.authorize(c.db, c.who, "confirm", c.ctl.topics)
    confirm_day(c.db, Sealing(None, topics=c.ctl.topics), a.day, c.me.label, c.me.id)
    return None


@_handles(protocol.HoldPlace)
def _hold_place(c: Call, a: protocol.HoldPlace) -> Any:
    access.authorize(c.db, c.who, "hold", c.ctl.topics)
    try:
        return retention.place_hold(
            c.db, retention.Keeping.from_config(c.cfg), c.me.label, kind=a.kind, case=a.case,
            reason=a.reason, recording=a.recording, officer=a.officer, today=c.today())  # fmt: skip
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
    return retention.propose_list(c.db, retention.Keeping.from_config(c.cfg), c.today(),
                                  c.me.label, c.me.id)  # fmt: skip


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
    return len(retention.execute_list(c.db, retention.Keeping.from_config(c.cfg), c.today(),
                                      a.list, c.me.label, c.me.id))  # fmt: skip


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
