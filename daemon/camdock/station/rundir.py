"""The run directory the console reads: the control socket and every bay's state (``bays.json``).

The console's user may read it: the directory is in the console's group, setgid so what the
daemon writes there is in that group too. The bays' states are written coalesced and off the
loop: a file write can block for long while eight offloads fill the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from camdock.clock import utcnow
from camdock.config import Config
from camdock.station import control
from camdock.station.bays import BAYS_FILE

__all__ = ["BAYS_EVERY", "HEARTBEAT", "BaysFile", "prepare"]

log = logging.getLogger(__name__)

BAYS_EVERY = 0.3  # seconds: the bays' states are written at most this often
# Seconds between writes when nothing changes: the file's ``heartbeat`` tells the console the
# daemon is alive; three missed beats and the console says when it stopped (web/pages/bays.py).
HEARTBEAT = 10.0


def prepare(cfg: Config) -> None:
    """Make the run and state directories, the run directory shared with the console."""
    cfg.run_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
    cfg.state_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
    _share(cfg.run_dir)


class BaysFile:
    """Every bay's state in the run directory, for the console: ``{"heartbeat": UTC ISO,
    "pid", "bays": [...]}``, written at start, on every change and on a heartbeat."""

    def __init__(self, run_dir: Path, states: Callable[[], list[Any]]) -> None:
        self.path = run_dir / BAYS_FILE
        self._states = states  # each bay's state, as JSON values
        self._dirty = asyncio.Event()
        self._dirty.set()  # at start: the console sees idle bays, not "not running"

    def changed(self) -> None:
        """A bay's state changed: write them all soon (coalesced)."""
        self._dirty.set()

    async def run(self) -> None:
        """Write the states when they change (at most every ``BAYS_EVERY``) or a heartbeat
        passes, in a thread."""
        while True:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for loses a cancel that
            # arrives as the event is set, and this loop would then outlive the station's stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HEARTBEAT):
                    await self._dirty.wait()
            self._dirty.clear()
            doc = {"heartbeat": utcnow(), "pid": os.getpid(), "bays": self._states()}
            await asyncio.to_thread(_write_json, self.path, doc)
            await asyncio.sleep(BAYS_EVERY)


def _write_json(path: Path, doc: Any) -> None:
    """Replace ``path`` with ``doc`` whole (a reader never sees half a file)."""
    temp = path.with_name(f".{path.name}.tmp")
    try:
        temp.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
        os.replace(temp, path)
    except OSError as exc:  # the console shows stale bays; the station goes on
        log.debug("bay states not written for the console: %s", exc)


def _share(run_dir: Path) -> None:
    """The console's user may read the run directory (the bays' states, the control socket):
    its group, setgid so what the daemon writes there is in that group too."""
    _, group = control.peers()
    if group is None or os.geteuid() != 0:
        return
    try:
        os.chown(run_dir, -1, group)
        os.chmod(run_dir, 0o2750)  # noqa: S103 - setgid: files inherit the group; others none
    except OSError as exc:
        log.warning("the console may not see the bays: %s: %s", run_dir, exc.strerror)
