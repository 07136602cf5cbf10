"""The station: every bay, supervised, on one event loop.

One ``asyncio.TaskGroup`` holds the named tasks: ``hotplug``, ``watchdog``, and per bay
``bay[n].events``, ``bay[n].led`` and, while it runs, ``bay[n].offload``. Each bay is a bulkhead:
an exception while handling one bay's event turns that bay to FAULT and the others go on.

Flow for a dock (ARCHITECTURE.md, data flows):
udev add → bay by USB port → registered camera? (REG-2: otherwise never mounted or read) →
mount nosuid,nodev,noexec → offload engine (verify, catalog, clear) → unmount → LED done.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from camdock.adapters.catalog import one, utcnow, write_txn
from camdock.adapters.gpio import BayButton, BayLight, PatternPlayer
from camdock.adapters.mount import MountError
from camdock.adapters.mqtt import Outbox, Publisher
from camdock.adapters.systemd import notify, watchdog_interval
from camdock.adapters.udev import HotplugEvent
from camdock.camera.link import CameraLink
from camdock.config import FILESYSTEMS, Bay, Config, Officer
from camdock.core import bay as core
from camdock.core import roster
from camdock.core.bay import BayState, Phase
from camdock.core.indicators import NOTICES, pattern_for
from camdock.core.selftest import Policy
from camdock.events import EventContext, EventType, Topics
from camdock.events import record as record_event
from camdock.services.offload import OffloadEngine, OffloadRefused, OffloadReport, OffloadRequest
from camdock.services.selftest import run_function_test

log = logging.getLogger(__name__)

SETTLED = "settled"  # a HotplugEvent action: cold-plug enumeration is complete
NO_FILESYSTEM_AFTER = 5.0  # seconds a camera disk may take to show a partition with a filesystem


class Hotplug(Protocol):
    def events(self) -> AsyncIterator[HotplugEvent]: ...


class Mounter(Protocol):
    async def mount(self, devnode: str, fs_type: str, target: Path) -> Path: ...
    async def unmount(self, target: Path) -> None: ...


StationEventFn = Callable[[str, int | None, dict[str, Any]], None]


@dataclass
class _Offload:
    """What one bay's running offload knows, beyond the pure state."""

    engine: OffloadEngine | None = None
    task: asyncio.Task[None] | None = None
    per_file: dict[str, int] = field(default_factory=dict)
    files_done: int = 0
    # Kept here, not read from the bay's state: the state learns the total only when the bay's
    # task handles OffloadStarted, and the first "bytes" report can come before that.
    bytes_total: int = 0
    tenths_sent: int = 0  # progress events go to the server in tenths
    report: OffloadReport | None = None


@dataclass
class _Bay:
    cfg: Bay
    state: BayState
    queue: asyncio.Queue[core.Event] = field(default_factory=asyncio.Queue)
    light: BayLight | None = None
    player: PatternPlayer | None = None
    button: BayButton | None = None
    storage: HotplugEvent | None = None  # the camera filesystem chosen for this dock
    tty: str | None = None  # the camera's serial command port (the self-test issue uses it)
    disk_waiting: asyncio.TimerHandle | None = None
    offload: _Offload = field(default_factory=_Offload)
    history: list[BayState] = field(default_factory=list)

    @property
    def n(self) -> int:
        return self.cfg.number


class Station:
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
    ) -> None:
        self.cfg = cfg
        self.hotplug = hotplug
        self.mounter = mounter
        self.pin_factory = pin_factory
        self.bays = {b.number: _Bay(b, BayState(b.number)) for b in cfg.bays}
        self.ready = asyncio.Event()
        self._on_event = on_event
        self._read_bps = read_bps
        self._hold_seconds = hold_seconds
        self._devpath_bay: dict[str, int] = {}
        self._offload_slots = asyncio.Semaphore(cfg.max_concurrent_offloads)
        # Engines block a thread for a whole offload: their own pool, one thread per allowed
        # offload (the loop's default pool has only cpu_count + 4 threads).
        self._engines = ThreadPoolExecutor(cfg.max_concurrent_offloads, "offload")
        self._tg: asyncio.TaskGroup | None = None
        self._last_status = ""
        # Events are recorded whether or not a broker is configured (REG-7.1); with [mqtt] (and
        # publish=True) a publisher delivers them.
        self.topics = Topics(cfg.mqtt.prefix if cfg.mqtt else "camdock", cfg.station_id)
        self.outbox = Outbox(cfg.catalog)
        self.publisher: Publisher | None = None
        if cfg.mqtt is not None and publish:
            self.publisher = Publisher(cfg.mqtt, self.topics, self.outbox, self.apply_roster)

    # -----------------------------------------------------------------------------------------

    def emit(self, kind: str, bay: int | None, **data: Any) -> None:
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
        """Record an event for the station server (its own transaction, on the outbox thread),
        then wake the publisher; and show it locally (log, simulator view). One outbox thread:
        submission order is commit order."""
        b = self.bays.get(bay) if bay is not None else None
        if b is not None:
            camera = camera or b.state.camera_id
            serial = serial or b.state.serial
        officer = self._officer_json(serial)
        loop = asyncio.get_running_loop()

        def write() -> None:
            with write_txn(self.outbox.db()) as db:
                record_event(
                    db, self.topics, kind, bay=bay, camera=camera, officer=officer, data=data
                )
            loop.call_soon_threadsafe(self._wake_publisher)

        self.outbox.pool.submit(write).add_done_callback(_log_failure)
        self.emit(kind.value, bay, **data)

    def _wake_publisher(self) -> None:
        if self.publisher is not None:
            self.publisher.notify()

    def _officer_json(self, serial: str | None) -> dict[str, str] | None:
        camera = self.cfg.cameras.get(serial or "")
        officer = self.cfg.officer_for(camera) if camera else None
        if officer is None:
            return None
        return {"badge": officer.badge, "name": officer.name, "unit": officer.unit}

    def apply_roster(self, payload: bytes) -> None:
        """A roster from the station server: applied whole, or rejected with the old one kept."""
        try:
            new = roster.parse(payload, self.cfg)
        except roster.RosterError as exc:
            log.error("roster rejected: %s", exc)
            self.record(EventType.ROSTER_REJECTED, problems=exc.problems)
            return
        self.cfg = roster.apply(self.cfg, new)
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
        loop = asyncio.get_running_loop()
        self.cfg.run_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        notify("STATUS=starting")
        try:
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
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                for b in self.bays.values():
                    assert b.player is not None
                    tg.create_task(b.player.run(), name=f"bay[{b.n}].led")
                    tg.create_task(self._bay_loop(b), name=f"bay[{b.n}].events")
                tg.create_task(self._hotplug_loop(), name="hotplug")
                tg.create_task(self._watchdog(), name="watchdog")
                if self.publisher is not None:
                    tg.create_task(self.publisher.run(), name="mqtt")
        finally:
            notify("STOPPING=1")
            await self._shutdown()
            self._engines.shutdown(wait=False, cancel_futures=True)
            self.outbox.close()

    async def _shutdown(self) -> None:
        for b in self.bays.values():
            if b.offload.engine is not None:
                b.offload.engine.cancel()
        for b in self.bays.values():
            if b.button is not None:
                b.button.close()
            if b.light is not None:
                b.light.close()
            b.button = b.light = None

    # -----------------------------------------------------------------------------------------
    # Hotplug

    async def _hotplug_loop(self) -> None:
        async for ev in self.hotplug.events():
            try:
                self._on_hotplug(ev)
            except Exception:  # bulkhead: a malformed event must not stop hotplug
                log.exception("hotplug event %s failed", ev)
            if ev.action == SETTLED and not self.ready.is_set():
                self.ready.set()
                notify("READY=1\nSTATUS=" + self.status_line())

    def _on_hotplug(self, ev: HotplugEvent) -> None:
        if ev.action == SETTLED:
            return
        if ev.action == "remove":
            n = self._devpath_bay.pop(ev.devpath, None)
            if n is not None:
                b = self.bays[n]
                if b.storage is not None and b.storage.devpath == ev.devpath:
                    b.storage = None
                    b.queue.put_nowait(core.Undocked())
                    self.record(EventType.CAMERA_REMOVED, b.n, phase=b.state.phase.value)
                elif ev.subsystem == "tty":
                    b.tty = None
            return
        bay = self.cfg.bay_for(ev.port, ev.id_path)
        if bay is None:
            log.info("ignored %s on USB port %s: no bay owns that port", ev.devnode, ev.port)
            return
        b = self.bays[bay.number]
        if ev.subsystem == "tty":
            self._devpath_bay[ev.devpath] = b.n
            b.tty = ev.devnode
            return
        camera = self.cfg.cameras.get(ev.serial or "")
        if camera is None:
            # REG-2: storage that is not a registered camera is never mounted or read.
            if ev.devtype == "disk" or ev.fs_type:
                self._devpath_bay[ev.devpath] = b.n
                if b.storage is None:
                    b.storage = ev
                    b.queue.put_nowait(core.Docked(ev.serial or "?", None))
                    self.record(
                        EventType.UNKNOWN_DEVICE,
                        b.n,
                        usb_serial=ev.serial,
                        vendor=ev.vendor_id,
                        product=ev.product_id,
                    )
            return
        if not ev.fs_type:
            if ev.devtype == "disk" and b.storage is None and b.disk_waiting is None:
                # A camera disk comes first; its partition with a filesystem should follow.
                loop = asyncio.get_running_loop()
                b.disk_waiting = loop.call_later(NO_FILESYSTEM_AFTER, self._no_filesystem, b, ev)
            return
        if b.storage is not None and b.storage.devpath != ev.devpath:
            if b.storage.usb_parent == ev.usb_parent and ev.action == "add":
                b.queue.put_nowait(
                    core.Failed(
                        f"camera {camera.id} shows more than one filesystem "
                        f"({b.storage.devnode}, {ev.devnode}); not guessing which holds the footage"
                    )
                )
            return
        if b.storage is not None and b.state.phase in core.BUSY:
            return  # the same partition again ("change"): already being handled
        if b.disk_waiting is not None:
            b.disk_waiting.cancel()
            b.disk_waiting = None
        self._devpath_bay[ev.devpath] = b.n
        b.storage = ev
        officer = self.cfg.officer_for(camera)
        name = officer.name if officer else None
        b.queue.put_nowait(core.Docked(ev.serial or "", camera.id, name))
        self.record(
            EventType.CAMERA_DOCKED,
            b.n,
            camera=camera.id,
            serial=camera.serial,
            usb_serial=camera.serial,
            ownership=camera.ownership,
            fs=ev.fs_type,
        )

    def _no_filesystem(self, b: _Bay, disk: HotplugEvent) -> None:
        b.disk_waiting = None
        if b.storage is None:
            self._devpath_bay[disk.devpath] = b.n
            b.storage = disk
            b.queue.put_nowait(core.Failed("registered camera shows no filesystem"))

    # -----------------------------------------------------------------------------------------
    # One bay

    async def _bay_loop(self, b: _Bay) -> None:
        while True:
            event = await b.queue.get()
            try:
                self._handle(b, event)
            except Exception as exc:  # bulkhead: this bay faults, the others go on
                log.exception("bay %d failed handling %s", b.n, event)
                self._apply(b, core.step(b.state, core.Failed(f"internal error: {exc!r}")))

    def _handle(self, b: _Bay, event: core.Event) -> None:
        if isinstance(event, core.ShortPress):
            event = core.ShortPress(selftest_available=self._can_test(b))
        before = b.state
        after = core.step(before, event)
        self._apply(b, after)
        stop = isinstance(event, core.Undocked) or after.phase is Phase.FAULT
        if stop and b.offload.engine is not None:
            b.offload.engine.cancel()  # what is verified stays; the rest stays on the camera
        if after.phase is Phase.IDENTIFYING and before.phase is not Phase.IDENTIFYING:
            self._start_offload(b)
        if after.phase is Phase.TESTING and before.phase is not Phase.TESTING:
            assert self._tg is not None
            self._tg.create_task(self._function_test(b), name=f"bay[{b.n}].selftest")
        if isinstance(event, core.ShortPress | core.LongPress):
            self.emit(
                "button",
                b.n,
                press="short" if isinstance(event, core.ShortPress) else "long",
                notice=after.notice,
            )

    def _apply(self, b: _Bay, new: BayState) -> None:
        old, b.state = b.state, new
        b.history.append(new)
        if b.player is not None:
            overlay = NOTICES[new.notice] if new.notice else None
            b.player.play(pattern_for(new.phase), overlay)
        if self.publisher is not None:
            self.publisher.set_bay_state(b.n, bay_state_json(self.cfg.station_id, new))
        if new.phase is Phase.FAULT and old.phase is not Phase.FAULT:
            self.record(EventType.BAY_FAULT, b.n, message=new.message)
        if old.phase is not new.phase:
            self.emit(
                "bay-state", b.n, phase=new.phase.value, camera=new.camera_id, message=new.message
            )
            status = self.status_line()
            if status != self._last_status:
                self._last_status = status
                notify("STATUS=" + status)

    def status_line(self) -> str:
        counts: dict[str, int] = {}
        for b in self.bays.values():
            counts[b.state.phase.value] = counts.get(b.state.phase.value, 0) + 1
        parts = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        return f"{len(self.bays)} bays: {parts}"

    # -----------------------------------------------------------------------------------------
    # Offload

    def _start_offload(self, b: _Bay) -> None:
        assert self._tg is not None
        if b.offload.task is not None and not b.offload.task.done():
            return
        b.offload = _Offload()
        b.offload.task = self._tg.create_task(self._offload(b), name=f"bay[{b.n}].offload")

    async def _offload(self, b: _Bay) -> None:
        storage = b.storage
        camera = self.cfg.cameras.get(storage.serial or "") if storage else None
        if storage is None or camera is None or storage.devnode is None:
            b.queue.put_nowait(core.Failed("camera vanished before it could be mounted"))
            return
        if storage.fs_type not in FILESYSTEMS:
            b.queue.put_nowait(core.Failed(f"camera filesystem {storage.fs_type!r} refused"))
            return
        officer = self.cfg.officer_for(camera)
        target = self.cfg.run_dir / "bays" / str(b.n)
        try:
            async with self._offload_slots:
                if b.storage is not storage:
                    return  # pulled (or replaced) while waiting for a slot: nothing to do
                if error := await self._outbox_full():
                    b.queue.put_nowait(core.Failed(error))
                    return
                # The outbox thread is FIFO: once this no-op runs, the "camera-docked" event is
                # committed, so the engine's events follow it in sequence.
                await self.outbox.call(lambda: None)
                try:
                    source = await self.mounter.mount(storage.devnode, storage.fs_type, target)
                except MountError as exc:
                    b.queue.put_nowait(core.Failed(str(exc)))
                    self.record(EventType.OFFLOAD_FAILED, b.n, error=str(exc), stage="mount")
                    return
                try:
                    await self._run_engine(b, source, camera.id, officer)
                finally:
                    await self.mounter.unmount(target)
        except Exception as exc:  # bulkhead: the bay faults, the camera keeps its footage
            log.exception("bay %d offload crashed", b.n)
            b.queue.put_nowait(core.Failed(f"offload crashed: {exc!r}"))

    async def _run_engine(self, b: _Bay, source: Path, camera_id: str, officer: Any) -> None:
        loop = asyncio.get_running_loop()
        loan = await self._loan_officer(camera_id)
        officer_json = self._officer_json(b.state.serial)
        if loan is not None:
            # A lent spare: its footage is the borrower's (REG-4.2.4).
            officer = Officer(loan["badge"], loan["name"], loan["unit"])
            officer_json = loan
        request = OffloadRequest(
            source=source,
            destinations=(self.cfg.footage, self.cfg.backup),
            camera_id=camera_id,
            officer_name=officer.name if officer else "unassigned",
            officer_badge=officer.badge if officer else "none",
            unit=officer.unit if officer else self.cfg.unit,
            catalog=self.cfg.catalog,
            slots=self.cfg.slots,
            tz=self.cfg.tz,
            clear=True,  # REG-4.1.2: the engine clears only what is verified and catalogued
            read_bps=self._read_bps,
            events=EventContext(self.topics, b.n, camera_id, officer_json),
        )

        def progress(kind: str, data: dict[str, Any]) -> None:
            # Called on the engine's threads; the bay's state lives on the loop.
            loop.call_soon_threadsafe(self._on_progress, b, kind, data)

        engine = OffloadEngine(request, progress=progress)
        b.offload.engine = engine
        self.emit("offload-started", b.n, camera=camera_id)
        running = loop.run_in_executor(self._engines, engine.run)
        try:
            report = await asyncio.shield(running)
        except OffloadRefused as exc:
            b.queue.put_nowait(core.Failed(str(exc)))
            self.record(EventType.OFFLOAD_FAILED, b.n, error=str(exc), stage="start")
            return
        except asyncio.CancelledError:
            # SIGTERM: stop soon and wait for the engine, so the unmount that follows finds the
            # volume idle; what is done stays done, the rest resumes on the next dock.
            engine.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(running, 60)
            raise
        b.offload.report = report
        summary = report.as_json()["totals"]
        if report.cancelled or (b.storage is None or not Path(b.storage.devnode or "").exists()):
            return  # pulled or stopping: the bay shows "interrupted" from the udev remove
        if report.ok:
            if loan is not None:
                await self._return_loan(camera_id)
            b.queue.put_nowait(core.OffloadFinished(True, f"{summary['verified']} files"))
            self.emit("offload-completed", b.n, camera=camera_id, **summary)
        else:
            failed = next((f for f in report.files if not f.verified or not f.cleared), None)
            why = failed.error if failed and failed.error else "not every file verified"
            b.queue.put_nowait(core.OffloadFinished(False, why or ""))
            self.emit("offload-failed", b.n, camera=camera_id, error=why, **summary)

    # -----------------------------------------------------------------------------------------
    # The pre-shift function test (REG-3.2)

    def _can_test(self, b: _Bay) -> bool:
        return b.tty is not None and b.state.docked and b.state.camera_id is not None

    async def _function_test(self, b: _Bay) -> None:
        """Button → test → LED → records; on failure the duty log, the supervisor (an event)
        and a tested spare."""
        try:
            await self._run_function_test(b)
        except Exception as exc:  # bulkhead: the bay shows the failure, nothing else breaks
            log.exception("bay %d function test crashed", b.n)
            b.queue.put_nowait(core.TestFinished(False, f"test could not run: {exc!r}"))

    async def _run_function_test(self, b: _Bay) -> None:
        st = self.cfg.selftest
        policy = Policy(
            min_battery=st.min_battery,
            max_drift_after_sync=st.max_drift_after_sync,
            longest_slot_seconds=self.cfg.slots.longest_seconds(),
            allowed_firmware=st.allowed_firmware,
        )
        assert b.tty is not None
        link = CameraLink(b.tty)
        try:
            answers, verdict = await run_function_test(link, policy, self.cfg.cameras.__contains__)
        finally:
            link.close()
        serial = b.state.serial
        camera = self.cfg.cameras.get(serial or "")
        officer = self._officer_json(serial)
        checks = [
            {"name": c.name, "ok": c.ok, "value": c.value, "reason": c.reason}
            for c in verdict.checks
        ]
        battery = None
        if answers.battery is not None and answers.battery.get("percent", "").isdigit():
            battery = int(answers.battery["percent"])
        # Pulled mid-test: the row records the aborted test; no duty-log entry, no spare.
        interrupted = b.state.phase is not Phase.TESTING
        spare = None if verdict.passed or interrupted else await self._pick_spare(b)
        slot = self.cfg.slots.slot_of(datetime.now(self.cfg.tz))
        camera_id = camera.id if camera else None

        def write() -> None:
            with write_txn(self.outbox.db()) as db:
                test_id = (
                    db.table("selftests")
                    .insert(
                        {
                            "time": utcnow(),
                            "station": self.cfg.station_id,
                            "bay": b.n,
                            "camera_id": camera_id,
                            "usb_serial": serial,
                            "officer_badge": officer["badge"] if officer else None,
                            "officer_name": officer["name"] if officer else None,
                            "passed": int(verdict.passed),
                            "checks": json.dumps(checks, ensure_ascii=False),
                            "drift_before": answers.drift_before,
                            "drift_after": answers.drift_after,
                            "battery": battery,
                        }
                    )
                    .last_pk
                )
                if interrupted:
                    return
                if verdict.passed:
                    record_event(
                        db,
                        self.topics,
                        EventType.SELFTEST_PASSED,
                        bay=b.n,
                        camera=camera_id,
                        officer=officer,
                        data={
                            "checks": checks,
                            "drift_before": answers.drift_before,
                            "drift_after": answers.drift_after,
                        },
                    )
                    return
                who = officer["name"] if officer else "unassigned officer"
                notice = (
                    f"Camera {camera_id} of {who} failed its pre-shift test at bay {b.n}: "
                    f"{verdict.summary()}. Report it for repair (REG-3.2)."
                )
                entry = notice + (
                    f" Spare {spare.state.camera_id} (bay {spare.n}) issued."
                    if spare
                    else " No tested spare was available."
                )
                if spare and officer is None:
                    # Nobody to file the spare's footage under: it keeps its own assignment.
                    entry += " No loan recorded: the failed camera has no assigned officer."
                db.table("duty_log").insert(
                    {
                        "time": utcnow(),
                        "officer_badge": officer["badge"] if officer else None,
                        "officer_name": officer["name"] if officer else None,
                        "camera_id": camera_id,
                        "entry": entry,
                        "spare_camera_id": spare.state.camera_id if spare else None,
                        "selftest_id": test_id,
                    }
                )
                record_event(
                    db,
                    self.topics,
                    EventType.SELFTEST_FAILED,
                    bay=b.n,
                    camera=camera_id,
                    officer=officer,
                    data={
                        "checks": checks,
                        "failed": [c.name for c in verdict.failed],
                        "supervisor_notice": notice,
                        "spare": spare.state.camera_id if spare else None,
                    },
                )
                if spare is not None and officer is not None:
                    db.table("loans").insert(
                        {
                            "time": utcnow(),
                            "spare_camera_id": spare.state.camera_id,
                            "officer_badge": officer["badge"],
                            "officer_name": officer["name"],
                            "duty_slot": slot.label,
                        }
                    )
                    record_event(
                        db,
                        self.topics,
                        EventType.SPARE_ASSIGNED,
                        bay=spare.n,
                        camera=spare.state.camera_id,
                        officer=officer,
                        data={"for_bay": b.n, "failed_camera": camera_id, "duty_slot": slot.label},
                    )

        await self.outbox.call(write)
        self._wake_publisher()
        b.queue.put_nowait(core.TestFinished(verdict.passed, verdict.summary()))
        if spare is not None:
            who = officer["name"] if officer else f"the officer of {camera_id}"
            spare.queue.put_nowait(core.TakeMe(who))

    async def _pick_spare(self, failing: _Bay) -> _Bay | None:
        """A docked spare, idle, that passed its own test recently with a charged battery."""
        candidates = []
        for b in self.bays.values():
            camera = self.cfg.cameras.get(b.state.serial or "")
            if b is failing or camera is None or not camera.spare or not b.state.docked:
                continue
            if b.state.phase in (Phase.DONE, Phase.TEST_PASSED):
                candidates.append((b, camera.id))
        if not candidates:
            return None
        since = datetime.now(UTC) - timedelta(hours=self.cfg.selftest.spare_max_age_hours)
        since_text = since.isoformat().replace("+00:00", "Z")
        least = self.cfg.selftest.min_battery

        def qualifies(camera_id: str) -> bool:
            last = one(
                self.outbox.db(),
                "SELECT passed, battery, time FROM selftests "
                "WHERE camera_id = ? ORDER BY id DESC LIMIT 1",
                (camera_id,),
            )
            return bool(
                last
                and last["passed"]
                and (last["battery"] or 0) >= least
                and last["time"] >= since_text
            )

        for b, camera_id in candidates:
            if await self.outbox.call(qualifies, camera_id):
                return b
        return None

    async def _loan_officer(self, camera_id: str) -> dict[str, str] | None:
        """The borrower of a lent spare (open loan), whose name its footage is filed under."""

        def read() -> dict[str, str] | None:
            row = one(
                self.outbox.db(),
                "SELECT officer_badge, officer_name FROM loans WHERE "
                "spare_camera_id = ? AND returned_at IS NULL ORDER BY id DESC LIMIT 1",
                (camera_id,),
            )
            if row is None:
                return None
            known = self.cfg.officers.get(row["officer_badge"])
            unit = known.unit if known else self.cfg.unit
            return {"badge": row["officer_badge"], "name": row["officer_name"], "unit": unit}

        result: dict[str, str] | None = await self.outbox.call(read)
        return result

    async def _return_loan(self, camera_id: str) -> None:
        def write() -> None:
            with write_txn(self.outbox.db()) as db:
                db.execute(
                    "UPDATE loans SET returned_at = ? WHERE spare_camera_id = ? "
                    "AND returned_at IS NULL",
                    (utcnow(), camera_id),
                )

        await self.outbox.call(write)

    async def _outbox_full(self) -> str | None:
        """Past the configured bound of undelivered events the station takes no new offloads:
        nothing may happen that could not be recorded, and nothing recorded is dropped."""
        if self.cfg.mqtt is None:
            return None
        waiting = await self.outbox.call(self.outbox.undelivered)
        if waiting < self.cfg.mqtt.outbox_limit:
            return None
        msg = (
            f"event outbox full ({waiting} undelivered): the station server has been "
            "unreachable too long; offloads wait until events are delivered"
        )
        log.error(msg)
        notify("STATUS=ALARM " + msg)
        return msg

    def _on_progress(self, b: _Bay, kind: str, data: dict[str, Any]) -> None:
        if kind in ("session-started", "file-verified", "file-cleared", "session-ended"):
            self._wake_publisher()  # the engine committed an event with that change
        o = b.offload
        if kind == "session-started":
            o.bytes_total = data["bytes"]
            b.queue.put_nowait(core.OffloadStarted(data["files"], data["bytes"]))
        elif kind == "bytes":
            o.per_file[data["source"]] = data["done"]
            done = sum(o.per_file.values())
            b.queue.put_nowait(core.Progress(done, o.files_done))
            # The server hears of progress in tenths, not per chunk.
            tenth = min(10, done * 10 // o.bytes_total) if o.bytes_total else 0
            if tenth > o.tenths_sent:
                o.tenths_sent = tenth
                self.record(
                    EventType.OFFLOAD_PROGRESS,
                    b.n,
                    percent=tenth * 10,
                    bytes=done,
                    total=o.bytes_total,
                )
        elif kind in ("file-verified", "file-failed"):
            o.files_done += 1
            b.queue.put_nowait(core.Progress(sum(o.per_file.values()), o.files_done))
            if kind == "file-verified":
                self.emit(
                    "file-verified",
                    b.n,
                    source=data["source"],
                    sha256=data["sha256"],
                    path=data["path"],
                )
        elif kind == "file-cleared":
            self.emit("camera-cleared-file", b.n, source=data["source"])

    # -----------------------------------------------------------------------------------------

    async def _watchdog(self) -> None:
        """WATCHDOG=1 while the loop turns and every bay task is alive."""
        interval = watchdog_interval()
        if interval is None:
            return
        while True:
            await asyncio.sleep(interval)
            tasks = {t.get_name() for t in asyncio.all_tasks()}
            if all(f"bay[{n}].events" in tasks for n in self.bays):
                notify("WATCHDOG=1")
            else:
                log.error("a bay task is gone: withholding the watchdog ping")


def _poster(queue: asyncio.Queue[core.Event], event: core.Event) -> Callable[[], None]:
    return lambda: queue.put_nowait(event)


def bay_state_json(station: str, s: BayState) -> str:
    """A bay's retained state message (docs/asyncapi.yaml, BayState)."""
    return json.dumps(
        {
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


def _log_failure(future: Future[None]) -> None:
    """An event that could not be recorded must not vanish silently."""
    if (exc := future.exception()) is not None:
        log.error("event could not be recorded in the outbox: %r", exc)
