"""The verified copier: one source read → N destinations, each copy proven by reading it back
from disk (invariants 1, 2 and 10). The offload uses it; exports, seals and repairs will too.

Threads form a pipeline so the source read never waits for verification:

    reader ──chunks──► writer (SHA-256 once + write every destination's temp) ──files──► verifier
                          │ every VERIFY_RANGE bytes                              (waits for the
                          ▼                                                        read-backs,
              one read-back thread per destination                                 hands on)
              (write the range out, evict it, read it back from disk)

The reader does nothing but read. Each copy is read back from disk *while it is written*, a
range at a time behind the writer, so when the camera's last byte arrives only the last range
and the fsync are left (issue 18: at eight bays the last file's read-backs all at once were
what kept the officers waiting). Queues are bounded, so memory stays at ``queue_depth ×
chunk_size``. What a verified temp becomes (a final name, a catalog row) is the caller's
business: ``Hooks.on_copied`` runs on the verifier thread for each file, in order.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import mmap
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import xxhash

from camdock.adapters import fsio
from camdock.adapters.copyjob import Copied, CopyJob, Destination, Hooks, StopFlags

__all__ = [
    "COPY_NICE",
    "PROGRESS_EVERY",
    "VERIFY_RANGE",
    "Copied",
    "CopyJob",
    "Destination",
    "Hooks",
    "StopFlags",
    "VerifiedCopier",
    "discard_temps",
    "reason_of",
    "yield_cpu",
]

log = logging.getLogger(__name__)

PROGRESS_EVERY = 0.1  # seconds between byte-progress reports per copier
COPY_NICE = 5
# A copy is read back this many bytes at a time while it is written (a multiple of every page
# size: 4 KiB, and 16 KiB on a Raspberry Pi 5).
VERIFY_RANGE = 4 << 20


class _Stopped(Exception):
    pass


class _ReadBack:
    """One destination's copy of the file being written, read back from disk as it grows.

    Every method runs on the destination's read-back thread, in the order the writer asked.
    ``upto`` is best effort: what it could not prove, ``finish`` reads after the fsync."""

    def __init__(self, path: Path, after_fsync: Callable[[Path], None] | None) -> None:
        self.path = path
        self.after_fsync = after_fsync
        self.fast = xxhash.xxh3_128()
        self.done = 0  # bytes read back so far (page-aligned)
        self.asked = 0  # bytes written so far (page-aligned; set by the writer)
        self.ranges = True  # False where the filesystem cannot write a range out
        self.error: BaseException | None = None  # from upto: raised by finish
        self.fd: int | None = None

    def _open(self) -> int:
        if self.fd is None:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        return self.fd

    def upto(self) -> None:
        """Read back what is written so far: written out to the device first, evicted, then
        read (one call catches up with any number of ranges, so a busy drive reads back in
        bigger steps)."""
        end = self.asked
        if self.error is not None or not self.ranges or end <= self.done:
            return
        try:
            fd = self._open()
            if not fsio.write_out(fd, self.done, end - self.done):
                self.ranges = False
                return
            if self.after_fsync is not None:
                self.after_fsync(self.path)
            self.done += fsio.read_back(fd, self.fast, self.done, end)
        except BaseException as exc:  # noqa: BLE001 - nobody waits for upto: finish raises it
            self.error = exc  # unless the file is given up anyway

    def finish(self, stop: StopFlags) -> tuple[str, int] | None:
        """fsync, read back the rest; the copy's XXH3-128 and size as the disk holds them
        (None: cancelled). Raises the OSError of any step."""
        try:
            if stop.cancel.is_set():
                return None
            if self.error is not None:
                raise self.error
            fd = self._open()
            os.fsync(fd)
            if self.after_fsync is not None:
                self.after_fsync(self.path)
            self.done += fsio.read_back(fd, self.fast, self.done, None)
            return self.fast.hexdigest(), self.done
        finally:
            self.close()

    def close(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None


class _Writing:
    """The temp files of the file being written, one per destination, and their read-backs."""

    def __init__(self, job: CopyJob) -> None:
        self.job = job
        self.hasher = hashlib.sha256()
        self.fast = xxhash.xxh3_128()  # what each copy's read-back is compared with
        self.size = 0
        self.fds: dict[str, int] = {}
        self.readbacks: dict[str, _ReadBack] = {}
        self.asked = 0  # bytes handed to the read-backs so far

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()

    def discard(self, pools: dict[str, ThreadPoolExecutor]) -> None:
        for fd in self.fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()
        for key, rb in self.readbacks.items():
            pools[key].submit(rb.close)  # after whatever it is still reading
        self.readbacks.clear()
        discard_temps(self.job.temps)


_Chunk = tuple[str, CopyJob, bytes | str | None]
_Finishing = tuple["Copied", dict[str, "Future[tuple[str, int] | None]"]]


class VerifiedCopier:
    """Copies jobs to every destination and proves each copy by read-back; ``run`` blocks."""

    def __init__(
        self,
        destinations: list[Destination],
        hooks: Hooks,
        stop: StopFlags,
        *,
        chunk_size: int = fsio.CHUNK_SIZE,
        queue_depth: int = 8,
        read_bps: int | None = None,
        name: str = "copy",
        after_fsync: Callable[[Path], None] | None = None,
    ) -> None:
        self.dests = destinations
        self.hooks = hooks
        self.stop = stop
        self.chunk_size = chunk_size
        self.queue_depth = queue_depth
        self.read_bps = read_bps  # pace reads: the simulator's stand-in for a USB 2.0 link
        self.name = name
        # Test seam: runs whenever bytes about to be read back are on disk (a range written
        # out, or the whole copy after its fsync), before their pages are dropped.
        self._after_fsync = after_fsync
        self.bytes_read = 0

    def run(self, jobs: list[CopyJob]) -> None:
        """Copy and verify every job, calling the hooks; re-raises a thread's crash."""
        chunks: queue.Queue[_Chunk | None] = queue.Queue(maxsize=self.queue_depth)
        copied: queue.Queue[_Finishing | None] = queue.Queue(maxsize=2)
        failures: list[BaseException] = []
        # One read-back thread per destination: each reads its drive in the order written.
        pools = {
            d.key: ThreadPoolExecutor(
                1, thread_name_prefix=f"{self.name}-rb", initializer=yield_cpu
            )
            for d in self.dests
        }

        def guarded(fn: Callable[[], None]) -> Callable[[], None]:
            def body() -> None:
                yield_cpu()
                try:
                    fn()
                except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                    self.stop.abort(f"internal error: {exc!r}")
                    failures.append(exc)

            return body

        threads = [
            # Daemon threads: a reader stalled in a camera read must not keep the process.
            threading.Thread(target=guarded(lambda: self._reader(jobs, chunks)),
                             name=f"{self.name}-read", daemon=True),
            threading.Thread(target=guarded(lambda: self._writer(chunks, copied, pools)),
                             name=f"{self.name}-write", daemon=True),
            threading.Thread(target=guarded(lambda: self._verifier(copied)),
                             name=f"{self.name}-verify", daemon=True),
        ]  # fmt: skip
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            for pool in pools.values():
                pool.shutdown()
        if failures:
            raise failures[0]

    def readback(
        self, path: Path, sha256: str, size: int, what: str, dest: Destination
    ) -> str | None:
        """Read ``path`` back from disk; None when it holds exactly ``sha256``/``size``, else the
        error (a destination that fails to read stops the work)."""
        try:
            sha, got = fsio.disk_sha256(path, after_fsync=self._after_fsync)
        except OSError as exc:
            return self.dest_failed(dest, exc)
        if sha != sha256 or got != size:
            return (
                f"{what} mismatch in {dest.root}: camera {sha256[:16]}… ({size} B), "
                f"disk {sha[:16]}… ({got} B)"
            )
        return None

    def dest_failed(self, dest: Destination, exc: OSError) -> str:
        """Stop the work for a failed destination; returns the error for the file.

        Every destination must hold every file, so one that fails ends the session: this file
        and every later one are reported failed, and none of them is cleared."""
        try:
            dest.check_mounted()  # "vanished" says more than the ENOENT it causes
        except OSError as gone:
            exc = gone
        error = f"destination {dest.root}: {reason_of(exc)}"
        self.stop.abort(error)
        return error

    # -----------------------------------------------------------------------------------------

    def _reader(self, jobs: list[CopyJob], out: queue.Queue[_Chunk | None]) -> None:
        """Read the source, and nothing else: this thread is the one that must never idle."""
        paced_from = time.monotonic()
        paced_bytes = 0
        try:
            for job in jobs:
                if self.stop.reason:
                    break
                try:
                    fd = job.open()
                except (OSError, fsio.SourceChanged) as exc:
                    out.put(("error", job, f"cannot open on camera: {reason_of(exc)}"))
                    continue
                try:
                    out.put(("start", job, None))
                    self.hooks.on_started(job)
                    n = 0
                    while block := os.read(fd, self.chunk_size):
                        n += len(block)
                        self.bytes_read += len(block)
                        out.put(("data", job, block))
                        if self.read_bps:
                            paced_bytes += len(block)
                            ahead = paced_bytes / self.read_bps - (time.monotonic() - paced_from)
                            if ahead > 0:
                                self.stop.cancel.wait(ahead)
                        if self.stop.reason:
                            raise _Stopped(self.stop.reason)
                    job.check(fd, n)
                    out.put(("end", job, None))
                except (OSError, fsio.SourceChanged, _Stopped) as exc:
                    out.put(("error", job, reason_of(exc)))
                finally:
                    # A camera whose filesystem vanished (FUSE gone: ENOTCONN) fails even close;
                    # the file is already reported failed, and stays on the camera.
                    with contextlib.suppress(OSError):
                        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    with contextlib.suppress(OSError):
                        os.close(fd)
        finally:
            out.put(None)

    def _writer(
        self,
        inq: queue.Queue[_Chunk | None],
        outq: queue.Queue[_Finishing | None],
        pools: dict[str, ThreadPoolExecutor],
    ) -> None:
        """Hash each chunk once, write it to every destination's temp file, and have each
        destination read back what is written, a range at a time."""
        cur: _Writing | None = None
        last_progress = 0.0
        page = mmap.PAGESIZE
        try:
            while (msg := inq.get()) is not None:
                kind, job, payload = msg
                if kind == "start":
                    cur = self._open_temps(job, pools)
                elif kind == "data" and cur is not None and cur.job is job:
                    assert isinstance(payload, bytes)
                    cur.hasher.update(payload)
                    cur.fast.update(payload)
                    cur.size += len(payload)
                    if not self._write_chunk(cur, payload, pools):
                        cur = None
                        continue
                    if cur.size - cur.asked >= VERIFY_RANGE:
                        cur.asked = cur.size - cur.size % page  # whole pages only
                        for key, rb in cur.readbacks.items():
                            rb.asked = cur.asked
                            pools[key].submit(rb.upto)
                    if (now := time.monotonic()) - last_progress >= PROGRESS_EVERY or (
                        cur.size == job.size
                    ):
                        last_progress = now
                        self.hooks.on_bytes(job, cur.size)
                elif kind == "error":
                    if cur is not None and cur.job is job:
                        cur.discard(pools)
                        cur = None
                    self.hooks.on_failed(job, str(payload))
                elif kind == "end" and cur is not None and cur.job is job:
                    cur.close()
                    finishing = {key: pools[key].submit(rb.finish, self.stop)
                                 for key, rb in cur.readbacks.items()}  # fmt: skip
                    outq.put((Copied(job, cur.hasher.hexdigest(), cur.size, dict(job.temps),
                                     fast=cur.fast.hexdigest()), finishing))  # fmt: skip
                    cur = None
        finally:
            if cur is not None:
                cur.discard(pools)
            outq.put(None)

    def _open_temps(self, job: CopyJob, pools: dict[str, ThreadPoolExecutor]) -> _Writing | None:
        w = _Writing(job)
        for dest in self.dests:
            if dest.key not in job.temps:
                continue  # hash only: the caller says this destination has it
            try:
                dest.check_mounted()
                fsio.make_dirs_durable(dest.root, job.dirrel)
                w.fds[dest.key] = fsio.create_temp(job.temps[dest.key])
            except OSError as exc:
                w.discard(pools)
                self.hooks.on_failed(job, self.dest_failed(dest, exc))
                return None
            w.readbacks[dest.key] = _ReadBack(job.temps[dest.key], self._after_fsync)
        return w

    def _write_chunk(self, w: _Writing, block: bytes, pools: dict[str, ThreadPoolExecutor]) -> bool:
        for key, fd in w.fds.items():
            try:
                fsio.write_all(fd, block)
            except OSError as exc:
                w.discard(pools)
                dest = next(d for d in self.dests if d.key == key)
                self.hooks.on_failed(w.job, self.dest_failed(dest, exc))
                return False
        return True

    def _verifier(self, inq: queue.Queue[_Finishing | None]) -> None:
        """Wait for each file's read-backs (fsync, the last range), then hand the file on."""
        with self.hooks.verifier_context():
            while (item := inq.get()) is not None:
                c, finishing = item
                errors = [e for key, fut in finishing.items() if (e := self._proven(c, key, fut))]
                if self.stop.cancel.is_set():
                    discard_temps(c.temps)
                    self.hooks.on_cancelled(c.job)
                    continue
                if errors:
                    discard_temps(c.temps)
                    c.error = "; ".join(errors)
                self.hooks.on_copied(c)

    def _proven(self, c: Copied, key: str, fut: Future[tuple[str, int] | None]) -> str | None:
        """A new copy read back from disk and compared with the stream it was written from by
        XXH3-128 of the same bytes: SHA-256 (the evidence hash) was taken once, from the
        camera's bytes, on their way to this very write (README, "Why XXH3 for the read-back").
        None when it matches (or the work was cancelled), else the error."""
        dest = next(d for d in self.dests if d.key == key)
        try:
            got = fut.result()
        except OSError as exc:
            return self.dest_failed(dest, exc)
        if got is None:
            return None
        fast, size = got
        if fast != c.fast or size != c.size:
            return (f"read-back mismatch in {dest.root}: written {c.fast[:16]}… ({c.size} B), "
                    f"disk {fast[:16]}… ({size} B)")  # fmt: skip
        return None


def discard_temps(paths: dict[str, Path]) -> None:
    """Remove temp files, ignoring what is already gone or cannot be removed."""
    for p in paths.values():
        with contextlib.suppress(OSError):
            fsio.unlink_quietly(p)


def yield_cpu() -> None:
    """Lower this thread's CPU priority (Linux nice is per thread): when eight bays saturate a
    small CPU, the event loop that drives the LEDs and buttons still runs at once."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), COPY_NICE)


def reason_of(exc: BaseException) -> str:
    """An error's reason for a person: the OS's words where there are some."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
