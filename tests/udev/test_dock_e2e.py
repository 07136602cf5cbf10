"""End to end with real pyudev, a real ext4 camera volume and real mounts (root):
udev add → mounted → offloaded to two destinations → LED done → catalog → camera cleared →
unmounted; and the same with the daemon SIGKILLed mid-offload, then restarted."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin
from umock import FakeCamera, Overflow

from camdock.adapters.mount import SystemMounter
from camdock.adapters.udev import UdevHotplug
from camdock.config import load
from camdock.core.bay import Phase
from camdock.sim.hotplug import fill_camera
from camdock.station.station import Station

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for loop devices and mount")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from daemontask import stop  # noqa: E402
from stationcfg import write_config  # noqa: E402
from stationtime import at_station_time  # noqa: E402

# Tools that must see the real /sys run without the umockdev preload.
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "UMOCKDEV_DIR")}


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, env=CLEAN_ENV).stdout


@contextlib.contextmanager
def camera_image(tmp: Path, files: int, size: int) -> Iterator[tuple[str, Path]]:
    """An ext4 camera volume on a loop device, filled with recordings, then unmounted."""
    image, mnt = tmp / "camera.img", tmp / "fill"
    with open(image, "wb") as f:
        f.truncate(max(64, files * size * 2 // (1 << 20) + 32) << 20)
    sh("mkfs.ext4", "-q", "-F", str(image))
    dev = sh("losetup", "--find", "--show", "--direct-io=on", str(image)).strip()
    mnt.mkdir()
    try:
        sh("mount", dev, str(mnt))
        fill_camera(mnt, files=files, size=size, seed=5, start=datetime(2026, 11, 28, 9, 0))
        sh("umount", str(mnt))
        yield dev, mnt
    finally:
        subprocess.run(["umount", str(mnt)], env=CLEAN_ENV, capture_output=True, check=False)
        subprocess.run(["losetup", "-d", dev], env=CLEAN_ENV, check=False)


def camera_files(dev: str, mnt: Path) -> list[str]:
    sh("mount", "-o", "ro", dev, str(mnt))
    try:
        return sorted(str(p.relative_to(mnt)) for p in mnt.rglob("*.MP4"))
    finally:
        sh("umount", str(mnt))


@contextlib.asynccontextmanager
async def running_station(cfg: Any, factory: MockFactory | None = None) -> AsyncIterator[Station]:
    """A station on real pyudev and mount(8), with mock GPIO pins; stopped on leaving."""
    factory = factory or MockFactory(pin_class=MockPWMPin)
    station = Station(cfg, hotplug=UdevHotplug(), mounter=SystemMounter(), pin_factory=factory)
    task = asyncio.create_task(station.run())
    try:
        yield station
    finally:
        await stop(task)
        factory.close()


def catalog_count(path: Path, where: str = "1") -> int:
    if not path.exists():
        return 0
    con = sqlite3.connect(path, timeout=5)
    try:
        sql = f"SELECT count(*) FROM recordings WHERE {where}"  # noqa: S608 - test constants
        return int(con.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # the daemon is still creating the catalog
    finally:
        con.close()


async def test_udev_add_to_done_with_real_mount(testbed: Any, tmp_path: Path) -> None:
    with camera_image(tmp_path, files=5, size=400_000) as (dev, mnt):
        cfg = load(write_config(tmp_path))
        FakeCamera(testbed, "1-1", "SN0001", dev, "ext4")
        factory = MockFactory(pin_class=MockPWMPin)
        async with running_station(cfg, factory) as station:
            end = time.monotonic() + 30
            while station.bays[1].state.phase is not Phase.DONE:
                assert time.monotonic() < end, station.bays[1].state
                assert station.bays[1].state.phase is not Phase.FAULT, station.bays[1].state
                await asyncio.sleep(0.05)
            target = cfg.run_dir / "bays" / "1"
            # Green shows when the offload is done; the unmount follows (the bay's task ends).
            while factory.pin(6).state != 1 or target.is_mount():
                assert time.monotonic() < end, (factory.pin(6).state, target.is_mount())
                await asyncio.sleep(0.02)
            assert station.bays[1].state.phase is Phase.DONE  # bay 1's green LED: steady
        assert catalog_count(cfg.catalog, "cleared_at IS NOT NULL") == 5
        assert len(list((tmp_path / "footage").rglob("*.mp4"))) == 5
        assert len(list((tmp_path / "backup").rglob("*.mp4"))) == 5
        assert camera_files(dev, mnt) == []  # cleared, only after all of the above


@pytest.mark.slow
def test_daemon_sigkilled_mid_offload_finishes_after_restart(testbed: Any, tmp_path: Path) -> None:
    files = 40
    with camera_image(tmp_path, files=files, size=1 << 20) as (dev, mnt):
        cfg_path = write_config(tmp_path)
        cfg = load(cfg_path)
        FakeCamera(testbed, "1-1", "SN0001", dev, "ext4")
        cmd = [sys.executable, "-m", "camdock", "run", "--config", str(cfg_path)]
        # The daemon inherits the umockdev environment (its preload kept): it sees the fake
        # USB camera; at the tests' moment, each run from its own start.
        first = subprocess.Popen(at_station_time(cmd), stderr=subprocess.PIPE)
        try:
            end = time.monotonic() + 60
            while catalog_count(cfg.catalog) < 3:
                assert time.monotonic() < end and first.poll() is None
                time.sleep(0.01)
        finally:
            first.send_signal(signal.SIGKILL)
            first.communicate()
        done_before = catalog_count(cfg.catalog)
        assert 0 < done_before < files, "the kill must land mid-offload"

        second = subprocess.Popen(at_station_time(cmd), stderr=subprocess.PIPE)
        try:
            end = time.monotonic() + 90
            while catalog_count(cfg.catalog, "cleared_at IS NOT NULL") < files:
                assert time.monotonic() < end and second.poll() is None
                time.sleep(0.1)
            while (cfg.run_dir / "bays" / "1").is_mount():  # the unmount after the offload
                assert time.monotonic() < end and second.poll() is None
                time.sleep(0.05)
        finally:
            second.send_signal(signal.SIGTERM)
            try:
                _, err = second.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                second.kill()
                raise
        assert second.returncode == 0, err.decode()
        assert catalog_count(cfg.catalog) == files  # never catalogued twice
        for d in ("footage", "backup"):
            stored = list((tmp_path / d).rglob("*"))
            assert len([p for p in stored if p.is_file() and p.suffix == ".mp4"]) == files
            assert not [p for p in stored if p.name.startswith(".camdock-")]
        assert not (cfg.run_dir / "bays" / "1").is_mount()
        assert camera_files(dev, mnt) == []


async def test_pulled_mid_offload_through_udev_then_redocked(testbed: Any, tmp_path: Path) -> None:
    """The udev remove arrives mid-offload: the bay shows interrupted, the mount is detached,
    what was verified stays cleared, the rest stays on the camera; docking again finishes."""
    files = 30
    with camera_image(tmp_path, files=files, size=1 << 20) as (dev, mnt):
        cfg = load(write_config(tmp_path))
        cam = FakeCamera(testbed, "1-1", "SN0001", dev, "ext4")
        async with running_station(cfg) as station:
            bay = station.bays[1]
            end = time.monotonic() + 30
            while catalog_count(cfg.catalog) < 2:
                assert time.monotonic() < end and bay.state.phase is not Phase.DONE
                await asyncio.sleep(0.005)
            cam.unplug()
            while bay.state.phase is not Phase.INTERRUPTED:
                assert time.monotonic() < end, bay.state
                await asyncio.sleep(0.01)
            while bay.offload.task is not None and not bay.offload.task.done():
                await asyncio.sleep(0.02)
            assert not (cfg.run_dir / "bays" / "1").is_mount()
            left = len(camera_files(dev, mnt))
            assert 0 < left < files
            cam.replug()  # docked again
            while bay.state.phase is not Phase.DONE:
                assert time.monotonic() < end + 30, bay.state
                await asyncio.sleep(0.05)
        assert camera_files(dev, mnt) == []
        assert catalog_count(cfg.catalog, "cleared_at IS NOT NULL") == files


async def test_a_camera_whose_add_the_kernel_dropped_is_offloaded(
    testbed: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """A camera docked while the kernel drops udev events (a busy shift end): the resync after
    ENOBUFS finds it, and it is offloaded without being docked again."""
    with camera_image(tmp_path, files=3, size=200_000) as (dev, mnt):
        cfg = load(write_config(tmp_path))
        overflow = Overflow(monkeypatch)
        async with running_station(cfg) as station:
            bay = station.bays[1]
            await asyncio.wait_for(station.ready.wait(), 30)
            overflow.dropping = True
            FakeCamera(testbed, "1-1", "SN0001", dev, "ext4")  # its "add"s are lost
            await overflow.end(2, testbed)
            end = time.monotonic() + 30
            while bay.state.phase is not Phase.DONE:
                assert time.monotonic() < end, bay.state
                assert bay.state.phase is not Phase.FAULT, bay.state
                await asyncio.sleep(0.05)
            # DONE shows before the unmount that follows: stopping the station in between (a
            # loaded machine) left the volume mounted and the check below could not mount it.
            while (cfg.run_dir / "bays" / "1").is_mount():
                assert time.monotonic() < end, "the bay's volume stays mounted"
                await asyncio.sleep(0.02)
        assert catalog_count(cfg.catalog, "cleared_at IS NOT NULL") == 3
        assert camera_files(dev, mnt) == []
