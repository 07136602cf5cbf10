"""The control socket's wire format (adapters/control.py serves and calls it): one JSON line
each way, bounded in size and nesting; what ``json`` cannot encode (dates, paths, enums, the
catalog's typed rows) turned into JSON on the way out."""

from __future__ import annotations

import dataclasses
import json
import socket
import struct
from collections.abc import Callable
from datetime import date, datetime
from enum import Enum
from pathlib import PurePath
from typing import Any

__all__ = [
    "MAX_DEPTH",
    "MAX_LINE",
    "MAX_REQUEST",
    "Handler",
    "Reply",
    "encode",
    "jsonable",
    "parse_request",
    "peer_uid",
    "read_line",
]

MAX_LINE = 4 << 20  # a reply; a catalog page of 500 rows is far below
MAX_REQUEST = 64 << 10  # a request: a search form or a login is far below
MAX_DEPTH = 32  # a request's JSON nesting (the protocol needs 3)

Reply = tuple[dict[str, Any], int | None]  # the document, and a descriptor to pass (or None)
Handler = Callable[[dict[str, Any], int], Reply]  # (request, peer uid) → reply


def jsonable(value: Any) -> Any:
    """What json.dumps cannot: dates, paths, sets, enums, dataclasses."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, bytes):  # a raw camera path: shown, never parsed
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset | tuple):
        return sorted(value, key=str) if isinstance(value, set | frozenset) else list(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    raise TypeError(f"{type(value).__name__} is not JSON")


def encode(doc: dict[str, Any]) -> bytes:
    """One document as its line."""
    return json.dumps(doc, ensure_ascii=False, default=jsonable).encode("utf-8") + b"\n"


def read_line(sock: socket.socket, first: bytes = b"") -> bytes:
    """One line from ``sock`` (after ``first``), at most ``MAX_LINE`` long, without its newline."""
    buf = bytearray(first)
    while b"\n" not in buf:
        if len(buf) > MAX_LINE:
            raise ValueError("message too long")
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the other side closed the connection mid-message")
        buf += chunk
    return bytes(buf[: buf.index(b"\n")])


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end, as the kernel tells it (SO_PEERCRED)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def parse_request(line: bytes) -> dict[str, Any]:
    """A request line as a JSON object; ValueError (with what is wrong) for anything else. Its
    size is bounded by the reader, its nesting here before the parser sees it (a deep one would
    exhaust the parser's recursion)."""
    depth, in_string, escaped = 0, False, False
    for byte in line:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > MAX_DEPTH:
                raise ValueError(f"a request is nested at most {MAX_DEPTH} deep")
        elif byte in (0x5D, 0x7D):
            depth -= 1
    try:
        request = json.loads(line)
    except UnicodeDecodeError as exc:
        raise ValueError(f"a request is UTF-8: {exc}") from None
    if not isinstance(request, dict):
        raise ValueError("a request is a JSON object")
    return request
