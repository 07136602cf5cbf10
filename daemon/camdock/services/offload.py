"""The verified offload engine (REG-4.1.2, REG-4.2.1–4.2.4, REG-4.2.6).

One camera volume → N destinations, with invariants 1–3 of ARCHITECTURE.md:

* a file leaves the camera only after every destination holds a copy whose SHA-256, read back
  from disk, equals the hash of what was read from the camera, and the catalog row saying so is
  committed;
* a file under its final name is always complete and verified (temp name, fsync, read-back,
  no-clobber link, fsync dir);
* a SIGKILL at any instant loses nothing: the per-file journal in the catalog lets a re-run
  remove stale temp files, re-verify what was not recorded as verified, and never catalogue the
  same recording twice.

Three threads form a pipeline so the camera read never waits for verification:

    reader ──chunks──► writer (SHA-256 + write to every destination) ──files──► finisher
                                                                               (fsync, evict,
                                                                               read back, link,
                                                                               catalog, clear)

The reader does nothing but read the camera; the finisher verifies file k while the reader is
already on file k+1. Queues are bounded, so memory stays at ``queue_depth × chunk_size``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import queue
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path, PurePosixPath
from typing import Any

from sqlite_utils import Database

from camdock import custody
from camdock.adapters import fsio
from camdock.adapters.catalog import one, open_catalog, rows, utcnow, write_txn
from camdock.core.naming import (
    DutySlot,
    DutySlots,
    Filing,
    RecordingTime,
    footage_relpath,
    recording_time,
    safe_component,
    safe_extension,
)
from camdock.core.retention import default_window
from camdock.events import EventContext, EventType, in_context

log = logging.getLogger(__name__)

TEMP_PREFIX = ".camdock-"
PROGRESS_EVERY = 0.1  # seconds between "bytes" progress events per offload
TEMP_SUFFIX = ".part"

# sysexits.h, so scripts and systemd can tell the cases apart.
EX_USAGE = 64
EX_NOINPUT = 66
EX_CANTCREAT = 73
EX_TEMPFAIL = 75


class OffloadRefused(Exception):
    """The offload cannot start; nothing was written."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


ProgressFn = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class OffloadRequest:
    source: Path
    destinations: tuple[Path, ...]
    camera_id: str
    officer_name: str
    officer_badge: str
    catalog: Path
    slots: DutySlots
    tz: tzinfo
    unit: str = ""
    clear: bool = False
    chunk_size: int = fsio.CHUNK_SIZE
    # Chunks in flight between reader and writer: enough to keep a camera link busy, small
    # enough that eight bays stay within the Pi's memory budget (bench/RESULTS.md).
    queue_depth: int = 8
    # Pace camera reads to this many bytes/s: the simulator's stand-in for a USB 2.0 link.
    read_bps: int | None = None
    # The station and bay this offload runs in: its events go to the outbox, in the same
    # transactions as the catalog changes they report. None (the CLI): no events.
    events: EventContext | None = None


@dataclass
class FileResult:
    source: str
    size: int
    sha256: str | None = None
    stored: dict[str, str] = field(default_factory=dict)  # destination root → final path
    status: str = "pending"  # verified | already-catalogued | failed | cancelled
    cleared: bool = False
    error: str | None = None

    @property
    def verified(self) -> bool:
        return self.status in ("verified", "already-catalogued")

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "size": self.size,
            "sha256": self.sha256,
            "destinations": self.stored,
            "status": self.status,
            "verified": self.verified,
            "cleared": self.cleared,
            "error": self.error,
        }


@dataclass
class OffloadReport:
    session_uid: str
    camera_id: str
    clear_requested: bool
    files: list[FileResult]
    skipped: list[fsio.Skipped]
    warnings: list[str]
    seconds: float
    bytes_read: int
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        """Every file verified in every destination (and cleared, when clearing was asked)."""
        return not self.cancelled and all(
            f.verified and (f.cleared or not self.clear_requested) for f in self.files
        )

    def as_json(self) -> dict[str, Any]:
        verified = [f for f in self.files if f.verified]
        return {
            "session": self.session_uid,
            "camera": self.camera_id,
            "ok": self.ok,
            "cancelled": self.cancelled,
            "files": [f.as_json() for f in self.files],
            "skipped": [{"source": s.path, "reason": s.reason} for s in self.skipped],
            "warnings": self.warnings,
            "totals": {
                "files": len(self.files),
                "verified": len(verified),
                "failed": len(self.files) - len(verified),
                "cleared": sum(f.cleared for f in self.files),
                "skipped": len(self.skipped),
                "bytes_verified": sum(f.size for f in verified),
            },
            "seconds": round(self.seconds, 3),
            "mb_per_s": round(self.bytes_read / 1e6 / self.seconds, 2) if self.seconds else 0.0,
        }


@dataclass(frozen=True)
class _Destination:
    root: Path  # resolved
    identity: tuple[int, int]  # (st_dev, st_ino) at start: a vanished mount is noticed

    @property
    def key(self) -> str:
        return str(self.root)


@dataclass
class _Item:
    seq: int
    src: fsio.SourceFile
    when: RecordingTime
    slot: DutySlot
    temp_name: str
    confirm: dict[str, Any] | None  # the catalog row this file seems to be already: hash only
    result: FileResult

    @property
    def dirrel(self) -> tuple[str, str, str]:
        s = self.when.start
        return f"{s:%Y}", f"{s:%m}", f"{s:%d}"


@dataclass
class _Copied:
    item: _Item
    sha256: str
    size: int
    temps: dict[str, Path]  # destination key → temp path (empty for hash-only items)


class _StopFlags:
    """Why the pipeline is stopping early, if it is."""

    def __init__(self) -> None:
        self.cancel = threading.Event()
        self._abort: str | None = None
        self._lock = threading.Lock()

    def abort(self, reason: str) -> None:
        with self._lock:
            if self._abort is None:
                self._abort = reason
                log.error("offload stopping: %s", reason)

    @property
    def reason(self) -> str | None:
        if self._abort is not None:
            return self._abort
        return "cancelled" if self.cancel.is_set() else None


class OffloadEngine:
    """Runs one offload session; ``run()`` blocks (call it from a thread in asyncio code)."""

    def __init__(
        self,
        request: OffloadRequest,
        *,
        progress: ProgressFn | None = None,
        after_fsync: Callable[[Path], None] | None = None,
    ) -> None:
        self.req = request
        self._progress = progress
        self._after_fsync = after_fsync  # test seam: see fsio.disk_sha256
        self._stop = _StopFlags()
        self._uid = uuid.uuid4().hex[:12]
        self._seq = 0
        self._retries: list[_Item] = []
        self._bytes_read = 0
        self._dests: list[_Destination] = []
        self._warnings: list[str] = []
        self._session_id = 0
        self._filing = Filing(request.officer_name, request.officer_badge, request.camera_id)
        station = request.events.topics.station if request.events else socket.gethostname()
        self._actor = f"camdock@{station}"

    def cancel(self) -> None:
        """Stop soon, leaving everything resumable (thread-safe)."""
        self._stop.cancel.set()

    def _emit(self, event: str, **data: Any) -> None:
        if self._progress is not None:
            self._progress(event, data)

    # -----------------------------------------------------------------------------------------
    # The session

    def run(self) -> OffloadReport:
        started = time.monotonic()
        self._preflight()
        db = open_catalog(self.req.catalog)
        locks = self.req.catalog.parent / (self.req.catalog.name + ".locks")
        locks.mkdir(exist_ok=True)
        try:
            with (
                _flock(locks / f"camera-{safe_component(self.req.camera_id, 100)}.lock") as got,
                _flock(locks / f"session-{self._uid}.lock"),
            ):
                if not got:
                    raise OffloadRefused(
                        f"camera {self.req.camera_id} is being offloaded by another camdock "
                        "process; try again when it has finished",
                        EX_TEMPFAIL,
                    )
                recover_interrupted(db, locks)
                report = self._session(db)
        finally:
            db.close()
            with contextlib.suppress(FileNotFoundError):
                (locks / f"session-{self._uid}.lock").unlink()
        report.seconds = time.monotonic() - started
        return report

    def _session(self, db: Database) -> OffloadReport:
        try:
            files, skipped = fsio.scan_source(self.req.source)
        except OSError as exc:
            raise OffloadRefused(
                f"cannot read source {self.req.source}: {exc.strerror}", EX_NOINPUT
            ) from exc
        for s in skipped:
            log.log(
                logging.INFO if s.expected else logging.WARNING, "skipped %s: %s", s.path, s.reason
            )
        with write_txn(db):
            self._session_id = _pk(
                db.table("offload_sessions")
                .insert(
                    {
                        "uid": self._uid,
                        "camera_id": self.req.camera_id,
                        "officer_name": self.req.officer_name,
                        "officer_badge": self.req.officer_badge,
                        "unit": self.req.unit,
                        "source": str(self.req.source),
                        "destinations": json.dumps([d.key for d in self._dests]),
                        "clear_requested": int(self.req.clear),
                        "started_at": utcnow(),
                        "status": "running",
                        "files_total": len(files),
                        "host": socket.gethostname(),
                    }
                )
                .last_pk
            )
            in_context(
                db,
                self.req.events,
                EventType.OFFLOAD_STARTED,
                session=self._uid,
                files=len(files),
                bytes=sum(f.size for f in files),
                skipped=len(skipped),
            )
        self._reconcile_cleared(db, files)
        self._emit(
            "session-started",
            session=self._uid,
            files=len(files),
            bytes=sum(f.size for f in files),
        )

        items = self._plan(db, files, force_copy=False)
        results = {i.src.parts: i.result for i in items}
        self._pipeline(items)
        if self._retries:
            # Files that looked catalogued by name/size/mtime but hashed differently: copy them.
            again = self._plan(db, [i.src for i in self._retries], force_copy=True)
            self._retries = []
            results.update({i.src.parts: i.result for i in again})
            self._pipeline(again)

        reason = self._stop.reason
        for r in results.values():
            if r.status == "pending":
                r.status = "cancelled" if reason == "cancelled" else "failed"
                r.error = r.error or f"not attempted: {reason}"
        report = OffloadReport(
            session_uid=self._uid,
            camera_id=self.req.camera_id,
            clear_requested=self.req.clear,
            files=list(results.values()),
            skipped=skipped,
            warnings=self._warnings,
            seconds=0.0,
            bytes_read=self._bytes_read,
            cancelled=reason == "cancelled",
        )
        status = "interrupted" if report.cancelled else "completed" if report.ok else "failed"
        verified = [f for f in report.files if f.verified]
        with write_txn(db):
            # Files that never reached the finisher: their temps are gone (discarded on error).
            db.execute(
                "UPDATE offload_files SET state = ?, updated_at = ? "
                "WHERE session_id = ? AND state = 'planned'",
                ("cancelled" if report.cancelled else "failed", utcnow(), self._session_id),
            )
            db.table("offload_sessions").update(
                self._session_id,
                {
                    "ended_at": utcnow(),
                    "status": status,
                    "files_verified": len(verified),
                    "files_failed": len(report.files) - len(verified),
                    "files_cleared": sum(f.cleared for f in report.files),
                    "bytes_verified": sum(f.size for f in verified),
                },
            )
            totals = report.as_json()["totals"]
            if status == "completed":
                in_context(
                    db, self.req.events, EventType.OFFLOAD_COMPLETED, session=self._uid, **totals
                )
            else:
                first = next((f.error for f in report.files if f.error), None)
                in_context(
                    db,
                    self.req.events,
                    EventType.OFFLOAD_FAILED,
                    session=self._uid,
                    status=status,
                    error=first,
                    **totals,
                )
        self._emit("session-ended", session=self._uid, status=status)
        return report

    def _preflight(self) -> None:
        """Refuse, before anything is written, what cannot work or could lose footage."""
        req = self.req
        for label, value in (
            ("camera id", req.camera_id),
            ("officer name", req.officer_name),
            ("officer badge", req.officer_badge),
        ):
            if not value.strip():
                raise OffloadRefused(f"{label} must not be empty", EX_USAGE)
        if not req.destinations:
            raise OffloadRefused("at least one destination (--to) is needed", EX_USAGE)
        source = req.source
        if not source.is_dir():
            raise OffloadRefused(f"source {source} is not a directory (missing?)", EX_NOINPUT)
        if not os.access(source, os.R_OK | os.X_OK):
            raise OffloadRefused(f"source {source} is not readable", EX_NOINPUT)
        src_real = source.resolve()
        seen: dict[tuple[int, int], Path] = {}
        devices: dict[int, Path] = {}
        for dest in req.destinations:
            if not dest.is_dir():
                raise OffloadRefused(
                    f"destination {dest} is not a directory (missing?)", EX_CANTCREAT
                )
            if not os.access(dest, os.W_OK | os.X_OK):
                raise OffloadRefused(
                    f"destination {dest} is not writable (read-only filesystem?)", EX_CANTCREAT
                )
            real = dest.resolve()
            if real == src_real or real.is_relative_to(src_real):
                raise OffloadRefused(f"destination {dest} is inside source {source}", EX_USAGE)
            if src_real.is_relative_to(real):
                raise OffloadRefused(f"source {source} is inside destination {dest}", EX_USAGE)
            ident = fsio.fs_identity(real)
            if ident in seen:
                raise OffloadRefused(
                    f"destination {dest} is the same directory as {seen[ident]}", EX_USAGE
                )
            seen[ident] = dest
            if ident[0] in devices:
                self._warnings.append(
                    f"destinations {devices[ident[0]]} and {dest} are on one filesystem: a "
                    "failure of that disk loses both copies (REG-4.2.6 wants a second device)"
                )
            devices[ident[0]] = dest
            self._dests.append(_Destination(real, ident))

    def _plan(self, db: Database, files: list[fsio.SourceFile], force_copy: bool) -> list[_Item]:
        """Decide where each file goes, and journal the plan before any byte is written, so a
        re-run knows every temp name this session may create."""
        items = []
        for src in files:
            self._seq += 1
            when = recording_time(src.name, src.mtime_ns, self.req.tz)
            confirm = None if force_copy else self._catalogued_as(db, src)
            items.append(
                _Item(
                    seq=self._seq,
                    src=src,
                    when=when,
                    slot=self.req.slots.slot_of(when.start),
                    temp_name=f"{TEMP_PREFIX}{self._uid}-{self._seq:05d}{TEMP_SUFFIX}",
                    confirm=confirm,
                    result=FileResult(source=src.display, size=src.size),
                )
            )
        with write_txn(db):
            db.table("offload_files").insert_all(
                {
                    "session_id": self._session_id,
                    "seq": i.seq,
                    "source_relpath": i.src.raw,
                    "source_display": i.src.display,
                    "size": i.src.size,
                    "mtime_ns": i.src.mtime_ns,
                    "temp_paths": json.dumps(
                        [] if i.confirm else [str(self._temp_path(d, i)) for d in self._dests]
                    ),
                    "state": "planned",
                    "updated_at": utcnow(),
                }
                for i in items
            )
        return items

    def _temp_path(self, dest: _Destination, item: _Item) -> Path:
        return dest.root.joinpath(*item.dirrel, item.temp_name)

    def _catalogued_as(self, db: Database, src: fsio.SourceFile) -> dict[str, Any] | None:
        """The catalog row this camera file already is — same camera, path, size and mtime, and
        stored in every requested destination — so it needs hashing, not copying."""
        row = one(
            db,
            "SELECT * FROM recordings WHERE camera_id = ? AND original_name_raw = ? "
            "AND size = ? AND source_mtime_ns = ?",
            (self.req.camera_id, src.raw, src.size, src.mtime_ns),
        )
        if row is None:
            return None
        stored = {c["destination"] for c in rows(db, _COPIES, (row["id"],))}
        return row if all(d.key in stored for d in self._dests) else None

    def _reconcile_cleared(self, db: Database, files: list[fsio.SourceFile]) -> None:
        """A crash between deleting a camera file and recording it leaves the catalog saying
        'not cleared' for a file that is gone; record it now that the camera shows it gone."""
        present = {f.raw for f in files}
        pending = rows(
            db,
            "SELECT f.id, f.source_relpath, f.recording_id FROM offload_files f "
            "JOIN offload_sessions s ON s.id = f.session_id "
            "JOIN recordings r ON r.id = f.recording_id "
            "WHERE s.camera_id = ? AND s.status = 'interrupted' AND s.clear_requested = 1 "
            "AND f.state = 'catalogued' AND r.cleared_at IS NULL",
            (self.req.camera_id,),
        )
        gone = [p for p in pending if bytes(p["source_relpath"]) not in present]
        if not gone:
            return
        now = utcnow()
        with write_txn(db):
            for p in gone:
                db.execute(
                    "UPDATE recordings SET cleared_at = ? WHERE id = ? AND cleared_at IS NULL",
                    (now, p["recording_id"]),
                )
                db.table("offload_files").update(
                    p["id"],
                    {
                        "state": "cleared",
                        "error": "deletion confirmed on re-run",
                        "updated_at": now,
                    },
                )
                custody.append(
                    db,
                    "clear",
                    p["recording_id"],
                    self._actor,
                    {
                        "camera": self.req.camera_id,
                        "confirmed_on_rerun": True,
                        "source": fsio.display(bytes(p["source_relpath"])),
                    },
                )
        log.info("recorded %d camera files as cleared by an interrupted session", len(gone))

    # -----------------------------------------------------------------------------------------
    # The pipeline

    def _pipeline(self, items: list[_Item]) -> None:
        chunks: queue.Queue[tuple[str, _Item, bytes | str | None] | None] = queue.Queue(
            maxsize=self.req.queue_depth
        )
        copied: queue.Queue[_Copied | None] = queue.Queue(maxsize=2)
        failures: list[BaseException] = []

        def guarded(fn: Callable[[], None]) -> Callable[[], None]:
            def body() -> None:
                _yield_cpu()
                try:
                    fn()
                except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                    self._stop.abort(f"internal error: {exc!r}")
                    failures.append(exc)

            return body

        threads = [
            threading.Thread(
                target=guarded(lambda: self._reader(items, chunks)),
                name=f"offload-{self._uid}-read",
            ),
            threading.Thread(
                target=guarded(lambda: self._writer(chunks, copied)),
                name=f"offload-{self._uid}-write",
            ),
            threading.Thread(
                target=guarded(lambda: self._finisher(copied)), name=f"offload-{self._uid}-verify"
            ),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failures:
            raise failures[0]

    def _reader(
        self,
        items: list[_Item],
        out: queue.Queue[tuple[str, _Item, bytes | str | None] | None],
    ) -> None:
        """Read the camera, and nothing else: this thread is the one that must never idle."""
        paced_from = time.monotonic()
        paced_bytes = 0
        try:
            for item in items:
                if self._stop.reason:
                    break
                try:
                    fd = fsio.open_source(self.req.source, item.src)
                except (OSError, fsio.SourceChanged) as exc:
                    out.put(("error", item, f"cannot open on camera: {_why(exc)}"))
                    continue
                try:
                    out.put(("start", item, None))
                    self._emit("file-started", source=item.src.display, size=item.src.size)
                    n = 0
                    while block := os.read(fd, self.req.chunk_size):
                        n += len(block)
                        self._bytes_read += len(block)
                        out.put(("data", item, block))
                        if self.req.read_bps:
                            paced_bytes += len(block)
                            elapsed = time.monotonic() - paced_from
                            ahead = paced_bytes / self.req.read_bps - elapsed
                            if ahead > 0:
                                self._stop.cancel.wait(ahead)
                        if self._stop.reason:
                            raise _Stopped(self._stop.reason)
                    fsio.check_unchanged(fd, item.src, n)
                    out.put(("end", item, None))
                except (OSError, fsio.SourceChanged, _Stopped) as exc:
                    out.put(("error", item, _why(exc)))
                finally:
                    with contextlib.suppress(OSError):
                        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    os.close(fd)
        finally:
            out.put(None)

    def _writer(
        self,
        inq: queue.Queue[tuple[str, _Item, bytes | str | None] | None],
        outq: queue.Queue[_Copied | None],
    ) -> None:
        """Hash each chunk once and write it to every destination's temp file."""
        cur: _Writing | None = None
        last_progress = 0.0
        try:
            while (msg := inq.get()) is not None:
                kind, item, payload = msg
                if kind == "start":
                    cur = self._open_temps(item)
                elif kind == "data" and cur is not None and cur.item is item:
                    assert isinstance(payload, bytes)
                    cur.hasher.update(payload)
                    cur.size += len(payload)
                    if not self._write_chunk(cur, payload):
                        cur = None
                    elif (now := time.monotonic()) - last_progress >= PROGRESS_EVERY or (
                        cur.size == item.src.size
                    ):
                        last_progress = now
                        self._emit("bytes", source=item.src.display, done=cur.size)
                elif kind == "error":
                    if cur is not None and cur.item is item:
                        cur.discard()
                        cur = None
                    self._fail(item, str(payload))
                elif kind == "end" and cur is not None and cur.item is item:
                    cur.close()
                    outq.put(_Copied(item, cur.hasher.hexdigest(), cur.size, cur.paths))
                    cur = None
        finally:
            if cur is not None:
                cur.discard()
            outq.put(None)

    def _open_temps(self, item: _Item) -> _Writing | None:
        w = _Writing(item)
        if item.confirm is not None:
            return w  # hash only: the catalog says every destination has it
        for dest in self._dests:
            path = self._temp_path(dest, item)
            try:
                self._check_mounted(dest)
                fsio.make_dirs_durable(dest.root, item.dirrel)
                w.fds[dest.key] = fsio.create_temp(path)
                w.paths[dest.key] = path
            except OSError as exc:
                w.discard()
                self._fail(item, self._dest_failed(dest, exc))
                return None
        return w

    def _write_chunk(self, w: _Writing, block: bytes) -> bool:
        for key, fd in w.fds.items():
            try:
                fsio.write_all(fd, block)
            except OSError as exc:
                w.discard()
                dest = next(d for d in self._dests if d.key == key)
                self._fail(w.item, self._dest_failed(dest, exc))
                return False
        return True

    def _dest_failed(self, dest: _Destination, exc: OSError) -> str:
        """Stop the session for a failed destination; returns the error for the file.

        Every destination must hold every file, so one that fails ends the session: this file
        and every later one are reported failed, and none of them is cleared."""
        try:
            self._check_mounted(dest)  # "vanished" says more than the ENOENT it causes
        except OSError as gone:
            exc = gone
        error = f"destination {dest.root}: {_why(exc)}"
        self._stop.abort(error)
        return error

    def _fail(self, item: _Item, error: str) -> None:
        r = item.result
        if r.status != "pending":
            return
        if self._stop.cancel.is_set():
            r.status, r.error = "cancelled", error  # stays on the camera; the next dock resumes
            log.info("%s: %s", r.source, error)
            return
        r.status, r.error = "failed", error
        log.error("%s: %s", r.source, error)
        self._emit("file-failed", source=r.source, error=error)

    def _finisher(self, inq: queue.Queue[_Copied | None]) -> None:
        """Verify by read-back, give final names, catalog, then (only then) clear."""
        db = open_catalog(self.req.catalog)
        pool = ThreadPoolExecutor(
            len(self._dests), thread_name_prefix=f"offload-{self._uid}-rb", initializer=_yield_cpu
        )
        try:
            while (c := inq.get()) is not None:
                if self._stop.cancel.is_set():
                    _discard_temps(c.temps)
                    c.item.result.status = "cancelled"
                    continue
                try:
                    self._finish(db, pool, c)
                except Exception as exc:  # bulkhead per file: fail it, keep the camera copy
                    log.exception("%s: finishing failed", c.item.result.source)
                    _discard_temps(c.temps)
                    self._fail(c.item, f"internal error: {exc!r}")
                    if isinstance(exc, sqlite3.Error):
                        self._stop.abort(f"catalog error: {exc}")
        finally:
            pool.shutdown()
            db.close()

    def _finish(self, db: Database, pool: ThreadPoolExecutor, c: _Copied) -> None:
        item, r = c.item, c.item.result
        r.sha256 = c.sha256
        if item.confirm is not None and item.confirm["sha256"] != c.sha256:
            log.warning(
                "%s: same name, size and time as a catalogued file, other content", r.source
            )
            self._retries.append(item)
            self._journal(
                db, item, "abandoned", sha256=c.sha256, error="content differs: copied again"
            )
            return
        existing = item.confirm or one(
            db,
            "SELECT * FROM recordings WHERE camera_id = ? AND sha256 = ?",
            (self.req.camera_id, c.sha256),
        )
        have = (
            {}
            if existing is None
            else {row["destination"]: row for row in rows(db, _COPIES, (existing["id"],))}
        )

        def check(dest: _Destination) -> str | None:
            """Read back what this destination holds for the file; None when it matches."""
            try:
                if dest.key in have:
                    # Already stored (a re-run, or the same content twice on the camera): the
                    # camera copy may go only if the stored copy is still intact.
                    if dest.key in c.temps:
                        fsio.unlink_quietly(c.temps[dest.key])
                    sha, size = fsio.disk_sha256(dest.root / have[dest.key]["relpath"])
                    what = "catalogued copy"
                else:
                    sha, size = fsio.disk_sha256(c.temps[dest.key], after_fsync=self._after_fsync)
                    what = "read-back"
            except OSError as exc:
                return self._dest_failed(dest, exc)
            if sha != c.sha256 or size != c.size:
                return (
                    f"{what} mismatch in {dest.root}: camera {c.sha256[:16]}… ({c.size} B), "
                    f"disk {sha[:16]}… ({size} B)"
                )
            return None

        errors = [e for e in pool.map(check, self._dests) if e]
        if errors:
            _discard_temps(c.temps)
            self._fail(item, "; ".join(errors))
            self._journal(db, item, "failed", sha256=c.sha256, error=r.error)
            return

        new = [d for d in self._dests if d.key not in have]
        if existing is not None:
            rel, adopt = PurePosixPath(existing["relpath"]), set[str]()
        else:
            rel, adopt = self._choose_relpath(db, item, c, new)
        for dest in new:
            try:
                self._give_final_name(dest, rel, c.temps[dest.key], adopt=dest.key in adopt)
            except OSError as exc:
                _discard_temps(c.temps)
                self._fail(item, self._dest_failed(dest, exc))
                self._journal(db, item, "failed", sha256=c.sha256, error=r.error)
                return
        now = utcnow()
        with write_txn(db):
            rec_id = existing["id"] if existing is not None else self._insert_recording(db, c, rel)
            for dest in new:
                db.table("copies").insert(
                    {
                        "recording_id": rec_id,
                        "destination": dest.key,
                        "relpath": str(rel),
                        "sha256": c.sha256,
                        "verified_at": now,
                    }
                )
            self._journal(db, item, "catalogued", sha256=c.sha256, recording_id=rec_id, txn=False)
            if new:  # REG-7.1: stored (and verified) in these destinations
                custody.append(
                    db,
                    "store",
                    rec_id,
                    self._actor,
                    {
                        "sha256": c.sha256,
                        "size": c.size,
                        "path": str(rel),
                        "destinations": [d.key for d in new],
                        "camera": self.req.camera_id,
                        "officer": self.req.officer_badge,
                        "session": self._uid,
                        "source": item.src.display,
                    },
                )
            in_context(
                db,
                self.req.events,
                EventType.FILE_VERIFIED,
                session=self._uid,
                source=r.source,
                sha256=c.sha256,
                size=c.size,
                path=str(rel),
                recording=rec_id,
                recorded_start=item.when.start.isoformat(),
                destinations=len(self._dests),
                already_catalogued=existing is not None,
            )
        r.status = "verified" if existing is None else "already-catalogued"
        r.stored = {d.key: str(d.root / rel) for d in self._dests}
        self._emit("file-verified", source=r.source, sha256=c.sha256, path=str(rel))
        if self.req.clear:
            self._clear(db, item, rec_id)

    def _give_final_name(
        self, dest: _Destination, rel: PurePosixPath, temp: Path, adopt: bool
    ) -> None:
        self._check_mounted(dest)
        fsio.make_dirs_durable(dest.root, rel.parent.parts)
        if adopt:
            fsio.unlink_quietly(temp)
        else:
            fsio.link_no_clobber(temp, dest.root / rel)

    @staticmethod
    def _check_mounted(dest: _Destination) -> None:
        """A lazily unmounted drive leaves its mount point behind on the SD card: writing there
        would put footage on the wrong disk. The root must still be the one we started with."""
        try:
            same = fsio.fs_identity(dest.root) == dest.identity
        except OSError:
            same = False
        if not same:
            raise OSError(errno.ENODEV, "destination vanished (unmounted?)")

    def _clear(self, db: Database, item: _Item, rec_id: int) -> None:
        """REG-4.1.2: the camera copy goes only now — every destination verified, row committed."""
        r = item.result
        try:
            fsio.remove_source(self.req.source, item.src)
        except (OSError, fsio.SourceChanged) as exc:
            r.error = f"verified but not cleared: {_why(exc)}"
            log.error("%s: %s", r.source, r.error)
            return
        with write_txn(db):
            db.execute(
                "UPDATE recordings SET cleared_at = ? WHERE id = ? AND cleared_at IS NULL",
                (utcnow(), rec_id),
            )
            self._journal(db, item, "cleared", txn=False)
            custody.append(
                db,
                "clear",
                rec_id,
                self._actor,
                {
                    "camera": self.req.camera_id,
                    "source": item.src.display,
                    "sha256": item.result.sha256,
                    "session": self._uid,
                },
            )
            in_context(
                db,
                self.req.events,
                EventType.CAMERA_CLEARED,
                session=self._uid,
                source=r.source,
                sha256=r.sha256,
                recording=rec_id,
            )
        r.cleared = True
        self._emit("file-cleared", source=r.source)

    def _choose_relpath(
        self, db: Database, item: _Item, c: _Copied, dests: list[_Destination]
    ) -> tuple[PurePosixPath, set[str]]:
        """The file's name: deterministic, and never one that holds other content.

        A name already on disk with this very content (a crash after the link, before the
        catalog commit) is adopted after a read-back; any other clash takes the next number.
        """
        ext = safe_extension(item.src.name)
        for seq in range(1, 10_000):
            rel = footage_relpath(item.when.start, item.slot, self._filing, ext, seq)
            if one(db, "SELECT id FROM recordings WHERE relpath = ?", (str(rel),)):
                continue
            adopt: set[str] = set()
            for dest in dests:
                final = dest.root / rel
                if not os.path.lexists(final):
                    continue
                ours = final.is_file() and not final.is_symlink()
                if ours and fsio.disk_sha256(final)[0] == c.sha256:
                    adopt.add(dest.key)
                    continue
                break  # taken by something else
            else:
                return rel, adopt
        raise RuntimeError(f"no free footage name for {item.result.source}")

    def _insert_recording(self, db: Database, c: _Copied, rel: PurePosixPath) -> int:
        item = c.item
        retain_until, destroy_by = default_window(item.when.start.date())
        return _pk(
            db.table("recordings")
            .insert(
                {
                    "sha256": c.sha256,
                    "size": c.size,
                    "camera_id": self.req.camera_id,
                    "officer_name": self.req.officer_name,
                    "officer_badge": self.req.officer_badge,
                    "unit": self.req.unit,
                    "duty_slot": item.slot.label,
                    "duty_slot_start": item.slot.start.isoformat(),
                    "recorded_start": item.when.start.isoformat(),
                    "recorded_end": item.when.end.isoformat() if item.when.end else None,
                    "time_source": item.when.source,
                    "original_name": item.src.display,
                    "original_name_raw": item.src.raw,
                    "source_mtime_ns": item.src.mtime_ns,
                    "relpath": str(rel),
                    "offload_session_id": self._session_id,
                    "ingested_at": utcnow(),
                    "retain_until": retain_until.isoformat(),
                    "destroy_by": destroy_by.isoformat(),
                    "hold": 0,
                }
            )
            .last_pk
        )

    def _journal(
        self, db: Database, item: _Item, state: str, *, txn: bool = True, **extra: Any
    ) -> None:
        values = {"state": state, "updated_at": utcnow(), **extra}
        # Column names come from this module's keyword arguments, never from input.
        sql = "UPDATE offload_files SET " + ", ".join(f"{k} = ?" for k in values)  # noqa: S608
        sql += " WHERE session_id = ? AND seq = ?"
        params = [*values.values(), self._session_id, item.seq]
        if txn:
            with write_txn(db):
                db.execute(sql, params)
        else:
            db.execute(sql, params)


_COPIES = "SELECT * FROM copies WHERE recording_id = ?"


def _pk(pk: object) -> int:
    """The rowid sqlite-utils reports after an insert (typed loosely by sqlite-utils)."""
    assert isinstance(pk, int)
    return pk


class _Stopped(Exception):
    pass


class _Writing:
    """The temp files of the file being written, one per destination."""

    def __init__(self, item: _Item) -> None:
        self.item = item
        self.hasher = hashlib.sha256()
        self.size = 0
        self.fds: dict[str, int] = {}
        self.paths: dict[str, Path] = {}

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()

    def discard(self) -> None:
        for fd in self.fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()
        _discard_temps(self.paths)


def _discard_temps(paths: dict[str, Path]) -> None:
    for p in paths.values():
        with contextlib.suppress(OSError):
            fsio.unlink_quietly(p)


COPY_NICE = 5


def _yield_cpu() -> None:
    """Lower this thread's CPU priority (Linux nice is per thread): when eight bays saturate a
    small CPU, the event loop that drives the LEDs and buttons still runs at once."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), COPY_NICE)


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` for the block; yields False when another holds it.

    flock locks die with their process, so a SIGKILLed session's lock is free at once."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def recover_interrupted(db: Database, locks: Path) -> int:
    """Clean up after sessions whose process died (SIGKILL, power loss): remove their temp files
    and mark them interrupted. A session whose lock is still held is alive and left alone."""
    count = 0
    for s in rows(db, "SELECT id, uid FROM offload_sessions WHERE status = 'running'"):
        lock = locks / f"session-{s['uid']}.lock"
        with _flock(lock) as free:
            if not free:
                continue
            for f in rows(
                db,
                "SELECT id, temp_paths FROM offload_files "
                "WHERE session_id = ? AND state = 'planned'",
                (s["id"],),
            ):
                for p in json.loads(f["temp_paths"] or "[]"):
                    path = Path(p)
                    # Only ever delete our own temp names, whatever the journal says.
                    if path.name.startswith(TEMP_PREFIX) and path.name.endswith(TEMP_SUFFIX):
                        fsio.unlink_quietly(path)
            with write_txn(db):
                db.execute(
                    "UPDATE offload_files SET state = 'abandoned', updated_at = ? "
                    "WHERE session_id = ? AND state = 'planned'",
                    (utcnow(), s["id"]),
                )
                db.execute(
                    "UPDATE offload_sessions SET status = 'interrupted', ended_at = ? WHERE id = ?",
                    (utcnow(), s["id"]),
                )
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
        count += 1
    if count:
        log.warning("recovered %d interrupted offload session(s)", count)
    return count
