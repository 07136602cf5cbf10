"""The unattributed queue (REG-4.2.4): recordings from a camera nobody was assigned, filed under
the officer who recorded them."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from camdock import protocol
from camdock.web.console import Console, Me, needs

__all__ = ["attribute", "attribution_page"]


@needs
async def attribution_page(c: Console, request: Request, me: Me) -> Response:
    """The queue, and the station's officers to choose from."""
    got = await c.ask(request, protocol.AttributionQueue())
    return c.page(request, "attribution.html", **got, message=request.query_params.get("m"))


@needs
async def attribute(c: Console, request: Request, me: Me) -> Response:
    """File one recording under an officer."""
    f = request.state.form
    ask = protocol.Attribute.parse({k: f.get(k, "") for k in ("recording", "officer")})
    done = await c.ask(request, ask)
    return RedirectResponse(f"/attribution?m=已歸屬 attributed: {done['new_path']}", 303)
