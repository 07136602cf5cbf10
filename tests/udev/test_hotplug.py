"""Hotplug through real pyudev, with devices faked by umockdev (TECH-NOTES §1)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from umock import FakeCamera, Overflow

from camdock.adapters.udev import HotplugEvent, UdevHotplug


class Events:
    """Pumps UdevHotplug into a queue, so a test can wait for events without cancelling the
    generator (cancelling it would close the monitor)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[HotplugEvent] = asyncio.Queue()
        self.task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        async for ev in UdevHotplug().events():
            self.queue.put_nowait(ev)

    async def until(self, pred: Any, timeout: float = 5) -> list[HotplugEvent]:
        """Events up to and including the first that satisfies ``pred``."""
        got: list[HotplugEvent] = []
        while True:
            ev = await asyncio.wait_for(self.queue.get(), timeout)
            got.append(ev)
            if pred(ev):
                return got

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def test_cold_plug_then_live_add_and_remove(testbed: Any) -> None:
    cam = FakeCamera(testbed, "1-1", "SN0001", "/dev/sdb1", "exfat")
    cam.add_tty("ttyACM0")
    events = Events()
    cold = await events.until(lambda e: e.action == "settled")
    # The camera's serial port pairs with its storage through their common USB parent.
    tty = next(e for e in cold if e.subsystem == "tty")
    part = next(e for e in cold if e.devtype == "partition")
    assert (part.port, part.serial, part.fs_type, part.devnode) == (
        "1-1",
        "SN0001",
        "exfat",
        "/dev/sdb1",
    )
    assert part.usb_parent and part.usb_parent.endswith("/1-1")
    assert next(e for e in cold if e.devtype == "disk").fs_type is None
    assert tty.devnode == "/dev/ttyACM0" and tty.usb_parent == part.usb_parent

    # A second camera docked while running: a live event.
    FakeCamera(testbed, "1-2", "SN0002", "/dev/sdc1", "vfat", dev="8:33")
    live = await events.until(lambda e: e.devtype == "partition")
    assert (live[-1].action, live[-1].port, live[-1].serial) == ("add", "1-2", "SN0002")

    cam.unplug()
    gone = await events.until(lambda e: e.action == "remove")
    assert gone[-1].devpath == part.devpath
    assert gone[-1].port is None  # the USB tree is gone on removal: the station remembers
    await events.close()


async def test_devices_not_on_usb_are_never_ours(testbed: Any) -> None:
    props = ["DEVTYPE", "partition", "DEVNAME", "/dev/mmcblk0p2", "ID_FS_TYPE", "ext4"]
    testbed.add_device("block", "mmcblk0p2", None, ["dev", "179:2"], props)
    events = Events()
    evs = await events.until(lambda e: e.action == "settled")
    assert [e.action for e in evs] == ["settled"]  # the SD card is not a camera
    await events.close()


async def test_events_the_kernel_dropped_are_made_up_by_a_resync(
    testbed: Any, monkeypatch: Any
) -> None:
    """At a busy shift end the kernel drops udev events (ENOBUFS on the next read). Camera 1
    pulled and camera 2 docked in that window: without a resync the station would show camera 1
    docked for ever and never offload camera 2 until it was docked again."""
    overflow = Overflow(monkeypatch)
    cam1 = FakeCamera(testbed, "1-1", "SN0001", "/dev/sdb1", "exfat")
    cam1.add_tty("ttyACM0")
    events = Events()
    cold = await events.until(lambda e: e.action == "settled")
    gone_part = next(e for e in cold if e.devtype == "partition")

    overflow.dropping = True
    cam1.unplug()  # its "remove" is lost
    cam2 = FakeCamera(testbed, "1-2", "SN0002", "/dev/sdc1", "vfat", dev="8:33")  # "add" lost
    await overflow.end(3, testbed)  # cam1's partition, cam2's disk and partition

    got = await events.until(lambda e: e.devtype == "partition" and e.action == "add")
    removed = [e for e in got if e.action == "remove"]
    assert [e.devpath for e in removed] == [gone_part.devpath]
    assert removed[0].devnum is None  # by path only: the number may be another device's now
    added = got[-1]
    assert (added.port, added.serial, added.devnode) == ("1-2", "SN0002", "/dev/sdc1")
    # What was there before and is still there is not announced again: camera 1's serial port
    # stays, nothing is docked twice.
    assert not any(e.subsystem == "tty" for e in got)
    assert sum(e.devtype == "partition" and e.action == "add" for e in got) == 1
    # Events after the overflow are delivered as usual.
    testbed.uevent(cam2.part, "change")
    after = await events.until(lambda e: e.action == "change")
    assert after[-1].devpath == added.devpath
    await events.close()
