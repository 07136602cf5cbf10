"""The control socket: how the console (an unprivileged process) asks the station daemon to act
(ARCHITECTURE, "Who may write"). A Unix stream socket in the run directory; one request per
connection, one JSON line each way; the peer's uid is checked by the kernel's credentials
(SO_PEERCRED), not by anything the peer says. A reply may carry one open file descriptor
(SCM_RIGHTS): the recording an approved viewing may stream, opened by the daemon, so the
console never needs read access to the footage drives.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable
from datetime import date, datetime
from enum import Enum
from pathlib import Path, PurePath
from typing import Any

__all__ = ["MAX_LINE", "Handler", "Reply", "Server", "call", "jsonable"]

log = logging.getLogger(__name__)

MAX_LINE = 4 << 20  # a request or a reply; a catalog page of 500 rows is far below
READ_TIMEOUT = 10.0  # a peer that connects and says nothing is dropped
WORKERS = 4  # requests answered at once; more wait to be accepted
REFUSE_DRAIN, REFUSE_DRAIN_BYTES = 5.0, 64 << 10  # what a refused peer may still send, and when
REFUSING = 16  # refused peers drained at once; past that, answered and closed at once

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


def _encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False, default=jsonable).encode("utf-8") + b"\n"


def _read_line(sock: socket.socket, first: bytes = b"") -> bytes:
    buf = bytearray(first)
    while b"\n" not in buf:
        if len(buf) > MAX_LINE:
            raise ValueError("message too long")
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the other side closed the connection mid-message")
        buf += chunk
    return bytes(buf[: buf.index(b"\n")])


def _peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


class Server:
    """Serves ``handle`` on a Unix socket at ``path`` from a small pool of threads (catalog work
    and verified copies block; the daemon's event loop never waits on the console)."""

    def __init__(
        self, path: Path, handle: Handler, allowed_uids: frozenset[int], group: int | None = None
    ) -> None:
        self.path = path
        self.handle = handle
        self.allowed_uids = allowed_uids
        self.group = group
        self._sock: socket.socket | None = None
        # Daemon threads, not a pool: an export under way must not hold the daemon's exit
        # (a pool's workers are joined at exit); a copy cut short leaves no register line.
        self._slots = threading.BoundedSemaphore(WORKERS)
        self._refusing = threading.BoundedSemaphore(REFUSING)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind (replacing a stale socket file), restrict, listen, accept on a thread."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o117)  # born 0660: never a moment when anyone may connect
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old)
        if self.group is not None:
            os.chown(self.path, 0, self.group)
        sock.listen(16)
        self._sock = sock
        self._thread = threading.Thread(target=self._accept, name="control-accept", daemon=True)
        self._thread.start()
        log.info("control socket at %s (uids %s)", self.path, sorted(self.allowed_uids))

    def close(self) -> None:
        """Stop accepting; requests under way finish on their threads."""
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def _accept(self) -> None:
        while (sock := self._sock) is not None:
            try:
                conn, _ = sock.accept()
            except OSError:
                return  # closed
            try:
                uid = _peer_uid(conn)
            except OSError:
                conn.close()
                continue
            if uid not in self.allowed_uids:  # answered apart: never holds a worker
                drain = self._refusing.acquire(blocking=False)  # a flood is answered, not read
                threading.Thread(target=self._refuse, args=(conn, uid, drain),
                                 name="control-refuse", daemon=True).start()  # fmt: skip
                continue
            self._slots.acquire()
            threading.Thread(target=self._serve, args=(conn, uid), name="control",
                             daemon=True).start()  # fmt: skip

    def _refuse(self, conn: socket.socket, uid: int, drain: bool) -> None:
        """Answer a peer the kernel names as a uid that may not ask: 403 at once, then (unless
        too many are being refused) the request is drained, a little and briefly, before
        closing, so a slow peer still reads its refusal instead of meeting a closed socket."""
        log.warning("control: refused a connection from uid %d", uid)
        why = f"uid {uid} may not use the control socket"
        try:
            with conn, contextlib.suppress(OSError):
                conn.settimeout(REFUSE_DRAIN)
                conn.sendall(_encode({"ok": False, "status": 403, "error": why}))
                conn.shutdown(socket.SHUT_WR)
                left = REFUSE_DRAIN_BYTES if drain else 0
                while left > 0 and (chunk := conn.recv(min(left, 65536))):
                    left -= len(chunk)
        finally:
            if drain:
                self._refusing.release()

    def _serve(self, conn: socket.socket, uid: int) -> None:
        fd: int | None = None
        try:
            with conn:
                conn.settimeout(READ_TIMEOUT)
                try:
                    request = json.loads(_read_line(conn))
                    if not isinstance(request, dict):
                        raise ValueError("a request is a JSON object")
                except (ValueError, UnicodeDecodeError) as exc:
                    conn.sendall(_encode({"ok": False, "status": 400, "error": str(exc)}))
                    return
                conn.settimeout(None)
                try:
                    doc, fd = self.handle(request, uid)
                    data = _encode(doc)
                except Exception:  # a bulkhead: one request must never stop the socket
                    log.exception("control: %s failed", request.get("op"))
                    if fd is not None:
                        os.close(fd)
                        fd = None
                    why = "內部錯誤（已記錄） internal error (logged)"
                    data = _encode({"ok": False, "status": 500, "error": why})
                if fd is not None:
                    socket.send_fds(conn, [data[:1]], [fd])
                    data = data[1:]
                conn.sendall(data)
        except OSError as exc:  # the console went away mid-answer: nothing to undo
            log.info("control: %s", exc)
        finally:
            self._slots.release()
            if fd is not None:
                os.close(fd)


def call(path: Path, request: dict[str, Any], timeout: float | None = 60.0) -> Reply:
    """Send one request; the reply and the descriptor it carried (the caller closes it).
    Raises OSError when the daemon is not there."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(_encode(request))
        first, fds, _flags, _addr = socket.recv_fds(sock, 65536, 1)
        if not first:
            raise ConnectionError("the daemon closed the control connection without a reply")
        try:
            doc = json.loads(_read_line(sock, first))
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        return doc, (fds[0] if fds else None)
