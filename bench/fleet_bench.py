"""The station server under a fleet's shift change (issue 31): N simulated stations, each with
``--bays`` cameras docking at once, publish over MQTT to a three-node RabbitMQ cluster on this
machine; one ``camdock server run`` (its own process) writes them into PostgreSQL (fsync on).

Reports events/s ingested (first to last committed row), p50/p99 from publish to committed
row, and the broker's and PostgreSQL's memory (PSS) at the end, for each fleet size. Not a
timed test: the machine is shared, so figures vary with what else runs (bench/RESULTS.md).

    .venv/bin/python bench/fleet_bench.py --stations 50,200 --rate 2500
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from camdock.server.engines import Postgres, RabbitCluster, missing
from camdock.server.fleetsim import SimStation, shift_change


def pss_kib(pids: list[int]) -> int:
    """Proportional set size of these processes (shared pages counted once overall)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def session_pids(sid: int) -> list[int]:
    """Every process in session ``sid`` (a RabbitMQ node and its helpers)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[3]) == sid:
                    pids.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return pids


def children(ppid: int) -> list[int]:
    """``ppid`` and its direct children (the postmaster and its backends)."""
    pids = [ppid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == ppid:
                    pids.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return pids


def cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds these processes (all their threads) have used so far."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, ValueError, IndexError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    """The machine's 1-minute load average (other engineers share it)."""
    return f"{os.getloadavg()[0]:.1f}"


def say(text: str) -> None:
    """Progress on stderr."""
    print(f"{time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


class LiteStation(asyncio.Protocol):
    """A simulated station's MQTT 3.1.1 connection reduced to what the benchmark needs: CONNECT,
    PUBLISH at QoS 1 and the PUBACKs, on the benchmark's one event loop. paho's thread per
    station (fleetsim.SimStation, which the failover tests use for its outbox and host list)
    took the shared cores from the broker and the server it measures: bench/RESULTS.md."""

    def __init__(self, station: str) -> None:
        self.station = station
        self.unacked: set[int] = set()
        self.connected = asyncio.get_running_loop().create_future()
        self.done = asyncio.Event()
        self.done.set()
        self.transport: asyncio.Transport | None = None
        self._buf = b""
        self._next = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        client = f"camdock-{self.station}".encode()
        body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(client).to_bytes(2, "big") + client
        transport.write(b"\x10" + _varint(len(body)) + body)

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data
        while len(buf) >= 2:  # CONNACK and PUBACK: two bytes of header, two of body
            kind, size = buf[0], buf[1]
            if len(buf) < 2 + size:
                break
            if kind == 0x20 and not self.connected.done():
                self.connected.set_result(buf[3] == 0)
            elif kind == 0x40:
                self.unacked.discard(int.from_bytes(buf[2:4], "big"))
                if not self.unacked:
                    self.done.set()
            buf = buf[2 + size :]
        self._buf = buf

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.connected.done():
            self.connected.set_exception(exc or ConnectionError(f"{self.station}: closed"))

    def publish(self, topic: str, payload: bytes) -> None:
        """One PUBLISH at QoS 1."""
        assert self.transport is not None
        self._next = self._next % 65535 + 1
        self.unacked.add(self._next)
        self.done.clear()
        name = topic.encode()
        body = len(name).to_bytes(2, "big") + name + self._next.to_bytes(2, "big") + payload
        self.transport.write(b"\x32" + _varint(len(body)) + body)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


async def publish_fleet(
    stations: list[SimStation],
    queue: list[tuple[int, tuple[str, bytes]]],
    ids: list[str],
    rate: float,
) -> tuple[dict[str, float], float]:
    """Connect every station, publish ``queue`` at ``rate`` events/s, wait for every PUBACK;
    each event id's publish time, and the rate achieved."""
    loop = asyncio.get_running_loop()
    conns: list[LiteStation] = []
    for st in stations:
        host, port = st.hosts[0]
        _, conn = await loop.create_connection(
            functools.partial(LiteStation, st.station), host, port
        )
        if not await asyncio.wait_for(conn.connected, 30):
            raise ConnectionError(f"{st.station}: the broker refused the connection")
        conns.append(conn)
    say(f"{len(stations)} stations connected")
    published: dict[str, float] = {}
    start = time.monotonic()
    k = 0
    while k < len(queue):
        due = min(len(queue), int((time.monotonic() - start) * rate) + 1)
        now = time.time()
        while k < due:  # every event due by now, then back to the loop for the PUBACKs
            which, (topic, payload) = queue[k]
            conns[which].publish(topic, payload)
            published[ids[k]] = now
            k += 1
        await asyncio.sleep(0.002)
    offered = len(queue) / (time.monotonic() - start)
    for conn in conns:
        await asyncio.wait_for(conn.done.wait(), 120)
    say(f"the broker acknowledged the last event {time.monotonic() - start:.1f} s after the first")
    for conn in conns:
        assert conn.transport is not None
        conn.transport.write(b"\xe0\x00")  # DISCONNECT: no Last Will
        conn.transport.close()
    return published, offered


class Components:
    """Where the CPU goes: the publishers (this process), the server, the brokers, PostgreSQL."""

    def __init__(self, server: int, cluster: RabbitCluster, pg: Postgres) -> None:
        self.server, self.cluster, self.pg = server, cluster, pg

    def sample(self) -> dict[str, float]:
        """CPU seconds so far, per component."""
        own = os.times()
        pid = self.pg.pid()
        brokers = [
            p for nd in self.cluster.nodes if nd.proc is not None for p in session_pids(nd.proc.pid)
        ]
        return {
            "stations": own.user + own.system,
            "server": cpu_s([self.server]),
            "brokers": cpu_s(brokers),
            "postgres": cpu_s(children(pid)) if pid else 0.0,
        }


def run_fleet(
    n: int,
    args: argparse.Namespace,
    cluster: RabbitCluster,
    pg: Postgres,
    dsn: str,
    parts: Components,
) -> dict[str, object]:
    hosts = [("127.0.0.1", node.mqtt_port) for node in cluster.nodes]
    stations = [SimStation(f"bench{n}-{i:03d}", hosts[i % 3 :] + hosts[: i % 3]) for i in range(n)]
    flows = [shift_change(st, args.bays, args.files) for _ in range(args.rounds) for st in stations]
    queue = [(k % n, step) for k, flow in enumerate(flows) for step in flow]
    # Interleave the stations as a shift change does: every station's bays at once.
    queue.sort(key=lambda x: int(json.loads(x[1][1])["seq"]))
    total = len(queue)
    ids = [str(json.loads(payload)["id"]) for _, (_, payload) in queue]
    load = load_average()
    cpu_before = parts.sample()
    published, offered = asyncio.run(publish_fleet(stations, queue, ids, args.rate))
    say(f"{total} events published at {offered:.0f}/s and acknowledged by the broker")
    deadline = time.monotonic() + 300
    with psycopg.connect(dsn) as conn:
        while True:
            got = conn.execute(
                "SELECT count(*) FROM events WHERE station LIKE %s", (f"bench{n}-%",)
            ).fetchone()
            if (got and got[0] >= total) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        cpu_after = parts.sample()
        rows = conn.execute(
            "SELECT id::text, extract(epoch FROM received_at) FROM events WHERE station LIKE %s",
            (f"bench{n}-%",),
        ).fetchall()
    lat = sorted(float(r[1]) - published[r[0]] for r in rows if r[0] in published)
    first = min(float(r[1]) for r in rows)
    last = max(float(r[1]) for r in rows)
    broker = sum(
        pss_kib(session_pids(node.proc.pid)) for node in cluster.nodes if node.proc is not None
    )
    pid = pg.pid()
    cpu = {k: cpu_after[k] - cpu_before[k] for k in cpu_after}
    return {
        "stations": n,
        "load_1min_before": load,
        "load_1min_after": load_average(),
        "events": total,
        "indexed": len(rows),
        "offered_per_s": round(offered),
        "ingested_per_s": round(len(rows) / max(last - first, 1e-6)),
        "p50_s": round(statistics.median(lat), 3),
        "p99_s": round(lat[int(len(lat) * 0.99) - 1], 3),
        "broker_pss_mib": round(broker / 1024),
        "postgres_pss_mib": round(pss_kib(children(pid)) / 1024) if pid else None,
        "cpu_s": {k: round(v, 1) for k, v in cpu.items()},
        "cpu_us_per_event": {k: round(v / total * 1e6) for k, v in cpu.items()},
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stations", default="50,200", help="fleet sizes, comma-separated")
    p.add_argument("--bays", type=int, default=6)
    p.add_argument("--files", type=int, default=4, help="recordings per camera")
    p.add_argument("--rounds", type=int, default=1, help="shift changes per fleet size")
    p.add_argument("--rate", type=float, default=2500, help="events/s offered by the fleet")
    p.add_argument("--consumers", type=int, default=1)
    p.add_argument("--prefetch", type=int, default=4000, help="per consumer")
    p.add_argument("--batch", type=int, default=2000, help="messages per transaction")
    args = p.parse_args()
    if why := missing():
        print(f"fleet_bench: {why}", file=sys.stderr)
        return 1
    pg = Postgres(durable=True)
    cluster = RabbitCluster(3)
    server: subprocess.Popen[bytes] | None = None
    results = []
    try:
        pg.start()
        cluster.start()
        cfg = Path(tempfile.mkdtemp(prefix="camdock-bench-")) / "server.toml"
        amqp = ", ".join(f'"{n.amqp_url}"' for n in cluster.nodes)
        cfg.write_text(
            f"[server]\namqp = [{amqp}]\nconsumers = {args.consumers}\n"
            f"prefetch = {args.prefetch}\nbatch = {args.batch}\n"
            f'gap_grace_seconds = 60\n[database]\ndsn = "{pg.dsn}"\n'
        )
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up on a timeout too
        log = open(cfg.parent / "server.log", "wb")  # noqa: SIM115 - the server's own log
        server = subprocess.Popen(
            [sys.executable, "-m", "camdock", "server", "run", "--config", str(cfg)],
            stderr=log,
        )
        say("cluster and database up; server starting")
        time.sleep(8)  # the queue declared and the consumers on it
        if server.poll() is not None:
            print((cfg.parent / "server.log").read_text()[-3000:], file=sys.stderr)
            return 1
        for n in (int(x) for x in args.stations.split(",")):
            result = run_fleet(n, args, cluster, pg, pg.dsn, Components(server.pid, cluster, pg))
            results.append(result)
            print(json.dumps(result), flush=True)
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        cluster.stop()
        pg.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
