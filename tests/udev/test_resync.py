"""The resync after the kernel drops udev events (ENOBUFS), attacked (review5).

The overflow is the only fake (``umock.Overflow``: netlink reports ENOBUFS before the events that
filled its buffer, then delivers them); the devices are umockdev's, read through real pyudev."""

from __future__ import annotations

import asyncio
from typing import Any

from test_hotplug import Events
from umock import FakeCamera, Overflow

from camdock.adapters.udev import HotplugEvent


async def _held(overflow: Overflow, n: int) -> None:
    for _ in range(200):
        if len(overflow.held) >= n:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(overflow.held)


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
    await _held(overflow, 2)
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
