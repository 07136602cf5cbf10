"""The station server's index (issue 31) against a real PostgreSQL: the contract check, the
versioned schema, idempotent ingest, sequence gaps, the custody witness, the recordings index.
The broker's side is in test_server_cluster.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from camdock import passwords
from camdock.errors import ConfigError
from camdock.server import config as server_config
from camdock.server.contract import (
    CONTRACT,
    Event,
    Rejected,
    Status,
    classify,
    topic_to_routing_key,
)
from camdock.server.engines import Postgres
from camdock.server.fleetsim import SimStation, shift_change
from camdock.server.gaps import sweep_gaps
from camdock.server.ingest import write_batch
from camdock.server.schema import MIGRATIONS, migrate
from serverengines import fresh_db, query

pytest_plugins = ["serverfixtures"]  # the session's PostgreSQL and RabbitMQ cluster

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)


@pytest.fixture
def dsn(pg: Postgres) -> str:
    url = fresh_db(pg)
    migrate(url)
    return url


def msg(topic: str, payload: bytes) -> tuple[str, Any]:
    key = topic_to_routing_key(topic)
    return key, classify("camdock", key, payload)


async def ingest(dsn: str, items: list[tuple[str, Any]], now: datetime = NOW) -> Any:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        return await write_batch(conn, items, now)


def test_the_packaged_contract_is_the_documented_one() -> None:
    """The server checks events against its own copy of docs/asyncapi.yaml (it must run from
    a wheel); the copy may never drift from the document."""
    assert CONTRACT.read_bytes() == (ROOT / "docs" / "asyncapi.yaml").read_bytes()


def test_the_consumer_s_direct_delivery_still_fits_the_installed_aiormq() -> None:
    """The consumer takes deliveries from aiormq's frame reader without a task per message
    (consumer.deliver_into); an aiormq that renamed what it relies on would silently fall back
    to the callback, costing half again the client's CPU (bench/RESULTS.md): fail here first."""
    import inspect

    import aiormq

    for name in ("_get_frame", "_read_content", "_on_deliver_frame"):
        assert callable(getattr(aiormq.Channel, name, None)), name
    assert "self._on_deliver_frame(frame)" in inspect.getsource(aiormq.Channel._reader)


def test_hostile_and_malformed_messages_are_rejected_with_a_reason() -> None:
    st = SimStation("st1", [])
    topic, good = st.event("custody-head", {})
    assert isinstance(classify("camdock", topic_to_routing_key(topic), good), Event)
    body = json.loads(good)
    cases = {
        "station 'st2' is not its topic's": json.dumps({**body, "station": "st2"}).encode(),
        "oversized": b"{" + b" " * 70_000 + b"}",
        "event is not a JSON object": b"[1, 2",
        "not UTF-8": b"\xff\xfe",
        "custody-head": json.dumps({**body, "seq": -1}).encode(),  # schema violation
        "custody-head: data.type": json.dumps({**body, "type": "bay-fault"}).encode(),
    }
    for reason, payload in cases.items():
        got = classify("camdock", topic_to_routing_key(topic), payload)
        assert isinstance(got, Rejected) and got.station == "st1", (reason, got)
        assert got.reason.startswith(reason), (reason, got.reason)
    assert isinstance(classify("camdock", "other.v1.st1.status", b"online"), Rejected)
    assert isinstance(classify("camdock", "camdock.v1.st1.events.no-such", good), Rejected)
    assert classify("camdock", "camdock.v1.st1.status", b"offline") == Status("st1", False)
    # A station id with a dot survives the MQTT plugin's '/' <-> '.' swap.
    assert topic_to_routing_key("camdock/v1/tp.east-3/status") == "camdock.v1.tp/east-3.status"
    assert classify("camdock", "camdock.v1.tp/east-3.status", b"online") == Status(
        "tp.east-3", True
    )


def test_server_config_lists_every_problem(tmp_path: Path) -> None:
    cfg = tmp_path / "server.toml"
    cfg.write_text(
        '[server]\nconsumers = 0\ntypo = 1\n[[users]]\nid = "S1"\nname = "x"\n'
        'role = "custodian"\npassword = "plain"\n'
    )
    with pytest.raises(ConfigError) as err:
        server_config.load(cfg)
    text = str(err.value)
    assert "consumers" in text and "typo" in text and "role" in text and "scrypt" in text
    good = passwords.hash_password("pw")
    cfg.write_text(
        f'[server]\namqp = ["amqp://u@h1:5672/", "amqp://u@h2:5672/"]\n'
        f'[[users]]\nid = "S1"\nname = "林主任"\nrole = "supervisor"\n'
        f'password = "{good}"\n'
    )
    loaded = server_config.load(cfg)
    assert len(loaded.amqp) == 2 and loaded.users[0].role == "supervisor"


def test_migrations_are_versioned_and_applied_once(pg: Postgres) -> None:
    url = fresh_db(pg)
    assert migrate(url) == len(MIGRATIONS)
    assert migrate(url) == len(MIGRATIONS)  # again: nothing to do
    rows = query(url, "SELECT version FROM schema_migrations ORDER BY version")
    assert [r[0] for r in rows] == list(range(1, len(MIGRATIONS) + 1))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (99, 'future')")
    with pytest.raises(Exception, match="newer than this server"):
        migrate(url)


async def test_an_event_delivered_twice_is_one_row_and_the_recordings_are_indexed(
    dsn: str,
) -> None:
    st = SimStation("st1", [])
    events = [msg(t, p) for t, p in shift_change(st, bays=2, files=3)]
    first = await ingest(dsn, events)
    again = await ingest(dsn, events[::-1])  # redelivered, in another order
    assert first.inserted == len(events) and again.inserted == 0
    assert again.duplicates == len(events)
    assert query(dsn, "SELECT count(*) FROM events") == [(len(events),)]
    rows = query(
        dsn, "SELECT station, officer, camera, day::text, copies FROM recordings ORDER BY recording"
    )
    assert len(rows) == 6
    assert rows[0] == ("st1", "st1-B1", "st1-C1", "2026-11-29", 2)
    assert query(dsn, "SELECT events, first_seq, max_seq FROM stations") == [
        (len(events), 1, len(events))
    ]
    assert query(dsn, "SELECT count(*) FROM alarms") == [(0,)]


async def test_recordings_indexed_in_one_statement_keep_the_events_order(dsn: str) -> None:
    """Recordings of one batch go in as one statement per run of ``file-verified`` events; a
    recording verified twice in the batch, then destroyed (REG-4.3.1), ends destroyed with
    no copies, as if each event had been written alone."""
    st = SimStation("st1", [])
    events = [msg(t, p) for t, p in shift_change(st, bays=2, files=2)]
    verified = [m for _, m in events if m.body["type"] == "file-verified"]
    first = verified[0].body["data"]
    again = st.event(
        "file-verified", {**first, "destinations": 1, "already_catalogued": True}, 1, "st1-C1"
    )
    destroyed = st.event(
        "recording-destroyed",
        {
            "recording": first["recording"],
            "by": "custodian",
            "sha256": first["sha256"],
            "size": first["size"],
            "path": first["path"],
            "authority": "standing",
            "reason": "REG-4.3.1 past retention",
            "copies": [],
        },
        1,
        "st1-C1",
    )
    result = await ingest(dsn, [*events, msg(*again), msg(*destroyed)])
    assert result.inserted == len(events) + 2 and not result.rejected
    rows = query(
        dsn,
        "SELECT recording, copies, destroyed_at IS NOT NULL FROM recordings ORDER BY recording",
    )
    assert rows[0] == (first["recording"], 0, True)
    assert [r[1:] for r in rows[1:]] == [(2, False)] * 3


async def test_a_gap_is_an_alarm_only_once_it_lasts_and_clears_when_filled(dsn: str) -> None:
    st = SimStation("st1", [])
    events = [msg(t, p) for t, p in shift_change(st, bays=1, files=2)]
    held = events.pop(3)
    await ingest(dsn, events)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        assert await sweep_gaps(conn, NOW, 30) == 1
        assert query(dsn, "SELECT count(*) FROM alarms WHERE kind = 'gap'") == [(0,)]
        assert await sweep_gaps(conn, NOW + timedelta(seconds=31), 30) == 1
        assert query(dsn, "SELECT text FROM alarms WHERE kind = 'gap' AND cleared_at IS NULL")[0][
            0
        ].startswith("event #4 missing")
        await ingest(dsn, [held])
        assert await sweep_gaps(conn, NOW + timedelta(seconds=40), 30) == 0
    assert query(dsn, "SELECT count(*) FROM alarms WHERE cleared_at IS NULL") == [(0,)]


async def test_a_custody_head_that_goes_backwards_or_forks_is_an_alarm(dsn: str) -> None:
    st = SimStation("st1", [])
    a = msg(*st.event("custody-head", {}))
    st.chain.grow()
    st.chain.grow()
    b = msg(*st.event("custody-head", {}))  # custody #2
    # Arrives before a (competing consumers): still in order by seq, no alarm.
    await ingest(dsn, [b])
    await ingest(dsn, [a])
    assert query(dsn, "SELECT count(*) FROM alarms") == [(0,)]
    st.chain.seq = 1  # the station's chain was cut back to #1 …
    c = msg(*st.event("custody-head", {}))
    st.chain.seq, st.chain.hash = 2, "f" * 64  # … and #2 rewritten
    d = msg(*st.event("custody-head", {}))
    await ingest(dsn, [d, c])
    kinds = query(dsn, "SELECT kind, text FROM alarms ORDER BY id")
    assert ("custody-backwards" in {k for k, _ in kinds}) and (
        "custody-fork" in {k for k, _ in kinds}
    ), kinds
    heads = query(dsn, "SELECT seq FROM custody_heads WHERE station = 'st1' ORDER BY seq")
    assert [h[0] for h in heads] == [0, 1, 2]


async def test_status_alarms_and_a_reused_seq(dsn: str) -> None:
    st = SimStation("st1", [])
    t, p = st.event("custody-head", {})
    body = json.loads(p)
    other = json.dumps({**body, "id": "01890a5d-ac96-774b-bcce-b302099a8057"}).encode()
    await ingest(
        dsn,
        [
            msg("camdock/v1/st1/status", b"online"),
            msg(t, p),
            msg("camdock/v1/st1/alarm", "狀態磁碟已滿 state disk full".encode()),
        ],
    )
    result = await ingest(dsn, [msg(t, other), msg("camdock/v1/st1/status", b"offline")])
    assert result.rejected["seq reused"] == 1
    assert query(dsn, "SELECT online, alarm FROM stations") == [
        (False, "狀態磁碟已滿 state disk full")
    ]
    kinds = sorted(k for (k,) in query(dsn, "SELECT kind FROM alarms WHERE cleared_at IS NULL"))
    assert kinds == ["seq-reused", "station"]
    await ingest(dsn, [msg("camdock/v1/st1/alarm", b"")])
    assert query(dsn, "SELECT alarm FROM stations") == [(None,)]


async def test_a_value_the_index_cannot_hold_is_rejected_alone(pg: Postgres) -> None:
    """A seq beyond 64 bits is valid JSON Schema but no bigint: the batch falls back to one
    message at a time, the hostile one is rejected and counted, the others are kept."""
    from camdock.server.config import ServerConfig
    from camdock.server.consumer import Server

    url = fresh_db(pg)
    migrate(url)
    st = SimStation("st1", [])
    good = [msg(t, p) for t, p in shift_change(st, bays=1, files=1)]
    t, p = st.event("custody-head", {})
    bad = msg(t, json.dumps({**json.loads(p), "seq": 10**30}).encode())
    server = Server(ServerConfig(dsn=url))
    async with await psycopg.AsyncConnection.connect(url) as conn:
        result = await server._write(conn, [*good[:2], bad, *good[2:]])
    assert result.inserted == len(good)
    assert list(result.rejected) == ["refused by the index"]
    assert query(url, "SELECT count(*) FROM rejected") == [(1,)]


@pytest.fixture(scope="module")
def fleet_dsn(pg: Postgres) -> str:
    """An index with two stations' shift change, one of them offline with an alarm."""
    import asyncio

    url = fresh_db(pg)
    migrate(url)
    items = []
    for name in ("台北-1", "tp-2"):
        st = SimStation(name, [])
        items += [msg(t, p) for t, p in shift_change(st, bays=2, files=2)]
    items.append(msg("camdock/v1/tp-2/status", b"offline"))
    items.append(msg("camdock/v1/台北-1/status", b"online"))
    asyncio.run(ingest(url, items))
    return url


@pytest.fixture(scope="module")
def client(fleet_dsn: str) -> Iterator[Any]:
    from starlette.testclient import TestClient

    from camdock.server.config import ServerConfig, User
    from camdock.server.web import make_app

    hashed = passwords.hash_password("pw-林")
    cfg = ServerConfig(
        dsn=fleet_dsn,
        users=(User("S1", "林主任", "supervisor", hashed), User("A1", "陳稽核", "auditor", hashed)),
    )
    with TestClient(make_app(cfg)) as c:
        yield c


def login(client: Any, user: str, password: str) -> Any:
    page = client.get("/login")
    token = page.text.split('name="csrf" value="')[1].split('"')[0]
    return client.post(
        "/login", data={"csrf": token, "user": user, "password": password}, follow_redirects=False
    )


def test_the_fleet_view_needs_a_login_of_its_own(client: Any) -> None:
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    assert login(client, "S1", "wrong").status_code == 401
    assert login(client, "nobody", "pw-林").status_code == 401
    res = client.post("/login", data={"csrf": "forged", "user": "S1", "password": "pw-林"})
    assert res.status_code == 401 and "expired" in res.text


def test_stations_recordings_and_the_custody_witness(client: Any) -> None:
    # The server's clock is the test's (2026-11-29 in the station's zone): today's offloads.
    assert login(client, "S1", "pw-林").status_code == 303
    page = client.get("/")
    assert page.status_code == 200 and "林主任" in page.text
    assert "站台" in page.text and "Stations" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    rows = client.get("/?format=json").json()["stations"]
    by_id = {r["id"]: r for r in rows}
    assert by_id["台北-1"]["online"] is True and by_id["tp-2"]["online"] is False
    assert by_id["tp-2"]["offloads_today"] == 2 and by_id["tp-2"]["alarms"] == 0
    found = client.get("/recordings", params={"officer": "tp-2-B1", "format": "json"}).json()
    assert [r["station"] for r in found["recordings"]] == ["tp-2", "tp-2"]
    assert {r["seal"] for r in found["recordings"]} == {"unsealed"}
    page = client.get("/recordings", params={"camera": "台北-1-C2", "day": "2026-11-29"})
    assert page.text.count("台北-1-C2") >= 2 and "未封存 unsealed" in page.text
    assert "YYYY-MM-DD" in client.get("/recordings", params={"day": "29/11"}).text
    witness = client.get("/stations/tp-2?format=json").json()["heads"]
    assert [h["seq"] for h in witness][:3] == [len(witness) - 1, len(witness) - 2, len(witness) - 3]
    assert "監管鏈見證" in client.get("/stations/tp-2").text
    client.post("/logout")
    assert login(client, "A1", "pw-林").status_code == 303
    assert "稽核 auditor" in client.get("/").text
