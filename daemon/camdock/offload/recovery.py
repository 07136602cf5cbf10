"""Session locks and recovery after a crash (invariant 3): a SIGKILLed or powered-off session's
temp files are removed and its journal closed, so the next run starts clean and re-verifies."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from sqlite_utils import Database

from camdock.adapters import fsio
from camdock.catalog import sessions
from camdock.core.plan import is_temp_name

__all__ = ["flock", "recover_interrupted"]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def flock(path: Path) -> Iterator[bool]:
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
    for s in sessions.running(db):
        lock = locks / f"session-{s.uid}.lock"
        with flock(lock) as free:
            if not free:
                continue
            for temps in sessions.planned_temps(db, s.id):
                for p in json.loads(temps):
                    path = Path(p)
                    # Only ever delete our own temp names, whatever the journal says.
                    if is_temp_name(path.name):
                        fsio.unlink_quietly(path)
            sessions.mark_interrupted(db, s.id)
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
        count += 1
    if count:
        log.warning("recovered %d interrupted offload session(s)", count)
    return count
