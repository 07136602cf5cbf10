"""Cameras that speak the real command protocol over real pseudo-terminals, with faults.

A SimCamera owns the master side of a pty; whatever opens the slave side (the daemon, through
pyserial) talks to it exactly as to a camera's USB CDC-ACM port. Like gpiozero's mock pins, the
fake refuses what the firmware would refuse (unknown commands, bad arguments).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import tty
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from camdock import clock
from camdock.camera.protocol import Decoder, crc16, encode_response


@dataclass
class CameraState:
    """What a simulated camera holds and how it misbehaves."""

    serial: str = "SN0001"
    model: str = "BWC-SIM"
    firmware: str = "2.4.1"
    badge: str = ""
    clock_offset: float = 0.0  # camera clock minus true time, seconds
    set_error: float = 0.0  # what the clock is off by right after a CLOCK set (a bad RTC)
    battery: int = 95
    health: str = "good"
    charging: bool = True
    total: int = 64 * 2**30
    free: int = 60 * 2**30
    errors: int = 0
    pending: int = 0  # recordings not yet offloaded
    bitrate: int = 8_000_000  # bits/s while recording
    checks: dict[str, str] = field(
        default_factory=lambda: {"sensor": "pass", "mic": "pass", "ir": "pass", "clip": "pass"}
    )
    # Faults
    garbage: bool = False  # noise bytes and corrupt frames around every answer
    no_answer: bool = False
    slow: float = 0.0  # seconds before answering
    unplug_after: int | None = None  # requests answered before the cable is pulled
    undecodable: bool = False  # its ID answer carries bytes that are not UTF-8 (valid CRC)


class SimCamera:
    """A camera on a pty: ``port`` is the path to open; ``close()`` unplugs it."""

    def __init__(self, state: CameraState | None = None) -> None:
        self.state = state or CameraState()
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no CR/LF translation: a byte pipe like CDC-ACM
        self.port = os.ttyname(self._slave)
        self.requests: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, name=f"simcam-{self.state.serial}", daemon=True
        )
        self._thread.start()

    def now(self) -> datetime:
        """The camera's clock: the station's time plus its offset."""
        return clock.now() + timedelta(seconds=self.state.clock_offset)

    def _serve(self) -> None:
        decoder = Decoder()
        while not self._stop.is_set():
            try:
                data = os.read(self.master, 512)
            except OSError:
                return  # EIO: closed
            for frame in decoder.feed(data):
                if frame.direction != ">":
                    continue
                self.requests.append(frame.verb)
                s = self.state
                if s.unplug_after is not None and len(self.requests) > s.unplug_after:
                    self.close()
                    return
                if s.no_answer:
                    continue
                if s.slow:
                    time.sleep(s.slow)
                ok, fields = self._answer(frame.verb, frame.fields)
                reply = encode_response(frame.id, ok, fields)
                if s.undecodable and frame.verb == "ID":
                    body = f"{frame.id} OK model=%FF%FE serial={s.serial}".encode()
                    reply = b"<" + body + f"*{crc16(body):04X}\r\n".encode()
                if s.garbage:
                    bad = bytearray(reply)
                    bad[5] ^= 0x01  # a flipped bit: the CRC must catch it
                    reply = b"\x00\xff noise\r\n" + bytes(bad) + b"#%$\r\n" + reply
                with contextlib.suppress(OSError):
                    os.write(self.master, reply)

    def _answer(self, verb: str, fields: dict[str, str]) -> tuple[bool, dict[str, str]]:
        s = self.state
        if verb == "ID":
            out = {"model": s.model, "firmware": s.firmware, "serial": s.serial}
            return True, out | ({"badge": s.badge} if s.badge else {})
        if verb == "CLOCK?":
            return True, {"time": self.now().isoformat(timespec="milliseconds")}
        if verb == "CLOCK":
            try:
                target = datetime.fromisoformat(fields["time"])
            except (KeyError, ValueError):
                return False, {"code": "BADARG", "msg": "time=ISO8601 expected"}
            s.clock_offset = (target - clock.now()).total_seconds() + s.set_error
            return True, {}
        if verb == "BATTERY?":
            return True, {
                "percent": str(s.battery),
                "health": s.health,
                "charging": "1" if s.charging else "0",
            }
        if verb == "STORAGE?":
            return True, {
                "total": str(s.total),
                "free": str(s.free),
                "errors": str(s.errors),
                "pending": str(s.pending),
                "bitrate": str(s.bitrate),
            }
        if verb == "SELFTEST":
            time.sleep(0.05)  # the camera records a short clip and reads it back
            return True, dict(s.checks)
        return False, {"code": "BADCMD", "msg": f"unknown command {verb}"}

    def close(self) -> None:
        """Unplug: the daemon's next read or write fails."""
        self._stop.set()
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
