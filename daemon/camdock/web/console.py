"""What every page of the console shares: the logged-in staff member, the way to the daemon (its
control socket), the templates, and ``needs``, the wrapper that turns a page into a handler
(session, CSRF, the daemon's refusals as pages)."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from camdock import clock, protocol, terms
from camdock.adapters import control
from camdock.config import Config
from camdock.core.access import ACTIONS, Role
from camdock.protocol import SEES_CATALOG, SEES_SEALS, SLOW_OPS, STATUS, ErrorKind
from camdock.station.control import SOCKET

__all__ = [
    "SLOW_OPS",
    "Console",
    "DaemonRefused",
    "Me",
    "Page",
    "bilingual",
    "console",
    "duty_html",
    "forged",
    "needs",
    "person_html",
    "person_of",
]


class DaemonRefused(Exception):
    """The daemon said no (and recorded it), or could not be asked; ``status`` is the kind's
    (protocol.STATUS)."""

    def __init__(self, kind: ErrorKind, why: str) -> None:
        super().__init__(why)
        self.kind = kind
        self.status = STATUS[kind]


@dataclass(frozen=True)
class Me:
    """The logged-in staff member, as the daemon described them at login."""

    id: str
    name: str
    roles: frozenset[Role]
    label: str

    def may(self, roles: frozenset[Role]) -> bool:
        """Whether any of their roles is among ``roles`` (the daemon decides; this is for
        showing only what they may use)."""
        return bool(self.roles & roles)


class Console:
    """The console's state: the config (station, zone, bays), the way to the daemon, the
    templates."""

    def __init__(self, cfg: Config, socket_path: Path | None = None) -> None:
        self.cfg = cfg
        self.socket = socket_path or cfg.run_dir / SOCKET
        self.env = Environment(
            loader=PackageLoader("camdock.web", "templates"), autoescape=select_autoescape(["html"])
        )
        self.env.filters["bi"] = bilingual
        # Times as people read them: the station's zone, to the minute (clock.local_text).
        self.env.filters["local"] = lambda v: clock.local_text(v, cfg.tz)
        self.env.filters["localsec"] = lambda v: clock.local_text(v, cfg.tz, seconds=True)
        self.env.filters["localday"] = lambda v: clock.local_day(v, cfg.tz)
        self.env.globals["zone"] = clock.zone_label(cfg.tz)
        # Codes in the station's words, from the table the printed forms use (terms.py).
        self.env.filters["t"] = lambda code, group: bilingual(terms.term(group, code))
        self.env.filters["duty"] = duty_html
        self.env.filters["who"] = person_html
        self.env.globals["TERMS"] = terms.TERMS

    def me(self, request: Request) -> Me | None:
        """The logged-in staff member as the daemon said this request (``needs`` asks it);
        None on a page without a session. The cookie holds only the session's token."""
        found: Me | None = getattr(request.state, "me", None)
        return found

    async def live(self, request: Request, active: bool = True) -> Me | None:
        """Whether this session's token is live at the daemon (the daemon's store decides:
        logout, a password change, idle and absolute limits end it there), and for whom."""
        if not isinstance(request.session.get("token"), str):
            return None
        try:
            who = await self.ask(request, protocol.Session(active=1 if active else 0))
        except DaemonRefused as exc:
            if exc.status == 401:
                return None
            raise
        return person_of(who)

    def page(self, request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        """A template rendered for this session, in its language."""
        html = self.env.get_template(name).render(
            me=self.me(request),
            csrf=request.session.get("csrf", ""),
            station=self.cfg.station_id,
            unit=self.cfg.unit,
            lang=request.session.get("lang", "zh"),
            path=request.url.path,
            SEES_CATALOG=SEES_CATALOG,
            SEES_SEALS=SEES_SEALS,
            SEES_AUDIT=ACTIONS["audit"],
            may=lambda action: (m := self.me(request)) is not None and m.may(ACTIONS[action]),
            **ctx,
        )
        return HTMLResponse(html, status_code=status)

    async def ask(self, request: Request | None, args: protocol.Args) -> Any:
        """One operation by the daemon, as this session's staff member."""
        reply, fd = await self.ask_fd(request, args)
        if fd is not None:
            os.close(fd)
        return reply

    async def ask_fd(self, request: Request | None, args: protocol.Args) -> tuple[Any, int | None]:
        """The same, with the descriptor the daemon passed (the caller closes it)."""
        token = request.session.get("token") if request is not None else None
        timeout = None if args.op.slow else 60.0
        try:
            ask = {"op": args.op.name, "token": token, "args": args.args()}
            doc, fd = await asyncio.to_thread(control.call, self.socket, ask, timeout)
        except TimeoutError:  # it is there, and busier than it should ever be: not "not running"
            raise DaemonRefused(
                ErrorKind.TIMEOUT,
                "站台程式忙碌，未及時回應 The station daemon did not answer in time",
            ) from None
        except OSError:
            raise DaemonRefused(
                ErrorKind.UNAVAILABLE, "站台程式未執行，無法連線 The station daemon is not running"
            ) from None
        if not doc.get("ok"):
            raise DaemonRefused(_kind(doc), str(doc.get("error", "?")))
        return doc.get("result"), fd


def person_of(who: dict[str, Any]) -> Me:
    """The staff member as the daemon describes them."""
    roles = frozenset(Role(r) for r in who.get("roles", []) if r in Role.__members__.values())
    return Me(str(who["id"]), str(who["name"]), roles, str(who["label"]))


def _kind(doc: dict[str, Any]) -> ErrorKind:
    """An answer's error kind (by its status, were it from a daemon that names none)."""
    try:
        return ErrorKind(str(doc.get("kind")))
    except ValueError:
        by_status = {status: kind for kind, status in STATUS.items()}
        return by_status.get(doc.get("status", 500), ErrorKind.INTERNAL)


def console(request: Request) -> Console:
    """The console serving this request (make_app keeps it in the app's state)."""
    found: Console = request.app.state.console
    return found


Page = Callable[[Console, Request, Me], Awaitable[Response]]


def needs(fn: Page) -> Callable[[Request], Awaitable[Response]]:
    """A page for someone logged in. Whether their role may see it is the daemon's to say (and
    to record when it may not, REG-5.1): every page asks it first thing, and a refusal comes
    back as a 403 page. The nav merely hides what a role may not open. A post is refused
    unless it carries the session's CSRF token; its fields are then ``request.state.form``."""

    async def handler(request: Request) -> Response:
        c = console(request)
        try:
            me = await c.live(request)
        except DaemonRefused as exc:
            return c.page(request, "refused.html", exc.status, why=str(exc))
        if me is None:  # no session, or the daemon ended it: the cookie alone opens nothing
            request.session.pop("token", None)
            return RedirectResponse("/login", 303)
        request.state.me = me
        if request.method == "POST":
            form = await request.form()
            if not secrets.compare_digest(
                str(form.get("csrf", "")), request.session.get("csrf", "-")
            ):
                return await forged(c, request)
            request.state.form = {k: str(v) for k, v in form.items()}
        try:
            result: Response = await fn(c, request, me)
        except protocol.BadRequest as exc:  # the form or the URL cannot make a request
            return c.page(request, "refused.html", STATUS[ErrorKind.BAD_REQUEST], why=str(exc))
        except DaemonRefused as exc:
            if exc.status == 401:  # the daemon ended the session (restart, expiry)
                request.session.clear()
                return RedirectResponse("/login", 303)
            recorded = True if exc.kind == ErrorKind.FORBIDDEN else None  # the daemon records those
            return c.page(request, "refused.html", exc.status, why=str(exc), recorded=recorded)
        return result

    handler.__name__ = handler.__qualname__ = fn.__name__
    handler.__doc__ = fn.__doc__
    return handler


async def forged(c: Console, request: Request) -> Response:
    """The 403 for a post without its form's token: recorded under the session's person when
    the daemon knows the session, and saying so only then (issue 29)."""
    recorded = False
    if isinstance(request.session.get("token"), str):
        try:
            got = await c.ask(request, protocol.FormForged(request.url.path))
            recorded = bool(got and got.get("recorded"))
        except DaemonRefused:
            recorded = False
    return c.page(request, "refused.html", 403, recorded=recorded,
                  why="表單已失效 The form expired or was forged")  # fmt: skip


_BILINGUAL = re.compile(
    r"^([^A-Za-z]*[\u3000-\u9fff\uff00-\uffef][^A-Za-z]*?)\s+([A-Za-z].*)$", re.S
)


def person_html(name: Any, badge: Any = None) -> Markup:
    """A name (and badge) each isolated in ``<bdi>``: a right-to-left override in a name must
    not reorder what stands beside it (issue 29)."""
    parts = [Markup("<bdi>{}</bdi>").format(v) for v in (name, badge) if v not in (None, "")]
    return Markup(" ").join(parts)


def duty_html(text: Any) -> Markup:
    """A duty-log entry or an alarm: its Chinese (terms.duty_zh, terms.alarm_zh) marked up
    beside the English the daemon wrote, like every pair; a text of another shape as it is."""
    zh = terms.duty_zh(str(text or "")) or terms.alarm_zh(str(text or ""))
    if zh is None:
        return bilingual(text or "")
    return Markup('<span class="zh">{}</span> <span class="en">{}</span>').format(zh, text)


def bilingual(text: Any) -> Markup:
    """A message written "中文 English" marked up like the templates' pairs, so the English-only
    view can hide the Chinese; anything else as it is."""
    m = _BILINGUAL.match(str(text))
    if m is None:
        return escape(str(text))
    return Markup('<span class="zh">{}</span> <span class="en">{}</span>').format(*m.groups())
