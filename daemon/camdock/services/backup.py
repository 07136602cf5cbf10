"""The catalog outlives the SD card (REG-4.3.2): online backups to the destination drives, and
the restore that rebuilds a station's catalog from one (the SQLite side: catalog/backup.py).

A backup is taken with SQLite's online backup API while the daemon runs, written under a temp
name in ``<drive>/camdock-catalog/``, switched to rollback-journal mode (a drive may later be
read on any machine), checked with ``integrity_check``, fsynced, hashed as it is on disk and only
then given its final name ``catalog-<UTC time>.sqlite`` beside a ``.sha256`` file that
``sha256sum -c`` reads. The newest ``generations`` are kept.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlite_utils import Database

from camdock import clock
from camdock.adapters import fsio, heads
from camdock.catalog.backup import integrity, snapshot
from camdock.errors import CamdockError, Conflict, ExitCode

__all__ = ["BACKUP_DIR", "Backup", "generations", "restore", "write"]

BACKUP_DIR = heads.FOLDER
PREFIX, SUFFIX = "catalog-", ".sqlite"


@dataclass(frozen=True)
class Backup:
    """One generation of the catalog on a drive."""

    path: Path
    sha256: str
    size: int


def write(db: Database, root: Path, generations_kept: int) -> Backup:
    """Back the open catalog ``db`` up to ``root/camdock-catalog``; returns the new generation."""
    folder = fsio.make_dirs_durable(root, (BACKUP_DIR,))
    stamp = clock.now().strftime("%Y%m%dT%H%M%S.%fZ")
    final = folder / f"{PREFIX}{stamp}{SUFFIX}"
    temp = folder / f".{final.name}.tmp"
    fsio.unlink_quietly(temp)
    try:
        snapshot(db, temp)
        if problem := integrity(temp):
            raise CamdockError(f"catalog backup {temp} failed its check: {problem}",
                               ExitCode.IOERR)  # fmt: skip
        digest, size = fsio.disk_sha256(temp)
        fsio.link_no_clobber(temp, final)
    except BaseException:
        fsio.unlink_quietly(temp)
        raise
    sidecar = final.with_name(final.name + ".sha256")
    side_temp = folder / f".{sidecar.name}.tmp"
    side_temp.write_text(f"{digest}  {final.name}\n", encoding="ascii")
    with open(side_temp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(side_temp, sidecar)
    fsio.fsync_dir(folder)
    for old in generations(root)[generations_kept:]:
        for path in (old, old.with_name(old.name + ".sha256")):
            fsio.unlink_quietly(path)
    fsio.fsync_dir(folder)
    return Backup(final, digest, size)


def generations(root: Path) -> list[Path]:
    """The catalog backups on a drive, newest first (``root`` or its ``camdock-catalog``)."""
    folder = root / BACKUP_DIR if (root / BACKUP_DIR).is_dir() else root
    found = [p for p in folder.glob(f"{PREFIX}*{SUFFIX}") if p.is_file()]
    return sorted(found, key=lambda p: p.name, reverse=True)


def _check(path: Path) -> str | None:
    """Why a generation may not be restored (hash, integrity), or None."""
    sidecar = path.with_name(path.name + ".sha256")
    try:
        want = sidecar.read_text(encoding="ascii").split()[0]
    except (OSError, IndexError, UnicodeDecodeError):
        return "its .sha256 file is missing or unreadable"
    have, _ = fsio.disk_sha256(path)
    if have != want:
        return f"SHA-256 {have} is not the {want} recorded when it was written"
    return integrity(path)


def restore(root: Path, target: Path, *, replace: bool = False) -> tuple[Backup, list[str]]:
    """Copy the newest sound generation on ``root`` to ``target``; returns it and the newer
    generations that were passed over (and why). An existing catalog is never overwritten
    unless ``replace``; it is then kept beside the new one as ``<name>.replaced-<time>``."""
    passed: list[str] = []
    for path in generations(root):
        if problem := _check(path):
            passed.append(f"{path.name}: {problem}")
            continue
        break
    else:
        detail = "; ".join(passed) or "none found"
        raise CamdockError(f"no sound catalog backup under {root}: {detail}", ExitCode.NOINPUT)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Two restores at once queue on a lock beside the catalog; the check that the catalog is
    # not there is made under it (the compare-and-set): the second finds the first's catalog.
    lock = os.open(target.with_name(f".{target.name}.restore-lock"),
                   os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)  # fmt: skip
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _refuse_existing(target, replace)
        return _place(path, target), passed
    finally:
        os.close(lock)


def _refuse_existing(target: Path, replace: bool) -> None:
    if not target.exists() or replace:
        return
    when = datetime.fromtimestamp(target.stat().st_mtime, UTC).isoformat()
    exc = Conflict(f"{target} exists: a restore never overwrites a catalog (--replace keeps "
                   "the old one beside it); it was written", None, when)  # fmt: skip
    exc.exit_code = ExitCode.CANTCREAT  # as before: the catalog cannot be created there
    raise exc


def _place(path: Path, target: Path) -> Backup:
    """Copy generation ``path`` to ``target``, durably, the old catalog (if any) kept aside."""
    temp = target.with_name(f".{target.name}.restore")
    fsio.unlink_quietly(temp)
    with open(path, "rb") as src, open(temp, "xb") as dst:
        while block := src.read(fsio.CHUNK_SIZE):
            dst.write(block)
        dst.flush()
        os.fsync(dst.fileno())
    digest, size = fsio.disk_sha256(temp)
    stamp = clock.now().strftime("%Y%m%dT%H%M%S.%fZ")
    for suffix in ("", "-wal", "-shm"):  # a dead card's WAL must not be replayed into it
        old = Path(f"{target}{suffix}")
        if old.exists():
            os.rename(old, f"{target}.replaced-{stamp}{suffix}")
    os.rename(temp, target)
    fsio.fsync_dir(target.parent)
    with contextlib.suppress(OSError):
        os.chmod(target, 0o640)
    return Backup(path, digest, size)
