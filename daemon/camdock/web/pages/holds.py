"""Holds: footage kept past its retention for a case, placed and released with a reason."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from camdock import protocol
from camdock.web.console import Console, Me, needs

__all__ = ["hold_place", "hold_release", "holds_page"]


@needs
async def holds_page(c: Console, request: Request, me: Me) -> Response:
    """Every hold, and the form for a new one."""
    found = await c.ask(request, protocol.HoldsList())
    return c.page(request, "holds.html", holds=found, message=request.query_params.get("m"))


@needs
async def hold_place(c: Console, request: Request, me: Me) -> Response:
    """Place a hold on a recording or an officer's footage."""
    f = request.state.form
    keys = ("kind", "case", "reason", "recording", "officer")
    hold_id = await c.ask(request, protocol.HoldPlace.parse({k: f.get(k, "") for k in keys}))
    return RedirectResponse(f"/holds?m=已保留 placed: {hold_id}", 303)


@needs
async def hold_release(c: Console, request: Request, me: Me) -> Response:
    """Release a hold, with the reason."""
    reason = request.state.form.get("reason", "")
    await c.ask(request, protocol.HoldRelease.parse({**request.path_params, "reason": reason}))
    return RedirectResponse("/holds?m=已解除 released", 303)
