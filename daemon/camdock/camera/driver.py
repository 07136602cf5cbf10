"""What the station asks of a camera, in its own words: a semantic driver with typed answers,
and the registry that picks a driver by camera model or USB id.

A camera family implements ``CameraDriver`` under ``camera/<vendor>/`` and registers itself;
the pre-shift test and the station see only this interface, never a vendor's command names.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from camdock.model import Battery, Identity, Storage

__all__ = [
    "Battery",
    "CameraDriver",
    "DriverFactory",
    "Identity",
    "Storage",
    "driver_for",
    "register",
]


class CameraDriver(Protocol):
    """One camera's command port, in the station's terms; every method raises CameraError
    (CameraGone when the camera was pulled, CameraTimeout when it is silent)."""

    async def identify(self) -> Identity:
        """Model, serial and firmware."""
        ...

    async def read_clock(self) -> datetime:
        """The camera's clock (timezone-aware)."""
        ...

    async def set_clock(self, moment: datetime) -> None:
        """Set the camera's clock to ``moment``."""
        ...

    async def battery(self) -> Battery:
        """The battery's charge and health."""
        ...

    async def storage(self) -> Storage:
        """The card's free space, errors and pending recordings."""
        ...

    async def self_test(self, timeout: float) -> dict[str, str]:
        """The camera's own checks (sensor, microphone, …): name → "pass" or why not."""
        ...

    def close(self) -> None:
        """Release the port; safe to call twice."""
        ...


DriverFactory = Callable[[str], CameraDriver]  # the camera's serial port → its driver

_BY_MODEL: dict[str, DriverFactory] = {}
_BY_USB_ID: dict[str, DriverFactory] = {}
_DEFAULT: list[DriverFactory] = []


def register(
    factory: DriverFactory,
    *,
    models: tuple[str, ...] = (),
    usb_ids: tuple[str, ...] = (),
    default: bool = False,
) -> None:
    """Make ``factory`` the driver of these camera models and USB ids (``vendor:product``)."""
    for m in models:
        _BY_MODEL[m] = factory
    for u in usb_ids:
        _BY_USB_ID[u.lower()] = factory
    if default:
        _DEFAULT[:] = [factory]


def driver_for(port: str, *, model: str | None = None, usb_id: str | None = None) -> CameraDriver:
    """The driver for the camera on ``port``: by model, else USB id, else the reference
    protocol's (firmware-notes/camera-protocol.md), which every camdock camera speaks."""
    import camdock.camera.camdock_v1  # noqa: F401 - registers the reference driver

    factory = _BY_MODEL.get(model or "") or _BY_USB_ID.get((usb_id or "").lower())
    return (factory or _DEFAULT[0])(port)
