"""The run directory's bay states (station/rundir.py): the writer stops when it is told to."""

from __future__ import annotations

import asyncio
from pathlib import Path

from camdock.station.rundir import BAYS_EVERY, BaysFile


async def test_a_stop_that_meets_a_bay_change_still_stops_the_writer(tmp_path: Path) -> None:
    """Found by the leap-day run of the suite: a bay changed in the same instant the station
    was stopped, Python 3.11's ``asyncio.wait_for`` dropped the cancel, and the writer went on
    beating every 10 s with the station's stop waiting for it for ever."""
    for _ in range(3):
        writer = BaysFile(tmp_path, lambda: [])
        task = asyncio.create_task(writer.run())
        await asyncio.sleep(BAYS_EVERY + 0.05)  # written once; now waiting for a change
        writer.changed()
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=5)
        assert done and task.cancelled(), "the bay states' writer outlived its stop"
