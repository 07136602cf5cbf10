"""`camdock run` speaks sd_notify: READY=1 once the bays are up, WATCHDOG=1 while healthy,
STOPPING=1 on SIGTERM, and exits 0 leaving everything resumable."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from conftest import camdock_cmd
from stationcfg import write_config


def test_ready_watchdog_stopping(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    sock_path = tmp_path / "notify.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(str(sock_path))
    srv.settimeout(10)
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "200000"}
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen(
        camdock_cmd("run", "--config", str(cfg)), env=env, stderr=subprocess.PIPE
    )
    got: list[str] = []
    try:
        end = time.monotonic() + 15
        while sum(m == "WATCHDOG=1" for m in got) < 2:
            assert time.monotonic() < end, got
            got.append(srv.recv(4096).decode())
        proc.send_signal(signal.SIGTERM)
        while "STOPPING=1" not in got:
            got.append(srv.recv(4096).decode())
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
        srv.close()
    assert proc.returncode == 0, err.decode()
    ready = next(m for m in got if m.startswith("READY=1"))
    assert "STATUS=2 bays: 2 empty" in ready
    assert got.index(ready) < got.index("WATCHDOG=1") < got.index("STOPPING=1")
