"""py7zr behind adapters/archive.py (imported only when an archive is written or read)."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import py7zr
from py7zr.io import HashIOFactory, Py7zIO, WriterFactory

from camdock.adapters import fsio
from camdock.adapters.archive import ArchiveError, ArchivePaused, Member, ReadBack

# Stored, then AES-256 (key from the password by SHA-256 iterations, as 7-Zip does).
FILTERS = [{"id": py7zr.FILTER_COPY}, {"id": py7zr.FILTER_CRYPTO_AES256_SHA256}]
BLOCK = 1 << 20  # bytes py7zr handles at once, writing and reading

# Memory stays flat in the size of a day without touching py7zr's internals: its read side asks
# the decompressor for up to get_memory_limit() bytes (up to 128 MB, from the free memory), but
# the decompressor reads at most its block (1 MiB on 64-bit CPython) from the archive per call,
# and our filters (stored, then AES) give back no more than they read. So each step holds about
# a block (tests/test_seal.py measures it). A compressing filter would change that.


class _Hashing(io.BufferedReader):
    """A plain copy, hashed as py7zr reads it."""

    def __init__(self, path: Path, pause: Callable[[], bool] | None = None) -> None:
        super().__init__(io.FileIO(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)),
                         buffer_size=fsio.CHUNK_SIZE)  # fmt: skip
        self.digest = hashlib.sha256()
        self.count = 0
        self.pause = pause

    def read(self, size: int | None = -1) -> bytes:
        if self.pause is not None and self.pause():
            raise ArchivePaused("paused: a bay is offloading")
        data = super().read(size)
        self.digest.update(data)
        self.count += len(data)
        return data


def write(
    path: Path,
    members: list[Member],
    password: str,
    progress: Callable[[int], None] | None = None,
    pause: Callable[[], bool] | None = None,
) -> None:
    """Write the archive at ``path`` (a new temp name) and fsync it. Raises ArchiveError when a
    plain copy is not what the catalog says."""
    try:
        with py7zr.SevenZipFile(path, "w", password=password, header_encryption=True,
                                filters=FILTERS, blocksize=BLOCK) as z:  # fmt: skip
            for m in members:
                with _Hashing(m.source, pause) as f:
                    z.writef(f, m.name)
                    got = f.digest.hexdigest()
                if (got, f.count) != (m.sha256, m.size):
                    raise ArchiveError(f"{m.source}: SHA-256 {got} ({f.count} bytes) is not the "
                                       f"catalog's {m.sha256} ({m.size}): not sealed")  # fmt: skip
                if progress is not None:
                    progress(m.size)
    except ArchiveError:
        raise
    except OSError as exc:
        raise ArchiveError(f"{path}: {exc.strerror or exc}") from exc
    except Exception as exc:
        raise ArchiveError(f"{path}: {type(exc).__name__}: {exc}") from exc
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _HashedRead(io.BufferedReader):
    """The archive as py7zr reads it, hashed in passing: bytes are fed to SHA-256 whenever a
    read continues where hashing stopped (py7zr reads the signature header, jumps to the end
    header, then streams the packed data), and ``finish`` reads whatever was skipped. One pass
    over the disk gives both the archive's hash and its members'."""

    def __init__(self, path: Path, pause: Callable[[], bool] | None = None) -> None:
        super().__init__(io.FileIO(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)),
                         buffer_size=BLOCK)  # fmt: skip
        self.digest = hashlib.sha256()
        self.done = 0
        self.pause = pause

    def _feed(self, start: int, data: bytes | memoryview) -> None:
        if start <= self.done < start + len(data):
            self.digest.update(data[self.done - start :])
            self.done = start + len(data)

    def read(self, size: int | None = -1) -> bytes:
        if self.pause is not None and self.pause():
            raise ArchivePaused("paused: a bay is offloading")
        start = self.tell()
        data = super().read(size)
        self._feed(start, data)
        return data

    def read1(self, size: int = -1) -> bytes:
        start = self.tell()
        data = super().read1(size)
        self._feed(start, data)
        return data

    def readinto(self, buffer: Any) -> int:
        start = self.tell()
        n = super().readinto(buffer)
        self._feed(start, memoryview(buffer)[:n])
        return n

    def finish(self) -> tuple[str, int]:
        """The whole file's SHA-256 and size (reading what the archive reader skipped)."""
        self.seek(self.done)
        while self.read(BLOCK):
            pass
        return self.digest.hexdigest(), self.done


def read_back(path: Path, password: str, pause: Callable[[], bool] | None = None) -> ReadBack:
    """The archive as it is on disk (fsynced, dropped from the page cache first): its hash,
    and every member decrypted and hashed, in one pass. A wrong password, a damaged archive or
    a bad CRC is an ArchiveError."""
    try:
        fsio.evict(path)
        factory = HashIOFactory()  # type: ignore[no-untyped-call]
        with _HashedRead(path, pause) as f:
            with py7zr.SevenZipFile(f, "r", password=password, blocksize=BLOCK) as z:
                names = list(z.getnames())
                z.extractall(factory=factory)
            digest, size = f.finish()
        found: dict[str, tuple[str, int]] = {}
        for name in names:
            product: Any = factory.get(name)
            found[name] = (product.hash.hexdigest(), product.size())
    except ArchiveError:
        raise
    except OSError as exc:
        raise ArchiveError(f"{path}: {exc.strerror or exc}") from exc
    except Exception as exc:
        raise ArchiveError(f"{path} does not read back: {type(exc).__name__}: {exc} (wrong "
                           "password, or a damaged archive)") from exc  # fmt: skip
    return ReadBack(digest, size, found)


class _FileOut(Py7zIO):
    """One member extracted to a new file, hashed as it is written."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                          0o640)  # fmt: skip
        self.digest = hashlib.sha256()
        self.count = 0

    def write(self, s: bytes | bytearray) -> int:
        fsio.write_all(self.fd, memoryview(s))
        self.digest.update(s)
        self.count += len(s)
        return len(s)

    def read(self, size: int | None = None) -> bytes:
        return b""

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.count

    def seekable(self) -> bool:
        return False

    def flush(self) -> None:
        pass

    def size(self) -> int:
        return self.count

    def close(self) -> None:
        if self.fd >= 0:
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1


class _FilesOut(WriterFactory):
    def __init__(self, targets: dict[str, Path]) -> None:
        self.targets = targets
        self.made: dict[str, _FileOut] = {}

    def create(self, filename: str) -> Py7zIO:
        out = self.made[filename] = _FileOut(self.targets[filename])
        return out


def extract(path: Path, password: str, targets: dict[str, Member]) -> None:
    """Extract the members named in ``targets`` to each one's ``source`` (new files) and check
    each against its SHA-256 and size: footage read back out of a seal (a plain copy removed
    after sealing, needed again)."""
    factory = _FilesOut({name: m.source for name, m in targets.items()})
    try:
        with py7zr.SevenZipFile(path, "r", password=password, blocksize=BLOCK) as z:
            z.extract(targets=list(targets), factory=factory)
    except OSError as exc:
        raise ArchiveError(f"{path}: {exc.strerror or exc}") from exc
    except Exception as exc:
        raise ArchiveError(f"{path}: {type(exc).__name__}: {exc}") from exc
    finally:
        for out in factory.made.values():
            out.close()
    for name, m in targets.items():
        made = factory.made.get(name)
        got = (made.digest.hexdigest(), made.count) if made else ("missing", 0)
        if got != (m.sha256, m.size):
            raise ArchiveError(f"{path}: member {name} reads back as {got[0]} ({got[1]} bytes), "
                               f"not {m.sha256} ({m.size})")  # fmt: skip
