#!/usr/bin/env python3
"""The daily seal against its baseline (issue 14), in the same run (needs root: drop_caches).

    baseline   for each destination: `cat` the day's plain files into one file and `sync` it:
               reading the day once and writing it once, nothing more
    7z         for each destination: `7z a -mhe=on -mx=0` then `7z t` (cache dropped between):
               what 7-Zip alone takes to write and test the same archive (issue 28: ≥ 0.8)
    camdock    `camdock seal create DAY`: per destination, read and hash each plain copy, encrypt
               it into a 7z archive (AES-256, stored), fsync, then read the archive back from
               disk (page cache dropped) to hash it and decrypt and hash every member

Target: camdock at no less than 0.8 × the speed of 7z alone, under 100 MB RSS. The page cache is
dropped before each command. Results go into bench/RESULTS.md.

    sudo .venv/bin/python bench/seal_bench.py [--mib 512] [--files 16]

Both drives are written and read back at once (one thread each), as on a station where footage
and backup are two USB disks.
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


READ_BPS = 100_000_000  # a USB 3 disk's reads, per drive


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


class Drives:
    """Two ext4 images on direct-I/O loop devices (footage and backup: independent drives),
    mounted, and a blkio cgroup that reads each at most ``bps`` (None: unthrottled)."""

    def __init__(self, work: Path, mib: int) -> None:
        self.work, self.devs, self.roots = work, [], []
        for name in ("footage", "backup"):
            image, root = work / f"{name}.img", work / name
            with open(image, "wb") as f:
                f.truncate((3 * mib + 256) << 20)
            sh("mkfs.ext4", "-q", "-F", str(image))
            dev = sh("losetup", "--find", "--show", "--direct-io=on", str(image))
            root.mkdir()
            sh("mount", dev, str(root))
            self.devs.append(dev)
            self.roots.append(root)
        self.cgroup = Path("/sys/fs/cgroup/blkio/camdock-seal-bench")
        self.cgroup.mkdir(exist_ok=True)

    def throttle(self, bps: int | None) -> None:
        for dev in self.devs:
            rdev = os.stat(dev).st_rdev
            (self.cgroup / "blkio.throttle.read_bps_device").write_text(
                f"{os.major(rdev)}:{os.minor(rdev)} {bps or 0}\n")  # fmt: skip

    def wrap(self, argv: list[str]) -> list[str]:
        return ["sh", "-c", f'echo $$ > {self.cgroup}/cgroup.procs && exec "$@"', "sh", *argv]

    def close(self) -> None:
        for root, dev in zip(self.roots, self.devs, strict=True):
            subprocess.run(["umount", str(root)], check=False)
            subprocess.run(["losetup", "-d", dev], check=False)
        self.cgroup.rmdir()


def timed(cmd: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS of the child in MiB) of one command, page cache dropped first."""
    drop_caches()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.monotonic()
    subprocess.run(cmd, check=True, capture_output=True)
    took = time.monotonic() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return took, max(peak, before) / 1024


def main() -> None:
    """Offload a synthetic day to two drives, then time the baseline and the seal."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=512, help="the day's footage, per destination")
    ap.add_argument("--files", type=int, default=16)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("the benchmark needs root (loop devices, cgroups, drop_caches)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="camdock-seal-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        drives = Drives(work, args.mib)
        try:
            cam, catalog = work / "cam", work / "c.db"
            folder = cam / "DCIM" / "100MEDIA"
            folder.mkdir(parents=True)
            each = (args.mib << 20) // args.files
            for i in range(args.files):
                with open(folder / f"20261128_{9 + i // 60:02d}{i % 60:02d}00_{i:04d}.MP4",
                          "wb") as f:  # fmt: skip
                    for _ in range(each >> 20):
                        f.write(os.urandom(1 << 20))
            d1, d2 = drives.roots
            offload = [*CAMDOCK, "offload", str(cam), "--to", str(d1), "--to", str(d2),
                       "--camera", "C1", "--officer", "王小明", "--badge", "A1",
                       "--catalog", str(catalog)]  # fmt: skip
            subprocess.run(offload, check=True, capture_output=True)
            key = work / "seal.key"
            key.write_text(PASSWORD)
            key.chmod(0o600)
            size = sum(p.stat().st_size for p in d1.rglob("*.mp4"))
            for label, bps in ((f"reads {READ_BPS // 1_000_000} MB/s per drive", READ_BPS),
                               ("unthrottled", None)):  # fmt: skip
                drives.throttle(bps)
                base = sevenzip = 0.0
                for d in (d1, d2):
                    files = sorted(str(p) for p in d.rglob("*.mp4"))
                    script = f'cat "$@" > {d / "cat.out"} && sync'
                    base += timed(drives.wrap(["sh", "-c", script, "sh", *files]))[0]
                    (d / "cat.out").unlink()
                    # 7-Zip itself: write (stored, AES, encrypted headers), sync, drop the
                    # cache, test (decrypt every member, check its CRC): what camdock does.
                    out = d / "base.7z"
                    script = (f'7z a -t7z -mx=0 -mhe=on -p"$PW" -bd -bso0 -bsp0 {out} "$@" && '
                              f"sync && echo 3 > /proc/sys/vm/drop_caches && "
                              f'7z t -p"$PW" -bd -bso0 -bsp0 {out}')  # fmt: skip
                    sevenzip += timed(drives.wrap(["env", f"PW={PASSWORD}", "sh", "-c", script,
                                                   "sh", *files]))[0]  # fmt: skip
                    out.unlink()
                day = "2026-11-28"
                seal, rss = timed(drives.wrap([*CAMDOCK, "seal", "create", day, "--by", "b",
                                               "--catalog", str(catalog), "--password-file",
                                               str(key)]))  # fmt: skip
                rows.append((label, base, sevenzip, seal, rss))
        finally:
            drives.close()
    mb = size / 1e6
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}.",
        f"A duty day of {size >> 20} MiB in {args.files} recordings on each of two drives (ext4 "
        "images on direct-I/O loop devices); page cache dropped before each command. camdock "
        "writes and reads back both drives at once; the `cat` and `7z` columns are the sum of "
        f"one drive after the other. Load average at the end: {os.getloadavg()[0]:.1f} (other "
        "work on the machine slows every column alike).",
        "",
        "| drives | `cat` the day + `sync`, each drive | `7z a -mhe=on` + `7z t`, each drive | "
        "`camdock seal create` (both drives: write, read back, check) | seal / `7z` speed "
        "(≥ 0.8) | seal / `cat` speed | peak RSS (< 100 MiB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, base, sevenzip, seal, rss in rows:
        lines.append(f"| {label} | {base:.2f} s ({2 * mb / base:.0f} MB/s) | {sevenzip:.2f} s "
                     f"| {seal:.2f} s ({2 * mb / seal:.0f} MB/s) | **{sevenzip / seal:.2f}** | "
                     f"{base / seal:.2f} | {rss:.0f} MiB |")  # fmt: skip
    report = "\n".join(lines)
    print(report)
    write_results(report, "seal-bench", "The daily seal")


if __name__ == "__main__":
    main()
