"""Who offloads next on a shared USB bus, and when each officer can take their camera (issue 18).
Pure.

Every USB 2.0 camera on a Raspberry Pi 4 shares one 480 Mbit/s bus (about 40 MB/s for all ports
together): two offloads on one bus only share its bandwidth, so running one at a time per bus
loses nothing in throughput and lets the first officer leave sooner. The order minimises the
mean dock → done time: shortest remaining first (optimal for the mean on one server), with
aging so that no camera starves: one that has waited longer than the longest offload now
running plus its own goes next whatever its size. A camera docked for the pre-shift test does
not queue here at all (its test talks over the serial port, not the bus's storage traffic).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Waiting", "bus_of", "eta", "pick"]


@dataclass(frozen=True)
class Waiting:
    """A docked camera waiting for its bus."""

    bay: int
    bytes: int  # what is on the camera to offload (used space)
    since: float  # when it started waiting (monotonic seconds)


def bus_of(port: str | None, id_path: str | None) -> str:
    """The USB bus a device is on: the root hub's number of its sysfs port ("1-1.3" → "usb1"),
    else its controller in udev's ID_PATH (the part before "-usb-"). Unknown: its own bus."""
    if port and (m := re.match(r"^(\d+)-", port)):
        return f"usb{m[1]}"
    if id_path and "-usb-" in id_path:
        return id_path.split("-usb-", 1)[0]
    return f"own:{port or id_path}"


def pick(waiting: list[Waiting], now: float, rate: float, longest_running: float = 0.0
         ) -> Waiting | None:  # fmt: skip
    """The camera to offload next on a bus that is free: the smallest, unless one has waited
    longer than the longest offload plus its own would take (then the one that waited longest)."""
    if not waiting:
        return None
    rate = max(rate, 1.0)
    starving = [w for w in waiting
                if now - w.since > longest_running + max(x.bytes for x in waiting) / rate
                + w.bytes / rate]  # fmt: skip
    if starving:
        return min(starving, key=lambda w: (w.since, w.bay))
    return min(waiting, key=lambda w: (w.bytes, w.since, w.bay))


def eta(own_remaining: int, ahead: list[int], running_remaining: int, rate: float) -> float:
    """Seconds until this camera is done: what runs now on its bus, the cameras that go before
    it, then its own remaining bytes, at the bus's measured rate."""
    return (running_remaining + sum(ahead) + own_remaining) / max(rate, 1.0)
