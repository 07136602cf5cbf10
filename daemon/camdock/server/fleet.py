"""What the fleet view shows, read from the index: each station's state, backlog, unsealed
days, alarms and today's offloads; recordings searched across stations; a station's custody
witness. Plain queries, one function each; "today" is the server's clock in the unit's zone."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row

__all__ = ["alarms", "recordings", "stations", "witness"]

BUSY = ("identifying", "offloading", "verifying", "interrupted", "storage-missing", "fault")


def _rows(dsn: str, sql: str, args: dict[str, Any]) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        return list(conn.execute(sql.encode(), args).fetchall())


def today(now: datetime, zone: str) -> tuple[date, datetime]:
    """The unit's day at ``now`` and when it began (UTC-aware)."""
    local = now.astimezone(ZoneInfo(zone))
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return local.date(), start


def stations(dsn: str, now: datetime, zone: str) -> list[dict[str, Any]]:
    """Every station with its state and the numbers a supervisor looks at first."""
    day, start = today(now, zone)
    return _rows(
        dsn,
        """
SELECT s.id, s.online, s.last_seen, s.alarm, s.events, s.max_seq,
  (SELECT count(*) FROM bay_states b WHERE b.station = s.id AND b.phase = ANY(%(busy)s))
    AS backlog,
  (SELECT count(DISTINCT r.day) FROM recordings r WHERE r.station = s.id AND r.day < %(day)s
     AND r.destroyed_at IS NULL AND NOT EXISTS (SELECT 1 FROM seals x WHERE x.station = s.id
     AND x.day = r.day AND x.generation IS NOT NULL)) AS unsealed_days,
  (SELECT count(*) FROM alarms a WHERE a.station = s.id AND a.cleared_at IS NULL) AS alarms,
  (SELECT count(*) FROM events e WHERE e.type = 'offload-completed' AND e.station = s.id
     AND e.time >= %(start)s AND e.time < %(end)s) AS offloads_today
FROM stations s ORDER BY s.id""",
        {"busy": list(BUSY), "day": day, "start": start, "end": start + timedelta(days=1)},
    )


def alarms(dsn: str, station: str | None = None) -> list[dict[str, Any]]:
    """Open alarms, newest first."""
    return _rows(
        dsn,
        """
SELECT station, kind, text, raised_at FROM alarms WHERE cleared_at IS NULL
  AND (%(station)s::text IS NULL OR station = %(station)s) ORDER BY raised_at DESC, id DESC
  LIMIT 200""",
        {"station": station},
    )


def recordings(
    dsn: str, officer: str | None, camera: str | None, day: date | None, limit: int = 200
) -> list[dict[str, Any]]:
    """Recordings across stations by officer (badge), camera and duty day, with copies, seal
    state and the holds that keep them."""
    return _rows(
        dsn,
        """
SELECT r.station, r.recording, r.day, r.camera, r.officer, r.officer_name, r.sha256, r.size,
  r.copies, r.damaged, r.destroyed_at, r.recorded_start,
  CASE WHEN s.confirmed_at IS NOT NULL THEN 'confirmed' WHEN s.generation IS NOT NULL
       THEN 'sealed' ELSE 'unsealed' END AS seal,
  (SELECT count(*) FROM holds h WHERE h.station = r.station AND h.released_at IS NULL AND (
     h.recording = r.recording OR (h.recording IS NULL
       AND (h.officer IS NULL OR h.officer = r.officer)
       AND (h.camera IS NULL OR h.camera = r.camera)
       AND (h.range_start IS NULL OR r.recorded_start >= h.range_start)
       AND (h.range_end IS NULL OR r.recorded_start < h.range_end)))) AS holds
FROM recordings r LEFT JOIN seals s ON s.station = r.station AND s.day = r.day
WHERE (%(officer)s::text IS NULL OR r.officer = %(officer)s)
  AND (%(camera)s::text IS NULL OR r.camera = %(camera)s)
  AND (%(day)s::date IS NULL OR r.day = %(day)s)
ORDER BY r.day DESC, r.station, r.recording LIMIT %(limit)s""",
        {"officer": officer or None, "camera": camera or None, "day": day, "limit": limit},
    )


def witness(dsn: str, station: str, limit: int = 100) -> list[dict[str, Any]]:
    """The custody heads witnessed from one station, newest first."""
    return _rows(
        dsn,
        """
SELECT h.seq, h.hash, h.seen_at, e.seq AS event_seq, e.type FROM custody_heads h
  JOIN events e ON e.id = h.event WHERE h.station = %(station)s ORDER BY h.seq DESC
  LIMIT %(limit)s""",
        {"station": station, "limit": limit},
    )
