#!/usr/bin/env python3
"""Many files and stalled cameras (issue 11), measured on real filesystems (needs root).

    rss    peak RSS of `camdock offload` for a camera of N small files (in a temp dir), for N:
           memory must stay flat in the file count (plans are made and dropped per batch)
    stop   SIGTERM to `camdock offload` while the camera's reads hang (its exFAT FUSE driver
           stopped with SIGSTOP): how long until the process has exited (camdock aborts the
           stalled FUSE connection), against the unit's TimeoutStopSec (90 s)

Results go to stdout and into bench/RESULTS.md between the scale markers.

    sudo .venv/bin/python bench/scale_bench.py [--files 2000,20000]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from camdock.offload import ABORT_WAIT, STOP_WAIT  # noqa: E402
from offload_bench import write_results  # noqa: E402

CAMDOCK = [sys.executable, "-m", "camdock"]


def camera(root: Path, files: int) -> None:
    """A camera of ``files`` 64-byte recordings (names and sizes, not bytes, are the load)."""
    folder = root / "DCIM" / "100MEDIA"
    folder.mkdir(parents=True)
    for i in range(files):
        name = f"20261128_{8 + i // 3600:02d}{i // 60 % 60:02d}{i % 60:02d}_{i:05d}.MP4"
        (folder / name).write_bytes(os.urandom(64))


def offload_args(cam: Path, work: Path) -> list[str]:
    d1, d2 = work / "d1", work / "d2"
    d1.mkdir(exist_ok=True), d2.mkdir(exist_ok=True)
    return ["offload", str(cam), "--to", str(d1), "--to", str(d2), "--camera", "C",
            "--officer", "o", "--badge", "b", "--catalog", str(work / "c.db")]  # fmt: skip


def peak_rss(files: int) -> tuple[float, float]:
    """(peak RSS in MiB, seconds) of one offload of ``files`` files on tmpfs."""
    with tempfile.TemporaryDirectory(prefix="camdock-scale-") as tmp:
        work = Path(tmp)
        camera(work / "cam", files)
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t0 = time.monotonic()
        subprocess.run([*CAMDOCK, *offload_args(work / "cam", work)], check=True,
                       capture_output=True)  # fmt: skip
        seconds = time.monotonic() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        return max(after, before) / 1024, seconds


def stop_time() -> float | None:
    """Seconds from SIGTERM to exit of an offload whose camera reads hang (None: over 150 s)."""
    with tempfile.TemporaryDirectory(prefix="camdock-stall-") as tmp:
        work = Path(tmp)
        image, cam = work / "cam.img", work / "cam"
        with open(image, "wb") as f:
            f.truncate(128 << 20)
        subprocess.run(["mkfs.exfat", str(image)], check=True, capture_output=True)
        dev = subprocess.run(["losetup", "--find", "--show", str(image)], check=True,
                             capture_output=True, text=True).stdout.strip()  # fmt: skip
        cam.mkdir()
        # stdin from /dev/null: a FUSE daemon started from a shell's background job would
        # otherwise be stopped (SIGTTIN) and stall the camera before we mean it to.
        subprocess.run(["mount.exfat-fuse", dev, str(cam)], check=True, capture_output=True,
                       stdin=subprocess.DEVNULL)  # fmt: skip
        try:
            folder = cam / "DCIM"
            folder.mkdir()
            for i in range(8):
                (folder / f"20261128_0800{i:02d}_{i}.MP4").write_bytes(os.urandom(8 << 20))
            os.sync()
            Path("/proc/sys/vm/drop_caches").write_text("3\n")
            fuse = subprocess.run(["pgrep", "-f", f"mount.exfat-fuse .* {cam}"], check=True,
                                  capture_output=True, text=True).stdout.split()  # fmt: skip
            argv = [*CAMDOCK, *offload_args(cam, work), "--clear", "--allow-one-filesystem"]
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)  # fmt: skip
            deadline = time.monotonic() + 60
            while not any((work / "d1").rglob("*.mp4")):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the offload never filed a first recording")
                time.sleep(0.05)
            for pid in fuse:
                os.kill(int(pid), signal.SIGSTOP)
            time.sleep(1.0)
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=150)
                return time.monotonic() - t0
            except subprocess.TimeoutExpired:
                return None
            finally:
                for pid in fuse:
                    os.kill(int(pid), signal.SIGCONT)
                proc.wait()
        finally:
            subprocess.run(["umount", str(cam)], check=False)
            subprocess.run(["losetup", "-d", dev], check=False)


def main() -> None:
    """Measure, print, and write bench/RESULTS.md."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", default="2000,20000")
    args = p.parse_args()
    rows = []
    for n in (int(x) for x in args.files.split(",")):
        print(f"offloading {n} files ...", flush=True)
        rss, seconds = peak_rss(n)
        rows.append((n, rss, seconds))
    print("stalling a camera ...", flush=True)
    stop = stop_time()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Measured {when} on {platform.machine()}, {os.cpu_count()} cores, kernel "
        f"{platform.release()}, Python {platform.python_version()}.",
        "",
        "| files on the camera | peak RSS of `camdock offload` | wall |",
        "|---|---|---|",
        *(f"| {n:,} | {rss:.0f} MiB | {s:.1f} s |" for n, rss, s in rows),
        "",
        "SIGTERM while the camera's reads hang (exFAT FUSE driver stopped): "
        + (
            f"exited after **{stop:.1f} s** (camdock waits {STOP_WAIT:.0f} s for the reads, "
            f"then aborts the stalled FUSE connection and gives the engine {ABORT_WAIT:.0f} s "
            "more; the unit's TimeoutStopSec is 90 s)."
            if stop is not None
            else "**not exited after 150 s**: the process is held in the kernel by the stalled "
            "FUSE driver. Nothing is lost either way: the journal makes a SIGKILL safe."
        ),
    ]
    report = "\n".join(lines)
    print(report)
    write_results(report, "scale-bench", "Many files, stalled cameras")


if __name__ == "__main__":
    main()
