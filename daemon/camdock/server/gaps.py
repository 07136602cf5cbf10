"""Per-station sequence gaps (issue 31): events race each other between competing consumers,
so a missing seq becomes an alarm only once it has lasted; it clears when the event arrives."""

from __future__ import annotations

from datetime import datetime

from camdock.server.alarms import Conn, clear_alarm, raise_alarm

__all__ = ["sweep_gaps"]


async def sweep_gaps(conn: Conn, now: datetime, grace_seconds: float) -> int:
    """Find each station's missing event seqs; a gap still open after ``grace_seconds`` (events
    race each other between competing consumers, and a station resends what was not
    acknowledged) is an alarm, cleared when it fills. Returns the open gaps."""
    cur = await conn.execute(
        "SELECT id FROM stations WHERE max_seq - first_seq + 1 > events"
        " OR id IN (SELECT station FROM gaps) ORDER BY id"
    )
    open_gaps = 0
    for (station,) in await cur.fetchall():
        async with conn.transaction():
            await conn.execute("SELECT 1 FROM stations WHERE id = %s FOR UPDATE", (station,))
            cur = await conn.execute(
                "SELECT prev + 1, seq - 1 FROM (SELECT seq, lag(seq) OVER (ORDER BY seq) AS prev"
                " FROM events WHERE station = %s) s WHERE seq - prev > 1",
                (station,),
            )
            gaps = {int(a): int(b) for a, b in await cur.fetchall()}
            cur = await conn.execute(
                "SELECT from_seq, to_seq, first_seen FROM gaps WHERE station = %s", (station,)
            )
            known = {int(a): (int(b), t) for a, b, t in await cur.fetchall()}
            for a in set(known) - set(gaps):
                await conn.execute(
                    "DELETE FROM gaps WHERE station = %s AND from_seq = %s", (station, a)
                )
                await clear_alarm(conn, station, "gap", str(a), now)
            for a, b in gaps.items():
                open_gaps += 1
                if a not in known or known[a][0] != b:
                    await conn.execute(
                        "INSERT INTO gaps (station, from_seq, to_seq, first_seen)"
                        " VALUES (%s, %s, %s, %s) ON CONFLICT (station, from_seq)"
                        " DO UPDATE SET to_seq = excluded.to_seq",
                        (station, a, b, now),
                    )
                first = known[a][1] if a in known else now
                if (now - first).total_seconds() >= grace_seconds:
                    what = f"event #{a}" if a == b else f"events #{a}–#{b}"
                    await raise_alarm(
                        conn,
                        station,
                        "gap",
                        str(a),
                        f"{what} missing (since {first:%H:%M:%S} UTC)",
                        None,
                        now,
                    )
    return open_gaps
