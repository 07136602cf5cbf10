"""What the verified copier is given and gives back: the destinations, a job, the stop flags
it obeys, a proven copy, and the hooks it calls (adapters/copier runs them)."""

from __future__ import annotations

import contextlib
import errno
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camdock.adapters import fsio

__all__ = ["Copied", "CopyJob", "Destination", "Hooks", "StopFlags"]

log = logging.getLogger("camdock.adapters.copier")  # the copier's log: what stops it


@dataclass(frozen=True)
class Destination:
    """A destination root, pinned to the filesystem it was on when the work started."""

    root: Path  # resolved
    identity: tuple[int, int]  # (st_dev, st_ino) at start: a vanished mount is noticed

    @classmethod
    def pin(cls, path: Path) -> Destination:
        """The destination at ``path`` as it is now (raises OSError when it is not there)."""
        real = path.resolve()
        return cls(real, fsio.fs_identity(real))

    @property
    def key(self) -> str:
        """The root as the catalog records it."""
        return str(self.root)

    def check_mounted(self) -> None:
        """A lazily unmounted drive leaves its mount point behind on the SD card: writing there
        would put footage on the wrong disk. The root must still be the one we started with."""
        try:
            same = fsio.fs_identity(self.root) == self.identity
        except OSError:
            same = False
        if not same:
            raise OSError(errno.ENODEV, "destination vanished (unmounted?)")


class StopFlags:
    """Why the work is stopping early, if it is (thread-safe)."""

    def __init__(self) -> None:
        self.cancel = threading.Event()
        self._abort: str | None = None
        self._lock = threading.Lock()

    def abort(self, reason: str) -> None:
        """Stop everything for ``reason`` (the first reason given wins)."""
        with self._lock:
            if self._abort is None:
                self._abort = reason
                log.error("copy stopping: %s", reason)

    @property
    def reason(self) -> str | None:
        """The abort reason, "cancelled", or None while the work goes on."""
        if self._abort is not None:
            return self._abort
        return "cancelled" if self.cancel.is_set() else None


@dataclass
class CopyJob:
    """One file to copy: how to open it, whether it changed, and its temp path per destination."""

    label: str
    size: int
    open: Callable[[], int]  # an fd for reading; raises OSError or fsio.SourceChanged
    check: Callable[[int, int], None]  # (fd, bytes read): raises fsio.SourceChanged
    dirrel: tuple[str, ...]  # the folder under each root that holds the temps
    temps: dict[str, Path]  # destination key → temp path; empty: hash only, write nothing
    tag: Any = None  # the caller's own record of the file


@dataclass
class Copied:
    """A file hashed (and, unless hash-only, written and read back from every destination)."""

    job: CopyJob
    sha256: str
    size: int
    temps: dict[str, Path]  # destination key → temp path, each read back equal to the stream
    error: str | None = None  # the read-back failed (temps are discarded)
    fast: str = ""  # XXH3-128 of the same bytes: what the read-back compares with


@dataclass
class Hooks:
    """What the caller hears; each runs on a copier thread."""

    on_started: Callable[[CopyJob], None] = lambda job: None
    on_bytes: Callable[[CopyJob, int], None] = lambda job, done: None
    on_failed: Callable[[CopyJob, str], None] = lambda job, error: None
    on_cancelled: Callable[[CopyJob], None] = lambda job: None
    on_copied: Callable[[Copied], None] = lambda copied: None
    # Entered on the verifier thread around all on_copied calls (e.g. a catalog connection).
    verifier_context: Callable[[], contextlib.AbstractContextManager[Any]] = field(
        default=contextlib.nullcontext
    )
