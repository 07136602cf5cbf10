"""The camera's serial command port: transport and request/response (layers 2 and 3).

Transport: a blocking ``serial.Serial`` used from a worker thread (``asyncio.to_thread``).
The self-test is a handful of short exchanges; pyserial-asyncio would add a dependency for no
gain (TECH-NOTES §3). Requests carry ids; an answer with another id (a late reply to a timed-out
request) is skipped. A timeout or a corrupt answer is retried; what never comes is an error —
never a pass.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass

import serial

from camdock.camera.protocol import Decoder, Frame, encode_request
from camdock.errors import CameraError, CameraGone, CameraTimeout

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinkSettings:
    """Timeouts and retries of the serial link."""

    timeout: float = 2.0  # per attempt
    retries: int = 2  # further attempts after a timeout or a corrupt answer
    selftest_timeout: float = 20.0  # the camera records and reads back a clip


class CameraLink:
    """Request/response over one serial port, one request at a time."""

    def __init__(self, port: str, settings: LinkSettings | None = None) -> None:
        self.port = port
        self.settings = settings or LinkSettings()
        self._serial: serial.Serial | None = None
        self._decoder = Decoder()
        self._next_id = 1
        self._lock = threading.Lock()

    def _open(self) -> serial.Serial:
        if self._serial is None:
            try:
                self._serial = serial.Serial(
                    self.port, 115200, timeout=0.1, write_timeout=2, exclusive=True
                )
            except (serial.SerialException, OSError) as exc:
                raise CameraGone(f"cannot open {self.port}: {exc}") from exc
            self._serial.reset_input_buffer()
        return self._serial

    def _exchange(self, command: str, fields: dict[str, str] | None, timeout: float) -> Frame:
        with self._lock:
            port = self._open()
            last: str = "camera did not answer"
            for attempt in range(1 + self.settings.retries):
                req_id = self._next_id
                self._next_id = self._next_id % 65535 + 1
                try:
                    port.write(encode_request(req_id, command, fields))
                except (serial.SerialException, OSError) as exc:
                    raise CameraError(f"{self.port}: write failed: {exc}") from exc
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    try:
                        data = port.read(256)
                    except (serial.SerialException, OSError) as exc:
                        raise CameraGone(f"{self.port}: camera gone ({exc})") from exc
                    dropped = self._decoder.dropped
                    for frame in self._decoder.feed(data):
                        if frame.direction == "<" and frame.id == req_id:
                            return frame
                    if self._decoder.dropped > dropped:
                        last = "corrupt answer (checksum or framing)"
                log.warning("%s: %s to %s (attempt %d)", self.port, last, command, attempt + 1)
            raise CameraTimeout(f"{last} ({command})")

    async def request(
        self, command: str, fields: dict[str, str] | None = None, timeout: float | None = None
    ) -> dict[str, str]:
        """Send ``command`` and return the answer's fields; raises CameraError."""
        frame = await asyncio.to_thread(
            self._exchange, command, fields, timeout or self.settings.timeout
        )
        if not frame.ok:
            raise CameraError(
                f"{command}: camera error {frame.fields.get('code', '?')}: "
                f"{frame.fields.get('msg', '')}".rstrip(": ")
            )
        return frame.fields

    def close(self) -> None:
        """Close the port; safe to call twice."""
        if self._serial is not None:
            self._serial.close()
            self._serial = None
