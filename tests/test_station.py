"""The station with its real code paths and simulated hardware: gpiozero MockFactory pins,
scripted hotplug events, camera volumes as directories, the real offload engine."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import sqlite3
import time
import unicodedata
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from camdock.catalog import outbox
from camdock.config import Config, load
from camdock.core.bay import Phase
from camdock.events import BytesCopied, EventType, SessionStarted
from camdock.sim.hotplug import SimHotplug, SimMounter, fill_camera
from camdock.station import docking, jobs
from camdock.station import station as station_mod
from camdock.station.bays import OffloadRun
from camdock.station.station import Station
from conftest import camdock_cmd, stop, tree_hashes
from conftest import run as run_cmd
from stationcfg import write_config

START = datetime(2026, 11, 28, 8, 30)
RED, AMBER, GREEN, BUTTON = 4, 5, 6, 7  # bay 1's pins in stationcfg


class Harness:
    def __init__(self, cfg: Config, factory: MockFactory, hot: SimHotplug, station: Station):
        self.cfg, self.factory, self.hot, self.station = cfg, factory, hot, station
        self.events: list[tuple[str, int | None, dict[str, Any]]] = []

    def bay(self, n: int) -> Any:
        return self.station.bays[n]

    async def until(self, pred: Callable[[], bool], timeout: float = 20) -> None:
        end = time.monotonic() + timeout
        while not pred():
            assert time.monotonic() < end, f"timed out; bays: {self.phases()}"
            await asyncio.sleep(0.02)

    def phases(self) -> dict[int, Phase]:
        return {n: b.state.phase for n, b in self.station.bays.items()}

    def pin_values(self, pin: int) -> list[float]:
        return [float(s.state) for s in self.factory.pin(pin).states]

    def catalog(self, sql: str) -> list[tuple[Any, ...]]:
        if not self.cfg.catalog.exists():
            return []
        con = sqlite3.connect(self.cfg.catalog)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path,
    read_bps: int | None = None,
    config_extra: str = "",
    drives: tuple[str, str] | None = None,
    per_bus: int = 0,
    mounter: SimMounter | None = None,
    **station_kw: Any,
) -> AsyncIterator[Harness]:
    cfg = load(write_config(tmp_path, config_extra, drives))
    if per_bus:
        from dataclasses import replace

        cfg = replace(cfg, offloads_per_bus=per_bus)
    factory = MockFactory(pin_class=MockPWMPin)
    hot = SimHotplug()
    h: Harness | None = None

    def on_event(kind: str, bay: int | None, data: dict[str, Any]) -> None:
        assert h is not None
        h.events.append((kind, bay, data))

    station = Station(
        cfg,
        hotplug=hot,
        mounter=mounter or SimMounter(),
        pin_factory=factory,
        on_event=on_event,
        read_bps=read_bps,
        hold_seconds=0.2,
        **station_kw,
    )
    h = Harness(cfg, factory, hot, station)
    task = asyncio.create_task(station.run())
    await asyncio.wait_for(station.ready.wait(), 5)
    # The catalog is created on first use in the outbox thread: have it migrated before the test
    # reads it from here (a read during the migration finds the file but not yet the tables).
    await station.store.call(outbox.undelivered)
    try:
        yield h
    finally:
        await stop(task)
        factory.reset()


async def test_dock_to_done_shows_on_the_led(tmp_path: Path) -> None:
    """REG-4.1.2 end to end: docked → offloaded to both destinations → catalogued → cleared,
    with the LED going amber blink (offloading) → steady green (done)."""
    vol = tmp_path / "cam1"
    fill_camera(vol, files=3, size=1 << 20, seed=1, start=START)
    async with running(tmp_path, read_bps=6_000_000) as h:
        h.hot.dock("1-1", "SN0001", vol)
        await h.until(lambda: h.bay(1).state.phase is Phase.OFFLOADING)
        await asyncio.sleep(0.6)  # at least one full blink
        await h.until(lambda: h.bay(1).state.phase is Phase.DONE)
        # The LED follows the phase on its own task: waited for, not given a fixed time.
        await h.until(
            lambda: h.pin_values(GREEN)[-1:] == [1.0] and h.pin_values(AMBER)[-1:] == [0.0]
        )
        amber, green, red = h.pin_values(AMBER), h.pin_values(GREEN), h.pin_values(RED)
        assert amber.count(1.0) >= 1 and amber[-1] == 0.0  # blinked, now dark
        assert green[-1] == 1.0 and 1.0 not in red  # steady green, never red
        phases = [s.phase for s in h.bay(1).history]
        assert phases.index(Phase.IDENTIFYING) < phases.index(Phase.OFFLOADING)
        assert phases[-1] is Phase.DONE
        bays_file = h.cfg.run_dir / "bays.json"  # what the console pushes, written in passing

        def shows_done() -> bool:
            with contextlib.suppress(OSError, ValueError):
                bays = json.loads(bays_file.read_text())["bays"]
                return [(b["bay"], b["phase"]) for b in bays] == [(1, "done"), (2, "empty")]
            return False

        await h.until(shows_done, timeout=5)
    assert tree_hashes(vol) == {}
    assert len(tree_hashes(tmp_path / "footage")) == 3 == len(tree_hashes(tmp_path / "backup"))
    assert h.catalog("SELECT count(*) FROM recordings WHERE cleared_at IS NOT NULL") == [(3,)]
    assert h.catalog("SELECT DISTINCT officer_name FROM recordings") == [("王小明",)]
    # Issue 26: the daemon made the chain key at its first start (never in the catalog, the
    # daemon's user's alone) and every entry it wrote carries a MAC under it.
    assert h.cfg.chain_key.stat().st_mode & 0o777 == 0o400
    assert h.catalog("SELECT count(*) FROM custody_log WHERE mac IS NULL") == [(0,)]
    assert h.catalog("SELECT count(*) FROM custody_log WHERE action = 'store'") == [(3,)]
    kinds = [k for k, _, _ in h.events]
    assert kinds.index("camera-docked") < kinds.index("offload-started")
    assert kinds.index("offload-started") < kinds.index("offload-completed")


async def test_unregistered_device_is_never_read(tmp_path: Path) -> None:
    """REG-2: USB storage that is not a registered camera is never mounted or read."""
    stick = tmp_path / "stick"
    fill_camera(stick, files=1, size=1000, seed=9, start=START)
    before = tree_hashes(stick)
    async with running(tmp_path) as h:
        h.hot.dock("1-1", "NOT-A-CAMERA", stick)
        await h.until(lambda: h.bay(1).state.phase is Phase.UNKNOWN_DEVICE)
        await h.until(lambda: 1.0 in h.pin_values(RED))  # red double flash
        assert h.catalog("SELECT count(*) FROM offload_sessions") in ([], [(0,)])
        assert ("unknown-device", 1) in [(k, b) for k, b, _ in h.events]
        h.hot.undock("1-1")
        await h.until(lambda: h.bay(1).state.phase is Phase.EMPTY)
    assert tree_hashes(stick) == before


async def test_device_on_a_port_no_bay_owns_is_ignored(tmp_path: Path) -> None:
    vol = tmp_path / "cam"
    fill_camera(vol, files=1, size=1000, seed=1, start=START)
    async with running(tmp_path) as h:
        # Written at start with a heartbeat, before any bay changes (issue 29): the console
        # shows idle bays, not "the daemon is not running".
        bays_file = h.cfg.run_dir / "bays.json"
        await h.until(bays_file.exists, timeout=5)
        doc = json.loads(bays_file.read_text())
        assert doc["heartbeat"] and {b["phase"] for b in doc["bays"]} == {"empty"}
        h.hot.dock("2-4", "SN0001", vol)
        await asyncio.sleep(0.3)
        assert set(h.phases().values()) == {Phase.EMPTY}
    assert len(tree_hashes(vol)) == 1


async def test_pulled_mid_offload_then_redocked_loses_nothing(tmp_path: Path) -> None:
    vol = tmp_path / "cam1"
    originals = fill_camera(vol, files=4, size=1 << 20, seed=1, start=START)
    assert originals
    shas = set(tree_hashes(vol).values())
    async with running(tmp_path, read_bps=3_000_000) as h:
        h.hot.dock("1-1", "SN0001", vol)
        await h.until(lambda: h.bay(1).state.progress > 0.3)
        h.hot.undock("1-1")
        await h.until(lambda: h.bay(1).state.phase is Phase.INTERRUPTED)
        await asyncio.sleep(0.3)
        await h.until(lambda: h.bay(1).offload.task.done())
        assert len(tree_hashes(vol)) >= 1  # not everything was taken
        h.hot.dock("1-1", "SN0001", vol)
        await h.until(lambda: h.bay(1).state.phase is Phase.DONE)
    assert tree_hashes(vol) == {}
    assert set(tree_hashes(tmp_path / "footage").values()) == shas
    assert set(tree_hashes(tmp_path / "backup").values()) == shas


class _SlowUnmount(SimMounter):
    """A mount point that takes until ``free`` is set to let go (a busy volume)."""

    def __init__(self) -> None:
        self.free = asyncio.Event()
        self.unmounting = asyncio.Event()

    async def unmount(self, target: Path) -> None:
        self.unmounting.set()
        await self.free.wait()


async def test_docked_again_while_the_pulled_run_still_unmounts_offloads_after_it(
    tmp_path: Path,
) -> None:
    """REG-4.1.2; CI (leap-day run): a camera pulled mid-offload and docked again before its
    stopped run had unmounted stayed "identifying" for ever: the new dock's offload was not
    started while the old task still ran. Now it starts after the old run lets go of the mount
    point."""
    vol = tmp_path / "cam1"
    fill_camera(vol, files=4, size=1 << 20, seed=1, start=START)
    shas = set(tree_hashes(vol).values())
    slow = _SlowUnmount()
    async with running(tmp_path, read_bps=3_000_000, mounter=slow) as h:
        h.hot.dock("1-1", "SN0001", vol)
        await h.until(lambda: h.bay(1).state.progress > 0.3)
        h.hot.undock("1-1")
        await asyncio.wait_for(slow.unmounting.wait(), 30)
        old = h.bay(1).offload.task
        h.hot.dock("1-1", "SN0001", vol)  # the old run is still unmounting
        await h.until(lambda: h.bay(1).state.phase is Phase.IDENTIFYING)
        await asyncio.sleep(0.3)
        assert old is not None and not old.done()
        assert not slow.free.is_set() and h.bay(1).offload.engine is None  # waits its turn
        slow.free.set()
        await h.until(lambda: h.bay(1).state.phase is Phase.DONE)
    assert tree_hashes(vol) == {}
    assert set(tree_hashes(tmp_path / "footage").values()) == shas
    assert set(tree_hashes(tmp_path / "backup").values()) == shas


async def test_buttons_refuse_during_offload_and_acknowledge_faults(tmp_path: Path) -> None:
    vol = tmp_path / "cam1"
    fill_camera(vol, files=3, size=1 << 20, seed=1, start=START)
    async with running(tmp_path, read_bps=4_000_000) as h:
        h.hot.dock("1-1", "SN0001", vol)
        await h.until(lambda: h.bay(1).state.phase is Phase.OFFLOADING)
        reds_before = h.pin_values(RED).count(1.0)
        button = h.factory.pin(BUTTON)
        button.drive_low()
        button.drive_high()  # a short press during the offload
        await h.until(lambda: any(s.notice for s in h.bay(1).history))
        await h.until(lambda: h.pin_values(RED).count(1.0) > reds_before)  # quick red flashes
        await h.until(lambda: h.bay(1).state.phase is Phase.DONE)  # offload unharmed
        assert tree_hashes(vol) == {}

        button.drive_low()
        button.drive_high()  # short press on a done bay: no command port, so no function test
        await h.until(lambda: h.bay(1).history[-1].notice is not None)
        assert h.bay(1).history[-1].notice.value == "unavailable"

        h.hot.undock("1-1")
        h.hot.dock("1-1", "SN0001", tmp_path / "no-such-volume")  # mount "succeeds", source gone
        await h.until(lambda: h.bay(1).state.phase is Phase.FAULT)
        button.drive_low()  # held past hold_seconds: a long press, acted on while still held
        await h.until(lambda: h.bay(1).state.phase is not Phase.FAULT)
        button.drive_high()
        assert h.bay(1).state.phase is Phase.INTERRUPTED  # acknowledged, camera still docked
        presses = [d["press"] for k, _, d in h.events if k == "button"]
        assert presses == ["short", "short", "long"]


async def test_two_filesystems_or_none_fault_the_bay(tmp_path: Path, monkeypatch: Any) -> None:
    from camdock.adapters.udev import HotplugEvent

    monkeypatch.setattr(docking, "NO_FILESYSTEM_AFTER", 0.2)
    vol = tmp_path / "cam1"
    fill_camera(vol, files=1, size=1 << 20, seed=1, start=START)
    async with running(tmp_path, read_bps=500_000) as h:
        h.hot.dock("1-1", "SN0001", vol)
        usb = "/sys/devices/platform/sim/usb1/1-1"
        second = HotplugEvent(
            "add",
            "block",
            "/devices/x/sdz2",
            str(vol),
            "partition",
            "ext4",
            "1-1",
            None,
            "SN0001",
            usb_parent=usb,
        )
        h.hot._queue.put_nowait(second)
        await h.until(lambda: h.bay(1).state.phase is Phase.FAULT)
        assert "more than one filesystem" in h.bay(1).state.message

        disk = HotplugEvent(
            "add",
            "block",
            "/devices/y/sdy",
            "/dev/sdy",
            "disk",
            None,
            "1-2",
            None,
            "SN0002",
            usb_parent="/sys/devices/y",
        )
        h.hot._queue.put_nowait(disk)
        await h.until(lambda: h.bay(2).state.phase is Phase.FAULT)
        assert "no filesystem" in h.bay(2).state.message


async def test_progress_counts_against_the_total_from_the_first_report(tmp_path: Path) -> None:
    """Regression (seen in the demo): the engine's first byte count can reach the loop in the
    same turn as its "session started", before the bay's task has handled that; progress then
    went to the server as 100 % of 0 bytes at the start, and never again for that offload."""
    async with running(tmp_path) as h:
        b = h.bay(1)
        b.offload = run = OffloadRun()
        progress = h.station.docking.progress
        progress(b, run, SessionStarted("s", files=2, bytes=1000))
        progress(b, run, BytesCopied("a", 300))  # the same turn
        progress(b, run, BytesCopied("a", 320))  # still 30 %: no event
        progress(b, run, BytesCopied("b", 700))  # 1020 bytes: capped
        await h.station.store.call(lambda db: None)  # every event before this is committed
        rows = h.catalog("SELECT payload FROM outbox WHERE topic LIKE '%/offload-progress'")
    data = [json.loads(p)["data"] for (p,) in rows]
    assert [(d["percent"], d["bytes"], d["total"]) for d in data] == [
        (30, 300, 1000),
        (100, 1020, 1000),
    ]


async def test_one_bay_crashing_leaves_the_others_working(tmp_path: Path, monkeypatch: Any) -> None:
    """The bulkhead: an internal error in bay 1 turns bay 1 red; bay 2 offloads as usual.
    (An internal error cannot be caused for real, so bay 1's handler is made to raise.)"""
    real = Station._handle

    def flaky(self: Station, b: Any, event: Any) -> None:
        if b.n == 1:
            raise RuntimeError("boom")
        real(self, b, event)

    monkeypatch.setattr(Station, "_handle", flaky)
    v1, v2 = tmp_path / "cam1", tmp_path / "cam2"
    fill_camera(v1, files=1, size=1000, seed=1, start=START)
    fill_camera(v2, files=2, size=1000, seed=2, start=START)
    async with running(tmp_path) as h:
        h.hot.dock("1-1", "SN0001", v1)
        h.hot.dock("1-2", "SN0002", v2)
        await h.until(lambda: h.bay(2).state.phase is Phase.DONE)
        await h.until(lambda: h.bay(1).state.phase is Phase.FAULT)
        assert "internal error" in h.bay(1).state.message
    assert len(tree_hashes(v1)) == 1 and tree_hashes(v2) == {}


@pytest.mark.parametrize("fs", ["ntfs", "iso9660"])
async def test_unsupported_filesystem_is_refused(tmp_path: Path, fs: str) -> None:
    vol = tmp_path / "cam1"
    fill_camera(vol, files=1, size=1000, seed=1, start=START)
    async with running(tmp_path) as h:
        h.hot.dock("1-1", "SN0001", vol, fs_type=fs)
        await h.until(lambda: h.bay(1).state.phase is Phase.FAULT)
        assert fs in h.bay(1).state.message
    assert len(tree_hashes(vol)) == 1


async def test_simulate_shift_end_scenario(tmp_path: Path) -> None:
    from camdock.sim.station import simulate

    out = tmp_path / "out.txt"
    with open(out, "w") as f:
        result = await simulate(4, "shift-end", tmp_path / "sim", ui=False, out=f)
    assert result["ok"], result
    assert [b["final_state"] for b in result["bays"]] == ["done"] * 4
    text = out.read_text()
    assert "unknown-device usb_serial=USBSTICK-0042" in text
    assert "interrupted" in text and text.count("offload-started camera=CAM0002") == 2
    # The summary says what was refused, interrupted and resumed.
    assert result["refused"] == [
        {"bay": 4, "usb_serial": "USBSTICK-0042", "reason": "not a registered camera (REG-2)"}
    ]
    assert result["interrupted"] == result["resumed"] == [{"bay": 2, "camera": "CAM0002"}]


def test_simulate_json_is_one_document_on_stdout(tmp_path: Path) -> None:
    """--json (with or without --no-ui): stdout is exactly one JSON document; the event lines
    and logs go to stderr."""
    res = run_cmd(
        camdock_cmd("simulate", "--no-ui", "--json", "--state-dir", str(tmp_path / "s")),
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout)
    assert result["ok"] and result["refused"] and result["resumed"]
    assert "unknown-device" in res.stderr


def test_the_live_view_fits_the_terminal() -> None:
    """Lines wider than the terminal wrapped and scrolled the view away; now each is cut to
    the width, counting colour codes as nothing and CJK as two columns."""
    from camdock.sim.station import fit

    line = "\x1b[32m●\x1b[0m bay 1 王小明 " + "x" * 200
    for width in (20, 40, 80):
        cut = fit(line, width)
        visible = re.sub(r"\x1b\[[0-9;]*m", "", cut)
        cols = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in visible)
        assert cols <= width and visible.startswith("● bay 1")
    assert fit("short", 80) == "short"


async def test_destination_gone_faults_the_bay_and_keeps_the_footage(tmp_path: Path) -> None:
    vol = tmp_path / "cam1"
    fill_camera(vol, files=2, size=1000, seed=1, start=START)
    async with running(tmp_path) as h:
        # The backup drive is not there. The daemon writes its custody heads to the drives as
        # it starts, so a folder may appear while it goes: removed until it stays gone.
        backup = tmp_path / "backup"
        for _ in range(50):
            shutil.rmtree(backup, ignore_errors=True)
            if not backup.exists():
                break
            await asyncio.sleep(0.05)
        assert not backup.exists()
        h.hot.dock("1-1", "SN0001", vol)
        await h.until(lambda: h.bay(1).state.phase is Phase.FAULT)
        assert "backup" in h.bay(1).state.message
    assert len(tree_hashes(vol)) == 2


async def test_docking_the_same_camera_again_is_idempotent(tmp_path: Path) -> None:
    vol = tmp_path / "cam1"
    fill_camera(vol, files=2, size=1000, seed=1, start=START)
    async with running(tmp_path) as h:
        h.hot.dock("1-1", "SN0001", vol)
        await h.until(lambda: h.bay(1).state.phase is Phase.DONE)
        docked = [e for e in h.events if e[0] == EventType.CAMERA_DOCKED]
        assert len(docked) == 1
        h.hot._queue.put_nowait(h.hot._docked["1-1"])  # udev "change": the same partition again
        await h.until(h.hot._queue.empty)
        await asyncio.sleep(0.2)  # were it handled as a new dock, the bay would leave DONE
        # Left as it is: no second dock, no re-run (it had only to be fast enough before).
        assert h.bay(1).state.phase is Phase.DONE
        assert [e for e in h.events if e[0] == EventType.CAMERA_DOCKED] == docked
        h.hot.undock("1-1")
        h.hot.dock("1-1", "SN0001", vol)  # docked again straight away: nothing left to do
        # Waited for by its own session (the bay still shows the first one's DONE until the
        # dock is handled, which a loaded machine delays).
        completed = "SELECT count(*) FROM offload_sessions WHERE status = 'completed'"
        await h.until(lambda: h.catalog(completed) == [(2,)])
        await h.until(lambda: h.bay(1).state.phase is Phase.DONE and h.bay(1).offload.report)
    assert h.catalog("SELECT count(*) FROM recordings") == [(2,)]
    assert h.catalog("SELECT count(*) FROM offload_sessions WHERE status = 'completed'") == [(2,)]


async def test_stopping_mid_offload_leaves_everything_resumable(tmp_path: Path) -> None:
    """What SIGTERM does (the CLI turns it into cancelling the station): offloads stop, nothing
    half-done remains, and the next start finishes the job."""
    vol = tmp_path / "cam1"
    fill_camera(vol, files=4, size=1 << 20, seed=1, start=START)
    shas = set(tree_hashes(vol).values())
    async with running(tmp_path, read_bps=3_000_000) as h:
        h.hot.dock("1-1", "SN0001", vol)
        # Stopped once the first recording has left the camera (all four take ~1.4 s at 3 MB/s):
        # waiting on the progress figure alone raced the clearing on a loaded machine.
        await h.until(lambda: len(list(vol.rglob("*.MP4"))) < 4)
    # The station is stopped (the context manager cancelled it and waited).
    assert h.bay(1).offload.task is not None and h.bay(1).offload.task.done()
    for d in ("footage", "backup"):
        assert not list((tmp_path / d).rglob(".camdock-*")), "temp files left behind"
    left = tree_hashes(vol)
    assert 0 < len(left) < 4
    async with running(tmp_path) as h2:
        h2.hot.dock("1-1", "SN0001", vol)
        await h2.until(lambda: h2.bay(1).state.phase is Phase.DONE)
    assert tree_hashes(vol) == {}
    assert set(tree_hashes(tmp_path / "footage").values()) == shas
    assert h2.catalog("SELECT status FROM offload_sessions ORDER BY id") == [
        ("interrupted",),
        ("completed",),
    ]


def test_bicolour_led_shows_amber_as_red_and_green() -> None:
    """Eight bays fit a 40-pin header with red/green bicolour LEDs (two pins, amber = both)."""
    from camdock.adapters.gpio import BayLight
    from camdock.core.indicators import Colour
    from camdock.model import Led

    factory = MockFactory(pin_class=MockPWMPin)
    light = BayLight(Led("bicolour", red=20, green=21), factory)
    try:
        for colour, expected in (
            (Colour.AMBER, (1, 1)),
            (Colour.RED, (1, 0)),
            (Colour.GREEN, (0, 1)),
            (None, (0, 0)),
        ):
            light.show(colour)
            assert (factory.pin(20).state, factory.pin(21).state) == expected
    finally:
        light.close()
        factory.reset()


async def test_a_pattern_change_at_shutdown_does_not_swallow_the_cancel() -> None:
    """Regression for a CI hang: SIGTERM in the same loop turn as a bay's LED change must still
    end the LED task (``asyncio.wait_for`` on 3.11 swallowed that cancel, and the daemon's
    TaskGroup then waited forever for a task showing steady green)."""
    from camdock.adapters.gpio import BayLight, PatternPlayer
    from camdock.core.indicators import pattern_for
    from camdock.model import Led

    factory = MockFactory(pin_class=MockPWMPin)
    light = BayLight(Led("bicolour", red=20, green=21), factory)
    try:
        player = PatternPlayer(light)
        player.play(pattern_for(Phase.OFFLOADING))  # blinking: waits with a timeout
        task = asyncio.create_task(player.run())
        await asyncio.sleep(0.05)
        player.play(pattern_for(Phase.DONE))  # steady: waits for the next play(), no timeout
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=5)
        assert done and task.cancelled()
    finally:
        light.close()
        factory.reset()


async def test_simulate_pre_shift_scenario(tmp_path: Path) -> None:
    """REG-3.2 in the simulator: three officers test, camera 2 fails, the spare lights up and
    is taken."""
    from camdock.sim.station import simulate

    with open(tmp_path / "out.txt", "w") as f:
        result = await simulate(4, "pre-shift", tmp_path / "sim", ui=False, out=f)
    assert result["ok"], result
    tests = [b["selftest"] for b in result["bays"]]
    assert tests == ["test-passed", "test-failed", "test-passed", "test-passed"]
    assert result["bays"][3]["final_state"] == "empty"  # the spare was taken
    text = (tmp_path / "out.txt").read_text()
    assert "take-me: spare for 李美玲" in text
    # Issue 29: the summary tells each bay's story: the failed test and its duty-log entry,
    # the clock drift the test found and synced away, the spare lent and to whom.
    failed, spare = result["bays"][1], result["bays"][3]
    assert [t["failed_checks"] for t in failed["tests"]] == [["camera self-test"]]
    assert "Spare SPARE01 (bay 4) issued" in failed["duty_log"][0]["entry"]
    assert failed["duty_log"][0]["time"].endswith("+08:00")
    assert spare["spare_lent"]["spare"] == "SPARE01" and spare["spare_lent"]["to"] == "李美玲"
    drifts = [b["tests"][0]["clock_drift_before_s"] for b in result["bays"]]
    assert round(drifts[3]) == -187 and all(abs(b["tests"][0]["clock_drift_after_s"]) < 1
                                            for b in result["bays"])  # fmt: skip
    events = [e["event"] for e in spare["story"]]
    assert events[0] == "camera-docked" and "camera-removed" in events


async def test_a_quick_plug_and_pull_leaves_the_bay_usable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12: a camera disk seen without its partition, then pulled (the kernel's remove
    event carries only the device number and name), must not be kept as the bay's storage:
    docking the camera again offloads it, instead of "shows more than one filesystem"."""
    from camdock.adapters.udev import HotplugEvent

    monkeypatch.setattr(docking, "NO_FILESYSTEM_AFTER", 0.2)
    vol = tmp_path / "cam1"
    fill_camera(vol, files=1, size=1000, seed=1, start=START)
    async with running(tmp_path) as h:
        disk = HotplugEvent("add", "block", "/devices/z/sdz", str(tmp_path / "gone"), "disk",
                            None, "1-1", None, "SN0001", usb_parent="/sys/devices/z",
                            devnum="8:208")  # fmt: skip
        h.hot._queue.put_nowait(disk)
        removed = HotplugEvent("remove", "block", "/devices/other-path", devnum="8:208")
        h.hot._queue.put_nowait(removed)
        await asyncio.sleep(0.5)  # past the no-filesystem wait
        assert h.bay(1).state.phase is Phase.EMPTY and h.bay(1).storage is None
        h.hot.dock("1-1", "SN0001", vol)
        await h.until(lambda: h.bay(1).state.phase is Phase.DONE)
    assert tree_hashes(vol) == {}


async def test_a_failing_hotplug_source_is_restarted_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12, bulkheads: any exception inside a long-lived part (here the hotplug source;
    a real one needs a broken kernel, so the first call is made to raise) is logged and the
    part restarted with backoff; the station does not exit and docks as usual afterwards."""
    monkeypatch.setattr(station_mod, "SUPERVISE_FIRST", 0.05)
    real = SimHotplug.events
    calls = 0

    def flaky(self: SimHotplug) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("netlink socket gone")
        return real(self)

    monkeypatch.setattr(SimHotplug, "events", flaky)
    vol = tmp_path / "cam1"
    fill_camera(vol, files=1, size=1000, seed=1, start=START)
    async with running(tmp_path) as h:
        h.hot.dock("1-1", "SN0001", vol)
        await h.until(lambda: h.bay(1).state.phase is Phase.DONE)
        assert calls == 2 and h.station._failing["hotplug"] == 1


async def test_an_offload_s_events_keep_its_officer_when_a_roster_reassigns_the_camera(
    tmp_path: Path,
) -> None:
    """Issue 12: a roster that re-assigns the camera mid-offload changes nothing about the
    offload under way: its files and its progress events name the officer it started with."""
    vol = tmp_path / "cam1"
    fill_camera(vol, files=3, size=2 << 20, seed=1, start=START)
    async with running(tmp_path, read_bps=4_000_000) as h:
        h.hot.dock("1-1", "SN0001", vol)
        await h.until(lambda: h.bay(1).state.phase is Phase.OFFLOADING)
        roster = {"version": 1, "date": "2026-11-28",
                  "assignments": [{"camera": "CAM0001", "officer": "B23456"}]}  # fmt: skip
        h.station.apply_roster(json.dumps(roster).encode())
        await h.until(lambda: h.bay(1).state.phase is Phase.DONE, 30)
        await h.station.store.call(lambda db: None)
        rows = h.catalog("SELECT payload FROM outbox WHERE topic LIKE '%/offload-progress'")
    officers = {json.loads(p)["officer"]["badge"] for (p,) in rows}
    assert rows and officers == {"A12345"}


@pytest.mark.parametrize("standing", [True, False])
async def test_the_daily_retention_pass_destroys_due_footage_or_raises_the_alarm(
    tmp_path: Path, monkeypatch: Any, standing: bool
) -> None:
    """REG-4.3.1 in the daemon: a year later, due footage is destroyed under the standing
    authorisation named in the config (the custodian is the actor), or, without one, STATUS=
    carries the alarm; the catalog is backed up to both drives (REG-4.3.2) each day."""
    from camdock.clock import FixedClock

    monkeypatch.setattr(jobs, "RETENTION_POLL", 0.05)
    clock = FixedClock(datetime(2026, 11, 29, 1, 0, tzinfo=UTC))
    key = tmp_path / "seal.key"
    key.write_text("a seal password for the test station")
    key.chmod(0o600)
    extra = f'[seal]\npassword_file = "{key}"\nsealed_by = "保管人 陳"\n'
    if standing:  # issue 27: an approver's record in the catalog, not a line in the config
        from camdock.catalog import open_catalog
        from camdock.services.retention import authorise

        db = open_catalog(load(write_config(tmp_path, extra)).catalog)
        authorise(db, "保-7", "保管人 陳", date(2027, 11, 30), "分局長 王 (P1)", "P1",
                  date(2026, 11, 30))  # fmt: skip
        db.close()
    vol = tmp_path / "cam1"
    fill_camera(vol, files=2, size=4096, seed=3, start=START)
    async with running(tmp_path, config_extra=extra, clock=clock, retention_first=0) as h:
        await h.until(lambda: h.station.daily.last_pass is not None)
        h.hot.dock("1-1", "SN0001", vol)
        await h.until(lambda: h.bay(1).state.phase is Phase.DONE)
        footage = sorted(p for p in (tmp_path / "footage").rglob("*.mp4"))
        assert len(footage) == 2
        # The next day the daemon seals the duty day by itself (REG-4.2.5), in both drives.
        clock.set(datetime(2026, 11, 30, 1, 0, tzinfo=UTC))
        await h.until(lambda: h.station.daily.last_pass is not None
                      and h.station.daily.last_pass.plan.today.day == 30)  # fmt: skip
        assert [s.day.isoformat() for s in h.station.daily.last_pass.sealed] == ["2026-11-28"]
        for drive in ("footage", "backup"):
            assert (tmp_path / drive / "2026" / "11" / "20261128-1.7z").is_file()
        clock.set(datetime(2027, 11, 30, 1, 0, tzinfo=UTC))  # a year and two days on
        await h.until(lambda: h.station.daily.last_pass is not None
                      and h.station.daily.last_pass.plan.today.year == 2027)  # fmt: skip
        status = h.station.status_line()
    destroyed = h.catalog("SELECT destroyed_by FROM recordings WHERE destroyed_at IS NOT NULL")
    # Issue 27: the daemon seals as the station, not as the custodian [seal] sealed_by names.
    sealers = h.catalog("SELECT DISTINCT sealed_by, sealed_by_id FROM seals")
    assert sealers == [("station:test-01", "station:test-01")]
    if standing:
        assert destroyed == [("保管人 陳",)] * 2 and not any(p.exists() for p in footage)
        assert "ALARM" not in status  # nothing late; the seal nobody confirmed is retired
        # Every recording of the sealed day destroyed: its archives went with them.
        assert not list((tmp_path / "footage").rglob("*.7z"))
        assert len(h.catalog("SELECT 1 FROM outbox WHERE type = 'recording-destroyed'")) == 2
    else:
        assert destroyed == [] and all(p.exists() for p in footage)
        assert "ALARM 2 recording(s) past their destruction date" in status
        assert list((tmp_path / "footage").rglob("*.7z"))
        assert h.catalog("SELECT count(*) FROM outbox WHERE type = 'retention-alarm'") == [(1,)]
    for drive in ("footage", "backup"):
        backups = sorted((tmp_path / drive / "camdock-catalog").glob("catalog-*.sqlite"))
        assert len(backups) == 3  # one per pass
        check = run_cmd(["sha256sum", "-c", backups[-1].name + ".sha256"],
                        cwd=backups[-1].parent)  # fmt: skip
        assert check.returncode == 0, check.stdout + check.stderr


async def test_a_new_custody_head_leaves_the_station_within_seconds(tmp_path: Path) -> None:
    """Issue 26: an entry written by another process (a command, here) is on both drives'
    heads files and in a custody-head event within HEAD_POLL; a tail cut after that head is
    found by the audit, from the drives' heads."""
    from camdock.adapters import heads
    from camdock.catalog import custody, open_catalog, write_txn
    from camdock.catalog.custody import Action

    async with running(tmp_path) as h:
        db = open_catalog(h.cfg.catalog)
        try:
            with write_txn(db):
                custody.append(db, Action.AUDIT, None, "稽核員 林", {"full": False})
            seq, digest = custody.head(db)
        finally:
            db.close()
        roots = [d.root for d in h.cfg.drives]
        await h.until(lambda: all((seq, digest) in heads.read(r)[0] for r in roots))
        sent = "SELECT 1 FROM outbox WHERE type = 'custody-head' AND json_extract(payload, '$.custody.seq') = "  # noqa: E501
        await h.until(lambda: bool(h.catalog(sent + str(int(seq)))))
    con = sqlite3.connect(h.cfg.catalog)  # an insider cuts the tail the heads have seen
    con.execute("DROP TRIGGER custody_no_delete")
    con.execute("DELETE FROM custody_log WHERE id = ?", (seq,))
    con.commit()
    con.close()
    found = run_cmd(camdock_cmd("audit", "--config", str(tmp_path / "camdock.toml"), "--json"))
    assert found.returncode == 1, found.stdout + found.stderr
    assert any("cut short" in p for p in json.loads(found.stdout)["chain_problems"])
