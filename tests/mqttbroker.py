"""A real mosquitto for the tests, on a free loopback port, and a paho subscriber."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """mosquitto with persistence, so a subscriber's persistent session survives a restart."""

    def __init__(self, workdir: Path, extra: str = "", port: int | None = None) -> None:
        if shutil.which("mosquitto") is None:
            pytest.skip("mosquitto not installed (make test as root installs it)")
        self.port = port or free_port()
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "mosquitto.conf"
        # As root, mosquitto 2 drops to user "mosquitto" and then cannot write here.
        user = "user root\n" if os.geteuid() == 0 else ""
        listener = extra or f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
        # max_queued_messages: mosquitto keeps only 1,000 messages for an offline persistent
        # subscriber by default; a station server must raise it to ride out long outages.
        self.conf.write_text(
            f"{listener}persistence true\npersistence_location {self.dir}/\n"
            "max_queued_messages 100000\n"
            f"log_dest file {self.dir}/mosquitto.log\n{user}"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.1).close()
                return
            except OSError:
                time.sleep(0.025)
        raise RuntimeError(f"mosquitto did not start: {self.log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def log(self) -> str:
        path = self.dir / "mosquitto.log"
        return path.read_text() if path.exists() else ""


class Subscriber:
    """A station-server stand-in: persistent session (fixed id, clean session off), QoS 1."""

    def __init__(
        self,
        port: int,
        topic: str = "camdock/#",
        client_id: str = "test-server",
        tls: dict[str, Any] | None = None,
    ) -> None:
        self.got: list[tuple[str, bytes, bool]] = []
        self.c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        if tls:
            self.c.tls_set(**tls)
        self.c.on_connect = lambda c, ud, flags, rc, props: c.subscribe(topic, qos=1)
        self.c.on_message = lambda c, ud, msg: self.got.append(
            (msg.topic, bytes(msg.payload), bool(msg.retain))
        )
        self.c.reconnect_delay_set(0.1, 0.5)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(p) for t, p, _ in list(self.got) if "/events/" in t]

    def topics(self) -> list[str]:
        return [t for t, _, _ in list(self.got)]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def wait_for(pred: Any, timeout: float = 15, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
