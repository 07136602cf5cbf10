"""The catalog: the search by officer, camera and day, and one recording with its copies, its
seal and its custody history."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from camdock import protocol
from camdock.web.console import Console, Me, needs

__all__ = ["catalog", "recording"]


@needs
async def catalog(c: Console, request: Request, me: Me) -> Response:
    """The recordings found by ?officer=, ?camera=, ?day=."""
    q = request.query_params
    ask = protocol.CatalogSearch(q.get("officer") or None, q.get("camera") or None,
                                 q.get("day") or None)  # fmt: skip
    found = await c.ask(request, ask)
    return c.page(request, "catalog.html", found=found, q=q)


@needs
async def recording(c: Console, request: Request, me: Me) -> Response:
    """One recording."""
    got = await c.ask(request, protocol.RecordingGet.parse(request.path_params))
    return c.page(request, "recording.html", **got)
