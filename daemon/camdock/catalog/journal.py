"""The custody journal on the drives (REG-4.3.2, REG-7.1; issue 28): the custody-relevant acts
that are not footage — holds placed and released, access requests' changes of state, register
lines (Annex 3) — appended to ``<drive>/camdock-catalog/journal.jsonl`` on every drive, so a
catalog restored from a day-old backup gets them back (``services/reconcile.py``).

One line per committed transaction that holds such an act, written by ``write_txn`` **after**
its COMMIT: after a crash a line may be missing, never one for an act that did not happen (a
line written before the commit would survive a rolled-back hold, and a restore would then place
a hold nobody placed). The missing line is the safer loss: a restore lists what it could not
bring back, and the custody heads on the drives show the chain went further than the backup.

A line: ``{"v": 1, "entries": [custody entries, as chained: seq, hash, time, action,
recording_id, actor, details, rows], "register": [register rows]}``. The drives are the
destinations the catalog's copies are on; a root that is not a mounted drive with camdock's
folders on it (an empty mount point) is passed over.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlite_utils import Database

__all__ = ["FOLDER", "NAME", "Mark", "Read", "collect", "mark", "read", "write"]

log = logging.getLogger(__name__)

FOLDER = "camdock-catalog"  # beside the catalog's backups and the custody heads
NAME = "journal.jsonl"
VERSION = 1
# The acts a journal line is written for, and the tables whose rows it brings back.
ACTS = frozenset(
    {
        "hold-place",
        "hold-release",
        "request",
        "submit",
        "consult",
        "approve",
        "deny",
        "schedule",
        "view",
        "copy",
        "acknowledge",
        "close",
        "expire",
    }
)
TABLES = frozenset({"holds", "requests", "request_recordings"})
_YEAR = re.compile(r"^\d{4}$")


@dataclass(frozen=True)
class Mark:
    """Where a transaction began: the last custody entry and register line before it."""

    entry: int
    register: int


def mark(db: Database) -> Mark:
    """Call just after BEGIN: what the transaction's own rows will come after."""
    e = db.execute("SELECT coalesce(max(id), 0) FROM custody_log").fetchone()[0]
    try:
        r = db.execute("SELECT coalesce(max(id), 0) FROM register").fetchone()[0]
    except Exception:  # noqa: BLE001 - a catalog from before the register (a migration)
        r = 0
    return Mark(int(e), int(r))


def collect(db: Database, since: Mark) -> dict[str, Any] | None:
    """Call just before COMMIT: the journal line of this transaction's acts, or None."""
    found = db.execute(
        "SELECT id, hash, prev_hash, time, action, recording_id, actor, details, rows FROM "
        "custody_log WHERE id > ? ORDER BY id",
        (since.entry,),
    ).fetchall()
    entries = []
    for seq, digest, prev, time, action, rec, actor, details, states in found:
        chained = json.loads(states) if states else []
        if action not in ACTS and not any(s["table"] in TABLES for s in chained):
            continue
        entries.append(
            {
                "seq": seq,
                "hash": digest,
                "prev": prev,
                "time": time,
                "action": action,
                "recording_id": rec,
                "actor": actor,
                "details": json.loads(details),
                "rows": chained,
            }
        )
    register = []
    if entries:
        cur = db.execute("SELECT * FROM register WHERE id > ? ORDER BY id", (since.register,))
        names = [c[0] for c in cur.description]
        register = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    if not entries and not register:
        return None
    return {"v": VERSION, "entries": entries, "register": register}


def roots(db: Database) -> list[Path]:
    """The drives the catalog's copies are on that are there now, with camdock's folders."""
    found = []
    for (dest,) in db.execute("SELECT DISTINCT destination FROM copies"):
        root = Path(dest)
        if (root / FOLDER).is_dir() or (
            root.is_dir() and any(_YEAR.match(p.name) for p in root.iterdir())
        ):
            found.append(root)
    return found


def write(db: Database, line: dict[str, Any]) -> None:
    """Append ``line`` to the journal on every drive, durably; a drive that fails is logged
    (the act is committed: the catalog has it, the restore will say what it lacks)."""
    text = json.dumps(line, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n"
    for root in roots(db):
        try:
            append_line(root, text.encode())
        except OSError as exc:
            log.error("journal on %s not written: %s", root, exc.strerror or exc)


def append_line(root: Path, data: bytes) -> None:
    """One whole line onto ``root``'s journal: fsynced, with its folder when new; a torn line a
    crash left before it is ended first, so this one parses on its own."""
    folder = root / FOLDER
    made = not folder.exists()
    folder.mkdir(exist_ok=True)
    if made:
        _fsync_dir(root)
    path = folder / NAME
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        _fsync_dir(folder)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Read:
    """One journal line as read, and where it is (``file:line``)."""

    where: str
    data: dict[str, Any]


def read(root: Path) -> tuple[list[Read], list[str]]:
    """A drive's journal lines, and the ones ignored (a torn last line, a foreign one)."""
    path = root / FOLDER / NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return [], []
    out, ignored = [], []
    chunks = raw.split(b"\n")
    for n, chunk in enumerate(chunks, 1):
        if not chunk.strip():
            continue
        if n == len(chunks):
            ignored.append(f"{path}:{n}: torn last line")
            continue
        try:
            data = json.loads(chunk.decode())
        except (UnicodeDecodeError, json.JSONDecodeError):
            ignored.append(f"{path}:{n}: not a journal line")
            continue
        if isinstance(data, dict) and data.get("v") == VERSION:
            out.append(Read(f"{path}:{n}", data))
        else:
            ignored.append(f"{path}:{n}: not a journal line")
    return out, ignored
