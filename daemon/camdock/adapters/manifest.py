"""Each duty day's manifest beside its footage, on every drive (REG-4.2.6, REG-7.1; issue 28):
what a custodian's auditor checks with standard tools, and what ``camdock catalog restore``
brings a lost catalog's recordings back from.

Two files in each ``YYYY/MM/DD/`` folder:

- ``manifest.jsonl``: the history, append-only, one JSON object a line (schema ``v`` 1):
  ``op`` ``store`` (a file durably in place under ``path``), ``remove`` (the name is gone:
  ``reason`` ``refiled`` with ``to``, ``destroyed`` or ``withdrawn``). A ``store`` line carries
  the file's SHA-256, XXH3-128, size, recording id, officer, camera, recorded start/end, duty
  slot and its retention dates; every line carries the custody chain's ``head`` (seq, hash) as
  of its append. Nothing is ever rewritten: a destroyed recording leaves a tombstone line.
- ``manifest-sha256.txt``: the files in place now, ``<sha256>  <path>`` (BagIt's manifest, and
  what ``cd YYYY/MM/DD && sha256sum -c manifest-sha256.txt`` checks), rewritten from the history
  under a temp name and renamed over the old one after each append.

An append is one ``write`` of a whole line to an ``O_APPEND`` file, fsynced with its folder; a
crash can tear only the last line, and a line that does not parse (or does not end in a newline)
is ignored on read. A line is appended only once its file is durably under its final name, and
only for a name it gives (see offload/filing.py), so a manifest never claims a file that is not
in place; a name taken back is withdrawn by a ``remove`` line.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from camdock.adapters import fsio
from camdock.clock import utcnow

__all__ = [
    "HISTORY",
    "NAMES",
    "SUMS",
    "Line",
    "Manifest",
    "day_of",
    "ensure_removed",
    "ensure_stored",
    "read",
    "read_folder",
    "record_removed",
    "record_stored",
]

HISTORY = "manifest.jsonl"
SUMS = "manifest-sha256.txt"
NAMES = frozenset({HISTORY, SUMS, f".{SUMS}.tmp"})
VERSION = 1

# What a 'store' line says of its recording (the catalog's column names), beside path and hashes.
RECORDING_FIELDS = (
    "size",
    "camera_id",
    "officer_name",
    "officer_badge",
    "unit",
    "attribution",
    "duty_slot",
    "duty_slot_start",
    "recorded_start",
    "recorded_end",
    "time_source",
    "time_suspect",
    "time_note",
    "original_name",
    "original_name_raw",
    "source_mtime_ns",
    "retain_until",
    "destroy_by",
)


@dataclass(frozen=True)
class Line:
    """One line of a day's history, with where it is (``file:line``) for the restore's report."""

    where: str
    data: dict[str, Any]

    @property
    def relpath(self) -> str:
        """The file's path from the drive's root (``YYYY/MM/DD/...``)."""
        return str(self.data["relpath"])


@dataclass
class Manifest:
    """A day folder's history as read: its lines, and the ones ignored (torn or not ours)."""

    lines: list[Line] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def live(self) -> dict[str, Line]:
        """The 'store' line of each file the manifest says is in place now (last word wins)."""
        now: dict[str, Line] = {}
        for line in self.lines:
            if line.data.get("op") == "store":
                now[line.relpath] = line
            elif line.data.get("op") == "remove":
                now.pop(line.relpath, None)
        return now

    def removed(self) -> dict[str, Line]:
        """The last 'remove' line of each name no longer in place."""
        gone: dict[str, Line] = {}
        live = self.live()
        for line in self.lines:
            if line.data.get("op") == "remove" and line.relpath not in live:
                gone[line.relpath] = line
        return gone


def day_of(relpath: str) -> tuple[PurePosixPath, str]:
    """A footage path's day folder (``YYYY/MM/DD``) and its path within it."""
    p = PurePosixPath(relpath)
    if len(p.parts) < 4:
        raise ValueError(f"{relpath}: not under a YYYY/MM/DD folder")
    return PurePosixPath(*p.parts[:3]), str(PurePosixPath(*p.parts[3:]))


def record_stored(
    root: Path,
    relpath: str,
    *,
    sha256: str,
    xxh3_128: str | None,
    recording_id: int,
    recording: dict[str, Any],
    head: tuple[int, str] | None,
    refiled_from: str | None = None,
) -> None:
    """Say in ``relpath``'s day manifest on ``root`` that it is in place (call only once it
    durably is, under that name)."""
    data: dict[str, Any] = {
        "v": VERSION,
        "op": "store",
        "relpath": relpath,
        "sha256": sha256,
        "xxh3_128": xxh3_128,
        "recording": recording_id,
        **{k: _plain(recording.get(k)) for k in RECORDING_FIELDS},
    }
    if refiled_from is not None:
        data["from"] = refiled_from
    _append(root, relpath, data, head)


def ensure_stored(root: Path, relpath: str, *, sha256: str, **kw: Any) -> bool:
    """``record_stored`` unless the day's manifest already says this file is in place with this
    content (a re-run); returns whether a line was appended."""
    day, _inner = day_of(relpath)
    now = read_folder(root / day, root).live().get(relpath)
    if now is not None and now.data.get("sha256") == sha256:
        return False
    record_stored(root, relpath, sha256=sha256, **kw)
    return True


def ensure_removed(root: Path, relpath: str, **kw: Any) -> bool:
    """``record_removed`` unless the day's manifest already says the name is gone (a re-run);
    returns whether a line was appended. A day without a manifest gets none."""
    day, _inner = day_of(relpath)
    m = read_folder(root / day, root)
    if not m.lines or relpath not in m.live():
        return False
    record_removed(root, relpath, **kw)
    return True


def _plain(value: Any) -> Any:
    """A column's value as JSON holds it (bytes as {"hex": ...}, as the custody chain does)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return {"hex": bytes(value).hex()}
    return value


def record_removed(
    root: Path,
    relpath: str,
    *,
    reason: str,
    recording_id: int | None,
    head: tuple[int, str] | None,
    to: str | None = None,
    by: str | None = None,
) -> None:
    """Say in ``relpath``'s day manifest on ``root`` that the name is gone (a tombstone: the
    history keeps the 'store' line before it)."""
    data: dict[str, Any] = {
        "v": VERSION,
        "op": "remove",
        "relpath": relpath,
        "reason": reason,
        "recording": recording_id,
    }
    if to is not None:
        data["to"] = to
    if by is not None:
        data["by"] = by
    _append(root, relpath, data, head)


def _append(root: Path, relpath: str, data: dict[str, Any], head: tuple[int, str] | None) -> None:
    day, _inner = day_of(relpath)
    data["time"] = utcnow()
    data["head"] = list(head) if head is not None else None
    folder = fsio.make_dirs_durable(root, day.parts)
    path = folder / HISTORY
    created = not path.exists()
    text = json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
    try:
        # One writer per day folder at a time (threads and processes alike: a lock on the open
        # file): two re-filings at once each append whole lines and rewrite the sums in turn.
        fcntl.flock(fd, fcntl.LOCK_EX)
        # A line before ours that a crash tore is ended first, so ours parses on its own.
        if not created and os.fstat(fd).st_size and not _ends_in_newline(path):
            fsio.write_all(fd, b"\n")
        fsio.write_all(fd, text.encode())
        os.fsync(fd)
        if created:
            fsio.fsync_dir(folder)
        _write_sums(folder, read_folder(folder, root))
    finally:
        os.close(fd)  # and the lock with it


def _ends_in_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _write_sums(folder: Path, manifest: Manifest) -> None:
    """``manifest-sha256.txt`` as the history now says: whole, or the old one."""
    day = PurePosixPath(*folder.parts[-3:])
    lines = []
    for rel, line in sorted(manifest.live().items()):
        inner = str(PurePosixPath(rel).relative_to(day))
        lines.append(f"{line.data['sha256']}  {inner}\n")
    temp = folder / f".{SUMS}.tmp"
    with open(temp, "w", encoding="utf-8") as f:
        f.writelines(lines)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, folder / SUMS)
    fsio.fsync_dir(folder)


def read_folder(folder: Path, root: Path | None = None) -> Manifest:
    """One day folder's history; a torn or foreign line is ignored (and said so)."""
    path = folder / HISTORY
    out = Manifest()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return out
    shown = path if root is None else path.relative_to(root)
    chunks = raw.split(b"\n")
    for n, chunk in enumerate(chunks, 1):
        if not chunk.strip():
            continue
        if n == len(chunks):  # no newline after it: the append was torn
            out.ignored.append(f"{shown}:{n}: torn last line")
            continue
        try:
            data = json.loads(chunk.decode())
        except (UnicodeDecodeError, json.JSONDecodeError):
            out.ignored.append(f"{shown}:{n}: not a manifest line")
            continue
        if not isinstance(data, dict) or data.get("v") != VERSION or "relpath" not in data:
            out.ignored.append(f"{shown}:{n}: not a manifest line")
            continue
        out.lines.append(Line(f"{shown}:{n}", data))
    return out


def read(root: Path) -> Manifest:
    """Every day folder's history on a drive, in one (each line says where it is)."""
    out = Manifest()
    for folder in day_folders(root):
        m = read_folder(folder, root)
        out.lines += m.lines
        out.ignored += m.ignored
    return out


def day_folders(root: Path) -> Iterable[Path]:
    """The drive's ``YYYY/MM/DD`` folders that hold a manifest."""
    return sorted(
        p.parent for p in root.glob(f"[0-9][0-9][0-9][0-9]/[0-9][0-9]/[0-9][0-9]/{HISTORY}")
    )
