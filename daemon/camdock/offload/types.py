"""What an offload is asked to do, and what became of it: the request, each planned file and its
result, and the session's report (the JSON summary ``camdock offload --json`` prints)."""

from __future__ import annotations

import json
import pickle
import tempfile
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path, PurePosixPath
from typing import IO, Any, TextIO, overload

from camdock.adapters import fsio
from camdock.catalog import recordings
from camdock.core.attribution import Attributed, Attribution
from camdock.core.naming import DutySlots
from camdock.core.plan import Placement
from camdock.core.retention import Policy
from camdock.events import EventContext
from camdock.model import Drive

__all__ = ["FileResult", "FileResults", "OffloadReport", "OffloadRequest", "PlannedFile"]


@dataclass(frozen=True)
class OffloadRequest:
    """What to offload, where to, and under whose name."""

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
    # The drives the destinations must be on (REG-4.2.1), proven before anything is written.
    # Empty: plain directories (a development machine, or a custodian's ad-hoc copy).
    drives: tuple[Drive, ...] = ()
    # Development and tests only: let clear follow copies that share one filesystem.
    allow_one_filesystem: bool = False
    # The camera's assignment history (REG-4.2.4): each recording is filed under the officer
    # who had the camera when it was made. None: under the officer named above.
    attribution: Attribution | None = None
    # The camera recorded nothing before this (its registration): an earlier time is a bad
    # clock, filed by the dock (None: only the age and future checks apply).
    not_before: datetime | None = None
    # REG-4.3.1: the window each recording is catalogued with ([retention] in the config).
    retention: Policy = field(default_factory=Policy)


@dataclass(slots=True)
class FileResult:
    """What became of one camera file."""

    source: str
    size: int
    sha256: str | None = None
    # Where it was filed: the path under each destination root, and the roots (one tuple shared
    # by every file): a summary of 20,000 files must not hold 40,000 absolute paths (issue 11).
    relpath: str | None = None
    roots: tuple[str, ...] = ()
    status: str = "pending"  # verified | already-catalogued | failed | cancelled
    cleared: bool = False
    error: str | None = None

    @property
    def stored(self) -> dict[str, str]:
        """Destination root → final path."""
        rel = self.relpath
        return {} if rel is None else {root: str(PurePosixPath(root, rel)) for root in self.roots}

    @property
    def verified(self) -> bool:
        """Held, verified, by every destination."""
        return self.status in ("verified", "already-catalogued")

    def as_json(self) -> dict[str, Any]:
        """The file's line in the JSON summary."""
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


@dataclass(frozen=True)
class PlannedFile:
    """One camera file as planned for one attempt: where it goes, its journal number, and the
    result the attempt writes. A file copied again (same name, other content) is planned anew,
    with a new number and a new result; only the result changes while a plan is worked on."""

    seq: int  # its line in the session's journal
    src: fsio.SourceFile
    placement: Placement
    confirm: recordings.Recording | None  # the catalog row this file seems to be already: hash only
    attributed: Attributed  # the officer it is filed under (REG-4.2.4), and why
    result: FileResult


class FileResults(Sequence[FileResult]):
    """Every camera file's result, in scan order. A result is settled once its batch is done:
    then it is kept in an anonymous temporary file, not in memory, so a camera of 20,000
    recordings costs no more memory than one of 2,000 (issue 11). Results still open (a file
    to be copied again at the end) stay in memory; if the temporary file cannot be written,
    everything stays in memory."""

    def __init__(self) -> None:
        self._open: dict[int, FileResult] = {}
        self._at = array("q")  # where each settled result starts in the spill; -1: open
        self._spill: IO[bytes] | None = None
        self._spill_broken = False

    def add(self, result: FileResult) -> int:
        """Append an open result; returns its index."""
        self._at.append(-1)
        self._open[len(self._at) - 1] = result
        return len(self._at) - 1

    def replace(self, index: int, result: FileResult) -> None:
        """An open result's replacement (the file was planned again)."""
        assert index in self._open
        self._open[index] = result

    def close(self, indices: list[int], reason: str | None) -> list[int]:
        """A file never attempted (the offload stopped first) is closed as cancelled or failed;
        returns ``indices``."""
        for n in indices:
            r = self[n]
            if r.status == "pending":
                r.status = "cancelled" if reason == "cancelled" else "failed"
                r.error = r.error or f"not attempted: {reason}"
        return indices

    def settle(self, indices: Iterable[int]) -> None:
        """These results are final: out of memory, into the spill."""
        if self._spill_broken:
            return
        try:
            if self._spill is None:
                # closed with this object (it lives as long as the report)
                self._spill = tempfile.TemporaryFile(prefix="camdock-results-")  # noqa: SIM115
            spill = self._spill
            spill.seek(0, 2)
            for i in indices:
                at = spill.tell()
                pickle.dump(self._open[i], spill, protocol=pickle.HIGHEST_PROTOCOL)
                self._at[i] = at
                del self._open[i]
        except OSError:  # a full /tmp: keep them in memory rather than lose the summary
            self._spill_broken = True

    def __len__(self) -> int:
        return len(self._at)

    @overload
    def __getitem__(self, index: int) -> FileResult: ...
    @overload
    def __getitem__(self, index: slice) -> list[FileResult]: ...
    def __getitem__(self, index: int | slice) -> FileResult | list[FileResult]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        found = self._open.get(index)
        if found is not None:
            return found
        assert self._spill is not None
        self._spill.seek(self._at[index])
        result: FileResult = pickle.load(self._spill)  # noqa: S301 - our own temporary file
        return result

    def __iter__(self) -> Iterator[FileResult]:
        for i in range(len(self)):
            yield self[i]


@dataclass
class OffloadReport:
    """The outcome of one offload session."""

    session_uid: str
    camera_id: str
    clear_requested: bool
    files: Sequence[FileResult]
    skipped: list[fsio.Skipped]
    warnings: list[str]
    seconds: float
    bytes_read: int
    cancelled: bool = False
    catalog_error: str | None = None  # the session's end could not be recorded (disk full?)

    @property
    def ok(self) -> bool:
        """Every file verified in every destination (and cleared, when clearing was asked)."""
        return (
            not self.cancelled
            and self.catalog_error is None
            and all(f.verified and (f.cleared or not self.clear_requested) for f in self.files)
        )

    @property
    def status(self) -> str:
        """completed, failed or interrupted, as the session is recorded."""
        return "interrupted" if self.cancelled else "completed" if self.ok else "failed"

    @property
    def left_on_camera(self) -> int:
        """Recordings the camera still holds (all of them when clearing was not asked)."""
        return sum(not f.cleared for f in self.files)

    def totals(self) -> dict[str, int]:
        """Counts for the summary and the session's events (one pass, nothing kept)."""
        verified = cleared = bytes_verified = 0
        for f in self.files:
            verified += f.verified
            cleared += f.cleared
            bytes_verified += f.size if f.verified else 0
        return {
            "files": len(self.files),
            "verified": verified,
            "failed": len(self.files) - verified,
            "cleared": cleared,
            "skipped": len(self.skipped),
            "bytes_verified": bytes_verified,
        }

    def as_json(self, files: bool = True) -> dict[str, Any]:
        """The JSON summary ``camdock offload --json`` prints (``files``: with every file's
        line; ``write_json`` streams them instead)."""
        return {
            "session": self.session_uid,
            "camera": self.camera_id,
            "ok": self.ok,
            "cancelled": self.cancelled,
            **({"files": [f.as_json() for f in self.files]} if files else {}),
            "skipped": [{"source": s.path, "reason": s.reason} for s in self.skipped],
            "warnings": self.warnings,
            "catalog_error": self.catalog_error,
            "totals": self.totals(),
            "seconds": round(self.seconds, 3),
            "mb_per_s": round(self.bytes_read / 1e6 / self.seconds, 2) if self.seconds else 0.0,
        }

    def write_json(self, out: TextIO, extra: dict[str, Any]) -> None:
        """The summary as one JSON document on ``out``, each file's line written as it is read
        back from the spill: printing 20,000 files' summary holds none of them at once."""
        rest = json.dumps({**self.as_json(files=False), **extra}, ensure_ascii=False, indent=2)
        out.write('{\n  "files": [')
        for i, f in enumerate(self.files):
            out.write(("," if i else "") + "\n    " + json.dumps(f.as_json(), ensure_ascii=False))
        out.write("\n  ],\n" + rest[2:] + "\n")
