"""Logging in and out, and the session's language: the only pages without ``needs``."""

from __future__ import annotations

import contextlib
import secrets

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from camdock import protocol
from camdock.protocol import ErrorKind
from camdock.web.console import DaemonRefused, console, forged

__all__ = ["language", "login", "logout"]


async def login(request: Request) -> Response:
    """The login form; its post asks the daemon, which checks the password (and locks out)."""
    c = console(request)
    if request.method == "GET":
        request.session["csrf"] = request.session.get("csrf") or secrets.token_urlsafe(24)
        return c.page(request, "login.html")
    form = await request.form()
    if not secrets.compare_digest(str(form.get("csrf", "")), request.session.get("csrf", "-")):
        return c.page(request, "login.html", 403, error="表單已失效 The form expired")
    staff = str(form.get("staff", ""))
    client = request.client.host if request.client else None  # the per-client limit's key
    try:
        login = protocol.Login(staff, str(form.get("password", "")),
                               str(form.get("otp", "")) or None, client)  # fmt: skip
        done = await c.ask(None, login)
    except DaemonRefused as exc:  # otp_required: the same form, asking for the code
        otp = exc.kind == ErrorKind.OTP_REQUIRED
        return c.page(request, "login.html", exc.status, error=str(exc), staff=staff, otp=otp)
    lang = request.session.get("lang", "zh")
    request.session.clear()  # only the token: who it is for, the daemon says at each request
    request.session.update({"token": done["token"], "csrf": secrets.token_urlsafe(24),
                            "lang": lang})  # fmt: skip
    return RedirectResponse("/", 303)


async def logout(request: Request) -> Response:
    """End the session here and at the daemon; only a post carrying the session's CSRF token
    (a forged log-out is refused, and recorded when the session is known: issue 29)."""
    form = await request.form()
    if not secrets.compare_digest(str(form.get("csrf", "")), request.session.get("csrf", "-")):
        return await forged(console(request), request)
    with contextlib.suppress(DaemonRefused):  # the daemon is away: the session ends all the same
        await console(request).ask(request, protocol.Logout(everywhere=1))
    request.session.clear()
    return RedirectResponse("/login", 303)


async def language(request: Request) -> Response:
    """中文 (with English beneath) or English alone, for this session."""
    want = request.path_params["lang"]
    request.session["lang"] = want if want in ("zh", "en") else "zh"
    back = request.query_params.get("back", "/")
    return RedirectResponse(back if back.startswith("/") and not back.startswith("//")
                            else "/", 303)  # fmt: skip
