"""The control socket: how the console (an unprivileged process) asks the station daemon to act
(ARCHITECTURE, "Who may write"). A Unix stream socket in the run directory; one request per
connection, one JSON line each way; the peer's uid is checked by the kernel's credentials
(SO_PEERCRED), not by anything the peer says. A reply may carry one open file descriptor
(SCM_RIGHTS): the recording an approved viewing may stream, opened by the daemon, so the
console never needs read access to the footage drives.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import selectors
import socket
import threading
import time
from pathlib import Path
from typing import Any

from camdock.adapters.controlwire import (
    MAX_DEPTH,
    MAX_LINE,
    MAX_REQUEST,
    Handler,
    Reply,
    encode,
    jsonable,
    parse_request,
    peer_uid,
    read_line,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_LINE",
    "MAX_REQUEST",
    "WAKE",
    "Handler",
    "Reply",
    "Server",
    "call",
    "jsonable",
    "listening",
    "parse_request",
    "wake",
]

log = logging.getLogger(__name__)

READ_TIMEOUT = 10.0  # the whole request must arrive within this, or the peer is dropped
WRITE_TIMEOUT = 30.0  # and the whole reply be taken within this
WORKERS = 4  # quick requests answered at once; more wait for a worker
SLOW_WORKERS = 2  # the slow operations' own workers (exports, attribution, destruction)
MAX_OPEN = 512  # connections held at once; more wait in the kernel's accept queue
BACKLOG = socket.SOMAXCONN  # that queue (the kernel caps it at net.core.somaxconn)
REFUSE_DRAIN, REFUSE_DRAIN_BYTES = 5.0, 64 << 10  # what a refused peer may still send, and when
# The socket's reading and writing thread runs below the copier's (nice 5; Linux nice is per
# thread): a flood of console requests is answered more slowly, never at the offload's expense
# (bench/control_bench). Not the workers: one holding the catalog's write lock must not starve.
# Not SCHED_IDLE (the choice until 2026-12): a thread of that class that is preempted while it
# holds the GIL keeps every other thread of the daemon waiting, the asyncio loop included, for as
# long as normal work keeps the CPUs: 166-360 ms stalls against 8-15 ms at nice 10, with two
# busy processes beside it (bench/priority_bench.py). The offload's speed under a flood of
# requests was the same with either (bench/control_bench: 0.98 and 0.97 of idle).
NICE = 10
IDLE_CLASS = False  # SCHED_IDLE instead of nice (bench/control_bench --priority idle)
ACCEPT_PAUSE = 0.5  # out of descriptors: accept again after this
CONNECT_RETRY = 0.05  # a full accept queue (EAGAIN): try again after this, doubling to 0.5 s
WAKE = "wake"  # the one request without a session: "events wait in the outbox" (station.py)
WAKE_TIMEOUT = 2.0


def _lower_priority() -> None:
    """The selector thread below the copier: nice 10 (CFS weight 110 against the copier's
    1024), or SCHED_IDLE where ``IDLE_CLASS`` asks for it (the benchmark's comparison)."""
    tid = threading.get_native_id()
    if IDLE_CLASS:
        try:
            os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
            return
        except (OSError, AttributeError):
            pass  # not Linux, or a seccomp filter without it: nice is the next best
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, tid, NICE)


class _Conn:
    """One connection, as the selector thread sees it."""

    __slots__ = ("buf", "deadline", "drain", "fd", "graced", "out", "phase", "request", "sock",
                 "uid")  # fmt: skip

    def __init__(self, sock: socket.socket, uid: int, deadline: float) -> None:
        self.sock, self.uid, self.deadline = sock, uid, deadline
        self.phase = "read"  # read → work → write → (drain, a refused peer) → closed
        self.buf = bytearray()
        self.request: dict[str, Any] = {}
        self.out = b""
        self.fd: int | None = None  # a descriptor to pass with the reply's first byte
        self.drain = 0  # what a refused peer may still send after its answer
        self.graced = False  # once past its deadline with bytes waiting that we had not read


_Selector = selectors.BaseSelector


def _waiting(sock: socket.socket) -> bool:
    """Whether bytes wait unread on ``sock`` (a look, nothing taken)."""
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return False


class Server:
    """Serves ``handle`` on a Unix socket at ``path``.

    One thread reads every request and writes every reply without blocking (a selector), each
    connection within its deadlines, so a slow or silent peer holds nothing but its own socket.
    A complete request goes to a small pool of worker threads (catalog work and verified copies
    block; the daemon's event loop never waits on the console); the operations in ``slow`` (an
    export, an attribution) have workers of their own, so a long one never delays a login. Peers
    past what is served at once wait in the kernel's accept queue: slower, never refused.
    """

    def __init__(
        self,
        path: Path,
        handle: Handler,
        allowed_uids: frozenset[int],
        group: int | None = None,
        slow: frozenset[str] = frozenset(),
    ) -> None:
        self.path = path
        self.handle = handle
        self.allowed_uids = allowed_uids
        self.group = group
        self.slow = slow
        self._sock: socket.socket | None = None
        self._closed = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._done: queue.SimpleQueue[_Conn] = queue.SimpleQueue()
        self._quick: queue.SimpleQueue[_Conn] = queue.SimpleQueue()
        self._long: queue.SimpleQueue[_Conn] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._paused_until = 0.0  # accepting again after running out of descriptors

    def start(self) -> None:
        """Bind (replacing a stale socket file), restrict, listen, serve on threads."""
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
        sock.listen(BACKLOG)
        sock.setblocking(False)
        self._sock = sock
        # Daemon threads, not a pool: an export under way must not hold the daemon's exit
        # (a pool's workers are joined at exit); a copy cut short leaves no register line.
        pools = [("worker", self._quick, WORKERS), ("slow", self._long, SLOW_WORKERS)]
        for kind, work, count in pools:
            for n in range(count):
                threading.Thread(
                    target=self._work, args=(work,), name=f"control-{kind}-{n}", daemon=True
                ).start()
        self._thread = threading.Thread(target=self._loop, name="control", daemon=True)
        self._thread.start()
        log.info("control socket at %s (uids %s)", self.path, sorted(self.allowed_uids))

    def serving(self) -> bool:
        """Whether the socket's thread is answering (it was started and has not died)."""
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        """Stop serving; a request already with a worker is still answered by it."""
        if self._closed.is_set():
            return
        self._closed.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    # The workers.

    def _work(self, work: queue.SimpleQueue[_Conn]) -> None:
        while True:
            conn = work.get()
            fd: int | None = None
            try:
                doc, fd = self.handle(conn.request, conn.uid)
                data = encode(doc)
            except Exception:  # a bulkhead: one request must never stop the socket
                log.exception("control: %s failed", conn.request.get("op"))
                if fd is not None:
                    os.close(fd)
                    fd = None
                why = "內部錯誤（已記錄） internal error (logged)"
                data = encode({"ok": False, "status": 500, "error": why})
            conn.out, conn.fd = data, fd
            if self._closed.is_set():  # no selector any more: answer it here, then close
                self._answer_blocking(conn)
                continue
            self._done.put(conn)
            with contextlib.suppress(OSError):
                self._wake_w.send(b"x")

    @staticmethod
    def _answer_blocking(conn: _Conn) -> None:
        try:
            with conn.sock:
                conn.sock.settimeout(WRITE_TIMEOUT)
                if conn.fd is not None:
                    socket.send_fds(conn.sock, [conn.out[:1]], [conn.fd])
                    conn.out = conn.out[1:]
                conn.sock.sendall(conn.out)
        except OSError as exc:
            log.info("control: %s", exc)
        finally:
            if conn.fd is not None:
                os.close(conn.fd)
                conn.fd = None

    # The selector thread: accepting, reading, writing, deadlines.

    def _loop(self) -> None:
        assert self._sock is not None
        _lower_priority()
        sel = selectors.DefaultSelector()
        sel.register(self._sock, selectors.EVENT_READ, None)
        self._wake_r.setblocking(False)
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        live: set[_Conn] = set()
        listening = True
        try:
            while not self._closed.is_set():
                now = time.monotonic()
                soonest = min((c.deadline for c in live if c.phase != "work"), default=now + 1)
                if not listening:
                    soonest = min(soonest, max(self._paused_until, now + 0.05))
                for key, mask in sel.select(max(0.0, soonest - now)):
                    if key.data is None:
                        self._accept(sel, live)
                    elif key.data == "wake":
                        with contextlib.suppress(BlockingIOError):
                            self._wake_r.recv(4096)
                    else:
                        self._event(sel, live, key.data, mask)
                self._collect(sel, live)
                self._expire(sel, live)
                # Past what is served at once (or out of descriptors), peers wait in the
                # kernel's accept queue.
                want = len(live) < MAX_OPEN and time.monotonic() >= self._paused_until
                if listening and not want:
                    sel.unregister(self._sock)
                    listening = False
                elif want and not listening:
                    sel.register(self._sock, selectors.EVENT_READ, None)
                    listening = True
        except Exception:
            log.exception("control: the socket's loop failed; the console cannot ask any more")
            raise
        finally:
            for conn in list(live):
                if conn.phase != "work":  # a worker answers its own after the close
                    self._drop(sel, live, conn)
            sel.close()
            self._sock.close()
            self._wake_r.close()

    def _event(self, sel: _Selector, live: set[_Conn], conn: _Conn, mask: int) -> None:
        """One connection's turn; a bulkhead: whatever goes wrong costs that connection only."""
        try:
            if mask & selectors.EVENT_READ:
                self._readable(sel, live, conn)
            elif mask & selectors.EVENT_WRITE:
                self._writable(sel, live, conn)
        except Exception:
            log.exception("control: a connection failed; dropped")
            self._drop(sel, live, conn)

    def _collect(self, sel: _Selector, live: set[_Conn]) -> None:
        """The workers' answers, to be written."""
        while True:
            try:
                conn = self._done.get_nowait()
            except queue.Empty:
                return
            conn.phase, conn.deadline = "write", time.monotonic() + WRITE_TIMEOUT
            sel.register(conn.sock, selectors.EVENT_WRITE, conn)
            self._writable(sel, live, conn)

    def _expire(self, sel: _Selector, live: set[_Conn]) -> None:
        now = time.monotonic()
        for conn in [c for c in live if c.phase != "work" and c.deadline <= now]:
            if conn.phase == "read" and not conn.graced and _waiting(conn.sock):
                # Its bytes came; this thread (below normal) had not run to read them: the slow
                # one was us, not the peer. Read on, once (a trickler gains one round at most).
                conn.graced, conn.deadline = True, now + READ_TIMEOUT
                continue
            if conn.phase == "read":
                log.info("control: a request not received within %.0f s", READ_TIMEOUT)
            elif conn.phase == "write":
                log.info("control: a reply not taken within %.0f s", WRITE_TIMEOUT)
            self._drop(sel, live, conn)

    def _accept(self, sel: _Selector, live: set[_Conn]) -> None:
        assert self._sock is not None
        while len(live) < MAX_OPEN:
            try:
                sock, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors: the rest wait in the queue a while
                log.warning("control: accept: %s", exc)
                self._paused_until = time.monotonic() + ACCEPT_PAUSE
                return
            try:
                uid = peer_uid(sock)
            except OSError:
                sock.close()
                continue
            sock.setblocking(False)
            conn = _Conn(sock, uid, time.monotonic() + READ_TIMEOUT)
            live.add(conn)
            if uid in self.allowed_uids:
                sel.register(sock, selectors.EVENT_READ, conn)
                continue
            # Answered at once; then drained a little and briefly, so a slow peer still reads
            # its refusal instead of meeting a closed socket.
            log.warning("control: refused a connection from uid %d", uid)
            why = f"uid {uid} may not use the control socket"
            conn.drain = REFUSE_DRAIN_BYTES
            self._answer(sel, live, conn, {"ok": False, "status": 403, "error": why})

    def _readable(self, sel: _Selector, live: set[_Conn], conn: _Conn) -> None:
        try:
            chunk = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if conn.phase == "drain":
            conn.drain -= len(chunk)
            if not chunk or conn.drain <= 0:
                self._drop(sel, live, conn)
            return
        if not chunk:  # gone before its request was complete: nothing to answer
            self._drop(sel, live, conn)
            return
        conn.buf += chunk
        end = conn.buf.find(b"\n")
        if (end < 0 and len(conn.buf) > MAX_REQUEST) or end > MAX_REQUEST:
            sel.unregister(conn.sock)
            why = f"a request is at most {MAX_REQUEST} bytes"
            self._answer(sel, live, conn, {"ok": False, "status": 400, "error": why})
            return
        if end < 0:
            return
        sel.unregister(conn.sock)
        try:
            conn.request = parse_request(bytes(conn.buf[:end]))
        except ValueError as exc:
            self._answer(sel, live, conn, {"ok": False, "status": 400, "error": str(exc)})
            return
        conn.phase, conn.buf = "work", bytearray()
        op = conn.request.get("op")  # any JSON: the handler says what is wrong with it
        (self._long if isinstance(op, str) and op in self.slow else self._quick).put(conn)

    def _answer(self, sel: _Selector, live: set[_Conn], conn: _Conn, doc: dict[str, Any]) -> None:
        """An answer from the selector thread itself (a refusal, a bad request)."""
        conn.out, conn.phase = encode(doc), "write"
        conn.deadline = time.monotonic() + WRITE_TIMEOUT
        sel.register(conn.sock, selectors.EVENT_WRITE, conn)
        self._writable(sel, live, conn)

    def _writable(self, sel: _Selector, live: set[_Conn], conn: _Conn) -> None:
        try:
            if conn.fd is not None:
                sent = socket.send_fds(conn.sock, [conn.out[:1]], [conn.fd])
                os.close(conn.fd)
                conn.fd = None
                conn.out = conn.out[sent:]
            while conn.out:
                sent = conn.sock.send(conn.out)
                conn.out = conn.out[sent:]
        except (BlockingIOError, InterruptedError):
            return  # the rest when the peer has read some
        except OSError as exc:  # the console went away mid-answer: nothing to undo
            log.info("control: %s", exc)
            self._drop(sel, live, conn)
            return
        if conn.drain <= 0:
            self._drop(sel, live, conn)
            return
        with contextlib.suppress(OSError):  # a refused peer: read a little more, then close
            conn.sock.shutdown(socket.SHUT_WR)
        conn.phase, conn.deadline = "drain", time.monotonic() + REFUSE_DRAIN
        sel.modify(conn.sock, selectors.EVENT_READ, conn)

    @staticmethod
    def _drop(sel: _Selector, live: set[_Conn], conn: _Conn) -> None:
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(conn.sock)
        live.discard(conn)
        conn.sock.close()
        if conn.fd is not None:
            os.close(conn.fd)
            conn.fd = None


def call(path: Path, request: dict[str, Any], timeout: float | None = 60.0) -> Reply:
    """Send one request; the reply and the descriptor it carried (the caller closes it).
    Raises OSError when the daemon is not there (FileNotFoundError, ConnectionRefusedError),
    TimeoutError when it did not answer within ``timeout`` seconds (None: wait for it)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        _connect(sock, path, deadline)
        sock.settimeout(None if deadline is None else max(0.001, deadline - time.monotonic()))
        sock.sendall(encode(request))
        first, fds, _flags, _addr = socket.recv_fds(sock, 65536, 1)
        if not first:
            raise ConnectionError("the daemon closed the control connection without a reply")
        try:
            doc = json.loads(read_line(sock, first))
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        return doc, (fds[0] if fds else None)


def wake(path: Path) -> bool:
    """Tell the daemon on ``path`` that this process committed events to the outbox, so its
    publisher drains them now instead of at its next poll; False when no daemon took it (none
    running, or this user may not connect): the events still go out, only later."""
    try:
        doc, fd = call(path, {"op": WAKE}, timeout=WAKE_TIMEOUT)
    except (OSError, ValueError) as exc:  # TimeoutError is an OSError; ValueError: bad JSON
        log.debug("no daemon woken at %s: %s", path, exc)
        return False
    if fd is not None:
        os.close(fd)
    return bool(doc.get("ok"))


def listening(path: Path) -> bool:
    """Whether a process listens on the control socket ``path`` (the daemon runs). Only a
    socket that is not there, or that nobody listens on, says no: one this user may not
    connect to, or whose accept queue is full, is taken for a running daemon."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            _connect(sock, path, time.monotonic() + 2)
        except (FileNotFoundError, ConnectionRefusedError):
            return False
        except OSError:
            return True
        return True


def _connect(sock: socket.socket, path: Path, deadline: float | None) -> None:
    """Connect, waiting while the daemon's accept queue is full. A Unix socket with a timeout
    is non-blocking, and its connect then fails with EAGAIN instead of waiting for room."""
    pause = CONNECT_RETRY
    sock.setblocking(False)
    while True:
        try:
            sock.connect(str(path))
            return
        except BlockingIOError:
            if deadline is not None and time.monotonic() + pause > deadline:
                raise TimeoutError(f"the daemon's control socket stayed busy: {path}") from None
            time.sleep(pause)
            pause = min(pause * 2, 0.5)
