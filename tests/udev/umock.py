"""umockdev fixtures shared by the udev tests."""

from __future__ import annotations

import asyncio
import errno
import os
from dataclasses import dataclass
from typing import Any

import pyudev


@dataclass(frozen=True)
class PiTree:
    """Where a Raspberry Pi's kernel puts a USB port's devices in sysfs, and the ID_PATH udev
    gives them (read off a Pi 4 and a Pi 5 running Bookworm)."""

    name: str
    # per USB bus: the host controller's sysfs path below /sys/devices, and ID_PATH's start
    buses: dict[str, tuple[str, str]]

    def usb_path(self, port: str) -> str:
        """``1-1.4`` → <controller>/usb1/1-1/1-1.4 (each hub on the way is a directory)."""
        bus, chain = port.split("-")
        hops = chain.split(".")
        hubs = [f"{bus}-{'.'.join(hops[:i])}" for i in range(1, len(hops) + 1)]
        return "/".join([self.buses[bus][0], f"usb{bus}", *hubs])

    def id_path(self, port: str) -> str:
        """udev's ID_PATH of the USB device on ``port`` (its interfaces add ":1.0" ...)."""
        bus, chain = port.split("-")
        return f"{self.buses[bus][1]}-usb-0:{chain}"


# Pi 4: every USB port behind the VL805 on PCIe, one bus; the dock's hub on port 1.
PI4 = PiTree("pi4", {"1": ("platform/scb/fd500000.pcie/pci0000:00/0000:00:00.0/0000:01:00.0",
                           "platform-fd500000.pcie-pci-0000:01:00.0")})  # fmt: skip
# Pi 5: two xHCI controllers in the RP1, each its own bus (ports 1-1 and 3-1 are USB 2.0).
_RP1 = "platform/axi/1000120000.pcie/1f00200000.usb"
PI5 = PiTree("pi5", {"1": (f"{_RP1}/xhci-hcd.0", "platform-xhci-hcd.0"),
                     "3": (f"{_RP1}/xhci-hcd.1", "platform-xhci-hcd.1")})  # fmt: skip


class FakeCamera:
    """A USB camera on a port: a storage partition and a CDC-ACM serial port under one USB
    device, as the kernel shows a real body camera (firmware-notes)."""

    def __init__(
        self,
        tb: Any,
        port: str,
        serial: str,
        devname: str,
        fs_type: str | None,
        dev: str = "8:17",
        *,
        tree: PiTree | None = None,
        partition: bool = True,
        numbered: bool = False,
    ) -> None:
        self.tb = tb
        self.tree = tree
        bus = port.split("-")[0]
        self.usb = tb.add_device(
            "usb",
            tree.usb_path(port) if tree else f"usb{bus}/{port}",
            None,
            ["serial", serial, "idVendor", "1d6b", "idProduct", "0104"],
            ["DEVTYPE", "usb_device"],
        )
        self.if0 = if0 = tb.add_device(
            "usb", f"{port}:1.0", self.usb, ["bInterfaceClass", "08"], ["DEVTYPE", "usb_interface"]
        )
        self.if1 = tb.add_device(
            "usb", f"{port}:1.1", self.usb, ["bInterfaceClass", "02"], ["DEVTYPE", "usb_interface"]
        )
        name = os.path.basename(devname)
        # What udev's path_id builtin gives each interface's devices on a Pi (ID_PATH).
        self._id_path = tree.id_path(port) if tree else None
        self._disk_props = ["DEVTYPE", "disk", "DEVNAME", f"{devname}-disk", "ID_BUS", "usb"]
        self._disk_props += self._path_props(":1.0-scsi-0:0:0:0")
        self.disk = tb.add_device("block", f"{name}disk", if0, ["dev", "8:16"], self._disk_props)
        props = ["DEVTYPE", "partition", "DEVNAME", devname, "ID_BUS", "usb"]
        props += self._path_props(":1.0-scsi-0:0:0:0")
        if fs_type:
            props += ["ID_FS_TYPE", fs_type]
        if numbered:  # MAJOR/MINOR as a real kernel's events carry them (HotplugEvent.devnum)
            props += ["MAJOR", dev.split(":")[0], "MINOR", dev.split(":")[1]]
        self._part_args = (name, ["partition", "1", "dev", dev], props)
        self.part = (
            tb.add_device("block", name, self.disk, *self._part_args[1:]) if partition else ""
        )

    def _path_props(self, tail: str) -> list[str]:
        return ["ID_PATH", self._id_path + tail] if self._id_path else []

    def add_tty(self, name: str = "ttyACM0") -> None:
        path = f"E: ID_PATH={self._id_path}:1.1\n" if self._id_path else ""
        self.tb.add_from_string(
            "P: " + self.if1[len("/sys") :] + f"/tty/{name}\nN: {name}\n"
            f"E: SUBSYSTEM=tty\nE: DEVNAME=/dev/{name}\n{path}A: dev=166:0\n"
        )

    def pull_disk(self) -> None:
        """Pull the camera while only its disk was seen (no partition yet)."""
        self.tb.uevent(self.disk, "remove")
        self.tb.remove_device(self.disk)

    def dock_again(self) -> None:
        """The same camera's disk and partition, seen again (fresh sysfs names: umockdev cannot
        re-add a path it has removed)."""
        name, attrs, props = self._part_args
        self.disk = self.tb.add_device("block", f"{name}disk2", self.if0, ["dev", "8:16"],
                                       self._disk_props)  # fmt: skip
        self.part = self.tb.add_device("block", name + "2", self.disk, attrs, props)

    def unplug(self) -> None:
        self.tb.uevent(self.part, "remove")
        self.tb.remove_device(self.part)

    def replug(self) -> None:
        """Dock the same camera again (its storage comes back; add_device emits "add")."""
        name, attrs, props = self._part_args
        # A fresh sysfs name: umockdev cannot re-add a path it has removed.
        self._part_args = (name + "r", attrs, props)
        self.part = self.tb.add_device("block", name + "r", self.disk, attrs, props)


class Overflow:
    """The kernel's buffer overflowing under the monitor, a fault umockdev cannot cause: while
    ``dropping``, the events that reach the socket are read and thrown away; after that the next
    read fails once with ENOBUFS, as netlink reports an overflow (the kernel's datagram receive
    checks the socket's error before its queue), then what was ``held`` in the buffer follows."""

    def __init__(self, monkeypatch: Any) -> None:
        self.dropping = False
        self.dropped: list[str] = []
        # While ``filling``, events wait in the socket's buffer unread: netlink reports the
        # overflow (ENOBUFS) before them, then delivers them, older than what it dropped.
        self.filling = False
        self.held: list[Any] = []
        self.pending_error = False
        self.sd_cards = 0
        real = pyudev.Monitor.poll

        def poll(monitor: Any, timeout: float | None = None) -> Any:
            if self.pending_error and not self.dropping:
                self.pending_error = False
                raise OSError(errno.ENOBUFS, "No buffer space available")
            if self.held and not (self.filling or self.dropping):
                return self.held.pop(0)  # what filled the buffer comes after the error
            dev = real(monitor, timeout)
            while dev is not None and (self.filling or self.dropping):
                if self.dropping:
                    self.dropped.append(f"{dev.action} {dev.sys_name}")
                    self.pending_error = True
                else:
                    self.held.append(dev)
                dev = real(monitor, timeout)
            return dev

        monkeypatch.setattr(pyudev.Monitor, "poll", poll)

    @staticmethod
    async def counted(seen: list[Any], n: int) -> None:
        """Until ``seen`` (``dropped`` or ``held``) has ``n`` events."""
        for _ in range(200):
            if len(seen) >= n:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(seen)

    async def end(self, events: int, tb: Any) -> None:
        """Once ``events`` were dropped, stop dropping and make the next read report it: a
        device that is not on USB (an SD card partition, never a camera) makes the monitor
        readable, so nothing about the cameras reaches the station but through the resync."""
        await self.counted(self.dropped, events)
        self.dropping = False
        self.sd_cards += 1
        name = f"mmcblk0p{self.sd_cards}"
        props = ["DEVTYPE", "partition", "DEVNAME", f"/dev/{name}", "ID_FS_TYPE", "ext4"]
        tb.add_device("block", name, None, ["dev", f"179:{self.sd_cards}"], props)
