"""The offload service (REG-4.1.2, REG-4.2.1–4.2.4, REG-4.2.6): one camera volume → N
destinations, with invariants 1–3 of ARCHITECTURE.md:

* a file leaves the camera only after every destination holds a copy whose SHA-256, read back
  from disk, equals the hash of what was read from the camera, and the catalog row saying so is
  committed;
* a file under its final name is always complete and verified (temp name, fsync, read-back,
  no-clobber link, fsync dir);
* a SIGKILL at any instant loses nothing: the per-file journal in the catalog lets a re-run
  remove stale temp files, re-verify what was not recorded as verified, and never catalogue the
  same recording twice.

The parts: the plan is pure (``core/plan.py``), copying and read-back are the verified copier
(``adapters/copier.py``), the SQL is the catalog's (``catalog/``). This module orchestrates: scan,
plan and journal, copy, then for each verified file a final name, the catalog row, and the clear.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlite_utils import Database

from camdock import clock
from camdock.adapters import fsio
from camdock.adapters.copier import (
    Copied,
    CopyJob,
    Destination,
    Hooks,
    StopFlags,
    VerifiedCopier,
    discard_temps,
)
from camdock.adapters.drives import mount_of
from camdock.catalog import custody, recordings, selftests, sessions
from camdock.catalog.custody import Action
from camdock.catalog.db import DatabaseError, catalog_error, open_catalog, write_txn
from camdock.catalog.outbox import in_context
from camdock.clock import utcnow
from camdock.core.attribution import Attributed, Source
from camdock.core.naming import safe_component
from camdock.core.plan import ClockCheck, Placement, place, temp_name
from camdock.errors import ExitCode, OffloadRefused
from camdock.events import (
    BytesCopied,
    EventType,
    FileFailed,
    FileStarted,
    Progress,
    SessionEnded,
    SessionStarted,
)
from camdock.model import Officer
from camdock.offload.filing import Filer, FilingContext
from camdock.offload.preflight import preflight
from camdock.offload.recovery import flock, recover_interrupted
from camdock.offload.types import (
    FileResult,
    FileResults,
    OffloadReport,
    OffloadRequest,
    PlannedFile,
)

__all__ = ["ABORT_WAIT", "PLAN_BATCH", "STOP_WAIT", "OffloadEngine", "ProgressFn"]

log = logging.getLogger(__name__)

ProgressFn = Callable[[Progress], None]
PLAN_BATCH = 256  # files planned, journaled and copied together
# Seconds a stopping offload may take to reach a resumable point, then seconds for it to notice
# that its stalled camera driver was aborted: well inside the unit's TimeoutStopSec (90 s), so a
# stalled camera never makes systemd SIGKILL the station (issue 11).
STOP_WAIT = 20.0
ABORT_WAIT = 5.0


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
        self._stop = StopFlags()
        self._uid = uuid.uuid4().hex[:12]
        self._seq = 0
        self._retries: list[PlannedFile] = []
        self._bytes_read = 0
        self._dests: list[Destination] = []
        self._warnings: list[str] = []
        self._session_id = 0
        self._fin = threading.local()  # the verifier thread's catalog connection
        self._clock = ClockCheck(clock.now().astimezone(request.tz), not_before=request.not_before)
        station = request.events.topics.station if request.events else socket.gethostname()
        # REG-4.1.2: the officer transfers the footage after duty; the station does the work.
        # The custody log names both (REG-7.1: a person, not only a machine).
        who = (f"{request.officer_name} ({request.officer_badge})"
               if request.officer_badge not in ("", "none") else "no officer assigned")  # fmt: skip
        self._actor = f"{who} via camdock@{station}"

    def cancel(self) -> None:
        """Stop soon, leaving everything resumable (thread-safe)."""
        self._stop.cancel.set()

    def _emit(self, event: Progress) -> None:
        if self._progress is not None:
            self._progress(event)

    # -----------------------------------------------------------------------------------------
    # The session

    def run(self) -> OffloadReport:
        """Offload the camera; raises OffloadRefused before writing anything it cannot do."""
        started = time.monotonic()
        self._preflight()
        db = open_catalog(self.req.catalog)
        locks = self.req.catalog.parent / (self.req.catalog.name + ".locks")
        locks.mkdir(exist_ok=True)
        try:
            with (
                flock(locks / f"camera-{safe_component(self.req.camera_id, 100)}.lock") as got,
                flock(locks / f"session-{self._uid}.lock"),
            ):
                if not got:
                    raise OffloadRefused(
                        f"camera {self.req.camera_id} is being offloaded by another camdock "
                        "process; try again when it has finished",
                        ExitCode.TEMPFAIL,
                    )
                recover_interrupted(db, locks)
                report = self._session(db)
        except DatabaseError as exc:
            # The catalog failed before the session could begin (or its plan be journaled):
            # nothing was written to the destinations and nothing cleared.
            raise catalog_error(self.req.catalog, exc) from exc
        finally:
            db.close()
            with contextlib.suppress(FileNotFoundError):
                (locks / f"session-{self._uid}.lock").unlink()
        report.seconds = time.monotonic() - started
        return report

    def _session(self, db: Database) -> OffloadReport:
        try:
            files, skipped = fsio.scan_source(self.req.source, _keeps_inodes(self.req.source))
        except OSError as exc:
            raise OffloadRefused(
                f"cannot read source {self.req.source}: {exc.strerror}", ExitCode.NOINPUT
            ) from exc
        for s in skipped:
            log.log(
                logging.INFO if s.expected else logging.WARNING, "skipped %s: %s", s.path, s.reason
            )
        total = sum(f.size for f in files)
        self._camera_drift = selftests.last_drift(db, self.req.camera_id)
        self._begin(db, len(files), total, len(skipped))
        self._reconcile_cleared(db, files)
        self._emit(SessionStarted(self._uid, len(files), total))

        # In batches: what a file needs while it is copied (its plan, its copy job) lives only
        # for its batch, and its result is settled out of memory when the batch is done, so
        # memory stays flat however many files a camera holds. The journal is written per
        # batch, still before any byte of that batch is.
        results = FileResults()
        retry_at: dict[tuple[bytes, ...], int] = {}  # files to copy again at the end
        for start in range(0, len(files), PLAN_BATCH):
            batch = files[start : start + PLAN_BATCH]
            if self._stop.reason:
                at = [results.add(FileResult(f.display, f.size)) for f in batch]
                results.settle(results.close(at, self._stop.reason))
                continue
            items = self._plan(db, batch, force_copy=False)
            at = [results.add(i.result) for i in items]
            self._copy(items)
            retried = {i.src.parts for i in self._retries}
            retry_at |= {i.src.parts: n for i, n in zip(items, at, strict=True)
                         if i.src.parts in retried}  # fmt: skip
            done = [n for i, n in zip(items, at, strict=True) if i.src.parts not in retried]
            results.settle(results.close(done, self._stop.reason))
            del items
        if self._retries:
            # Files that looked catalogued by name/size/mtime but hashed differently: copy them.
            again = self._plan(db, [i.src for i in self._retries], force_copy=True)
            self._retries = []
            for i in again:
                results.replace(retry_at[i.src.parts], i.result)
            self._copy(again)

        reason = self._stop.reason
        results.close(list(retry_at.values()), reason)
        report = OffloadReport(
            session_uid=self._uid,
            camera_id=self.req.camera_id,
            clear_requested=self.req.clear,
            files=results,
            skipped=skipped,
            warnings=self._warnings,
            seconds=0.0,
            bytes_read=self._bytes_read,
            cancelled=reason == "cancelled",
        )
        try:
            self._end(db, report)
        except DatabaseError as exc:
            # Every file verified was catalogued in its own transaction; only the session's
            # end is missing (the next run marks it interrupted). Say so; nothing was lost.
            report.catalog_error = str(catalog_error(self.req.catalog, exc))
            log.error("%s", report.catalog_error)
        self._emit(SessionEnded(self._uid, report.status))
        return report

    def _begin(self, db: Database, files: int, total: int, skipped: int) -> None:
        with write_txn(db):
            self._session_id = sessions.begin(
                db,
                {
                    "uid": self._uid,
                    "camera_id": self.req.camera_id,
                    "officer_name": self.req.officer_name,
                    "officer_badge": self.req.officer_badge,
                    "unit": self.req.unit,
                    "source": str(self.req.source),
                    "destinations": json.dumps([d.key for d in self._dests]),
                    "clear_requested": int(self.req.clear),
                    "files_total": files,
                    "host": socket.gethostname(),
                },
            )
            in_context(
                db, self.req.events, EventType.OFFLOAD_STARTED,
                session=self._uid, files=files, bytes=total, skipped=skipped,
            )  # fmt: skip

    def _end(self, db: Database, report: OffloadReport) -> None:
        totals = report.totals()
        with write_txn(db):
            sessions.finish(
                db,
                self._session_id,
                report.status,
                {
                    "files_verified": totals["verified"],
                    "files_failed": totals["failed"],
                    "files_cleared": totals["cleared"],
                    "bytes_verified": totals["bytes_verified"],
                },
            )
            if report.status == "completed":
                in_context(
                    db, self.req.events, EventType.OFFLOAD_COMPLETED, session=self._uid, **totals
                )
            else:
                first = next((f.error for f in report.files if f.error), None)
                entry = self._duty_log_entry(report, first)
                selftests.add_duty_log(
                    db,
                    selftests.NewDutyEntry(
                        officer_badge=self.req.officer_badge,
                        officer_name=self.req.officer_name,
                        camera_id=self.req.camera_id,
                        entry=entry,
                    ),
                )
                in_context(
                    db, self.req.events, EventType.OFFLOAD_FAILED,
                    session=self._uid, status=report.status, error=first, duty_log=entry,
                    left_on_camera=report.left_on_camera, **totals,
                )  # fmt: skip

    def _duty_log_entry(self, report: OffloadReport, error: str | None) -> str:
        """REG-4.2.7: a filing that could not be completed is noted in the duty log."""
        what = "was interrupted" if report.status == "interrupted" else "could not be completed"
        return (
            f"Filing of the footage of camera {self.req.camera_id} ({self.req.officer_name}, "
            f"{self.req.officer_badge}) {what} (REG-4.2.7): {error or 'not every file verified'}. "
            f"{report.totals()['verified']} of {len(report.files)} recordings filed; "
            f"{report.left_on_camera} stayed on the camera and are offloaded at the next dock."
        )

    def _preflight(self) -> None:
        """Refuse, before anything is written, what cannot work or could lose footage."""
        self._dests, warnings = preflight(self.req)
        self._warnings += warnings

    def _plan(
        self, db: Database, files: list[fsio.SourceFile], force_copy: bool
    ) -> list[PlannedFile]:
        """Decide where each file goes, and journal the plan before any byte is written, so a
        re-run knows every temp name this session may create."""
        items = []
        for src in files:
            self._seq += 1
            placement = place(src.name, src.mtime_ns, self.req.slots, self.req.tz, self._clock)
            if placement.suspect:
                self._warnings.append(f"{src.display}: camera clock suspect: {placement.suspect}")
            items.append(
                PlannedFile(
                    seq=self._seq,
                    src=src,
                    placement=placement,
                    confirm=None if force_copy else self._catalogued_as(db, src),
                    result=FileResult(source=src.display, size=src.size),
                    attributed=self._attribute(placement),
                )
            )
        sessions.journal_plan(
            db,
            self._session_id,
            [
                {
                    "seq": i.seq,
                    "source_relpath": i.src.raw,
                    "source_display": i.src.display,
                    "size": i.src.size,
                    "mtime_ns": i.src.mtime_ns,
                    "temp_paths": json.dumps([str(p) for p in self._temps(i).values()]),
                }
                for i in items
            ],
        )
        return items

    def _attribute(self, placement: Placement) -> Attributed:
        """REG-4.2.4: the officer who had the camera when the recording was made; the one the
        custodian named on the command line when there is no history to ask."""
        if self.req.attribution is None:
            given = Officer(self.req.officer_badge, self.req.officer_name, self.req.unit)
            return Attributed(given, Source.GIVEN)
        when = placement.when.start
        if placement.suspect:  # the camera's time cannot be right: the dock's time is
            when = self._clock.docked_at
        return self.req.attribution.resolve(when, placement.slot.start.date())

    def _temps(self, item: PlannedFile) -> dict[str, Path]:
        if item.confirm is not None:
            return {}  # hash only: the catalog says every destination has it
        name = temp_name(self._uid, item.seq)
        return {d.key: d.root.joinpath(*item.placement.dirrel, name) for d in self._dests}

    def _catalogued_as(self, db: Database, src: fsio.SourceFile) -> recordings.Recording | None:
        """The catalog row this camera file already is — same camera, path, size and mtime, and
        stored in every requested destination — so it needs hashing, not copying."""
        row = recordings.by_source(db, self.req.camera_id, src.raw, src.size, src.mtime_ns)
        if row is None:
            return None
        stored = recordings.copies(db, row.id)
        return row if all(d.key in stored for d in self._dests) else None

    def _reconcile_cleared(self, db: Database, files: list[fsio.SourceFile]) -> None:
        """A crash between deleting a camera file and recording it leaves the catalog saying
        'not cleared' for a file that is gone; record it now that the camera shows it gone."""
        present = {f.raw for f in files}
        pending = sessions.unconfirmed_clears(db, self.req.camera_id)
        gone = [p for p in pending if bytes(p.source_relpath) not in present]
        if not gone:
            return
        now = utcnow()
        with write_txn(db):
            for p in gone:
                sessions.confirm_clear(db, p.id, p.recording_id, now)
                custody.append(
                    db,
                    Action.CLEAR,
                    p.recording_id,
                    self._actor,
                    {
                        "camera": self.req.camera_id,
                        "confirmed_on_rerun": True,
                        "source": fsio.display(bytes(p.source_relpath)),
                    },
                )
        log.info("recorded %d camera files as cleared by an interrupted session", len(gone))

    # -----------------------------------------------------------------------------------------
    # Copying, through the verified copier

    def _copy(self, items: list[PlannedFile]) -> None:
        copier = VerifiedCopier(
            self._dests,
            Hooks(
                on_started=lambda job: self._emit(FileStarted(job.label, job.size)),
                on_bytes=lambda job, done: self._emit(BytesCopied(job.label, done)),
                on_failed=lambda job, error: self._fail(job.tag, error),
                on_cancelled=self._cancelled,
                on_copied=self._on_copied,
                verifier_context=self._finisher_db,
            ),
            self._stop,
            chunk_size=self.req.chunk_size,
            queue_depth=self.req.queue_depth,
            read_bps=self.req.read_bps,
            name=f"offload-{self._uid}",
            after_fsync=self._after_fsync,
        )
        self._filer = Filer(
            FilingContext(
                request=self.req,
                session_id=self._session_id,
                session_uid=self._uid,
                actor=self._actor,
                destinations=tuple(self._dests),
                copier=copier,
                fail=self._fail,
                retry=self._retry,
                emit=self._emit,
                camera_drift=self._camera_drift,
            )
        )
        try:
            copier.run([self._job(i) for i in items])
        finally:
            self._bytes_read += copier.bytes_read

    def _job(self, item: PlannedFile) -> CopyJob:
        source, src = self.req.source, item.src
        return CopyJob(
            label=src.display,
            size=src.size,
            open=lambda: fsio.open_source(source, src),
            check=lambda fd, n: fsio.check_unchanged(fd, src, n),
            dirrel=item.placement.dirrel,
            temps=self._temps(item),
            tag=item,
        )

    @contextlib.contextmanager
    def _finisher_db(self) -> Iterator[None]:
        self._fin.db = open_catalog(self.req.catalog)
        try:
            yield
        finally:
            self._fin.db.close()

    def _cancelled(self, job: CopyJob) -> None:
        job.tag.result.status = "cancelled"

    def _fail(self, item: PlannedFile, error: str) -> None:
        r = item.result
        if r.status != "pending":
            return
        if self._stop.cancel.is_set():
            r.status, r.error = "cancelled", error  # stays on the camera; the next dock resumes
            log.info("%s: %s", r.source, error)
            return
        r.status, r.error = "failed", error
        log.error("%s: %s", r.source, error)
        self._emit(FileFailed(r.source, error))

    def _retry(self, item: PlannedFile) -> None:
        """Verifier thread: copy this file again once the session's batches are done."""
        self._retries.append(item)

    def _on_copied(self, c: Copied) -> None:
        """Verifier thread: a file read back from every destination (or hashed only)."""
        item: PlannedFile = c.job.tag
        db: Database = self._fin.db
        try:
            self._filer.finish(db, item, c)
        except DatabaseError as exc:  # the catalog cannot take it (disk full?): stop cleanly
            discard_temps(c.temps)
            self._fail(item, f"not catalogued: {exc}; it stays on the camera")
            self._stop.abort(f"catalog error: {exc}")
        except Exception as exc:  # bulkhead per file: fail it, keep the camera copy
            log.exception("%s: finishing failed", item.result.source)
            discard_temps(c.temps)
            self._fail(item, f"internal error: {exc!r}")


def _keeps_inodes(source: Path) -> bool:
    """Whether the camera's filesystem keeps inode numbers (ext4 does; FAT and exFAT do not)."""
    try:
        mount = mount_of(source)
    except OSError:
        return True
    return mount is None or mount.fstype not in fsio.INVENTED_INODES
