"""Each bay's story in ``camdock simulate --json`` (issue 29 item 6): what happened at the bay,
in order, as the station told it (its events), and what the catalog kept of it: the function
tests with the camera's clock drift before and after the sync, the duty-log entries
(REG-3.2), the spare lent and to whom (REG-4.2.4). The summary dropped all of it before."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any

from camdock.catalog import open_readonly, selftests
from camdock.clock import iso_local

__all__ = ["Stories"]

# Far enough either side of any simulated day: the catalog's times are UTC ISO 8601 text.
_EVER = ("0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59+00:00")


@dataclass
class Stories:
    """The station's events, bay by bay, as they came (seconds since the start)."""

    started: float = field(default_factory=time.monotonic)
    events: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    station: list[dict[str, Any]] = field(default_factory=list)

    def add(self, kind: str, bay: int | None, data: dict[str, Any]) -> None:
        """One event; ``bay`` None: the station's own (the custody head, a drive)."""
        entry = {"t": round(time.monotonic() - self.started, 2), "event": kind,
                 **{k: v for k, v in data.items() if v not in (None, "")}}  # fmt: skip
        (self.events.setdefault(bay, []) if bay else self.station).append(entry)

    def told(self, catalog: Path, bays: list[int], tz: tzinfo) -> dict[int, dict[str, Any]]:
        """Each bay's story: its events, and the tests, duty-log entries and loans the catalog
        holds for the cameras tested there (times ISO 8601 with the station's offset)."""
        tests, entries, loans = _catalog(catalog, tz)
        told: dict[int, dict[str, Any]] = {}
        for n in bays:
            mine = [t for t in tests if t["bay"] == n]
            cameras = {t["camera_id"] for t in mine}
            told[n] = {
                "story": self.events.get(n, []),
                "tests": [{k: v for k, v in t.items() if k != "bay"} for t in mine],
                "duty_log": [e for e in entries if e["camera_id"] in cameras],
                "spare_lent": next((ln for ln in loans if ln["spare"] in cameras), None),
            }
        return told


Rows = list[dict[str, Any]]


def _catalog(catalog: Path, tz: tzinfo) -> tuple[Rows, Rows, Rows]:
    """The tests (oldest first), duty-log entries and loans of the simulated station."""
    db = open_readonly(catalog)
    try:
        found, logged = selftests.history(db, *_EVER)
        loans = selftests.loans(db)
    finally:
        db.close()
    tests = [
        {"bay": t.bay, "camera_id": t.camera_id, "officer": t.officer_name,
         "time": iso_local(t.time, tz), "passed": bool(t.passed), "failed_checks": list(t.failed),
         "clock_drift_before_s": t.drift_before, "clock_drift_after_s": t.drift_after,
         "battery": t.battery}
        for t in reversed(found)
    ]  # fmt: skip
    entries = [
        {"time": iso_local(e.time, tz), "officer": e.officer_name, "badge": e.officer_badge,
         "camera_id": e.camera_id, "entry": e.entry, "spare_camera_id": e.spare_camera_id}
        for e in reversed(logged)
    ]  # fmt: skip
    lent = [{"spare": ln.spare_camera_id, "to": ln.officer_name, "badge": ln.officer_badge,
             "time": iso_local(ln.time, tz), "returned_at": iso_local(ln.returned_at, tz)}
            for ln in loans]  # fmt: skip
    return tests, entries, lent
