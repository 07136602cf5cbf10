"""Requests to view or copy footage (Annex 2, REG-5): the list and the new-request form, one
request with its steps, its printed form, the supervised viewing and the verified copy."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import aiofiles
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from camdock import forms, protocol
from camdock.web.console import Console, Me, needs

__all__ = ["request_action", "request_list", "request_new", "request_page", "request_pdf", "video"]


@needs
async def request_list(c: Console, request: Request, me: Me) -> Response:
    """The requests this staff member may see, and the form for a new one."""
    found = await c.ask(request, protocol.RequestsList())
    return c.page(request, "requests.html", found=found)


@needs
async def request_page(c: Console, request: Request, me: Me) -> Response:
    """One request, its recordings, and the steps its state allows."""
    got = await c.ask(request, protocol.RequestGet(request.path_params["number"]))
    return c.page(request, "request.html", **got, message=request.query_params.get("m"))


@needs
async def request_new(c: Console, request: Request, me: Me) -> Response:
    """A new request from the form (the daemon resolves the selection against the catalog)."""
    f = request.state.form
    keys = ("duty_item", "kind", "reason", "purpose", "unit_supervisor", "officer", "camera",
            "from", "to")  # fmt: skip
    done = await c.ask(request, protocol.RequestNew.parse({k: f.get(k, "") for k in keys}))
    return RedirectResponse(f"/requests/{done['number']}", 303)


@needs
async def request_action(c: Console, request: Request, me: Me) -> Response:
    """One step of a request (submit, approve, deny, schedule, …), or its verified copy."""
    number, action = request.path_params["number"], request.path_params["action"]
    f = request.state.form
    if action == "copy":
        done = await c.ask(request, protocol.RequestCopy(number, f.get("to", "")))
        msg = f"已複製並驗證 copied and verified: {done['folder']}"
    else:
        step = {k: f.get(k, "") for k in ("reason", "at", "minutes")}
        ask = protocol.RequestStep.parse({"number": number, "action": action, **step})
        await c.ask(request, ask)
        msg = f"{action} ✔"
    return RedirectResponse(f"/requests/{number}?m={msg}", 303)


@needs
async def request_pdf(c: Console, request: Request, me: Me) -> Response:
    """The request printed as Annex 2 (PDF)."""
    got = await c.ask(request, protocol.RequestGet(request.path_params["number"]))
    pdf = await asyncio.to_thread(forms.pdf, forms.request_html(got["req"], got["recs"], c.cfg.tz))
    return Response(pdf, media_type="application/pdf")


@needs
async def video(c: Console, request: Request, me: Me) -> Response:
    """A recording, streamed from the descriptor the daemon opened for an approved viewing
    (invariant 9); ranges so the player can seek."""
    _, fd = await c.ask_fd(request, protocol.VideoOpen.parse(request.path_params))
    if fd is None:
        return c.page(request, "refused.html", 500, why="no descriptor")
    return await _stream(fd, request.headers.get("range"))


async def _stream(fd: int, ranged: str | None) -> Response:
    """The file behind ``fd`` as video/mp4, honouring one byte range; read with aiofiles so the
    event loop never waits on the drive."""
    size = os.fstat(fd).st_size
    first, last, status = 0, size - 1, 200
    if ranged and ranged.startswith("bytes="):
        lo, _, hi = ranged[6:].split(",")[0].partition("-")
        try:
            first = int(lo) if lo else max(0, size - int(hi))
            last = min(int(hi), size - 1) if lo and hi else size - 1
        except ValueError:
            first, last = 0, size - 1
        if first > last or first >= size:
            os.close(fd)
            return Response(status_code=416, headers={"content-range": f"bytes */{size}"})
        status = 206
    f = await aiofiles.open(fd, "rb")

    async def body() -> AsyncIterator[bytes]:
        try:
            await f.seek(first)
            left = last - first + 1
            while left > 0:
                chunk = await f.read(min(left, 1 << 20))
                if not chunk:
                    break
                left -= len(chunk)
                yield chunk
        finally:
            await f.close()

    headers = {"accept-ranges": "bytes", "content-length": str(last - first + 1)}
    if status == 206:
        headers["content-range"] = f"bytes {first}-{last}/{size}"
    return StreamingResponse(body(), status_code=status, media_type="video/mp4", headers=headers)
