"""Requests to view or copy footage (Annex 2, REG-5): the list and the new-request form, one
request with its steps, its printed form, the supervised viewing and the verified copy."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from camdock import forms, protocol
from camdock.web.console import Console, Me, needs

__all__ = [
    "byte_range",
    "request_action",
    "request_list",
    "request_new",
    "request_page",
    "request_pdf",
    "video",
]


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
    about, fd = await c.ask_fd(request, protocol.VideoOpen.parse(request.path_params))
    if fd is None:
        return c.page(request, "refused.html", 500, why="no descriptor")
    viewing = int(about["viewing"])

    async def ended(sent: int) -> None:
        # The register line and the custody entry of this viewing (REG-5.3, REG-7.1), also
        # when the client went away mid-stream: shielded from the cancellation that ends it.
        with anyio.CancelScope(shield=True):
            await c.ask(request, protocol.VideoDone(viewing, sent))

    return await _stream(fd, request.headers.get("range"), ended)


CHUNK = 1 << 20  # what one read of the recording hands to the client


_DIGITS = re.compile(r"[0-9]+")


def byte_range(header: str | None, size: int) -> tuple[int, int] | bool | None:
    """The one byte range ``header`` asks of a file of ``size`` bytes (RFC 9110, 14.2):
    ``(first, last)``; None to send the whole file (no header, another unit, several ranges
    or a syntax the RFC says to ignore: ``bytes=abc``, ``bytes=5-3``); False when it is valid
    but unsatisfiable (a 416)."""
    if not header or not header.lower().startswith("bytes="):
        return None
    spec = header[6:].strip()
    if "," in spec:  # several ranges: the RFC lets a server send the whole file instead
        return None
    lo, dash, hi = spec.partition("-")
    lo, hi = lo.strip(), hi.strip()
    digits = _DIGITS.fullmatch  # ASCII digits only: str.isdigit() takes "²", int() does not
    if not dash or not (digits(lo) or (not lo and digits(hi))) or (hi and not digits(hi)):
        return None
    if not lo:  # a suffix: the last ``hi`` bytes
        suffix = int(hi)
        return (size - min(suffix, size), size - 1) if suffix > 0 and size > 0 else False
    first = int(lo)
    if hi and int(hi) < first:  # an invalid range-spec: ignored
        return None
    if first >= size:
        return False
    return first, min(int(hi), size - 1) if hi else size - 1


async def _stream(fd: int, ranged: str | None,
                  ended: Callable[[int], Awaitable[None]] | None = None) -> Response:  # fmt: skip
    """The file behind ``fd`` as video/mp4, honouring one byte range (RFC 9110); read in a
    worker thread so the event loop never waits on the drive. The descriptor is closed and
    ``ended`` told the bytes sent however the response ends: sent, refused (416), or the
    client gone before or during the body."""
    try:
        size = os.fstat(fd).st_size
        span = byte_range(ranged, size)
    except BaseException:
        os.close(fd)
        if ended is not None:  # the viewing opened still gets its register line
            await ended(0)
        raise
    if span is False:
        os.close(fd)
        if ended is not None:
            await ended(0)
        return Response(status_code=416, headers={"content-range": f"bytes */{size}"})
    first, last = span if isinstance(span, tuple) else (0, size - 1)
    headers = {"accept-ranges": "bytes", "content-length": str(last - first + 1)}
    if isinstance(span, tuple):
        headers["content-range"] = f"bytes {first}-{last}/{size}"
    return _FileStream(fd, first, last, ended, 206 if isinstance(span, tuple) else 200, headers)


class _FileStream(StreamingResponse):
    """A byte span of an open descriptor, which this response owns: closed in ``__call__``'s
    ``finally``, so also when the body was never started (a client gone at once: an unstarted
    generator's ``finally`` never runs, and the descriptor stayed open, issue 29)."""

    def __init__(self, fd: int, first: int, last: int,
                 ended: Callable[[int], Awaitable[None]] | None, status: int,
                 headers: dict[str, str]) -> None:  # fmt: skip
        self.fd, self.first, self.last, self.ended, self.sent = fd, first, last, ended, 0
        super().__init__(self._body(), status_code=status, media_type="video/mp4",
                         headers=headers)  # fmt: skip

    async def _body(self) -> AsyncIterator[bytes]:
        at = self.first
        while at <= self.last:
            chunk = await anyio.to_thread.run_sync(
                os.pread, self.fd, min(self.last - at + 1, CHUNK), at
            )
            if not chunk:
                break
            at += len(chunk)
            self.sent += len(chunk)  # handed to the server for the client
            yield chunk

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                os.close(self.fd)
                if self.ended is not None:
                    await self.ended(self.sent)
