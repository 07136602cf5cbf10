"""The fleet view (``camdock server web``): every station's state, backlog, unsealed days,
alarms and today's offloads; recordings searched across stations; each station's custody
witness. Traditional Chinese with English beneath, in the console's style (its stylesheet),
Starlette and server-rendered Jinja2, no script. Its own login: the users of the server's
config (scrypt hashes, passwords.py), as a unit supervisor or an auditor; read-only pages,
JSON beside each (``?format=json``)."""

from __future__ import annotations

import secrets
from datetime import date
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from camdock import clock, passwords
from camdock.server import fleet
from camdock.server.config import ServerConfig, User

__all__ = ["make_app"]

TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).parent.parent / "web" / "static"  # the console's stylesheet
ROLE_NAMES = {"supervisor": "督導 unit supervisor", "auditor": "稽核 auditor"}
CSP = (
    "default-src 'self'; style-src 'self'; img-src 'self'; frame-ancestors 'none';"
    " base-uri 'none'; form-action 'self'"
)


class _View:
    """The fleet view's pages over the index at ``cfg.dsn``."""

    def __init__(self, cfg: ServerConfig) -> None:
        self.cfg = cfg
        self.env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape())
        self.users = {u.id: u for u in cfg.users}

    def me(self, request: Request) -> User | None:
        return self.users.get(request.session.get("user", ""))

    def page(self, request: Request, name: str, **context: Any) -> Response:
        if request.query_params.get("format") == "json":
            data = {k: v for k, v in context.items() if k not in ("q",)}
            return JSONResponse(_jsonable(data))
        html = self.env.get_template(name).render(me=self.me(request), roles=ROLE_NAMES, **context)
        return HTMLResponse(
            html, headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}
        )

    def login_required(self, request: Request) -> Response | None:
        if self.me(request) is None:
            return RedirectResponse("/login", status_code=303)
        return None

    async def login(self, request: Request) -> Response:
        error = None
        if request.method == "POST":
            form = await request.form()
            token = request.session.get("csrf")
            if not token or not secrets.compare_digest(str(form.get("csrf", "")), token):
                error = "表單已過期，請再試一次 The form expired; try again"
            else:
                user = self.users.get(str(form.get("user", "")))
                if user is not None and passwords.verify(
                    str(form.get("password", "")), user.password
                ):
                    request.session.clear()
                    request.session["user"] = user.id
                    return RedirectResponse("/", status_code=303)
                error = "帳號或密碼錯誤 Wrong user or password"
        request.session["csrf"] = secrets.token_urlsafe(16)
        status = 401 if error else 200
        html = self.env.get_template("fleet_login.html").render(
            me=None, error=error, csrf=request.session["csrf"]
        )
        return HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": CSP})

    async def logout(self, request: Request) -> Response:
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    async def stations(self, request: Request) -> Response:
        if (r := self.login_required(request)) is not None:
            return r
        now = clock.now()
        rows = fleet.stations(self.cfg.dsn, now, self.cfg.timezone)
        return self.page(
            request,
            "fleet_stations.html",
            stations=rows,
            alarms=fleet.alarms(self.cfg.dsn)[:50],
            today=fleet.today(now, self.cfg.timezone)[0],
        )

    async def recordings(self, request: Request) -> Response:
        if (r := self.login_required(request)) is not None:
            return r
        q = request.query_params
        day: date | None = None
        error = None
        if q.get("day"):
            try:
                day = date.fromisoformat(q["day"])
            except ValueError:
                error = "日期格式為 YYYY-MM-DD Day as YYYY-MM-DD"
        searched = any(q.get(k) for k in ("officer", "camera", "day")) and error is None
        rows = (
            fleet.recordings(self.cfg.dsn, q.get("officer"), q.get("camera"), day)
            if searched
            else []
        )
        return self.page(
            request,
            "fleet_recordings.html",
            recordings=rows,
            q=dict(q),
            error=error,
            searched=searched,
        )

    async def station(self, request: Request) -> Response:
        if (r := self.login_required(request)) is not None:
            return r
        sid = request.path_params["station"]
        return self.page(
            request,
            "fleet_station.html",
            station=sid,
            heads=fleet.witness(self.cfg.dsn, sid),
            alarms=fleet.alarms(self.cfg.dsn, sid),
        )


def make_app(cfg: ServerConfig) -> Starlette:
    """The fleet view over the index at ``cfg.dsn``."""
    view = _View(cfg)
    secret = (
        cfg.secret_file.read_text().strip()
        if cfg.secret_file is not None
        else secrets.token_hex(32)
    )
    routes = [
        Route("/login", view.login, methods=["GET", "POST"]),
        Route("/logout", view.logout, methods=["POST"]),
        Route("/", view.stations),
        Route("/recordings", view.recordings),
        Route("/stations/{station}", view.station),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [
        Middleware(
            SessionMiddleware,
            secret_key=secret,
            session_cookie="fleet",
            max_age=8 * 3600,
            same_site="strict",
        )
    ]
    return Starlette(routes=routes, middleware=middleware)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return value.isoformat() if hasattr(value, "isoformat") else str(value)
