"""The catalog: the search by officer, camera and day, and one recording with its copies, its
seal and its custody history."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from camdock.web.console import Console, Me, needs

__all__ = ["catalog", "recording"]


@needs
async def catalog(c: Console, request: Request, me: Me) -> Response:
    """The recordings found by ?officer=, ?camera=, ?day=."""
    q = request.query_params
    found = await c.ask(request, "catalog.search", officer=q.get("officer"),
                        camera=q.get("camera"), day=q.get("day"))  # fmt: skip
    return c.page(request, "catalog.html", found=found, q=q)


@needs
async def recording(c: Console, request: Request, me: Me) -> Response:
    """One recording."""
    got = await c.ask(request, "recording.get", id=request.path_params["id"])
    return c.page(request, "recording.html", **got)
