"""Mounting camera volumes with mount(8): argv only, never a shell.

Camera filesystems are mounted ``nosuid,nodev,noexec,noatime`` under the daemon's own run
directory. The environment passed to mount(8) is a bare PATH, so nothing the daemon inherited
(LD_PRELOAD, locale tricks) reaches a setuid-capable helper.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from camdock.config import FILESYSTEMS

log = logging.getLogger(__name__)

MOUNT_OPTIONS = "nosuid,nodev,noexec,noatime"
_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}


class MountError(Exception):
    pass


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


class SystemMounter:
    """Mounts with mount(8) under ``run_dir``; returns the mount point."""

    async def mount(self, devnode: str, fs_type: str, target: Path) -> Path:
        if fs_type not in FILESYSTEMS:
            raise MountError(f"{devnode}: filesystem {fs_type!r} is not one a camera uses")
        target.mkdir(parents=True, exist_ok=True, mode=0o700)
        if target.is_mount():
            # Left by a daemon that was killed mid-offload: clear it, never stack on it.
            log.warning("%s is still mounted from an earlier run; unmounting it first", target)
            await self.unmount(target)
            target.mkdir(parents=True, exist_ok=True, mode=0o700)
        rc, out = await _run(
            "mount", "-t", fs_type, "-o", MOUNT_OPTIONS, "--", devnode, str(target)
        )
        if rc != 0:
            raise MountError(f"mount {devnode} ({fs_type}) failed: {out or f'exit {rc}'}")
        log.info("mounted %s (%s) on %s", devnode, fs_type, target)
        return target

    async def unmount(self, target: Path) -> None:
        """Unmount; when the device is gone or busy, detach lazily so the bay is free again."""
        rc, out = await _run("umount", "--", str(target))
        if rc != 0:
            log.warning("umount %s failed (%s); detaching lazily", target, out)
            await _run("umount", "-l", "--", str(target))
        with contextlib.suppress(OSError):
            target.rmdir()
