"""USB hotplug through pyudev, inside the event loop (TECH-NOTES §1).

The netlink monitor's fd is watched with ``loop.add_reader`` and drained without blocking: no
thread, and cancelling the consumer stops it cleanly. The monitor starts **before** the
cold-plug enumeration, so a camera docked during start-up is not missed (duplicates are the
station's to drop, which it does by devpath).

On a real unplug the USB tree is gone before ``remove`` is handled, so ``remove`` events carry
only the devpath; the station remembers devpath → bay from the ``add``.

At a busy shift end the kernel can drop events when the monitor's socket buffer is full; the next
read then fails with ENOBUFS, before the events that filled the buffer (older than those
dropped). Once those are read, the adapter resyncs: it lists what is plugged in now and
yields a ``remove`` for every device it had announced that is gone (or is another device under
the same path), an ``add`` for every device it had not announced, and a ``change`` for one whose
filesystem showed or went. A camera whose "add" was lost is then offloaded without being docked
again, and one whose "remove" was lost is seen pulled.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pyudev

log = logging.getLogger(__name__)

RESYNC = object()  # queued in place of the events the kernel dropped (ENOBUFS)
SUBSYSTEMS = ("block", "tty")


@dataclass(frozen=True)
class HotplugEvent:
    """One udev event, reduced to what the station needs (block or tty, its USB port and serial)."""

    action: str  # add | remove | change
    subsystem: str  # block | tty
    devpath: str
    devnode: str | None = None
    devtype: str | None = None  # disk | partition (block)
    fs_type: str | None = None  # ID_FS_TYPE, set by udev's blkid rules
    port: str | None = None  # the usb_device's sys_name: the physical port path ("1-1.3")
    id_path: str | None = None
    serial: str | None = None  # the USB serial number: the camera's key
    vendor_id: str | None = None
    product_id: str | None = None
    usb_parent: str | None = None  # sys_path of the usb_device: pairs storage and serial port
    devnum: str | None = None  # "MAJOR:MINOR": what a real kernel's remove event still carries


def _attr(dev: Any, name: str) -> str | None:
    try:
        value = dev.attributes.get(name)
    except (KeyError, OSError):
        return None
    if value is None:
        return None
    return bytes(value).decode("ascii", "replace").strip() or None


def to_event(dev: Any, action: str | None = None) -> HotplugEvent | None:
    """A HotplugEvent for a block or tty device, or None for anything else."""
    subsystem = dev.subsystem
    if subsystem not in ("block", "tty"):
        return None
    action = action or dev.action or "add"
    props = dev.properties
    base = {
        "action": action,
        "subsystem": subsystem,
        "devpath": props.get("DEVPATH", dev.device_path),
        "devnode": props.get("DEVNAME"),
        "devtype": props.get("DEVTYPE"),
        "fs_type": props.get("ID_FS_TYPE") or None,
        "id_path": props.get("ID_PATH"),
        "devnum": f"{props['MAJOR']}:{props['MINOR']}" if "MAJOR" in props else None,
    }
    if action == "remove":
        return HotplugEvent(**base)
    usb = dev.find_parent("usb", "usb_device")
    if usb is None:
        return None  # not on USB (the SD card, a loop device): never ours
    return HotplugEvent(
        **base,
        port=usb.sys_name,
        serial=_attr(usb, "serial"),
        vendor_id=_attr(usb, "idVendor"),
        product_id=_attr(usb, "idProduct"),
        usb_parent=usb.sys_path,
    )


class UdevHotplug:
    """Yields HotplugEvents: first what is already plugged in, then one ``settled``, then live
    events (with a resync after events the kernel dropped)."""

    def __init__(self, context: pyudev.Context | None = None) -> None:
        self.context = context or pyudev.Context()
        self.announced: dict[str, HotplugEvent] = {}  # devpath → its last add/change yielded

    async def events(self) -> AsyncIterator[HotplugEvent]:
        """Cold-plug enumeration, then ``settled``, then live events, until cancelled."""
        loop = asyncio.get_running_loop()
        monitor = pyudev.Monitor.from_netlink(self.context)
        for subsystem in SUBSYSTEMS:
            monitor.filter_by(subsystem)
        monitor.start()
        queue: asyncio.Queue[Any] = asyncio.Queue()

        def readable() -> None:
            lost = False
            while True:
                try:
                    dev = monitor.poll(timeout=0)
                except OSError as exc:
                    if exc.errno != errno.ENOBUFS:
                        raise
                    lost = True  # reported once, before what filled the buffer (older events)
                    continue
                if dev is None:
                    break
                queue.put_nowait(dev)
            if lost:
                # After the buffer's older events: replayed after the resync, a stale "add"
                # would announce a device that is gone again, its "remove" among those dropped.
                queue.put_nowait(RESYNC)

        loop.add_reader(monitor.fileno(), readable)
        try:
            for ev in self._plugged_in():
                yield self._announce(ev)
            yield HotplugEvent(action="settled", subsystem="", devpath="")
            while True:
                dev = await queue.get()
                if dev is RESYNC:
                    for ev in self._resync():
                        yield ev
                elif (live := to_event(dev)) is not None:
                    yield self._announce(live)
        finally:
            loop.remove_reader(monitor.fileno())

    def _plugged_in(self) -> Iterator[HotplugEvent]:
        for subsystem in SUBSYSTEMS:
            for dev in self.context.list_devices(subsystem=subsystem):
                ev = to_event(dev, "add")
                if ev is not None:
                    yield ev

    def _announce(self, ev: HotplugEvent) -> HotplugEvent:
        if ev.action == "remove":
            self.announced.pop(ev.devpath, None)
        else:
            self.announced[ev.devpath] = ev
        return ev

    def _resync(self) -> Iterator[HotplugEvent]:
        """After dropped events: ``remove`` for what is gone, ``add`` for what is new,
        ``change`` for a filesystem that showed or went."""
        now = {ev.devpath: ev for ev in self._plugged_in()}
        gone = [old for path, old in self.announced.items() if _other(now.get(path), old)]
        new = [ev for path, ev in now.items() if _other(self.announced.get(path), ev)]
        # The same device whose filesystem showed in a lost "change" (its medium ready): the
        # station docks on that change, so it is made up too.
        new += [
            replace(ev, action="change")
            for path, ev in now.items()
            if (seen := self.announced.get(path)) is not None
            and not _other(seen, ev)
            and seen.fs_type != ev.fs_type
        ]
        log.warning(
            "udev events were lost (the kernel's buffer overflowed): resynced, "
            "%d device(s) gone, %d new or changed",
            len(gone),
            len(new),
        )
        for old in gone:
            yield self._announce(
                HotplugEvent(
                    action="remove",
                    subsystem=old.subsystem,
                    devpath=old.devpath,
                    devnode=old.devnode,
                    devtype=old.devtype,
                    # No device number: the number may already be another device's, announced
                    # since (the station matches removes by number too); the path is exact.
                )
            )
        for ev in new:
            yield self._announce(ev)


def _other(seen: HotplugEvent | None, now: HotplugEvent) -> bool:
    """``seen`` is not the device ``now`` (absent, or another one under the same path)."""
    return seen is None or (seen.devnum, seen.serial, seen.usb_parent) != (
        now.devnum,
        now.serial,
        now.usb_parent,
    )
