"""Faults caused for real: blocks corrupted behind the page cache, a full disk, a destination
that is unmounted mid-run (REG-4.1.2: nothing is cleared unless verified everywhere)."""

from __future__ import annotations

import hashlib
import mmap
import os
import re
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from camdock.adapters.copier import VERIFY_RANGE
from camdock.events import FileVerified, Progress
from conftest import loop_ext4, make_camera, needs_root, offload, tmpfs, tree_hashes

pytestmark = needs_root


def first_block(path: Path) -> int:
    """Physical 4 KiB block number of the file's first extent (from filefrag)."""
    out = subprocess.run(
        ["filefrag", "-v", "-b4096", str(path)], check=True, capture_output=True, text=True
    ).stdout
    m = re.search(r"^\s*0:\s+\d+\.\.\s*\d+:\s+(\d+)\.\.", out, re.MULTILINE)
    assert m, out
    return int(m.group(1))


def head_sha256(path: Path) -> str:
    """SHA-256 of the file's first 256 KiB, as a reader sees them (the rest may still grow)."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read(256 * 1024)).hexdigest()


@pytest.mark.parametrize(
    ("size", "steps"),
    [(256 * 1024, range(1, 2)), (5 * VERIFY_RANGE, range(2, 7))],
    ids=["after-the-fsync", "while-written"],
)
def test_read_back_comes_from_disk_not_the_page_cache(
    tmp_path: Path, size: int, steps: range
) -> None:
    """Invariant 1: once the bytes to be read back are on disk (after the fsync, or — for a file
    longer than VERIFY_RANGE — each range written out while the copy grows) the test overwrites
    the destination's first block *in the image*, behind the kernel's page cache. A
    verification served from cache would still see the good bytes (checked below); the engine
    must read the disk and report the mismatch."""
    cam = tmp_path / "cam"
    make_camera(cam, 2, size=size)
    image = tmp_path / "footage.img"
    seen: dict[str, Any] = {}
    calls: Counter[Path] = Counter()

    with loop_ext4(image, tmp_path / "footage", 96) as (footage, _dev):
        backup = tmp_path / "backup"
        backup.mkdir()

        def corrupt_behind_cache(path: Path) -> None:
            if not str(path).startswith(str(footage)):
                return
            calls[path] += 1
            if seen:
                return
            cached = head_sha256(path)  # through the page cache: still good
            block = first_block(path)
            buf = mmap.mmap(-1, 4096)
            buf.write(b"\xde\xad\xbe\xef" * 1024)
            fd = os.open(image, os.O_WRONLY | os.O_DIRECT)
            try:
                os.pwritev(fd, [buf], block * 4096)
            finally:
                os.close(fd)
            seen.update(path=path, cached=cached, after=head_sha256(path))

        report = offload(
            cam, [footage, backup], tmp_path / "c.sqlite", after_fsync=corrupt_behind_cache
        )
        assert seen, "the seam never ran"
        # The corruption is invisible through the page cache: a cached read-back would pass.
        assert seen["after"] == seen["cached"]
        bad = [f for f in report.files if not f.verified]
        assert len(bad) == 1 and "read-back mismatch" in (bad[0].error or "")
        assert not bad[0].cleared and not report.ok
        assert len(tree_hashes(cam)) == 1  # the corrupted one stayed on the camera
        assert not list(footage.rglob(".camdock-*")) and not list(backup.rglob(".camdock-*"))
    # Each copy was read back in steps: a short file after its fsync only; a long one also
    # while it was written (at least VERIFY_RANGE at a time), then the rest after the fsync.
    assert len(calls) == 2 and all(n in steps for n in calls.values()), calls


def test_full_destination_fails_the_rest_and_clears_nothing_unverified(tmp_path: Path) -> None:
    """ENOSPC on a size-limited tmpfs mid-copy: the temp file goes, that file and every later
    one are reported failed, only verified files are cleared."""
    cam, d1 = tmp_path / "cam", tmp_path / "d1"
    d1.mkdir()
    originals = make_camera(cam, 6, size=1 << 20)
    with tmpfs(tmp_path / "small", "3m") as small:
        report = offload(cam, [d1, small], tmp_path / "c.sqlite")
        statuses = [f.status for f in report.files]
        assert not report.ok
        n_ok = statuses.count("verified")
        assert 1 <= n_ok < 6 and statuses == ["verified"] * n_ok + ["failed"] * (6 - n_ok)
        assert "No space left on device" in (report.files[n_ok].error or "")
        assert all(f.cleared for f in report.files[:n_ok])
        assert not any(f.cleared for f in report.files[n_ok:])
        assert not list(small.rglob(".camdock-*")) and not list(d1.rglob(".camdock-*"))
        assert len(tree_hashes(small)) == n_ok == len(tree_hashes(d1))
    left = tree_hashes(cam)
    assert len(left) == 6 - n_ok and set(left.items()) <= set(originals.items())


def test_destination_unmounted_mid_run_writes_nothing_to_the_mount_point(tmp_path: Path) -> None:
    """A drive that vanishes (lazy unmount) must not make footage land on the SD card."""
    cam, d1, mnt = tmp_path / "cam", tmp_path / "d1", tmp_path / "backup"
    d1.mkdir()
    make_camera(cam, 5, size=512 * 1024)
    names = sorted(p.name for p in cam.rglob("*.MP4"))

    with tmpfs(mnt, "64m"):

        def pull(event: Progress) -> None:
            if isinstance(event, FileVerified) and event.source.endswith(names[1]):
                subprocess.run(["umount", "-l", str(mnt)], check=True)

        report = offload(cam, [d1, mnt], tmp_path / "c.sqlite", progress=pull)
    assert not report.ok
    assert [f.verified for f in report.files][:2] == [True, True]
    assert not any(f.verified or f.cleared for f in report.files[2:])
    assert any("vanished" in (f.error or "") for f in report.files[2:])
    assert tree_hashes(mnt) == {}  # nothing reached the bare mount point
    assert len(tree_hashes(cam)) == 3


def test_loop_image_camera_offloads(tmp_path: Path) -> None:
    """A camera volume that is a real ext4 filesystem on a loop device."""
    with loop_ext4(tmp_path / "cam.img", tmp_path / "cam", 32) as (cam, _):
        originals = make_camera(cam, 3, size=300_000)
        d1, d2 = tmp_path / "d1", tmp_path / "d2"
        d1.mkdir()
        d2.mkdir()
        report = offload(cam, [d1, d2], tmp_path / "c.sqlite")
        assert report.ok
        assert {s.path for s in report.skipped} == {"lost+found"}
        assert sorted(tree_hashes(d1).values()) == sorted(originals.values())
        assert [p for p in cam.rglob("*") if p.is_file()] == []
