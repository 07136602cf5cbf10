"""What an offload is asked to do, and what became of it: the request, each file's result, and
the session's report (the JSON summary ``camdock offload --json`` prints)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path, PurePosixPath
from typing import Any

from camdock.adapters import fsio
from camdock.core.attribution import Attribution
from camdock.core.naming import DutySlots
from camdock.core.retention import Policy
from camdock.events import EventContext
from camdock.model import Drive

__all__ = ["FileResult", "OffloadReport", "OffloadRequest"]


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


@dataclass
class OffloadReport:
    """The outcome of one offload session."""

    session_uid: str
    camera_id: str
    clear_requested: bool
    files: list[FileResult]
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
        """Counts for the summary and the session's events."""
        verified = [f for f in self.files if f.verified]
        return {
            "files": len(self.files),
            "verified": len(verified),
            "failed": len(self.files) - len(verified),
            "cleared": sum(f.cleared for f in self.files),
            "skipped": len(self.skipped),
            "bytes_verified": sum(f.size for f in verified),
        }

    def as_json(self) -> dict[str, Any]:
        """The JSON summary ``camdock offload --json`` prints."""
        return {
            "session": self.session_uid,
            "camera": self.camera_id,
            "ok": self.ok,
            "cancelled": self.cancelled,
            "files": [f.as_json() for f in self.files],
            "skipped": [{"source": s.path, "reason": s.reason} for s in self.skipped],
            "warnings": self.warnings,
            "catalog_error": self.catalog_error,
            "totals": self.totals(),
            "seconds": round(self.seconds, 3),
            "mb_per_s": round(self.bytes_read / 1e6 / self.seconds, 2) if self.seconds else 0.0,
        }
