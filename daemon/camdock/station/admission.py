"""Whose offload runs now (REG-4.1.2's offloads share a few USB buses): the bus scheduler.

At most ``total`` offloads at once and at most ``per_bus`` on one USB bus; the waiting are
served shortest first, none starving (``core/schedule.pick``). Each bus's read rate and the
tail after a camera is read (its last read-backs and catalogue) are measured as offloads run,
and every waiting bay hears its ETA.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from camdock.core import schedule

__all__ = ["BUS_RATE_GUESS", "TAIL_GUESS", "Admission", "Withdrawn"]

BUS_RATE_GUESS = 35e6  # bytes/s of one USB 2.0 camera link, until a rate is measured
TAIL_GUESS = 0.0  # seconds from read end to done (the last read-backs): added once measured


class Withdrawn(Exception):
    """A waiting bay left the queue (its camera pulled) before its turn came."""


class Admission:
    """Whose offload runs now: at most ``total`` at once, at most ``per_bus`` on one USB bus
    (0: no bus limit); the waiting are served shortest first, none starving
    (core/schedule.pick). Each waiting bay hears its ETA (``on_eta``)."""

    def __init__(self, total: int, per_bus: int,
                 on_eta: Callable[[int, float | None], None]) -> None:  # fmt: skip
        self.total, self.per_bus, self.on_eta = total, per_bus, on_eta
        self.waiting: dict[int, tuple[schedule.Waiting, str, asyncio.Future[None]]] = {}
        self.running: dict[int, tuple[str, int, float]] = {}  # bay → (bus, bytes, started)
        self.rate: dict[str, float] = {}  # measured bytes/s per bus
        # After a camera is read to the end its last read-backs and catalogue still run: how
        # long that took last time, per bus (added to ETAs: the officer waits for "done").
        self.tail: dict[str, float] = {}
        self._read_end: dict[int, tuple[str, float]] = {}
        self._first_byte: dict[int, float] = {}

    @contextlib.asynccontextmanager
    async def turn(self, bay: int, bus: str, size: int) -> AsyncIterator[None]:
        """Wait for this bay's turn on its bus; hold it while the offload runs."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self.waiting[bay] = (schedule.Waiting(bay, size, loop.time()), bus, fut)
        self._dispatch()
        try:
            await fut
        except Withdrawn:
            raise  # withdraw() took it out of the queue
        except BaseException:
            self.waiting.pop(bay, None)
            if fut.done() and not fut.cancelled():
                self._leave(bay)
            raise
        try:
            yield
        finally:
            self._leave(bay)

    def withdraw(self, bay: int) -> None:
        """The waiting bay's camera was pulled: it leaves the queue now, not when its turn
        would have come (its run then lets go of the camera's volume, the bays behind it move
        up, and a camera docked there again queues afresh). A running bay is not touched."""
        entry = self.waiting.pop(bay, None)
        if entry is None:
            return
        entry[2].set_exception(Withdrawn())
        self.on_eta(bay, None)
        self._dispatch()

    def would_wait(self, bus: str) -> bool:
        """Whether a camera docked now on ``bus`` would queue (others wait, or no room)."""
        busy = [b for b, *_ in self.running.values()]
        return bool(self.waiting) or len(self.running) >= self.total or (
            bool(self.per_bus) and busy.count(bus) >= self.per_bus)  # fmt: skip

    def sized(self, bay: int, size: int) -> None:
        """A running camera's size, as its offload planned it (for the ETAs of those waiting,
        and the bus's measured rate)."""
        if bay in self.running:
            bus, _, started = self.running[bay]
            self.running[bay] = (bus, size, started)

    def release(self, bay: int) -> None:
        """The bay's camera is read to the end (its read-backs and catalogue go on): the bus is
        free for the next camera."""
        if bay in self.running:
            self._read_end[bay] = (self.running[bay][0], asyncio.get_running_loop().time())
            self._leave(bay)

    def reading(self, bay: int) -> None:
        """The bay's first bytes came off the camera: the bus rate is measured from here."""
        if bay in self.running and bay not in self._first_byte:
            self._first_byte[bay] = asyncio.get_running_loop().time()

    def tail_for(self, bay: int) -> float:
        """Seconds from a camera read to its end until the bay is done, as last measured."""
        run = self.running.get(bay)
        return self.tail.get(run[0], TAIL_GUESS) if run else TAIL_GUESS

    def rate_for(self, bay: int) -> float | None:
        """The measured rate of the bus a running bay is on, if one was measured."""
        run = self.running.get(bay)
        return self.rate.get(run[0]) if run else None

    def _leave(self, bay: int) -> None:
        if bay not in self.running and bay in self._read_end:  # the offload ended after its read
            bus, at = self._read_end.pop(bay)
            self.tail[bus] = asyncio.get_running_loop().time() - at
        done = self.running.pop(bay, None)
        first = self._first_byte.pop(bay, None)
        if done is not None and first is not None:
            bus, size, _ = done
            took = asyncio.get_running_loop().time() - first  # first byte to the last
            if size and took > 0.3:
                self.rate[bus] = size / took
        self.on_eta(bay, None)
        self._dispatch()

    def _dispatch(self) -> None:
        now = asyncio.get_running_loop().time()
        while self.waiting and len(self.running) < self.total:
            busy = [b for b, *_ in self.running.values()]
            free = [w for w, bus, _ in self.waiting.values()
                    if not self.per_bus or busy.count(bus) < self.per_bus]  # fmt: skip
            rate = min(self.rate.values(), default=BUS_RATE_GUESS)
            longest = max((s for _, s, _ in self.running.values()), default=0) / rate
            chosen = schedule.pick(free, now, rate, longest)
            if chosen is None:
                break
            w, bus, fut = self.waiting.pop(chosen.bay)
            self.running[w.bay] = (bus, w.bytes, now)
            if not fut.done():
                fut.set_result(None)
        self._etas(now)

    def _etas(self, now: float) -> None:
        """Each waiting bay's ETA: what runs on its bus, then the cameras that go before it."""
        for bay, (w, bus, _) in self.waiting.items():
            rate = self.rate.get(bus, BUS_RATE_GUESS)
            running = sum(max(0.0, s - (now - t) * rate) for b, s, t in self.running.values()
                          if b == bus)  # fmt: skip
            ahead = [x.bytes for x, xb, _ in self.waiting.values()
                     if xb == bus and (x.bytes, x.since) < (w.bytes, w.since)]  # fmt: skip
            tail = self.tail.get(bus, TAIL_GUESS)
            self.on_eta(bay, schedule.eta(w.bytes, ahead, int(running), rate) + tail)
