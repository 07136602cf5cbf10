#!/usr/bin/env python3
"""Offload throughput against the plain tools, in one run, on the same data (needs root).

    cat          read the camera once                      (the floor: the USB link)
    cp+sha256sum cp to two destinations, then sha256sum of all three
    camdock      camdock offload to two destinations (hash once, fsync, read back from disk)

The camera is an ext4 image on a loop device with direct I/O (so its reads reach the image, not
the host's page cache), mounted; the page cache is dropped before every command. Run twice: with
the camera's reads throttled to 35 MB/s through the blkio cgroup (a body camera on USB 2.0) and
unthrottled. Results go to stdout and into bench/RESULTS.md between the offload markers.

    sudo .venv/bin/python bench/offload_bench.py [--mib 512] [--files 8] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
CGROUP_V1 = Path("/sys/fs/cgroup/blkio")
CGROUP_V2 = Path("/sys/fs/cgroup")
USB2_BPS = 35_000_000


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


class Throttle:
    """A cgroup whose members read the camera's block device at most ``bps`` bytes/s."""

    def __init__(self, device: str, bps: int | None) -> None:
        self.bps = bps
        rdev = os.stat(device).st_rdev
        self.majmin = f"{os.major(rdev)}:{os.minor(rdev)}"
        self.path: Path | None = None
        if bps is None:
            return
        if (CGROUP_V1 / "blkio.throttle.read_bps_device").exists():
            self.path = CGROUP_V1 / "camdock-bench"
            self.path.mkdir(exist_ok=True)
            (self.path / "blkio.throttle.read_bps_device").write_text(f"{self.majmin} {bps}\n")
        elif (CGROUP_V2 / "cgroup.controllers").exists():
            self.path = CGROUP_V2 / "camdock-bench"
            self.path.mkdir(exist_ok=True)
            (self.path / "io.max").write_text(f"{self.majmin} rbps={bps}\n")
        else:
            sys.exit("no blkio (v1) or io (v2) cgroup controller to throttle with")

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """argv run inside the cgroup (the shell joins it, then execs the command)."""
        if self.path is None:
            return list(argv)
        return ["sh", "-c", f'echo $$ > {self.path}/cgroup.procs && exec "$@"', "sh", *argv]

    def close(self) -> None:
        if self.path is not None:
            self.path.rmdir()


def timed(argv: Sequence[str], shell_chain: bool = False) -> float:
    drop_caches()
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def fresh(*dirs: Path) -> None:
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)


def measure(
    work: Path, cam: Path, files: list[Path], throttle: Throttle, repeat: int
) -> dict[str, float]:
    d1, d2, state = work / "footage", work / "backup", work / "state"
    names = " ".join(f'"{f}"' for f in files)
    rel = [str(f.relative_to(cam)) for f in files]
    cp_sha = f"cp {names} {d1}/ && cp {names} {d2}/ && sha256sum {names} " + " ".join(
        f'"{d}/{Path(r).name}"' for d in (d1, d2) for r in rel
    )
    camdock = [
        str(Path(sys.executable).parent / "camdock"),
        "offload",
        str(cam),
        "--to",
        str(d1),
        "--to",
        str(d2),
        "--camera",
        "BENCH",
        "--officer",
        "bench",
        "--badge",
        "0",
        "--catalog",
        str(state / "catalog.sqlite"),
    ]
    runs: dict[str, list[float]] = {"cat": [], "cp+sha256sum": [], "camdock": []}
    for _ in range(repeat):
        runs["cat"].append(timed(throttle.wrap(["sh", "-c", f"cat {names} > /dev/null"])))
        fresh(d1, d2)
        runs["cp+sha256sum"].append(timed(throttle.wrap(["sh", "-c", cp_sha])))
        fresh(d1, d2, state)
        runs["camdock"].append(timed(throttle.wrap(camdock)))
    fresh(d1, d2, state)
    return {k: statistics.median(v) for k, v in runs.items()}


def machine() -> str:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith(("model name", "Model"))
        ),
        platform.machine(),
    )
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem} GiB, kernel {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--mib", type=int, default=512, help="total camera data (MiB)")
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3, help="unthrottled repetitions (median)")
    ap.add_argument("--work", type=Path, help="work dir on the disk to measure (default: /var/tmp)")
    ap.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("the benchmark needs root (loop devices, cgroups, drop_caches)")

    work = Path(tempfile.mkdtemp(prefix="camdock-bench-", dir=args.work or "/var/tmp"))
    image, cam = work / "camera.img", work / "camera"
    with open(image, "wb") as f:
        f.truncate((args.mib + 128) << 20)
    sh("mkfs.ext4", "-q", "-F", str(image))
    dev = sh("losetup", "--find", "--show", "--direct-io=on", str(image))
    cam.mkdir()
    sh("mount", dev, str(cam))
    results: dict[str, dict[str, float]] = {}
    try:
        per_file = (args.mib << 20) // args.files
        files = []
        for n in range(args.files):
            f = cam / "DCIM" / f"20261128_{8 + n:02d}0000_{n:04d}.MP4"
            f.parent.mkdir(exist_ok=True)
            with open(f, "wb") as out:
                left = per_file
                while left:
                    block = os.urandom(min(left, 8 << 20))
                    out.write(block)
                    left -= len(block)
            files.append(f)
        for label, bps, repeat in (
            ("throttled 35 MB/s", USB2_BPS, 1),
            ("unthrottled", None, args.repeat),
        ):
            throttle = Throttle(dev, bps)
            try:
                print(f"measuring {label} ...", flush=True)
                results[label] = measure(work, cam, files, throttle, repeat)
            finally:
                throttle.close()
    finally:
        sh("umount", str(cam))
        sh("losetup", "-d", dev)
        shutil.rmtree(work, ignore_errors=True)

    report = render(results, args.mib, args.files, args.repeat)
    print(report)
    if not args.no_write:
        write_results(report)


def render(results: dict[str, dict[str, float]], mib: int, files: int, repeat: int) -> str:
    mb = (mib << 20) / 1e6
    thr, un = results["throttled 35 MB/s"], results["unthrottled"]
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}.",
        f"{mib} MiB in {files} files; camera = ext4 on a direct-I/O loop device; page cache "
        f"dropped before each command; unthrottled figures are the median of {repeat} runs.",
        "",
        "| source | cat | cp ×2 + sha256sum ×3 | camdock offload → 2 | camdock / cat "
        "| camdock / (cp+sha256sum) |",
        "|---|---|---|---|---|---|",
    ]
    for label, r in results.items():
        lines.append(
            f"| {label} | {r['cat']:.2f} s ({mb / r['cat']:.0f} MB/s) "
            f"| {r['cp+sha256sum']:.2f} s | {r['camdock']:.2f} s ({mb / r['camdock']:.0f} MB/s) "
            f"| {r['camdock'] / r['cat']:.3f} | {r['camdock'] / r['cp+sha256sum']:.3f} |"
        )
    lines += [
        "",
        f"Targets: throttled camdock ≤ 1.05 × cat → **{thr['camdock'] / thr['cat']:.3f}** "
        f"({'met' if thr['camdock'] / thr['cat'] <= 1.05 else 'NOT met'}); "
        f"unthrottled camdock ≤ 0.6 × (cp + sha256sum) → "
        f"**{un['camdock'] / un['cp+sha256sum']:.3f}** "
        f"({'met' if un['camdock'] / un['cp+sha256sum'] <= 0.6 else 'NOT met'}).",
    ]
    return "\n".join(lines)


def write_results(
    report: str, key: str = "offload-bench", title: str = "Offload throughput"
) -> None:
    """Put ``report`` into bench/RESULTS.md between its markers (appending a section once)."""
    begin, end = f"<!-- {key}:begin -->", f"<!-- {key}:end -->"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    block = f"{begin}\n{report}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + f"\n\n## {title}\n\n" + block + "\n"
    RESULTS.write_text(text)
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
