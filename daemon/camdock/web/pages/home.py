"""The home view (issue 29): the console's landing page, a custodian's day at a glance: the
day's failures, what waits for this staff member's roles, the alarms and the days not sealed,
each a count with a link to where it is handled. An officer sees his own."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from camdock import protocol
from camdock.web.console import Console, Me, needs

__all__ = ["home"]


@needs
async def home(c: Console, request: Request, me: Me) -> Response:
    """Today's counts and alarms, for this staff member."""
    got = await c.ask(request, protocol.Home())
    return c.page(request, "home.html", **got)
