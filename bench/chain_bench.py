#!/usr/bin/env python3
"""The audit's chain check at a year's catalog (issue 29): ``services/audit.chain`` on the
catalog `bench/console_bench.py` generates (200,000 recordings, ~400,000 custody entries), in
a process of its own under ``/usr/bin/time -v``: wall time and peak RSS. The catalog is built
once into ``--catalog`` and reused (building takes minutes).

    .venv/bin/python bench/chain_bench.py [--recordings 200000] [--catalog PATH] [--runs 1]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

CHECK = """
import sys, time
from camdock.catalog import open_readonly
from camdock.services import audit
db = open_readonly(sys.argv[1])
t = time.perf_counter()
problems = audit.chain(db, [])
print(f"{time.perf_counter() - t:.2f} {len(problems)}")
print(audit.__file__, file=sys.stderr)
for p in problems[:5]:
    print(p, file=sys.stderr)
"""


def measure(catalog: Path, source: Path | None) -> tuple[float, float, int]:
    """(seconds, peak RSS MiB, problems) of one chain check in a fresh process (``source``:
    another tree's ``daemon/`` to import camdock from, e.g. main's, for the figure before)."""
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = str(source)
    out = subprocess.run(
        ["/usr/bin/time", "-v", sys.executable, "-c", CHECK, str(catalog)],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    seconds, problems = out.stdout.split()
    print(out.stderr.splitlines()[0])
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr)
    assert peak is not None, out.stderr
    return float(seconds), int(peak.group(1)) / 1024, int(problems)


def main() -> None:
    """Build the catalog if it is not there yet, then time the chain check."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recordings", type=int, default=200_000)
    ap.add_argument("--catalog", type=Path, default=Path("/tmp/camdock-chain-bench.sqlite"))
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--source", type=Path, default=None, help="a daemon/ to import camdock from")
    args = ap.parse_args()
    if not args.catalog.exists():
        from console_bench import TZ, build

        t = time.monotonic()
        partial = args.catalog.with_name(args.catalog.name + ".part")
        partial.unlink(missing_ok=True)
        entries = build(partial, args.recordings, datetime.now(TZ).date())
        partial.rename(args.catalog)
        print(f"built {args.recordings:,} recordings, {entries:,} entries "
              f"in {time.monotonic() - t:.0f} s")  # fmt: skip
    for _ in range(args.runs):
        seconds, peak, problems = measure(args.catalog, args.source)
        print(f"audit.chain: {seconds:.1f} s, peak RSS {peak:.0f} MiB, {problems} problems")


if __name__ == "__main__":
    main()
