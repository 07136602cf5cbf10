"""Docking: hotplug → bay → registered camera? → mount → offload → unmount (REG-2, REG-4.1.2).

udev events are routed to the bay that owns their USB port. Storage that is not a registered
camera is never mounted or read (REG-2). A registered camera's filesystem is mounted
``nosuid,nodev,noexec``, offloaded by the engine on its own thread (verify, catalog, clear), and
unmounted; the engine's typed progress drives the bay and, in tenths, the station server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from sqlite_utils import Database

from camdock.adapters import fsio
from camdock.adapters.drives import StorageMissing, abort_stalled
from camdock.adapters.systemd import notify
from camdock.adapters.udev import HotplugEvent
from camdock.aio import in_daemon_thread
from camdock.catalog import custody, outbox, selftests
from camdock.catalog.db import write_txn
from camdock.config import Config
from camdock.core import bay as core
from camdock.core import schedule
from camdock.core.attribution import Attribution
from camdock.errors import CatalogError, MountError, OffloadRefused
from camdock.events import EventContext, EventType, Progress
from camdock.model import FILESYSTEMS, Camera, Drive, Officer
from camdock.offload import ABORT_WAIT, STOP_WAIT, OffloadEngine, OffloadRequest
from camdock.services.attribute import history_for, registered_from
from camdock.services.audit import heads_to
from camdock.station.admission import Admission, Withdrawn
from camdock.station.bays import BayRuntime, OffloadRun, Spawn, StationContext
from camdock.station.progress import ProgressRouter

__all__ = ["NO_FILESYSTEM_AFTER", "SETTLED", "Docking", "Mounter"]

log = logging.getLogger(__name__)

SETTLED = "settled"  # a HotplugEvent action: cold-plug enumeration is complete
NO_FILESYSTEM_AFTER = 5.0  # seconds a camera disk may take to show a partition with a filesystem
REMOVE_GRACE = 3.0  # seconds udev's "remove" may lag behind a vanished device node


class Mounter(Protocol):
    """Mounts camera volumes (mount(8) on a station, directories in the simulator)."""

    async def mount(self, devnode: str, fs_type: str, target: Path) -> Path:
        """Mount ``devnode`` at ``target``; returns the mounted root."""
        ...

    async def unmount(self, target: Path) -> None:
        """Unmount ``target`` (lazily when busy)."""
        ...


# A finished bay whose camera's partition shows again stays as it is (_camera_filesystem).
_FINISHED = frozenset({core.Phase.DONE, core.Phase.TEST_PASSED, core.Phase.TEST_FAILED,
                       core.Phase.TAKE_ME})  # fmt: skip


class Docking:
    """Routes hotplug events to bays and runs each bay's offload."""

    def __init__(
        self,
        station: StationContext,
        mounter: Mounter,
        admission: Admission,
        *,
        spawn: Spawn,
        storage_lost: Callable[[StorageMissing], None],
        read_bps: int | None = None,
    ) -> None:
        self.st = station
        self.events = station.events
        self.mounter = mounter
        # Engines block a thread each for a whole offload (camdock.aio.in_daemon_thread: a
        # stalled camera read must not hold the process past systemd's stop timeout), so the
        # bus scheduler decides whose runs now.
        self.admission = admission
        self.progress = ProgressRouter(station.events, admission)
        self._spawn = spawn  # a task in the station's task group
        self._storage_lost = storage_lost  # a drive (or the state disk) went missing
        self._read_bps = read_bps
        # What was seen where, by devpath and by device number (a real kernel's remove event
        # may carry only MAJOR, MINOR, DEVNAME and DEVTYPE).
        self._devpath_bay: dict[str, int] = {}
        # Each bay's storage whose device node vanished under its offload (review4): that
        # device is gone, whatever shows under its name later.
        self._vanished: dict[int, HotplugEvent] = {}

    def close(self) -> None:
        """Cancel running engines: they stop at a resumable point."""
        for b in self.st.bays.values():
            if b.offload.engine is not None:
                b.offload.engine.cancel()

    # -----------------------------------------------------------------------------------------
    # Hotplug

    def on_hotplug(self, ev: HotplugEvent) -> None:
        """Route one udev event to its bay."""
        if ev.action == SETTLED:
            return
        if ev.action == "remove":
            self._removed(ev)
            return
        bay = self.st.cfg.bay_for(ev.port, ev.id_path)
        if bay is None:
            log.info("ignored %s on USB port %s: no bay owns that port", ev.devnode, ev.port)
            return
        b = self.st.bays[bay.number]
        if ev.subsystem == "tty":
            self._remember(ev, b.n)
            b.tty = ev.devnode
            return
        camera = self.st.cfg.cameras.get(ev.serial or "")
        if camera is None:
            self._unregistered(b, ev)
        elif not ev.fs_type:
            if ev.devtype == "disk" and b.storage is None and b.disk_waiting is None:
                # A camera disk comes first; its partition with a filesystem should follow.
                # Remembered now, so pulling it before then cancels the wait.
                self._remember(ev, b.n)
                loop = asyncio.get_running_loop()
                b.disk_waiting = loop.call_later(NO_FILESYSTEM_AFTER, self._no_filesystem, b, ev)
                b.disk_pending = ev
        else:
            self._camera_filesystem(b, ev, camera)

    def _remember(self, ev: HotplugEvent, bay: int) -> None:
        self._devpath_bay[ev.devpath] = bay
        if ev.devnum:
            self._devpath_bay[f"dev:{ev.devnum}"] = bay

    def _removed(self, ev: HotplugEvent) -> None:
        n = self._devpath_bay.pop(ev.devpath, None)
        by_number = self._devpath_bay.pop(f"dev:{ev.devnum}", None) if ev.devnum else None
        n = n if n is not None else by_number
        if n is None:
            return
        b = self.st.bays[n]
        pending = b.disk_pending
        if pending is not None and _same_device(pending, ev):
            if b.disk_waiting is not None:  # pulled before its filesystem showed: forget it
                b.disk_waiting.cancel()
            b.disk_waiting = b.disk_pending = None
            return
        if b.storage is not None and _same_device(b.storage, ev):
            b.storage = None
            b.queue.put_nowait(core.Undocked())
            self.events.record(EventType.CAMERA_REMOVED, b.n, phase=b.state.phase.value)
        elif ev.subsystem == "tty":
            b.tty = None

    def _remove_lost(self, b: BayRuntime, storage: HotplugEvent) -> None:
        """The camera's device node vanished under its offload and udev's "remove" has not come
        (the kernel drops events when the daemon's buffer overflows, at a busy shift end): it is
        taken as pulled, so the bay shows "interrupted", not "offloading" for ever. A node back
        under the same name is another device (the camera re-enumerated), not this one (review4)."""
        if b.storage is storage:
            log.warning("bay %d: %s vanished and udev never said so; taken as pulled",
                        b.n, storage.devnode)  # fmt: skip
            self._removed(replace(storage, action="remove"))

    def _unregistered(self, b: BayRuntime, ev: HotplugEvent) -> None:
        """REG-2: storage that is not a registered camera is never mounted or read."""
        if not (ev.devtype == "disk" or ev.fs_type):
            return
        self._remember(ev, b.n)
        if b.storage is None:
            b.storage = ev
            b.queue.put_nowait(core.Docked(ev.serial or "?", None))
            self.events.record(
                EventType.UNKNOWN_DEVICE,
                b.n,
                usb_serial=ev.serial,
                vendor=ev.vendor_id,
                product=ev.product_id,
            )

    def _camera_filesystem(self, b: BayRuntime, ev: HotplugEvent, camera: Camera) -> None:
        if ev.action == "add" and b.storage is not None and self._vanished.get(b.n) is b.storage:
            # The camera whose node vanished is back, re-enumerated, its "remove" lost: the old
            # device is pulled, this is a new dock (not "the same partition again", review4).
            self._remove_lost(b, b.storage)
        if b.storage is not None and b.storage.devpath != ev.devpath:
            if b.storage.usb_parent == ev.usb_parent and ev.action == "add":
                b.queue.put_nowait(
                    core.Failed(
                        f"camera {camera.id} shows more than one filesystem "
                        f"({b.storage.devnode}, {ev.devnode}); not guessing which holds the footage"
                    )
                )
            return
        if b.storage is not None and (
            b.state.phase in core.BUSY
            or (b.state.phase in _FINISHED and b.storage.serial == ev.serial)
        ):
            # The same partition again (udev "change", a probe): already being handled, or
            # done with; a re-run would only hide the bay's result. Another camera's partition
            # on a finished bay's port (its "remove" lost) is a new dock (review2).
            return
        if b.disk_waiting is not None:
            b.disk_waiting.cancel()
            b.disk_waiting = b.disk_pending = None
        self._remember(ev, b.n)
        b.storage = ev
        officer = self.st.cfg.officer_for(camera)
        b.queue.put_nowait(
            core.Docked(ev.serial or "", camera.id, officer.name if officer else None)
        )
        self.events.record(
            EventType.CAMERA_DOCKED,
            b.n,
            camera=camera.id,
            serial=camera.serial,
            usb_serial=camera.serial,
            ownership=camera.ownership,
            fs=ev.fs_type,
        )

    def _no_filesystem(self, b: BayRuntime, disk: HotplugEvent) -> None:
        b.disk_waiting = b.disk_pending = None
        if b.storage is None:
            self._remember(disk, b.n)
            b.storage = disk
            b.queue.put_nowait(core.Failed("registered camera shows no filesystem"))

    # -----------------------------------------------------------------------------------------
    # Offload

    def start_offload(self, b: BayRuntime) -> None:
        """Start the bay's offload for this dock. A run told to stop that is still winding down
        (the camera pulled and docked again within a second or two: its engine stopping, its
        volume being unmounted) is waited for first; both would use the bay's one mount point.
        So is a run that has given the bay its outcome (storage missing, done, failed: ``_end``)
        and still unmounts. A run still under way simply goes on: one engine per bay."""
        before = b.offload.task
        if before is not None and not before.done() and not b.offload.stopped:
            return
        b.offload = run = OffloadRun()
        run.task = self._spawn(self._offload(b, run, before), f"bay[{b.n}].offload")

    def stop_offload(self, b: BayRuntime) -> None:
        """What is verified stays; the rest stays on the camera."""
        b.offload.stopped = True
        if b.offload.engine is not None:
            b.offload.engine.cancel()
        else:
            self.admission.withdraw(b.n)  # if it waits for its bus: not until its turn

    @staticmethod
    def _end(b: BayRuntime, run: OffloadRun, outcome: core.Event) -> bool:
        """The run's outcome to its bay, once; after it the run only winds down (unmounts), so a
        dock that starts an offload again (a drive back, another camera) chains after it. A run
        told to stop keeps its outcome: the bay may already show the next dock (review3)."""
        told = run.stopped
        run.stopped = True
        if not told:
            b.queue.put_nowait(outcome)
        return not told

    async def _offload(
        self, b: BayRuntime, run: OffloadRun, before: asyncio.Task[None] | None
    ) -> None:
        if before is not None:
            await asyncio.wait({before})  # its outcome was its own bay's business
            if run.stopped:
                return  # pulled again while waiting
        storage = b.storage
        camera = self.st.cfg.cameras.get(storage.serial or "") if storage else None
        if storage is None or camera is None or storage.devnode is None:
            self._end(b, run, core.Failed("camera vanished before it could be mounted"))
            return
        if storage.fs_type not in FILESYSTEMS:
            self._end(b, run, core.Failed(f"camera filesystem {storage.fs_type!r} refused"))
            return
        target = self.st.cfg.run_dir / "bays" / str(b.n)
        try:
            if error := await self._outbox_full():
                self._end(b, run, core.Failed(error))
                return
            # The catalog thread is FIFO: once this runs, the "camera-docked" event is
            # committed, so the engine's events follow it in sequence. One round trip fetches
            # what the request needs (with eight bays docking at once, each trip waits behind
            # the others' event writes).
            facts = await self.st.store.call(
                _dock_facts, self.st.base_cfg, self.st.cfg.officers, camera
            )
            try:
                source = await self.mounter.mount(storage.devnode, storage.fs_type, target)
            except MountError as exc:
                if self._end(b, run, core.Failed(str(exc))):
                    self.events.record(EventType.OFFLOAD_FAILED, b.n, error=str(exc), stage="mount")
                return
            try:
                # Mounted first, so a queue knows each camera's size (shortest first); a camera
                # that can start at once is not measured.
                bus = b.cfg.bus or schedule.bus_of(storage.port, storage.id_path)
                size = 0
                if self.admission.would_wait(bus):
                    size = await asyncio.to_thread(_camera_bytes, source)
                if run.stopped:
                    return  # pulled while it mounted or was measured: it does not queue
                async with self.admission.turn(b.n, bus, size):
                    if b.storage is not storage or run.stopped:
                        return  # pulled (or replaced) as its turn came
                    await self._run_engine(b, run, source, camera, facts)
            except Withdrawn:
                return  # pulled while it waited for its turn (stop_offload)
            finally:
                await self.mounter.unmount(target)
        except Exception as exc:  # bulkhead: the bay faults, the camera keeps its footage
            log.exception("bay %d offload crashed", b.n)
            self._end(b, run, core.Failed(f"offload crashed: {exc!r}"))

    async def _publish_head(self, roots: list[str]) -> None:
        try:
            seq, digest = await self.st.store.call(custody.head)
            await asyncio.to_thread(heads_to, roots, seq, digest)
        except Exception:  # bulkhead: a head not written is logged; the next one follows
            log.exception("custody head not written to the drives")

    def _request(
        self, b: BayRuntime, source: Path, camera: Camera, facts: _DockFacts
    ) -> OffloadRequest:
        """The engine's request."""
        cfg = self.st.cfg
        officer = cfg.officer_for(camera)
        officer_json = self.events.officer_json(b.state.serial)
        loan = facts.loan
        if loan is not None:
            # A lent spare: its footage is the borrower's (REG-4.2.4).
            known = cfg.officers.get(loan.officer_badge)
            officer = Officer(
                loan.officer_badge, loan.officer_name, known.unit if known else cfg.unit
            )
            officer_json = officer.as_json()
        request = OffloadRequest(
            source=source,
            destinations=(cfg.footage, cfg.backup),
            camera_id=camera.id,
            officer_name=officer.name if officer else "unassigned",
            officer_badge=officer.badge if officer else "none",
            unit=officer.unit if officer else cfg.unit,
            catalog=cfg.catalog,
            slots=cfg.slots,
            tz=cfg.tz,
            clear=True,  # REG-4.1.2: the engine clears only what is verified and catalogued
            read_bps=self._read_bps,
            # REG-4.2.1/4.2.6: each root proven to be its drive before anything is written;
            # a development station (require_mounts = false) has plain directories.
            drives=cfg.drives if cfg.require_mounts else (),
            allow_one_filesystem=not cfg.require_mounts,
            events=EventContext(self.events.topics, b.n, camera.id, officer_json),
            attribution=facts.attribution,
            not_before=registered_from(camera, cfg.tz),
            retention=cfg.retention,
        )
        return request

    async def _run_engine(
        self, b: BayRuntime, run: OffloadRun, source: Path, camera: Camera, facts: _DockFacts
    ) -> None:
        loop = asyncio.get_running_loop()
        request = self._request(b, source, camera, facts)
        lent = facts.loan is not None

        def progress(event: Progress) -> None:
            # Called on the engine's threads; the bay's state lives on the loop.
            loop.call_soon_threadsafe(self.progress, b, run, event)

        engine = OffloadEngine(request, progress=progress)
        run.engine = engine
        self.events.emit("offload-started", b.n, camera=camera.id)
        running = in_daemon_thread(engine.run, f"bay[{b.n}].engine")
        try:
            report = await asyncio.shield(running)
        except StorageMissing as exc:
            # REG-4.2.1: nothing written, nothing cleared; the bay waits for the drive.
            self._end(b, run, core.StorageLost(str(exc)))
            self._storage_lost(exc)
            return
        except CatalogError as exc:
            # The state disk is full (or failing): nothing that could not be recorded happens;
            # the bay waits, and resumes when the watcher finds space again.
            state = StorageMissing(Drive("state", self.st.cfg.state_dir), str(exc))
            self._end(b, run, core.StorageLost(str(state)))
            self._storage_lost(state)
            return
        except OffloadRefused as exc:
            if self._end(b, run, core.Failed(str(exc))):
                self.events.record(EventType.OFFLOAD_FAILED, b.n, error=str(exc), stage="start")
            return
        except asyncio.CancelledError:
            # SIGTERM: stop soon and wait for the engine, so the unmount that follows finds the
            # volume idle; what is done stays done, the rest resumes on the next dock.
            engine.cancel()
            try:
                async with asyncio.timeout(STOP_WAIT):
                    await asyncio.gather(running, return_exceptions=True)
            except TimeoutError:
                log.error(
                    "bay %d: the camera's reads are stalled; stopping without waiting for them "
                    "(what was verified stays, the rest stays on the camera)",
                    b.n,
                )
                # A stalled FUSE driver would hold the process even past exit: let go of it.
                done = await asyncio.to_thread(abort_stalled, source)
                if done:
                    log.error("bay %d: %s", b.n, done)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(ABORT_WAIT):
                        await asyncio.gather(running, return_exceptions=True)
            raise
        run.report = report
        # Invariant 6: the chain's head onto both drives, in a thread of its own (an fsync on a
        # busy drive must hold up neither this officer nor the other bays' catalog writes).
        self._spawn(self._publish_head([str(d) for d in request.destinations]),
                      f"bay[{b.n}].head")  # fmt: skip
        summary = report.totals()
        pulled = b.storage is None or not Path(b.storage.devnode or "").exists()
        if report.cancelled or run.stopped or pulled:
            if pulled and b.storage is not None:
                self._vanished[b.n] = b.storage
                loop.call_later(REMOVE_GRACE, self._remove_lost, b, b.storage)
            return  # pulled or stopping: the bay shows "interrupted" from the udev remove
        if report.ok:
            if lent:
                await self.st.store.call(_return_loan, camera.id)
            if self._end(b, run, core.OffloadFinished(True, f"{summary['verified']} files")):
                self.events.emit("offload-completed", b.n, camera=camera.id, **summary)
        else:
            failed = next((f for f in report.files if not f.verified or not f.cleared), None)
            why = failed.error if failed and failed.error else "not every file verified"
            if self._end(b, run, core.OffloadFinished(False, why or "")):
                self.events.emit("offload-failed", b.n, camera=camera.id, error=why, **summary)

    async def _outbox_full(self) -> str | None:
        """Past the configured bound of undelivered events the station takes no new offloads:
        nothing may happen that could not be recorded, and nothing recorded is dropped."""
        mqtt = self.st.cfg.mqtt
        if mqtt is None:
            return None
        waiting = await self.st.store.call(outbox.undelivered)
        if waiting < mqtt.outbox_limit:
            return None
        msg = (
            f"event outbox full ({waiting} undelivered): the station server has been "
            "unreachable too long; offloads wait until events are delivered"
        )
        log.error(msg)
        notify("STATUS=ALARM " + msg)
        return msg


@dataclass(frozen=True)
class _DockFacts:
    """What the catalog says about a docked camera: an open loan, its assignment history."""

    loan: selftests.Loan | None
    attribution: Attribution


def _dock_facts(
    db: Database, base: Config, officers: dict[str, Officer], camera: Camera
) -> _DockFacts:
    return _DockFacts(selftests.open_loan(db, camera.id), history_for(db, base, officers, camera))


def _same_device(seen: HotplugEvent, removed: HotplugEvent) -> bool:
    """A remove event is about this device: same devpath, or same device number."""
    return seen.devpath == removed.devpath or (
        seen.devnum is not None and seen.devnum == removed.devnum
    )


def _return_loan(db: Database, camera_id: str) -> None:
    with write_txn(db):
        selftests.return_loan(db, camera_id)


def _camera_bytes(source: Path) -> int:
    """What there is to offload on a mounted camera (its files' sizes; the engine rescans)."""
    try:
        files, _ = fsio.scan_source(source)
    except OSError:
        return 0
    return sum(f.size for f in files)
