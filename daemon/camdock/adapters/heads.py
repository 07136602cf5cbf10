"""The custody chain's heads on the drives (invariant 6): an append-only text file per drive,
``camdock-catalog/custody-heads.log``, one line per sighting: ``<seq> <hash> <UTC time>``.

The catalog lives on the SD card; whoever can edit it could cut the custody log short and
rebuild the chain. The heads written onto the footage and backup drives (and sent to the
server with every event) are what such a chain no longer matches."""

from __future__ import annotations

import os
import re
from pathlib import Path

from camdock.adapters import fsio
from camdock.clock import utcnow

__all__ = ["FOLDER", "append", "read"]

FOLDER = "camdock-catalog"  # beside the catalog's backups
NAME = "custody-heads.log"
_LINE = re.compile(r"^(\d+) ([0-9a-f]{64}) (\S+)$")


def append(root: Path, seq: int, digest: str) -> None:
    """Add the chain's head to ``root``'s heads file, durably."""
    folder = fsio.make_dirs_durable(root, (FOLDER,))
    path = folder / NAME
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o640)  # fmt: skip
    try:
        fsio.write_all(fd, f"{seq} {digest} {utcnow()}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        fsio.fsync_dir(folder)


def read(root: Path) -> tuple[list[tuple[int, str]], list[str]]:
    """The heads on a drive, and the lines that are not heads (a damaged or edited file)."""
    path = root / FOLDER / NAME
    heads, bad = [], []
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return [], []
    for n, line in enumerate(text.splitlines(), 1):
        if m := _LINE.match(line):
            heads.append((int(m[1]), m[2]))
        elif line.strip():
            bad.append(f"{path}:{n}: not a head line")
    return heads, bad
