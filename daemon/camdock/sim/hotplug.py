"""Simulated hardware: hotplug events, camera volumes as directories, a mounter that mounts
nothing. The station code that consumes them is the real one."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

from camdock.adapters.udev import HotplugEvent
from camdock.errors import MountError
from camdock.model import FILESYSTEMS


class SimHotplug:
    """Hotplug events made by a script: ``dock`` and ``undock`` act like a USB cable."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[HotplugEvent] = asyncio.Queue()
        self._docked: dict[str, HotplugEvent] = {}  # port → the storage event
        self._ttys: dict[str, HotplugEvent] = {}  # port → the serial port event

    async def events(self) -> AsyncIterator[HotplugEvent]:
        """The events docks and pulls produce, ``settled`` first."""
        yield HotplugEvent(action="settled", subsystem="", devpath="")
        while True:
            yield await self._queue.get()

    def dock(
        self, port: str, serial: str, volume: Path, fs_type: str = "vfat", tty: str | None = None
    ) -> None:
        """A camera's storage, and its serial command port when ``tty`` (a pty path) is given."""
        usb = f"/sys/devices/platform/sim/usb1/{port}"
        if tty is not None:
            self._ttys[port] = HotplugEvent(
                action="add",
                subsystem="tty",
                devpath=f"{usb[4:]}/{port}:1.1/tty/{Path(tty).name}",
                devnode=tty,
                port=port,
                serial=serial,
                usb_parent=usb,
            )
            self._queue.put_nowait(self._ttys[port])
        ev = HotplugEvent(
            action="add",
            subsystem="block",
            devpath=f"{usb[4:]}/{port}:1.0/host0/block/sd{port[-1]}/sd{port[-1]}1",
            devnode=str(volume),
            devtype="partition",
            fs_type=fs_type,
            port=port,
            serial=serial,
            vendor_id="1d6b",
            product_id="0104",
            usb_parent=usb,
        )
        self._docked[port] = ev
        self._queue.put_nowait(ev)

    def undock(self, port: str) -> None:
        """Pull the camera out of the bay on ``port``."""
        ev = self._docked.pop(port)
        self._queue.put_nowait(HotplugEvent(action="remove", subsystem="block", devpath=ev.devpath))
        if (tty := self._ttys.pop(port, None)) is not None:
            self._queue.put_nowait(
                HotplugEvent(action="remove", subsystem="tty", devpath=tty.devpath)
            )


class SimMounter:
    """The 'device' is already a directory: mounting hands it over as it is."""

    async def mount(self, devnode: str, fs_type: str, target: Path) -> Path:
        """Hand the camera's directory over as its mounted root."""
        if fs_type not in FILESYSTEMS:
            raise MountError(f"{devnode}: filesystem {fs_type!r} is not one a camera uses")
        return Path(devnode)

    async def unmount(self, target: Path) -> None:
        """Nothing to unmount: the directory stays."""
        return None


def fill_camera(volume: Path, files: int, size: int, seed: int, start: datetime) -> int:
    """Recordings named like a camera names them (DCIM/100MEDIA/<date>_<time>_<n>.MP4)."""
    total = 0
    folder = volume / "DCIM" / "100MEDIA"
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(files):
        when = start + timedelta(minutes=37 * n)
        path = folder / f"{when:%Y%m%d_%H%M%S}_{n:04d}.MP4"
        block = hashlib.sha256(f"{seed}/{n}".encode()).digest() * 32768  # 1 MiB, distinct
        with open(path, "wb") as f:
            left = size + n * 65_537
            while left:
                chunk = block[: min(left, len(block))]
                f.write(chunk)
                left -= len(chunk)
            total += f.tell()
        os.utime(path, (when.timestamp() + 600, when.timestamp() + 600))
    return total
