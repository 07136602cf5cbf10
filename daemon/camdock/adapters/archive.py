"""The daily seal's archive (REG-4.2.5): a 7z archive, AES-256 with encrypted headers, written
and read back by the 7-Zip program (adapters/_sevenzip.py: why the program, how it is driven).

Why 7z rather than an AES zip: the custodian's ordinary tools open it with the password (7-Zip
on Windows, ``7z x`` on Linux), and with encrypted headers the member names — which carry
officers' names (REG-4.2.4), personal data — are encrypted too; an AES zip leaves every name
readable to whoever unplugs the drive. Footage does not compress, so members are stored
(``-mx=0``) and then encrypted, in a few MiB of memory whatever the day's size.

Only regular files of the catalog's size are archived; reading back, the archive is fsynced
and dropped from the page cache, hashed as it is on disk, then every member is decrypted and
hashed, and services/seal.py names the archive only when each equals the catalog's SHA-256 (a
damaged plain copy is never sealed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from camdock.errors import CamdockError, ExitCode

__all__ = [
    "ArchiveError",
    "ArchivePaused",
    "Member",
    "ReadBack",
    "discard",
    "extract",
    "read_back",
    "write",
]


class ArchiveError(CamdockError):
    """An archive could not be written or does not read back as it must."""

    exit_code = ExitCode.IOERR


class ArchivePaused(ArchiveError):
    """Stopped on request (a bay started offloading): nothing is wrong, it starts again later."""


@dataclass(frozen=True)
class Member:
    """One recording to seal: its name in the archive, its plain copy and what it must be."""

    name: str
    source: Path
    sha256: str
    size: int


@dataclass(frozen=True)
class ReadBack:
    """An archive as it is on disk: its own hash and size, and each member's."""

    sha256: str
    size: int
    members: dict[str, tuple[str, int]]  # name → (SHA-256, size)


# The driver is imported only when an archive is written or read: commands start faster
# (bench/cpu_bench.py).


def write(path: Path, members: list[Member], password: str,
          progress: Callable[[int], None] | None = None,
          pause: Callable[[], bool] | None = None) -> None:  # fmt: skip
    """Write the archive at ``path`` (a new temp name) and fsync it. Raises ArchiveError when a
    plain copy is not what the catalog says, ArchivePaused as soon as ``pause()`` says so."""
    from camdock.adapters import _sevenzip

    _sevenzip.write(path, members, password, progress, pause)


def read_back(path: Path, password: str, pause: Callable[[], bool] | None = None) -> ReadBack:
    """The archive as it is on disk (fsynced, dropped from the page cache first): its hash,
    and every member decrypted and hashed, in one pass. A wrong password, a damaged archive or
    a bad CRC is an ArchiveError; ``pause()`` true stops it (ArchivePaused)."""
    from camdock.adapters import _sevenzip

    return _sevenzip.read_back(path, password, pause)


def discard(path: Path) -> None:
    """Remove what writing the archive at ``path`` (a temp name) may have left: the file and
    the folder of names beside it. Recovery calls it for every seal a crash left unfinished."""
    from camdock.adapters import _sevenzip

    _sevenzip.discard(path)


def extract(path: Path, password: str, targets: dict[str, Member]) -> None:
    """Extract the members named in ``targets`` to each one's ``source`` (new files) and check
    each against its SHA-256 and size: footage read back out of a seal."""
    from camdock.adapters import _sevenzip

    _sevenzip.extract(path, password, targets)
