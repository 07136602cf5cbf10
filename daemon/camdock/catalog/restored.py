"""The catalog side of bringing a restored catalog up to date (issue 28; services/reconcile.py):
recordings and copies put back from the drives' manifests, holds, requests and register lines
from their journal. Every change goes through camdock's own connection, so the custody chain
covers it (catalog/rowchain.py) like any other."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from camdock.catalog.db import Row, one, one_as, rows
from camdock.catalog.rowchain import COVERED, Columns

__all__ = [
    "Filed",
    "LastRestore",
    "add_copy",
    "by_relpath",
    "chain_hashes",
    "copies_known",
    "head",
    "insert_recording",
    "last_restore",
    "put_register",
    "put_state",
    "state_of",
]


def copies_known(db: Database) -> set[tuple[str, str]]:
    """Every catalogued copy: (destination root, relpath)."""
    return {
        (r["destination"], r["relpath"])
        for r in rows(db, "SELECT destination, relpath FROM copies")
    }


@dataclass(frozen=True)
class Filed(Row):
    """What the catalog files under a path (destroyed recordings too)."""

    id: int
    sha256: str
    size: int
    destroyed_at: str | None


def by_relpath(db: Database, relpath: str) -> Filed | None:
    """The recording filed under ``relpath`` (destroyed ones too), or None."""
    return one_as(
        Filed,
        db,
        "SELECT id, sha256, size, destroyed_at FROM recordings WHERE relpath = ?",
        (relpath,),
    )


def insert_recording(db: Database, row: dict[str, Any], want_id: int | None) -> int:
    """A recording row as a manifest gave it, under its old id when that is free."""
    if want_id is not None and one(db, "SELECT id FROM recordings WHERE id = ?", (want_id,)):
        want_id = None
    values = dict(row) if want_id is None else {"id": want_id, **row}
    cols = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    cur = db.execute(
        f"INSERT INTO recordings ({cols}) VALUES ({marks})",  # noqa: S608 - names ours
        list(values.values()),
    )
    return int(cur.lastrowid or 0)


def add_copy(
    db: Database, recording_id: int, root: str, relpath: str, sha256: str, when: str
) -> None:
    """A copy found on a drive and verified now."""
    db.execute(
        "INSERT INTO copies (recording_id, destination, relpath, sha256, verified_at, "
        "proven_at) VALUES (?, ?, ?, ?, ?, ?)",
        (recording_id, root, relpath, sha256, when, when),
    )


def chain_hashes(db: Database) -> set[str]:
    """The hash of every custody entry: a journal line already in the chain is not news."""
    return {r[0] for r in db.execute("SELECT hash FROM custody_log")}


def head(db: Database) -> list[Any]:
    """The chain's last entry: [seq, hash, time] ([0, "", ""] when empty)."""
    found = one(db, "SELECT id, hash, time FROM custody_log ORDER BY id DESC LIMIT 1")
    return [0, "", ""] if found is None else [found["id"], found["hash"], found["time"]]


@dataclass(frozen=True)
class LastRestore:
    """Where the catalog was last restored from, and the time of its backup's chain head (what
    happened after it is reconciled from the drives)."""

    source: str
    since: str | None


def last_restore(db: Database) -> LastRestore | None:
    """The last 'catalog-restore' entry's backup and chain head; None: never restored."""
    found = one(
        db,
        "SELECT details FROM custody_log WHERE action = 'catalog-restore' ORDER BY id DESC LIMIT 1",
    )
    if found is None:
        return None
    details = json.loads(found["details"])
    head = details.get("backup_head") or [0, "", None]
    return LastRestore(str(details.get("from", "(no restore recorded)")), head[2] or None)


def _keys(table: str) -> tuple[str, ...]:
    return COVERED[table][0]


def _value(v: Any) -> Any:
    return bytes.fromhex(v["hex"]) if isinstance(v, dict) and "hex" in v else v


def state_of(db: Database, table: str, key: list[Any]) -> Columns | None:
    """A covered row's columns as they are (None: no such row)."""
    where = " AND ".join(f"{k} = ?" for k in _keys(table))
    return one(db, f"SELECT * FROM {table} WHERE {where}", key)  # noqa: S608 - names ours


def put_state(db: Database, table: str, key: list[Any], state: Columns | None) -> bool:
    """Make a covered row what a journal line says (None: gone); whether anything changed."""
    now = state_of(db, table, key)
    wanted = None if state is None else {c: _value(v) for c, v in state.items()}
    if now is not None and wanted is not None:
        wanted = {c: v for c, v in wanted.items() if c in now}
        if all(now.get(c) == v for c, v in wanted.items()):
            return False
    if now is None and wanted is None:
        return False
    where = " AND ".join(f"{k} = ?" for k in _keys(table))
    if wanted is None:
        db.execute(f"DELETE FROM {table} WHERE {where}", key)  # noqa: S608 - names ours
    elif now is None:
        cols = ", ".join(wanted)
        marks = ", ".join("?" for _ in wanted)
        db.execute(
            f"INSERT INTO {table} ({cols}) VALUES ({marks})",  # noqa: S608 - names ours
            list(wanted.values()),
        )
    else:
        sets = ", ".join(f"{c} = ?" for c in wanted)
        db.execute(
            f"UPDATE {table} SET {sets} WHERE {where}",  # noqa: S608 - names ours
            [*wanted.values(), *key],
        )
    return True


def put_register(db: Database, line: dict[str, Any]) -> tuple[bool, str | None]:
    """A register line (Annex 3) under its id: (added, why it could not be)."""
    have = one(db, "SELECT * FROM register WHERE id = ?", (line["id"],))
    if have is not None:
        same = all(have.get(k) == v for k, v in line.items())
        why = None if same else f"register line {line['id']}: another line has its number now"
        return False, why
    if one(db, "SELECT id FROM requests WHERE id = ?", (line["request_id"],)) is None:
        return False, f"register line {line['id']}: its request {line['request_id']} is not here"
    cols = ", ".join(line)
    marks = ", ".join("?" for _ in line)
    db.execute(
        f"INSERT INTO register ({cols}) VALUES ({marks})",  # noqa: S608 - names ours
        list(line.values()),
    )
    return True, None
