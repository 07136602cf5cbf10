#!/usr/bin/env python3
"""The daily retention pass over a year of a 16-bay station (issue 13): about 200,000
recordings, a day's worth (550) due, a few dozen holds in force. Target: under 200 ms.

The catalog is built with the real migrations (so the pass reads through the real partial
indexes) in a temp dir; the pass is ``services.retention.plan_for``, which is what the daemon's
daily pass and ``camdock retention plan`` compute. Files are not touched: destroying is I/O the
drives pay for, per recording, and the SIGKILL test covers it. Results go into bench/RESULTS.md.

    .venv/bin/python bench/retention_bench.py [--recordings 200000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from camdock.catalog import open_catalog, write_txn  # noqa: E402
from camdock.core.retention import Policy  # noqa: E402
from camdock.services.retention import plan_for  # noqa: E402
from offload_bench import machine, write_results  # noqa: E402

TZ = ZoneInfo("Asia/Taipei")


def build(path: Path, total: int, today: date) -> None:
    """A year of recordings ending yesterday, spread evenly over 16 cameras and officers."""
    db = open_catalog(path)
    policy = Policy()
    per_day = total // 365
    rows = []
    for i in range(total):
        day = today - timedelta(days=365 - i // per_day)
        start = datetime(day.year, day.month, day.day, 8, tzinfo=TZ) + timedelta(seconds=i % 86400)
        keep, due = policy.window(day)
        rows.append((f"{i:064x}", 1 << 20, f"CAM{i % 16:04d}", f"A{i % 16:05d}", start.isoformat(),
                     start.isoformat(), f"{day:%Y/%m/%d}/r{i}.mp4", "2026-01-01T00:00:00Z",
                     keep.isoformat(), due.isoformat()))  # fmt: skip
    with write_txn(db):
        db.conn.executemany(
            "INSERT INTO recordings (sha256, size, camera_id, officer_badge, recorded_start, "
            "duty_slot_start, relpath, ingested_at, retain_until, destroy_by) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        for h in range(40):  # holds in force: officers' ranges and single recordings
            db.execute(
                "INSERT INTO holds (kind, case_ref, reason, officer_badge, range_start, range_end,"
                " recording_id, placed_by, placed_at) VALUES (?, ?, 'r', ?, ?, ?, ?, 's', 'now')",
                ("investigation" if h % 2 else "complaint", f"K-{h}",
                 f"A{h % 16:05d}" if h < 20 else None,
                 (datetime(2026, 1, 1, tzinfo=TZ) + timedelta(days=h)).isoformat() if h < 20
                 else None, (datetime(2026, 1, 2, tzinfo=TZ) + timedelta(days=h)).isoformat()
                 if h < 20 else None, None if h < 20 else h * 1000 + 1),
            )  # fmt: skip
    db.execute("ANALYZE")
    db.close()


def main() -> None:
    """Build the catalog, time the pass, write the result."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recordings", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    today = date(2027, 1, 15)
    with tempfile.TemporaryDirectory(prefix="camdock-retention-") as tmp:
        path = Path(tmp) / "catalog.sqlite"
        t0 = time.monotonic()
        build(path, args.recordings, today)
        built = time.monotonic() - t0
        db = open_catalog(path)
        times, plan = [], None
        for _ in range(args.runs):
            t = time.perf_counter()
            plan = plan_for(db, today)
            times.append(time.perf_counter() - t)
        db.close()
    assert plan is not None
    median = statistics.median(times)
    verdict = "met" if median < 0.2 else "NOT met"
    report = (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}.\n"
        f"A catalog of {args.recordings:,} recordings (a year at 16 bays), 40 holds in force "
        f"(built in {built:.0f} s).\n\n"
        "| pass | live | due | held | destroyable | median of "
        f"{args.runs} | worst |\n|---|---|---|---|---|---|---|\n"
        f"| `plan_for` ({today}) | {plan.live:,} | {len(plan.due)} | {len(plan.held)} | "
        f"{plan.destroyable:,} | {median * 1000:.1f} ms | {max(times) * 1000:.1f} ms |\n\n"
        f"Target: under 200 ms → **{median * 1000:.1f} ms** ({verdict})."
    )
    print(report)
    write_results(report, "retention-bench", "The daily retention pass")


if __name__ == "__main__":
    main()
