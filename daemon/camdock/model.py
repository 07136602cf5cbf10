"""The domain's nouns, shared by the config, the core, the catalog and the adapters.

Plain frozen dataclasses with no behaviour beyond what the noun itself knows; the core imports
these and the standard library, nothing else.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

__all__ = [
    "FILESYSTEMS",
    "Battery",
    "Bay",
    "Camera",
    "Drive",
    "Identity",
    "Led",
    "Officer",
    "Ownership",
    "Storage",
]

# Camera filesystems the station mounts; anything else is refused before it is mounted.
FILESYSTEMS = ("vfat", "exfat", "ext4")

Ownership = Literal["agency", "personal"]


@dataclass(frozen=True)
class Officer:
    """An officer (員警): who footage is filed under (REG-4.2.4)."""

    badge: str
    name: str
    unit: str

    def as_json(self) -> dict[str, str]:
        """The officer as events and summaries carry it."""
        return {"badge": self.badge, "name": self.name, "unit": self.unit}


@dataclass(frozen=True)
class Camera:
    """A registered camera (REG-2: agency-owned or the officer's own, both covered)."""

    serial: str  # USB serial number
    id: str  # the agency's camera id, used in file names
    model: str
    ownership: Ownership
    officer: str | None  # badge of the assigned officer
    spare: bool
    registered: date | None = None  # it recorded nothing before this day: earlier is a bad clock


@dataclass(frozen=True)
class Led:
    """An RGB LED (three PWM pins), separate red/amber/green LEDs, or a red/green bicolour LED
    (two pins; amber is both on) — the last fits eight bays on a 40-pin header."""

    kind: Literal["rgb", "separate", "bicolour"]
    red: int
    green: int
    amber: int | None = None  # separate LEDs only; an RGB LED mixes amber
    blue: int | None = None  # RGB only

    @property
    def pins(self) -> tuple[int, ...]:
        """Every GPIO pin the LED uses."""
        return tuple(p for p in (self.red, self.amber, self.green, self.blue) if p is not None)


@dataclass(frozen=True)
class Bay:
    """One bay of the dock: its USB port, its LED and its button."""

    number: int
    usb_port: str | None  # the usb_device sys_name, the physical port path (e.g. "1-1.3")
    id_path: str | None  # or a glob over udev's ID_PATH
    led: Led
    button: int
    bus: str | None = None  # the USB bus it is on, when udev's topology is not the truth

    def owns(self, port: str | None, id_path: str | None) -> bool:
        """Whether a device on this USB port (or with this ID_PATH) is in this bay. An ID_PATH
        names an interface (storage ``:1.0``, serial port ``:1.1``); the bay owns the USB
        device, so both are compared without the interface part."""
        if self.usb_port is not None:
            return port == self.usb_port
        if id_path is None or self.id_path is None:
            return False
        return fnmatch.fnmatchcase(usb_device_path(id_path), usb_device_path(self.id_path))


_INTERFACE = re.compile(r"(-usb-\d+:[0-9.]+?)(:\d+\.\d+.*|\*)?$")


def usb_device_path(id_path: str) -> str:
    """An ID_PATH (or a glob over one) cut after its USB device: ``platform-…-usb-0:1.4:1.0-scsi-…``
    and ``platform-…-usb-0:1.4:1.1`` are both ``platform-…-usb-0:1.4``."""
    m = _INTERFACE.search(id_path)
    return id_path[: m.start()] + m.group(1) if m else id_path


@dataclass(frozen=True)
class Identity:
    """Who the camera says it is (its serial must be the USB serial, REG-2)."""

    model: str
    serial: str
    firmware: str
    badge: str | None = None  # the officer's badge, when the camera stores it


@dataclass(frozen=True)
class Battery:
    """Charge in percent (None: the answer was corrupt) and the battery's health."""

    percent: int | None
    health: str


@dataclass(frozen=True)
class Storage:
    """Free bytes, error count, recordings not yet offloaded, and the recording bitrate
    (bits/s); None where the camera's answer was corrupt or silent."""

    free: int | None
    errors: int | None
    pending: int | None
    bitrate: int | None = None


@dataclass(frozen=True)
class Drive:
    """A destination: the root footage is filed under, and the filesystem it must be on
    (REG-4.2.1: a dedicated drive, proven by its UUID or label before anything is written)."""

    name: str  # "footage" or "backup"
    root: Path
    uuid: str | None = None
    label: str | None = None
