"""The custody chain covers the rows custody depends on (invariant 6; issue 26).

A recording's hash, size, times, officer, camera, duty day, retention dates and path; each
copy's drive and path; holds, destructions, seals, access requests and their recordings;
the roster's roles and the cameras' assignments and loans. Every change camdock makes to one of
these rows is caught on its own connection (temporary triggers, which exist only for the
connection that made them, never for a ``sqlite3`` shell opened on the file), and the state
the change left is written into the custody entry of the same transaction: the change's own
entry when it comes after, or a ``state`` entry at commit for what changed after it.

``audit`` then recomputes every live row and names each one whose state is not the last one
the chain gave it, field by field: an edit by anyone who opened the catalog with another tool
(triggers dropped or not) shows, because it wrote no entry.
"""

from __future__ import annotations

import json
import weakref
from typing import Any

from sqlite_utils import Database

from camdock.catalog.db import rows

__all__ = ["COVERED", "State", "chained", "differences", "install", "snapshot_all", "take"]

# Each covered table: its key columns, and the columns that are bookkeeping, not custody
# (left out, so the scrub's "last proven" does not write an entry per copy it reads).
COVERED: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {
    "recordings": (("id",), frozenset()),
    "copies": (("recording_id", "destination"), frozenset({"proven_at"})),
    "holds": (("id",), frozenset()),
    "destructions": (("id",), frozenset()),
    "seals": (("id",), frozenset()),
    "requests": (("id",), frozenset()),
    "request_recordings": (("request_id", "recording_id"), frozenset()),
    "roster_roles": (("badge",), frozenset()),
    "assignments": (("id",), frozenset()),
    "loans": (("id",), frozenset()),
    "freezes": (("id",), frozenset()),
}

# One covered row's state as chained: table, key (a JSON array), its columns (None: deleted).
State = dict[str, Any]

_INSTALLED: weakref.WeakSet[Database] = weakref.WeakSet()


def _columns(db: Database, table: str) -> list[str]:
    _keys, skip = COVERED[table]
    return [c[1] for c in db.execute(f"PRAGMA main.table_info({table})") if c[1] not in skip]


def _value(v: Any) -> Any:
    return {"hex": v.hex()} if isinstance(v, bytes) else v


def install(db: Database) -> None:
    """Catch this connection's changes to the covered rows (call once the schema is current)."""
    db.execute("CREATE TEMP TABLE IF NOT EXISTS touched (tbl TEXT, k TEXT, PRIMARY KEY (tbl, k))")
    for table, (keys, _skip) in COVERED.items():
        cols = _columns(db, table)
        if not cols:
            continue  # not in this catalog's schema (yet)
        new = "json_array(" + ", ".join(f"NEW.{k}" for k in keys) + ")"
        old = "json_array(" + ", ".join(f"OLD.{k}" for k in keys) + ")"
        add = "INSERT OR IGNORE INTO touched VALUES ('{t}', {k});"
        for op, body in (
            ("INSERT", add.format(t=table, k=new)),
            (
                f"UPDATE OF {', '.join(cols)}",
                add.format(t=table, k=old) + add.format(t=table, k=new),
            ),
            ("DELETE", add.format(t=table, k=old)),
        ):
            name = f"rowchain_{table}_{op.split()[0].lower()}"
            db.execute(f"CREATE TEMP TRIGGER IF NOT EXISTS {name} AFTER {op} ON main.{table} "
                       f"BEGIN {body} END")  # fmt: skip
    _INSTALLED.add(db)


def installed(db: Database) -> bool:
    """Whether this connection's changes are caught (a read-only one's are not)."""
    return db in _INSTALLED


def _state(db: Database, table: str, key: list[Any]) -> dict[str, Any] | None:
    keys, _skip = COVERED[table]
    where = " AND ".join(f"{k} = ?" for k in keys)
    cols = _columns(db, table)
    sql = f"SELECT {', '.join(cols)} FROM main.{table} WHERE {where}"  # noqa: S608 - schema names
    found = db.execute(sql, key).fetchone()
    return None if found is None else {c: _value(v) for c, v in zip(cols, found, strict=True)}


def take(db: Database) -> list[State]:
    """The states of the rows this transaction changed since the last entry, and forget them:
    what the next custody entry carries."""
    if db not in _INSTALLED:
        return []
    touched = db.execute("SELECT tbl, k FROM temp.touched ORDER BY tbl, k").fetchall()
    if not touched:
        return []
    db.execute("DELETE FROM temp.touched")
    return [{"table": t, "key": k, "state": _state(db, t, json.loads(k))} for t, k in touched]


def snapshot_all(db: Database) -> list[State]:
    """Every covered row as it is: the baseline a catalog from before this change starts with."""
    out: list[State] = []
    for table, (keys, _skip) in COVERED.items():
        cols = _columns(db, table)
        if not cols:
            continue
        for r in db.execute(f"SELECT {', '.join(cols)} FROM main.{table}"):  # noqa: S608
            state = {c: _value(v) for c, v in zip(cols, r, strict=True)}
            key = json.dumps([state[k] for k in keys], separators=(",", ":"), ensure_ascii=False)
            out.append({"table": table, "key": key, "state": state})
    return out


def chained(db: Database) -> dict[tuple[str, str], dict[str, Any] | None]:
    """The last state the chain gave each covered row (None: deleted)."""
    last: dict[tuple[str, str], dict[str, Any] | None] = {}
    for r in rows(db, "SELECT rows FROM custody_log WHERE rows IS NOT NULL ORDER BY id"):
        for s in json.loads(r["rows"]):
            last[(s["table"], _canonical_key(s["key"]))] = s["state"]
    return last


def _canonical_key(key: str) -> str:
    return json.dumps(json.loads(key), separators=(",", ":"), ensure_ascii=False)


def differences(db: Database) -> list[str]:
    """Every live covered row whose state is not the last one the chain gave it, with the
    fields that differ; every row the chain has that is gone; every row it never saw."""
    last = chained(db)
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    for s in snapshot_all(db):
        where = (s["table"], _canonical_key(s["key"]))
        seen.add(where)
        name = f"{s['table']} {s['key']}"
        if where not in last:
            problems.append(f"{name}: not in the custody chain (written outside camdock)")
            continue
        said = last[where]
        if said is None:
            problems.append(f"{name}: deleted in the custody chain, present in the catalog")
            continue
        for field in sorted(set(said) | set(s["state"])):
            here, there = s["state"].get(field), said.get(field)
            if here != there:
                problems.append(f"{name}: {field} is {here!r} in the catalog, {there!r} in the "
                                "custody chain (changed outside camdock)")  # fmt: skip
    for where, said in last.items():
        if said is not None and where not in seen:
            problems.append(f"{where[0]} {where[1]}: in the custody chain, gone from the catalog "
                            "(deleted outside camdock)")  # fmt: skip
    return problems
