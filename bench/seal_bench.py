#!/usr/bin/env python3
"""The daily seal against its baseline (issue 14), in the same run (needs root: drop_caches).

    baseline   for each destination: `cat` the day's plain files into one file and `sync` it:
               reading the day once and writing it once, nothing more
    camdock    `camdock seal create DAY`: per destination, read and hash each plain copy, encrypt
               it into a 7z archive (AES-256, stored), fsync, then read the archive back from
               disk (page cache dropped) to hash it and decrypt and hash every member

Target: camdock at no less than 0.8 × the baseline's speed, under 100 MB RSS. The page cache is
dropped before each command. Results go into bench/RESULTS.md.

    sudo .venv/bin/python bench/seal_bench.py [--mib 512] [--files 16]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from offload_bench import machine, write_results  # noqa: E402

CAMDOCK = [sys.executable, "-m", "camdock"]
PASSWORD = "a benchmark seal password"  # noqa: S105 - the benchmark's own


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def timed(cmd: list[str], **kw: object) -> tuple[float, float]:
    """(seconds, peak RSS of the child in MiB) of one command."""
    drop_caches()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.monotonic()
    subprocess.run(cmd, check=True, capture_output=True, **kw)  # type: ignore[call-overload]
    took = time.monotonic() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return took, max(peak, before) / 1024


def main() -> None:
    """Offload a synthetic day, then time the baseline and the seal."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=512, help="the day's footage, per destination")
    ap.add_argument("--files", type=int, default=16)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="camdock-seal-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        cam, d1, d2, catalog = work / "cam", work / "d1", work / "d2", work / "c.db"
        folder = cam / "DCIM" / "100MEDIA"
        folder.mkdir(parents=True)
        d1.mkdir(), d2.mkdir()
        each = (args.mib << 20) // args.files
        for i in range(args.files):
            with open(folder / f"20261128_{9 + i // 60:02d}{i % 60:02d}00_{i:04d}.MP4", "wb") as f:
                for _ in range(each >> 20):
                    f.write(os.urandom(1 << 20))
        subprocess.run([*CAMDOCK, "offload", str(cam), "--to", str(d1), "--to", str(d2),
                        "--camera", "C1", "--officer", "王小明", "--badge", "A1", "--catalog",
                        str(catalog), "--allow-one-filesystem"], check=True,
                       capture_output=True)  # fmt: skip
        key = work / "seal.key"
        key.write_text(PASSWORD)
        key.chmod(0o600)
        plain = sorted(p for d in (d1,) for p in d.rglob("*.mp4"))
        base = 0.0
        for d in (d1, d2):
            files = sorted(str(p) for p in d.rglob("*.mp4"))
            script = f'cat "$@" > {work / ("cat-" + d.name)} && sync'
            took, _ = timed(["sh", "-c", script, "sh", *files])
            base += took
        seal, rss = timed([*CAMDOCK, "seal", "create", "2026-11-28", "--by", "bench",
                           "--catalog", str(catalog), "--password-file", str(key)])  # fmt: skip
        size = sum(p.stat().st_size for p in plain)
    ratio = base / seal
    mb = size / 1e6
    report = (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}.\n"
        f"A duty day of {size >> 20} MiB in {args.files} recordings, two destinations on one "
        "disk (/var/tmp); page cache dropped before each command.\n\n"
        "| for both destinations | seconds | MB/s of footage | peak RSS |\n|---|---|---|---|\n"
        f"| baseline: `cat` the day into one file + `sync`, ×2 | {base:.2f} | "
        f"{2 * mb / base:.0f} | – |\n"
        f"| `camdock seal create` (write, read back, check) | {seal:.2f} | {2 * mb / seal:.0f} | "
        f"{rss:.0f} MiB |\n\n"
        f"camdock / baseline speed: **{ratio:.2f}** (target ≥ 0.8: "
        f"{'met' if ratio >= 0.8 else 'NOT met'}); peak RSS **{rss:.0f} MiB** (target < 100: "
        f"{'met' if rss < 100 else 'NOT met'})."
    )
    print(report)
    write_results(report, "seal-bench", "The daily seal")


if __name__ == "__main__":
    main()
