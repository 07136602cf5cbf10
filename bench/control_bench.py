#!/usr/bin/env python3
"""The offload while the control socket is under load (issue 26): one process, as in
`camdock run` — the verified offload of a camera and the daemon's side of the control socket
(real catalog, real `Control`) — with and without 300 clients asking at once, round after round,
for the whole offload. Reported: the offload's MB/s idle and under load (median of --repeat
runs each, page cache dropped before each when root), their ratio (target ≥ 0.95), and how many
requests were answered during the loaded runs (all of them must be). Twice: with the camera
read at the USB bus's pace (--bus MB/s, the copier's own pacing, as on a station where the bus
and not the CPU bounds the offload) and unthrottled (the CPU the only bound). The socket's
selector thread runs at nice 10 (--priority nice, the daemon's) or SCHED_IDLE (--priority idle).
The machine's load average is printed with the results: other work on it counts against both.
Results go into bench/RESULTS.md.

    .venv/bin/python bench/control_bench.py [--mib 256] [--clients 300] [--repeat 3] [--bus 35]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from camdock import passwords  # noqa: E402
from camdock.adapters import control  # noqa: E402
from camdock.adapters.control import Server  # noqa: E402
from camdock.config import load  # noqa: E402
from camdock.core.naming import DutySlots  # noqa: E402
from camdock.offload import OffloadEngine, OffloadRequest  # noqa: E402
from camdock.station.control import SLOW_OPS, SOCKET, Control  # noqa: E402
from offload_bench import drop_caches, machine, write_results  # noqa: E402
from web_bench import CONFIG  # noqa: E402 - the same bench station


def camera(root: Path, mib: int, files: int) -> None:
    """A camera volume of ``mib`` MiB of random footage in ``files`` files."""
    folder = root / "DCIM" / "100MEDIA"
    folder.mkdir(parents=True)
    per = (mib << 20) // files
    for n in range(files):
        with open(folder / f"20261128_{8 + n:02d}0000_{n:04d}.MP4", "wb") as out:
            left = per
            while left:
                block = os.urandom(min(left, 8 << 20))
                out.write(block)
                left -= len(block)


def offload_once(work: Path, cam: Path, read_bps: int | None = None) -> float:
    """One verified offload to two destinations (the camera is kept): seconds."""
    d1, d2, state = work / "footage", work / "backup", work / "offload-state"
    for d in (d1, d2, state):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    if os.geteuid() == 0:
        drop_caches()
    req = OffloadRequest(
        source=cam, destinations=(d1, d2), camera_id="BENCH", officer_name="bench",
        officer_badge="0", unit="Bench", catalog=state / "catalog.sqlite",
        slots=DutySlots.every(240), tz=ZoneInfo("Asia/Taipei"), clear=False,
        allow_one_filesystem=True, read_bps=read_bps,
    )  # fmt: skip
    start = time.monotonic()
    report = OffloadEngine(req).run()
    took = time.monotonic() - start
    assert report.status == "completed", report
    return took


# The console's side, in a process of its own as in a station (the clients' threads must not
# share the daemon's interpreter): rounds of N requests at once until its stdin closes.
HAMMER = """
import sys, threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from camdock.adapters.control import call
path, clients = Path(sys.argv[1]), int(sys.argv[2])
stop, answered = threading.Event(), 0
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
request = {"op": "catalog.search", "token": None, "args": {}}
with ThreadPoolExecutor(clients) as pool:
    while not stop.is_set():
        ask = lambda _: call(path, request, timeout=120)[0]["status"]  # noqa: E731
        got = list(pool.map(ask, range(clients)))
        assert got == [401] * clients, set(got)
        answered += clients
print(answered)
"""


def hammer(path: Path, clients: int) -> subprocess.Popen[str]:
    """Start the clients' process; close its stdin to stop it (it prints what was answered)."""
    return subprocess.Popen([sys.executable, "-c", HAMMER, str(path), str(clients)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip


def rounds(work: Path, cam: Path, path: Path, args: argparse.Namespace,
           read_bps: int | None) -> tuple[float, float, int]:  # fmt: skip
    """Median seconds idle and under load (alternating, so drifting load hits both), and the
    requests answered meanwhile."""
    idle, loaded, answered = [], [], 0
    for _ in range(args.repeat):
        idle.append(offload_once(work, cam, read_bps))
        clients = hammer(path, args.clients)
        time.sleep(1.0)  # the load is on before the offload starts
        try:
            loaded.append(offload_once(work, cam, read_bps))
        finally:
            out, _ = clients.communicate("", timeout=300)
        if clients.returncode != 0:
            raise SystemExit("a control client was not answered (see above)")
        answered += int(out)
    return statistics.median(idle), statistics.median(loaded), answered


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--mib", type=int, default=256, help="camera data per offload (MiB)")
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--clients", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--bus", type=float, default=35.0, help="the bus's pace, MB/s (0: only "
                    "unthrottled)")  # fmt: skip
    ap.add_argument("--priority", choices=["idle", "nice"], default="nice",
                    help="the selector thread's: nice 10 (the daemon's) or SCHED_IDLE")  # fmt: skip
    ap.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    args = ap.parse_args()
    control.IDLE_CLASS = args.priority == "idle"
    work = Path(tempfile.mkdtemp(prefix="camdock-control-bench-", dir="/var/tmp"))
    modes = [(f"at the bus's pace, {args.bus:g} MB/s", int(args.bus * 1e6))] if args.bus else []
    modes.append(("unthrottled", None))
    results = []
    load_before = os.getloadavg()
    try:
        cam = work / "cam"
        camera(cam, args.mib, args.files)
        for k in ("state", "run", "footage", "backup"):
            (work / k).mkdir()
        (work / "camdock.toml").write_text(
            CONFIG.format(root=work, hashed=passwords.hash_password("unused"))
        )
        cfg = load(work / "camdock.toml")
        server = Server(cfg.run_dir / SOCKET, Control(cfg).handle, frozenset({os.geteuid()}),
                        slow=SLOW_OPS)  # fmt: skip
        server.start()
        try:
            for label, bps in modes:
                results.append((label, *rounds(work, cam, server.path, args, bps)))
        finally:
            server.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()
    mb = (args.mib << 20) / 1e6
    priority = "SCHED_IDLE" if args.priority == "idle" else "nice 10"
    lines = [
        f"{machine()}; {args.mib} MiB in {args.files} files to two destinations on one disk, "
        f"in the process that serves the control socket (its selector thread at {priority}); "
        f"{args.clients} control clients at once, round after round, in a process of their own; "
        f"medians of {args.repeat} runs. Load average (1 min) {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after: other work on the machine ran meanwhile.",
        "",
        "| camera read | idle s | idle MB/s | loaded s | loaded MB/s | loaded / idle | answered |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, idle_s, loaded_s, answered in results:
        ratio = idle_s / loaded_s
        lines.append(f"| {label} | {idle_s:.2f} | {mb / idle_s:.0f} | {loaded_s:.2f} | "
                     f"{mb / loaded_s:.0f} | **{ratio:.2f}** | {answered:,} |")  # fmt: skip
    lines += ["", "Target: loaded / idle ≥ 0.95; every request answered, none refused."]
    report = "\n".join(lines)
    print(report)
    if not args.no_write:
        write_results(report, "control-bench", "The offload with the control socket under load")


if __name__ == "__main__":
    main()
