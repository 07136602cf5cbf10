"""The semantic driver over the reference protocol's commands (``ID``, ``CLOCK?``, ``CLOCK``,
``BATTERY?``, ``STORAGE?``, ``SELFTEST``): the only place that knows their names and fields."""

from __future__ import annotations

from datetime import datetime

from camdock.camera.driver import Battery, Identity, Storage
from camdock.camera.link import CameraLink, LinkSettings
from camdock.errors import CameraError

__all__ = ["ProtocolV1Driver"]


def _int(fields: dict[str, str], key: str) -> int | None:
    """A whole number field; None when missing or corrupt (never a guess)."""
    value = fields.get(key, "")
    # Bounded: a 400-digit "number" is corrupt, not a huge card.
    if not value.isascii() or not value.isdigit() or len(value) > 20:
        return None
    return int(value)


class ProtocolV1Driver:
    """A camera speaking camdock protocol v1 on a serial port."""

    def __init__(self, port: str | CameraLink, settings: LinkSettings | None = None) -> None:
        self.link = port if isinstance(port, CameraLink) else CameraLink(port, settings)

    async def identify(self) -> Identity:
        """``ID``: model, serial, firmware and badge."""
        f = await self.link.request("ID")
        return Identity(
            f.get("model", "?"), f.get("serial", ""), f.get("firmware", ""), f.get("badge")
        )

    async def read_clock(self) -> datetime:
        """``CLOCK?``: the camera's time, which must carry its offset."""
        f = await self.link.request("CLOCK?")
        try:
            moment = datetime.fromisoformat(f["time"])
        except (KeyError, ValueError) as exc:
            raise CameraError("corrupt clock answer") from exc
        if moment.tzinfo is None:
            raise CameraError("corrupt clock answer (no time zone)")
        return moment

    async def set_clock(self, moment: datetime) -> None:
        """``CLOCK time=…``."""
        await self.link.request("CLOCK", {"time": moment.isoformat(timespec="milliseconds")})

    async def battery(self) -> Battery:
        """``BATTERY?``: percent and health."""
        f = await self.link.request("BATTERY?")
        return Battery(_int(f, "percent"), f.get("health", "?"))

    async def storage(self) -> Storage:
        """``STORAGE?``: free bytes, errors, pending recordings, bitrate."""
        f = await self.link.request("STORAGE?")
        return Storage(_int(f, "free"), _int(f, "errors"), _int(f, "pending"), _int(f, "bitrate"))

    async def self_test(self, timeout: float) -> dict[str, str]:
        """``SELFTEST``: the camera records and reads back a clip, so it may take a while."""
        return await self.link.request("SELFTEST", None, timeout)

    def close(self) -> None:
        """Close the serial port."""
        self.link.close()
