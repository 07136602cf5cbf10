"""Simulated stations for the station server's tests, benchmark and demo: each publishes a
shift change's events (cameras docked, recordings verified and cleared, offloads completed,
custody heads), valid against the contract, over MQTT 3.1.1 with QoS 1 (paho), to a list of
broker hosts tried in turn, as a station's ``[mqtt] hosts`` would.

Like the real station (station/publisher.py) an event leaves its outbox only when the broker
acknowledged it (PUBACK); after a lost connection the station moves to the next host and sends
again everything unacknowledged, so a broker node's death loses nothing and may duplicate
(the server drops duplicates by id). paho's network loop runs on its own thread per station;
what it reports crosses to the caller's thread under a lock.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from camdock.events import uuid7

__all__ = ["SimStation", "shift_change"]


@dataclass
class _Chain:
    seq: int = 0
    hash: str = "0" * 64

    def grow(self) -> None:
        self.seq += 1
        self.hash = hashlib.sha256(f"{self.hash}{self.seq}".encode()).hexdigest()


@dataclass
class SimStation:
    """One simulated station: an event source with an outbox, and its MQTT connection."""

    station: str
    hosts: list[tuple[str, int]]
    prefix: str = "camdock"
    day: str = "2026-11-29"
    seq: int = 0
    chain: _Chain = field(default_factory=_Chain)
    host_index: int = 0
    published: dict[str, float] = field(default_factory=dict)  # event id -> first publish
    acked: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._unacked: dict[int, tuple[str, bytes]] = {}  # seq -> (topic, payload)
        self._mids: dict[int, int] = {}  # paho mid -> seq
        self._early: set[int] = set()  # mids acknowledged before they were recorded
        self._client: mqtt.Client | None = None
        self._connected = threading.Event()
        self._healing = threading.Lock()
        self.connects = 0

    # -- events ------------------------------------------------------------------------------

    def event(
        self,
        kind: str,
        data: dict[str, Any],
        bay: int | None = None,
        camera: str | None = None,
        officer: dict[str, str] | None = None,
        at: str | None = None,
    ) -> tuple[str, bytes]:
        """The next event of this station (topic, payload); custody heads move on verified
        recordings, as a station's chain does."""
        self.seq += 1
        if kind in ("file-verified", "camera-cleared", "offload-completed"):
            self.chain.grow()
        body = {
            "id": uuid7(),
            "seq": self.seq,
            "type": kind,
            "time": at or f"{self.day}T02:{(self.seq // 60) % 60:02d}:{self.seq % 60:02d}.000000Z",
            "station": self.station,
            "bay": bay,
            "camera": camera,
            "officer": officer,
            "data": data,
            "custody": {"seq": self.chain.seq, "hash": self.chain.hash},
        }
        return f"{self.prefix}/v1/{self.station}/events/{kind}", json.dumps(body).encode()

    # -- the connection ----------------------------------------------------------------------

    @property
    def host(self) -> tuple[str, int]:
        """The host it uses now."""
        return self.hosts[self.host_index % len(self.hosts)]

    def connect(self, timeout: float = 30) -> None:
        """Connect to the current host, or the next ones in turn, until one answers."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._open()
                if self._connected.wait(5):
                    return
            except OSError:
                pass
            self._close()
            self.host_index += 1
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.station}: no broker host answered")
            time.sleep(0.2)

    def _open(self) -> None:
        host, port = self.host
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"camdock-{self.station}",
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(0)
        client.will_set(f"{self.prefix}/v1/{self.station}/status", b"offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self._connected.clear()
        self._client = client
        client.connect(host, port, keepalive=5)
        client.loop_start()

    def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.on_disconnect = None
            client.disconnect()  # first: the network thread then ends at once
            client.loop_stop()
        with self._lock:
            self._mids.clear()
            self._early.clear()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            return
        self.connects += 1
        client.publish(f"{self.prefix}/v1/{self.station}/status", b"online", qos=1, retain=True)
        self._connected.set()  # first: an event put in the outbox from now on is sent too
        with self._lock:
            again = sorted(self._unacked.items())
        for seq, (topic, payload) in again:  # the outbox, resent in order after a reconnect
            self._send(client, seq, topic, payload)

    def _on_disconnect(self, *_args: Any) -> None:
        self._connected.clear()

    def _on_publish(self, client: Any, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        with self._lock:
            if client is not self._client:
                return
            seq = self._mids.pop(mid, None)
            if seq is None:
                self._early.add(mid)  # acknowledged before _send recorded it
                return
            self._unacked.pop(seq, None)
            self.acked.add(seq)

    def _send(self, client: mqtt.Client, seq: int, topic: str, payload: bytes) -> None:
        # Not under our lock: paho calls on_publish holding its own, and publish() takes it.
        info = client.publish(topic, payload, qos=1)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            return
        with self._lock:
            if info.mid in self._early:
                self._early.discard(info.mid)
                self._unacked.pop(seq, None)
                self.acked.add(seq)
            else:
                self._mids[info.mid] = seq

    def publish(
        self, topic: str, payload: bytes, seq: int | None = None, event_id: str | None = None
    ) -> None:
        """Put one event in the outbox and send it (QoS 1). The benchmark passes the event's
        seq and id, read before it starts the clock: its one publishing thread then parses
        no JSON while the fleet is timed."""
        if seq is None or event_id is None:
            body = json.loads(payload)
            seq, event_id = int(body["seq"]), str(body["id"])
        with self._lock:
            self._unacked[seq] = (topic, payload)
            self.published.setdefault(event_id, time.time())
        client = self._client
        if client is not None and self._connected.is_set():
            self._send(client, seq, topic, payload)

    def raw(self, topic: str, payload: bytes) -> None:
        """Publish anything (the hostile-message tests); not kept in the outbox."""
        client = self._client
        assert client is not None
        client.publish(topic, payload, qos=1).wait_for_publish(10)

    @property
    def unacked(self) -> int:
        """Events the broker has not acknowledged yet."""
        with self._lock:
            return len(self._unacked)

    def heal(self) -> None:
        """If the connection is lost, move to the next host and resend the outbox."""
        with self._healing:
            client = self._client
            if client is not None and client.is_connected():
                return
            self._close()
            self.host_index += 1
            self.connect()

    def drain(self, timeout: float) -> None:
        """Until the broker acknowledged every event, moving hosts when one dies."""
        deadline = time.monotonic() + timeout
        while self.unacked:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.station}: {self.unacked} events unacknowledged")
            self.heal()
            time.sleep(0.1)

    def close(self) -> None:
        """Disconnect (cleanly: no Last Will). Safe to call twice."""
        self._close()


def shift_change(st: SimStation, bays: int, files: int = 4) -> Iterator[tuple[str, bytes]]:
    """A station's events as ``bays`` cameras dock at the end of a shift, interleaved by bay."""
    flows = [_bay(st, bay, files) for bay in range(1, bays + 1)]
    while flows:
        for flow in list(flows):
            step = next(flow, None)
            if step is None:
                flows.remove(flow)
            else:
                yield step


def _bay(st: SimStation, bay: int, files: int) -> Iterator[tuple[str, bytes]]:
    camera = f"{st.station}-C{bay}"
    officer = {"badge": f"{st.station}-B{bay}", "name": f"員警{bay}", "unit": "第一分局"}
    session = uuid.uuid4().hex[:12]
    yield st.event(
        "camera-docked",
        {"usb_serial": f"SN{bay:04d}", "ownership": "agency", "fs": "exfat"},
        bay,
        camera,
        officer,
    )
    yield st.event(
        "offload-started",
        {"session": session, "files": files, "bytes": files * 1000, "skipped": 0},
        bay,
        camera,
        officer,
    )
    for n in range(1, files + 1):
        sha = hashlib.sha256(f"{st.station}{bay}{session}{n}".encode()).hexdigest()
        recording = st.seq + 1
        yield st.event(
            "file-verified",
            {
                "session": session,
                "source": f"DCIM/{n:04d}.MP4",
                "sha256": sha,
                "size": 1000,
                "path": f"{st.day.replace('-', '/')}/0800-{officer['badge']}-{n}.mp4",
                "recording": recording,
                "recorded_start": f"{st.day}T01:{n:02d}:00.000000Z",
                "destinations": 2,
                "already_catalogued": False,
                "officer": officer["badge"],
                "attribution": "config",
                "time_suspect": None,
            },
            bay,
            camera,
            officer,
        )
        yield st.event(
            "camera-cleared",
            {
                "session": session,
                "source": f"DCIM/{n:04d}.MP4",
                "sha256": sha,
                "recording": recording,
            },
            bay,
            camera,
            officer,
        )
    yield st.event(
        "offload-completed",
        {
            "session": session,
            "files": files,
            "verified": files,
            "failed": 0,
            "cleared": files,
            "skipped": 0,
            "bytes_verified": files * 1000,
        },
        bay,
        camera,
        officer,
    )
    yield st.event("custody-head", {}, bay, camera, officer)
