"""How long the officer at a bay waits: each bay's ETA, for the console and the station server.

While a camera waits for its bus, the bus queue (``station/admission.py``) says; while it
offloads, its remaining bytes at its bus's measured rate, plus the tail its last read-backs and
catalogue took last time.
"""

from __future__ import annotations

import asyncio

from camdock.core.bay import BayState, Phase
from camdock.station.admission import BUS_RATE_GUESS, Admission

__all__ = ["RATE_SETTLES", "Eta"]

RATE_SETTLES = 5.0  # seconds a bay reads before its own rate is trusted over its bus's


class Eta:
    """Seconds until each bay's camera can be taken, when known."""

    def __init__(self, admission: Admission) -> None:
        self.admission = admission
        self.waiting: dict[int, float] = {}  # bay → seconds until done (waiting for its bus)
        self._started: dict[int, tuple[float, int]] = {}  # bay → (time, bytes done)

    def set_waiting(self, bay: int, seconds: float | None) -> None:
        """A waiting bay's ETA from its bus queue; None: it waits no longer."""
        if seconds is None:
            self.waiting.pop(bay, None)
        else:
            self.waiting[bay] = seconds

    def of(self, s: BayState) -> float | None:
        """Seconds until the bay's camera can be taken: while it waits, from the bus queue;
        while it offloads, its remaining bytes at its bus's measured rate (the rate it has read
        at itself once it has read for a while: a read's first seconds run ahead of the bus)."""
        n = s.number
        if s.phase is Phase.OFFLOADING and s.bytes_total:
            now = asyncio.get_running_loop().time()
            start, done0 = self._started.setdefault(n, (now, s.bytes_done or 0))
            remaining = s.bytes_total - (s.bytes_done or 0)
            done = (s.bytes_done or 0) - done0
            tail = self.admission.tail_for(n)
            if done > 0 and now - start > RATE_SETTLES:
                return remaining / (done / (now - start)) + tail
            return remaining / (self.admission.rate_for(n) or BUS_RATE_GUESS) + tail
        self._started.pop(n, None)
        return self.waiting.get(n) if s.phase is Phase.IDENTIFYING else None
