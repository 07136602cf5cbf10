"""The daily seals (REG-4.2.5): each duty day's archives, and a supervisor's confirmation."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from camdock import protocol
from camdock.web.console import Console, Me, needs

__all__ = ["seal_confirm", "seal_list"]


@needs
async def seal_list(c: Console, request: Request, me: Me) -> Response:
    """Every duty day's seal, and the days changed since they were sealed."""
    got = await c.ask(request, protocol.SealsList())
    return c.page(request, "seals.html", **got, message=request.query_params.get("m"))


@needs
async def seal_confirm(c: Console, request: Request, me: Me) -> Response:
    """A supervisor confirms a day's seal."""
    day = request.path_params["day"]
    await c.ask(request, protocol.SealConfirm.parse({"day": day}))
    return RedirectResponse(f"/seals?m=已確認 confirmed {day}", 303)
