"""Events to the station server over a real mosquitto (REG-7.1, invariant 4): the contract, the
retained state and the Last Will, a long outage with a daemon restart, TLS, credentials, the
roster from the server, and the bounded outbox."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from gpiozero.pins.mock import MockFactory, MockPWMPin
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from camdock.adapters.mqtt import Client
from camdock.catalog import open_catalog, outbox, write_txn
from camdock.catalog.db import Store
from camdock.catalog.outbox import record
from camdock.config import Config, MqttSettings, load
from camdock.core.bay import Phase
from camdock.events import EventType, Topics
from camdock.sim.hotplug import SimHotplug, SimMounter, fill_camera
from camdock.station.publisher import Publisher
from camdock.station.station import Station
from conftest import camdock_cmd, offload_args, stop, tree_hashes
from mqttbroker import Broker, Subscriber, V311OnlyFront, free_port, wait_for
from stationcfg import write_config

ROOT = Path(__file__).resolve().parent.parent
DOC = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text())
REGISTRY: Registry[Any] = Registry().with_resource(
    "asyncapi", Resource.from_contents(DOC, default_specification=DRAFT7)
)
START = datetime(2026, 11, 28, 9, 0)


def validator(pointer: str) -> jsonschema.Validator:
    cls = jsonschema.Draft7Validator  # AsyncAPI 3.0 schemas are a superset of draft 7
    return cls({"$ref": f"asyncapi#{pointer}"}, registry=REGISTRY)


def message_for(event_type: str) -> str:
    for key, msg in DOC["components"]["messages"].items():
        if msg.get("name") == event_type:
            return f"/components/messages/{key}/payload"
    raise AssertionError(f"no message in docs/asyncapi.yaml for {event_type}")


def check_message(topic: str, payload: bytes) -> str:
    """Validate one published message against the contract; returns what it was."""
    parts = topic.split("/")
    assert parts[:2] == ["camdock", "v1"], topic
    kind = parts[3]
    if kind == "status":
        assert payload in (b"online", b"offline")
        return "status"
    if kind == "alarm":
        payload.decode("utf-8")  # text; empty clears it
        return "alarm"
    body = json.loads(payload)
    if kind == "bays":
        validator("/components/schemas/BayState").validate(body)
        return "bay-state"
    assert kind == "events", topic
    assert body["type"] == parts[4]
    validator(message_for(body["type"])).validate(body)
    return body["type"]


# ---------------------------------------------------------------------------------------------
# The contract itself


def test_asyncapi_document_is_valid_against_the_official_schema() -> None:
    spec = ROOT / ".venv" / "share" / "asyncapi" / "3.0.0.json"
    if not spec.exists():
        pytest.skip("the AsyncAPI 3.0.0 JSON Schema comes from npm's @asyncapi/specs (no npm)")
    official = jsonschema.Draft7Validator(json.loads(spec.read_text()))
    errors = [f"{list(e.path)}: {e.message}" for e in official.iter_errors(DOC)]
    assert errors == []
    broken = json.loads(json.dumps(DOC))
    broken["channels"]["events"]["address"] = 42  # the check has teeth
    assert list(official.iter_errors(broken))


def test_every_event_type_is_in_the_contract() -> None:
    declared = DOC["channels"]["events"]["parameters"]["eventType"]["enum"]
    assert sorted(declared) == sorted(t.value for t in EventType)
    for t in EventType:
        jsonschema.Draft7Validator.check_schema(
            DOC["components"]["messages"][message_for(t.value).split("/")[3]]["payload"]
        )


def test_roster_schema_and_the_parser_agree() -> None:
    ok = {"version": 1, "date": "2026-11-28", "assignments": [{"camera": "C", "officer": "B"}]}
    validator("/components/schemas/Roster").validate(ok)
    with pytest.raises(jsonschema.ValidationError):
        validator("/components/schemas/Roster").validate({**ok, "version": 2})


# ---------------------------------------------------------------------------------------------
# A station on a real broker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


def mqtt_config(tmp_path: Path, port: int, extra: str = "") -> Path:
    path = write_config(tmp_path)
    path.write_text(
        path.read_text() + f'\n[mqtt]\nhost = "127.0.0.1"\nport = {port}\nkeepalive = 5\n{extra}'
    )
    return path


@contextlib.asynccontextmanager
async def station_on(cfg: Config) -> AsyncIterator[tuple[Station, SimHotplug]]:
    factory = MockFactory(pin_class=MockPWMPin)
    hot = SimHotplug()
    station = Station(cfg, hotplug=hot, mounter=SimMounter(), pin_factory=factory)
    task = asyncio.create_task(station.run())
    await asyncio.wait_for(station.ready.wait(), 5)
    try:
        yield station, hot
    finally:
        await stop(task)
        factory.reset()


async def until(pred: Any, timeout: float = 20, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_everything_published_matches_the_contract(tmp_path: Path, broker: Broker) -> None:
    sub = Subscriber(broker.port)
    cfg = load(mqtt_config(tmp_path, broker.port))
    vol, stick = tmp_path / "cam1", tmp_path / "stick"
    fill_camera(vol, files=3, size=200_000, seed=1, start=START)
    fill_camera(stick, files=1, size=10, seed=2, start=START)
    try:
        async with station_on(cfg) as (station, hot):
            hot.dock("1-1", "SN0001", vol)
            hot.dock("1-2", "NOT-REGISTERED", stick)
            await until(lambda: station.bays[1].state.phase is Phase.DONE, what="bay 1 done")
            hot.undock("1-1")
            hot.dock("1-1", "SN0001", tmp_path / "gone")  # source vanished → offload fails
            await until(lambda: station.bays[1].state.phase is Phase.FAULT, what="fault")
            await until(lambda: "bay-fault" in {e["type"] for e in sub.events()}, what="fault")
        kinds = {check_message(t, p) for t, p, _ in list(sub.got)}
    finally:
        sub.close()
    assert {
        "status",
        "bay-state",
        "camera-docked",
        "unknown-device",
        "offload-started",
        "offload-progress",
        "file-verified",
        "camera-cleared",
        "offload-completed",
        "camera-removed",
        "offload-failed",
        "bay-fault",
    } <= kinds
    events = sub.events()
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(e["id"] for e in events)) == len(events)
    verified = [e for e in events if e["type"] == "file-verified"]
    assert len(verified) == 3 and all(e["officer"]["name"] == "王小明" for e in verified)
    # Progress in rising tenths up to 100 %, each against the camera's total from the first on.
    progress = [e["data"] for e in events if e["type"] == "offload-progress"]
    percents = [p["percent"] for p in progress]
    assert percents and percents == sorted(set(percents)) and percents[-1] == 100, progress
    assert {p["total"] for p in progress} == {sum(v["data"]["size"] for v in verified)}
    # Each file's "verified" comes before its "cleared" (REG-4.1.2), in sequence order.
    for v in verified:
        cleared = next(
            e
            for e in events
            if e["type"] == "camera-cleared" and e["data"]["sha256"] == v["data"]["sha256"]
        )
        assert v["seq"] < cleared["seq"]


def test_status_is_retained_and_the_last_will_says_offline(tmp_path: Path, broker: Broker) -> None:
    """SIGKILL the real daemon: the broker publishes its will, and a late subscriber still
    gets the retained status."""
    cfg = mqtt_config(tmp_path, broker.port)
    sub = Subscriber(broker.port, topic="camdock/v1/test-01/#", client_id="will-watcher")
    proc = subprocess.Popen(camdock_cmd("run", "--config", str(cfg)), stderr=subprocess.PIPE)
    try:
        wait_for(
            lambda: b"online" in [p for t, p, _ in sub.got if t.endswith("/status")], what="online"
        )
        wait_for(lambda: any("/bays/2/state" in t for t in sub.topics()), what="bay states")
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        wait_for(
            lambda: [p for t, p, _ in sub.got if t.endswith("/status")][-1] == b"offline",
            what="the will",
        )
    finally:
        if proc.poll() is None:
            proc.kill()
        sub.close()
    late = Subscriber(broker.port, topic="camdock/v1/test-01/#", client_id="late")
    try:
        wait_for(lambda: len(late.got) >= 3, what="retained messages")
        retained = {t: (p, r) for t, p, r in late.got}
        assert retained["camdock/v1/test-01/status"] == (b"offline", True)
        state = json.loads(retained["camdock/v1/test-01/bays/1/state"][0])
        assert state["phase"] == "empty" and retained["camdock/v1/test-01/bays/1/state"][1]
    finally:
        late.close()


@pytest.mark.slow
async def test_outage_restart_and_every_event_arrives_in_order(tmp_path: Path) -> None:
    """Stop the broker, record 1,000 events, restart the daemon, start the broker: all arrive,
    in sequence order; duplicates (at least once) carry the same id."""
    broker = Broker(tmp_path / "broker")
    broker.start()
    catalog = tmp_path / "catalog.sqlite"
    topics = Topics("camdock", "st-1")
    settings = MqttSettings(host="127.0.0.1", port=broker.port, keepalive=2)
    sub = Subscriber(broker.port, topic="camdock/v1/st-1/events/#")

    def produce(n: int) -> None:
        db = open_catalog(catalog)
        try:
            for i in range(n):
                with write_txn(db):  # one transaction per event, as state changes make them
                    record(
                        db,
                        topics,
                        EventType.OFFLOAD_PROGRESS,
                        bay=1,
                        data={"percent": i % 101, "bytes": i, "total": n},
                    )
        finally:
            db.close()

    async def start_daemon() -> tuple[Publisher, asyncio.Task[None], Store]:
        store = Store(catalog)
        pub = Publisher(settings, topics, store)
        return pub, asyncio.create_task(pub.run()), store

    try:
        pub, task, store = await start_daemon()
        produce(10)
        pub.notify()
        await until(lambda: len(sub.events()) >= 10, what="the first 10")

        broker.stop()  # outage
        await asyncio.to_thread(produce, 1000)
        pub.notify()
        await asyncio.sleep(1.0)
        await stop(task)  # the daemon stops while the broker is down
        store.close()
        again = Store(catalog)
        assert await again.call(outbox.undelivered) >= 1000
        again.close()

        pub, task, store = await start_daemon()  # a new daemon process, same catalog
        broker.start()
        await until(
            lambda: len({e["id"] for e in sub.events()}) >= 1010, timeout=60, what="all 1010 events"
        )
        await stop(task)
        store.close()
    finally:
        sub.close()
        broker.stop()
    events = sub.events()
    first_seen: dict[str, int] = {}
    for e in events:
        first_seen.setdefault(e["id"], e["seq"])
    order = list(first_seen.values())
    assert order == sorted(order) == list(range(1, 1011))  # every one, in order, no gaps
    by_id: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        by_id.setdefault(e["id"], []).append(e)
    assert all(all(d == dups[0] for d in dups) for dups in by_id.values())  # same id, same event


# ---------------------------------------------------------------------------------------------
# TLS and credentials


def make_pki(d: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1/localhost, a client certificate; and a second,
    unrelated CA for the negative test."""
    d.mkdir(parents=True, exist_ok=True)

    def ossl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    for ca in ("ca", "other-ca"):
        ossl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN=camdock test {ca}",
            "-keyout",
            f"{ca}.key",
            "-out",
            f"{ca}.pem",
        )
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, ext in (("server", ["-extfile", "san.ext"]), ("client", [])):
        ossl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
        )
        ossl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            f"{name}.pem",
            *ext,
        )
    return {
        n: d / n
        for n in ("ca.pem", "other-ca.pem", "server.pem", "server.key", "client.pem", "client.key")
    }


async def _deliver(
    settings: MqttSettings, catalog: Path, topics: Topics, count: int, timeout: float = 20
) -> Publisher:
    """Run a publisher on the catalog's outbox until it has delivered ``count`` events or
    ``timeout`` has passed, then stop it; the caller checks ``delivered``."""
    store = Store(catalog)
    pub = Publisher(settings, topics, store)
    task = asyncio.create_task(pub.run())
    try:
        await until(lambda: pub.delivered >= count or task.done(), timeout=timeout)
    except AssertionError:
        pass
    finally:
        await stop(task)
        store.close()
    return pub


async def _deliver_one(settings: MqttSettings, catalog: Path, topics: Topics) -> Publisher:
    db = open_catalog(catalog)
    with write_txn(db):
        record(db, topics, EventType.BAY_FAULT, bay=1, data={"message": "tls test"})
    db.close()
    return await _deliver(settings, catalog, topics, 1, timeout=8)


async def test_tls_with_client_certificates(tmp_path: Path, caplog: Any) -> None:
    pki = make_pki(tmp_path / "pki")
    port = free_port()
    broker = Broker(
        tmp_path / "broker",
        port=port,
        extra=(
            f"listener {port} 127.0.0.1\nallow_anonymous true\ncafile {pki['ca.pem']}\n"
            f"certfile {pki['server.pem']}\nkeyfile {pki['server.key']}\nrequire_certificate true\n"
        ),
    )
    broker.start()
    topics = Topics("camdock", "tls-1")
    good = MqttSettings(
        host="127.0.0.1",
        port=port,
        ca_file=pki["ca.pem"],
        cert_file=pki["client.pem"],
        key_file=pki["client.key"],
    )
    try:
        pub = await _deliver_one(good, tmp_path / "c1.sqlite", topics)
        assert pub.delivered == 1
        wrong_ca = MqttSettings(
            host="127.0.0.1",
            port=port,
            ca_file=pki["other-ca.pem"],
            cert_file=pki["client.pem"],
            key_file=pki["client.key"],
        )
        with caplog.at_level(logging.WARNING, logger="camdock.station.publisher"):
            pub = await _deliver_one(wrong_ca, tmp_path / "c2.sqlite", topics)
        assert pub.delivered == 0
        assert "certificate verify failed" in caplog.text  # a clear line, retries, no crash
    finally:
        broker.stop()


async def test_wrong_credentials_retry_with_a_clear_error(tmp_path: Path, caplog: Any) -> None:
    pw = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(pw), "zz-01", "s3cret"],
        check=True,
        capture_output=True,
    )
    pw.chmod(0o600)
    port = free_port()
    broker = Broker(
        tmp_path / "broker",
        port=port,
        extra=(f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {pw}\n"),
    )
    broker.start()
    topics = Topics("camdock", "zz-01")
    (tmp_path / "good").write_text("s3cret\n")
    (tmp_path / "bad").write_text("guess\n")
    try:
        with caplog.at_level(logging.WARNING, logger="camdock.station.publisher"):
            bad = MqttSettings(
                host="127.0.0.1", port=port, username="zz-01", password_file=tmp_path / "bad"
            )
            pub = await _deliver_one(bad, tmp_path / "c1.sqlite", topics)
        assert pub.delivered == 0
        assert "ot authorized" in caplog.text or "bad user name or password" in caplog.text.lower()
        good = MqttSettings(
            host="127.0.0.1", port=port, username="zz-01", password_file=tmp_path / "good"
        )
        pub = await _deliver_one(good, tmp_path / "c2.sqlite", topics)
        assert pub.delivered == 1
    finally:
        broker.stop()


async def test_broker_down_at_start_the_station_works_and_events_wait(tmp_path: Path) -> None:
    port = free_port()
    cfg = load(mqtt_config(tmp_path, port))
    vol = tmp_path / "cam1"
    fill_camera(vol, files=2, size=1000, seed=1, start=START)
    async with station_on(cfg) as (station, hot):
        hot.dock("1-1", "SN0001", vol)
        await until(lambda: station.bays[1].state.phase is Phase.DONE, what="done")
        waiting = await station.store.call(outbox.undelivered)
    assert waiting >= 6 and tree_hashes(vol) == {}
    broker = Broker(tmp_path / "broker", port=port)
    broker.start()
    sub = Subscriber(port, topic="camdock/v1/test-01/events/#")
    try:
        async with station_on(cfg) as (station, hot):
            await until(lambda: len(sub.events()) >= waiting, what="the waiting events")
    finally:
        sub.close()
        broker.stop()


async def test_a_broker_without_mqtt_5_gets_3_1_1(
    tmp_path: Path, broker: Broker, caplog: Any
) -> None:
    """MQTT 5 where the broker allows, 3.1.1 otherwise: a broker that answers a v5 CONNECT with
    "unacceptable protocol version" gets a 3.1.1 session, and the events still arrive (QoS 1,
    in order, valid against the contract)."""
    catalog, topics = tmp_path / "c.sqlite", Topics("camdock", "old-1")
    db = open_catalog(catalog)
    for i in range(3):
        with write_txn(db):
            record(db, topics, EventType.BAY_FAULT, bay=1, data={"message": f"fault {i}"})
    db.close()
    sub = Subscriber(broker.port, topic="camdock/v1/old-1/#")
    try:
        async with V311OnlyFront(broker.port) as front:
            settings = MqttSettings(host="127.0.0.1", port=front.port)
            with caplog.at_level(logging.WARNING, logger="camdock.station.publisher"):
                pub = await _deliver(settings, catalog, topics, 3)
        assert pub.delivered >= 3  # through 3.1.1
        assert front.levels[:2] == [5, 4]  # tried MQTT 5 once, then 3.1.1
        assert "refuses MQTT 5; using 3.1.1" in caplog.text
        await until(lambda: len(sub.events()) >= 3, what="the subscriber")
        assert [e["data"]["message"] for e in sub.events()] == ["fault 0", "fault 1", "fault 2"]
        for topic, payload, _ in sub.got:
            check_message(topic, payload)
    finally:
        sub.close()


async def _readme_mosquitto_sub(port: int, station: str) -> asyncio.subprocess.Process:
    """The README's `mosquitto_sub` line, pointed at ``port``; returned once it is subscribed
    (it has printed the station's retained status, published here first)."""
    import paho.mqtt.publish as publish

    if shutil.which("mosquitto_sub") is None:
        pytest.skip("mosquitto_sub not installed (mosquitto-clients; make test as root does)")
    status = f"camdock/v1/{station}/status"
    await asyncio.to_thread(publish.single, status, "online", qos=1, retain=True,
                            hostname="127.0.0.1", port=port)  # fmt: skip
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    line = next(x for x in readme.splitlines() if x.startswith("mosquitto_sub "))
    argv = shlex.split(line.replace("-h BROKER", f"-h 127.0.0.1 -p {port}"))
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    async with asyncio.timeout(30):
        assert (await proc.stdout.readline()).decode().startswith(f"{status} online")
    return proc


async def test_a_manual_offload_reaches_the_station_server(tmp_path: Path, broker: Broker) -> None:
    """REG-7.1: `camdock offload --station` (a custodian's manual offload into the station's
    catalog) records its events in the outbox; the station's publisher delivers them, and they
    match the contract (bay null: no bay was involved)."""
    cam, dests, catalog = tmp_path / "cam", [tmp_path / "f", tmp_path / "b"], tmp_path / "c.sqlite"
    fill_camera(cam, files=2, size=1000, seed=3, start=START)
    for d in dests:
        d.mkdir()
    args = offload_args(
        cam, dests, catalog, "--clear", "--allow-one-filesystem", "--station", "st-9", "--tz", "UTC"
    )
    done = subprocess.run(camdock_cmd(*args), capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    bad = subprocess.run(
        camdock_cmd(*offload_args(cam, dests, catalog, "--station", "st/9")),
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 64 and "--station: one MQTT topic level" in bad.stderr
    sub = Subscriber(broker.port, topic="camdock/v1/st-9/events/#")
    readme = await _readme_mosquitto_sub(
        broker.port, "st-9"
    )  # the README's line, as a user runs it
    try:
        settings = MqttSettings(host="127.0.0.1", port=broker.port)
        await _deliver(settings, catalog, Topics("camdock", "st-9"), 6)
        await until(lambda: len(sub.events()) >= 6, what="the manual offload's events")
        shown: list[str] = []  # the topics it printed, events only
        assert readme.stdout is not None
        async with asyncio.timeout(30):
            while len(shown) < 6 and (line := await readme.stdout.readline()):
                topic = line.decode().split(" ", 1)[0]
                shown += [topic.rsplit("/", 1)[1]] if "/events/" in topic else []
    finally:
        sub.close()
        readme.kill()
        await readme.wait()
    kinds = [check_message(t, p) for t, p, _ in sub.got]
    assert shown == kinds
    assert kinds[0] == "offload-started" and kinds[-1] == "offload-completed", kinds
    assert kinds.count("file-verified") == 2 and kinds.count("camera-cleared") == 2, kinds
    events = sub.events()
    assert {e["bay"] for e in events} == {None} and {e["camera"] for e in events} == {"CAM0001"}
    assert events[0]["officer"] == {"badge": "A12345", "name": "王小明", "unit": ""}


# ---------------------------------------------------------------------------------------------
# The roster from the server; the bounded outbox


async def test_roster_applied_and_bad_roster_rejected(tmp_path: Path, broker: Broker) -> None:
    import paho.mqtt.publish as publish

    cfg = load(mqtt_config(tmp_path, broker.port))
    sub = Subscriber(broker.port, topic="camdock/v1/test-01/events/#")
    roster_topic = "camdock/v1/test-01/roster"

    def send(payload: bytes) -> None:
        publish.single(
            roster_topic, payload, qos=1, retain=True, hostname="127.0.0.1", port=broker.port
        )

    try:
        async with station_on(cfg) as (station, hot):
            await until(
                lambda: station.publisher is not None and station.publisher.connected.is_set()
            )
            good = {
                "version": 1,
                "date": "2026-11-28",
                "officers": [{"badge": "C99999", "name": "陳小華"}],
                "assignments": [{"camera": "CAM0001", "officer": "C99999"}],
            }
            send(json.dumps(good).encode())
            await until(lambda: "roster-applied" in [e["type"] for e in sub.events()])
            vol = tmp_path / "cam1"
            fill_camera(vol, files=1, size=1000, seed=1, start=START)
            hot.dock("1-1", "SN0001", vol)
            await until(lambda: station.bays[1].state.phase is Phase.DONE)
            names = [p.name for p in (tmp_path / "footage").rglob("*.mp4")]
            assert names and all("_陳小華_C99999_CAM0001_" in n for n in names)

            for bad in (
                json.dumps({**good, "assignments": [{"camera": "CAM9999", "officer": "A12345"}]}),
                "{not json",
                json.dumps({**good, "version": 2}),
                "x" * (300 * 1024),
            ):
                send(bad.encode())
            await until(lambda: [e["type"] for e in sub.events()].count("roster-rejected") == 4)
            assert station.cfg.cameras["SN0001"].officer == "C99999"  # the good one stays
        problems = [e["data"]["problems"] for e in sub.events() if e["type"] == "roster-rejected"]
        assert "CAM9999" in problems[0][0] and "not JSON" in problems[1][0]
        assert "limit" in problems[3][0]
    finally:
        sub.close()


async def test_full_outbox_stops_new_offloads_and_drops_nothing(tmp_path: Path) -> None:
    port = free_port()  # nothing listens: the server is unreachable
    cfg = load(mqtt_config(tmp_path, port, "outbox_limit = 3\n"))
    v1, v2 = tmp_path / "cam1", tmp_path / "cam2"
    fill_camera(v1, files=1, size=1000, seed=1, start=START)
    fill_camera(v2, files=1, size=1000, seed=2, start=START)
    async with station_on(cfg) as (station, hot):
        hot.dock("1-1", "SN0001", v1)  # fewer than 3 waiting: this one runs
        await until(lambda: station.bays[1].state.phase is Phase.DONE)
        hot.dock("1-2", "SN0002", v2)
        await until(lambda: station.bays[2].state.phase is Phase.FAULT)
        assert "event outbox full" in station.bays[2].state.message
        waiting = await station.store.call(outbox.undelivered)
    assert tree_hashes(v2) != {}  # nothing was taken from camera 2
    db = open_catalog(cfg.catalog)
    try:
        count = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
    finally:
        db.close()
    assert count == waiting  # everything recorded is still there, undelivered


def test_monitor_prints_one_json_object_per_message(tmp_path: Path, broker: Broker) -> None:
    import paho.mqtt.publish as publish

    state = {
        "station": "s1",
        "bay": 1,
        "phase": "done",
        "camera": "CAM0001",
        "officer": "王小明",
        "files_total": 1,
        "files_done": 1,
        "bytes_total": 5,
        "bytes_done": 5,
        "message": "",
        "time": "2026-11-28T00:00:00Z",
    }
    publish.single(
        "camdock/v1/s1/bays/1/state",
        json.dumps(state),
        qos=1,
        retain=True,
        hostname="127.0.0.1",
        port=broker.port,
    )
    proc = subprocess.Popen(
        camdock_cmd("monitor", "--broker", f"127.0.0.1:{broker.port}", "--json", "--duration", "5"),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # the retained bay state: the monitor is subscribed
    publish.single(
        "camdock/v1/s1/events/bay-fault",
        json.dumps({"seq": 1, "type": "bay-fault"}),
        qos=1,
        hostname="127.0.0.1",
        port=broker.port,
    )
    out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0
    lines = [json.loads(line) for line in (first + out).splitlines()]
    assert lines[0]["kind"] == "bays" and lines[0]["retained"] and lines[0]["payload"] == state
    assert lines[1]["kind"] == "events" and lines[1]["payload"]["type"] == "bay-fault"
    down = subprocess.run(
        camdock_cmd("monitor", "--broker", f"127.0.0.1:{free_port()}"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert down.returncode == 69 and "Traceback" not in down.stderr


def test_delivered_events_are_pruned_after_the_retention_window(tmp_path: Path) -> None:
    catalog = tmp_path / "c.sqlite"
    topics = Topics("camdock", "p1")
    db = open_catalog(catalog)
    with write_txn(db):
        for _ in range(3):
            record(db, topics, EventType.BAY_FAULT, bay=1, data={"message": "x"})
        db.execute("UPDATE outbox SET delivered_at = '2020-01-01T00:00:00Z' WHERE id = 1")
        db.execute("UPDATE outbox SET delivered_at = '2999-01-01T00:00:00Z' WHERE id = 2")
    db.close()
    store = Store(catalog)
    try:
        assert store.submit(outbox.prune, 30).result() == 1  # only the old, delivered one
        assert store.submit(outbox.undelivered).result() == 1  # undelivered: never pruned
    finally:
        store.close()
    db = open_catalog(catalog)
    try:
        with write_txn(db):
            record(db, topics, EventType.BAY_FAULT, bay=1, data={"message": "after prune"})
        seqs = [r[0] for r in db.execute("SELECT id FROM outbox ORDER BY id")]
    finally:
        db.close()
    assert seqs == [2, 3, 4]  # sequence numbers are never reused


@pytest.mark.parametrize("closing", ["closed before the loop ran", "unregistered first"])
async def test_socket_watches_follow_the_socket_not_a_stale_descriptor(closing: str) -> None:
    """Under a broker restart storm aiomqtt 2.5 logged "Exception in callback
    BaseSelectorEventLoop.add_writer" (issue 12, item 8): paho asks for a write watch from the
    connect thread, aiomqtt defers it to the loop, and the socket is closed (or the watch
    unregistered) before the loop gets to it. Then the deferred add_writer hits a closed
    descriptor, or stays behind on it so that the next connection's socket, reusing the number,
    cannot be watched. Real sockets, the paho calls in the order a failed connect makes them."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    client = Client("127.0.0.1", 1)
    paho = client._client
    a, b = socket.socketpair()

    def connect_thread() -> None:  # as paho does, off the loop
        paho._sock = a  # type: ignore[assignment]
        client._on_socket_register_write(paho, None, a)
        paho._sock = None
        client._on_socket_unregister_write(paho, None, a)
        if closing == "closed before the loop ran":
            client._on_socket_close(paho, None, a)
            a.close()

    t = threading.Thread(target=connect_thread)
    t.start()
    t.join()
    await asyncio.sleep(0.05)
    a.close(), b.close()
    c, d = socket.socketpair()  # likely the same descriptor numbers again
    try:
        loop.add_reader(c.fileno(), lambda: None)  # raised OSError with a stale write watch
        loop.remove_reader(c.fileno())
    finally:
        c.close(), d.close()
    assert errors == []
