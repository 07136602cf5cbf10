"""Hostile review 3 of the re-dock chaining (861dc7a, branch review3): a camera docked again
while its pulled run still winds down. Each finding's test failed before its fix; the others
show what was tried and held (REG-4.1.2, REG-4.2.1)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
from pathlib import Path

import pytest

from camdock.adapters.drives import StorageMissing
from camdock.core.bay import Phase
from camdock.errors import MountError
from camdock.events import BytesCopied
from camdock.model import Drive
from camdock.sim.hotplug import SimMounter, fill_camera
from camdock.station import jobs
from camdock.station.bays import BayRuntime
from conftest import needs_root, tree_hashes
from test_drives import two_drives
from test_station import BUTTON, START, Harness, running


class WatchedMounter(SimMounter):
    """The sim mounter, watched: how many volumes are mounted at once (an engine runs only
    while its volume is), and unmounts held until ``free`` (a busy volume letting go)."""

    def __init__(self, held: bool = True) -> None:
        self.free = asyncio.Event()
        if not held:
            self.free.set()
        self.unmounting = asyncio.Event()
        self.on: dict[Path, int] = {}  # mount point → volumes mounted there now
        self.peak = 0

    @property
    def mounted(self) -> int:
        return sum(self.on.values())

    async def mount(self, devnode: str, fs_type: str, target: Path) -> Path:
        root = await super().mount(devnode, fs_type, target)
        self.on[target] = self.on.get(target, 0) + 1
        self.peak = max(self.peak, self.on[target])
        return root

    async def unmount(self, target: Path) -> None:
        self.unmounting.set()
        try:
            await self.free.wait()
        finally:
            self.on[target] -= 1


def _camera(vol: Path, files: int = 4, size: int = 1 << 20, seed: int = 1) -> set[str]:
    """A camera's recordings (fill_camera); their SHA-256s."""
    fill_camera(vol, files=files, size=size, seed=seed, start=START)
    return set(tree_hashes(vol).values())


async def _docked_a_third_in(h: Harness, vol: Path, serial: str = "SN0001") -> BayRuntime:
    """Bay 1 with ``vol`` docked, once its offload is past 30 %."""
    b = h.bay(1)
    h.hot.dock("1-1", serial, vol)
    await h.until(lambda: b.state.progress > 0.3)
    return b


def _all_offloaded(tmp_path: Path, vol: Path, shas: set[str]) -> None:
    """The camera cleared, every recording on both drives."""
    assert tree_hashes(vol) == {}
    assert set(tree_hashes(tmp_path / "footage").values()) == shas
    assert set(tree_hashes(tmp_path / "backup").values()) == shas


async def test_rapid_redocks_of_two_cameras_share_the_bay_one_at_a_time(tmp_path: Path) -> None:
    """Pulled mid-offload, then another camera and the first docked and pulled in turn while
    the first run still unmounts: one volume (so one engine) on the bay at any moment, the last
    dock offloaded to DONE, nothing lost from either camera, only verified files cleared."""
    cam1, cam2 = tmp_path / "cam1", tmp_path / "cam2"
    shas1, shas2 = _camera(cam1), _camera(cam2, files=2, size=1 << 18, seed=2)
    mounter = WatchedMounter()
    async with running(tmp_path, read_bps=3_000_000, mounter=mounter) as h:
        b = await _docked_a_third_in(h, cam1)
        h.hot.undock("1-1")
        await asyncio.wait_for(mounter.unmounting.wait(), 10)
        for serial, vol in (("SN0002", cam2), ("SN0001", cam1), ("SN0002", cam2)):
            h.hot.dock("1-1", serial, vol)  # all at once: the bay takes them in order
            h.hot.undock("1-1")
        h.hot.dock("1-1", "SN0002", cam2)
        await h.until(lambda: b.state.phase is Phase.IDENTIFYING and b.state.camera_id == "CAM0002")
        await asyncio.sleep(0.2)
        assert mounter.mounted == 1 and b.offload.engine is None  # the pulled run still holds it
        mounter.free.set()
        await h.until(lambda: b.state.phase in (Phase.DONE, Phase.FAULT))
        assert b.state.phase is Phase.DONE and b.state.camera_id == "CAM0002", b.state
        assert tree_hashes(cam2) == {}
        left1 = set(tree_hashes(cam1).values())
        footage = set(tree_hashes(tmp_path / "footage").values())
        assert left1 and shas1 == left1 | (footage & shas1)  # each of cam1's, somewhere
        assert not left1 & footage  # cleared only what was verified
        h.hot.undock("1-1")
        await h.until(lambda: b.state.phase is Phase.EMPTY)
        h.hot.dock("1-1", "SN0001", cam1)
        await h.until(lambda: b.state.phase in (Phase.DONE, Phase.FAULT))
        assert b.state.phase is Phase.DONE, b.state
        assert mounter.peak == 1
    assert not [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("bay[")]
    assert tree_hashes(cam1) == {}
    assert set(tree_hashes(tmp_path / "footage").values()) == shas1 | shas2
    assert set(tree_hashes(tmp_path / "backup").values()) == shas1 | shas2


async def test_a_faulted_bay_acknowledged_and_redocked_at_once_offloads_once(
    tmp_path: Path,
) -> None:
    """Mid-offload the camera shows a second filesystem: the bay faults and its run is told to
    stop. Acknowledged (long press) and docked again while that run still unmounts, the new run
    goes after it and takes everything; one volume on the bay at a time."""
    vol = tmp_path / "cam1"
    shas = _camera(vol)
    mounter = WatchedMounter()
    async with running(tmp_path, read_bps=3_000_000, mounter=mounter) as h:
        b = await _docked_a_third_in(h, vol)
        first = h.hot._docked["1-1"]  # the same camera's second partition, as udev sends it
        second = dataclasses.replace(first, devpath=first.devpath + "2", devnode=str(vol) + "2")
        h.hot._queue.put_nowait(second)
        await h.until(lambda: b.state.phase is Phase.FAULT)
        await asyncio.wait_for(mounter.unmounting.wait(), 10)
        button = h.factory.pin(BUTTON)
        button.drive_low()  # held: acknowledged
        await h.until(lambda: b.state.phase is Phase.INTERRUPTED)
        button.drive_high()
        h.hot.undock("1-1")
        h.hot.dock("1-1", "SN0001", vol)
        await h.until(lambda: b.state.phase is Phase.IDENTIFYING)
        assert mounter.mounted == 1 and b.offload.engine is None
        mounter.free.set()
        await h.until(lambda: b.state.phase in (Phase.DONE, Phase.FAULT))
        assert b.state.phase is Phase.DONE, b.state
        assert mounter.peak == 1
    _all_offloaded(tmp_path, vol, shas)


async def test_stopping_while_a_redocked_run_waits_for_the_pulled_one(tmp_path: Path) -> None:
    """The station stopped (SIGTERM) while the re-docked run waits for the pulled one to let go:
    both tasks end (the harness fails a hung stop), the camera keeps what was not verified."""
    vol = tmp_path / "cam1"
    shas = _camera(vol)
    mounter = WatchedMounter()
    async with running(tmp_path, read_bps=3_000_000, mounter=mounter) as h:
        b = await _docked_a_third_in(h, vol)
        h.hot.undock("1-1")
        await asyncio.wait_for(mounter.unmounting.wait(), 10)
        old = b.offload.task
        h.hot.dock("1-1", "SN0001", vol)
        await h.until(lambda: b.state.phase is Phase.IDENTIFYING)
        chained = b.offload.task
        assert old is not None and chained is not None and chained is not old
    assert old.done() and chained.done()
    footage = set(tree_hashes(tmp_path / "footage").values())
    assert shas == set(tree_hashes(vol).values()) | footage


async def test_a_pulled_runs_late_progress_is_its_own_cameras(tmp_path: Path) -> None:
    """Finding (REG-7.1): the pulled run's engine, still stopping, reports its last chunk after
    another officer's camera is docked on the bay. Its progress still went to the server, but
    filed under the bay's camera and officer of the moment: CAM0002 and 李美玲 were told about
    60 % of CAM0001's offload. It carries the camera and officer of its own run; the new dock's
    state is untouched."""
    cam1, cam2 = tmp_path / "cam1", tmp_path / "cam2"
    _camera(cam1)
    _camera(cam2, files=1, size=1 << 16, seed=2)
    mounter = WatchedMounter()
    async with running(tmp_path, read_bps=3_000_000, mounter=mounter) as h:
        b = await _docked_a_third_in(h, cam1)
        h.hot.undock("1-1")
        await asyncio.wait_for(mounter.unmounting.wait(), 10)
        stale = b.offload
        h.hot.dock("1-1", "SN0002", cam2)
        await h.until(lambda: b.state.phase is Phase.IDENTIFYING and b.state.camera_id == "CAM0002")
        before = b.state
        # What the stopping engine's thread handed the loop (call_soon_threadsafe) last.
        h.station.docking.progress(b, stale, BytesCopied("DCIM/100MEDIA/x.MP4", 1 << 23))
        assert b.state == before and b.queue.empty()
        await h.station.store.call(lambda db: None)  # every event before this is committed
        rows = h.catalog("SELECT payload FROM outbox WHERE topic LIKE '%/offload-progress'")
        last = json.loads(rows[-1][0])
        assert last["data"]["percent"] == 100
        assert (last["camera"], last["officer"]["name"]) == ("CAM0001", "王小明"), last
        mounter.free.set()
        await h.until(lambda: b.state.phase is Phase.DONE)


async def test_a_run_waiting_its_turn_through_a_drive_alarm_and_a_redock_runs_once(
    tmp_path: Path,
) -> None:
    """Bay 1 waits for its turn on the bus behind bay 2 (one offload per bus); a drive goes
    missing and comes back meanwhile (every bay hears StorageBack), then bay 1's camera is
    pulled and docked again while its first run still waits. The waiting run does not go on
    twice, the re-docked one goes after it, and each recording is filed once."""
    cam1, cam2 = tmp_path / "cam1", tmp_path / "cam2"
    fill_camera(cam1, files=2, size=1 << 18, seed=1, start=START)
    fill_camera(cam2, files=3, size=1 << 20, seed=2, start=START)
    mounter = WatchedMounter(held=False)
    # Bay 2 reads for ~2 s: bay 1 (mounted and measured in milliseconds) queues behind it.
    async with running(tmp_path, read_bps=1_500_000, per_bus=1, mounter=mounter) as h:
        b1, b2 = h.bay(1), h.bay(2)
        h.hot.dock("1-2", "SN0002", cam2)
        await h.until(lambda: b2.state.phase is Phase.OFFLOADING)
        h.hot.dock("1-1", "SN0001", cam1)
        await h.until(lambda: 1 in h.station.admission.waiting)
        watch = h.station.drive_watch
        watch.changed(StorageMissing(Drive("footage", tmp_path / "footage"), "footage missing"))
        watch.changed(None)  # back: StorageBack to every bay
        waiting = b1.offload
        h.hot.undock("1-1")
        h.hot.dock("1-1", "SN0001", cam1)
        await h.until(lambda: b1.offload is not waiting and b1.state.phase is Phase.IDENTIFYING)
        await h.until(lambda: {b1.state.phase, b2.state.phase} <= {Phase.DONE, Phase.FAULT})
        assert (b1.state.phase, b2.state.phase) == (Phase.DONE, Phase.DONE)
        assert mounter.peak == 1 and waiting.engine is None
        rows = h.catalog("SELECT camera_id, count(*) FROM recordings GROUP BY camera_id")
        assert sorted(rows) == [("CAM0001", 2), ("CAM0002", 3)]
    assert tree_hashes(cam1) == {} == tree_hashes(cam2)
    assert len(tree_hashes(tmp_path / "footage")) == 5 == len(tree_hashes(tmp_path / "backup"))


class _PulledMount(SimMounter):
    """The first mount is of a camera pulled while it was being mounted: it fails once the
    kernel gives up on the vanished device (``give_up``); later mounts are the sim's."""

    def __init__(self) -> None:
        self.mounting = asyncio.Event()
        self.give_up = asyncio.Event()
        self.calls = 0

    async def mount(self, devnode: str, fs_type: str, target: Path) -> Path:
        self.calls += 1
        if self.calls == 1:
            self.mounting.set()
            await self.give_up.wait()
            raise MountError(f"mount {devnode}: special device does not exist")
        return await super().mount(devnode, fs_type, target)


async def test_a_pulled_runs_late_mount_failure_does_not_fault_the_new_dock(
    tmp_path: Path,
) -> None:
    """Finding: a camera pulled while being mounted and docked again at once; the pulled run's
    mount then failed (its device gone) and its Failed went to the bay, which by then showed the
    new dock: the bay faulted and the new dock's run, told to stop, never offloaded. A stopped
    run's late events are its own: the new dock goes to DONE."""
    vol = tmp_path / "cam1"
    fill_camera(vol, files=2, size=1 << 18, seed=1, start=START)
    mounter = _PulledMount()
    async with running(tmp_path, mounter=mounter) as h:
        b = h.bay(1)
        h.hot.dock("1-1", "SN0001", vol)
        await asyncio.wait_for(mounter.mounting.wait(), 10)
        h.hot.undock("1-1")
        await h.until(lambda: b.state.phase is Phase.INTERRUPTED)
        h.hot.dock("1-1", "SN0001", vol)
        await h.until(lambda: b.state.phase is Phase.IDENTIFYING)
        mounter.give_up.set()
        await h.until(lambda: b.state.phase in (Phase.DONE, Phase.FAULT))
        assert b.state.phase is Phase.DONE, b.state
    assert tree_hashes(vol) == {}
    assert len(tree_hashes(tmp_path / "footage")) == 2 == len(tree_hashes(tmp_path / "backup"))


@needs_root
async def test_a_drive_back_while_the_run_that_missed_it_unmounts_offloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding (REG-4.2.1): a run whose engine found a drive missing posts storage-missing and
    goes on to unmount; the drive back before that unmount ended put the bay in "identifying",
    but the offload was not started (the old task still ran and was not told to stop), so the
    bay stayed "identifying" for ever, the very hang of the CI leap-day run. It now starts
    after the old run lets go, once."""
    monkeypatch.setattr(jobs, "DRIVE_POLL", 0.2)
    vol = tmp_path / "cam1"
    fill_camera(vol, files=2, size=4096, seed=1, start=START)
    mounter = WatchedMounter()
    with two_drives(tmp_path) as (footage, backup, fdev, _):
        subprocess.run(["umount", str(footage.root)], check=True)
        uuids = (footage.uuid or "", backup.uuid or "")
        async with running(tmp_path, drives=uuids, mounter=mounter) as h:
            b = h.bay(1)
            h.hot.dock("1-1", "SN0001", vol)
            await h.until(lambda: b.state.phase is Phase.STORAGE_MISSING)
            await asyncio.wait_for(mounter.unmounting.wait(), 10)
            subprocess.run(["mount", fdev, str(footage.root)], check=True)
            await h.until(lambda: b.state.phase is Phase.IDENTIFYING)
            await asyncio.sleep(0.2)
            assert mounter.mounted == 1  # the missed run still unmounting: the new one waits
            mounter.free.set()
            await h.until(lambda: b.state.phase in (Phase.DONE, Phase.FAULT), timeout=10)
            assert b.state.phase is Phase.DONE, b.state
            assert mounter.peak == 1
        assert tree_hashes(vol) == {}
        assert len(tree_hashes(footage.root)) == len(tree_hashes(backup.root)) == 2


async def test_a_camera_gone_without_udev_s_remove_shows_interrupted(tmp_path: Path) -> None:
    """The camera's device vanishes mid-offload but udev's "remove" never comes (the kernel
    drops events when the daemon's socket buffer overflows): the bay shows "interrupted", not
    "offloading" for ever; docked again, the rest is offloaded and nothing is lost (REG-4.1.2)."""
    vol = tmp_path / "cam1"
    shas = _camera(vol)
    async with running(tmp_path, read_bps=3_000_000) as h:
        b = await _docked_a_third_in(h, vol)
        away = vol.rename(tmp_path / "away")  # the device node is gone; udev says nothing
        await h.until(lambda: b.state.phase is Phase.INTERRUPTED, timeout=20)
        assert ("camera-removed", 1) in [(kind, bay) for kind, bay, _ in h.events]
        away.rename(vol)
        h.hot.undock("1-1")  # the late "remove" changes nothing
        await asyncio.sleep(0.2)
        assert b.state.phase is Phase.INTERRUPTED
        h.hot.dock("1-1", "SN0001", vol)
        await h.until(lambda: b.state.phase in (Phase.DONE, Phase.FAULT))
        assert b.state.phase is Phase.DONE, b.state
    _all_offloaded(tmp_path, vol, shas)


# Hostile review 4 (branch review4) of `_remove_lost` (8bf63d9): a camera's device node gone
# under its offload without udev's "remove".


async def _vanished_then_back(h: Harness, vol: Path, tmp_path: Path) -> BayRuntime:
    """Bay 1's camera vanishes a third into its offload (udev's "remove" lost) and its device
    node is back under the same name before REMOVE_GRACE ends (the camera re-enumerated as the
    same /dev/sdX)."""
    b = await _docked_a_third_in(h, vol)
    run = b.offload
    away = vol.rename(tmp_path / "away")
    assert run.task is not None
    await asyncio.wait_for(asyncio.shield(run.task), 20)  # it saw the node gone
    away.rename(vol)
    return b


async def test_a_node_back_under_the_same_name_does_not_leave_the_bay_offloading(
    tmp_path: Path,
) -> None:
    """The vanished camera's node is back under its name before the grace ends, and udev says
    nothing either way: the device the offload read is gone all the same, so the bay shows
    "interrupted" (not "offloading" with nothing running, for ever); docked again, the rest
    is offloaded and nothing is lost (REG-4.1.2)."""
    vol = tmp_path / "cam1"
    shas = _camera(vol)
    async with running(tmp_path, read_bps=3_000_000) as h:
        b = await _vanished_then_back(h, vol, tmp_path)
        await h.until(lambda: b.state.phase is Phase.INTERRUPTED, timeout=20)
        h.hot.dock("1-1", "SN0001", vol)
        await h.until(lambda: b.state.phase in (Phase.DONE, Phase.FAULT))
        assert b.state.phase is Phase.DONE, b.state
    _all_offloaded(tmp_path, vol, shas)


async def test_a_camera_re_enumerated_before_the_grace_ends_is_offloaded(tmp_path: Path) -> None:
    """The same, but udev's "add" of the re-enumerated camera does come (its "remove" was the
    one lost): that is the camera docked again, so its offload resumes on its own and ends
    "done", every recording verified on both drives before the camera is cleared (REG-4.1.2,
    REG-4.2.6)."""
    vol = tmp_path / "cam1"
    shas = _camera(vol)
    async with running(tmp_path, read_bps=3_000_000) as h:
        b = await _vanished_then_back(h, vol, tmp_path)
        h.hot.dock("1-1", "SN0001", vol)
        await h.until(lambda: b.state.phase in (Phase.DONE, Phase.FAULT), timeout=30)
        assert b.state.phase is Phase.DONE, b.state
        await asyncio.sleep(3.5)  # past REMOVE_GRACE: the stale timer undocks nothing
        assert b.state.phase is Phase.DONE and b.storage is not None
    _all_offloaded(tmp_path, vol, shas)
