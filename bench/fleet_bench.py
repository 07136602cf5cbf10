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
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
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


def say(text: str) -> None:
    """Progress on stderr."""
    print(f"{time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def run_fleet(
    n: int, args: argparse.Namespace, cluster: RabbitCluster, pg: Postgres, dsn: str
) -> dict[str, object]:
    hosts = [("127.0.0.1", node.mqtt_port) for node in cluster.nodes]
    stations = [SimStation(f"bench{n}-{i:03d}", hosts[i % 3 :] + hosts[: i % 3]) for i in range(n)]
    for st in stations:
        st.connect()
    say(f"{n} stations connected")
    flows = [shift_change(st, args.bays, args.files) for _ in range(args.rounds) for st in stations]
    queue = [
        (st, step) for st, flow in zip(stations * args.rounds, flows, strict=True) for step in flow
    ]
    # Interleave the stations as a shift change does: every station's bays at once.
    queue.sort(key=lambda x: int(json.loads(x[1][1])["seq"]))
    total = len(queue)
    start = time.monotonic()

    def pump() -> None:
        for k, (st, (topic, payload)) in enumerate(queue):
            due = start + k / args.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            st.publish(topic, payload)

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    t.join()
    offered = total / (time.monotonic() - start)
    say(f"{total} events published at {offered:.0f}/s")
    for st in stations:
        st.drain(120)
    say("every event acknowledged by the broker")
    deadline = time.monotonic() + 300
    with psycopg.connect(dsn) as conn:
        while True:
            got = conn.execute(
                "SELECT count(*) FROM events WHERE station LIKE %s", (f"bench{n}-%",)
            ).fetchone()
            if (got and got[0] >= total) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        rows = conn.execute(
            "SELECT id::text, extract(epoch FROM received_at) FROM events WHERE station LIKE %s",
            (f"bench{n}-%",),
        ).fetchall()
    published = {k: v for st in stations for k, v in st.published.items()}
    lat = sorted(float(r[1]) - published[r[0]] for r in rows if r[0] in published)
    first = min(float(r[1]) for r in rows)
    last = max(float(r[1]) for r in rows)
    broker = sum(
        pss_kib(session_pids(node.proc.pid)) for node in cluster.nodes if node.proc is not None
    )
    pid = pg.pid()
    for st in stations:
        st.close()
    return {
        "stations": n,
        "events": total,
        "indexed": len(rows),
        "offered_per_s": round(offered),
        "ingested_per_s": round(len(rows) / max(last - first, 1e-6)),
        "p50_s": round(statistics.median(lat), 3),
        "p99_s": round(lat[int(len(lat) * 0.99) - 1], 3),
        "broker_pss_mib": round(broker / 1024),
        "postgres_pss_mib": round(pss_kib(children(pid)) / 1024) if pid else None,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stations", default="50,200", help="fleet sizes, comma-separated")
    p.add_argument("--bays", type=int, default=6)
    p.add_argument("--files", type=int, default=4, help="recordings per camera")
    p.add_argument("--rounds", type=int, default=1, help="shift changes per fleet size")
    p.add_argument("--rate", type=float, default=2500, help="events/s offered by the fleet")
    p.add_argument("--consumers", type=int, default=4)
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
            result = run_fleet(n, args, cluster, pg, pg.dsn)
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
