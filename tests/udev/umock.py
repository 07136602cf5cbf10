"""umockdev fixtures shared by the udev tests."""

from __future__ import annotations

import os
from typing import Any


class FakeCamera:
    """A USB camera on a port: a storage partition and a CDC-ACM serial port under one USB
    device, as the kernel shows a real body camera (firmware-notes)."""

    def __init__(
        self, tb: Any, port: str, serial: str, devname: str, fs_type: str | None, dev: str = "8:17"
    ) -> None:
        self.tb = tb
        bus = port.split("-")[0]
        self.usb = tb.add_device(
            "usb",
            f"usb{bus}/{port}",
            None,
            ["serial", serial, "idVendor", "1d6b", "idProduct", "0104"],
            ["DEVTYPE", "usb_device"],
        )
        if0 = tb.add_device(
            "usb", f"{port}:1.0", self.usb, ["bInterfaceClass", "08"], ["DEVTYPE", "usb_interface"]
        )
        self.if1 = tb.add_device(
            "usb", f"{port}:1.1", self.usb, ["bInterfaceClass", "02"], ["DEVTYPE", "usb_interface"]
        )
        name = os.path.basename(devname)
        self.disk = tb.add_device(
            "block",
            f"{name}disk",
            if0,
            ["dev", "8:16"],
            ["DEVTYPE", "disk", "DEVNAME", f"{devname}-disk", "ID_BUS", "usb"],
        )
        props = ["DEVTYPE", "partition", "DEVNAME", devname, "ID_BUS", "usb"]
        if fs_type:
            props += ["ID_FS_TYPE", fs_type]
        self._part_args = (name, ["partition", "1", "dev", dev], props)
        self.part = tb.add_device("block", name, self.disk, *self._part_args[1:])

    def add_tty(self, name: str = "ttyACM0") -> None:
        self.tb.add_from_string(
            "P: " + self.if1[len("/sys") :] + f"/tty/{name}\nN: {name}\n"
            f"E: SUBSYSTEM=tty\nE: DEVNAME=/dev/{name}\nA: dev=166:0\n"
        )

    def unplug(self) -> None:
        self.tb.uevent(self.part, "remove")
        self.tb.remove_device(self.part)

    def replug(self) -> None:
        """Dock the same camera again (its storage comes back; add_device emits "add")."""
        name, attrs, props = self._part_args
        # A fresh sysfs name: umockdev cannot re-add a path it has removed.
        self._part_args = (name + "r", attrs, props)
        self.part = self.tb.add_device("block", name + "r", self.disk, attrs, props)
