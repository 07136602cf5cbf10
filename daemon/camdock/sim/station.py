"""``camdock simulate``: the real station with simulated hardware.

gpiozero ``MockFactory`` pins drive the real LED and button code, camera volumes are
directories of generated recordings, and a script docks and pulls them. The live view reads the
LED pins' actual colour, so what blinks on screen is what the pins did.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import shutil
import sys
import tempfile
import time
import unicodedata
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from camdock.adapters.gpio import make_pin_factory
from camdock.catalog import outbox
from camdock.config import Config, parse
from camdock.core.bay import Phase
from camdock.core.indicators import Colour, pattern_for
from camdock.sim.hotplug import SimHotplug, SimMounter, fill_camera
from camdock.sim.story import Stories
from camdock.station.station import Station

log = logging.getLogger(__name__)

OFFICERS = [
    ("A12345", "王小明"),
    ("B23456", "李美玲"),
    ("C34567", "陳志豪"),
    ("D45678", "林佳穎"),
    ("E56789", "張家豪"),
    ("F67890", "黃雅婷"),
    ("G78901", "吳建宏"),
    ("H89012", "劉淑芬"),
]
UNKNOWN_STICK = "USBSTICK-0042"
SCENARIOS = ("shift-end", "pre-shift")
SPARE_SERIAL = "SN-SPARE"


def sim_config(bays: int, state: Path, broker: tuple[str, int] | None = None) -> Config:
    """A station config for ``bays`` bays, built through the real validator."""
    data: dict[str, Any] = {
        "station": {
            "id": "sim-01",
            "unit": "Simulated Precinct",
            "timezone": "Asia/Taipei",
            "state_dir": str(state / "state"),
            "run_dir": str(state / "run"),
            "max_concurrent_offloads": bays,
        },
        # A laptop has no footage drives: plain directories, said so at start-up.
        "destinations": {
            "footage": str(state / "footage"),
            "backup": str(state / "backup"),
            "require_mounts": False,
        },
        "duty_slots": {"boundaries": ["00:00", "08:00", "16:00"]},
        "gpio": {"pin_factory": "mock"},
        "officers": [{"badge": b, "name": n} for b, n in OFFICERS[:bays]],
        "cameras": [
            {
                "serial": f"SN{n:04d}",
                "id": f"CAM{n:04d}",
                "model": "BWC-SIM",
                "officer": OFFICERS[n - 1][0],
            }
            for n in range(1, bays + 1)
        ]
        + [{"serial": SPARE_SERIAL, "id": "SPARE01", "model": "BWC-SIM", "spare": True}],
        "bays": [
            {
                "number": n,
                "usb_port": f"1-1.{n}",
                "led": {"red": 4 * n, "amber": 4 * n + 1, "green": 4 * n + 2},
                "button": 4 * n + 3,
            }
            for n in range(1, bays + 1)
        ],
    }
    if broker is not None:
        data["mqtt"] = {"host": broker[0], "port": broker[1]}
    for d in ("footage", "backup"):
        (state / d).mkdir(parents=True, exist_ok=True)
    return parse(data, "<simulate>")


_ANSI = {Colour.RED: "\x1b[31m", Colour.AMBER: "\x1b[33m", Colour.GREEN: "\x1b[32m"}


class View:
    """One line per bay (LED glyph + pattern, camera, officer, progress, MB/s, last event) and
    the event log beneath."""

    def __init__(self, station: Station, out: TextIO, live: bool) -> None:
        self.station = station
        self.out = out
        self.live = live
        self.log: deque[str] = deque(maxlen=10)
        self.last: dict[int, str] = {}
        self._rate: dict[int, tuple[float, int, float]] = {}
        self.started = time.monotonic()

    def event(self, kind: str, bay: int | None, data: dict[str, Any]) -> None:
        """A station happening: a line in the log (or on stdout without the live view)."""
        if kind == "file-verified":
            text = f"verified {data['path']}"
        elif kind == "bay-state":
            text = f"{data['phase']}" + (f": {data['message']}" if data.get("message") else "")
        else:
            detail = ", ".join(f"{k}={v}" for k, v in data.items() if v not in (None, ""))
            text = f"{kind} {detail}"
        stamp = f"{time.monotonic() - self.started:6.1f}s"
        line = f"{stamp} bay {bay}: {text}" if bay else f"{stamp} {text}"
        if bay:
            self.last[bay] = text
        self.log.append(line)
        if not self.live:
            print(line, file=self.out, flush=True)

    def mbps(self, n: int, done: int) -> float:
        """A bay's offload rate over the last half second, MB/s."""
        now = time.monotonic()
        t0, b0, rate = self._rate.get(n, (now, done, 0.0))
        if now - t0 >= 0.5:
            rate = (done - b0) / (now - t0) / 1e6 if done >= b0 else 0.0
            t0, b0 = now, done
        self._rate[n] = (t0, b0, rate)
        return rate

    def render(self) -> None:
        """Redraw the live view."""
        lines = [
            f"camdock simulate — station {self.station.cfg.station_id} "
            f"({self.station.status_line()})",
            "",
        ]
        for n, b in self.station.bays.items():
            s = b.state
            colour = b.light.colour if b.light else None
            glyph = f"{_ANSI[colour]}●\x1b[0m" if colour else "○"
            pattern = pattern_for(s.phase)
            bar_w = 20
            filled = int(bar_w * s.progress)
            bar = "█" * filled + "·" * (bar_w - filled)
            rate = self.mbps(n, s.bytes_done) if s.phase in (Phase.OFFLOADING,) else 0.0
            lines.append(
                f" bay {n} {glyph} {pattern.name:<18} {s.phase.value:<15} "
                f"{s.camera_id or '-':<8} {s.officer or '-':<4} [{bar}] {s.progress:4.0%} "
                f"{rate:5.1f} MB/s  {self.last.get(n, '')[:48]}"
            )
        lines += ["", " events:"] + [f"  {ln}" for ln in self.log]
        width = shutil.get_terminal_size().columns
        fitted = [fit(line, width) for line in lines]
        self.out.write("\x1b[H\x1b[J" + "\n".join(fitted) + "\n")
        self.out.flush()


_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def fit(line: str, width: int) -> str:
    """``line`` cut to ``width`` terminal columns (colour codes take none, CJK takes two), so
    the live view never wraps."""
    out: list[str] = []
    used = 0
    pos = 0
    for m in _ESCAPE.finditer(line):
        used, chunk, full = _take(line[pos : m.start()], width - used, used)
        out.append(chunk)
        out.append(m.group())
        pos = m.end()
        if full:
            return "".join(out) + "\x1b[0m"
    _, chunk, _ = _take(line[pos:], width - used, used)
    return "".join(out) + chunk


def _take(text: str, room: int, used: int) -> tuple[int, str, bool]:
    taken: list[str] = []
    for ch in text:
        w = 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        if w > room:
            return used, "".join(taken), True
        taken.append(ch)
        room -= w
        used += w
    return used, "".join(taken), False


async def _wait_for(pred: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise TimeoutError(f"simulation: timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def shift_end(station: Station, hot: SimHotplug, volumes: Path, bays: int) -> None:
    """Cameras docked at shift end, an unregistered USB stick, one camera pulled mid-offload and
    docked again."""
    start = datetime(2026, 11, 28, 8, 12, 0)
    for n in range(1, bays + 1):
        fill_camera(volumes / f"cam{n}", files=4, size=4 << 20, seed=n, start=start)
    stick = volumes / "stick"
    (stick / "docs").mkdir(parents=True)
    (stick / "docs" / "notes.txt").write_text("not footage\n")
    await station.ready.wait()
    for n in range(1, bays):
        hot.dock(f"1-1.{n}", f"SN{n:04d}", volumes / f"cam{n}")
        await asyncio.sleep(0.15)
    hot.dock(f"1-1.{bays}", UNKNOWN_STICK, stick)  # REG-2: never mounted or read
    pulled = station.bays[2]
    await _wait_for(lambda: pulled.state.progress >= 0.35, 60, "bay 2 to reach 35 %")
    hot.undock("1-1.2")  # the officer takes the camera back too early
    await _wait_for(lambda: pulled.state.phase is Phase.INTERRUPTED, 10, "bay 2 interrupted")
    hot.undock(f"1-1.{bays}")  # the stick is taken away, the last camera goes in
    await asyncio.sleep(0.3)
    hot.dock(f"1-1.{bays}", f"SN{bays:04d}", volumes / f"cam{bays}")
    await asyncio.sleep(1.0)
    hot.dock("1-1.2", "SN0002", volumes / "cam2")  # docked again: the offload resumes
    terminal = (Phase.DONE, Phase.FAULT)
    await _wait_for(
        lambda: all(b.state.phase in terminal for b in station.bays.values()), 120, "all bays"
    )


async def pre_shift(station: Station, hot: SimHotplug, volumes: Path, bays: int) -> None:
    """Officers press their bay's button before the shift: camera 2 fails its test (a failing
    image sensor), the spare in the last bay lights up, and officer 2 takes it."""
    from camdock.sim.cameras import CameraState, SimCamera

    cameras = {}
    for n in range(1, bays + 1):
        serial = SPARE_SERIAL if n == bays else f"SN{n:04d}"
        state = CameraState(serial=serial, clock_offset=[-187.0, 42.0, 3.5, 0.2][n % 4])
        if n == 2:
            state.checks["sensor"] = "fail"
        cameras[n] = SimCamera(state)
        (volumes / f"cam{n}").mkdir(parents=True, exist_ok=True)
    try:
        await station.ready.wait()
        for n in range(1, bays + 1):
            serial = SPARE_SERIAL if n == bays else f"SN{n:04d}"
            hot.dock(f"1-1.{n}", serial, volumes / f"cam{n}", tty=cameras[n].port)
        await _wait_for(
            lambda: all(b.state.phase is Phase.DONE for b in station.bays.values()), 30, "docking"
        )
        factory = station.pin_factory

        def press(n: int) -> None:
            factory.pin(4 * n + 3).drive_low()
            factory.pin(4 * n + 3).drive_high()

        tested = (Phase.TEST_PASSED, Phase.TEST_FAILED)

        def tested_at(n: int) -> Callable[[], bool]:
            return lambda: station.bays[n].state.phase in tested

        press(bays)  # the custodian tests the spare at the start of the day
        await _wait_for(lambda: station.bays[bays].state.phase in tested, 30, "the spare's test")
        for n in range(1, bays):
            await asyncio.sleep(0.6)
            press(n)
            await _wait_for(tested_at(n), 30, f"bay {n}'s test")
        spare = station.bays[bays]
        await _wait_for(lambda: spare.state.phase is Phase.TAKE_ME, 10, "the spare to light up")
        await asyncio.sleep(2.0)  # the officer walks over
        hot.undock(f"1-1.{bays}")
        await _wait_for(lambda: spare.state.phase is Phase.EMPTY, 10, "the spare to be taken")
    finally:
        for cam in cameras.values():
            cam.close()


def summary(
    station: Station, volumes: Path, seconds: float, stories: Stories | None = None
) -> dict[str, Any]:
    """What the simulation did, for the JSON or text summary; with ``stories``, each bay's
    story too (sim/story.py: its events, tests, clock drift, duty log, spare lent)."""
    told = (stories or Stories()).told(station.cfg.catalog, list(station.bays), station.cfg.tz)
    bays = []
    for n, b in station.bays.items():
        r = b.offload.report
        bays.append(
            {
                "bay": n,
                "camera": b.state.camera_id,
                "officer": b.state.officer,
                "final_state": b.state.phase.value,
                "files": len(r.files) if r else 0,
                "bytes": sum(f.size for f in r.files) if r else 0,
                "verified": sum(f.verified for f in r.files) if r else 0,
                "cleared": sum(f.cleared for f in r.files) if r else 0,
                "left_on_camera": sum(1 for p in (volumes / f"cam{n}").rglob("*") if p.is_file()),
                "message": b.state.message,
                "selftest": next(
                    (
                        h.phase.value
                        for h in reversed(b.history)
                        if h.phase in (Phase.TEST_PASSED, Phase.TEST_FAILED)
                    ),
                    None,
                ),
                **told[n],
            }
        )
    tests = [b["selftest"] for b in bays if b["selftest"]]
    refused, interrupted, resumed = [], [], []
    for n, b in station.bays.items():
        serials = {h.serial for h in b.history if h.phase is Phase.UNKNOWN_DEVICE}
        refused += [{"bay": n, "usb_serial": s, "reason": "not a registered camera (REG-2)"}
                    for s in sorted(x for x in serials if x)]  # fmt: skip
        phases = [h.phase for h in b.history]
        if Phase.INTERRUPTED in phases:
            interrupted.append({"bay": n, "camera": b.state.camera_id})
            if Phase.DONE in phases[phases.index(Phase.INTERRUPTED) :]:
                resumed.append({"bay": n, "camera": b.state.camera_id})
    return {
        "station": station.cfg.station_id,
        "seconds": round(seconds, 2),
        "bays": bays,
        "refused": refused,
        "interrupted": interrupted,
        "resumed": resumed,
        "events_delivered": station.publisher.delivered if station.publisher else 0,
        # pre-shift: exactly the one planted failure; shift-end: every bay done and cleared
        "ok": tests.count("test-failed") == 1
        if tests
        else all(b["final_state"] == "done" and b["left_on_camera"] == 0 for b in bays),
    }


async def simulate(
    bays: int,
    scenario: str,
    state_dir: Path,
    ui: bool,
    out: TextIO = sys.stdout,
    broker: tuple[str, int] | None = None,
) -> dict[str, Any]:
    """Run a scenario on a simulated station; returns its summary."""
    cfg = sim_config(bays, state_dir, broker)
    hot = SimHotplug()
    factory = make_pin_factory("mock")
    view: View | None = None
    stories = Stories()

    def on_event(kind: str, bay: int | None, data: dict[str, Any]) -> None:
        stories.add(kind, bay, data)
        if view is not None:
            view.event(kind, bay, data)

    station = Station(
        cfg,
        hotplug=hot,
        mounter=SimMounter(),
        pin_factory=factory,
        on_event=on_event,
        read_bps=8_000_000,
    )
    view = View(station, out, live=ui)
    volumes = state_dir / "cameras"
    scripts: dict[str, Callable[[Station, SimHotplug, Path, int], Awaitable[None]]] = {
        "shift-end": shift_end,
        "pre-shift": pre_shift,
    }
    t0 = time.monotonic()
    runner = asyncio.create_task(station.run(), name="station")

    async def redraw() -> None:
        while True:
            view.render()
            await asyncio.sleep(0.1)

    drawer = asyncio.create_task(redraw()) if ui else None
    try:
        await scripts[scenario](station, hot, volumes, bays)
        await asyncio.sleep(0.3)
        if station.publisher is not None:
            # Let the publisher deliver the last events before the station stops.
            end = time.monotonic() + 5
            while time.monotonic() < end and await station.store.call(outbox.undelivered) > 0:
                await asyncio.sleep(0.1)
    finally:
        if drawer is not None:
            view.render()
            drawer.cancel()
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        factory.close()
    return summary(station, volumes, time.monotonic() - t0, stories)


def main(
    bays: int,
    scenario: str,
    state_dir: Path | None,
    ui: bool,
    as_json: bool,
    broker: tuple[str, int] | None = None,
) -> int:
    """``camdock simulate``; returns an exit code."""
    if bays < 4:
        print("camdock simulate: the scenarios need at least 4 bays", file=sys.stderr)
        return 64
    keep = state_dir is not None
    root = state_dir or Path(tempfile.mkdtemp(prefix="camdock-sim-"))
    root.mkdir(parents=True, exist_ok=True)
    # The view shows the station's events; the log would only scribble over it.
    logging.getLogger("camdock").setLevel(logging.WARNING)
    # With --json, stdout carries exactly one JSON document: the view and events go to stderr.
    out = sys.stderr if as_json else sys.stdout
    try:
        result = asyncio.run(simulate(bays, scenario, root, ui and out.isatty(), out, broker))
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    if as_json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        print(f"\nsummary ({result['seconds']} s):")
        for b in result["bays"]:
            if scenario == "pre-shift":
                print(
                    f"  bay {b['bay']}: {b['final_state']:<11} camera {b['camera'] or '-':<8} "
                    f"{b['message']}"
                )
                continue
            print(
                f"  bay {b['bay']}: {b['final_state']:<11} camera {b['camera'] or '-':<8} "
                f"{b['verified']}/{b['files']} verified, {b['cleared']} cleared, "
                f"{b['bytes'] / 1e6:.1f} MB, {b['left_on_camera']} left on camera"
            )
        for r in result["refused"]:
            print(f"  refused: USB device {r['usb_serial']} at bay {r['bay']} ({r['reason']})")
        resumed = {r["bay"] for r in result["resumed"]}
        for r in result["interrupted"]:
            again = "resumed when docked again" if r["bay"] in resumed else "not resumed"
            print(f"  interrupted: bay {r['bay']} ({r['camera']}) pulled mid-offload, {again}")
        if keep:
            print(f"catalog and footage kept in {root}")
    return 0 if result["ok"] else 1
