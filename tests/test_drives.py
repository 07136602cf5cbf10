"""Footage only where it belongs (REG-4.2.1, REG-4.2.6, invariant 7): each destination proven
to be its drive before anything is written, and two copies on two drives before any clear.
Real filesystems: ext4 images on loop devices, mounted and unmounted for real."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from camdock.adapters.drives import StorageMissing, mount_of, mounts, prove, prove_all
from camdock.core.bay import Phase
from camdock.errors import ExitCode
from camdock.events import EventType
from camdock.model import Drive
from camdock.sim.hotplug import fill_camera
from camdock.station import jobs
from conftest import (
    camdock_cmd,
    loop_ext4,
    make_camera,
    needs_root,
    offload,
    offload_args,
    run,
    tmpfs,
    tree_hashes,
)
from test_station import START, running


def uuid_of(device: str) -> str:
    out = subprocess.run(["blkid", "-c", "/dev/null", "-o", "value", "-s", "UUID", device],
                         check=True, capture_output=True, text=True)  # fmt: skip
    return out.stdout.strip()


@contextlib.contextmanager
def two_drives(tmp_path: Path) -> Iterator[tuple[Drive, Drive, str, str]]:
    """A footage and a backup drive: two ext4 images on loop devices, mounted."""
    with (
        loop_ext4(tmp_path / "f.img", tmp_path / "footage", 32) as (footage, fdev),
        loop_ext4(tmp_path / "b.img", tmp_path / "backup", 32) as (backup, bdev),
    ):
        yield (
            Drive("footage", footage, uuid_of(fdev)),
            Drive("backup", backup, uuid_of(bdev)),
            fdev,
            bdev,
        )


def test_the_mount_table_is_read_with_its_escapes(tmp_path: Path) -> None:
    table = tmp_path / "mountinfo"
    table.write_text(
        "22 1 179:2 / / rw,noatime shared:1 - ext4 /dev/mmcblk0p2 rw\n"
        "40 22 8:1 / /srv/camdock/foot\\040age rw,relatime shared:7 - ext4 /dev/sda1 rw\n"
        "garbage line\n"
    )
    found = mounts(table)
    assert [(m.device, m.mount_point, m.source) for m in found] == [
        ((179, 2), "/", "/dev/mmcblk0p2"),
        ((8, 1), "/srv/camdock/foot age", "/dev/sda1"),
    ]


@needs_root
def test_a_root_is_proven_on_its_drive_and_a_bare_mount_point_is_not(tmp_path: Path) -> None:
    """REG-4.2.1: the proof reads the mount table and the device, not the path's name."""
    with two_drives(tmp_path) as (footage, backup, fdev, _):
        (footage.root / "camdock").mkdir()
        assert prove(footage).mount.source == fdev
        # A folder on the drive is proven too: same device, the drive's mount above it.
        sub = Drive("footage", footage.root / "camdock", footage.uuid)
        assert mount_of(sub.root) == prove(sub).mount
        assert len(prove_all((footage, backup))) == 2
        with pytest.raises(StorageMissing, match="not the drive with UUID"):
            prove(Drive("footage", footage.root, backup.uuid))  # the wrong drive
        with pytest.raises(StorageMissing, match="same filesystem as the footage"):
            prove_all((footage, Drive("backup", sub.root, footage.uuid)))
        subprocess.run(["umount", str(footage.root)], check=True)
        # The mount point is left behind as a plain directory on the machine's own disk.
        assert footage.root.is_dir()
        with pytest.raises(StorageMissing, match="footage drive missing"):
            prove(footage)
        subprocess.run(["mount", fdev, str(footage.root)], check=True)
        assert prove(footage).mount.source == fdev


@needs_root
def test_a_missing_footage_drive_takes_nothing_and_clears_nothing(tmp_path: Path) -> None:
    """REG-4.2.1: with the footage drive unmounted, nothing is written under its mount point
    and the camera keeps every recording; mounted again, the same offload completes."""
    cam = tmp_path / "cam"
    recordings = make_camera(cam, 3)
    catalog = tmp_path / "c.sqlite"
    with two_drives(tmp_path) as (footage, backup, fdev, _):
        drives = (footage, backup)
        dests = [footage.root, backup.root]
        subprocess.run(["umount", str(footage.root)], check=True)
        with pytest.raises(StorageMissing, match="footage drive missing"):
            offload(cam, dests, catalog, drives=drives, allow_one_filesystem=False)
        assert tree_hashes(footage.root) == {} and tree_hashes(backup.root) == {}
        assert len(tree_hashes(cam)) == len(recordings)
        subprocess.run(["mount", fdev, str(footage.root)], check=True)
        report = offload(cam, dests, catalog, drives=drives, allow_one_filesystem=False)
        assert report.ok and all(f.cleared for f in report.files)
        assert len(tree_hashes(footage.root)) == len(tree_hashes(backup.root)) == 3
        assert tree_hashes(cam) == {}


def test_clearing_after_one_copy_is_refused(tmp_path: Path) -> None:
    """REG-4.1.2 with REG-4.2.6: --clear needs two verified copies on two drives; copying
    without --clear stays allowed."""
    cam, d1, d2, catalog = tmp_path / "cam", tmp_path / "d1", tmp_path / "d2", tmp_path / "c.db"
    make_camera(cam, 2)
    d1.mkdir(), d2.mkdir()
    one = run(camdock_cmd(*offload_args(cam, [d1], catalog, "--clear")))
    assert one.returncode == ExitCode.USAGE, one.stderr
    assert "only one destination" in one.stderr and "REG-4.2.6" in one.stderr
    same = run(camdock_cmd(*offload_args(cam, [d1, d2], catalog, "--clear")))
    assert same.returncode == ExitCode.USAGE and "one filesystem" in same.stderr
    assert tree_hashes(d1) == {} and tree_hashes(d2) == {} and len(tree_hashes(cam)) == 2
    copied = run(camdock_cmd(*offload_args(cam, [d1], catalog)))
    assert copied.returncode == 0, copied.stderr
    assert len(tree_hashes(d1)) == 2 and len(tree_hashes(cam)) == 2  # copied, not cleared


@needs_root
def test_two_drives_allow_the_clear(tmp_path: Path) -> None:
    cam, catalog = tmp_path / "cam", tmp_path / "c.db"
    make_camera(cam, 2)
    with tmpfs(tmp_path / "a", "16m") as a, tmpfs(tmp_path / "b", "16m") as b:
        res = run(camdock_cmd(*offload_args(cam, [a, b], catalog, "--clear")))
        assert res.returncode == 0, res.stderr
        assert len(tree_hashes(a)) == len(tree_hashes(b)) == 2 and tree_hashes(cam) == {}


@needs_root
async def test_the_station_shows_storage_missing_and_recovers_by_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Done-when of the filing issue: a footage drive unmounted at the station — nothing written
    under its mount point, nothing cleared, the bay says storage-missing, an event and STATUS=
    say which drive; mounting it again completes the offload without re-docking."""
    monkeypatch.setattr(jobs, "DRIVE_POLL", 0.2)
    vol = tmp_path / "cam1"
    fill_camera(vol, files=2, size=4096, seed=1, start=START)
    with two_drives(tmp_path) as (footage, backup, fdev, _):
        subprocess.run(["umount", str(footage.root)], check=True)
        async with running(tmp_path, drives=(footage.uuid or "", backup.uuid or "")) as h:
            h.hot.dock("1-1", "SN0001", vol)
            await h.until(lambda: h.bay(1).state.phase is Phase.STORAGE_MISSING)
            assert "footage drive missing" in h.bay(1).state.message
            assert h.station.status_line().startswith("ALARM footage drive missing")
            assert tree_hashes(footage.root) == {} and tree_hashes(backup.root) == {}
            assert len(tree_hashes(vol)) == 2
            subprocess.run(["mount", fdev, str(footage.root)], check=True)
            await h.until(lambda: h.bay(1).state.phase is Phase.DONE)
            assert not h.station.status_line().startswith("ALARM")
            types = [t for (t,) in h.catalog("SELECT type FROM outbox ORDER BY id")]
        assert EventType.STORAGE_MISSING in types and EventType.STORAGE_RESTORED in types
        assert types.index(EventType.STORAGE_MISSING) < types.index(EventType.STORAGE_RESTORED)
        assert tree_hashes(vol) == {}
        assert len(tree_hashes(footage.root)) == len(tree_hashes(backup.root)) == 2


@needs_root
async def test_a_full_state_disk_is_an_alarm_not_an_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12: with the catalog's disk full the station stays up, takes no offload it could
    not record (the bay shows storage-missing, the camera keeps its footage, STATUS= says why),
    and recovers by itself when space returns, recording the alarm then."""
    monkeypatch.setattr(jobs, "DRIVE_POLL", 0.2)
    vol = tmp_path / "cam1"
    fill_camera(vol, files=2, size=4096, seed=1, start=START)
    with tmpfs(tmp_path / "state", "16m") as state:
        async with running(tmp_path) as h:
            filler = state / "filler"
            with open(filler, "wb") as f, contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * (1 << 20))
            await h.until(lambda: h.station.status_line().startswith("ALARM state disk"))
            h.hot.dock("1-1", "SN0001", vol)
            await h.until(lambda: h.bay(1).state.phase is Phase.STORAGE_MISSING)
            assert len(tree_hashes(vol)) == 2
            filler.unlink()
            await h.until(lambda: h.bay(1).state.phase is Phase.DONE)
            assert not h.station.status_line().startswith("ALARM")
            types = [t for (t,) in h.catalog("SELECT type FROM outbox ORDER BY id")]
    assert tree_hashes(vol) == {}
    assert EventType.STORAGE_MISSING in types and EventType.STORAGE_RESTORED in types
