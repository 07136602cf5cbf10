"""The moment the tests run at (issue 24): no test reads the calendar.

Every test runs at STATION_NOW: the test process's clock is set through ``camdock.clock``
(tests/conftest.py), and every camdock process a test starts runs under libfaketime from the
same moment on (``at_station_time``). CI runs the fast tests again with the machine's clock
moved ahead (scripts/shifted-tests): whatever still reads the calendar fails there.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from camdock import clock

__all__ = ["FAKETIME_LIB", "FAKETIME_SITE", "STATION_NOW", "at_station_time"]

# The day after the recordings the tests make (2026-11-28), at ten in the morning, station time.
STATION_NOW = datetime(2026, 11, 29, 10, 0, tzinfo=ZoneInfo("Asia/Taipei"))
FAKETIME_SITE = Path(__file__).resolve().parent / "faketime"
_FAKETIME_LIBS = sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))
FAKETIME_LIB = _FAKETIME_LIBS[0] if _FAKETIME_LIBS else None


def at_station_time(argv: list[str]) -> list[str]:
    """``argv`` run at this test's "now" (libfaketime: the calendar only, from this moment on).

    The moment is the one at this call: build the argv right before each run (a loop that
    reuses one would start every run at the same moment). libfaketime reads it in the child's
    local zone, which is this process's; a preload already there (umockdev's) is kept."""
    moment = clock.now().astimezone()
    preload = ":".join(filter(None, [str(FAKETIME_LIB), os.environ.get("LD_PRELOAD")]))
    path = ":".join(filter(None, [str(FAKETIME_SITE), os.environ.get("PYTHONPATH")]))
    return [
        "env",
        f"LD_PRELOAD={preload}",
        f"FAKETIME=@{moment:%Y-%m-%d %H:%M:%S.%f}",
        "FAKETIME_DONT_FAKE_MONOTONIC=1",
        f"PYTHONPATH={path}",
        *argv,
    ]
