"""MQTT as real brokers behave (issue 30): a clean stop leaves ``offline`` retained; the protocol
is configurable and a broker that hangs up on an MQTT 5 CONNECT gets 3.1.1; brokers are tried in
turn; a command's events reach the broker at once (the daemon is woken over its control socket);
and all of it against Debian's RabbitMQ (3.10, MQTT plugin) as well as mosquitto."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from camdock.catalog import open_catalog, write_txn
from camdock.catalog.db import Store
from camdock.catalog.outbox import record
from camdock.config import MqttSettings, load
from camdock.events import EventType, Topics
from camdock.sim.hotplug import fill_camera
from camdock.station.publisher import Publisher
from conftest import camdock_cmd, stop
from mqttbroker import Broker, RabbitMQ, Subscriber, V311OnlyFront, free_port, wait_for
from stationcfg import write_config

START = datetime(2026, 11, 28, 9, 0)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


def _statuses(sub: Subscriber) -> list[bytes]:
    return [p for t, p, _ in list(sub.got) if t.endswith("/status")]


def _record(catalog: Path, topics: Topics, n: int) -> None:
    db = open_catalog(catalog)
    for i in range(n):
        with write_txn(db):
            record(db, topics, EventType.BAY_FAULT, bay=1, data={"message": f"fault {i}"})
    db.close()


async def _publish_then_stop(
    settings: MqttSettings, catalog: Path, topics: Topics, n: int
) -> Publisher:
    """A publisher on the outbox until ``n`` events are delivered (20 s at most), then a clean
    stop (cancelled, as the daemon's SIGTERM does)."""
    store = Store(catalog)
    pub = Publisher(settings, topics, store)
    task = asyncio.create_task(pub.run(), name="mqtt")
    try:
        end = time.monotonic() + 20
        while pub.delivered < n and time.monotonic() < end and not task.done():
            await asyncio.sleep(0.05)
    finally:
        await stop(task)
        store.close()
    return pub


def _daemon(cfg: Path, tmp_path: Path) -> tuple[subprocess.Popen[bytes], socket.socket]:
    """The real daemon, returned once it has told systemd READY=1."""
    sock_path = tmp_path / "notify.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(str(sock_path))
    srv.settimeout(20)
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path)}
    proc = subprocess.Popen(camdock_cmd("run", "--config", str(cfg)), env=env,
                            stderr=subprocess.PIPE)  # fmt: skip
    while not srv.recv(4096).startswith(b"READY=1"):
        pass
    return proc, srv


def test_a_clean_stop_leaves_offline_retained(tmp_path: Path, broker: Broker) -> None:
    """SIGTERM: a DISCONNECT discards the Last Will, so the station itself says ``offline``
    (retained) first; a server subscribing later sees the station offline, not online."""
    cfg = write_config(tmp_path, f'\n[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n')
    sub = Subscriber(broker.port, topic="camdock/v1/test-01/#", client_id="watcher")
    proc, srv = _daemon(cfg, tmp_path)
    try:
        wait_for(lambda: _statuses(sub)[-1:] == [b"online"], what="online")
        wait_for(lambda: any("/bays/2/state" in t for t in sub.topics()), what="bay states")
        wait_for(lambda: any(e["type"] == "custody-head" for e in sub.events()), what="started")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()
        wait_for(lambda: _statuses(sub)[-1:] == [b"offline"], what="offline on a clean stop")
    finally:
        if proc.poll() is None:
            proc.kill()
        srv.close()
        sub.close()
    assert "published offline status" in err.decode()
    late = Subscriber(broker.port, topic="camdock/v1/test-01/status", client_id="late")
    try:
        wait_for(lambda: late.got, what="the retained status")
        assert late.got[-1][1:] == (b"offline", True)
    finally:
        late.close()


async def test_configured_3_1_1_never_tries_5(tmp_path: Path, broker: Broker) -> None:
    catalog, topics = tmp_path / "c.sqlite", Topics("camdock", "old-1")
    _record(catalog, topics, 2)
    async with V311OnlyFront(broker.port) as front:
        settings = MqttSettings(host="127.0.0.1", port=front.port, protocol="3.1.1")
        pub = await _publish_then_stop(settings, catalog, topics, 2)
    assert pub.delivered >= 2 and set(front.levels) == {4}, front.levels


async def test_a_broker_that_hangs_up_on_mqtt_5_gets_3_1_1_at_once(
    tmp_path: Path, broker: Broker, caplog: Any
) -> None:
    """RabbitMQ 3.10 closes the socket on an MQTT 5 CONNECT, without a CONNACK; aiomqtt only
    timed out (15 s) and the publisher retried 5 forever. Now: 3.1.1 on the next attempt."""
    catalog, topics = tmp_path / "c.sqlite", Topics("camdock", "old-2")
    _record(catalog, topics, 3)
    began = time.monotonic()
    async with V311OnlyFront(broker.port, hang_up=True) as front:
        settings = MqttSettings(host="127.0.0.1", port=front.port)
        with caplog.at_level(logging.WARNING, logger="camdock.station.publisher"):
            pub = await _publish_then_stop(settings, catalog, topics, 3)
    assert pub.delivered >= 3 and front.levels[:2] == [5, 4], front.levels
    assert time.monotonic() - began < 10  # not a 15 s CONNECT timeout
    assert "closed the connection without a CONNACK" in caplog.text and "using 3.1.1" in caplog.text


async def test_brokers_are_tried_in_turn(tmp_path: Path, broker: Broker, caplog: Any) -> None:
    """``hosts``: the first broker is down, the second takes the events."""
    cfg = load(write_config(tmp_path, f'\n[mqtt]\nhosts = ["127.0.0.1:{free_port()}", '
                                      f'"127.0.0.1:{broker.port}"]\n'))  # fmt: skip
    assert cfg.mqtt is not None and len(cfg.mqtt.brokers()) == 2
    catalog, topics = tmp_path / "c.sqlite", Topics("camdock", "pair-1")
    _record(catalog, topics, 2)
    sub = Subscriber(broker.port, topic="camdock/v1/pair-1/#")
    try:
        with caplog.at_level(logging.INFO, logger="camdock.station.publisher"):
            pub = await _publish_then_stop(cfg.mqtt, catalog, topics, 2)
        assert pub.delivered >= 2
        await asyncio.to_thread(wait_for, lambda: len(sub.events()) >= 2, what="events")
    finally:
        sub.close()
    assert f"connected to MQTT broker 127.0.0.1:{broker.port}" in caplog.text


def test_mqtt_config_host_or_hosts(tmp_path: Path) -> None:
    res = subprocess.run(camdock_cmd("check-config", str(write_config(
        tmp_path, '\n[mqtt]\nhost = "a"\nhosts = ["b", "c:x"]\nprotocol = "4"\n'))),
        capture_output=True, text=True, check=False)  # fmt: skip
    assert res.returncode == 78
    for problem in ("mqtt: give host or hosts, not both", "mqtt.hosts[1]: not HOST or HOST:PORT",
                    'mqtt.protocol: "5" or "3.1.1"'):  # fmt: skip
        assert problem in res.stderr, res.stderr
    cfg = load(write_config(tmp_path, '\n[mqtt]\nhost = "a"\nport = 1884\n'))
    assert cfg.mqtt is not None and cfg.mqtt.brokers() == (("a", 1884),)


def test_a_command_s_events_reach_the_broker_at_once(tmp_path: Path, broker: Broker) -> None:
    """A manual offload into the station's catalog wakes the running daemon (``wake`` on its
    control socket), so its events go out now, not at the publisher's next poll (30 s)."""
    cfg = write_config(tmp_path, f'\n[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n')
    sub = Subscriber(broker.port, topic="camdock/v1/test-01/events/#", client_id="server")
    proc, srv = _daemon(cfg, tmp_path)
    try:
        wait_for(lambda: (tmp_path / "run" / "control.sock").exists(), what="control socket")
        time.sleep(1.0)  # the publisher has drained what start-up recorded and sleeps
        cam = tmp_path / "cam"
        fill_camera(cam, files=1, size=1000, seed=5, start=START)
        done = subprocess.run(
            camdock_cmd("offload", str(cam), "--config", str(cfg), "--camera", "CAM0001"),
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        ended = time.monotonic()
        wait_for(lambda: any(e["type"] == "offload-completed" for e in sub.events()),
                 what="the offload's events")  # fmt: skip
        assert time.monotonic() - ended < 5, "delivered by the poll, not by the wake"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        srv.close()
        sub.close()


@pytest.mark.slow
async def test_rabbitmq_3_10_with_its_mqtt_plugin(tmp_path: Path) -> None:
    """Debian 12's RabbitMQ: MQTT 5 is answered by a hang-up, so the publisher falls back to
    3.1.1, delivers every event in order, and a clean stop leaves ``offline`` retained there."""
    rabbit = RabbitMQ(tmp_path / "rabbit")
    await asyncio.to_thread(rabbit.start)
    try:
        catalog, topics = tmp_path / "c.sqlite", Topics("camdock", "rmq-1")
        _record(catalog, topics, 5)
        sub = Subscriber(rabbit.port, topic="camdock/v1/rmq-1/#", client_id="server")
        try:
            settings = MqttSettings(host="127.0.0.1", port=rabbit.port)
            pub = await _publish_then_stop(settings, catalog, topics, 5)
            assert pub.delivered >= 5
            await asyncio.to_thread(wait_for, lambda: len(sub.events()) >= 5, what="events")
            assert [e["data"]["message"] for e in sub.events()] == [f"fault {i}" for i in range(5)]
            await asyncio.to_thread(wait_for, lambda: _statuses(sub)[-1:] == [b"offline"],
                                    what="offline")  # fmt: skip
        finally:
            sub.close()
        late = Subscriber(rabbit.port, topic="camdock/v1/rmq-1/status", client_id="late")
        try:
            await asyncio.to_thread(wait_for, lambda: late.got, what="retained status")
            assert late.got[-1][1] == b"offline"
        finally:
            late.close()
    finally:
        await asyncio.to_thread(rabbit.stop)
