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
from typing import Any

from sqlite_utils import Database

from camdock import clock, passwords
from camdock.adapters.control import Reply
from camdock.catalog import (
    custody,
    open_catalog,
    open_readonly,
    recordings,
    requests,
    seals,
    selftests,
)
from camdock.catalog import holds as hold_rows
from camdock.config import Config
from camdock.core.access import Person, Role
from camdock.core.retention import HoldKind
from camdock.errors import CamdockError, Conflict, ExitCode, Refused
from camdock.model import Officer
from camdock.services import access, audit, retention
from camdock.services.attribute import attribute_recording
from camdock.services.seal import Sealing, confirm_day

__all__ = ["SESSION_SECONDS", "SLOW_OPS", "SOCKET", "WEB_USER", "Control", "peers"]

log = logging.getLogger(__name__)

SOCKET = "control.sock"  # in the run directory
WEB_USER = "camdock-web"  # the console's system user (systemd/camdock-web.service, ansible)
SESSION_SECONDS = 8 * 3600  # a shift; then log in again
# Where the console may have the daemon (root) write a verified copy: export media only.
EXPORT_ROOTS = (Path("/media"), Path("/mnt"))
LOCKOUT_AFTER, LOCKOUT_SECONDS = 5, 15 * 60
SEES_CATALOG = frozenset({Role.CUSTODIAN, Role.SUPERVISOR, Role.APPROVER, Role.AUDITOR})
SEES_SEALS = frozenset({Role.SUPERVISOR, Role.APPROVER, Role.CUSTODIAN})
SEES_AUDIT = frozenset({Role.AUDITOR, Role.SUPERVISOR, Role.APPROVER})
EVERYONE = frozenset(Role)


class BadRequest(ValueError):
    """A request the console should never have sent (a missing or malformed argument)."""


@dataclass(frozen=True)
class Call:
    """One operation's context: the station, the staff member, the catalog, the arguments."""

    ctl: Control
    me: Person
    db: Database
    args: dict[str, Any]

    @property
    def cfg(self) -> Config:
        """The station's config."""
        return self.ctl.cfg

    @property
    def who(self) -> access.Acting:
        """The staff member as the services name them."""
        return access.Acting(self.me, self.me.label)

    def text(self, key: str, default: str | None = None) -> str:
        """A string argument (required unless a default is given)."""
        value = self.args.get(key, default)
        if not isinstance(value, str):
            raise BadRequest(f"{key}: a text is needed")
        return value

    def number(self, key: str) -> int:
        """An integer argument."""
        try:
            return int(self.args[key])
        except (KeyError, TypeError, ValueError):
            raise BadRequest(f"{key}: a number is needed") from None

    def day(self, key: str) -> date:
        """A YYYY-MM-DD argument."""
        try:
            return date.fromisoformat(self.text(key))
        except ValueError:
            raise BadRequest(f"{key}: a day YYYY-MM-DD is needed") from None

    def moment(self, key: str) -> datetime:
        """A local date and time (YYYY-MM-DDTHH:MM) in the station's zone."""
        try:
            return datetime.fromisoformat(self.text(key)).replace(tzinfo=self.cfg.tz)
        except ValueError:
            raise BadRequest(f"{key}: a time YYYY-MM-DDTHH:MM is needed") from None

    def today(self) -> date:
        """Today in the station's zone."""
        return clock.now().astimezone(self.cfg.tz).date()


Op = Callable[[Call], Any]


@dataclass(frozen=True)
class _Entry:
    fn: Op
    roles: frozenset[Role]
    write: bool
    passes_fd: bool = False


OPS: dict[str, _Entry] = {}
# The operations that may take minutes (a verified copy, an attribution re-filing both drives,
# destruction, a report over months): they have workers of their own on the socket, and the
# console waits for them without a deadline.
SLOW_OPS = frozenset({"request.copy", "retention.destroy", "attribute", "audit.report"})


def _op(name: str, roles: frozenset[Role] = EVERYONE, *, write: bool = False,
        passes_fd: bool = False) -> Callable[[Op], Op]:  # fmt: skip
    def register(fn: Op) -> Op:
        OPS[name] = _Entry(fn, roles, write, passes_fd)
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
        """Answer one request: ``{"op", "token", "args"}`` → ``{"ok", "result" | "error"}``."""
        op, args = request.get("op"), request.get("args") or {}
        if not isinstance(args, dict):
            return _error(400, "args must be an object")
        if op == "login":
            return self._login(args), None
        me = self._person(request.get("token"))
        if op == "logout":
            with self._lock:
                self._sessions.pop(str(request.get("token")), None)
            return {"ok": True, "result": None}, None
        if me is None:
            return _error(401, "not logged in, or the session ended")
        entry = OPS.get(str(op))
        if entry is None:
            return _error(404, f"no operation {op!r}")
        if not (me.roles & entry.roles):
            self._refuse(me.label, str(op), "the role may not see this")
            return _error(403, "您的角色無權檢視此頁 Your role may not see this page")
        db = open_catalog(self.cfg.catalog) if entry.write else open_readonly(self.cfg.catalog)
        try:
            result = entry.fn(Call(self, me, db, args))
        except BadRequest as exc:
            return _error(400, str(exc))
        except Conflict as exc:  # someone else did it first (recorded): who, and when, here
            return _error(409, exc.told(self.cfg.tz))
        except Refused as exc:  # the rules said no (and recorded it): say why
            return _error(403, str(exc))
        except CamdockError as exc:  # nothing to act on, or it could not be done: say why
            return _error(404 if exc.exit_code == ExitCode.NOINPUT else 409, str(exc))
        finally:
            db.close()
        if entry.passes_fd:
            fd: int | None = result
            return {"ok": True, "result": None}, fd
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

    def _login(self, args: dict[str, Any]) -> dict[str, Any]:
        sid, password = args.get("staff"), args.get("password")
        if not isinstance(sid, str) or not isinstance(password, str):
            return _error(400, "staff and password are needed")[0]
        sid = sid.strip()
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._failures.get(sid, []) if now - t < LOCKOUT_SECONDS]
            locked = len(recent) >= LOCKOUT_AFTER
        if locked:
            self._refuse(sid or "?", "login", "locked out after repeated failures")
            return _error(429, "嘗試次數過多，請稍後再試 Too many attempts: try again later")[0]
        stored = self.cfg.password_hashes.get(sid)
        person = self.cfg.staff.get(sid)
        if stored is None or person is None or not passwords.verify(password, stored):
            with self._lock:
                self._failures[sid] = [*recent, now]
            return _error(401, "帳號或密碼錯誤 Wrong staff id or password")[0]
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._failures.pop(sid, None)
            self._sessions[token] = (sid, now)
        log.info("console: %s logged in", person.label)
        return {"ok": True, "result": {"token": token, "person": _person_json(person)}}

    def _refuse(self, by: str, action: str, why: str) -> None:
        db = open_catalog(self.cfg.catalog)
        try:
            requests.record_refusal(db, by, action, None, why, self.topics)
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


def _error(status: int, why: str) -> Reply:
    return {"ok": False, "status": status, "error": why}, None


def _person_json(p: Person) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "roles": sorted(r.value for r in p.roles),
            "label": p.label}  # fmt: skip


def _fields(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


# --- reading ---------------------------------------------------------------------------------


@_op("catalog.search", SEES_CATALOG)
def _search(c: Call) -> Any:
    return recordings.search(c.db, c.args.get("officer") or None, c.args.get("camera") or None,
                             c.args.get("day") or None)  # fmt: skip


@_op("recording.get", SEES_CATALOG)
def _recording(c: Call) -> Any:
    rec_id = c.number("id")
    rec = recordings.get(c.db, rec_id)
    if rec is None:
        raise CamdockError(f"沒有紀錄 No recording {rec_id}", ExitCode.NOINPUT)
    day = date.fromisoformat(rec.relpath[:10].replace("/", "-"))
    return {
        "rec": rec,
        "copies": recordings.copies(c.db, rec_id),
        "history": custody.history(c.db, rec_id),
        "sealed": seals.current(c.db, day),
    }


@_op("requests.list")
def _requests(c: Call) -> Any:
    sees_all = bool(c.me.roles - {Role.OFFICER})
    return [r for r in requests.listing(c.db) if sees_all or r.applicant_id == c.me.id]


@_op("request.get")
def _request(c: Call) -> Any:
    req = requests.get(c.db, c.text("number"))
    if req is None or (c.me.roles == {Role.OFFICER} and req.applicant_id != c.me.id):
        raise CamdockError("沒有這份申請書 No such request", ExitCode.NOINPUT)
    return {"req": req, "recs": requests.recordings_of(c.db, req.id)}


@_op("seals.list", SEES_SEALS)
def _seals(c: Call) -> Any:
    days: dict[str, dict[str, Any]] = {}
    for s in seals.status(c.db):
        days.setdefault(s["day"], s)
    return {"days": list(days.values()), "dirty": sorted(seals.dirty(c.db))}


@_op("holds.list", SEES_CATALOG)
def _holds(c: Call) -> Any:
    return hold_rows.listing(c.db)


@_op("retention.plan", SEES_CATALOG)
def _plan(c: Call) -> Any:
    plan = retention.plan_for(c.db, c.today())
    return {"plan": {**_fields(plan), "alarms": plan.alarms},
            "auto": c.cfg.retention.standing_authorisation}  # fmt: skip


@_op("attribution.queue", SEES_CATALOG)
def _queue(c: Call) -> Any:
    officers = [o.as_json() for o in c.cfg.officers.values()]
    return {"queue": recordings.unattributed(c.db), "officers": officers}


@_op("duty.log", SEES_CATALOG)
def _duty_log(c: Call) -> Any:
    """REG-3.2: the pre-shift tests and the duty-log entries of a period."""
    return selftests.history(c.db, c.text("start"), c.text("end"))


@_op("register", SEES_CATALOG)
def _register(c: Call) -> Any:
    return requests.register_between(c.db, c.text("start"), c.text("end"))


@_op("audit.report", SEES_AUDIT)
def _audit(c: Call) -> Any:
    """The six-monthly report (REG-7.2) for a period: the chain checked now, against the heads
    on the drives; fixity as the last scrub found it (a full read-back is `camdock audit
    --full`, hours of disk time, not a page load)."""
    first, last = c.day("from"), c.day("to")
    roots = [str(d.root) for d in c.cfg.drives]
    problems = audit.chain(c.db, roots)
    return audit.period_report(c.db, c.cfg.tz, first, last, c.today(), problems, [],
                               c.me.label, False)  # fmt: skip


@_op("video.open", passes_fd=True, write=True)
def _video(c: Call) -> int:
    """A recording, opened only for a supervised viewing: an approved request that covers it,
    in its window, for its custodian (invariant 9). The descriptor goes to the console."""
    number, rec_id = c.text("number"), c.number("id")
    req = requests.get(c.db, number)
    if req is None or not any(r.id == rec_id for r in requests.recordings_of(c.db, req.id)):
        raise CamdockError("沒有此影音資料 Not in this request", ExitCode.NOINPUT)
    access.authorize(c.db, c.who, "view", c.ctl.topics, access._rules(req), clock.now())
    path = recordings.plain_copy(c.db, rec_id)
    if path is None:
        raise CamdockError("此檔案僅存於封存檔 Only in its seal", ExitCode.NOINPUT)
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)


# --- acting ----------------------------------------------------------------------------------


@_op("request.new", write=True)
def _request_new(c: Call) -> Any:
    form = {k: c.text(k, "") for k in ("duty_item", "kind", "reason", "purpose",
                                        "unit_supervisor")}  # fmt: skip
    scope = (c.text("officer", "") or None, c.text("camera", "") or None, c.moment("from"),
             c.moment("to"))  # fmt: skip
    req = access.new_request(c.db, c.cfg, c.who, form, scope, c.ctl.topics)
    return {"number": req.number}


@_op("request.step", write=True)
def _request_step(c: Call) -> Any:
    number, action = c.text("number"), c.text("action")
    kw: dict[str, Any] = {}
    if action == "deny":
        kw["reason"] = c.text("reason", "")
    if action == "schedule":
        start = c.moment("at")
        try:
            minutes = int(c.args.get("minutes") or 120)
        except (TypeError, ValueError):
            raise BadRequest("minutes: a number is needed") from None
        kw |= {"start": start, "end": start + timedelta(minutes=minutes)}
    access.step(c.db, c.who, number, action, c.ctl.topics, clock.now(), **kw)
    return None


@_op("request.copy", write=True)
def _request_copy(c: Call) -> Any:
    to = Path(os.path.abspath(c.text("to")))
    if not any(to == r or r in to.parents for r in c.ctl.export_roots) or ".." in to.parts:
        roots = ", ".join(str(r) for r in c.ctl.export_roots)
        raise BadRequest(
            f"匯出位置須在 {roots} 之下 the copy goes onto export media: under {roots}"
        )
    sealing = Sealing.from_config(c.cfg)
    done = access.copy(c.db, c.who, c.text("number"), to, sealing.key, c.ctl.topics)
    return {"folder": str(done["folder"])}


@_op("seal.confirm", write=True)
def _seal_confirm(c: Call) -> Any:
    day = c.day("day")
    access.authorize(c.db, c.who, "confirm", c.ctl.topics)
    confirm_day(c.db, Sealing(None, topics=c.ctl.topics), day, c.me.label)
    return None


@_op("hold.place", write=True)
def _hold_place(c: Call) -> Any:
    access.authorize(c.db, c.who, "hold", c.ctl.topics)
    try:
        kind = HoldKind(c.text("kind"))
        recording = int(c.text("recording", "") or 0) or None
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    try:
        return retention.place_hold(
            c.db, retention.Keeping.from_config(c.cfg), c.me.label, kind=kind,
            case=c.text("case", ""), reason=c.text("reason", ""), recording=recording,
            officer=c.text("officer", "") or None, today=c.today())  # fmt: skip
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


@_op("hold.release", write=True)
def _hold_release(c: Call) -> Any:
    access.authorize(c.db, c.who, "release", c.ctl.topics)
    retention.release_hold(c.db, retention.Keeping.from_config(c.cfg), c.number("id"),
                           c.me.label, c.text("reason", ""))  # fmt: skip
    return None


@_op("retention.destroy", write=True)
def _destroy(c: Call) -> Any:
    access.authorize(c.db, c.who, "destroy", c.ctl.topics)
    return len(retention.destroy(c.db, retention.Keeping.from_config(c.cfg), c.today(),
                                 c.me.label))  # fmt: skip


@_op("attribute", write=True)
def _attribute(c: Call) -> Any:
    """REG-4.2.4: file an unattributed recording under the officer who recorded it."""
    access.authorize(c.db, c.who, "attribute", c.ctl.topics)
    officer: Officer | None = c.cfg.officers.get(c.text("officer"))
    if officer is None:
        raise BadRequest(f"badge {c.text('officer')!r} is not an officer of this station")
    drives = c.cfg.drives if c.cfg.require_mounts else ()
    done = attribute_recording(c.db, c.number("recording"), officer, c.me.label, drives)
    return done.as_json()
