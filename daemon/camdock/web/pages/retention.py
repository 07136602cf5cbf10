"""Retention (REG-4.3.1): what is due for destruction, what a hold keeps, and destroying it."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from camdock import protocol
from camdock.web.console import Console, Me, needs

__all__ = ["approve_list", "destroy_due", "propose_list", "retention_page"]


@needs
async def retention_page(c: Console, request: Request, me: Me) -> Response:
    """The retention plan as of today."""
    got = await c.ask(request, protocol.RetentionPlan())
    return c.page(request, "retention.html", **got, message=request.query_params.get("m"))


@needs
async def propose_list(c: Console, request: Request, me: Me) -> Response:
    """A custodian proposes the destruction list of what is due (REG-4.3.1)."""
    done = await c.ask(request, protocol.RetentionPropose())
    return RedirectResponse(f"/retention?m=已提出銷毀清單 list proposed: {done}", 303)


@needs
async def approve_list(c: Console, request: Request, me: Me) -> Response:
    """An approver (not its proposer) approves a destruction list."""
    list_id = request.path_params["list"]
    await c.ask(request, protocol.RetentionApprove(list_id))
    return RedirectResponse(f"/retention?m=已核准 approved: {list_id}", 303)


@needs
async def destroy_due(c: Console, request: Request, me: Me) -> Response:
    """Execute an approved destruction list (without one: refused, recorded)."""
    ask = protocol.RetentionDestroy.parse({"list": request.state.form.get("list", "")})
    done = await c.ask(request, ask)
    return RedirectResponse(f"/retention?m=已銷毀 destroyed: {done}", 303)
