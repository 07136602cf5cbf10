"""An offload's progress, from the engine's threads to its bay and the station server.

The engine reports typed progress (camdock.events); on the loop this module turns it into the
bay's state events, the bus scheduler's knowledge of who is still reading, and the server's
events (progress in tenths, each file verified and cleared).
"""

from __future__ import annotations

from camdock.core import bay as core
from camdock.events import (
    BytesCopied,
    EventType,
    FileCleared,
    FileFailed,
    FileStarted,
    FileVerified,
    Progress,
    SessionEnded,
    SessionStarted,
)
from camdock.station.admission import Admission
from camdock.station.bays import BayRuntime, Events, OffloadRun

__all__ = ["ProgressRouter"]


class ProgressRouter:
    """Routes one engine's progress (called on the loop) for the run it belongs to."""

    def __init__(self, events: Events, admission: Admission) -> None:
        self.events = events
        self.admission = admission

    def __call__(self, b: BayRuntime, run: OffloadRun, event: Progress) -> None:
        """``event`` of ``run`` on bay ``b``. A run that is no longer the bay's (the camera pulled
        and docked again while its engine was stopping) still reports to the server, but moves
        neither the bay nor the bus scheduler: they belong to the run after it. What it tells the
        server is filed under its own camera and officer (review3)."""
        current = run is b.offload
        match event:
            case SessionStarted(files=files, bytes=total):
                self.events.wake_publisher()  # the engine committed an event with that change
                run.bytes_total = total
                if current:
                    self.admission.sized(b.n, total)  # for the waiting's ETAs and the bus rate
                    b.queue.put_nowait(core.OffloadStarted(files, total))
            case BytesCopied(source=source, done=done):
                run.per_file[source] = done
                if current:
                    self.admission.reading(b.n)
                self._bytes(b, run, current)
                if current and run.bytes_total and sum(run.per_file.values()) >= run.bytes_total:
                    self.admission.release(b.n)  # read to the end: the next camera may go
            case FileVerified(source=source, sha256=sha, path=path):
                self.events.wake_publisher()
                run.files_done += 1
                self._count(b, run, current)
                self.events.emit("file-verified", b.n, source=source, sha256=sha, path=path)
            case FileFailed():
                run.files_done += 1
                self._count(b, run, current)
            case FileCleared(source=source):
                self.events.wake_publisher()
                self.events.emit("camera-cleared-file", b.n, source=source)
            case SessionEnded():
                self.events.wake_publisher()
            case FileStarted():
                pass

    @staticmethod
    def _count(b: BayRuntime, run: OffloadRun, current: bool) -> None:
        if current:
            b.queue.put_nowait(core.CopyProgress(sum(run.per_file.values()), run.files_done))

    def _bytes(self, b: BayRuntime, run: OffloadRun, current: bool) -> None:
        done = sum(run.per_file.values())
        self._count(b, run, current)
        # The server hears of progress in tenths, not per chunk.
        tenth = min(10, done * 10 // run.bytes_total) if run.bytes_total else 0
        if tenth > run.tenths_sent:
            run.tenths_sent = tenth
            self.events.record(
                EventType.OFFLOAD_PROGRESS, b.n, about=run.events, percent=tenth * 10,
                bytes=done, total=run.bytes_total,
            )  # fmt: skip
