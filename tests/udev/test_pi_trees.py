"""The real station (real pyudev under umockdev, real loop-device camera, real mount) on device
trees shaped like a Raspberry Pi 4 and a Pi 5 (issue 12; the dock → offload of REG-4.1.2):

- item 5: a bay named by an ``id_path`` glob written like the example config owns the whole USB
  device — the camera's storage (interface 1.0) *and* its serial port (1.1) — as does a bay
  named by ``usb_port``;
- item 4: a camera disk seen without its partition and pulled again at once is forgotten: the
  next dock of that camera offloads (it used to fault "shows more than one filesystem" until
  the daemon restarted).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_dock_e2e import camera_image, catalog_count, running_station
from umock import PI4, PI5, FakeCamera, PiTree

from camdock.config import load
from camdock.core.bay import Phase
from camdock.station import docking

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for loop devices and mount")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from stationcfg import write_config  # noqa: E402

# bay 1's port, bay 2's port, and bay 1 as an id_path glob like docs/camdock.example.toml's (on
# a Pi 5 the glob must name the controller: "usb-0:1" alone is a port on each of its two buses,
# which check-config refuses as overlapping bays).
PORTS = {
    "pi4": ("1-1.4", "1-1.3", "platform-*-usb-0:1.4"),
    "pi5": ("1-1", "3-1", "platform-xhci-hcd.0-usb-0:1"),
}


def _config(tmp: Path, tree: PiTree, naming: str) -> Path:
    mine, other, glob = PORTS[tree.name]
    path = write_config(tmp)
    text = path.read_text()
    if naming == "id_path":
        text = text.replace('usb_port = "1-1"', f'id_path = "{glob}"')
        text = text.replace('usb_port = "1-2"', f'id_path = "{tree.id_path(other)}"')
    else:
        text = text.replace('usb_port = "1-1"', f'usb_port = "{mine}"')
        text = text.replace('usb_port = "1-2"', f'usb_port = "{other}"')
    path.write_text(text)
    return path


async def _until(what: Any, seconds: float = 30) -> None:
    end = time.monotonic() + seconds
    while not what():
        assert time.monotonic() < end, "timed out"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("naming", ["id_path", "usb_port"])
@pytest.mark.parametrize("tree", [PI4, PI5], ids=lambda t: t.name)
async def test_a_bay_owns_the_cameras_storage_and_its_serial_port(
    testbed: Any, tmp_path: Path, tree: PiTree, naming: str
) -> None:
    cfg = load(_config(tmp_path, tree, naming))
    with camera_image(tmp_path, files=3, size=200_000) as (dev, _mnt):
        cam = FakeCamera(testbed, PORTS[tree.name][0], "SN0001", dev, "ext4", tree=tree)
        cam.add_tty()
        async with running_station(cfg) as station:
            bay = station.bays[1]
            await _until(lambda: bay.state.phase is Phase.DONE and bay.tty is not None)
            assert bay.tty == "/dev/ttyACM0"  # the button's pre-shift test can reach the camera
            assert station.bays[2].tty is None and station.bays[2].storage is None
    assert catalog_count(cfg.catalog, "cleared_at IS NOT NULL") == 3


@pytest.mark.parametrize("tree", [PI4, PI5], ids=lambda t: t.name)
async def test_a_quick_plug_and_pull_leaves_the_bay_usable(
    testbed: Any, tmp_path: Path, tree: PiTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(docking, "NO_FILESYSTEM_AFTER", 0.5)
    cfg = load(_config(tmp_path, tree, "id_path"))
    port = PORTS[tree.name][0]
    with camera_image(tmp_path, files=2, size=200_000) as (dev, _mnt):
        async with running_station(cfg) as station:
            bay = station.bays[1]
            await asyncio.sleep(0.3)  # cold plug done: what follows are live events
            cam = FakeCamera(testbed, port, "SN0001", dev, "ext4", tree=tree, partition=False)
            await asyncio.sleep(0.1)
            cam.pull_disk()
            await asyncio.sleep(1.0)  # past the "no filesystem" wait: nothing may be kept
            assert bay.storage is None and bay.disk_pending is None, bay.storage
            cam.dock_again()  # docked properly this time
            await _until(lambda: bay.state.phase in (Phase.DONE, Phase.FAULT))
            assert bay.state.phase is Phase.DONE, bay.state
    assert catalog_count(cfg.catalog, "cleared_at IS NOT NULL") == 2
