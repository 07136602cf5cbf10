#!/usr/bin/env python3
"""The full fixity pass against the drives' own read speed (issue 16; needs root).

    baseline   `cat` of every stored copy on both drives (page cache dropped first)
    camdock    `camdock audit --full`: every copy fsynced, dropped from the cache, read back from
               disk and SHA-256-hashed, plus the walk for files the catalog does not know

Both drives are ext4 images on direct-I/O loop devices, reads throttled like USB 3 disks and
unthrottled. Target: camdock reads at no less than 0.9 × `cat`. Results go into
bench/RESULTS.md.

    sudo .venv/bin/python bench/fixity_bench.py [--mib 512]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from offload_bench import machine, write_results  # noqa: E402
from seal_bench import CAMDOCK, READ_BPS, Drives, timed  # noqa: E402


def main() -> None:
    """Offload a day to two drives, then time `cat` and the audit in both settings."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=512)
    ap.add_argument("--files", type=int, default=16)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("the benchmark needs root (loop devices, cgroups, drop_caches)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="camdock-fixity-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        drives = Drives(work, args.mib)
        try:
            cam, catalog = work / "cam" / "DCIM", work / "c.db"
            cam.mkdir(parents=True)
            for i in range(args.files):
                with open(cam / f"20261128_{9 + i // 60:02d}{i % 60:02d}00_{i:04d}.MP4", "wb") as f:
                    for _ in range(args.mib // args.files):
                        f.write(os.urandom(1 << 20))
            d1, d2 = drives.roots
            offload = [*CAMDOCK, "offload", str(work / "cam"), "--to", str(d1), "--to", str(d2),
                       "--camera", "C1", "--officer", "o", "--badge", "b", "--catalog",
                       str(catalog)]  # fmt: skip
            subprocess.run(offload, check=True, capture_output=True)
            files = [str(p) for d in (d1, d2) for p in sorted(d.rglob("*.mp4"))]
            size = sum(Path(f).stat().st_size for f in files)
            for label, bps in ((f"reads {READ_BPS // 1_000_000} MB/s per drive", READ_BPS),
                               ("unthrottled", None)):  # fmt: skip
                drives.throttle(bps)
                cat = timed(drives.wrap(["sh", "-c", 'cat "$@" > /dev/null', "sh", *files]))[0]
                audit, rss = timed(drives.wrap([*CAMDOCK, "audit", "--full", "--catalog",
                                                str(catalog)]))  # fmt: skip
                rows.append((label, cat, audit, rss))
        finally:
            drives.close()
    mb = size / 1e6
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}.",
        f"{size >> 20} MiB of stored copies ({args.mib} MiB on each of two drives, ext4 on "
        "direct-I/O loop devices); page cache dropped before each command.",
        "",
        "| drives | `cat` of every copy | `camdock audit --full` | audit / cat speed (≥ 0.9) "
        "| peak RSS |",
        "|---|---|---|---|---|",
    ]
    for label, cat, audit, rss in rows:
        ratio = cat / audit
        lines.append(f"| {label} | {cat:.2f} s ({mb / cat:.0f} MB/s) | {audit:.2f} s "
                     f"({mb / audit:.0f} MB/s) | **{ratio:.2f}** | {rss:.0f} MiB |")  # fmt: skip
    report = "\n".join(lines)
    print(report)
    write_results(report, "fixity-bench", "The full fixity pass")


if __name__ == "__main__":
    main()
