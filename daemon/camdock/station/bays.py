"""What the station's parts share: each bay's live parts, and the narrow views of the station
they act through. Docking and the pre-shift test see the station only as a ``StationContext``
(its configuration, bays and catalog thread) and record through ``Events``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from camdock.adapters.gpio import BayButton, BayLight, PatternPlayer
from camdock.adapters.udev import HotplugEvent
from camdock.catalog.db import Store
from camdock.clock import utcnow
from camdock.config import Config
from camdock.core import bay as core
from camdock.core.bay import BayState
from camdock.events import EventContext, EventType, Topics
from camdock.model import Bay
from camdock.offload import OffloadEngine, OffloadReport

__all__ = [
    "BAYS_FILE",
    "BayRuntime",
    "Events",
    "OffloadRun",
    "Spawn",
    "StationContext",
    "bay_state_json",
]


@dataclass
class OffloadRun:
    """What one bay's running offload knows, beyond the pure state."""

    engine: OffloadEngine | None = None
    task: asyncio.Task[None] | None = None
    per_file: dict[str, int] = field(default_factory=dict)
    files_done: int = 0
    # Kept here, not read from the bay's state: the state learns the total only when the bay's
    # task handles OffloadStarted, and the first byte report can come before that.
    bytes_total: int = 0
    tenths_sent: int = 0  # progress events go to the server in tenths
    report: OffloadReport | None = None
    # Told to stop (the camera pulled, the bay faulted), or its outcome given to the bay (it
    # only unmounts now): the bay's next offload is a new run, after this one has let go of
    # the camera; nothing more from this one reaches the bay (docking._end).
    stopped: bool = False

    @property
    def events(self) -> EventContext | None:
        """What the offload's events carry (its bay, camera and officer), once it runs."""
        return self.engine.req.events if self.engine is not None else None


@dataclass
class BayRuntime:
    """One bay: its configuration, pure state, event queue, hardware and current dock."""

    cfg: Bay
    state: BayState
    queue: asyncio.Queue[core.Event] = field(default_factory=asyncio.Queue)
    light: BayLight | None = None
    player: PatternPlayer | None = None
    button: BayButton | None = None
    storage: HotplugEvent | None = None  # the camera filesystem chosen for this dock
    tty: str | None = None  # the camera's serial command port
    disk_waiting: asyncio.TimerHandle | None = None
    disk_pending: HotplugEvent | None = None  # a camera disk waiting for its filesystem
    offload: OffloadRun = field(default_factory=OffloadRun)
    history: list[BayState] = field(default_factory=list)

    @property
    def n(self) -> int:
        """The bay's number."""
        return self.cfg.number

    @property
    def offload_events(self) -> EventContext | None:
        """The events context of the offload under way at this bay, if one is."""
        return self.offload.events if self.state.phase in core.BUSY else None


class Events(Protocol):
    """Where the station's parts record events for the station server and show them locally
    (``station/recorder.py``)."""

    @property
    def topics(self) -> Topics:
        """The station's MQTT topics, as events are recorded with them."""
        ...

    def record(
        self,
        kind: EventType,
        bay: int | None = None,
        *,
        camera: str | None = None,
        serial: str | None = None,
        about: EventContext | None = None,
        **data: Any,
    ) -> None:
        """Record an event for the station server and show it locally; ``about``: the offload
        it is of, when that may no longer be the bay's."""
        ...

    def emit(self, kind: str, bay: int | None, **data: Any) -> None:
        """Show a happening locally (log, simulator view) without recording it."""
        ...

    def wake_publisher(self) -> None:
        """New events are committed."""
        ...

    def officer_json(self, serial: str | None) -> dict[str, str] | None:
        """The officer assigned to the camera with this USB serial, as events carry it."""
        ...


class StationContext(Protocol):
    """The station as docking and the pre-shift test see it: read, never called back."""

    @property
    def cfg(self) -> Config:
        """The configuration in force (a roster changes it)."""
        ...

    @property
    def base_cfg(self) -> Config:
        """As configured, before any roster: the attribution baseline."""
        ...

    @property
    def bays(self) -> dict[int, BayRuntime]:
        """Every bay, by number."""
        ...

    @property
    def store(self) -> Store:
        """The catalog thread."""
        ...

    @property
    def events(self) -> Events:
        """Where events are recorded."""
        ...


Spawn = Callable[[Coroutine[Any, Any, None], str], asyncio.Task[None]]  # a supervised task


BAYS_FILE = "bays.json"  # every bay's state in the run directory, for the console


def bay_state_json(station: str, s: BayState, eta: float | None = None) -> str:
    """A bay's retained state message (docs/asyncapi.yaml, BayState); ``eta``: seconds until
    the officer can take the camera, when known."""
    return json.dumps(
        {
            "eta_seconds": round(eta) if eta is not None else None,
            "station": station,
            "bay": s.number,
            "phase": s.phase.value,
            "camera": s.camera_id,
            "officer": s.officer,
            "files_total": s.files_total,
            "files_done": s.files_done,
            "bytes_total": s.bytes_total,
            "bytes_done": s.bytes_done,
            "message": s.message,
            "time": utcnow(),
        },
        ensure_ascii=False,
    )
