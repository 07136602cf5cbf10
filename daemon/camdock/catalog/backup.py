"""The catalog's side of its backups (REG-4.3.2): a consistent copy of the open catalog into a
file, taken with SQLite's online backup API while the daemon runs, and the check that a file is
a sound camdock catalog. Where the copies go, how they are kept and restored is
``services/backup.py``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlite_utils import Database

from camdock.errors import CamdockError, ExitCode

__all__ = ["integrity", "snapshot"]


def integrity(path: Path) -> str | None:
    """Why the SQLite file at ``path`` is not a sound camdock catalog, or None."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            result = conn.execute("PRAGMA integrity_check").fetchone()[0]
            if result != "ok":
                return f"integrity_check: {result}"
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if not {"recordings", "custody_log"} <= tables:
                return "not a camdock catalog (no recordings or custody log)"
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return str(exc)
    return None


def snapshot(db: Database, path: Path) -> None:
    """Copy the open catalog ``db`` into a new file at ``path``, in rollback-journal mode (a
    drive may later be read on any machine); a failure is the target drive's (full, failing)."""
    target = sqlite3.connect(path)
    try:
        db.conn.backup(target)
        target.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.Error as exc:
        raise CamdockError(f"catalog backup {path}: {exc}", ExitCode.IOERR) from exc
    finally:
        target.close()
