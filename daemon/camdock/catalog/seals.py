"""The daily seal's records (REG-4.2.5): which days need sealing (kept by triggers, schema
m008), each archive from its first byte (``writing``) to ``verified``, the supervisor's
confirmation; a custody entry and an event in the same transaction as each change."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from sqlite_utils import Database

from camdock.catalog import custody
from camdock.catalog.custody import Action
from camdock.catalog.db import Row, one, pk, rows, rows_as, write_txn
from camdock.catalog.outbox import record
from camdock.clock import utcnow
from camdock.errors import Conflict, Refused
from camdock.events import EventType, Topics

__all__ = [
    "Archive",
    "DayRecording",
    "Listed",
    "Seal",
    "SealState",
    "Written",
    "abandon",
    "begin",
    "clean",
    "confirm",
    "current",
    "dirty",
    "mark_removed",
    "members_of",
    "next_generation",
    "plain_due",
    "record_plain_removed",
    "record_sealed",
    "retire",
    "stale_files",
    "status",
    "unconfirmed_days",
    "writing",
]


class SealState(StrEnum):
    """An archive's life: ``writing`` → ``verified`` (→ ``superseded`` by the next
    generation), or ``abandoned`` when a crash left it unfinished."""

    WRITING = "writing"
    VERIFIED = "verified"
    SUPERSEDED = "superseded"
    ABANDONED = "abandoned"


# One member as the seal lists it: recording id, name in the archive, SHA-256, size.
Listed = tuple[int, str, str, int]


@dataclass(frozen=True)
class Seal(Row):
    """One archive: a duty day's generation on one destination (schema m008, m020)."""

    id: int
    day: str  # YYYY-MM-DD
    generation: int
    destination: str
    path: str  # relative to the destination
    temp_path: str | None
    state: SealState
    sha256: str | None
    size: int | None
    members: str | None  # JSON as stored: [[recording id, name, sha256, size], ...]
    key_id: str | None
    sealed_by: str | None
    sealed_by_id: str | None
    started_at: str
    sealed_at: str | None
    confirmed_by: str | None
    confirmed_at: str | None
    removed_at: str | None

    def listed(self) -> list[Listed]:
        """The members the seal lists (none before it is verified)."""
        return [(int(i), str(n), str(h), int(z)) for i, n, h, z in json.loads(self.members or "[]")]


@dataclass(frozen=True)
class DayRecording:
    """A live recording of a day to seal, with its copies (destination → relpath) and the
    destinations whose plain file was removed after an earlier seal."""

    id: int
    relpath: str
    sha256: str
    size: int
    copies: dict[str, str]
    plain_removed: frozenset[str]


@dataclass(frozen=True)
class Archive:
    """One drive's archive, journalled before its first byte is written."""

    day: str
    generation: int
    destination: str
    path: str
    temp_path: str
    key_id: str
    sealed_by: str
    sealed_by_id: str | None = None


@dataclass(frozen=True)
class Written:
    """One drive's archive written, read back and named under its final name."""

    id: int
    generation: int
    destination: str
    path: str
    key_id: str
    sha256: str
    size: int

    def as_json(self) -> dict[str, Any]:
        """For ``--json`` and the console (its row id stays inside)."""
        return {k: v for k, v in asdict(self).items() if k != "id"}


def _prefix(day: date) -> tuple[str, str]:
    """The relpath range of a day's folder: 'YYYY/MM/DD/' up to (not including) 'YYYY/MM/DD0'
    ('0' follows '/'), so the unique index on relpath serves the lookup."""
    return f"{day:%Y/%m/%d}/", f"{day:%Y/%m/%d}0"


def members_of(db: Database, day: date) -> list[DayRecording]:
    """The day's live recordings with their copies (``copies``: destination → relpath)."""
    low, high = _prefix(day)
    found = rows(
        db,
        "SELECT id, relpath, sha256, size FROM recordings WHERE relpath >= ? AND relpath < ? "
        "AND destroyed_at IS NULL ORDER BY relpath",
        (low, high),
    )
    out = []
    for r in found:
        copies = rows(
            db,
            "SELECT destination, relpath, plain_removed_at FROM copies WHERE recording_id = ?",
            (r["id"],),
        )
        out.append(
            DayRecording(
                r["id"],
                r["relpath"],
                r["sha256"],
                r["size"],
                {c["destination"]: c["relpath"] for c in copies},
                frozenset(c["destination"] for c in copies if c["plain_removed_at"]),
            )
        )
    return out


def dirty(db: Database) -> dict[str, int]:
    """Days whose recordings changed since their seal: day → change counter."""
    return {r["day"]: r["changes"] for r in rows(db, "SELECT day, changes FROM seal_dirty")}


def next_generation(db: Database, day: date) -> int:
    """The generation a new seal of ``day`` takes."""
    r = one(db, "SELECT max(generation) AS g FROM seals WHERE day = ?", (day.isoformat(),))
    return int(r["g"] or 0) + 1 if r else 1


def begin(db: Database, archive: Archive) -> int:
    """Journal an archive before its first byte is written (its own transaction)."""
    row = {**asdict(archive), "state": SealState.WRITING.value, "started_at": utcnow()}
    with write_txn(db):
        return pk(db.table("seals").insert(row).last_pk)


def writing(db: Database) -> list[Seal]:
    """Archives a crash left unfinished."""
    return rows_as(Seal, db, "SELECT * FROM seals WHERE state = 'writing' ORDER BY id")


def abandon(db: Database, seal_ids: list[int]) -> None:
    """Unfinished archives whose files are gone: never a seal."""
    with write_txn(db):
        db.conn.executemany(
            "UPDATE seals SET state = 'abandoned' WHERE id = ? AND state = 'writing'",
            [(i,) for i in seal_ids],
        )


def record_sealed(
    db: Database,
    day: date,
    done: list[Written],
    members: list[Listed],
    by: str,
    changes: int | None,
    topics: Topics | None,
) -> None:
    """Both archives verified: they become the day's seal, the previous generation is
    superseded, the day is clean unless it changed meanwhile, custody entry and event."""
    now = utcnow()
    with write_txn(db):
        gen = done[0].generation
        db.execute(
            "UPDATE seals SET state = 'superseded' WHERE day = ? AND state = 'verified' "
            "AND generation < ?",
            (day.isoformat(), gen),
        )
        for d in done:
            db.execute(
                "UPDATE seals SET state = 'verified', sha256 = ?, size = ?, members = ?, "
                "sealed_at = ? WHERE id = ?",
                (d.sha256, d.size, json.dumps(members, ensure_ascii=False), now, d.id),
            )
        if changes is not None:
            db.execute(
                "DELETE FROM seal_dirty WHERE day = ? AND changes = ?", (day.isoformat(), changes)
            )
        details = {
            "day": day.isoformat(),
            "generation": gen,
            "members": len(members),
            "archives": [
                {"destination": d.destination, "path": d.path, "sha256": d.sha256, "size": d.size}
                for d in done
            ],
            "key_id": done[0].key_id,
        }
        custody.append(db, Action.SEAL, None, by, details)
        if topics is not None:
            record(db, topics, EventType.DAY_SEALED, data={**details, "by": by})


def archives_on_drives(db: Database) -> list[Seal]:
    """The seal archives that are on the drives: verified, or superseded and not yet removed."""
    return rows_as(
        Seal,
        db,
        "SELECT * FROM seals WHERE state = 'verified' OR (state = 'superseded' "
        "AND removed_at IS NULL)",
    )


def stale_files(db: Database) -> list[Seal]:
    """Superseded archives whose files are still to be removed."""
    return rows_as(
        Seal, db, "SELECT * FROM seals WHERE state = 'superseded' AND removed_at IS NULL"
    )


def mark_removed(db: Database, seal_id: int) -> None:
    """A superseded archive's file is gone."""
    with write_txn(db):
        db.execute("UPDATE seals SET removed_at = ? WHERE id = ?", (utcnow(), seal_id))


def current(db: Database, day: date) -> list[Seal]:
    """The day's seal in force: its verified archives, one per destination."""
    return rows_as(
        Seal,
        db,
        "SELECT * FROM seals WHERE day = ? AND state = 'verified' ORDER BY id",
        (day.isoformat(),),
    )


def confirm(
    db: Database, day: date, by: str, topics: Topics | None, by_id: str | None = None
) -> int:
    """The supervisor confirms the day's seal (REG-4.2.5); returns its generation. Checked
    inside the transaction (compare-and-set on ``confirmed_at IS NULL``): a day not sealed or
    changed since is refused, one already confirmed (a moment ago, by someone else at the same
    time) is a ``Conflict`` naming who and when, and the custodian who sealed it may not."""
    d = day.isoformat()
    with write_txn(db):
        found = current(db, day)
        if not found:
            raise Refused(f"duty day {day} is not sealed: nothing to confirm")
        if one(db, "SELECT day FROM seal_dirty WHERE day = ?", (d,)) is not None:
            raise Refused(f"duty day {day} changed since it was sealed: seal it again first")
        if found[0].confirmed_at:
            raise Conflict(
                f"duty day {day}'s seal is already confirmed",
                found[0].confirmed_by,
                found[0].confirmed_at,
            )
        # Identity, never a name (issue 27): the staff id (or the station's) the seal was made
        # under; a seal from before m020 has only its name.
        sealer = found[0].sealed_by_id or found[0].sealed_by
        if sealer == (by_id or by):
            raise Refused(
                f"{by} sealed duty day {day}: the supervisor who confirms is someone "
                "else (REG-4.2.5)"
            )
        db.execute(
            "UPDATE seals SET confirmed_by = ?, confirmed_at = ? WHERE day = ? AND "
            "state = 'verified' AND confirmed_at IS NULL",
            (by, utcnow(), d),
        )
        gen = found[0].generation
        details = {"day": d, "generation": gen}
        custody.append(db, Action.CONFIRM, None, by, details)
        if topics is not None:
            record(db, topics, EventType.SEAL_CONFIRMED, data={**details, "by": by})
    return gen


def status(db: Database, since: date | None = None) -> list[Seal]:
    """Every seal in force (from ``since``), oldest day first."""
    return rows_as(
        Seal,
        db,
        "SELECT * FROM seals WHERE state = 'verified' AND day >= ? ORDER BY day, id",
        ((since or date.min).isoformat(),),
    )


def unconfirmed_days(db: Database) -> list[str]:
    """Days whose seal in force no supervisor has confirmed."""
    found = rows(
        db,
        "SELECT DISTINCT day FROM seals WHERE state = 'verified' "
        "AND confirmed_at IS NULL ORDER BY day",
    )
    return [r["day"] for r in found]


def retire(db: Database, day: date, by: str, topics: Topics | None) -> None:
    """Every recording of a sealed day was destroyed: its seal is superseded by nothing (the
    archives' files are removed next) and the day is clean."""
    with write_txn(db):
        db.execute(
            "UPDATE seals SET state = 'superseded' WHERE day = ? AND state = 'verified'",
            (day.isoformat(),),
        )
        db.execute("DELETE FROM seal_dirty WHERE day = ?", (day.isoformat(),))
        details: dict[str, Any] = {
            "day": day.isoformat(),
            "generation": None,
            "members": 0,
            "archives": [],
            "key_id": None,
        }
        custody.append(db, Action.SEAL, None, by, details)
        if topics is not None:
            record(db, topics, EventType.DAY_SEALED, data={**details, "by": by})


def clean(db: Database, day: date) -> None:
    """A day with nothing to seal and no seal: not waiting for one."""
    with write_txn(db):
        db.execute("DELETE FROM seal_dirty WHERE day = ?", (day.isoformat(),))


def plain_due(db: Database, sealed_before: str) -> list[Seal]:
    """Seals in force, confirmed, sealed before ``sealed_before`` (UTC ISO), whose day still has
    plain files on their drive: the plain copies may go (REG-4.2.5)."""
    return rows_as(
        Seal,
        db,
        "SELECT s.* FROM seals s WHERE s.state = 'verified' AND s.confirmed_at IS NOT NULL "
        "AND s.sealed_at < ? AND EXISTS (SELECT 1 FROM copies c JOIN recordings r ON "
        "r.id = c.recording_id WHERE c.destination = s.destination AND c.plain_removed_at IS "
        "NULL AND r.destroyed_at IS NULL AND replace(substr(r.relpath, 1, 10), '/', '-') = "
        "s.day) ORDER BY s.day, s.id",
        (sealed_before,),
    )


def record_plain_removed(db: Database, seal: Seal, ids: list[int], by: str) -> None:
    """The plain copies of a sealed, confirmed day are gone from one drive: the archive holds
    them (custody entry)."""
    now = utcnow()
    with write_txn(db):
        db.conn.executemany(
            "UPDATE copies SET plain_removed_at = ? WHERE recording_id = ? AND destination = ?",
            [(now, i, seal.destination) for i in ids],
        )
        custody.append(
            db,
            Action.PLAIN_REMOVED,
            None,
            by,
            {
                "day": seal.day,
                "destination": seal.destination,
                "archive": seal.path,
                "archive_sha256": seal.sha256,
                "recordings": ids,
            },
        )
