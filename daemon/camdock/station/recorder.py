"""The station's events: recorded for the station server (REG-7.1) and shown locally.

Every event goes into the durable outbox in a transaction of its own on the catalog thread, and
the publisher is woken to deliver it; the same happening is shown locally (the log, the
simulator's view). One catalog thread: submission order is commit order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from camdock.catalog import outbox
from camdock.catalog.db import Store, write_txn
from camdock.config import Config
from camdock.events import EventContext, EventType, Topics
from camdock.station.bays import BayRuntime
from camdock.station.publisher import Publisher

__all__ = ["Recorder", "StationEventFn", "log_failure"]

log = logging.getLogger(__name__)

StationEventFn = Callable[[str, int | None, dict[str, Any]], None]


class Recorder:
    """Records the station's events and shows them; the ``Events`` its parts act through."""

    def __init__(
        self,
        store: Store,
        bays: dict[int, BayRuntime],
        config: Callable[[], Config],
        *,
        publisher: Publisher | None,
        on_event: StationEventFn | None,
    ) -> None:
        self.store = store
        self.bays = bays
        self._config = config  # the configuration in force (a roster changes it)
        self._publisher = publisher
        self._on_event = on_event
        self.topics: Topics = config().topics

    def emit(self, kind: str, bay: int | None, **data: Any) -> None:
        """Show a happening locally (log, simulator view) without recording it."""
        log.info("event %s bay=%s %s", kind, bay, data)
        if self._on_event is not None:
            self._on_event(kind, bay, data)

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
        """Record an event for the station server (its own transaction, on the catalog thread),
        then wake the publisher; and show it locally. One catalog thread: submission order is
        commit order. ``about``: the offload the event is of, when it may no longer be the
        bay's (a pulled run's last progress, with the next camera already docked)."""
        b = self.bays.get(bay) if bay is not None else None
        if about is not None:  # its own camera, not whichever the bay shows now
            camera = camera or about.camera
        elif b is not None:
            about = b.offload_events
        if b is not None:
            camera = camera or b.state.camera_id
            serial = serial or b.state.serial
        officer = self.officer_json(serial)
        if about is not None:
            # An offload speaks for the officer it files under, even when a roster re-assigns
            # the camera meanwhile (issue 12) or the next camera is docked (review3).
            officer = about.officer
        loop = asyncio.get_running_loop()

        def write(db: Any) -> None:
            with write_txn(db):
                outbox.record(
                    db, self.topics, kind, bay=bay, camera=camera, officer=officer, data=data
                )
            loop.call_soon_threadsafe(self.wake_publisher)

        self.store.submit(write).add_done_callback(log_failure)
        self.emit(kind.value, bay, **data)

    def wake_publisher(self) -> None:
        """New events are committed (on the loop thread)."""
        if self._publisher is not None:
            self._publisher.notify()

    def officer_json(self, serial: str | None) -> dict[str, str] | None:
        """The officer assigned to the camera with this USB serial, as events carry it."""
        cfg = self._config()
        camera = cfg.cameras.get(serial or "")
        officer = cfg.officer_for(camera) if camera else None
        return officer.as_json() if officer else None


def log_failure(future: Future[None]) -> None:
    """An event (or a write beside it) that could not be recorded must not vanish silently."""
    if (exc := future.exception()) is not None:
        log.error("event could not be recorded in the outbox: %r", exc)
