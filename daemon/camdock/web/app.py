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
post carries the session's CSRF token (web/console.py, ``needs``).

This module is the app: the routes table, the security headers and the session cookie. The
pages are in web/pages/, one module per group; their templates in web/templates/.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from camdock.config import Config
from camdock.station.bays import BAYS_FILE
from camdock.web.console import Console
from camdock.web.pages import (
    attribution,
    audit,
    bays,
    catalog,
    custody_log,
    holds,
    home,
    requests,
    retention,
    seals,
    session,
)

__all__ = ["BAYS_FILE", "CSP", "HSTS", "ROUTES", "make_app"]


CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "media-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
HSTS = "max-age=31536000"  # a year: the console is never served in clear beyond loopback
STATIC = Path(__file__).parent / "static"

# Order matters where patterns overlap: /requests/new before /requests/{number}.
ROUTES = [
    Route("/login", session.login, methods=["GET", "POST"]),
    Route("/logout", session.logout, methods=["POST"]),
    Route("/lang/{lang}", session.language),
    Route("/", home.home),
    Route("/bays", bays.bays),
    Route("/bays/stream", bays.bays_stream),
    Route("/catalog", catalog.catalog),
    Route("/recordings/{id:int}", catalog.recording),
    Route("/custody", custody_log.custody_log),
    Route("/requests", requests.request_list),
    Route("/requests/new", requests.request_new, methods=["POST"]),
    Route("/requests/{number}", requests.request_page),
    Route("/requests/{number}/annex2.pdf", requests.request_pdf),
    Route("/requests/{number}/video/{id:int}", requests.video),
    Route("/requests/{number}/{action}", requests.request_action, methods=["POST"]),
    Route("/seals", seals.seal_list),
    Route("/seals/{day}/confirm", seals.seal_confirm, methods=["POST"]),
    Route("/holds", holds.holds_page),
    Route("/holds/new", holds.hold_place, methods=["POST"]),
    Route("/holds/{id:int}/release", holds.hold_release, methods=["POST"]),
    Route("/retention", retention.retention_page),
    Route("/retention/destroy", retention.destroy_due, methods=["POST"]),
    Route("/retention/propose", retention.propose_list, methods=["POST"]),
    Route("/retention/lists/{list:int}/approve", retention.approve_list, methods=["POST"]),
    Route("/attribution", attribution.attribution_page),
    Route("/attribution", attribution.attribute, methods=["POST"]),
    Route("/audit", audit.audit_page),
    Route("/audit.pdf", audit.audit_page),
    Route("/duty", audit.duty_page),
    Route("/register", audit.register_page),
    Route("/register.pdf", audit.register_page),
    Mount("/static", StaticFiles(directory=STATIC), name="static"),
]


class _Headers:
    """Security headers on every response."""

    def __init__(self, app: ASGIApp, https: bool = False) -> None:
        self.app = app
        self.https = https

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
                if self.https or scope.get("scheme") == "https":  # served over TLS: only TLS
                    headers.append((b"strict-transport-security", HSTS.encode()))
            await send(message)

        await self.app(scope, receive, with_headers)


def make_app(
    cfg: Config, secret: bytes | None = None, socket_path: Path | None = None, https: bool = False
) -> Starlette:
    """The console for the station ``cfg``, asking the daemon at ``socket_path`` (default: the
    run directory's control socket); ``https``: the session cookie is only sent over TLS."""
    middleware = [
        Middleware(_Headers, https=https),
        Middleware(
            SessionMiddleware,
            secret_key=(secret or secrets.token_bytes(32)).hex(),
            session_cookie="camdock",
            max_age=cfg.console.absolute_hours * 3600,  # the daemon ends it anyway
            same_site="strict",
            https_only=https,
        ),
    ]
    app = Starlette(routes=ROUTES, middleware=middleware)
    app.state.console = Console(cfg, socket_path)
    return app
