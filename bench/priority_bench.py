#!/usr/bin/env python3
"""Why the control socket's selector thread runs at nice 10 and not SCHED_IDLE (adapters/
control.py): a thread that holds Python's GIL when the kernel preempts it keeps every other
thread of the process waiting until it runs again. A SCHED_IDLE thread runs again only when no
normal thread wants the CPU, so with the machine busy the daemon's asyncio loop would wait
with it. Measured here: a thread at either priority doing Python work between short waits (as
the selector does), beside it the main thread timing 10 ms sleeps, with one CPU-bound process
per core at normal priority. Reported: how late the main thread woke (p50, p99, worst) per
priority; in the same run, the same with no busy processes.

    .venv/bin/python bench/priority_bench.py [--seconds 15]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

BURN = "while True: pass"
CHILD = """
import os, sys, threading, time
idle, seconds = sys.argv[1] == "idle", float(sys.argv[2])
def busy() -> None:
    tid = threading.get_native_id()
    if idle:
        os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
    else:
        os.setpriority(os.PRIO_PROCESS, tid, 10)
    while True:
        sum(range(20000))
        time.sleep(0.001)
threading.Thread(target=busy, daemon=True).start()
late, end = [], time.monotonic() + seconds
while time.monotonic() < end:
    t = time.monotonic()
    time.sleep(0.01)
    late.append(time.monotonic() - t - 0.01)
late.sort()
print(late[len(late) // 2] * 1e3, late[int(len(late) * 0.99)] * 1e3, late[-1] * 1e3)
"""


def measure(priority: str, seconds: float) -> tuple[float, float, float]:
    """The main thread's lateness (ms: p50, p99, worst) beside a busy thread at ``priority``."""
    out = subprocess.run([sys.executable, "-c", CHILD, priority, str(seconds)],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    p50, p99, worst = (float(x) for x in out.split())
    return p50, p99, worst


def main() -> None:
    """Both priorities, without and with a busy process per core; one table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=15.0)
    args = ap.parse_args()
    print("| busy processes | selector's priority | p50 ms | p99 ms | worst ms |")
    print("|---|---|---|---|---|")
    for hogs in (0, os.cpu_count() or 2):
        burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(hogs)]
        try:
            for priority in ("idle", "nice"):
                p50, p99, worst = measure(priority, args.seconds)
                name = "SCHED_IDLE" if priority == "idle" else "nice 10"
                print(f"| {hogs} | {name} | {p50:.1f} | {p99:.1f} | {worst:.1f} |", flush=True)
        finally:
            for b in burners:
                b.kill()
                b.wait()


if __name__ == "__main__":
    main()
