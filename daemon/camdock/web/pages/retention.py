"""Retention (REG-4.3.1): what is due for destruction, what a hold keeps, and destroying it."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from camdock import protocol
from camdock.web.console import Console, Me, needs

__all__ = ["destroy_due", "retention_page"]


@needs
async def retention_page(c: Console, request: Request, me: Me) -> Response:
    """The retention plan as of today."""
    got = await c.ask(request, protocol.RetentionPlan())
    return c.page(request, "retention.html", **got, message=request.query_params.get("m"))


@needs
async def destroy_due(c: Console, request: Request, me: Me) -> Response:
    """Destroy what is due and not held."""
    done = await c.ask(request, protocol.RetentionDestroy())
    return RedirectResponse(f"/retention?m=已銷毀 destroyed: {done}", 303)
