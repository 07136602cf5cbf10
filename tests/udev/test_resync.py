"""The resync after the kernel drops udev events (ENOBUFS), attacked (review5).

The overflow is the only fake (``umock.Overflow``: netlink reports ENOBUFS before the events that
filled its buffer, then delivers them); the devices are umockdev's, read through real pyudev."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from test_dock_e2e import camera_files, camera_image, catalog_count, running_station, write_config
from test_hotplug import Events
from umock import FakeCamera, Overflow

from camdock.adapters.udev import HotplugEvent
from camdock.config import load
from camdock.core.bay import Phase


def _plugged(events: list[HotplugEvent]) -> dict[str, HotplugEvent]:
    """What the station is told is plugged in after ``events``, by devpath."""
    now: dict[str, HotplugEvent] = {}
    for ev in events:
        if ev.action == "remove":
            now.pop(ev.devpath, None)
        elif ev.action != "settled":
            now[ev.devpath] = ev
    return now


async def test_events_older_than_the_drop_do_not_undo_the_resync(
    testbed: Any, monkeypatch: Any
) -> None:
    """netlink reports ENOBUFS first, then the events that filled the buffer (older than those
    it dropped). A camera docked while the buffer filled and pulled while events were dropped:
    its stale "add" after the resync would leave the station a camera that is gone (a failed
    mount, and the next camera on that port refused as "more than one filesystem")."""
    overflow = Overflow(monkeypatch)
    events = Events()
    got = await events.until(lambda e: e.action == "settled")

    overflow.filling = True
    cam = FakeCamera(testbed, "1-1", "SN0001", "/dev/sdb1", "ext4")  # disk + partition: held
    await overflow.counted(overflow.held, 2)
    overflow.filling, overflow.dropping = False, True
    cam.unplug()  # its "remove" is lost
    await overflow.end(1, testbed)
    cam2 = FakeCamera(testbed, "1-2", "SN0002", "/dev/sdc1", "ext4", dev="8:33")
    got += await events.until(lambda e: e.serial == "SN0002" and e.devtype == "partition")
    testbed.uevent(cam2.part, "change")  # live, after everything before it
    got += await events.until(lambda e: e.action == "change")
    await events.close()

    plugged = _plugged(got)
    gone = cam.part[len("/sys") :]
    assert gone not in plugged, [(e.action, e.devpath) for e in got]
    parts = [e.serial for e in plugged.values() if e.devtype == "partition"]
    assert parts == ["SN0002"]


async def test_another_camera_under_the_same_serial_port_path(
    testbed: Any, monkeypatch: Any
) -> None:
    """Camera 1 pulled and camera 2 docked on the same port during one overflow: the serial port
    has the same devpath and number, another serial. The pre-shift test must talk to camera 2's
    port: a remove for camera 1's, an add for camera 2's (REG-3.2)."""
    overflow = Overflow(monkeypatch)
    cam = FakeCamera(testbed, "1-1", "SN0001", "/dev/sdb1", "ext4")
    cam.add_tty("ttyACM0")
    events = Events()
    cold = await events.until(lambda e: e.action == "settled")
    tty = next(e for e in cold if e.subsystem == "tty")

    overflow.dropping = True
    cam.unplug()
    testbed.set_attribute(cam.usb, "serial", "SN0002")  # another camera on the USB port
    cam.replug()
    await overflow.end(2, testbed)
    got = await events.until(lambda e: e.subsystem == "tty" and e.action == "add")
    await events.close()

    ttys = [(e.action, e.serial) for e in got if e.devpath == tty.devpath]
    assert ttys == [("remove", None), ("add", "SN0002")]
    plugged = _plugged(cold + got)
    assert {e.serial for e in plugged.values()} == {"SN0002"}


async def test_several_overflows_in_a_row_announce_nothing_twice(
    testbed: Any, monkeypatch: Any
) -> None:
    """An overflow right after ``settled``, then two more: each resync yields only the change."""
    overflow = Overflow(monkeypatch)
    cam = FakeCamera(testbed, "1-1", "SN0001", "/dev/sdb1", "ext4")
    events = Events()
    cold = await events.until(lambda e: e.action == "settled")
    overflow.dropping = True
    cam.unplug()
    await overflow.end(1, testbed)
    got = await events.until(lambda e: e.action == "remove")
    for _ in range(2):
        overflow.dropping = True
        cam.replug()
        await overflow.end(1, testbed)
        got += await events.until(lambda e: e.devtype == "partition")
        overflow.dropping = True
        cam.unplug()
        await overflow.end(1, testbed)
        got += await events.until(lambda e: e.action == "remove")
    await events.close()
    assert [e.action for e in got] == ["remove", "add", "remove", "add", "remove"]
    assert [e.devtype for e in got] == ["partition"] * 5
    assert {e.serial for e in _plugged(cold + got).values()} == {"SN0001"}  # its disk stays


async def test_a_filesystem_announced_by_a_lost_change_is_made_up(
    testbed: Any, monkeypatch: Any
) -> None:
    """A camera whose storage shows first as a disk without a filesystem, the filesystem coming
    with a udev "change" (its medium ready): that change lost, the resync must say so, or the
    station gives up on the camera ("shows no filesystem") and it is never offloaded."""
    overflow = Overflow(monkeypatch)
    cam = FakeCamera(testbed, "1-1", "SN0001", "/dev/sdb", None, partition=False)
    events = Events()
    cold = await events.until(lambda e: e.action == "settled")
    assert [(e.devtype, e.fs_type) for e in cold[:-1]] == [("disk", None)]

    overflow.dropping = True
    testbed.set_property(cam.disk, "ID_FS_TYPE", "ext4")
    testbed.uevent(cam.disk, "change")  # lost
    await overflow.end(1, testbed)
    got = await events.until(lambda e: e.fs_type == "ext4")
    await events.close()
    assert [e.action for e in got] == ["change"]
    assert (got[0].devtype, got[0].serial, got[0].devnode) == ("disk", "SN0001", "/dev/sdb-disk")


async def test_pulled_and_redocked_mid_offload_during_an_overflow(
    testbed: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """Camera 1 pulled and docked again while the kernel drops events, mid-offload; a USB stick
    docked in bay 2 in the same window. Bay 1 shows the pull (interrupted), then the new dock
    finishes the offload: nothing lost, nothing catalogued twice, one mount at a time. The stick
    is never mounted (REG-2), its serial port is bay 2's."""
    files = 12
    with camera_image(tmp_path, files=files, size=1 << 20) as (dev, mnt):
        cfg = load(write_config(tmp_path))
        overflow = Overflow(monkeypatch)
        cam = FakeCamera(testbed, "1-1", "SN0001", dev, "ext4")
        async with running_station(cfg) as station:
            bay, bay2 = station.bays[1], station.bays[2]
            end = time.monotonic() + 30
            while catalog_count(cfg.catalog) < 2:
                assert time.monotonic() < end and bay.state.phase is not Phase.DONE
                await asyncio.sleep(0.005)
            overflow.dropping = True
            cam.unplug()
            cam.replug()
            stick = FakeCamera(testbed, "1-2", "STICK9", "/dev/sdz1", "ext4", dev="8:97")
            stick.add_tty("ttyACM1")
            await overflow.end(3, testbed)
            while bay.state.phase is not Phase.DONE:
                assert time.monotonic() < end + 30, bay.state
                assert bay.state.phase is not Phase.FAULT, bay.state
                await asyncio.sleep(0.01)
            assert bay2.state.phase is Phase.UNKNOWN_DEVICE and bay2.tty == "/dev/ttyACM1"
            assert not (cfg.run_dir / "bays" / "2").is_mount()
            while (cfg.run_dir / "bays" / "1").is_mount():  # the unmount after DONE
                assert time.monotonic() < end + 30, "bay 1's volume stays mounted"
                await asyncio.sleep(0.02)
        assert catalog_count(cfg.catalog) == files  # never catalogued twice
        assert catalog_count(cfg.catalog, "cleared_at IS NOT NULL") == files
        assert len(list((tmp_path / "footage").rglob("*.mp4"))) == files
        told = _bay_events(cfg.catalog, 1)
        # The pull shown, the first run ended "interrupted", the new dock ran once and finished.
        assert [t for t, _ in told if t in ("camera-docked", "camera-removed")] == [
            "camera-docked",
            "camera-removed",
            "camera-docked",
        ]
        assert [d.get("status") for t, d in told if t == "offload-failed"] == ["interrupted"]
        assert [t for t, _ in told].count("offload-completed") == 1
        assert camera_files(dev, mnt) == []


def _bay_events(catalog: Path, bay: int) -> list[tuple[str, dict[str, Any]]]:
    """The station's events about ``bay``, in order (type, data)."""
    con = sqlite3.connect(catalog)
    try:
        rows = con.execute("SELECT type, payload FROM outbox ORDER BY id").fetchall()
    finally:
        con.close()
    docs = [(t, json.loads(p)) for t, p in rows]
    return [(t, d.get("data") or {}) for t, d in docs if d.get("bay") == bay]


async def test_a_made_up_remove_never_takes_a_device_number_now_in_use(
    testbed: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """The backup drive (on a USB port no bay owns) is lost during an overflow and a camera
    docked right after it gets the drive's device number; that camera's "add" reaches the
    station before the resync. The remove made up for the drive must not undock the camera
    (the station matches removes by device number too)."""
    cfg = load(write_config(tmp_path))
    drive = FakeCamera(testbed, "1-4", "DRIVE1", "/dev/sdq1", "ext4", dev="8:33", numbered=True)
    overflow = Overflow(monkeypatch)
    async with running_station(cfg) as station:
        bay2 = station.bays[2]
        await asyncio.wait_for(station.ready.wait(), 30)
        overflow.dropping = True
        drive.unplug()  # its "remove" is lost
        await overflow.end(1, testbed)
        # Docked after the drop, its events read in the same drain as the error: no device
        # node behind it, so its mount fails and the bay keeps it docked (fault).
        FakeCamera(testbed, "1-2", "SN0002", "/dev/sdr1", "ext4", dev="8:33", numbered=True)
        end = time.monotonic() + 30
        while bay2.state.phase not in (Phase.FAULT, Phase.INTERRUPTED):
            assert time.monotonic() < end, bay2.state
            await asyncio.sleep(0.02)
        while bay2.offload.task is not None and not bay2.offload.task.done():
            await asyncio.sleep(0.02)
        assert bay2.state.phase is Phase.FAULT, bay2.state
        assert bay2.storage is not None and bay2.storage.serial == "SN0002"
    assert "camera-removed" not in [t for t, _ in _bay_events(cfg.catalog, 2)]
