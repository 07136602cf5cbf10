"""The station server against the real engines (issue 31): a three-node RabbitMQ cluster on
loopback with the MQTT plugin, PostgreSQL, real and simulated stations publishing over MQTT.
One cluster and one PostgreSQL for the session (serverengines: the cluster takes most of a
minute to start on a busy machine), each test with its own queue and database; the test that
kills a node runs last."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import aiomqtt
import pytest

from camdock.server.config import ServerConfig
from camdock.server.engines import Postgres, RabbitCluster
from camdock.server.fleetsim import SimStation, shift_change
from conftest import camdock_cmd
from mqttbroker import V311OnlyFront
from serverengines import fresh_db, query, serving, until

pytest_plugins = ["serverfixtures"]  # the session's PostgreSQL and RabbitMQ cluster

pytestmark = pytest.mark.slow


@pytest.fixture
def cfg(pg: Postgres, cluster: RabbitCluster) -> ServerConfig:
    return ServerConfig(
        amqp=tuple(n.amqp_url for n in cluster.nodes if n.alive),
        dsn=fresh_db(pg),
        queue=f"camdock-server-{time.monotonic_ns()}",
        consumers=3,
        prefetch=200,
        batch=200,
        gap_grace_seconds=2,
    )


def hosts(cluster: RabbitCluster, first: int = 0) -> list[tuple[str, int]]:
    nodes = cluster.nodes[first:] + cluster.nodes[:first]
    return [("127.0.0.1", n.mqtt_port) for n in nodes]


def count(dsn: str, sql: str = "SELECT count(*) FROM events") -> int:
    return int(query(dsn, sql)[0][0])


async def test_a_real_station_s_events_reach_the_index(
    cfg: ServerConfig, cluster: RabbitCluster, tmp_path: Path
) -> None:
    """`camdock simulate` publishes its shift end to one node (MQTT 3.1.1: RabbitMQ 3.10
    refuses 5 and the station falls back); every event of its outbox is one row, checked
    against the contract, its recordings indexed and its status online."""
    # RabbitMQ 3.10 never answers an MQTT 5 CONNECT (the connection times out) and the
    # station falls back to 3.1.1 only on a refusal; in front of the node, a refusal.
    async with serving(cfg) as server, V311OnlyFront(cluster.nodes[0].mqtt_port) as front:
        state = tmp_path / "station"
        # A node's first persistent MQTT session takes seconds (its message store starts);
        # the simulated shift end is over in five, so open one first.
        async with aiomqtt.Client(
            "127.0.0.1",
            cluster.nodes[0].mqtt_port,
            clean_session=False,
            identifier="camdock-warmup",
            timeout=90,
            protocol=aiomqtt.ProtocolVersion.V311,
        ):
            pass
        proc = await asyncio.to_thread(
            subprocess.run,
            camdock_cmd(
                "simulate",
                "--no-ui",
                "--json",
                "--bays",
                "4",
                "--state-dir",
                str(state),
                "--broker",
                f"127.0.0.1:{front.port}",
            ),
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        delivered: set[str] = set()
        recorded: set[str] = set()
        for path in state.rglob("*"):
            if not path.is_file() or path.read_bytes()[:15] != b"SQLite format 3":
                continue
            with contextlib.closing(sqlite3.connect(path)) as db:
                tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
                if "outbox" in tables:
                    for event_id, at in db.execute("SELECT event_id, delivered_at FROM outbox"):
                        recorded.add(event_id)
                        if at is not None:
                            delivered.add(event_id)
        assert delivered, "the station delivered nothing"

        def indexed() -> set[str]:
            return {r[0] for r in query(cfg.dsn, "SELECT id::text FROM events")}

        # Every event the broker acknowledged is in the index, once; nothing else is.
        await until(lambda: delivered <= indexed(), 60, f"{len(delivered)} events indexed")
        assert indexed() <= recorded
        assert sum(server.stats.rejected.values()) == 0, server.stats.rejected
        assert count(cfg.dsn, "SELECT count(*) FROM recordings") > 0
        assert count(cfg.dsn, "SELECT count(*) FROM bay_states") == 4
        assert count(cfg.dsn, "SELECT count(*) FROM custody_heads") > 0


async def test_hostile_messages_are_counted_and_the_consumers_carry_on(
    cfg: ServerConfig, cluster: RabbitCluster
) -> None:
    st = SimStation("hostile-1", hosts(cluster, 1))
    st.connect()
    try:
        async with serving(cfg) as server:
            topic, good = st.event("custody-head", {})
            body = json.loads(good)
            st.raw(topic, json.dumps({**body, "station": "someone-else"}).encode())
            st.raw(topic, json.dumps({**body, "data": {"x": 1}}).encode())
            st.raw(topic, b"\x00" * 100_000)
            st.raw(topic, b"not json")
            st.raw("camdock/v1/hostile-1/events/drop-table", good)
            st.publish(topic, good)
            await asyncio.to_thread(st.drain, 30)
            await until(lambda: count(cfg.dsn) == 1, 30, "the good event")
            await until(lambda: sum(server.stats.rejected.values()) == 5, 30, "5 rejections")
            assert count(cfg.dsn, "SELECT count(*) FROM rejected") == 5
            reasons = {r for (r,) in query(cfg.dsn, "SELECT reason FROM rejected")}
            assert any("not its topic's" in r for r in reasons), reasons
            assert any(r.startswith("oversized") for r in reasons), reasons
            # 'someone-else' never became a station
            assert query(cfg.dsn, "SELECT id FROM stations") == [("hostile-1",)]
    finally:
        st.close()


def burst(
    stations: list[SimStation], bays: int, files: int, pace: float, stop: threading.Event
) -> threading.Thread:
    """Every station's shift change, published at ``pace`` s between rounds, on a thread."""

    def run() -> None:
        flows = [shift_change(st, bays, files) for st in stations]
        while flows and not stop.is_set():
            for st, flow in list(zip(stations, flows, strict=True)):
                step = next(flow, None)
                if step is None:
                    flows.remove(flow)
                    stations.remove(st)
                    continue
                st.publish(*step)
            time.sleep(pace)

    t = threading.Thread(target=run, name="burst", daemon=True)
    t.start()
    return t


def heal(stations: list[SimStation], stop: threading.Event) -> None:
    """What a station's publisher does by itself: move to the next host when its node is gone."""
    while not stop.is_set():
        for st in stations:
            st.heal()
        time.sleep(0.2)


async def test_restarting_the_server_mid_burst_loses_nothing(
    cfg: ServerConfig, cluster: RabbitCluster
) -> None:
    stations = [SimStation(f"restart-{i}", hosts(cluster, i)) for i in range(3)]
    for st in stations:
        st.connect()
    stop = threading.Event()
    try:
        async with serving(cfg):
            t = burst(list(stations), bays=6, files=4, pace=0.05, stop=stop)
            await until(lambda: count(cfg.dsn) > 30, 60, "the burst under way")
        assert t.is_alive(), "the burst ended before the server stopped"
        async with serving(cfg):
            await asyncio.to_thread(t.join, 120)
            for st in stations:
                await asyncio.to_thread(st.drain, 60)
            total = sum(st.seq for st in stations)
            await until(lambda: count(cfg.dsn) == total, 90, f"all {total} events")
            await asyncio.sleep(cfg.gap_grace_seconds + 1)  # the sweeper's turn
    finally:
        stop.set()
        for st in stations:
            st.close()
    assert count(cfg.dsn, "SELECT count(DISTINCT (station, seq)) FROM events") == total
    assert count(cfg.dsn, "SELECT count(*) FROM alarms WHERE cleared_at IS NULL") == 0


async def test_killing_the_node_a_station_uses_mid_burst_loses_and_duplicates_nothing(
    cfg: ServerConfig, cluster: RabbitCluster
) -> None:
    """SIGKILL the node the stations and a consumer are connected to, mid-burst: the stations
    move to the next host and resend what was not acknowledged; the quorum queue keeps every
    message (two of three nodes remain); the consumers on the dead node reconnect elsewhere.
    Every event is in the index exactly once, no gap, no alarm."""
    victim = cluster.nodes[0]
    stations = [SimStation(f"failover-{i}", hosts(cluster, 0)) for i in range(4)]
    for st in stations:
        st.connect()
    stop = threading.Event()
    try:
        async with serving(cfg) as server:
            t = burst(list(stations), bays=6, files=4, pace=0.05, stop=stop)
            await until(lambda: count(cfg.dsn) > 40, 60, "the burst under way")
            assert t.is_alive(), "the burst ended before the node was killed"
            await asyncio.to_thread(cluster.kill, victim)
            healer = threading.Thread(target=heal, args=(stations, stop), daemon=True)
            healer.start()
            await asyncio.to_thread(t.join, 180)
            assert not t.is_alive()
            for st in stations:
                await asyncio.to_thread(st.drain, 90)
            assert all(st.host != ("127.0.0.1", victim.mqtt_port) for st in stations)
            total = sum(st.seq for st in stations)
            await until(lambda: count(cfg.dsn) == total, 120, f"all {total} events")
            await asyncio.sleep(cfg.gap_grace_seconds + 1)  # the sweeper's turn
            assert server.stats.reconnects >= 1  # the consumer on the dead node moved
            redelivered = server.stats.duplicates
    finally:
        stop.set()
        for st in stations:
            st.close()
    assert count(cfg.dsn, "SELECT count(DISTINCT (station, seq)) FROM events") == total
    per_station = query(
        cfg.dsn,
        "SELECT id, events, first_seq, max_seq FROM stations"
        " WHERE id LIKE 'failover-%' ORDER BY id",
    )
    assert [(n, f, m) for _, n, f, m in per_station] == [(st.seq, 1, st.seq) for st in stations]
    assert count(cfg.dsn, "SELECT count(*) FROM alarms WHERE cleared_at IS NULL") == 0
    print(f"failover: {total} events, {redelivered} duplicates dropped by id")
