"""Filesystem primitives for the offload hot path: hostile-source walking, durable writes,
read-back past the page cache.

The camera's filesystem is untrusted (invariant 5): it is walked with directory file
descriptors and ``O_NOFOLLOW`` on every component, so a symlink, FIFO, socket or device node is
reported and never followed or opened, and a directory swapped for a symlink mid-run cannot
redirect a read. Names are handled as bytes, so non-UTF-8 names survive unchanged.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from camdock.errors import CamdockError, ExitCode

CHUNK_SIZE = 256 << 10
_MAX_DEPTH = 32
# Operating-system clutter on camera volumes; never footage.
_SYSTEM_DIRS = {b"System Volume Information", b"$RECYCLE.BIN", b"lost+found", b"LOST.DIR"}

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: should a FIFO appear between the scan and the open, the open must not hang.
_SRC_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def display(raw: bytes) -> str:
    """A printable form of a raw path: odd bytes become \\xNN, newlines stay escaped."""
    text = raw.decode("utf-8", errors="backslashreplace")
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text
    )


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A regular file on the camera, as seen by the scan."""

    parts: tuple[bytes, ...]  # path components below the source root
    size: int
    mtime_ns: int
    dev: int
    # None on filesystems that keep no inode numbers (FAT, exFAT, FUSE): the driver invents
    # them on each load, so under memory pressure the same file gets a new one. There the
    # file is known by its path, size and mtime.
    ino: int | None

    @property
    def raw(self) -> bytes:
        """The path on the camera as the exact bytes of its components."""
        return b"/".join(self.parts)

    @property
    def display(self) -> str:
        """The path for people and the catalog: odd bytes escaped."""
        return display(self.raw)

    @property
    def name(self) -> str:
        """The last component as text (for reading a time out of it)."""
        return self.parts[-1].decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Skipped:
    """Something on the camera that is not offloaded, and why."""

    path: str
    reason: str
    # Hidden/system clutter and empty files are expected on camera volumes; the rest (links,
    # FIFOs, devices, unreadable entries) is odd enough to warn about.
    expected: bool = False


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device node"
    return "special file"


# Filesystems whose inode numbers are not kept on disk (mount table type names).
INVENTED_INODES = frozenset({"vfat", "msdos", "exfat", "fuseblk", "fuse", "fuse.exfat"})


def scan_source(root: Path, stable_inodes: bool = True) -> tuple[list[SourceFile], list[Skipped]]:
    """Every regular file below ``root`` (sorted), and what was skipped and why.
    ``stable_inodes`` False: the filesystem invents inode numbers; files are not known by one."""
    files: list[SourceFile] = []
    skipped: list[Skipped] = []
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _walk(root_fd, (), files, skipped, stable_inodes)
    finally:
        os.close(root_fd)
    files.sort(key=lambda f: f.parts)
    return files, skipped


def _walk(
    dir_fd: int,
    prefix: tuple[bytes, ...],
    files: list[SourceFile],
    skipped: list[Skipped],
    stable: bool,
) -> None:
    with os.scandir(dir_fd) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        name = os.fsencode(entry.name)
        parts = (*prefix, name)
        shown = display(b"/".join(parts))
        try:
            st = os.stat(entry.name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError as exc:
            skipped.append(Skipped(shown, f"cannot stat: {exc.strerror}"))
            continue
        if stat.S_ISDIR(st.st_mode):
            if name.startswith(b".") or name in _SYSTEM_DIRS:
                skipped.append(Skipped(shown, "hidden or system directory", expected=True))
                continue
            if len(parts) > _MAX_DEPTH:
                skipped.append(Skipped(shown, "directory nesting too deep"))
                continue
            try:
                child = os.open(entry.name, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                skipped.append(Skipped(shown, f"cannot open directory: {exc.strerror}"))
                continue
            try:
                _walk(child, parts, files, skipped, stable)
            finally:
                os.close(child)
        elif stat.S_ISREG(st.st_mode):
            if name.startswith(b"."):
                skipped.append(Skipped(shown, "hidden file", expected=True))
            elif st.st_size == 0:
                skipped.append(Skipped(shown, "empty file", expected=True))
            else:
                ino = st.st_ino if stable else None
                files.append(SourceFile(parts, st.st_size, st.st_mtime_ns, st.st_dev, ino))
        else:
            skipped.append(Skipped(shown, f"{_kind(st.st_mode)}: never followed or opened"))


def open_parent(root: Path, parts: tuple[bytes, ...]) -> int:
    """A directory fd for the parent of ``parts``, opened without following any symlink."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


class SourceChanged(Exception):
    """The camera file is not the one that was scanned, or changed while being read."""


def open_source(root: Path, src: SourceFile) -> int:
    """Open a scanned camera file for reading; refuse anything but that same regular file."""
    parent = open_parent(root, src.parts)
    try:
        fd = os.open(src.parts[-1], _SRC_FLAGS, dir_fd=parent)
    finally:
        os.close(parent)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or not _same_file(st, src):
        os.close(fd)
        raise SourceChanged(f"{src.display}: replaced since the scan")
    os.set_blocking(fd, True)
    with contextlib.suppress(OSError):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    return fd


def _same_file(st: os.stat_result, src: SourceFile) -> bool:
    """The file at the scanned path is still the scanned one: same inode where the filesystem
    keeps inode numbers, else (FAT, exFAT) same size and mtime at the same path."""
    if st.st_dev != src.dev:
        return False
    if src.ino is None:
        return (st.st_size, st.st_mtime_ns) == (src.size, src.mtime_ns)
    return st.st_ino == src.ino


def check_unchanged(fd: int, src: SourceFile, bytes_read: int) -> None:
    """Raise SourceChanged when the open file's size or mtime differ from the scan."""
    st = os.fstat(fd)
    if bytes_read != src.size or st.st_size != src.size or st.st_mtime_ns != src.mtime_ns:
        raise SourceChanged(
            f"{src.display}: changed while being read "
            f"(size {src.size} → {st.st_size}, read {bytes_read}; "
            f"mtime {'unchanged' if st.st_mtime_ns == src.mtime_ns else 'changed'})"
        )


def remove_source(root: Path, src: SourceFile) -> None:
    """Delete a camera file — only if it is still the very file that was read — and make the
    deletion durable."""
    parent = open_parent(root, src.parts)
    try:
        st = os.stat(src.parts[-1], dir_fd=parent, follow_symlinks=False)
        same = _same_file(st, src) and (st.st_size, st.st_mtime_ns) == (src.size, src.mtime_ns)
        if not stat.S_ISREG(st.st_mode) or not same:
            raise SourceChanged(f"{src.display}: changed after it was copied; not cleared")
        os.unlink(src.parts[-1], dir_fd=parent)
        os.fsync(parent)
    finally:
        os.close(parent)


# ---------------------------------------------------------------------------------------------
# Destinations


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write every byte of ``data`` to ``fd`` (os.write may write less)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def remove_under(root: Path, rel: PurePosixPath, *, dry_run: bool = False) -> str:
    """Remove the footage file ``root/rel``, make the removal durable and check it is gone;
    returns what was there ("removed", "already missing"; "present" with ``dry_run``, which only
    checks that it could). The folders are walked without following a symlink (invariant 5): a
    drive tampered with cannot make camdock remove anything outside it."""
    parts = tuple(os.fsencode(p) for p in rel.parts)
    try:
        parent = open_parent(root, parts)
    except FileNotFoundError:
        return "already missing"
    except OSError as exc:  # ELOOP / ENOTDIR: a folder was replaced by a link or a file
        raise CamdockError(f"{root / rel}: {exc.strerror}; not removed", ExitCode.IOERR) from exc
    try:
        try:
            st = os.lstat(parts[-1], dir_fd=parent)
        except FileNotFoundError:
            return "already missing"
        if not stat.S_ISREG(st.st_mode):
            raise CamdockError(f"{root / rel} is not a regular file; not removed", ExitCode.IOERR)
        if dry_run:
            return "present"
        try:
            os.unlink(parts[-1], dir_fd=parent)
        except FileNotFoundError:  # another process removed it a moment ago
            return "already missing"
        os.fsync(parent)
        try:
            os.lstat(parts[-1], dir_fd=parent)
        except FileNotFoundError:
            return "removed"
        raise CamdockError(f"{root / rel} is still there after removal", ExitCode.IOERR)
    finally:
        os.close(parent)


def fsync_dir(path: Path) -> None:
    """fsync a directory, so a name created or removed in it survives power loss."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs_durable(root: Path, rel: tuple[str, ...]) -> Path:
    """Create ``root/rel...`` level by level; each new directory's entry is fsynced."""
    path = root
    for part in rel:
        child = path / part
        try:
            os.mkdir(child, 0o750)
        except FileExistsError:
            pass
        else:
            fsync_dir(path)
        if not stat.S_ISDIR(os.lstat(child).st_mode):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(child))
        path = child
    return path


def create_temp(path: Path) -> int:
    """A new temp file; never reuses or follows an existing name."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)


def unlink_quietly(path: Path) -> None:
    """Remove ``path``; nothing to do when it is already gone."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def link_no_clobber(temp: Path, final: Path) -> None:
    """Give ``temp`` its final name without ever replacing an existing file; then drop the
    temp name and make both changes durable.

    A hard link fails with EEXIST instead of overwriting, which a rename would not. Filesystems
    without hard links (exFAT, vfat) fall back to an existence check and a rename; the caller
    holds the destination lock, so nothing else writes a footage name meanwhile.
    """
    try:
        os.link(temp, final, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
        if os.path.lexists(final):
            raise FileExistsError(errno.EEXIST, "footage name already taken", str(final)) from exc
        os.rename(temp, final)
    else:
        os.unlink(temp)
    fsync_dir(final.parent)


def add_name(existing: Path, new: Path, temp: Path) -> None:
    """A second name for a file, never over an existing one (FileExistsError), durable; the
    first name stays. Filesystems without hard links (exFAT, vfat) get a copy under ``temp``
    first, given the new name only once it is whole; the caller reads the new name back."""
    try:
        os.link(existing, new, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
        fd = create_temp(temp)
        try:
            with open(existing, "rb") as src:
                while chunk := src.read(CHUNK_SIZE):
                    write_all(fd, chunk)
            os.fsync(fd)
        except BaseException:
            unlink_quietly(temp)
            raise
        finally:
            os.close(fd)
        try:
            link_no_clobber(temp, new)
        finally:
            unlink_quietly(temp)
        return
    fsync_dir(new.parent)


def evict(path: Path) -> None:
    """fsync ``path`` and drop its pages from the cache: the next read comes from the disk."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def disk_sha256(
    path: Path,
    chunk_size: int = CHUNK_SIZE,
    after_fsync: Callable[[Path], None] | None = None,
) -> tuple[str, int]:
    """SHA-256 and size of a file as it is **on disk**, not in the page cache (the evidence
    hash: catalogued copies, the audit, the seal)."""
    return disk_digest(path, hashlib.sha256, chunk_size, after_fsync)


def disk_digest(
    path: Path,
    new: Callable[[], Any],
    chunk_size: int = CHUNK_SIZE,
    after_fsync: Callable[[Path], None] | None = None,
) -> tuple[str, int]:
    """A digest (``new()``: hashlib-like) and size of a file as it is **on disk**.

    fsync first (DONTNEED cannot drop dirty pages), then drop the file's pages, then read it
    back (TECH-NOTES §8). ``after_fsync`` is a test seam: it runs between the fsync and the
    eviction, where a test corrupts the blocks behind the cache.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fsync(fd)
        if after_fsync is not None:
            after_fsync(path)
        h = new()
        size = read_back(fd, h, 0, None, chunk_size)
        return str(h.hexdigest()), size
    finally:
        os.close(fd)


def read_back(fd: int, h: Any, start: int, end: int | None, chunk_size: int = CHUNK_SIZE) -> int:
    """Feed ``h`` the bytes [start, end) (None: to the end of the file) as the disk holds them;
    returns how many there were. The range must be written out already (fsync, or
    :func:`write_out`) and ``start`` page-aligned, and so must ``end`` unless None: the cache
    drops whole pages only, and a page left in it would be read from memory. Its pages are
    dropped again afterwards: the cache is for the camera's next file."""
    length = 0 if end is None else end - start
    os.posix_fadvise(fd, start, length, os.POSIX_FADV_DONTNEED)
    pos = start
    while end is None or pos < end:
        block = os.pread(fd, chunk_size if end is None else min(chunk_size, end - pos), pos)
        if not block:
            break
        h.update(block)
        pos += len(block)
    os.posix_fadvise(fd, start, length, os.POSIX_FADV_DONTNEED)
    return pos - start


@functools.cache
def _sync_file_range() -> Any:
    fn = getattr(ctypes.CDLL(None, use_errno=True), "sync_file_range", None)
    if fn is not None:
        # glibc declares the offsets off64_t on every architecture (32-bit Raspberry Pi OS too).
        fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
        fn.restype = ctypes.c_int
    return fn


def write_out(fd: int, start: int, length: int) -> bool:
    """Write the file's dirty pages in [start, start+length) to the device and wait for them
    (sync_file_range: no journal commit, no cache flush, so a copy can be read back while it
    is still being written; the final fsync still makes it durable). False where the kernel or
    the filesystem cannot (the caller then reads back after the fsync); OSError on a write
    error."""
    fn = _sync_file_range()
    if fn is None:
        return False
    wait_before, write, wait_after = 1, 2, 4  # SYNC_FILE_RANGE_*
    if fn(fd, start, length, wait_before | write | wait_after) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ESPIPE, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err))


def fs_identity(path: Path) -> tuple[int, int]:
    """(st_dev, st_ino) of ``path``: which filesystem and directory it is now."""
    st = os.stat(path)
    return st.st_dev, st.st_ino


def bound_malloc() -> None:
    """Keep the process's memory flat however many files it copies (issue 11): glibc gives each
    new thread its own malloc arena (up to 8 per core), and the copy threads of every batch and
    bay leave freed copy buffers behind in theirs, so RSS crept by about 1 KB per camera file.
    Two arenas are plenty for a process whose heavy threads mostly wait on I/O or hash with the
    GIL released (measured: 20,000 files 49 MiB instead of 58). Call before threads start.
    Other C libraries (musl): nothing to do."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_arena_max = -8  # <malloc.h>
    mallopt(m_arena_max, 2)


@contextlib.contextmanager
def exclusive(path: Path, *, shared: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (made if missing) for the block: one holder at a
    time across threads and processes alike (a lock on the open file; ``shared``: with other
    shared holders), released on exit or when the process dies."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # and the lock with it
