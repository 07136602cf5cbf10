"""The station: every bay, supervised, on one event loop.

One ``asyncio.TaskGroup`` holds the named tasks: ``hotplug``, ``watchdog``, ``mqtt``, and per
bay ``bay[n].events``, ``bay[n].led`` and, while they run, ``bay[n].offload`` and
``bay[n].selftest``. Each bay is a bulkhead: an exception while handling one bay's event turns
that bay to FAULT and the others go on.

This module only supervises: docking (hotplug → mount → offload → unmount) is
``station/docking.py``, the pre-shift test ``station/preshift.py``; both act through the
``StationContext`` this class provides (events, the catalog thread, the task group).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import Future
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from sqlite_utils import Database

from camdock.adapters import fsio
from camdock.adapters.control import Server
from camdock.adapters.drives import StorageMissing, prove_all, state_disk
from camdock.adapters.gpio import BayButton, BayLight, PatternPlayer
from camdock.adapters.systemd import notify, watchdog_interval
from camdock.adapters.udev import HotplugEvent
from camdock.camera.driver import DriverFactory
from camdock.catalog import assignments, outbox
from camdock.catalog.db import Store, open_catalog, write_txn
from camdock.catalog.retention import alarm as record_alarm
from camdock.catalog.scrub import totals as scrub_totals
from camdock.catalog.seals import dirty as dirty_days
from camdock.clock import Clock, ProcessClock
from camdock.config import Config
from camdock.core import bay as core
from camdock.core import roster
from camdock.core.bay import BayState, Phase
from camdock.core.indicators import NOTICES, pattern_for
from camdock.errors import RosterError
from camdock.events import EventType
from camdock.model import Officer
from camdock.services.retention import Keeping, PassResult, daily_pass, plan_for
from camdock.services.scrub import ScrubResult, scrub_step
from camdock.services.seal import Sealing, seal_pass
from camdock.station import control
from camdock.station.bays import BAYS_FILE, BayRuntime, bay_state_json
from camdock.station.docking import SETTLED, Docking, Mounter
from camdock.station.preshift import PreShift
from camdock.station.publisher import Publisher

__all__ = ["Hotplug", "Station", "StationEventFn"]

log = logging.getLogger(__name__)

DRIVE_POLL = 5.0  # seconds between proofs of the destination drives (REG-4.2.1)
SUPERVISE_FIRST, SUPERVISE_MAX = 1.0, 60.0  # backoff of a failed part before its restart
SUPERVISE_HEALTHY = 300.0  # a part that ran this long before failing starts the count anew
HOTPLUG_FAILURES = 5  # in a row: the station cannot see docks, so the watchdog is not fed
RETENTION_FIRST = 300.0  # seconds after start before the first retention pass (docks first)
RETENTION_POLL = 60.0  # seconds between looks at the date (a new day: a new pass)
SCRUB_POLL = 60.0  # seconds between scrub steps (each reads its share of the footage)
SCRUB_MIN_STEP = 64 << 20  # bytes a step reads at least
BUSY = frozenset({Phase.IDENTIFYING, Phase.OFFLOADING, Phase.VERIFYING})


class Hotplug(Protocol):
    """A source of udev events (pyudev on a station, a script in the simulator)."""

    def events(self) -> AsyncIterator[HotplugEvent]:
        """Every event, the cold-plug enumeration first, then ``settled``, then live ones."""
        ...


StationEventFn = Callable[[str, int | None, dict[str, Any]], None]


class Station:
    """The daemon's station: bays, hotplug, publisher and watchdog, run until cancelled."""

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
        self._on_event = on_event
        self._hold_seconds = hold_seconds
        self._tg: asyncio.TaskGroup | None = None
        self._last_status = ""
        self._drive_problem: str | None = None  # why a destination drive is missing, if it is
        self._failing: dict[str, int] = {}  # supervised part → failures in a row
        self._unrecorded: list[dict[str, str]] = []  # state-disk alarms to record later
        self.clock = clock or ProcessClock()
        self._retention_first = retention_first
        self._retention_alarm: str | None = None  # today's retention alarms, for STATUS=
        self._scrub_alarm: str | None = None  # damage the scrub found, until repaired
        self.etas: dict[int, float] = {}  # bay → seconds until done (waiting for its bus)
        self._bays_dirty = asyncio.Event()
        self._seal_paused = False  # the last seal gave way to a dock: take it up when idle
        self._offload_started: dict[int, tuple[float, int]] = {}  # bay → (time, bytes done)
        self.last_pass: PassResult | None = None
        # Events are recorded whether or not a broker is configured (REG-7.1); with [mqtt] (and
        # publish=True) a publisher delivers them.
        self.topics = cfg.topics
        self.store = Store(cfg.catalog)
        self.publisher: Publisher | None = None
        if cfg.mqtt is not None and publish:
            self.publisher = Publisher(cfg.mqtt, self.topics, self.store, self.apply_roster)
        self.docking = Docking(self, mounter, read_bps=read_bps)
        self.preshift = PreShift(self, drivers)

    # -----------------------------------------------------------------------------------------
    # The station context (station/bays.py)

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
        **data: Any,
    ) -> None:
        """Record an event for the station server (its own transaction, on the catalog thread),
        then wake the publisher; and show it locally. One catalog thread: submission order is
        commit order."""
        b = self.bays.get(bay) if bay is not None else None
        if b is not None:
            camera = camera or b.state.camera_id
            serial = serial or b.state.serial
        officer = self.officer_json(serial)
        running = b.offload.engine if b is not None and b.state.phase in core.BUSY else None
        if running is not None and running.req.events is not None:
            # An offload under way speaks for the officer it files under, even when a roster
            # re-assigns the camera meanwhile (issue 12).
            officer = running.req.events.officer
        loop = asyncio.get_running_loop()

        def write(db: Any) -> None:
            with write_txn(db):
                outbox.record(
                    db, self.topics, kind, bay=bay, camera=camera, officer=officer, data=data
                )
            loop.call_soon_threadsafe(self.wake_publisher)

        self.store.submit(write).add_done_callback(_log_failure)
        self.emit(kind.value, bay, **data)

    def wake_publisher(self) -> None:
        """New events are committed (on the loop thread)."""
        if self.publisher is not None:
            self.publisher.notify()

    def officer_json(self, serial: str | None) -> dict[str, str] | None:
        """The officer assigned to the camera with this USB serial, as events carry it."""
        camera = self.cfg.cameras.get(serial or "")
        officer = self.cfg.officer_for(camera) if camera else None
        return officer.as_json() if officer else None

    def drives_changed(self, problem: Exception | None) -> None:
        """A drive went missing (``problem``: a destination, or the state disk the catalog is
        on) or all are well again: recorded once per change, in STATUS=, and waiting bays
        resume when it is back. A full state disk cannot record its own alarm: the alarm is
        published directly (retained) and recorded once space returns."""
        why = str(problem) if problem is not None else None
        if why == self._drive_problem:
            return
        self._drive_problem = why
        if isinstance(problem, StorageMissing):
            log.error("%s", problem)
            drive = problem.drive
            data = {"drive": drive.name, "root": str(drive.root), "reason": str(problem)}
            if drive.name == "state":
                self._unrecorded.append(data)
                if self.publisher is not None:
                    self.publisher.set_alarm(str(problem))
            else:
                self._record_missing(data)
        else:
            log.info("storage is well again")
            for data in self._unrecorded:
                self._record_missing(data)
            self._unrecorded.clear()
            if self.publisher is not None:
                self.publisher.set_alarm(None)
            self.record(EventType.STORAGE_RESTORED, drives=[d.name for d in self.cfg.drives])
            for b in self.bays.values():
                b.queue.put_nowait(core.StorageBack())
        self._notify_status()

    def _record_missing(self, data: dict[str, str]) -> None:
        self.record(EventType.STORAGE_MISSING, drive=data["drive"], root=data["root"],
                    reason=data["reason"])  # fmt: skip

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Start a supervised task in the station's task group."""
        assert self._tg is not None
        return self._tg.create_task(coro, name=name)

    # -----------------------------------------------------------------------------------------

    def apply_roster(self, payload: bytes) -> None:
        """A roster from the station server: applied whole, or rejected with the old one kept."""
        try:
            new = roster.parse(payload, self.cfg.roster_registry())
        except RosterError as exc:
            log.error("roster rejected: %s", exc)
            self.record(EventType.ROSTER_REJECTED, problems=exc.problems)
            return
        self.cfg = self.cfg.with_roster(new)
        officers = self.cfg.officers
        history = {cam: officers[badge] for cam, badge in new.assignments.items()}
        granted = {o.badge: (o.name, o.unit, sorted(new.roles.get(o.badge, ())))
                   for o in new.officers if o.badge in new.roles}  # fmt: skip
        self.store.submit(_keep_roster, new.date, history, granted).add_done_callback(
            _log_failure)  # fmt: skip
        log.info("roster for %s applied: %d assignments", new.date, len(new.assignments))
        self.record(
            EventType.ROSTER_APPLIED,
            date=new.date,
            assignments=len(new.assignments),
            officers=len(new.officers),
            slots=new.slots is not None,
        )

    async def run(self) -> None:
        """Run until cancelled (SIGTERM); leaves every offload resumable."""
        self.cfg.run_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        self.cfg.state_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        _share_run_dir(self.cfg.run_dir)
        notify("STATUS=starting")
        try:
            self._open_hardware()
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                for b in self.bays.values():
                    assert b.player is not None
                    tg.create_task(b.player.run(), name=f"bay[{b.n}].led")
                    tg.create_task(self._bay_loop(b), name=f"bay[{b.n}].events")
                # Bulkheads: hotplug and the publisher are restarted with backoff when they
                # fail; a crash in one never ends the station.
                tg.create_task(self._supervise("hotplug", self._hotplug_loop), name="hotplug")
                tg.create_task(self._watch_drives(), name="drives")
                tg.create_task(self._supervise("retention", self._retention_loop),
                               name="retention")  # fmt: skip
                tg.create_task(self._supervise("scrub", self._scrub_loop), name="scrub")
                tg.create_task(self._supervise("bays-file", self._bays_file), name="bays-file")
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
        server = Server(self.cfg.run_dir / control.SOCKET, control.Control(self.cfg).handle,
                        uids, group)  # fmt: skip
        server.start()
        try:
            await asyncio.Event().wait()
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
            self.emit(
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
        if self.publisher is not None:
            self.publisher.set_bay_state(b.n, bay_state_json(self.cfg.station_id, new,
                                                             self.eta_of(b)))  # fmt: skip
        self._write_bays()
        if new.phase is Phase.FAULT and old.phase is not Phase.FAULT:
            self.record(EventType.BAY_FAULT, b.n, message=new.message)
        if old.phase is not new.phase:
            self.emit(
                "bay-state", b.n, phase=new.phase.value, camera=new.camera_id, message=new.message
            )
            self._notify_status()

    def set_eta(self, bay: int, seconds: float | None) -> None:
        """A waiting bay's ETA from the bus queue (services/docking.Admission)."""
        if seconds is None:
            self.etas.pop(bay, None)
        else:
            self.etas[bay] = seconds
        b = self.bays.get(bay)
        if b is not None and self.publisher is not None:
            self.publisher.set_bay_state(bay, bay_state_json(self.cfg.station_id, b.state,
                                                             self.eta_of(b)))  # fmt: skip
        self._write_bays()

    def eta_of(self, b: BayRuntime) -> float | None:
        """Seconds until the bay's camera can be taken: while it waits, from the bus queue;
        while it offloads, its remaining bytes at its bus's measured rate (the rate it has read
        at itself once it has read for a while: a read's first seconds run ahead of the bus)."""
        s = b.state
        if s.phase is Phase.OFFLOADING and s.bytes_total:
            now = asyncio.get_running_loop().time()
            start, done0 = self._offload_started.setdefault(b.n, (now, s.bytes_done or 0))
            remaining = s.bytes_total - (s.bytes_done or 0)
            done = (s.bytes_done or 0) - done0
            tail = self.docking.finish_time(b.n)
            if done > 0 and now - start > 5.0:
                return remaining / (done / (now - start)) + tail
            return remaining / self.docking.bus_rate(b.n) + tail
        self._offload_started.pop(b.n, None)
        return self.etas.get(b.n) if s.phase is Phase.IDENTIFYING else None

    def _write_bays(self) -> None:
        """Ask for every bay's state to be written for the console (coalesced, off the loop:
        a file write can block for long while eight offloads fill the disk)."""
        self._bays_dirty.set()

    async def _bays_file(self) -> None:
        """Write the bays' states into the run directory, at most every 0.3 s, in a thread."""
        path = self.cfg.run_dir / BAYS_FILE
        while True:
            await self._bays_dirty.wait()
            self._bays_dirty.clear()
            states = [json.loads(bay_state_json(self.cfg.station_id, b.state, self.eta_of(b)))
                      for b in self.bays.values()]  # fmt: skip
            await asyncio.to_thread(_write_json, path, states)
            await asyncio.sleep(0.3)

    def _notify_status(self) -> None:
        status = self.status_line()
        if status != self._last_status:
            self._last_status = status
            notify("STATUS=" + status)

    def status_line(self) -> str:
        """``4 bays: 1 done, 3 empty``: the systemd STATUS= line and the simulator's header;
        an alarm first when a destination drive is missing."""
        counts: dict[str, int] = {}
        for b in self.bays.values():
            counts[b.state.phase.value] = counts.get(b.state.phase.value, 0) + 1
        parts = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        alarms = [a for a in (self._drive_problem, self._retention_alarm, self._scrub_alarm) if a]
        alarm = "".join(f"ALARM {a}; " for a in alarms)
        return f"{alarm}{len(self.bays)} bays: {parts}"

    async def _watch_drives(self) -> None:
        """Check the state disk and prove the destination drives now and every few seconds
        (REG-4.2.1): a missing drive, or a state disk too full to record an offload, is an
        alarm at once, not at the next dock; its return resumes waiting bays."""
        if not self.cfg.require_mounts:
            log.warning(
                "development mode ([destinations] require_mounts = false): destinations are "
                "plain directories, not proven drives, and one filesystem may hold both copies"
            )
        drives = self.cfg.drives if self.cfg.require_mounts else ()
        loop = asyncio.get_running_loop()
        while True:
            try:
                await loop.run_in_executor(None, state_disk, self.cfg.state_dir)
                await loop.run_in_executor(None, prove_all, drives)
                self.drives_changed(None)
            except StorageMissing as exc:
                self.drives_changed(exc)
            except Exception:  # bulkhead: the watcher must not stop the station
                log.exception("checking the destination drives failed")
            await asyncio.sleep(DRIVE_POLL)

    async def _retention_loop(self) -> None:
        """The daily retention pass (REG-4.3.1) and catalog backup (REG-4.3.2): once a day,
        in the station's zone, when no bay is offloading; the first a little after start so
        that docking comes first. Its alarms stay in STATUS= until the next pass."""
        await asyncio.sleep(self._retention_first)
        done: date | None = None
        while True:
            today = self.clock.now().astimezone(self.cfg.tz).date()
            if not self._busy():
                if today != done:
                    self.last_pass = await asyncio.to_thread(self._retention_pass, today)
                    done = today
                    self._retention_alarm = "; ".join(self.last_pass.alarms) or None
                    self._notify_status()
                elif self._seal_paused:  # a seal that gave way to a dock, taken up again
                    await asyncio.to_thread(self._retention_pass, today, True)
            await asyncio.sleep(RETENTION_POLL)

    def _busy(self) -> bool:
        """Whether any bay is offloading (read from the pass's threads too: a phase is one
        reference, read whole)."""
        return any(b.state.phase in BUSY for b in self.bays.values())

    def _retention_pass(self, today: date, seal_only: bool = False) -> PassResult:
        """One pass on its own connection (a thread of its own: removing copies and backing up
        the catalog must not hold up the catalog thread the bays record through). The seal
        gives way as soon as a bay starts offloading, and is taken up again when all are idle."""
        db = open_catalog(self.cfg.catalog)
        try:
            keeping = Keeping.from_config(self.cfg)
            result = (PassResult(plan_for(db, today)) if seal_only else
                      daily_pass(db, self.cfg.catalog, keeping, today))  # fmt: skip
            if self.cfg.seal.automatic:  # REG-4.2.5: every past duty day, sealed
                by = self.cfg.seal.sealed_by or f"camdock@{self.cfg.station_id}"
                sealing = replace(Sealing.from_config(self.cfg), pause=self._busy)
                self._seal_paused = False
                sealed, alarms = seal_pass(db, sealing, today, by,
                                           self.cfg.seal.alarm_after_days,
                                           self.cfg.seal.keep_plain_days)  # fmt: skip
                self._seal_paused = self._busy() and bool(dirty_days(db))
                result.sealed, result.alarms = sealed, result.alarms + alarms
                if alarms:
                    log.warning("seal: %s", "; ".join(alarms))
                    record_alarm(db, self.topics, EventType.SEAL_ALARM, {"alarms": alarms})
            return result
        finally:
            db.close()

    async def _scrub_loop(self) -> None:
        """The background scrub (REG-7.2): while no bay offloads, a step a minute at idle I/O
        priority, each reading its share so every copy is proven again within [scrub] days."""
        await asyncio.sleep(self._retention_first)
        while True:
            if not any(b.state.phase in BUSY for b in self.bays.values()):
                result = await asyncio.to_thread(self._scrub_step)
                if result.lost:
                    self._scrub_alarm = f"{len(result.lost)} recording(s) with no good copy left"
                elif result.damaged and len(result.repaired) < len(result.damaged):
                    self._scrub_alarm = f"{len(result.damaged)} damaged cop(ies) not repaired"
                elif result.proven or result.repaired:
                    self._scrub_alarm = None
                self._notify_status()
            await asyncio.sleep(SCRUB_POLL)

    def _scrub_step(self) -> ScrubResult:
        fsio.idle_io_priority()
        db = open_catalog(self.cfg.catalog)
        try:
            _, total = scrub_totals(db)
            budget = max(SCRUB_MIN_STEP, int(total * SCRUB_POLL / (self.cfg.scrub_days * 86400)))
            present = {str(d.root) for d in self.cfg.drives}
            return scrub_step(db, budget, self.topics, present)
        finally:
            db.close()

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


def _write_json(path: Path, doc: Any) -> None:
    """Replace ``path`` with ``doc`` whole (a reader never sees half a file)."""
    temp = path.with_name(f".{path.name}.tmp")
    try:
        temp.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
        os.replace(temp, path)
    except OSError as exc:  # the console shows stale bays; the station goes on
        log.debug("bay states not written for the console: %s", exc)


def _poster(queue: asyncio.Queue[core.Event], event: core.Event) -> Callable[[], None]:
    return lambda: queue.put_nowait(event)


def _keep_roster(db: Database, duty_day: str, history: dict[str, Officer],
                 granted: dict[str, tuple[str, str, list[str]]]) -> None:  # fmt: skip
    """The roster's assignments from its duty day on (REG-4.2.4: attribution by time), and the
    roles it grants (REG-4.1.1), for the commands to check."""
    with write_txn(db):
        assignments.record_roster(db, duty_day, history)
        assignments.record_roles(db, duty_day, granted)


def _log_failure(future: Future[None]) -> None:
    """An event that could not be recorded must not vanish silently."""
    if (exc := future.exception()) is not None:
        log.error("event could not be recorded in the outbox: %r", exc)


def _share_run_dir(run_dir: Path) -> None:
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
