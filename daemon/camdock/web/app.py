"""The custodian's console (``camdock web``): pages for the bays, the catalog, requests and
seals, in Traditional Chinese with English beneath (or English alone), for the people who run a
precinct's footage.

An unprivileged process that only renders (ARCHITECTURE, "Who may write"): logging in, every
catalog read and every action go to the station daemon over its control socket
(``station/control.py``), which checks the staff member's roles and acts through the same
service functions as the commands, so refusals are recorded the same way. The console holds
no catalog connection and cannot read the footage drives; an approved viewing streams from a
descriptor the daemon opened for it.

Starlette, server-rendered Jinja2 templates, one small local script (no CDN, no inline script:
the Content-Security-Policy allows only 'self'). Every page but the login needs a session; every
post carries the session's CSRF token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiofiles
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from camdock import clock, forms
from camdock.adapters import control
from camdock.config import Config
from camdock.core.access import ACTIONS, Role
from camdock.station.bays import BAYS_FILE
from camdock.station.control import SEES_CATALOG, SEES_SEALS, SESSION_SECONDS, SOCKET

__all__ = ["BAYS_FILE", "make_app"]


CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "media-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
SLOW_OPS = frozenset({"request.copy", "retention.destroy", "attribute", "audit.report"})


class DaemonRefused(Exception):
    """The daemon said no (and recorded it), or could not be asked."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


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


class _Headers:
    """Security headers on every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                for k, v in (
                    ("content-security-policy", CSP),
                    ("x-frame-options", "DENY"),
                    ("x-content-type-options", "nosniff"),
                    ("referrer-policy", "no-referrer"),
                    ("cache-control", "no-store"),
                ):
                    headers.append((k.encode(), v.encode()))
            await send(message)

        await self.app(scope, receive, with_headers)


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

    def me(self, request: Request) -> Me | None:
        """The logged-in staff member, if the session is valid and not expired."""
        who, at = request.session.get("me"), request.session.get("at", 0)
        if not isinstance(who, dict) or time.time() - at > SESSION_SECONDS:
            return None
        roles = frozenset(Role(r) for r in who.get("roles", []) if r in Role.__members__.values())
        return Me(str(who["id"]), str(who["name"]), roles, str(who["label"]))

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
            **ctx,
        )
        return HTMLResponse(html, status_code=status)

    async def ask(self, request: Request | None, op: str, **args: Any) -> Any:
        """One operation by the daemon, as this session's staff member."""
        reply, fd = await self.ask_fd(request, op, **args)
        if fd is not None:
            os.close(fd)
        return reply

    async def ask_fd(self, request: Request | None, op: str, **args: Any) -> tuple[Any, int | None]:
        """The same, with the descriptor the daemon passed (the caller closes it)."""
        token = request.session.get("token") if request is not None else None
        timeout = None if op in SLOW_OPS else 60.0
        try:
            ask = {"op": op, "token": token, "args": args}
            doc, fd = await asyncio.to_thread(control.call, self.socket, ask, timeout)
        except OSError:
            raise DaemonRefused(
                503, "站台程式未執行，無法連線 The station daemon is not running"
            ) from None
        if not doc.get("ok"):
            raise DaemonRefused(int(doc.get("status", 500)), str(doc.get("error", "?")))
        return doc.get("result"), fd


def make_app(
    cfg: Config, secret: bytes | None = None, socket_path: Path | None = None, https: bool = False
) -> Starlette:
    """The console for the station ``cfg``, asking the daemon at ``socket_path`` (default: the
    run directory's control socket); ``https``: the session cookie is only sent over TLS."""
    c = Console(cfg, socket_path)
    static = Path(__file__).parent / "static"

    def needs(fn: Callable[..., Any]) -> Callable[..., Any]:
        """A page for someone logged in. Whether their role may see it is the daemon's to say
        (and to record when it may not, REG-5.1): every page asks it first thing, and a
        refusal comes back as a 403 page. The nav merely hides what a role may not open."""

        async def handler(request: Request) -> Response:
            me = c.me(request)
            if me is None:
                return RedirectResponse("/login", 303)
            if request.method == "POST":
                form = await request.form()
                if not secrets.compare_digest(
                    str(form.get("csrf", "")), request.session.get("csrf", "-")
                ):
                    return c.page(request, "refused.html", 403,
                                  why="表單已失效 The form expired or was forged")  # fmt: skip
                request.state.form = {k: str(v) for k, v in form.items()}
            try:
                result: Response = await fn(request, me)
            except DaemonRefused as exc:
                if exc.status == 401:  # the daemon ended the session (restart, expiry)
                    request.session.clear()
                    return RedirectResponse("/login", 303)
                return c.page(request, "refused.html", exc.status, why=str(exc))
            return result

        return handler

    async def login(request: Request) -> Response:
        if request.method == "GET":
            request.session["csrf"] = request.session.get("csrf") or secrets.token_urlsafe(24)
            return c.page(request, "login.html")
        form = await request.form()
        if not secrets.compare_digest(str(form.get("csrf", "")), request.session.get("csrf", "-")):
            return c.page(request, "login.html", 403, error="表單已失效 The form expired")
        try:
            done = await c.ask(None, "login", staff=str(form.get("staff", "")),
                               password=str(form.get("password", "")))  # fmt: skip
        except DaemonRefused as exc:
            return c.page(request, "login.html", exc.status, error=str(exc))
        lang = request.session.get("lang", "zh")
        request.session.clear()
        request.session.update({"token": done["token"], "me": done["person"], "at": time.time(),
                                "csrf": secrets.token_urlsafe(24), "lang": lang})  # fmt: skip
        return RedirectResponse("/", 303)

    async def logout(request: Request) -> Response:
        with contextlib.suppress(
            DaemonRefused
        ):  # the daemon is away: the session ends all the same
            await c.ask(request, "logout")
        request.session.clear()
        return RedirectResponse("/login", 303)

    async def language(request: Request) -> Response:
        """中文 (with English beneath) or English alone, for this session."""
        want = request.path_params["lang"]
        request.session["lang"] = want if want in ("zh", "en") else "zh"
        back = request.query_params.get("back", "/")
        return RedirectResponse(back if back.startswith("/") and not back.startswith("//")
                                else "/", 303)  # fmt: skip

    @needs
    async def bays(request: Request, me: Me) -> Response:
        return c.page(request, "bays.html", bays=_bays(c.cfg))

    @needs
    async def bays_stream(request: Request, me: Me) -> Response:
        """Server-sent events: the bays' states, pushed when the daemon changes them."""

        async def changes() -> AsyncIterator[str]:
            last = None
            while not await request.is_disconnected():
                now = json.dumps(_bays(c.cfg), ensure_ascii=False)
                if now != last:
                    last = now
                    yield f"data: {now}\n\n"
                await asyncio.sleep(0.3)

        return StreamingResponse(changes(), media_type="text/event-stream")

    @needs
    async def catalog(request: Request, me: Me) -> Response:
        q = request.query_params
        found = await c.ask(request, "catalog.search", officer=q.get("officer"),
                            camera=q.get("camera"), day=q.get("day"))  # fmt: skip
        return c.page(request, "catalog.html", found=found, q=q)

    @needs
    async def recording(request: Request, me: Me) -> Response:
        got = await c.ask(request, "recording.get", id=request.path_params["id"])
        return c.page(request, "recording.html", **got)

    @needs
    async def request_list(request: Request, me: Me) -> Response:
        found = await c.ask(request, "requests.list")
        return c.page(request, "requests.html", found=found)

    @needs
    async def request_page(request: Request, me: Me) -> Response:
        got = await c.ask(request, "request.get", number=request.path_params["number"])
        return c.page(request, "request.html", **got, message=request.query_params.get("m"))

    @needs
    async def request_new(request: Request, me: Me) -> Response:
        f = request.state.form
        keys = ("duty_item", "kind", "reason", "purpose", "unit_supervisor", "officer", "camera",
                "from", "to")  # fmt: skip
        done = await c.ask(request, "request.new", **{k: f.get(k, "") for k in keys})
        return RedirectResponse(f"/requests/{done['number']}", 303)

    @needs
    async def request_action(request: Request, me: Me) -> Response:
        number, action = request.path_params["number"], request.path_params["action"]
        f = request.state.form
        if action == "copy":
            done = await c.ask(request, "request.copy", number=number, to=f.get("to", ""))
            msg = f"已複製並驗證 copied and verified: {done['folder']}"
        else:
            await c.ask(request, "request.step", number=number, action=action,
                        reason=f.get("reason", ""), at=f.get("at", ""),
                        minutes=f.get("minutes", ""))  # fmt: skip
            msg = f"{action} ✔"
        return RedirectResponse(f"/requests/{number}?m={msg}", 303)

    @needs
    async def request_pdf(request: Request, me: Me) -> Response:
        got = await c.ask(request, "request.get", number=request.path_params["number"])
        pdf = await asyncio.to_thread(forms.pdf, forms.request_html(got["req"], got["recs"]))
        return Response(pdf, media_type="application/pdf")

    @needs
    async def video(request: Request, me: Me) -> Response:
        """A recording, streamed from the descriptor the daemon opened for an approved viewing
        (invariant 9); ranges so the player can seek."""
        _, fd = await c.ask_fd(request, "video.open", number=request.path_params["number"],
                               id=request.path_params["id"])  # fmt: skip
        if fd is None:
            return c.page(request, "refused.html", 500, why="no descriptor")
        return await _stream(fd, request.headers.get("range"))

    @needs
    async def seal_list(request: Request, me: Me) -> Response:
        got = await c.ask(request, "seals.list")
        return c.page(request, "seals.html", **got, message=request.query_params.get("m"))

    @needs
    async def seal_confirm(request: Request, me: Me) -> Response:
        day = request.path_params["day"]
        await c.ask(request, "seal.confirm", day=day)
        return RedirectResponse(f"/seals?m=已確認 confirmed {day}", 303)

    @needs
    async def holds_page(request: Request, me: Me) -> Response:
        found = await c.ask(request, "holds.list")
        return c.page(request, "holds.html", holds=found, message=request.query_params.get("m"))

    @needs
    async def hold_place(request: Request, me: Me) -> Response:
        f = request.state.form
        keys = ("kind", "case", "reason", "recording", "officer")
        hold_id = await c.ask(request, "hold.place", **{k: f.get(k, "") for k in keys})
        return RedirectResponse(f"/holds?m=已保留 placed: {hold_id}", 303)

    @needs
    async def hold_release(request: Request, me: Me) -> Response:
        await c.ask(request, "hold.release", id=request.path_params["id"],
                    reason=request.state.form.get("reason", ""))  # fmt: skip
        return RedirectResponse("/holds?m=已解除 released", 303)

    @needs
    async def retention_page(request: Request, me: Me) -> Response:
        got = await c.ask(request, "retention.plan")
        return c.page(request, "retention.html", **got, message=request.query_params.get("m"))

    @needs
    async def destroy_due(request: Request, me: Me) -> Response:
        done = await c.ask(request, "retention.destroy")
        return RedirectResponse(f"/retention?m=已銷毀 destroyed: {done}", 303)

    @needs
    async def attribution_page(request: Request, me: Me) -> Response:
        got = await c.ask(request, "attribution.queue")
        return c.page(request, "attribution.html", **got, message=request.query_params.get("m"))

    @needs
    async def attribute(request: Request, me: Me) -> Response:
        f = request.state.form
        done = await c.ask(request, "attribute", recording=f.get("recording", ""),
                           officer=f.get("officer", ""))  # fmt: skip
        return RedirectResponse(f"/attribution?m=已歸屬 attributed: {done['new_path']}", 303)

    @needs
    async def audit_page(request: Request, me: Me) -> Response:
        first, last = _days(request, c.cfg)
        doc = await c.ask(request, "audit.report", **{"from": first, "to": last})
        if request.url.path.endswith(".pdf"):
            html = forms.report_html(doc, c.cfg.unit)
            return Response(await asyncio.to_thread(forms.pdf, html),
                            media_type="application/pdf")  # fmt: skip
        return c.page(request, "audit.html", body=forms.report_body(doc, c.cfg.unit), start=first,
                      end=last)  # fmt: skip

    @needs
    async def duty_page(request: Request, me: Me) -> Response:
        first, last = _days(request, c.cfg)
        start, end = _utc_bounds(first, last, c.cfg)
        got = await c.ask(request, "duty.log", start=start, end=end)
        return c.page(request, "duty.html", **got, start=first, end=last)

    @needs
    async def register_page(request: Request, me: Me) -> Response:
        first, last = _days(request, c.cfg)
        start, end = _utc_bounds(first, last, c.cfg)
        lines = await c.ask(request, "register", start=start, end=end)
        if request.url.path.endswith(".pdf"):
            html = forms.register_html(lines, first, last, c.cfg.unit)
            return Response(await asyncio.to_thread(forms.pdf, html),
                            media_type="application/pdf")  # fmt: skip
        return c.page(request, "register.html", lines=lines, start=first, end=last)

    routes = [
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/lang/{lang}", language),
        Route("/", bays),
        Route("/bays/stream", bays_stream),
        Route("/catalog", catalog),
        Route("/recordings/{id:int}", recording),
        Route("/requests", request_list),
        Route("/requests/new", request_new, methods=["POST"]),
        Route("/requests/{number}", request_page),
        Route("/requests/{number}/annex2.pdf", request_pdf),
        Route("/requests/{number}/video/{id:int}", video),
        Route("/requests/{number}/{action}", request_action, methods=["POST"]),
        Route("/seals", seal_list),
        Route("/seals/{day}/confirm", seal_confirm, methods=["POST"]),
        Route("/holds", holds_page),
        Route("/holds/new", hold_place, methods=["POST"]),
        Route("/holds/{id:int}/release", hold_release, methods=["POST"]),
        Route("/retention", retention_page),
        Route("/retention/destroy", destroy_due, methods=["POST"]),
        Route("/attribution", attribution_page),
        Route("/attribution", attribute, methods=["POST"]),
        Route("/audit", audit_page),
        Route("/audit.pdf", audit_page),
        Route("/duty", duty_page),
        Route("/register", register_page),
        Route("/register.pdf", register_page),
        Mount("/static", StaticFiles(directory=static), name="static"),
    ]
    middleware = [
        Middleware(_Headers),
        Middleware(
            SessionMiddleware,
            secret_key=(secret or secrets.token_bytes(32)).hex(),
            session_cookie="camdock",
            max_age=SESSION_SECONDS,
            same_site="strict",
            https_only=https,
        ),
    ]
    return Starlette(routes=routes, middleware=middleware)


_BILINGUAL = re.compile(
    r"^([^A-Za-z]*[\u3000-\u9fff\uff00-\uffef][^A-Za-z]*?)\s+([A-Za-z].*)$", re.S
)


def bilingual(text: Any) -> Markup:
    """A message written "中文 English" marked up like the templates' pairs, so the English-only
    view can hide the Chinese; anything else as it is."""
    m = _BILINGUAL.match(str(text))
    if m is None:
        return escape(str(text))
    return Markup('<span class="zh">{}</span> <span class="en">{}</span>').format(*m.groups())


async def _stream(fd: int, ranged: str | None) -> Response:
    """The file behind ``fd`` as video/mp4, honouring one byte range; read with aiofiles so the
    event loop never waits on the drive."""
    size = os.fstat(fd).st_size
    first, last, status = 0, size - 1, 200
    if ranged and ranged.startswith("bytes="):
        lo, _, hi = ranged[6:].split(",")[0].partition("-")
        try:
            first = int(lo) if lo else max(0, size - int(hi))
            last = min(int(hi), size - 1) if lo and hi else size - 1
        except ValueError:
            first, last = 0, size - 1
        if first > last or first >= size:
            os.close(fd)
            return Response(status_code=416, headers={"content-range": f"bytes */{size}"})
        status = 206
    f = await aiofiles.open(fd, "rb")

    async def body() -> AsyncIterator[bytes]:
        try:
            await f.seek(first)
            left = last - first + 1
            while left > 0:
                chunk = await f.read(min(left, 1 << 20))
                if not chunk:
                    break
                left -= len(chunk)
                yield chunk
        finally:
            await f.close()

    headers = {"accept-ranges": "bytes", "content-length": str(last - first + 1)}
    if status == 206:
        headers["content-range"] = f"bytes {first}-{last}/{size}"
    return StreamingResponse(body(), status_code=status, media_type="video/mp4", headers=headers)


def _days(request: Request, cfg: Config) -> tuple[str, str]:
    """?from=…&to=… (days), the last six months by default."""
    today = clock.now().astimezone(cfg.tz).date()
    try:
        first = date.fromisoformat(request.query_params.get("from") or "")
    except ValueError:
        first = today - timedelta(days=183)
    try:
        last = date.fromisoformat(request.query_params.get("to") or "")
    except ValueError:
        last = today
    return first.isoformat(), last.isoformat()


def _utc_bounds(first: str, last: str, cfg: Config) -> tuple[str, str]:
    lo = datetime.combine(date.fromisoformat(first), datetime.min.time(), cfg.tz)
    hi = datetime.combine(date.fromisoformat(last), datetime.max.time(), cfg.tz)
    return lo.astimezone(UTC).isoformat(), hi.astimezone(UTC).isoformat()


def _bays(cfg: Config) -> list[dict[str, Any]]:
    """The bays as the daemon last wrote them (run directory), else empty ones."""
    try:
        found = json.loads((cfg.run_dir / BAYS_FILE).read_text(encoding="utf-8"))
        if isinstance(found, list):
            return found
    except (OSError, ValueError):
        pass
    return [
        {
            "bay": b.number,
            "phase": "unknown",
            "camera": None,
            "officer": None,
            "message": "站台程式未執行 the daemon is not running",
        }
        for b in cfg.bays
    ]
