#!/usr/bin/env python3
"""The event outbox against a real local mosquitto: events/s committed (one transaction per
event, as state changes make them, synchronous=FULL), events/s delivered (PUBACKed and marked),
and latency from the state change (the event's commit) to a subscriber receiving it.

    .venv/bin/python bench/outbox_bench.py [--events 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from camdock.catalog import open_catalog, write_txn  # noqa: E402
from camdock.catalog.db import Store  # noqa: E402
from camdock.catalog.outbox import record  # noqa: E402
from camdock.config import MqttSettings  # noqa: E402
from camdock.events import EventType, Topics  # noqa: E402
from camdock.station.publisher import Publisher  # noqa: E402
from mqttbroker import Broker, Subscriber  # noqa: E402
from offload_bench import machine, write_results  # noqa: E402


async def run(n: int, work: Path) -> dict[str, float]:
    broker = Broker(work / "broker")
    broker.start()
    topics = Topics("camdock", "bench")
    catalog = work / "catalog.sqlite"
    sub = Subscriber(broker.port, topic="camdock/v1/bench/events/#", client_id="bench-sub")
    received: dict[int, float] = {}
    sub.c.on_message = lambda c, ud, msg: received.setdefault(
        json.loads(msg.payload)["seq"], time.time()
    )
    time.sleep(0.5)
    db = open_catalog(catalog)
    t0 = time.perf_counter()
    for i in range(n):
        with write_txn(db):
            record(
                db,
                topics,
                EventType.OFFLOAD_PROGRESS,
                bay=1,
                data={"percent": i % 101, "bytes": i, "total": n},
            )
    committed = n / (time.perf_counter() - t0)

    store = Store(catalog)
    pub = Publisher(MqttSettings(host="127.0.0.1", port=broker.port), topics, store)
    t0 = time.perf_counter()
    task = asyncio.create_task(pub.run())
    while pub.delivered < n:
        await asyncio.sleep(0.005)
    delivered = n / (time.perf_counter() - t0)
    while len(received) < n:
        await asyncio.sleep(0.01)

    # Latency: one event at a time, as a bay produces them, with the publisher idle and waiting.
    latencies = []
    recorded_at: dict[int, float] = {}
    for _ in range(300):
        before = time.time()
        with write_txn(db):
            record(db, topics, EventType.BAY_FAULT, bay=1, data={"message": "latency probe"})
        seq = int(db.execute("SELECT max(id) FROM outbox").fetchone()[0])
        recorded_at[seq] = before
        pub.notify()
        while seq not in received:
            await asyncio.sleep(0.0005)
        latencies.append(received[seq] - before)
        await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    store.close()
    db.close()
    sub.close()
    broker.stop()
    q = statistics.quantiles(latencies, n=100)
    return {
        "committed": committed,
        "delivered": delivered,
        "p50": q[49] * 1000,
        "p99": q[98] * 1000,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=5000)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="camdock-outbox-", dir="/var/tmp") as tmp:
        r = asyncio.run(run(args.events, Path(tmp)))
    report = "\n".join(
        [
            f"Measured {datetime.now():%Y-%m-%d %H:%M} on {machine()}; mosquitto on loopback; "
            f"catalog on the machine's disk (WAL, synchronous=FULL).",
            "",
            "| events | committed (one transaction each) | delivered (PUBACK, marked) "
            "| commit → subscriber p50 | p99 |",
            "|---|---|---|---|---|",
            f"| {args.events} | {r['committed']:.0f} /s | {r['delivered']:.0f} /s "
            f"| {r['p50']:.1f} ms | {r['p99']:.1f} ms |",
            "",
            f"Target ≥ 2,000 events/s: committed {'met' if r['committed'] >= 2000 else 'NOT met'}, "
            f"delivered {'met' if r['delivered'] >= 2000 else 'NOT met'}.",
        ]
    )
    print(report)
    if not args.no_write:
        write_results(report, "outbox-bench", "The event outbox")


if __name__ == "__main__":
    main()
