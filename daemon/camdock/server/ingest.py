"""One batch of messages into the index, in one transaction (the consumer acknowledges the
batch only after it commits).

Idempotent: an event is one row by its id (``ON CONFLICT DO NOTHING``) and everything derived
from it (recordings, seals, holds, the custody witness, alarms) is written only for the rows
this batch actually inserted, so a redelivered or resent event changes nothing. Competing
consumers take the rows of the batch's stations ``FOR UPDATE``, in id order (no deadlock), so
one station's events are judged one batch at a time whichever consumer holds them.

The custody witness (invariant 6): each event carries the head of the station's custody chain
when it was recorded. Ordered by the station's event ``seq``, the heads never go backwards,
and one custody seq has one hash. Events arrive out of order across consumers, so each new
event is compared with its neighbours by ``seq`` as they stand: every adjacent pair of the
final order is compared once, when the later of the two arrives, which finds any inversion.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import psycopg

from camdock.server.alarms import clear_alarm as _clear
from camdock.server.alarms import raise_alarm as _raise
from camdock.server.contract import (
    BayState,
    Event,
    Ignored,
    Message,
    Rejected,
    StationAlarm,
    Status,
)

__all__ = ["BatchResult", "write_batch"]

Conn = psycopg.AsyncConnection[Any]


@dataclass
class BatchResult:
    """What one batch did."""

    inserted: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    alarms: int = 0
    ignored: int = 0


async def write_batch(conn: Conn, batch: list[tuple[str, Message]], now: datetime) -> BatchResult:
    """Write ``batch`` (routing key, classified message) in one transaction."""
    result = BatchResult()
    async with conn.transaction():
        stations = sorted({m.station for _, m in batch if not isinstance(m, Rejected | Ignored)})
        if stations:
            await conn.execute(
                "INSERT INTO stations (id) SELECT unnest(%b::text[]) ON CONFLICT DO NOTHING",
                (stations,),
            )
            await conn.execute(
                "SELECT id FROM stations WHERE id = ANY(%b::text[]) ORDER BY id FOR UPDATE",
                (stations,),
            )
        events: dict[str, Event] = {}
        for key, m in batch:
            match m:
                case Rejected():
                    await _reject(conn, key, m.station, m.reason, m.size, now, result)
                case Ignored():
                    result.ignored += 1
                case Status():
                    await conn.execute(
                        "UPDATE stations SET online = %s, status_at = %s, last_seen = %s"
                        " WHERE id = %s",
                        (m.online, now, now, m.station),
                    )
                case StationAlarm():
                    await _station_alarm(conn, m, now, result)
                case BayState():
                    await conn.execute(
                        "INSERT INTO bay_states (station, bay, phase, body, time)"
                        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (station, bay) DO UPDATE"
                        " SET phase = excluded.phase, body = excluded.body, time = excluded.time"
                        " WHERE bay_states.time <= excluded.time",
                        (m.station, m.bay, m.body["phase"], json.dumps(m.body), m.body["time"]),
                    )
                    await conn.execute(
                        "UPDATE stations SET last_seen = %s WHERE id = %s", (now, m.station)
                    )
                case Event():
                    events.setdefault(m.body["id"], m)
        if events:
            await _events(conn, list(events.values()), now, result)
    return result


async def _reject(
    conn: Conn,
    key: str,
    station: str | None,
    reason: str,
    size: int,
    now: datetime,
    result: BatchResult,
) -> None:
    result.rejected[reason.split(":")[0]] += 1
    await conn.execute(
        "INSERT INTO rejected (received_at, routing_key, station, reason, size)"
        " VALUES (%s, %s, %s, %s, %s)",
        (now, key[:500], station[:200] if station else None, reason[:1000], size),
    )


async def _station_alarm(conn: Conn, m: StationAlarm, now: datetime, result: BatchResult) -> None:
    text = m.text.strip()
    await conn.execute(
        "UPDATE stations SET alarm = %s, last_seen = %s WHERE id = %s",
        (text or None, now, m.station),
    )
    if text:
        result.alarms += await _raise(conn, m.station, "station", "alarm", text, None, now)
    else:
        await _clear(conn, m.station, "station", "alarm", now)


async def _events(conn: Conn, events: list[Event], now: datetime, result: BatchResult) -> None:
    """A batch: each event stored once (by its id), a reused sequence number alarmed, then
    what the new ones change (recordings, alarms, the custody witness, the stations)."""
    new_ids = await _insert(conn, events, now)
    ids = [e.body["id"] for e in events]
    missing = [i for i in ids if i not in new_ids]
    if missing:
        await _reused(conn, [e for e in events if e.body["id"] in missing], now, result)
    new = sorted(
        (e for e in events if e.body["id"] in new_ids), key=lambda e: (e.station, e.body["seq"])
    )
    result.inserted += len(new)
    if not new:
        return
    await _derived(conn, new, now, result)
    await _witness(conn, new, now, result)
    await _seen(conn, new, now)


async def _insert(conn: Conn, events: list[Event], now: datetime) -> set[str]:
    """The batch into ``events`` in one statement; the ids that were new."""
    ids = [e.body["id"] for e in events]
    cols: list[list[Any]] = [
        ids,
        [e.station for e in events],
        [e.body["seq"] for e in events],
        [e.body["type"] for e in events],
        [e.body["time"] for e in events],
        [e.body["bay"] for e in events],
        [e.body["camera"] for e in events],
        [(e.body["officer"] or {}).get("badge") for e in events],
        [e.body["custody"]["seq"] for e in events],
        [e.body["custody"]["hash"] for e in events],
        [e.text or json.dumps(e.body, ensure_ascii=False) for e in events],
    ]
    cur = await conn.execute(
        "INSERT INTO events (id, station, seq, type, time, bay, camera, officer, custody_seq,"
        " custody_hash, body, received_at)"
        " SELECT i, s, q, t, tm::timestamptz, b, c, o, cs, ch, bd::jsonb, %s FROM unnest("
        # %b: binary arrays; in text psycopg escapes every quote of every body with a regex,
        # which took three quarters of the server's time (bench/RESULTS.md).
        "%b::uuid[], %b::text[], %b::bigint[], %b::text[], %b::text[], %b::int[], %b::text[],"
        " %b::text[], %b::bigint[], %b::text[], %b::text[])"
        " AS n(i, s, q, t, tm, b, c, o, cs, ch, bd)"
        " ON CONFLICT DO NOTHING RETURNING id::text",
        (now, *cols),
    )
    return {str(r[0]) for r in await cur.fetchall()}


async def _reused(conn: Conn, events: list[Event], now: datetime, result: BatchResult) -> None:
    """Events that were not new: a duplicate (the same id again, counted), or a station's
    sequence number under another id (rejected and alarmed)."""
    cur = await conn.execute(
        "SELECT id::text FROM events WHERE id = ANY(%b::uuid[])", ([e.body["id"] for e in events],)
    )
    known = {str(r[0]) for r in await cur.fetchall()}
    result.duplicates += len(known)
    for e in events:
        if e.body["id"] in known:
            continue
        # Same station and seq as a stored event under another id: a station whose sequence
        # restarted, or one that is not what it says.
        text = f"event #{e.body['seq']} arrived again under another id {e.body['id']}"
        where = f"events/{e.body['type']}"
        await _reject(conn, where, e.station, f"seq reused: {text}", e.size, now, result)
        result.alarms += await _raise(
            conn, e.station, "seq-reused", str(e.body["seq"]), text, None, now
        )


async def _derived(conn: Conn, new: list[Event], now: datetime, result: BatchResult) -> None:
    """What the new events change, in one round trip (a pipeline)."""
    async with conn.pipeline():  # one round trip for the batch's derived writes
        # Recordings (a third of a shift change's events) go in one statement per run of
        # them; a run ends before an event that changes a recording row, so the order holds.
        run: dict[tuple[str, int], Event] = {}
        for e in new:
            if e.body["type"] == "file-verified":
                key = (e.station, e.body["data"]["recording"])
                if key in run:  # one statement may not change a row twice
                    await _recordings(conn, list(run.values()))
                    run.clear()
                run[key] = e
                continue
            if run and e.body["type"] in _TOUCH_RECORDINGS:
                await _recordings(conn, list(run.values()))
                run.clear()
            await _derive(conn, e, now, result)
        if run:
            await _recordings(conn, list(run.values()))


async def _seen(conn: Conn, new: list[Event], now: datetime) -> None:
    """Each station's last seen time, sequence range and event count."""
    per_station: dict[str, list[int]] = {}
    for e in new:
        per_station.setdefault(e.station, []).append(e.body["seq"])
    await conn.execute(
        "UPDATE stations s SET last_seen = greatest(s.last_seen, %s),"
        " first_seq = least(coalesce(s.first_seq, n.lo), n.lo),"
        " max_seq = greatest(coalesce(s.max_seq, n.hi), n.hi), events = s.events + n.c"
        " FROM unnest(%b::text[], %b::bigint[], %b::bigint[], %b::bigint[]) AS n(id, lo, hi, c)"
        " WHERE s.id = n.id",
        (
            now,
            list(per_station),
            [min(q) for q in per_station.values()],
            [max(q) for q in per_station.values()],
            [len(q) for q in per_station.values()],
        ),
    )


_TOUCH_RECORDINGS = frozenset({"recording-destroyed", "copy-damaged", "copy-repaired"})


async def _recordings(conn: Conn, verified: list[Event]) -> None:
    """Index the recordings of ``file-verified`` events (REG-4.2.3: filed by duty day)."""
    rows = []
    for e in verified:
        b, d = e.body, e.body["data"]
        officer = b["officer"] or {}
        rows.append(
            (
                e.station,
                d["recording"],
                d["sha256"],
                d["size"],
                d["path"],
                _day(d["path"], b["time"]),
                b["camera"],
                d.get("officer", officer.get("badge")),
                officer.get("name"),
                d.get("attribution"),
                d["recorded_start"],
                d["destinations"],
                b["id"],
            )
        )
    cols = [list(c) for c in zip(*rows, strict=True)]
    await conn.execute(
        "INSERT INTO recordings (station, recording, sha256, size, path, day, camera, officer,"
        " officer_name, attribution, recorded_start, copies, event)"
        " SELECT st, r, h, sz, p, dy, c, o, nm, a, rs::timestamptz, cp, ev FROM unnest("
        "%b::text[], %b::bigint[], %b::text[], %b::bigint[], %b::text[], %b::date[], %b::text[],"
        " %b::text[], %b::text[], %b::text[], %b::text[], %b::int[], %b::uuid[])"
        " AS n(st, r, h, sz, p, dy, c, o, nm, a, rs, cp, ev)"
        " ON CONFLICT (station, recording) DO UPDATE"
        " SET copies = greatest(recordings.copies, excluded.copies)",
        cols,
    )


async def _witness(conn: Conn, new: list[Event], now: datetime, result: BatchResult) -> None:
    stations = [e.station for e in new]
    seqs = [e.body["seq"] for e in new]
    cseqs = [e.body["custody"]["seq"] for e in new]
    hashes = [e.body["custody"]["hash"] for e in new]
    ids = [e.body["id"] for e in new]
    cur = await conn.execute(
        "SELECT n.s, n.q, n.cs, p.seq, p.custody_seq, x.seq, x.custody_seq, n.i::text FROM"
        " unnest(%b::text[], %b::bigint[], %b::bigint[], %b::uuid[]) AS n(s, q, cs, i)"
        " LEFT JOIN LATERAL (SELECT seq, custody_seq FROM events e WHERE e.station = n.s"
        "  AND e.seq < n.q ORDER BY e.seq DESC LIMIT 1) p ON true"
        " LEFT JOIN LATERAL (SELECT seq, custody_seq FROM events e WHERE e.station = n.s"
        "  AND e.seq > n.q ORDER BY e.seq LIMIT 1) x ON true"
        " WHERE p.custody_seq > n.cs OR x.custody_seq < n.cs",
        (stations, seqs, cseqs, ids),
    )
    for st, q, cs, pq, pcs, xq, xcs, event in await cur.fetchall():
        if pcs is not None and pcs > cs:
            a, b, ca, cb = pq, q, pcs, cs
        else:
            a, b, ca, cb = q, xq, cs, xcs
        text = (
            f"custody head went backwards: event #{b} carries custody #{cb}"
            f" after event #{a} carried #{ca}"
        )
        result.alarms += await _raise(conn, st, "custody-backwards", f"{a}-{b}", text, event, now)
    await conn.execute(
        "INSERT INTO custody_heads (station, seq, hash, event, seen_at)"
        " SELECT s, cs, h, i, %s FROM unnest(%b::text[], %b::bigint[], %b::text[], %b::uuid[])"
        " AS n(s, cs, h, i) ON CONFLICT DO NOTHING",
        (now, stations, cseqs, hashes, ids),
    )
    cur = await conn.execute(
        "SELECT DISTINCT n.s, n.cs, n.h, h.hash, n.i::text FROM unnest(%b::text[],"
        " %b::bigint[], %b::text[], %b::uuid[]) AS n(s, cs, h, i)"
        " JOIN custody_heads h ON h.station = n.s AND h.seq = n.cs WHERE h.hash <> n.h",
        (stations, cseqs, hashes, ids),
    )
    for st, cs, got, kept, event in await cur.fetchall():
        text = f"custody chain forked at #{cs}: {got[:12]}… where {kept[:12]}… was witnessed"
        result.alarms += await _raise(conn, st, "custody-fork", str(cs), text, event, now)


# Events that are alarms in themselves: (kind, key) of the alarm they open.
def _alarm_key(e: Event) -> str | None:
    d = e.body["data"]
    match e.body["type"]:
        case "bay-fault":
            return f"bay {e.body['bay']}"
        case "storage-missing":
            return str(d["drive"])
        case "catalog-backup-failed":
            return str(d["destination"])
        case "copy-damaged":
            return f"{d['recording']}:{d['destination']}"
        case "retention-alarm" | "seal-alarm":
            return str(e.body["type"])
        case "offload-failed" | "selftest-failed" | "access-refused":
            return str(e.body["id"])
    return None


def _alarm_text(e: Event) -> str:
    d = e.body["data"]
    match e.body["type"]:
        case "bay-fault":
            return str(d["message"])
        case "storage-missing":
            return f"{d['drive']} {d['root']}: {d['reason']}"
        case "catalog-backup-failed":
            return f"{d['destination']}: {d['error']}"
        case "copy-damaged":
            return f"recording {d['recording']} {d['destination']}: {d['damage']}"
        case "retention-alarm" | "seal-alarm":
            return "; ".join(d["alarms"])
        case "offload-failed":
            return f"bay {e.body['bay']} camera {e.body['camera']}: {d.get('error')}"
        case "selftest-failed":
            return str(d["supervisor_notice"])
        case "access-refused":
            return f"{d['by']} {d['attempted']}: {d['reason']}"
    return str(e.body["type"])


def _day(path: str, fallback: str) -> date:
    try:
        return date(int(path[0:4]), int(path[5:7]), int(path[8:10]))
    except ValueError:
        return date.fromisoformat(fallback[:10])


async def _derive(conn: Conn, e: Event, now: datetime, result: BatchResult) -> None:
    """What a newly inserted event changes beyond its own row."""
    b, d, st = e.body, e.body["data"], e.station
    kind = b["type"]
    if (key := _alarm_key(e)) is not None:
        if kind in ("retention-alarm", "seal-alarm") and not d["alarms"]:
            await _clear(conn, st, kind, key, now)
        else:
            result.alarms += await _raise(conn, st, kind, key, _alarm_text(e), b["id"], now)
    match kind:
        case "recording-destroyed":
            await conn.execute(
                "UPDATE recordings SET destroyed_at = %s, copies = 0"
                " WHERE station = %s AND recording = %s",
                (b["time"], st, d["recording"]),
            )
        case "copy-damaged":
            await conn.execute(
                "UPDATE recordings SET damaged = damaged + 1 WHERE station = %s AND recording = %s",
                (st, d["recording"]),
            )
        case "copy-repaired":
            await conn.execute(
                "UPDATE recordings SET damaged = greatest(damaged - 1, 0)"
                " WHERE station = %s AND recording = %s",
                (st, d["recording"]),
            )
            await _clear(conn, st, "copy-damaged", f"{d['recording']}:{d['destination']}", now)
        case "storage-restored":
            await _clear(conn, st, "storage-missing", None, now)
        case "catalog-backed-up":
            await _clear(conn, st, "catalog-backup-failed", str(d["destination"]), now)
        case "camera-removed":
            await _clear(conn, st, "bay-fault", f"bay {b['bay']}", now)
        case "day-sealed":
            await conn.execute(
                "INSERT INTO seals (station, day, generation, members, sealed_at, sealed_by)"
                " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (station, day) DO UPDATE"
                " SET generation = excluded.generation, members = excluded.members,"
                " sealed_at = excluded.sealed_at, sealed_by = excluded.sealed_by,"
                " confirmed_by = NULL, confirmed_at = NULL"
                " WHERE seals.sealed_at <= excluded.sealed_at",
                (st, d["day"], d["generation"], d["members"], b["time"], d["by"]),
            )
        case "seal-confirmed":
            await conn.execute(
                "UPDATE seals SET confirmed_by = %s, confirmed_at = %s WHERE station = %s"
                " AND day = %s AND generation IS NOT DISTINCT FROM %s",
                (d["by"], b["time"], st, d["day"], d["generation"]),
            )
        case "hold-placed":
            await conn.execute(
                "INSERT INTO holds (station, hold, kind, case_ref, recording, officer, camera,"
                " range_start, range_end, placed_at) VALUES"
                " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (
                    st,
                    d["hold"],
                    d["kind"],
                    d["case_ref"],
                    d.get("recording_id"),
                    d.get("officer_badge"),
                    d.get("camera_id"),
                    d.get("range_start"),
                    d.get("range_end"),
                    b["time"],
                ),
            )
        case "hold-released":
            await conn.execute(
                "UPDATE holds SET released_at = %s WHERE station = %s AND hold = %s",
                (b["time"], st, d["hold"]),
            )
