"""The index's alarms: one open alarm per (station, kind, key), raised and cleared by the
ingest of a batch and by the gap sweeper (issue 31)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

__all__ = ["Conn", "clear_alarm", "raise_alarm"]

Conn = psycopg.AsyncConnection[Any]


async def raise_alarm(
    conn: Conn, station: str, kind: str, key: str, text: str, event: str | None, now: datetime
) -> int:
    """Open an alarm (or update the text of the open one with the same key); 1 if new."""
    cur = await conn.execute(
        "INSERT INTO alarms (station, kind, key, text, event, raised_at)"
        " VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (station, kind, key) WHERE cleared_at IS NULL"
        " DO UPDATE SET text = excluded.text RETURNING (xmax = 0)",
        (station, kind, key, text[:2000], event, now),
    )
    row = await cur.fetchone()
    return 1 if row and row[0] else 0


async def clear_alarm(conn: Conn, station: str, kind: str, key: str | None, now: datetime) -> None:
    await conn.execute(
        "UPDATE alarms SET cleared_at = %s WHERE station = %s AND kind = %s"
        " AND (%s::text IS NULL OR key = %s) AND cleared_at IS NULL",
        (now, station, kind, key, key),
    )
