"""Mounting camera volumes with mount(8): argv only, never a shell.

Camera filesystems are mounted ``nosuid,nodev,noexec,noatime`` under the daemon's own run
directory. The environment passed to mount(8) is a bare PATH, so nothing the daemon inherited
(LD_PRELOAD, locale tricks) reaches a setuid-capable helper.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from pathlib import Path

from camdock.errors import MountError
from camdock.model import FILESYSTEMS

log = logging.getLogger(__name__)

MOUNT_OPTIONS = "nosuid,nodev,noexec,noatime"
_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}


async def _run(*argv: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=_ENV,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode("utf-8", "replace").strip()


UNMOUNT_WAIT = 10  # s a stop waits for an unmount under way (umount -l never blocks long)

REQUIRED_FLAGS = frozenset({"nosuid", "nodev", "noexec"})


def mount_flags(target: Path) -> set[str]:
    """The options /proc/self/mounts shows for the mount on ``target`` (the last, if stacked)."""
    flags: set[str] = set()
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[1] == str(target):
            flags = set(fields[3].split(","))
    return flags


def mount_type(fs_type: str) -> str:
    """The -t for mount(8): the kernel's driver, or exFAT through FUSE where the kernel has
    none (the Pi's kernel has exfat; some development machines do not)."""
    if fs_type != "exfat":
        return fs_type
    try:
        kernel = Path("/proc/filesystems").read_text().split()
    except OSError:
        kernel = []
    if "exfat" not in kernel and shutil.which("mount.exfat-fuse", path=_ENV["PATH"]):
        return "exfat-fuse"  # mount(8) runs /sbin/mount.exfat-fuse
    return fs_type


class SystemMounter:
    """Mounts with mount(8) under ``run_dir``; returns the mount point."""

    async def mount(self, devnode: str, fs_type: str, target: Path) -> Path:
        """Mount ``devnode`` read-write at ``target`` with nosuid,nodev,noexec,noatime."""
        if fs_type not in FILESYSTEMS:
            raise MountError(f"{devnode}: filesystem {fs_type!r} is not one a camera uses")
        target.mkdir(parents=True, exist_ok=True, mode=0o700)
        if target.is_mount():
            # Left by a daemon that was killed mid-offload: clear it, never stack on it.
            log.warning("%s is still mounted from an earlier run; unmounting it first", target)
            await self.unmount(target)
            target.mkdir(parents=True, exist_ok=True, mode=0o700)
        rc, out = await _run(
            "mount", "-t", mount_type(fs_type), "-o", MOUNT_OPTIONS, "--", devnode, str(target)
        )
        if rc != 0:
            raise MountError(f"mount {devnode} ({fs_type}) failed: {out or f'exit {rc}'}")
        if missing := REQUIRED_FLAGS - mount_flags(target):
            # Some helpers drop flags (mount.exfat-fuse ignores noexec): a remount sets them.
            await _run("mount", "-o", f"remount,{MOUNT_OPTIONS}", "--", str(target))
            if missing := REQUIRED_FLAGS - mount_flags(target):
                await self.unmount(target)
                raise MountError(f"mount {devnode}: could not enforce {','.join(sorted(missing))}")
        log.info("mounted %s (%s) on %s", devnode, fs_type, target)
        return target

    async def unmount(self, target: Path) -> None:
        """Unmount; when the device is gone or busy, detach lazily so the bay is free again.
        A stop (cancel) that comes meanwhile waits for it, up to UNMOUNT_WAIT: the station
        stopping right after an offload must not exit with the camera's volume mounted."""
        task = asyncio.ensure_future(self._unmount(target))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            try:
                async with asyncio.timeout(UNMOUNT_WAIT):
                    await task
            except TimeoutError:
                log.error("%s: unmount still running after %d s; stopping anyway", target,
                          UNMOUNT_WAIT)  # fmt: skip
            except Exception:  # the stop goes on: a failed unmount is logged, not raised
                log.exception("%s: unmount failed while stopping", target)
            raise

    async def _unmount(self, target: Path) -> None:
        rc, out = await _run("umount", "--", str(target))
        if rc != 0:
            log.warning("umount %s failed (%s); detaching lazily", target, out)
            await _run("umount", "-l", "--", str(target))
        with contextlib.suppress(OSError):
            target.rmdir()
