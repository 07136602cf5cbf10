"""Is this destination root really on the drive it belongs to? (REG-4.2.1, invariant 7)

A footage drive that is absent at boot leaves its mount point behind as a plain directory on the
SD card; writing there would put evidence on the wrong disk and then clear the camera. So before
anything is written, each root is proven to sit on the filesystem with the configured UUID (or
label): the root's device number must be that of a mount in the mount table
(``/proc/self/mountinfo``, not a string comparison of paths) whose source device carries that
UUID, read from the device itself by ``blkid``.
"""

from __future__ import annotations

import ctypes
import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from camdock.errors import CamdockError, ExitCode
from camdock.model import Drive

__all__ = [
    "STATE_RESERVE",
    "Mount",
    "Proof",
    "StorageMissing",
    "abort_stalled",
    "mount_of",
    "mounts",
    "prove",
    "prove_all",
    "state_disk",
]

MOUNTINFO = Path("/proc/self/mountinfo")
FUSE_CONNECTIONS = Path("/sys/fs/fuse/connections")
_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
_MS_SAFE = 2 | 4 | 8  # mount(2): MS_NOSUID | MS_NODEV | MS_NOEXEC, as systemd mounts fusectl

log = logging.getLogger(__name__)


class StorageMissing(CamdockError):
    """A destination drive is not mounted where it belongs (or is the wrong drive)."""

    exit_code = ExitCode.CANTCREAT

    def __init__(self, drive: Drive, reason: str) -> None:
        self.drive = drive
        what = "state disk (the catalog's) full" if drive.name == "state" else "drive missing"
        super().__init__(f"{drive.name} {what}: {reason}" if drive.name != "state" else
                         f"{what}: {reason}")  # fmt: skip


@dataclass(frozen=True)
class Mount:
    """One line of the mount table."""

    device: tuple[int, int]  # major, minor: what st_dev of a file on it says
    mount_point: str
    fstype: str
    source: str


@dataclass(frozen=True)
class Proof:
    """A destination proven to be on its drive: the mount and the device it was proven on."""

    drive: Drive
    mount: Mount
    st_dev: int


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal (\040 ...).
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts(table: Path = MOUNTINFO) -> list[Mount]:
    """Every mount, parsed from the kernel's mount table."""
    found = []
    for line in table.read_text().splitlines():
        left, sep, right = line.partition(" - ")
        parts, tail = left.split(), right.split()
        if not sep or len(parts) < 5 or len(tail) < 2:
            continue
        major, _, minor = parts[2].partition(":")
        found.append(
            Mount((int(major), int(minor)), _unescape(parts[4]), tail[0], _unescape(tail[1]))
        )
    return found


def mount_of(path: Path, table: Path = MOUNTINFO) -> Mount | None:
    """The mount that holds ``path``: same device, the longest mount point above it."""
    real = os.path.realpath(path)
    st_dev = os.stat(real).st_dev
    device = (os.major(st_dev), os.minor(st_dev))
    above = [
        m
        for m in mounts(table)
        if m.device == device
        and (real == m.mount_point or real.startswith(m.mount_point.rstrip("/") + "/"))
    ]
    return max(above, key=lambda m: len(m.mount_point), default=None)


def abort_stalled(path: Path, table: Path = MOUNTINFO) -> str | None:
    """End a stalled camera driver's hold on this process: abort the FUSE connection that
    serves ``path`` (issue 11). A FUSE driver that stops answering leaves its callers in a wait
    no signal ends (the kernel flushes a FUSE file on close, uninterruptibly, even at exit);
    aborting the connection fails every pending request at once. Block-device filesystems need
    nothing: their page reads are killable, so the process ends when it exits.

    Found from the mount table alone: a stat of ``path`` would hang on the very driver.
    Returns what was done (for the log), or None when ``path`` is not on FUSE."""
    target = os.path.normpath(os.path.abspath(path))
    above = [
        m
        for m in mounts(table)
        if target == m.mount_point or target.startswith(m.mount_point.rstrip("/") + "/")
    ]
    mount = max(above, key=lambda m: len(m.mount_point), default=None)
    if mount is None or not (mount.fstype == "fuse" or mount.fstype.startswith("fuse")):
        return None
    # fusectl names a connection by the kernel's dev_t: major << 20 | minor.
    conn = FUSE_CONNECTIONS / str(mount.device[0] << 20 | mount.device[1])
    if not conn.exists():
        _mount_fusectl()
    try:
        (conn / "abort").write_text("1\n")
    except OSError as exc:
        return f"could not abort the FUSE connection of {mount.mount_point}: {exc.strerror}"
    return f"aborted the stalled FUSE driver of {mount.mount_point} ({mount.source})"


def _mount_fusectl() -> None:
    """Mount fusectl by the mount(2) call itself, never by running mount(8): a child process
    closes the descriptors it inherits (close_range, or exec's close-on-exec), the camera's
    among them, and closing a FUSE file asks the stalled driver to flush — the child never
    gets to exec and its parent waits for it forever (seen on a machine fresh from boot, where
    nothing had mounted fusectl yet). A failure is logged; the write to ``abort`` then fails
    with its own reason."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_void_p]
    if libc.mount(b"fusectl", os.fsencode(FUSE_CONNECTIONS), b"fusectl", _MS_SAFE, None) != 0:
        err = ctypes.get_errno()
        log.warning("could not mount fusectl on %s: %s", FUSE_CONNECTIONS, os.strerror(err))


def _tag(source: str, tag: str) -> str | None:
    """A filesystem's UUID or LABEL, read from the device by blkid (None when it has none)."""
    if not source.startswith("/dev/"):
        return None
    try:
        out = subprocess.run(
            ["blkid", "-c", "/dev/null", "-o", "value", "-s", tag, source],
            capture_output=True, text=True, timeout=10, env=_ENV, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def prove(drive: Drive, table: Path = MOUNTINFO) -> Proof:
    """Prove ``drive.root`` is on the filesystem with the configured UUID or label."""
    try:
        mount = mount_of(drive.root, table)
    except OSError as exc:
        raise StorageMissing(drive, f"{drive.root}: {exc.strerror}") from exc
    if mount is None:
        raise StorageMissing(drive, f"{drive.root} is on no mounted filesystem")
    tag, want = ("UUID", drive.uuid) if drive.uuid else ("LABEL", drive.label)
    have = _tag(mount.source, tag)
    if want is None or have is None or have.lower() != want.lower():
        raise StorageMissing(
            drive,
            f"{drive.root} is on {mount.source} ({mount.mount_point}, {tag} {have or 'none'}), "
            f"not the drive with {tag} {want}",
        )
    return Proof(drive, mount, os.stat(drive.root).st_dev)


def prove_all(drives: tuple[Drive, ...], table: Path = MOUNTINFO) -> list[Proof]:
    """Prove every drive, and that no two share a filesystem (REG-4.2.6: independent copies)."""
    proofs = [prove(d, table) for d in drives]
    seen: dict[int, Drive] = {}
    for p in proofs:
        if p.st_dev in seen:
            raise StorageMissing(
                p.drive, f"{p.drive.root} is on the same filesystem as the {seen[p.st_dev].name} "
                "drive: two copies on one disk are not a backup (REG-4.2.6)",
            )  # fmt: skip
        seen[p.st_dev] = p.drive
    return proofs


STATE_RESERVE = 4 << 20  # bytes kept free on the state disk for the catalog's next writes


def state_disk(state_dir: Path, reserve: int = STATE_RESERVE) -> None:
    """Raise StorageMissing (drive "state") when the catalog's disk has less than ``reserve``
    free: the station then takes no new offload it could not record (REG-7.1)."""
    drive = Drive("state", state_dir)
    try:
        st = os.statvfs(state_dir)
    except OSError as exc:
        raise StorageMissing(drive, f"{state_dir}: {exc.strerror}") from exc
    free = st.f_bavail * st.f_frsize
    if free < reserve:
        raise StorageMissing(
            drive, f"{free // 1024} KiB free at {state_dir}; the catalog needs {reserve >> 20} MiB"
        )
