"""Shift end on a shared USB bus (issue 18): shortest remaining first, nobody starving, an ETA
for the officer waiting; the pure rules, and the station with simulated cameras on one bus."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

from camdock.core.bay import Phase
from camdock.core.schedule import Waiting, bus_of, eta, pick
from camdock.sim.hotplug import fill_camera
from camdock.station.admission import Admission, Withdrawn
from conftest import tree_hashes
from test_review3 import WatchedMounter
from test_station import Harness, running


def test_shortest_first_and_nobody_starves() -> None:
    rate = 40e6
    waiting = [Waiting(1, 4_000_000_000, 0.0), Waiting(2, 400_000_000, 5.0),
               Waiting(3, 800_000_000, 1.0)]  # fmt: skip
    assert pick(waiting, 10.0, rate).bay == 2  # the short shift goes first
    # One that waited longer than the longest running offload plus its own goes next.
    assert pick(waiting, 400.0, rate, longest_running=100.0).bay == 1
    assert pick([], 0.0, rate) is None
    # The mean dock → done time of shortest-first against docking order, one bus.
    sizes = [w.bytes for w in waiting]

    def mean_done(order: list[int]) -> float:
        t, total = 0.0, 0.0
        for size in order:
            t += size / rate
            total += t
        return total / len(order)

    assert mean_done(sorted(sizes)) < 0.6 * mean_done(sizes)
    assert eta(100, [200, 300], 400, 100.0) == 10.0


def test_the_bus_comes_from_udev() -> None:
    assert bus_of("1-1.3", None) == "usb1" == bus_of("1-2", "x")
    assert bus_of("3-1", None) == "usb3"  # a Pi 5's second USB 2.0 bus
    pi4 = "platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.3:1.0"
    assert bus_of(None, pi4) == "platform-fd500000.pcie-pci-0000:01:00.0"
    assert bus_of(None, None).startswith("own:")


@contextlib.asynccontextmanager
async def _big_running_then_small(
    tmp_path: Path, read_bps: int
) -> AsyncIterator[tuple[Harness, Path, Path]]:
    """One bus, one offload at a time: a big camera offloading on bay 1, then a small one
    docked on bay 2 (the harness, the two cameras' volumes)."""
    start = datetime(2026, 11, 28, 8, 30)
    big, small = tmp_path / "big", tmp_path / "small"
    fill_camera(big, files=4, size=3 << 20, seed=1, start=start)
    fill_camera(small, files=1, size=1 << 20, seed=2, start=start)
    async with running(tmp_path, read_bps=read_bps, per_bus=1) as h:
        h.hot.dock("1-1", "SN0001", big)
        await h.until(lambda: h.bay(1).state.phase is Phase.OFFLOADING)
        h.hot.dock("1-2", "SN0002", small)
        yield h, big, small


async def test_on_one_bus_the_short_camera_is_done_first_and_waits_with_an_eta(
    tmp_path: Path,
) -> None:
    async with _big_running_then_small(tmp_path, 8_000_000) as (h, _, _):
        seen: list[Any] = []

        async def watch() -> None:
            while h.bay(2).state.phase is not Phase.DONE:
                bays = json.loads((h.cfg.run_dir / "bays.json").read_text())["bays"]
                seen.append(bays[1].get("eta_seconds"))
                await asyncio.sleep(0.05)

        await asyncio.wait_for(watch(), 30)
        # The big camera was already running (nothing preempts it); the small one waited for
        # the bus, with an ETA, and did not share it.
        assert any(e is not None for e in seen)
        await h.until(lambda: h.bay(1).state.phase is Phase.DONE, timeout=40)
        states = [(bay, d["phase"]) for kind, bay, d in h.events if kind == "bay-state"]
        big_read = min(states.index(x) for x in ((1, "verifying"), (1, "done")) if x in states)
        small_starts = states.index((2, "offloading"))
        assert small_starts > big_read  # one camera read at a time on the bus


def test_a_bay_s_bus_can_be_set_in_the_config(tmp_path: Path) -> None:
    from camdock.config import load
    from stationcfg import write_config

    path = write_config(tmp_path)
    text = path.read_text().replace("button = 7\n", 'button = 7\nbus = "hub-a"\n', 1)
    path.write_text(text)
    cfg = load(path)
    assert [b.bus for b in cfg.bays] == ["hub-a", None]


async def test_a_camera_pulled_while_it_waits_for_the_bus_leaves_the_queue_at_once(
    tmp_path: Path,
) -> None:
    """Shift end on one bus (REG-4.1.2): the camera waiting behind a long offload is pulled.
    Its run lets go of the volume now, not when its turn would have come; docked again while
    the long one still runs, it queues afresh (with an ETA) and is offloaded after it."""
    async with _big_running_then_small(tmp_path, 4_000_000) as (h, big, small):
        await h.until(lambda: 2 in h.station.docking.admission.waiting)
        waiting_run = h.bay(2).offload
        h.hot.undock("1-2")
        assert waiting_run.task is not None
        await asyncio.wait_for(asyncio.shield(waiting_run.task), 10)
        assert h.bay(1).state.phase is Phase.OFFLOADING  # it did not wait for its turn
        assert 2 not in h.station.docking.admission.waiting
        h.hot.dock("1-2", "SN0002", small)
        await h.until(lambda: 2 in h.station.docking.admission.waiting)
        assert h.bay(1).state.phase is Phase.OFFLOADING
        await h.until(lambda: h.bay(2).state.phase is Phase.DONE, timeout=60)
        await h.until(lambda: h.bay(1).state.phase is Phase.DONE, timeout=60)
        assert not any(small.rglob("*.MP4")) and not any(big.rglob("*.MP4"))


# Hostile review 4 (branch review4) of the bus queue's withdraw (5d2b897).


def _bays_json(h: Harness) -> dict[int, tuple[str, Any]]:
    with contextlib.suppress(OSError, ValueError):
        bays = json.loads((h.cfg.run_dir / "bays.json").read_text())["bays"]
        return {b["bay"]: (b["phase"], b["eta_seconds"]) for b in bays}
    return {}


async def test_pull_redock_pull_while_waiting_keeps_one_volume_and_no_eta(tmp_path: Path) -> None:
    """Pulled while it waits, docked again, pulled again while it waits, docked again: each
    pull shows at once in bays.json with no ETA, the bay never has two volumes mounted, and in
    the end both cameras are offloaded and cleared, nothing lost (REG-4.1.2, REG-4.2.6)."""
    start = datetime(2026, 11, 28, 8, 30)
    big, small = tmp_path / "big", tmp_path / "small"
    fill_camera(big, files=4, size=3 << 20, seed=1, start=start)
    fill_camera(small, files=1, size=1 << 20, seed=2, start=start)
    m = WatchedMounter(held=False)
    async with running(tmp_path, read_bps=2_000_000, per_bus=1, mounter=m) as h:
        h.hot.dock("1-1", "SN0001", big)
        await h.until(lambda: h.bay(1).state.phase is Phase.OFFLOADING)
        for _ in range(2):
            h.hot.dock("1-2", "SN0002", small)
            await h.until(lambda: 2 in h.station.docking.admission.waiting)
            await h.until(lambda: (_bays_json(h).get(2) or ("", None))[1] is not None)
            h.hot.undock("1-2")
            await h.until(lambda: _bays_json(h).get(2) == ("interrupted", None))
            assert 2 not in h.station.eta.waiting
        h.hot.dock("1-2", "SN0002", small)
        await h.until(lambda: h.bay(2).state.phase is Phase.DONE, timeout=60)
        await h.until(lambda: h.bay(1).state.phase is Phase.DONE, timeout=60)
        assert not any(small.rglob("*.MP4")) and not any(big.rglob("*.MP4"))
        assert m.peak == 1 and sum(m.on.values()) == 0
        assert h.station.docking.admission.running == {}


async def test_sigterm_while_cameras_wait_unmounts_them_and_clears_nothing_unverified(
    tmp_path: Path,
) -> None:
    """The daemon stops while one camera offloads and another waits for the bus: both volumes
    are let go of, the waiting camera keeps every recording, and the offloading one lost only
    what both drives hold verified (REG-4.1.2)."""
    start = datetime(2026, 11, 28, 8, 30)
    big, small = tmp_path / "big", tmp_path / "small"
    fill_camera(big, files=4, size=3 << 20, seed=1, start=start)
    fill_camera(small, files=1, size=1 << 20, seed=2, start=start)
    before_big, before_small = tree_hashes(big), tree_hashes(small)
    m = WatchedMounter(held=False)
    async with running(tmp_path, read_bps=2_000_000, per_bus=1, mounter=m) as h:
        h.hot.dock("1-1", "SN0001", big)
        await h.until(lambda: h.bay(1).state.progress > 0.3)
        h.hot.dock("1-2", "SN0002", small)
        await h.until(lambda: 2 in h.station.docking.admission.waiting)
    assert sum(m.on.values()) == 0
    assert tree_hashes(small) == before_small
    left = set(tree_hashes(big).values())
    stored = set(tree_hashes(tmp_path / "footage").values())
    assert stored == set(tree_hashes(tmp_path / "backup").values())
    assert left | stored == set(before_big.values())


async def test_a_bay_pulled_as_its_turn_is_given_frees_the_bus() -> None:
    """The camera whose turn is being given is pulled before its run wakes: withdraw finds it
    no longer waiting and leaves it be; its run sees the pull, and its turn ends at once, so
    the next camera on the bus goes (REG-4.1.2)."""
    adm = Admission(4, 1, lambda bay, eta: None)
    hold = asyncio.Event()
    got: list[str] = []

    async def bay(n: int, size: int) -> None:
        try:
            async with adm.turn(n, "usb1", size):
                got.append(f"turn {n}")
                await hold.wait()
        except Withdrawn:
            got.append(f"withdrawn {n}")

    one = asyncio.create_task(bay(1, 100))
    await asyncio.sleep(0)
    two, three = asyncio.create_task(bay(2, 10)), asyncio.create_task(bay(3, 20))
    while len(adm.waiting) < 2:
        await asyncio.sleep(0)
    adm.release(1)  # bay 1 read to the end: bay 2 (the smaller) is given the bus ...
    assert 2 in adm.running
    adm.withdraw(2)  # ... and pulled before its run wakes: nothing to take out of the queue
    assert 2 in adm.running and 3 in adm.waiting
    hold.set()
    await asyncio.gather(one, two, three)
    assert got == ["turn 1", "turn 2", "turn 3"] and adm.running == {} and not adm.waiting


async def test_a_withdrawn_camera_s_bytes_leave_the_etas_behind_it() -> None:
    """Three cameras wait behind a running one on one bus; the middle one is pulled: it hears
    "no ETA", and the one behind it no longer counts its bytes (REG-4.1.2: the officer is told
    when to come back)."""
    etas: dict[int, float | None] = {}
    adm = Admission(4, 1, etas.__setitem__)
    hold = asyncio.Event()

    async def bay(n: int, size: int) -> None:
        with contextlib.suppress(Withdrawn):
            async with adm.turn(n, "usb1", size):
                await hold.wait()

    tasks = [asyncio.create_task(bay(1, 70_000_000))]
    await asyncio.sleep(0)
    tasks += [asyncio.create_task(bay(n, s)) for n, s in ((2, 10_000_000), (3, 35_000_000))]
    tasks.append(asyncio.create_task(bay(4, 70_000_000)))
    while len(adm.waiting) < 3:
        await asyncio.sleep(0)
    before = etas[4]
    assert before is not None and etas[3] is not None
    adm.withdraw(3)
    await asyncio.sleep(0)
    after = etas[4]
    assert etas[3] is None and 3 not in adm.waiting
    assert after is not None and before - after >= 35_000_000 / 35e6 * 0.99
    hold.set()
    await asyncio.gather(*tasks)
    assert adm.running == {} and not adm.waiting
