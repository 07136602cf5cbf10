"""The camera command protocol, version 1: a pure codec (firmware-notes/camera-protocol.md).

Lines of ASCII, one frame each, protected by a CRC so that line noise is detected and never
misread:

    request   >17 BATTERY?*3A5F\\r\\n
    response  <17 OK percent=87 health=good charging=1*9C21\\r\\n
    error     <17 ERR code=BUSY msg=recording*12AB\\r\\n

``>``/``<`` mark the direction, then the request id (1–65535, echoed), the command or the
status, ``key=value`` fields (values percent-encoded: no spaces, ``*``, ``=`` or control
characters), ``*`` and CRC-16/CCITT-FALSE of everything between the direction mark and the
``*``, as four upper-case hex digits. The decoder resynchronises on the next line after
garbage, over-long lines or a bad CRC, and counts what it dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

MAX_LINE = 512
_SAFE = "-._~:/+@,;!$'()"  # kept as-is by quote(); everything else is %XX
_KEY = re.compile(r"[a-z][a-z0-9_]{0,31}")
_CMD = re.compile(r"[A-Z][A-Z0-9_]{0,15}\??")


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF), as in many firmware libraries."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


class ProtocolError(ValueError):
    """A frame that cannot be built or parsed."""


def _fields(fields: dict[str, str]) -> str:
    out = []
    for key, value in fields.items():
        if not _KEY.fullmatch(key):
            raise ProtocolError(f"bad field name {key!r}")
        out.append(f"{key}={quote(str(value), safe=_SAFE)}")
    return " ".join(out)


def _frame(mark: str, body: str) -> bytes:
    raw = body.encode("ascii")
    frame = f"{mark}{body}*{crc16(raw):04X}"
    if len(frame) > MAX_LINE:
        # A frame the other side would drop as garbage must not be sent at all.
        raise ProtocolError(f"frame too long ({len(frame)} > {MAX_LINE} bytes)")
    return f"{frame}\r\n".encode("ascii")


def encode_request(req_id: int, command: str, fields: dict[str, str] | None = None) -> bytes:
    """A request frame (what the station sends); raises ProtocolError."""
    if not 1 <= req_id <= 65535:
        raise ProtocolError(f"request id {req_id} out of range")
    if not _CMD.fullmatch(command):
        raise ProtocolError(f"bad command {command!r}")
    body = f"{req_id} {command}" + (f" {_fields(fields)}" if fields else "")
    return _frame(">", body)


def encode_response(req_id: int, ok: bool, fields: dict[str, str] | None = None) -> bytes:
    """What a camera sends (the simulator, and vendors' reference)."""
    body = f"{req_id} {'OK' if ok else 'ERR'}" + (f" {_fields(fields)}" if fields else "")
    return _frame("<", body)


@dataclass(frozen=True)
class Frame:
    """One parsed frame: direction, id, verb and fields."""

    direction: str  # ">" request, "<" response
    id: int
    verb: str  # the command, or OK / ERR
    fields: dict[str, str]

    @property
    def ok(self) -> bool:
        """A response that reports success."""
        return self.verb == "OK"


def parse_line(line: bytes) -> Frame:
    """One line without its line end; raises ProtocolError when it is not a valid frame."""
    if len(line) > MAX_LINE:
        raise ProtocolError("line too long")
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ProtocolError("not ASCII") from exc
    m = re.fullmatch(r"([<>])([^*]*)\*([0-9A-F]{4})", text)
    if not m:
        raise ProtocolError("not a frame")
    mark, body, crc = m.groups()
    if crc16(body.encode("ascii")) != int(crc, 16):
        raise ProtocolError("CRC mismatch")
    parts = body.split(" ")
    if len(parts) < 2 or not parts[0].isdigit() or not 1 <= int(parts[0]) <= 65535:
        raise ProtocolError("bad id")
    verb = parts[1]
    if mark == "<" and verb not in ("OK", "ERR"):
        raise ProtocolError("bad status")
    if mark == ">" and not _CMD.fullmatch(verb):
        raise ProtocolError("bad command")
    fields: dict[str, str] = {}
    for part in parts[2:]:
        key, sep, value = part.partition("=")
        if not sep or not _KEY.fullmatch(key) or key in fields:
            raise ProtocolError(f"bad field {part!r}")
        try:
            fields[key] = unquote(value, errors="strict")
        except UnicodeDecodeError as exc:  # a field whose bytes are not UTF-8: garbage
            raise ProtocolError(f"field {key!r} is not UTF-8") from exc
    return Frame(mark, int(parts[0]), verb, fields)


@dataclass
class Decoder:
    """Bytes in, frames out. Garbage, over-long lines and bad CRCs are dropped and counted."""

    buffer: bytearray = field(default_factory=bytearray)
    dropped: int = 0
    _overflow: bool = False

    def feed(self, data: bytes) -> list[Frame]:
        """Frames completed by ``data``; garbage is dropped and counted."""
        frames = []
        self.buffer += data
        while True:
            end = self.buffer.find(b"\n")
            if end < 0:
                if len(self.buffer) > MAX_LINE:  # no line end in sight: drop, resync later
                    self.buffer.clear()
                    self._overflow = True
                break
            line = bytes(self.buffer[:end]).rstrip(b"\r")
            del self.buffer[: end + 1]
            if self._overflow:  # the tail of an over-long line
                self._overflow = False
                self.dropped += 1
                continue
            start = max(line.rfind(b"<"), line.rfind(b">"))  # noise before a frame
            candidate = line[start:] if start >= 0 else line
            try:
                frames.append(parse_line(candidate))
            except ProtocolError:
                if line.strip():
                    self.dropped += 1
        return frames
