"""The bays, as the daemon last wrote them to the run directory, and their live stream."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from camdock import clock, terms
from camdock.config import Config
from camdock.station.bays import BAYS_FILE
from camdock.station.rundir import HEARTBEAT
from camdock.web.console import Console, DaemonRefused, Me, needs

__all__ = ["RECHECK", "bays", "bays_stream"]

RECHECK = 5.0  # seconds between a live stream's checks that its session still is


@needs
async def bays(c: Console, request: Request, me: Me) -> Response:
    """Every bay: its phase, camera, officer and progress."""
    return c.page(request, "bays.html", bays=_bays(c.cfg))


@needs
async def bays_stream(c: Console, request: Request, me: Me) -> Response:
    """Server-sent events: the bays' states, pushed when the daemon changes them."""

    async def changes() -> AsyncIterator[str]:
        last = None
        checked = time.monotonic()
        while not await request.is_disconnected():
            if time.monotonic() - checked > RECHECK:  # a logout or a timeout ends the stream
                checked = time.monotonic()
                try:
                    if await c.live(request, active=False) is None:
                        return
                except DaemonRefused:
                    return
            found = [{**b, "phase_text": terms.term("phase", b.get("phase"))} for b in _bays(c.cfg)]
            now = json.dumps(found, ensure_ascii=False)
            if now != last:
                last = now
                yield f"data: {now}\n\n"
            await asyncio.sleep(0.3)

    return StreamingResponse(changes(), media_type="text/event-stream")


def _bays(cfg: Config) -> list[dict[str, Any]]:
    """The bays as the daemon last wrote them (run directory). A heartbeat three beats old
    means the daemon stopped: then every bay is "unknown", with when it stopped, never the
    last progress it wrote (issue 29)."""
    message = "站台程式未執行 the daemon is not running"
    try:
        found = json.loads((cfg.run_dir / BAYS_FILE).read_text(encoding="utf-8"))
        if isinstance(found, list):  # written before heartbeats were
            return found
        if isinstance(found, dict) and isinstance(found.get("bays"), list):
            beat = clock.as_moment(str(found["heartbeat"]))
            if clock.now() - beat <= timedelta(seconds=3 * HEARTBEAT):
                return list(found["bays"])
            when = clock.local_text(beat, cfg.tz)
            message = f"站台程式已於 {when} 停止 the daemon stopped at {when}"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return [
        {"bay": b.number, "phase": "unknown", "camera": None, "officer": None, "message": message}
        for b in cfg.bays
    ]
