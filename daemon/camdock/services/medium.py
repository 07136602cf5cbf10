"""The export medium an approved copy goes onto (REG-5, Annex 3; invariant 5): the target
folder resolved once, component by component from an allowed root with ``O_NOFOLLOW`` and
directory descriptors (``openat``), so a symbolic link on the stick (``/mnt/x/link`` to
``/etc``) can never make the daemon, root, write elsewhere; the request's folder created and
held open, and everything after written through that descriptor (``/proc/self/fd/N`` for the
copier, ``dir_fd`` for the rest).

Every problem of the medium (a link, a file, a missing folder, a NUL byte, a long name, read
only, pulled, full) is a ``MediumError``: one clear bilingual sentence, a 409 on the console
and a clean error from the command, never "internal error" (issue 29). A copy that fails
part-way is removed; where even that fails, the folder is marked INCOMPLETE, and it never
carries a manifest (the manifest is written last)."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from camdock.adapters import fsio
from camdock.adapters.copyjob import Destination
from camdock.errors import CamdockError, ExitCode

__all__ = ["INCOMPLETE", "Medium", "MediumError", "medium_error", "open_medium"]

INCOMPLETE = "INCOMPLETE.txt"  # left where a partial copy could not be removed
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class MediumError(CamdockError):
    """The export medium cannot take the copy (answered as a conflict: 409)."""

    exit_code = ExitCode.CANTCREAT


# What each errno means for a person at the console, in the regulation's language first.
_WHY = {
    errno.ELOOP: "是符號連結，不予使用 is a symbolic link: refused",
    errno.ENOTDIR: "不是資料夾 is not a folder",
    errno.ENOENT: "不存在（媒體未插入？） does not exist (is the medium inserted?)",
    errno.ENAMETOOLONG: "名稱過長 has a name that is too long",
    errno.EROFS: "所在媒體為唯讀 is on a read-only medium",
    errno.EACCES: "不允許寫入 may not be written",
    errno.EPERM: "不允許寫入 may not be written",
    errno.ENOSPC: "所在媒體空間不足 is on a medium that is full",
    errno.EDQUOT: "所在媒體空間不足 is on a medium that is full",
    errno.EIO: "所在媒體已移除或無法讀寫 is on a medium that was pulled or fails",
    errno.ENODEV: "所在媒體已移除 is on a medium that was pulled",
    errno.ENXIO: "所在媒體已移除 is on a medium that was pulled",
    errno.EEXIST: "已存在：複製須寫入新資料夾 exists: a copy goes into a new folder",
}


def medium_error(where: str, exc: OSError | int) -> MediumError:
    """The sentence for ``exc`` (an OSError or an errno) at ``where``."""
    code = exc if isinstance(exc, int) else (exc.errno or errno.EIO)
    why = _WHY.get(code, f"無法寫入 cannot be written ({os.strerror(code)})")
    return MediumError(f"匯出位置 export target {where} {why}")


def _errno_of(text: str) -> int | None:
    """The medium's errno a copier's failure names (its message is the OSError's text); None
    when it names none (a recording that does not read back as catalogued: not the medium)."""
    for code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.ENODEV, errno.ENXIO):
        if os.strerror(code) in text:
            return code
    return None


class Medium:
    """The request's folder on the export medium, held open (``fd``) in its parent
    (``parent``): ``path`` reaches it through the descriptor, never through the names."""

    def __init__(self, parent: int, fd: int, name: str, shown: Path) -> None:
        self.parent, self.fd, self.name, self.shown = parent, fd, name, shown

    @property
    def path(self) -> Path:
        """The folder by its descriptor: a lookup below it starts at this very directory."""
        return Path(f"/proc/self/fd/{self.fd}")

    def destination(self) -> Destination:
        """The copier's destination, pinned to the open folder (not re-resolved by name)."""
        return Destination(self.path, fsio.fs_identity(self.path))

    def write(self, name: str, text: str) -> None:
        """A new file in the folder (never through a link, never over a name), synced."""
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o644, dir_fd=self.fd)  # fmt: skip
        try:
            data = text.encode("utf-8")
            while data:
                data = data[os.write(fd, data) :]
            os.fsync(fd)
        finally:
            os.close(fd)

    def sync(self) -> None:
        """The folder's names made durable."""
        os.fsync(self.fd)

    def failed(self, exc: BaseException) -> MediumError | None:
        """Remove the partial copy (or mark it incomplete); the medium's problem, if it was
        one, as a ``MediumError`` to raise instead of ``exc``."""
        self.discard()
        if isinstance(exc, MediumError):
            return exc
        if isinstance(exc, OSError):
            return medium_error(str(self.shown), exc)
        code = _errno_of(str(exc)) if isinstance(exc, CamdockError) else None
        return medium_error(str(self.shown), code) if code is not None else None

    def discard(self) -> None:
        """Every file of the partial copy removed, then the folder; where the medium will not
        let go, an INCOMPLETE note (and the manifest removed, should it have been written)."""
        try:
            for entry in os.listdir(self.fd):
                _remove(entry, self.fd)
            os.rmdir(self.name, dir_fd=self.parent)
            os.fsync(self.parent)
            return
        except OSError:
            pass
        with contextlib.suppress(OSError):
            os.unlink("MANIFEST.sha256", dir_fd=self.fd)
        with contextlib.suppress(OSError):  # pulled: nothing can be written to it any more
            self.write(INCOMPLETE, "未完成之複製，不得使用 An incomplete copy: do not use.\n")

    def close(self) -> None:
        """Both descriptors closed (twice is harmless)."""
        for fd in (self.fd, self.parent):
            if fd >= 0:
                os.close(fd)
        self.fd = self.parent = -1


def _remove(name: str, parent: int) -> None:
    st = os.lstat(name, dir_fd=parent)
    if stat.S_ISDIR(st.st_mode):  # the seal's extraction folder
        fd = os.open(name, _DIR, dir_fd=parent)
        try:
            for entry in os.listdir(fd):
                _remove(entry, fd)
        finally:
            os.close(fd)
        os.rmdir(name, dir_fd=parent)
    else:
        os.unlink(name, dir_fd=parent)


def open_medium(target: str | Path, roots: tuple[Path, ...], name: str) -> Medium:
    """Create ``target/name`` and hold it open: ``target`` must be a folder at or under one
    of ``roots`` (the roots are the station's own, resolved once; below them no component may
    be a link)."""
    text = str(target)
    if "\0" in text:
        raise MediumError("匯出位置含有 NUL 字元 the export target contains a NUL byte")
    where = Path(os.path.abspath(text))
    below: tuple[str, ...] | None = None
    root = where
    for r in roots:
        if where == r or r in where.parents:
            root, below = r, where.parts[len(r.parts) :]
            break
    if below is None:
        shown = ", ".join(str(r) for r in roots)
        raise CamdockError(f"匯出位置須在 {shown} 之下 the copy goes onto export media: under "
                           f"{shown}", ExitCode.USAGE)  # fmt: skip
    try:
        fd = os.open(os.path.realpath(root), _DIR)
    except OSError as exc:
        raise medium_error(str(root), exc) from None
    try:
        for part in below:
            try:
                nfd = os.open(part, _DIR, dir_fd=fd)
            except OSError as exc:
                if exc.errno == errno.ENOTDIR and _is_link(part, fd):
                    exc.errno = errno.ELOOP
                raise medium_error(str(where), exc) from None
            os.close(fd)
            fd = nfd
        try:
            os.mkdir(name, 0o755, dir_fd=fd)
            out = os.open(name, _DIR, dir_fd=fd)
            os.fsync(fd)
        except OSError as exc:
            raise medium_error(str(where / name), exc) from None
    except BaseException:
        os.close(fd)
        raise
    return Medium(fd, out, name, where / name)


def _is_link(name: str, parent: int) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(name, dir_fd=parent).st_mode)
    except OSError:
        return False
