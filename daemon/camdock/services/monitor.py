"""``camdock monitor``: a reference subscriber for the station-server side.

Subscribes to every station's status, bay states and events under the topic prefix and shows a
live table of bays with the event stream beneath; ``--json`` prints one JSON object per line
instead (for scripts and log shippers).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiomqtt

from camdock.adapters.mqtt import Client, read_password, tls_params
from camdock.config import MqttSettings
from camdock.events import SCHEMA_VERSION


@dataclass(frozen=True)
class MonitorOptions:
    """What to watch: the broker (the same settings a station's ``[mqtt]`` has) and how."""

    mqtt: MqttSettings
    station: str | None = None
    as_json: bool = False
    duration: float | None = None
    witness: Path | None = None  # append every custody head seen here (camdock audit --witness)


@dataclass
class View:
    """The live table: each station's status, each bay's state, the last events."""

    status: dict[str, str] = field(default_factory=dict)
    bays: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    events: deque[str] = field(default_factory=lambda: deque(maxlen=15))
    count: int = 0

    def render(self, out: TextIO) -> None:
        """Redraw the whole screen."""
        lines = [
            "camdock monitor",
            "",
            " station   bay  phase            camera    officer   progress",
        ]
        for (station, bay), s in sorted(self.bays.items()):
            total = s.get("bytes_total") or 0
            pct = f"{100 * (s.get('bytes_done') or 0) / total:5.1f}%" if total else "   - "
            lines.append(
                f" {station:<9} {bay:>3}  {s.get('phase', '?'):<16} {s.get('camera') or '-':<9} "
                f"{s.get('officer') or '-':<9} {pct}  {s.get('message') or ''}"
            )
        lines.append("")
        lines.append(" stations: " + ", ".join(f"{k} {v}" for k, v in sorted(self.status.items())))
        lines += ["", f" events ({self.count}):"] + [f"  {e}" for e in self.events]
        out.write("\x1b[H\x1b[J" + "\n".join(lines) + "\n")
        out.flush()


def parse_topic(prefix: str, topic: str) -> tuple[str, str, list[str]] | None:
    """(station, kind, rest) for a camdock topic, else None."""
    parts = topic.split("/")
    head = prefix.split("/")
    if parts[: len(head)] != head or len(parts) < len(head) + 3:
        return None
    if parts[len(head)] != SCHEMA_VERSION:
        return None
    station, kind, *rest = parts[len(head) + 1 :]
    return station, kind, rest


async def monitor(opts: MonitorOptions, out: TextIO = sys.stdout) -> int:
    """Watch the stations until ``duration`` passes or the user stops it; returns an exit code."""
    view = View()
    live = not opts.as_json and out.isatty()
    station = opts.station or "+"
    m = opts.mqtt
    tls = tls_params(m.ca_file, m.cert_file, m.key_file)
    password = read_password(m.password_file)
    client = Client(
        m.host,
        m.port,
        identifier=f"camdock-monitor-{uuid.uuid4().hex[:8]}",
        username=m.username,
        password=password,
        tls_params=tls,
        timeout=10,
    )
    deadline = time.monotonic() + opts.duration if opts.duration else None

    async def consume() -> None:
        async with client:
            await client.subscribe(f"{m.prefix}/{SCHEMA_VERSION}/{station}/#", qos=1)
            async for msg in client.messages:
                parsed = parse_topic(m.prefix, str(msg.topic))
                if parsed is None:
                    continue
                st, kind, rest = parsed
                raw = msg.payload if isinstance(msg.payload, bytes) else str(msg.payload).encode()
                text = raw.decode("utf-8", "replace")
                try:
                    body: Any = json.loads(text)
                except json.JSONDecodeError:
                    body = text
                if opts.witness is not None and kind == "events" and isinstance(body, dict):
                    _witness(opts.witness, st, body)
                if opts.as_json:
                    line = {
                        "topic": str(msg.topic),
                        "station": st,
                        "kind": kind,
                        "retained": msg.retain,
                        "payload": body,
                    }
                    out.write(json.dumps(line, ensure_ascii=False) + "\n")
                    out.flush()
                    continue
                if kind == "status":
                    view.status[st] = text
                    view.events.append(f"{st}: {text}")
                elif kind == "bays" and rest and isinstance(body, dict):
                    view.bays[(st, int(rest[0]))] = body
                elif kind == "events" and isinstance(body, dict):
                    view.count += 1
                    data = body.get("data") or {}
                    brief = ", ".join(f"{k}={_short(v)}" for k, v in list(data.items())[:4])
                    view.events.append(
                        f"#{body.get('seq')} {st} bay {body.get('bay')} {body.get('type')} {brief}"
                    )
                if live:
                    view.render(out)
                elif kind != "bays" and view.events:
                    out.write(view.events[-1] + "\n")
                    out.flush()

    task = asyncio.create_task(consume())
    try:
        if deadline is None:
            await task
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), deadline - time.monotonic())
    except aiomqtt.MqttError as exc:
        print(f"camdock monitor: {m.host}:{m.port}: {exc}", file=sys.stderr)
        return 69  # EX_UNAVAILABLE
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await task
    return 0


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 24 else text[:16] + "…"


def _witness(path: Path, station: str, event: dict[str, Any]) -> None:
    """Keep the custody head an event carried (invariant 6), one JSON line each, fsynced: what
    `camdock audit --witness` compares the station's chain with."""
    head = event.get("custody")
    if not isinstance(head, dict) or "seq" not in head or "hash" not in head:
        return
    line = {"station": station, "event": event.get("seq"), "time": event.get("time"),
            "custody": {"seq": head["seq"], "hash": head["hash"]}}  # fmt: skip
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(line, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
