"""The index's schema, as numbered migrations applied in order, each in its own transaction
and recorded in ``schema_migrations``; a server refuses a database newer than itself.

Times are ``timestamptz`` written by the server from its clock (camdock.clock), never the
database's ``now()``: tests set the moment, and the index agrees with the stations' UTC.
"""

from __future__ import annotations

from typing import Any

import psycopg

from camdock.errors import CamdockError

__all__ = ["MIGRATIONS", "migrate", "version"]

MIGRATIONS: list[tuple[str, str]] = [
    (
        "events, stations, recordings, seals, holds, custody witness, alarms, rejected",
        """
CREATE TABLE stations (
    id          text PRIMARY KEY,
    online      boolean,
    status_at   timestamptz,
    last_seen   timestamptz,
    first_seq   bigint,              -- the lowest event seq received: gaps are counted above it
    max_seq     bigint,
    events      bigint NOT NULL DEFAULT 0,
    alarm       text                 -- the station's retained alarm (state disk full), or NULL
);
CREATE TABLE events (
    id           uuid PRIMARY KEY,   -- one row per event id: redeliveries change nothing
    station      text NOT NULL,
    seq          bigint NOT NULL,
    type         text NOT NULL,
    time         timestamptz NOT NULL,
    bay          integer,
    camera       text,
    officer      text,
    custody_seq  bigint NOT NULL,
    custody_hash text NOT NULL,
    body         jsonb NOT NULL,
    received_at  timestamptz NOT NULL,
    UNIQUE (station, seq)
);
CREATE INDEX events_type_time ON events (type, time);
CREATE TABLE bay_states (
    station text NOT NULL,
    bay     integer NOT NULL,
    phase   text NOT NULL,
    body    jsonb NOT NULL,
    time    timestamptz NOT NULL,
    PRIMARY KEY (station, bay)
);
CREATE TABLE recordings (
    station        text NOT NULL,
    recording      bigint NOT NULL,   -- the station's catalog id (Annex 1)
    sha256         text NOT NULL,
    size           bigint NOT NULL,
    path           text NOT NULL,
    day            date NOT NULL,     -- the duty day it is filed under (REG-4.2.3)
    camera         text,
    officer        text,              -- badge; NULL while unattributed
    officer_name   text,
    attribution    text,
    recorded_start timestamptz,
    copies         integer NOT NULL,
    damaged        integer NOT NULL DEFAULT 0,
    destroyed_at   timestamptz,
    event          uuid NOT NULL,
    PRIMARY KEY (station, recording)
);
CREATE INDEX recordings_officer ON recordings (officer, day);
CREATE INDEX recordings_camera ON recordings (camera, day);
CREATE INDEX recordings_day ON recordings (day);
CREATE TABLE seals (
    station      text NOT NULL,
    day          date NOT NULL,
    generation   integer,
    members      integer NOT NULL,
    sealed_at    timestamptz NOT NULL,
    sealed_by    text NOT NULL,
    confirmed_by text,
    confirmed_at timestamptz,
    PRIMARY KEY (station, day)
);
CREATE TABLE holds (
    station     text NOT NULL,
    hold        integer NOT NULL,
    kind        text NOT NULL,
    case_ref    text NOT NULL,
    recording   bigint,
    officer     text,
    camera      text,
    range_start timestamptz,
    range_end   timestamptz,
    placed_at   timestamptz NOT NULL,
    released_at timestamptz,
    PRIMARY KEY (station, hold)
);
CREATE TABLE custody_heads (
    station text NOT NULL,
    seq     bigint NOT NULL,
    hash    text NOT NULL,
    event   uuid NOT NULL,            -- the first event that carried it
    seen_at timestamptz NOT NULL,
    PRIMARY KEY (station, seq)
);
CREATE TABLE alarms (
    id         bigserial PRIMARY KEY,
    station    text NOT NULL,
    kind       text NOT NULL,
    key        text NOT NULL,         -- one open alarm per (station, kind, key)
    text       text NOT NULL,
    event      uuid,
    raised_at  timestamptz NOT NULL,
    cleared_at timestamptz
);
CREATE UNIQUE INDEX alarms_open ON alarms (station, kind, key) WHERE cleared_at IS NULL;
CREATE TABLE gaps (
    station    text NOT NULL,
    from_seq   bigint NOT NULL,
    to_seq     bigint NOT NULL,
    first_seen timestamptz NOT NULL,
    PRIMARY KEY (station, from_seq)
);
CREATE TABLE rejected (
    id          bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL,
    routing_key text NOT NULL,
    station     text,
    reason      text NOT NULL,
    size        integer NOT NULL
);
""",
    ),
]


def version(conn: psycopg.Connection[tuple[Any, ...]]) -> int:
    """The schema version the database is at (0: empty)."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
        row = cur.fetchone()
        if row is None or not row[0]:
            return 0
        cur.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
        row = cur.fetchone()
        return int(row[0]) if row else 0


def migrate(dsn: str) -> int:
    """Bring the database at ``dsn`` to the newest schema; returns its version. Serialised by an
    advisory lock, so several servers starting at once apply each migration once."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(31031)")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
                " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            at = version(conn)
            if at > len(MIGRATIONS):
                raise CamdockError(
                    f"the index is at schema {at}, newer than this server's {len(MIGRATIONS)}"
                )
            for number, (name, sql) in enumerate(MIGRATIONS[at:], start=at + 1):
                with conn.transaction():
                    conn.execute(sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (number, name),
                    )
            return len(MIGRATIONS)
        finally:
            conn.execute("SELECT pg_advisory_unlock(31031)")
