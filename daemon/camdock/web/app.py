"""The custodian's console (``camdock web``): pages for the bays, the catalog, requests and
seals, in Traditional Chinese with English beneath, for the people who run a precinct's footage.

Starlette, server-rendered Jinja2 templates, one small local script (no CDN, no inline script:
the Content-Security-Policy allows only 'self'). Every page but the login needs a session; every
post carries the session's CSRF token; every action goes through the same service functions as
the commands (one set of rules), so refusals are recorded in the custody log the same way, with
the logged-in staff member as the person.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from sqlite_utils import Database
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from camdock import forms, passwords
from camdock.catalog import holds as hold_rows
from camdock.catalog import open_catalog, open_readonly, recordings, requests, rows, seals
from camdock.config import Config
from camdock.core.access import Person, Role
from camdock.core.retention import HoldKind
from camdock.errors import CamdockError
from camdock.services import access, retention
from camdock.services.bays import BAYS_FILE
from camdock.services.seal import Sealing, confirm_day

__all__ = ["BAYS_FILE", "make_app"]

SESSION_SECONDS = 8 * 3600  # a shift; then log in again
LOCKOUT_AFTER, LOCKOUT_SECONDS = 5, 15 * 60
SEES_CATALOG = frozenset({Role.CUSTODIAN, Role.SUPERVISOR, Role.APPROVER, Role.AUDITOR})

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "media-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)


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
    """The console's state: the config, failed logins, and its catalog connections."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.failures: dict[str, list[float]] = {}
        self.topics = cfg.topics
        self.env = Environment(
            loader=PackageLoader("camdock.web", "templates"), autoescape=select_autoescape(["html"])
        )

    def person(self, request: Request) -> Person | None:
        """The logged-in staff member, if the session is valid and not expired."""
        sid, at = request.session.get("staff"), request.session.get("at", 0)
        if not sid or time.time() - at > SESSION_SECONDS:
            return None
        return self.cfg.staff.get(sid)

    def page(self, request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        tpl = self.env.get_template(name)
        html = tpl.render(
            me=self.person(request),
            csrf=request.session.get("csrf", ""),
            station=self.cfg.station_id,
            unit=self.cfg.unit,
            **ctx,
        )
        return HTMLResponse(html, status_code=status)

    def reader(self) -> Database:
        return open_readonly(self.cfg.catalog)

    def writer(self) -> Database:
        return open_catalog(self.cfg.catalog)


def make_app(cfg: Config, secret: bytes | None = None) -> Starlette:
    """The console for the station ``cfg``."""
    c = Console(cfg)
    static = Path(__file__).parent / "static"

    def needs(roles: frozenset[Role] | None = None) -> Callable[..., Any]:
        def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
            async def handler(request: Request) -> Response:
                me = c.person(request)
                if me is None:
                    return RedirectResponse("/login", 303)
                if roles is not None and not (me.roles & roles):
                    return c.page(
                        request,
                        "refused.html",
                        403,
                        why="您的角色無權檢視此頁 Your role may not see this page",
                    )
                if request.method == "POST":
                    form = await request.form()
                    if not secrets.compare_digest(
                        str(form.get("csrf", "")), request.session.get("csrf", "-")
                    ):
                        return c.page(
                            request,
                            "refused.html",
                            403,
                            why="表單已失效 The form expired or was forged",
                        )
                    request.state.form = form
                try:
                    result: Response = await fn(request, me)
                except CamdockError as exc:  # the rules said no (and recorded it): say why
                    return c.page(request, "refused.html", 403, why=str(exc))
                return result

            return handler

        return wrap

    async def login(request: Request) -> Response:
        if request.method == "GET":
            request.session["csrf"] = request.session.get("csrf") or secrets.token_urlsafe(24)
            return c.page(request, "login.html")
        form = await request.form()
        sid, pw = str(form.get("staff", "")).strip(), str(form.get("password", ""))
        if not secrets.compare_digest(str(form.get("csrf", "")), request.session.get("csrf", "-")):
            return c.page(request, "login.html", 403, error="表單已失效 The form expired")
        now = time.time()
        recent = [t for t in c.failures.get(sid, []) if now - t < LOCKOUT_SECONDS]
        if len(recent) >= LOCKOUT_AFTER:
            _refuse(c, sid or "?", "login", "locked out after repeated failures")
            return c.page(
                request,
                "login.html",
                429,
                error="嘗試次數過多，請稍後再試 Too many attempts: try again later",
            )
        stored = c.cfg.password_hashes.get(sid)
        ok = stored is not None and await asyncio.to_thread(passwords.verify, pw, stored)
        if not ok:
            c.failures[sid] = [*recent, now]
            return c.page(
                request, "login.html", 401, error="帳號或密碼錯誤 Wrong staff id or password"
            )
        c.failures.pop(sid, None)
        request.session.clear()
        request.session.update({"staff": sid, "at": now, "csrf": secrets.token_urlsafe(24)})
        return RedirectResponse("/", 303)

    async def logout(request: Request) -> Response:
        request.session.clear()
        return RedirectResponse("/login", 303)

    @needs()
    async def bays(request: Request, me: Person) -> Response:
        return c.page(request, "bays.html", bays=_bays(c.cfg))

    @needs()
    async def bays_stream(request: Request, me: Person) -> Response:
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

    @needs(SEES_CATALOG)
    async def catalog(request: Request, me: Person) -> Response:
        q = request.query_params
        officer, camera, day = q.get("officer") or None, q.get("camera") or None, q.get("day")
        db = c.reader()
        try:
            found = _search(db, officer, camera, day)
        finally:
            db.close()
        return c.page(request, "catalog.html", found=found, q=q)

    @needs(SEES_CATALOG)
    async def recording(request: Request, me: Person) -> Response:
        rec_id = int(request.path_params["id"])
        db = c.reader()
        try:
            rec = recordings.get(db, rec_id)
            if rec is None:
                return c.page(request, "refused.html", 404, why=f"沒有紀錄 {rec_id}")
            copies = recordings.copies(db, rec_id)
            history = rows(
                db,
                "SELECT time, action, actor, details FROM custody_log WHERE "
                "recording_id = ? ORDER BY id",
                (rec_id,),
            )
            day = date.fromisoformat(rec["relpath"][:10].replace("/", "-"))
            sealed = seals.current(db, day)
        finally:
            db.close()
        return c.page(
            request, "recording.html", rec=rec, copies=copies, history=history, sealed=sealed
        )

    @needs()
    async def request_list(request: Request, me: Person) -> Response:
        db = c.reader()
        try:
            found = [
                r
                for r in requests.listing(db)
                if me.roles - {Role.OFFICER} or r["applicant_id"] == me.id
            ]
        finally:
            db.close()
        return c.page(request, "requests.html", found=found)

    @needs()
    async def request_page(request: Request, me: Person) -> Response:
        db = c.reader()
        try:
            req = requests.get(db, request.path_params["number"])
            if req is None or (me.roles == {Role.OFFICER} and req["applicant_id"] != me.id):
                return c.page(request, "refused.html", 404, why="沒有這份申請書 No such request")
            recs = requests.recordings_of(db, req["id"])
        finally:
            db.close()
        return c.page(
            request, "request.html", req=req, recs=recs, message=request.query_params.get("m")
        )

    @needs()
    async def request_new(request: Request, me: Person) -> Response:
        f = request.state.form
        tz = c.cfg.tz
        try:
            start = datetime.fromisoformat(str(f["from"])).replace(tzinfo=tz)
            end = datetime.fromisoformat(str(f["to"])).replace(tzinfo=tz)
            form = {
                "duty_item": str(f.get("duty_item", "")),
                "kind": str(f["kind"]),
                "reason": str(f["reason"]),
                "purpose": str(f["purpose"]),
                "unit_supervisor": str(f.get("unit_supervisor", "")),
            }
        except (KeyError, ValueError):
            return c.page(request, "refused.html", 400, why="表單不完整 The form is incomplete")
        db = c.writer()
        try:
            req = access.new_request(
                db,
                c.cfg,
                access.Acting(me, me.label),
                form,
                (str(f.get("officer")) or None, str(f.get("camera")) or None, start, end),
                c.topics,
            )
        finally:
            db.close()
        return RedirectResponse(f"/requests/{req['number']}", 303)

    @needs()
    async def request_action(request: Request, me: Person) -> Response:
        number, action = request.path_params["number"], request.path_params["action"]
        f = request.state.form
        kw: dict[str, Any] = {}
        if action == "deny":
            kw["reason"] = str(f.get("reason", ""))
        if action == "schedule":
            try:
                start = datetime.fromisoformat(str(f["at"])).replace(tzinfo=c.cfg.tz)
            except (KeyError, ValueError):
                return c.page(request, "refused.html", 400, why="時間格式錯誤 Bad time")
            kw |= {"start": start, "end": start + timedelta(minutes=int(f.get("minutes") or 120))}
        db = c.writer()
        try:
            who = access.Acting(me, me.label)
            if action == "copy":
                sealing = Sealing.from_config(c.cfg)
                done = await asyncio.to_thread(
                    _copy_thread, c, who, number, Path(str(f.get("to", ""))), sealing
                )
                msg = f"已複製並驗證 copied and verified: {done['folder']}"
            else:
                access.step(db, who, number, action, c.topics, datetime.now(UTC), **kw)
                msg = f"{action} ✔"
        finally:
            db.close()
        return RedirectResponse(f"/requests/{number}?m={msg}", 303)

    @needs()
    async def request_pdf(request: Request, me: Person) -> Response:
        db = c.reader()
        try:
            req = requests.get(db, request.path_params["number"])
            if req is None:
                return c.page(request, "refused.html", 404, why="沒有這份申請書 No such request")
            recs = requests.recordings_of(db, req["id"])
        finally:
            db.close()
        pdf = await asyncio.to_thread(forms.pdf, forms.request_html(req, recs))
        return Response(pdf, media_type="application/pdf")

    @needs()
    async def video(request: Request, me: Person) -> Response:
        """A recording, streamed only to a supervised viewing: an approved request that covers
        it, in its window, for its custodian (invariant 9)."""
        number, rec_id = request.path_params["number"], int(request.path_params["id"])
        db = c.writer()
        try:
            req = requests.get(db, number)
            covered = req is not None and any(
                r["id"] == rec_id for r in requests.recordings_of(db, req["id"])
            )
            if req is None or not covered:
                return c.page(
                    request, "refused.html", 404, why="沒有此影音資料 Not in this request"
                )
            who = access.Acting(me, me.label)
            access.authorize(db, who, "view", c.topics, access._rules(req), datetime.now(UTC))
            path = _plain(db, rec_id)
        finally:
            db.close()
        if path is None:
            return c.page(request, "refused.html", 404, why="此檔案僅存於封存檔 Only in its seal")
        return FileResponse(path, media_type="video/mp4")

    @needs(frozenset({Role.SUPERVISOR, Role.APPROVER, Role.CUSTODIAN}))
    async def seal_list(request: Request, me: Person) -> Response:
        db = c.reader()
        try:
            found = seals.status(db)
            dirty = sorted(seals.dirty(db))
        finally:
            db.close()
        days: dict[str, dict[str, Any]] = {}
        for s in found:
            days.setdefault(s["day"], s)
        return c.page(
            request,
            "seals.html",
            days=list(days.values()),
            dirty=dirty,
            message=request.query_params.get("m"),
        )

    @needs()
    async def seal_confirm(request: Request, me: Person) -> Response:
        day = date.fromisoformat(request.path_params["day"])
        db = c.writer()
        try:
            access.authorize(db, access.Acting(me, me.label), "confirm", c.topics)
            confirm_day(db, Sealing(None, topics=c.topics), day, me.label)
        finally:
            db.close()
        return RedirectResponse(f"/seals?m=已確認 confirmed {day}", 303)

    @needs(SEES_CATALOG)
    async def holds_page(request: Request, me: Person) -> Response:
        db = c.reader()
        try:
            found = hold_rows.listing(db)
        finally:
            db.close()
        return c.page(request, "holds.html", holds=found, message=request.query_params.get("m"))

    @needs()
    async def hold_place(request: Request, me: Person) -> Response:
        f = request.state.form
        db = c.writer()
        try:
            access.authorize(db, access.Acting(me, me.label), "hold", c.topics)
            hold_id = retention.place_hold(
                db, retention.Keeping.from_config(c.cfg), me.label,
                kind=HoldKind(str(f.get("kind"))), case=str(f.get("case", "")),
                reason=str(f.get("reason", "")), recording=int(str(f.get("recording") or 0))
                or None, officer=str(f.get("officer") or "") or None,
                today=datetime.now(c.cfg.tz).date())  # fmt: skip
        except ValueError as exc:
            return c.page(request, "refused.html", 400, why=str(exc))
        finally:
            db.close()
        return RedirectResponse(f"/holds?m=保留 {hold_id} placed", 303)

    @needs()
    async def hold_release(request: Request, me: Person) -> Response:
        f = request.state.form
        db = c.writer()
        try:
            access.authorize(db, access.Acting(me, me.label), "release", c.topics)
            retention.release_hold(db, retention.Keeping.from_config(c.cfg),
                                   int(request.path_params["id"]), me.label,
                                   str(f.get("reason", "")))  # fmt: skip
        finally:
            db.close()
        return RedirectResponse("/holds?m=已解除 released", 303)

    @needs(SEES_CATALOG)
    async def retention_page(request: Request, me: Person) -> Response:
        db = c.reader()
        try:
            plan = retention.plan_for(db, datetime.now(c.cfg.tz).date())
            queue = recordings.unattributed(db)
        finally:
            db.close()
        return c.page(request, "retention.html", plan=plan, queue=queue,
                      auto=c.cfg.retention.standing_authorisation,
                      message=request.query_params.get("m"))  # fmt: skip

    @needs()
    async def destroy_due(request: Request, me: Person) -> Response:
        db = c.writer()
        try:
            access.authorize(db, access.Acting(me, me.label), "destroy", c.topics)
            done = await asyncio.to_thread(
                _destroy_thread, c, me.label, datetime.now(c.cfg.tz).date()
            )
        finally:
            db.close()
        return RedirectResponse(f"/retention?m=已銷毀 destroyed {done}", 303)

    @needs(SEES_CATALOG)
    async def register_page(request: Request, me: Person) -> Response:
        start, end = _period(request, c.cfg)
        db = c.reader()
        try:
            lines = requests.register_between(db, start, end)
        finally:
            db.close()
        if request.url.path.endswith(".pdf"):
            html = forms.register_html(lines, start[:10], end[:10], c.cfg.unit)
            return Response(await asyncio.to_thread(forms.pdf, html),
                            media_type="application/pdf")  # fmt: skip
        return c.page(request, "register.html", lines=lines, start=start[:10], end=end[:10])

    routes = [
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
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
        Route("/holds", holds_page),
        Route("/holds/new", hold_place, methods=["POST"]),
        Route("/holds/{id:int}/release", hold_release, methods=["POST"]),
        Route("/retention", retention_page),
        Route("/retention/destroy", destroy_due, methods=["POST"]),
        Route("/register", register_page),
        Route("/register.pdf", register_page),
        Route("/seals/{day}/confirm", seal_confirm, methods=["POST"]),
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
            https_only=False,
        ),
    ]
    return Starlette(routes=routes, middleware=middleware)


def _period(request: Request, cfg: Config) -> tuple[str, str]:
    """?from=…&to=… (days), the last six months by default, as UTC ISO bounds."""
    today = datetime.now(cfg.tz).date()
    try:
        first = date.fromisoformat(request.query_params.get("from") or "")
    except ValueError:
        first = today - timedelta(days=183)
    try:
        last = date.fromisoformat(request.query_params.get("to") or "")
    except ValueError:
        last = today
    lo = datetime.combine(first, datetime.min.time(), cfg.tz).astimezone(UTC)
    hi = datetime.combine(last, datetime.max.time(), cfg.tz).astimezone(UTC)
    return lo.isoformat(), hi.isoformat()


def _destroy_thread(c: Console, by: str, today: date) -> int:
    db = c.writer()
    try:
        return len(retention.destroy(db, retention.Keeping.from_config(c.cfg), today, by))
    finally:
        db.close()


def _refuse(c: Console, by: str, action: str, why: str) -> None:
    db = c.writer()
    try:
        requests.record_refusal(db, by, action, None, why, c.topics)
    finally:
        db.close()


def _copy_thread(
    c: Console, who: access.Acting, number: str, target: Path, sealing: Sealing
) -> dict[str, Any]:
    db = c.writer()
    try:
        return access.copy(db, who, number, target, sealing.key, c.topics)
    finally:
        db.close()


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


def _search(
    db: Database, officer: str | None, camera: str | None, day: str | None
) -> list[dict[str, Any]]:
    if day:
        found = recordings.listing(db, day=day)
        return [
            r
            for r in found
            if (officer is None or r["officer_badge"] == officer)
            and (camera is None or r["camera_id"] == camera)
        ][:500]
    return rows(
        db,
        "SELECT * FROM recordings WHERE (? IS NULL OR officer_badge = ?) AND "
        "(? IS NULL OR camera_id = ?) ORDER BY id DESC LIMIT 500",
        (officer, officer, camera, camera),
    )


def _plain(db: Database, rec_id: int) -> Path | None:
    for cp in rows(
        db,
        "SELECT destination, relpath, plain_removed_at FROM copies WHERE recording_id = ?",
        (rec_id,),
    ):
        path = Path(cp["destination"], *PurePosixPath(cp["relpath"]).parts)
        if not cp["plain_removed_at"] and path.is_file():
            return path
    return None
