"""Mounting camera volumes for real (root): ext4 on a loop device, exFAT through FUSE where
the machine has it; anything else refused; a stale mount from a killed daemon is cleared."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from camdock.adapters.mount import SystemMounter, mount_flags
from conftest import needs_root

pytestmark = needs_root


def _image(tmp_path: Path, mkfs: list[str]) -> str:
    image = tmp_path / "cam.img"
    with open(image, "wb") as f:
        f.truncate(32 << 20)
    subprocess.run([*mkfs, str(image)], check=True, capture_output=True)
    dev = subprocess.run(
        ["losetup", "--find", "--show", str(image)], check=True, capture_output=True, text=True
    ).stdout.strip()
    return dev


@pytest.mark.parametrize("fs", ["ext4", "exfat"])
async def test_mount_is_nosuid_nodev_noexec_and_unmounts(tmp_path: Path, fs: str) -> None:
    if fs == "exfat" and not (shutil.which("mkfs.exfat") and shutil.which("mount.exfat-fuse")):
        pytest.skip("exFAT needs exfatprogs and exfat-fuse (no kernel exfat here)")
    dev = _image(tmp_path, ["mkfs.ext4", "-q", "-F"] if fs == "ext4" else ["mkfs.exfat"])
    target = tmp_path / "run" / "bays" / "1"
    mounter = SystemMounter()
    try:
        got = await mounter.mount(dev, fs, target)
        assert got == target and target.is_mount()
        opts = mount_flags(target)
        assert {"nosuid", "nodev", "noexec"} <= opts, opts
        (target / "probe").write_bytes(b"x")  # read-write: clearing needs it
        await mounter.unmount(target)
        assert not target.exists()
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)
        subprocess.run(["losetup", "-d", dev], check=False)


async def test_refuses_foreign_filesystems_and_failed_mounts(tmp_path: Path) -> None:
    from camdock.adapters.mount import MountError

    with pytest.raises(MountError, match="not one a camera uses"):
        await SystemMounter().mount("/dev/null", "ntfs", tmp_path / "t")
    garbage = tmp_path / "garbage.img"
    garbage.write_bytes(os.urandom(1 << 20))
    dev = subprocess.run(
        ["losetup", "--find", "--show", str(garbage)], check=True, capture_output=True, text=True
    ).stdout.strip()
    try:
        with pytest.raises(MountError, match="failed"):
            await SystemMounter().mount(dev, "ext4", tmp_path / "t")
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)


async def test_stale_mount_from_a_killed_daemon_is_cleared_first(tmp_path: Path) -> None:
    dev = _image(tmp_path, ["mkfs.ext4", "-q", "-F"])
    target = tmp_path / "bays" / "1"
    target.mkdir(parents=True)
    try:
        subprocess.run(["mount", dev, str(target)], check=True)  # left over by a SIGKILL
        await SystemMounter().mount(dev, "ext4", target)
        mounts = [
            ln for ln in Path("/proc/self/mounts").read_text().splitlines() if f" {target} " in ln
        ]
        assert len(mounts) == 1 and "nosuid" in mounts[0]  # replaced, not stacked
        await SystemMounter().unmount(target)
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)
        subprocess.run(["losetup", "-d", dev], check=False)


async def test_a_stop_during_the_unmount_waits_for_it(tmp_path: Path) -> None:
    """The station stopped (its task cancelled) just as a bay unmounts after an offload: the
    cancel waits for the unmount, so the daemon never exits with a camera's volume mounted."""
    dev = _image(tmp_path, ["mkfs.ext4", "-q", "-F"])
    target = tmp_path / "run" / "bays" / "1"
    mounter = SystemMounter()
    try:
        await mounter.mount(dev, "ext4", target)
        task = asyncio.create_task(mounter.unmount(target))
        await asyncio.sleep(0)  # the unmount is under way
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not target.is_mount()
        assert not target.exists()
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)
        subprocess.run(["losetup", "-d", dev], check=False)
