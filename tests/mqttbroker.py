"""A real mosquitto for the tests, on a free loopback port, and a paho subscriber."""

from __future__ import annotations

import asyncio
import contextlib
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
        # paho's network thread clears its own handle as it ends after the disconnect; between
        # loop_stop's check and its join that is an AttributeError (seen on a loaded machine).
        with contextlib.suppress(AttributeError):
            self.c.loop_stop()


def wait_for(pred: Any, timeout: float = 15, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class V311OnlyFront:
    """A TCP front to a real broker that behaves like a broker without MQTT 5 (mosquitto before
    1.6, many embedded brokers): a CONNECT with protocol level 5 gets the 3.1.1 answer
    "unacceptable protocol version" (CONNACK return code 1) and the connection is closed; a
    3.1.1 CONNECT is passed through to the real broker, and the rest of the session with it."""

    def __init__(self, upstream_port: int, hang_up: bool = False) -> None:
        self.upstream_port = upstream_port
        self.hang_up = hang_up  # close without any CONNACK, as RabbitMQ 3.10 does to MQTT 5
        self.levels: list[int] = []  # the protocol level of every CONNECT seen
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> V311OnlyFront:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            header = await reader.readexactly(1)
            assert header[0] >> 4 == 1, "the first packet must be CONNECT"
            length, multiplier = 0, 1
            while True:  # the remaining length: a variable byte integer
                byte = await reader.readexactly(1)
                header += byte
                length += (byte[0] & 0x7F) * multiplier
                multiplier *= 128
                if byte[0] < 0x80:
                    break
            body = await reader.readexactly(length)
            name_len = int.from_bytes(body[:2], "big")
            level = body[2 + name_len]
            self.levels.append(level)
            if level != 4 and self.hang_up:
                return
            if level != 4:
                writer.write(b"\x20\x02\x00\x01")  # CONNACK, 3.1.1: unacceptable protocol
                await writer.drain()
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            up_writer.write(header + body)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


class RabbitMQ:
    """Debian's rabbitmq-server (3.10 on bookworm) with its MQTT plugin, on loopback only: its
    own node name, data directory and ports, the Erlang distribution and epmd on 127.0.0.1, so
    it touches no system instance. Anonymous MQTT maps to guest, allowed from loopback."""

    SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")

    def __init__(self, workdir: Path) -> None:
        if not self.SERVER.exists():
            pytest.skip("rabbitmq-server not installed (make test as root installs it)")
        if os.geteuid() != 0:
            pytest.skip(
                "rabbitmq-server writes its Erlang cookie as the user it runs as: root here"
            )
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port, amqp, dist, epmd = (free_port() for _ in range(4))
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{amqp}\n"
            f"mqtt.listeners.tcp.1 = 127.0.0.1:{self.port}\n"
            "mqtt.allow_anonymous = true\nloopback_users.guest = true\n"
        )
        (self.dir / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        self.env = {
            **os.environ,
            "HOME": str(self.dir),  # the Erlang cookie
            "RABBITMQ_NODENAME": f"camdock{self.port}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_DIST_PORT": str(dist),
            "ERL_EPMD_PORT": str(epmd),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_LOGS": str(self.dir / "rabbit.log"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(self.dir / "pid"),
        }
        self.epmd_port = epmd
        self.proc: subprocess.Popen[bytes] | None = None
        self.epmd: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120) -> None:
        """Start it and wait for the MQTT listener (Erlang boots in 10-30 s on a busy VM)."""
        # Our own epmd in the foreground (the node would start one with -daemon, which outlives
        # the test): on loopback, on this test's port.
        self.epmd = subprocess.Popen(
            ["epmd", "-port", str(self.epmd_port), "-address", "127.0.0.1"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.proc = subprocess.Popen(
            [str(self.SERVER)], env=self.env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited: {self.log()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"rabbitmq-server did not listen in {timeout} s: {self.log()[-2000:]}")

    def stop(self) -> None:
        """Stop the node and the epmd it started (its own process group)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(10)
        if self.epmd is not None and self.epmd.poll() is None:
            self.epmd.terminate()
            self.epmd.wait(10)

    def log(self) -> str:
        path = self.dir / "rabbit.log"
        return path.read_text(errors="replace") if path.exists() else ""
