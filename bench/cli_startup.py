"""CPU time of a ``camdock`` start (issue 30: ≤ 0.3 s on the development machine; a Pi 4 is
~3x slower). Runs each command line N times in fresh processes and reports the median of the
children's user+system CPU (not wall time: the machine is shared)."""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys

RUNS = 9
LINES = [["--version"], ["check-config", "--help"], ["offload", "--help"], ["--help"]]


def cpu_of(argv: list[str]) -> float:
    """CPU seconds (user + system) of one run of ``camdock ARGV``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "camdock", *argv], capture_output=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    """Print one line per command line: median and max CPU seconds."""
    for argv in LINES:
        times = [cpu_of(argv) for _ in range(RUNS)]
        print(f"camdock {' '.join(argv):<22} median {statistics.median(times):.3f} s CPU, "
              f"max {max(times):.3f} s ({RUNS} runs)")  # fmt: skip


if __name__ == "__main__":
    main()
