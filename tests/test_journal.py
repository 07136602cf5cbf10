"""Logging to journald (issue 30): under systemd every line carries its syslog priority (``<N>``)
and no timestamp of its own; on a terminal, lines keep their time. The daemon is run for real
with ``$JOURNAL_STREAM`` naming its stderr, as systemd sets it."""

from __future__ import annotations

import io
import logging
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

from camdock.adapters import logs
from conftest import camdock_cmd
from mqttbroker import free_port
from stationcfg import write_config

STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def _run_daemon(tmp_path: Path, journal: bool) -> list[str]:
    """The daemon's stderr lines from start to a clean stop, with a broker that is not there
    (so it warns); with ``journal``, $JOURNAL_STREAM names that stderr file."""
    closed = free_port()  # nothing listens: each connection attempt is a WARNING
    cfg = write_config(tmp_path, f'\n[mqtt]\nhost = "127.0.0.1"\nport = {closed}\n')
    err_path = tmp_path / "stderr.log"
    sock_path = tmp_path / "notify.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(str(sock_path))
    srv.settimeout(15)
    with err_path.open("wb") as err:
        st = os.fstat(err.fileno())
        env = {**os.environ, "NOTIFY_SOCKET": str(sock_path)}
        env.pop("JOURNAL_STREAM", None)
        if journal:
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        proc = subprocess.Popen(camdock_cmd("run", "--config", str(cfg)), env=env, stderr=err)
        try:
            while not srv.recv(4096).startswith(b"READY=1"):
                pass
            end = time.monotonic() + 15  # the first retry comes after 0.25-0.75 s
            while err_path.read_text().count("MQTT broker") < 2 and time.monotonic() < end:
                time.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0, err_path.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
            srv.close()
    return [line for line in err_path.read_text().splitlines() if line]


def test_under_systemd_every_line_has_its_priority_and_no_timestamp(tmp_path: Path) -> None:
    lines = _run_daemon(tmp_path, journal=True)
    assert lines
    bad = [line for line in lines if not re.match(r"<[0-7]>", line) or STAMP.search(line)]
    assert not bad, lines
    # journalctl -p warning finds the broker's refusal; INFO stays informational.
    assert any(line.startswith("<4>camdock.station.publisher: MQTT broker") for line in lines)
    assert any(line.startswith("<6>camdock: stopped") for line in lines), lines


def test_on_a_terminal_lines_keep_their_time(tmp_path: Path) -> None:
    """$JOURNAL_STREAM inherited from a unit by a shell whose stderr is elsewhere: not the
    journal, so the lines keep their timestamps and have no prefix."""
    lines = _run_daemon(tmp_path, journal=False)
    assert all(STAMP.match(line) for line in lines if not line.startswith(" ")), lines
    assert any(" WARNING camdock.station.publisher: MQTT broker" in line for line in lines)


def test_a_traceback_is_prefixed_on_every_line() -> None:
    """journald reads the stream line by line: an unprefixed traceback line would be INFO."""
    formatter = logs.JournalFormatter()
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("camdock.x").makeRecord(
            "camdock.x", logging.ERROR, __file__, 1, "failed", (), __import__("sys").exc_info()
        )
    lines = formatter.format(record).splitlines()
    assert len(lines) > 3 and all(line.startswith("<3>") for line in lines)
    assert lines[0] == "<3>camdock.x: failed" and lines[-1] == "<3>ValueError: boom"


def test_a_stream_is_the_journal_only_when_device_and_inode_match(tmp_path: Path) -> None:
    with (tmp_path / "f").open("w") as f, (tmp_path / "g").open("w") as g:
        st = os.fstat(f.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert logs.stream_is_journal(f, env)
        assert not logs.stream_is_journal(g, env)
        assert not logs.stream_is_journal(f, {"JOURNAL_STREAM": "garbage"})
        assert not logs.stream_is_journal(f, {})
    assert not logs.stream_is_journal(io.StringIO(), env)


def test_third_party_info_is_off() -> None:
    """WeasyPrint and fontTools say INFO on every PDF; only their warnings are kept."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, {n: logging.getLogger(n).level for n in logs.QUIET})
    logs.setup(stream=io.StringIO())
    try:
        for name in ("weasyprint", "fontTools.subset", "fontTools.ttLib"):
            assert not logging.getLogger(name).isEnabledFor(logging.INFO)
            assert logging.getLogger(name).isEnabledFor(logging.WARNING)
        assert logging.getLogger("camdock.x").isEnabledFor(logging.INFO)
    finally:  # the rest of this pytest process logs as before (pytest's own handlers too)
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)
