"""The station: every bay, supervised, on one event loop.

One ``asyncio.TaskGroup`` holds the named tasks: ``hotplug``, ``watchdog``, ``mqtt``, the jobs
(``drives``, ``retention``, ``scrub``), and per bay ``bay[n].events``, ``bay[n].led`` and, while
they run, ``bay[n].offload`` and ``bay[n].selftest``. Each bay is a bulkhead: an exception while
handling one bay's event turns that bay to FAULT and the others go on.

This module only supervises: docking (hotplug → mount → offload → unmount) is
``station/docking.py`` with its bus scheduler ``station/admission.py``, the pre-shift test
``station/preshift.py``; both see the station as a ``StationContext`` and record through the
``Recorder`` (``station/recorder.py``). The periodic jobs (``station/jobs.py``) own their
intervals and alarms; the ETA model is ``station/eta.py``, the run directory
``station/rundir.py``, a roster from the server ``station/rosters.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Protocol

from camdock.adapters.control import WAKE, Reply, Server
from camdock.adapters.gpio import BayButton, BayLight, PatternPlayer
from camdock.adapters.systemd import notify, watchdog_interval
from camdock.adapters.udev import HotplugEvent
from camdock.camera.driver import DriverFactory
from camdock.catalog import chainkey
from camdock.catalog import staff as staff_rows
from camdock.catalog.db import Store
from camdock.clock import Clock, ProcessClock
from camdock.config import Config
from camdock.core import bay as core
from camdock.core.bay import BayState, Phase
from camdock.core.indicators import NOTICES, pattern_for
from camdock.events import EventType
from camdock.services.attribute import finish_pending
from camdock.station import control, rosters, rundir
from camdock.station.admission import Admission
from camdock.station.bays import BayRuntime, bay_state_json
from camdock.station.consoleday import ChainMemo
from camdock.station.docking import SETTLED, Docking, Mounter
from camdock.station.eta import Eta
from camdock.station.jobs import ChainWarm, DailyPass, DriveWatch, HeadWatch, Scrub
from camdock.station.preshift import PreShift
from camdock.station.publisher import Publisher
from camdock.station.recorder import Recorder, StationEventFn

__all__ = ["Hotplug", "Station", "StationEventFn"]

log = logging.getLogger(__name__)

SUPERVISE_FIRST, SUPERVISE_MAX = 1.0, 60.0  # backoff of a failed part before its restart
SUPERVISE_HEALTHY = 300.0  # a part that ran this long before failing starts the count anew
HOTPLUG_FAILURES = 5  # in a row: the station cannot see docks, so the watchdog is not fed
RETENTION_FIRST = 300.0  # seconds after start before the first retention pass (docks first)
BUSY = frozenset({Phase.IDENTIFYING, Phase.OFFLOADING, Phase.VERIFYING})


class Hotplug(Protocol):
    """A source of udev events (pyudev on a station, a script in the simulator)."""

    def events(self) -> AsyncIterator[HotplugEvent]:
        """Every event, the cold-plug enumeration first, then ``settled``, then live ones."""
        ...


def _use_chain_key(cfg: Config) -> None:
    """Every entry the daemon writes carries a MAC under the station's chain key, made at the
    first start (catalog/chainkey). A key that cannot be made is an error in the log, never a
    reason to stop taking footage in: entries are then unkeyed, and the audit names them."""
    try:
        chainkey.use(chainkey.load_or_create(cfg.chain_key))
    except (OSError, chainkey.KeyFileError) as exc:
        log.error("custody entries unkeyed: chain key %s: %s", cfg.chain_key, exc)
        chainkey.use(None)


class Station:
    """The daemon's station: bays, hotplug, publisher, jobs and watchdog, run until cancelled."""

    def __init__(
        self,
        cfg: Config,
        *,
        hotplug: Hotplug,
        mounter: Mounter,
        pin_factory: Any,
        on_event: StationEventFn | None = None,
        read_bps: int | None = None,
        hold_seconds: float | None = None,
        publish: bool = True,
        drivers: DriverFactory | None = None,
        clock: Clock | None = None,
        retention_first: float = RETENTION_FIRST,
    ) -> None:
        self.cfg = cfg
        # The configured assignments, before any roster: the baseline of attribution (a roster
        # changes self.cfg for what is docked now; the catalog keeps each roster's duty day).
        self.base_cfg = cfg
        self.hotplug = hotplug
        self.pin_factory = pin_factory
        self.bays = {b.number: BayRuntime(b, BayState(b.number)) for b in cfg.bays}
        self.ready = asyncio.Event()
        self._hold_seconds = hold_seconds
        self._tg: asyncio.TaskGroup | None = None
        self._last_status = ""
        self._failing: dict[str, int] = {}  # supervised part → failures in a row
        self.clock = clock or ProcessClock()
        # Events are recorded whether or not a broker is configured (REG-7.1); with [mqtt] (and
        # publish=True) a publisher delivers them.
        self.store = Store(cfg.catalog)
        _use_chain_key(cfg)
        self.publisher: Publisher | None = None
        if cfg.mqtt is not None and publish:
            self.publisher = Publisher(cfg.mqtt, cfg.topics, self.store, self.apply_roster)
        self.events = Recorder(self.store, self.bays, lambda: self.cfg,
                               publisher=self.publisher, on_event=on_event)  # fmt: skip
        self.admission = Admission(cfg.max_concurrent_offloads, cfg.offloads_per_bus,
                                   self._waiting)  # fmt: skip
        self.eta = Eta(self.admission)
        self.bays_file = rundir.BaysFile(cfg.run_dir, self._bay_states)
        self.drive_watch = DriveWatch(self, self.events, broker_alarm=self._broker_alarm,
                                      storage_back=self._storage_back)  # fmt: skip
        self.daily = DailyPass(self, self.clock, first=retention_first)
        self.scrub = Scrub(self, first=retention_first)
        self.heads = HeadWatch(self, self.events, self.store)
        self.chain_memo = ChainMemo(self.clock.now)  # the console's audit page (issue 29)
        self.chain_warm = ChainWarm(self, self.chain_memo, first=retention_first)
        lost = self.drive_watch.changed  # a drive, or the state disk, went missing mid-offload
        self.docking = Docking(self, mounter, self.admission, spawn=self.spawn,
                               storage_lost=lost, read_bps=read_bps)  # fmt: skip
        self.preshift = PreShift(self, drivers)

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Start a supervised task in the station's task group."""
        assert self._tg is not None
        return self._tg.create_task(coro, name=name)

    def apply_roster(self, payload: bytes) -> None:
        """A roster from the station server: applied whole, or rejected with the old one kept."""
        new = rosters.take(self.cfg, payload, self.store, self.events)
        if new is not None:
            self.cfg = new

    async def run(self) -> None:
        """Run until cancelled (SIGTERM); leaves every offload resumable."""
        rundir.prepare(self.cfg)
        notify("STATUS=starting")
        try:
            self._open_hardware()
            # Re-filings a crash interrupted are finished before anyone can attribute again
            # (only a dead process's: issue 26).
            await self.store.call(finish_pending)
            # The config's staff into the catalog (each change a custody entry) before anyone
            # can act or a roster grant roles (catalog/staff; issue 27).
            await self.store.call(staff_rows.sync, self.cfg.staff, self.cfg.password_hashes)
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                for b in self.bays.values():
                    assert b.player is not None
                    tg.create_task(b.player.run(), name=f"bay[{b.n}].led")
                    tg.create_task(self._bay_loop(b), name=f"bay[{b.n}].events")
                # Bulkheads: hotplug, the jobs and the publisher are restarted with backoff
                # when they fail; a crash in one never ends the station. The drive watch has
                # its own (it must not wait out a backoff).
                tg.create_task(self._supervise("hotplug", self._hotplug_loop), name="hotplug")
                tg.create_task(self.drive_watch.run(), name=self.drive_watch.name)
                for job in (self.daily, self.scrub, self.heads, self.chain_warm):
                    tg.create_task(self._supervise(job.name, job.run), name=job.name)
                tg.create_task(self._supervise("bays-file", self.bays_file.run), name="bays-file")
                tg.create_task(self._supervise("control", self._control), name="control")
                tg.create_task(self._watchdog(), name="watchdog")
                if self.publisher is not None:
                    tg.create_task(self._supervise("mqtt", self.publisher.run), name="mqtt")
        finally:
            notify("STOPPING=1")
            self.docking.close()
            self._close_hardware()
            self.store.close()

    def _open_hardware(self) -> None:
        loop = asyncio.get_running_loop()
        for b in self.bays.values():
            b.light = BayLight(b.cfg.led, self.pin_factory)
            b.player = PatternPlayer(b.light)
            b.player.play(pattern_for(Phase.EMPTY))
            if self.publisher is not None:  # the server sees every bay from the start
                self.publisher.set_bay_state(b.n, bay_state_json(self.cfg.station_id, b.state))
            b.button = BayButton(
                b.cfg.button,
                self.pin_factory,
                loop,
                on_short=_poster(b.queue, core.ShortPress()),
                on_long=_poster(b.queue, core.LongPress()),
                **({"hold_seconds": self._hold_seconds} if self._hold_seconds else {}),
            )

    def _close_hardware(self) -> None:
        for b in self.bays.values():
            if b.button is not None:
                b.button.close()
            if b.light is not None:
                b.light.close()
            b.button = b.light = None

    async def _supervise(self, name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``run`` for ever: when it fails, log, count, wait (1 s doubling to a minute) and
        start it again. The watchdog hears of a part that keeps failing (``_failing``)."""
        delay = SUPERVISE_FIRST
        while True:
            started = asyncio.get_running_loop().time()
            try:
                await run()
                log.warning("%s ended by itself; starting it again", name)
            except asyncio.CancelledError:
                raise
            except Exception:  # the bulkhead: this part restarts, the station goes on
                log.exception("%s failed; starting it again in %.0f s", name, delay)
                self._failing[name] = self._failing.get(name, 0) + 1
            if asyncio.get_running_loop().time() - started > SUPERVISE_HEALTHY:
                delay, self._failing[name] = SUPERVISE_FIRST, 0  # it had been running well
            await asyncio.sleep(delay)
            delay = min(delay * 2, SUPERVISE_MAX)

    async def _control(self) -> None:
        """The console's way in (station/control.py): a Unix socket served on its own threads,
        so the console's catalog reads and exports never hold up a bay."""
        uids, group = control.peers()
        # Built off the loop: it imports the staff into the catalog and makes a dummy hash.
        answer = (await asyncio.to_thread(control.Control, self.cfg, memo=self.chain_memo)).handle
        loop = asyncio.get_running_loop()

        def handle(request: dict[str, Any], uid: int) -> Reply:
            # "wake": a command has committed events; the publisher drains the outbox now, not
            # at its next poll. It needs no session: it only makes the daemon look at its own
            # outbox, and the socket admits only root and the station's users anyway.
            if request.get("op") == WAKE:
                if self.publisher is not None:
                    loop.call_soon_threadsafe(self.publisher.notify)  # from a control thread
                return {"ok": True, "result": None}, None
            return answer(request, uid)

        server = Server(self.cfg.run_dir / control.SOCKET, handle, uids, group, control.SLOW_OPS)
        server.start()
        try:
            while server.serving():  # a socket whose thread died is restarted by _supervise
                await asyncio.sleep(1.0)
            raise RuntimeError("the control socket stopped serving")
        finally:
            server.close()

    async def _hotplug_loop(self) -> None:
        async for ev in self.hotplug.events():
            try:
                self.docking.on_hotplug(ev)
            except Exception:  # bulkhead: a malformed event must not stop hotplug
                log.exception("hotplug event %s failed", ev)
            if ev.action == SETTLED and not self.ready.is_set():
                self.ready.set()
                notify("READY=1\nSTATUS=" + self.status_line())

    # -----------------------------------------------------------------------------------------
    # One bay

    async def _bay_loop(self, b: BayRuntime) -> None:
        while True:
            event = await b.queue.get()
            try:
                self._handle(b, event)
            except Exception as exc:  # bulkhead: this bay faults, the others go on
                log.exception("bay %d failed handling %s", b.n, event)
                self._apply(b, core.step(b.state, core.Failed(f"internal error: {exc!r}")))

    def _handle(self, b: BayRuntime, event: core.Event) -> None:
        if isinstance(event, core.ShortPress):
            event = core.ShortPress(selftest_available=self.preshift.can_test(b))
        before = b.state
        after = core.step(before, event)
        self._apply(b, after)
        if isinstance(event, core.Undocked) or after.phase is Phase.FAULT:
            self.docking.stop_offload(b)
        if after.phase is Phase.IDENTIFYING and before.phase is not Phase.IDENTIFYING:
            self.docking.start_offload(b)
        if after.phase is Phase.TESTING and before.phase is not Phase.TESTING:
            self.spawn(self.preshift.test(b), f"bay[{b.n}].selftest")
        if isinstance(event, core.ShortPress | core.LongPress):
            self.events.emit(
                "button",
                b.n,
                press="short" if isinstance(event, core.ShortPress) else "long",
                notice=after.notice,
            )

    def _apply(self, b: BayRuntime, new: BayState) -> None:
        old, b.state = b.state, new
        b.history.append(new)
        if b.player is not None:
            overlay = NOTICES[new.notice] if new.notice else None
            b.player.play(pattern_for(new.phase), overlay)
        self._show(b.n)
        if new.phase is Phase.FAULT and old.phase is not Phase.FAULT:
            self.events.record(EventType.BAY_FAULT, b.n, message=new.message)
        if old.phase is not new.phase:
            self.events.emit(
                "bay-state", b.n, phase=new.phase.value, camera=new.camera_id, message=new.message
            )
            self.status_changed()

    def _show(self, n: int) -> None:
        """The bay's state, with its ETA, to the station server (retained) and the console."""
        b = self.bays.get(n)
        if b is not None and self.publisher is not None:
            self.publisher.set_bay_state(n, bay_state_json(self.cfg.station_id, b.state,
                                                           self.eta_of(b)))  # fmt: skip
        self.bays_file.changed()

    def _waiting(self, bay: int, seconds: float | None) -> None:
        """A waiting bay's ETA from the bus queue (``Admission``); None: it waits no longer."""
        self.eta.set_waiting(bay, seconds)
        self._show(bay)

    def eta_of(self, b: BayRuntime) -> float | None:
        """Seconds until the bay's camera can be taken, when known (``station/eta.py``)."""
        return self.eta.of(b.state)

    def _bay_states(self) -> list[Any]:
        return [json.loads(bay_state_json(self.cfg.station_id, b.state, self.eta_of(b)))
                for b in self.bays.values()]  # fmt: skip

    # -----------------------------------------------------------------------------------------
    # What the jobs see (station/jobs.JobHost)

    def busy(self) -> bool:
        """Whether any bay is offloading (read from the jobs' threads too: a phase is one
        reference, read whole)."""
        return any(b.state.phase in BUSY for b in self.bays.values())

    def status_changed(self) -> None:
        """STATUS= anew, when it says something new."""
        status = self.status_line()
        if status != self._last_status:
            self._last_status = status
            notify("STATUS=" + status)

    def _broker_alarm(self, why: str | None) -> None:
        if self.publisher is not None:
            self.publisher.set_alarm(why)

    def _storage_back(self) -> None:
        for b in self.bays.values():
            b.queue.put_nowait(core.StorageBack())

    def status_line(self) -> str:
        """``4 bays: 1 done, 3 empty``: the systemd STATUS= line and the simulator's header;
        the jobs' alarms first (a missing drive, retention, the scrub)."""
        counts: dict[str, int] = {}
        for b in self.bays.values():
            counts[b.state.phase.value] = counts.get(b.state.phase.value, 0) + 1
        parts = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        alarms = [j.alarm for j in (self.drive_watch, self.daily, self.scrub) if j.alarm]
        alarm = "".join(f"ALARM {a}; " for a in alarms)
        return f"{alarm}{len(self.bays)} bays: {parts}"

    async def _watchdog(self) -> None:
        """WATCHDOG=1 while the loop turns and every bay task is alive."""
        interval = watchdog_interval()
        if interval is None:
            return
        while True:
            await asyncio.sleep(interval)
            tasks = {t.get_name() for t in asyncio.all_tasks()}
            if not all(f"bay[{n}].events" in tasks for n in self.bays):
                log.error("a bay task is gone: withholding the watchdog ping")
            elif self._failing.get("hotplug", 0) >= HOTPLUG_FAILURES:
                log.error("hotplug keeps failing: withholding the watchdog ping (systemd restarts)")
            else:
                notify("WATCHDOG=1")


def _poster(queue: asyncio.Queue[core.Event], event: core.Event) -> Callable[[], None]:
    return lambda: queue.put_nowait(event)
