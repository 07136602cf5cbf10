#!/usr/bin/env python3
"""The console under a year's catalog (issue 17): 200,000 recordings, a real `camdock web`
process asking the daemon's side of the control socket (served here, as `camdock run` does),
a logged-in custodian. Targets: the catalog search and a recording's page answer in
under 300 ms; the web process stays under 80 MB RSS. Results go into bench/RESULTS.md.

    .venv/bin/python bench/web_bench.py [--recordings 200000]
"""

from __future__ import annotations

import argparse
import http.cookiejar
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import UTC, date, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from camdock import passwords  # noqa: E402
from camdock.adapters.control import Server  # noqa: E402
from camdock.config import load  # noqa: E402
from camdock.station.control import SOCKET, Control  # noqa: E402
from offload_bench import machine, write_results  # noqa: E402
from retention_bench import build  # noqa: E402

PASSWORD = "a benchmark console password"  # noqa: S105 - the benchmark's own
CONFIG = """
[station]
id = "bench-01"
unit = "Bench Precinct"
timezone = "Asia/Taipei"
state_dir = "{root}/state"
run_dir = "{root}/run"

[destinations]
require_mounts = false
footage = "{root}/footage"
backup = "{root}/backup"

[gpio]
pin_factory = "mock"

[[bays]]
number = 1
usb_port = "1-1"
led = {{ red = 4, amber = 5, green = 6 }}
button = 7

[[staff]]
id = "C1"
name = "Custodian"
roles = ["custodian"]
password_hash = "{hashed}"
"""


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    """Build the catalog, start the console, log in, time the pages."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recordings", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="camdock-web-") as tmp:
        root = Path(tmp)
        for d in ("state", "run", "footage", "backup"):
            (root / d).mkdir()
        build(root / "state" / "catalog.sqlite", args.recordings, date(2027, 1, 15))
        cfg = root / "camdock.toml"
        cfg.write_text(CONFIG.format(root=root, hashed=passwords.hash_password(PASSWORD)))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        station = load(cfg)
        server = Server(station.run_dir / SOCKET, Control(station).handle,
                        frozenset({os.geteuid()}))  # fmt: skip
        server.start()
        proc = subprocess.Popen([sys.executable, "-m", "camdock", "web", "--config", str(cfg),
                                 "--listen", f"127.0.0.1:{port}"])  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            jar = http.cookiejar.CookieJar()
            web = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
            deadline = time.monotonic() + 20
            while True:
                try:
                    page = web.open(f"{base}/login").read().decode()
                    break
                except OSError:
                    assert time.monotonic() < deadline
                    time.sleep(0.2)
            match = re.search(r'name="csrf" value="([^"]+)"', page)
            assert match is not None
            form = urllib.parse.urlencode({"csrf": match[1], "staff": "C1",
                                           "password": PASSWORD}).encode()  # fmt: skip
            web.open(f"{base}/login", form).read()

            def timed(path: str) -> float:
                times = []
                for _ in range(args.runs):
                    t = time.perf_counter()
                    body = web.open(base + path).read()
                    times.append(time.perf_counter() - t)
                    assert b"<html" in body
                return statistics.median(times)

            search = timed("/catalog?officer=A00003")
            by_day = timed("/catalog?day=2026-06-01")
            one = timed(f"/recordings/{args.recordings // 2}")
            rss = rss_mib(proc.pid)
        finally:
            proc.terminate()
            proc.wait(10)
            server.close()
    ok = max(search, by_day, one) < 0.3 and rss < 80
    report = (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}.\n"
        f"A catalog of {args.recordings:,} recordings; a real `camdock web` asking the daemon's "
        f"control socket, a logged-in custodian; medians of {args.runs} requests.\n\n"
        "| page | answer |\n|---|---|\n"
        f"| catalog search by officer (500 newest of ~12,500) | {search * 1000:.0f} ms |\n"
        f"| catalog for one duty day (~550) | {by_day * 1000:.0f} ms |\n"
        f"| one recording (copies, seal, custody history) | {one * 1000:.0f} ms |\n"
        f"| the web process's RSS afterwards | {rss:.0f} MiB |\n\n"
        f"Targets: under 300 ms each, under 80 MB RSS → {'met' if ok else 'NOT met'}."
    )
    print(report)
    write_results(report, "web-bench", "The console under a year's catalog")


if __name__ == "__main__":
    main()
