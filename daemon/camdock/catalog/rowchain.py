"""The custody chain covers the rows custody depends on (invariant 6; issue 26).

A recording's hash, size, times, officer, camera, duty day, retention dates and path; each
copy's drive and path; holds, destructions, destruction lists and standing authorisations,
seals, access requests, their recordings and their streamed viewings; the roster's roles and
the cameras' assignments and loans. Every change camdock makes to one of these rows is caught
on its own connection (temporary triggers: never a ``sqlite3`` shell's), and the state it left
is written into the custody entry of the same transaction (its own, or a ``state`` entry).

``audit`` then recomputes every live row and names each one whose state is not the last one
the chain gave it, field by field: an edit by anyone who opened the catalog with another tool
(triggers dropped or not) shows, because it wrote no entry.
"""

from __future__ import annotations

import contextlib
import json
import weakref
from collections.abc import Iterator
from typing import Any

from sqlite_utils import Database

from camdock.catalog.db import rows
from camdock.errors import CamdockError, ExitCode

__all__ = [
    "COVERED",
    "Columns",
    "State",
    "Tampered",
    "baseline_only",
    "chained",
    "current",
    "differences",
    "index",
    "install",
    "last_state",
    "require_chained",
    "require_rows",
    "require_table",
    "same",
    "settle_restored",
    "snapshot_all",
    "take",
]

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
    # Issue 27: who may act. Secrets stay out of the log; their SHA-256 columns are chained.
    "staff": (("id",), frozenset({"password_hash"})),
    "staff_totp": (("staff_id",), frozenset({"secret", "last_step"})),
    "staff_recovery": (("id",), frozenset()),
    "destruction_lists": (("id",), frozenset()),
    "destruction_list_items": (("list_id", "recording_id"), frozenset()),
    "standing_authorisations": (("id",), frozenset()),
    "viewings": (("id",), frozenset()),
}

# One covered row's state as chained: table, key (a JSON array), its columns (None: deleted).
State = dict[str, Any]
# A covered row's columns by name, as the chain holds them (JSON): the chain covers a dozen
# tables alike, so a row here is a mapping, not one of the catalog's typed rows.
Columns = dict[str, Any]

_INSTALLED: weakref.WeakSet[Database] = weakref.WeakSet()


class Tampered(CamdockError):
    """A row custody depends on is not what the chain last said of it: changed outside camdock.
    Nothing camdock would do to it is done (that would chain the edit); the audit names it."""

    exit_code = ExitCode.DATAERR

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "the catalog was changed outside camdock; nothing done (camdock audit): "
            + "; ".join(problems)
        )


def _columns(db: Database, table: str) -> list[str]:
    _keys, skip = COVERED[table]
    return [c[1] for c in db.execute(f"PRAGMA main.table_info({table})") if c[1] not in skip]


def _value(v: Any) -> Any:
    return {"hex": v.hex()} if isinstance(v, bytes) else v


def _image(db: Database, table: str, row: str) -> str:
    """SQL for a row's covered columns as a JSON object (``row``: OLD), BLOBs as their hex."""
    _keys, skip = COVERED[table]
    parts = []
    for _cid, col, kind, *_rest in db.execute(f"PRAGMA main.table_info({table})"):
        if col in skip:
            continue
        value = f"{row}.{col}"
        if str(kind).upper() == "BLOB":
            value = f"CASE WHEN {value} IS NULL THEN NULL ELSE lower(hex({value})) END"
        parts.append(f"'{col}', {value}")
    return "json_object(" + ", ".join(parts) + ")"


def install(db: Database) -> None:
    """Catch this connection's changes to the covered rows (call once the schema is current):
    which row, and the state it had before this transaction first changed it (NULL: new)."""
    db.execute(
        "CREATE TEMP TABLE IF NOT EXISTS touched (tbl TEXT, k TEXT, before TEXT, "
        "PRIMARY KEY (tbl, k))"
    )
    for table, (keys, _skip) in COVERED.items():
        cols = _columns(db, table)
        if not cols:
            continue  # not in this catalog's schema (yet)
        new = "json_array(" + ", ".join(f"NEW.{k}" for k in keys) + ")"
        old = "json_array(" + ", ".join(f"OLD.{k}" for k in keys) + ")"
        before = _image(db, table, "OLD")
        add = "INSERT OR IGNORE INTO touched VALUES ('{t}', {k}, {b});"
        for op, body in (
            ("INSERT", add.format(t=table, k=new, b="NULL")),
            (
                f"UPDATE OF {', '.join(cols)}",
                add.format(t=table, k=old, b=before) + add.format(t=table, k=new, b=before),
            ),
            ("DELETE", add.format(t=table, k=old, b=before)),
        ):
            name = f"rowchain_{table}_{op.split()[0].lower()}"
            db.execute(
                f"CREATE TEMP TRIGGER IF NOT EXISTS {name} AFTER {op} ON main.{table} "
                f"BEGIN {body} END"
            )
    _INSTALLED.add(db)


def installed(db: Database) -> bool:
    """Whether this connection's changes are caught (a read-only one's are not)."""
    return db in _INSTALLED


def _state(db: Database, table: str, key: list[Any]) -> Columns | None:
    keys, _skip = COVERED[table]
    where = " AND ".join(f"{k} = ?" for k in keys)
    cols = _columns(db, table)
    sql = f"SELECT {', '.join(cols)} FROM main.{table} WHERE {where}"  # noqa: S608 - schema names
    found, *more = db.execute(sql, key).fetchmany(2) or [None]
    if more:  # the key's constraint dropped in sqlite3 (review2): which row counts is nobody's
        raise Tampered([f"{table} {key}: more than one row shares this key (written outside)"])
    return None if found is None else {c: _value(v) for c, v in zip(cols, found, strict=True)}


def take(db: Database) -> list[State]:
    """The states of the rows this transaction changed since the last entry, and forget them:
    what the next custody entry carries. Each row must have been, before the change, the
    state the chain last gave it: a row edited outside camdock is never chained by the next
    change camdock makes to it (it would launder the edit); the change is refused instead."""
    if db not in _INSTALLED:
        return []
    touched = db.execute("SELECT tbl, k, before FROM temp.touched ORDER BY tbl, k").fetchall()
    if not touched:
        return []
    problems = [p for t, k, b in touched if (p := _unchained(db, t, k, b))]
    if problems:
        raise Tampered(problems)
    db.execute("DELETE FROM temp.touched")
    return [{"table": t, "key": k, "state": _state(db, t, json.loads(k))} for t, k, _b in touched]


def require_chained(db: Database, recording_id: int) -> None:
    """Refuse (``Tampered``) to act on a recording whose row, or a copy's row, is not what the
    chain last gave it: call inside the transaction that decides something irreversible (a
    destruction), before any file is touched."""
    wanted = [("recordings", json.dumps([recording_id]))]
    wanted += [
        ("copies", json.dumps([recording_id, d], separators=(",", ":"), ensure_ascii=False))
        for (d,) in db.execute(
            "SELECT destination FROM copies WHERE recording_id = ?", (recording_id,)
        )
    ]
    problems = []
    for table, key in wanted:
        state = _state(db, table, json.loads(key))
        before = None if state is None else json.dumps(state)
        if before is not None and (why := _unchained(db, table, key, before)):
            problems.append(why)
    if problems:
        raise Tampered(problems)


def require_rows(db: Database, wanted: list[tuple[str, list[Any]]]) -> None:
    """Refuse (``Tampered``) to decide anything on rows (table, key) that are not what the
    chain last gave them: who may log in and with which roles, a request a viewing relies on
    (issue 27, review). A row not there is nothing to check."""
    problems = []
    for table, key in wanted:
        state = _state(db, table, key)
        if state is None:
            continue
        compact = json.dumps(key, separators=(",", ":"), ensure_ascii=False)
        if why := _unchained(db, table, compact, json.dumps(state)):
            problems.append(why)
    if problems:
        raise Tampered(problems)


def require_table(db: Database, table: str, where: str = "", params: tuple[Any, ...] = (),
                  like: str = "%") -> None:  # fmt: skip
    """Refuse (``Tampered``) unless every row of ``table`` (those ``where`` selects) is the
    state the chain last gave it, and no row the chain has live (its key matching ``like``) is
    missing: a hold or a request's link deleted in sqlite3 must not let a destruction through
    (issue 28, review). The chain's index says where each row's last state is (read alone: a
    row the index points back on is the audit's to find); few rows, so cheap."""
    keys, _skip = COVERED[table]
    cond = f" WHERE {where}" if where else ""
    sql = f"SELECT {', '.join(keys)} FROM main.{table}{cond}"  # noqa: S608 - schema names
    here = {json.dumps(list(r), separators=(",", ":"), ensure_ascii=False)
            for r in db.execute(sql, params)}  # fmt: skip
    indexed = {k for (k,) in db.execute(
        "SELECT k FROM chained_rows WHERE tbl = ? AND k LIKE ?", (table, like))}  # fmt: skip
    problems = []
    for key in sorted(here | indexed):
        state = _state(db, table, json.loads(key))
        last = last_state(db, table, key, follow=False)
        if last is None:
            if state is not None:
                problems.append(
                    f"{table} {key}: not in the custody chain (written outside camdock)"
                )
        elif not same(state, last[1]):
            what = "deleted from the catalog" if state is None else "changed"
            problems.append(f"{table} {key}: {what} outside camdock")
    if problems:
        raise Tampered(problems)


def settle_restored(db: Database) -> list[str]:
    """After rows were put back as the chain has them (``audit resolve``): forget the ones that
    now are the chain's last state (nothing new to chain); the rest stay to be checked."""
    settled = []
    for t, k, _b in db.execute("SELECT tbl, k, before FROM temp.touched").fetchall():
        last = last_state(db, t, k)
        if last is not None and _norm(_state(db, t, json.loads(k))) == _norm(last[1]):
            db.execute("DELETE FROM temp.touched WHERE tbl = ? AND k = ?", (t, k))
            settled.append(f"{t} {k}")
    return settled


def current(db: Database, table: str, key: list[Any]) -> Columns | None:
    """A covered row's state in the catalog now, as the chain would carry it (None: no row)."""
    return _state(db, table, key)


def same(here: Columns | None, chained_state: Columns | None) -> bool:
    """Whether a row's state is the one the chain gave it."""
    return _norm(here) == _norm(chained_state)


def _norm(state: Columns | None) -> Columns | None:
    if state is None:
        return None
    return {
        c: (v["hex"] if isinstance(v, dict) and "hex" in v else v)
        for c, v in state.items()
        if v is not None
    }


def _unchained(db: Database, table: str, key: str, before: str | None) -> str | None:
    """Why this row's state before the change is not the chain's last state of it, or None."""
    if before is None:  # a new row: the chain must not have it live (by its index: an insert
        # is the offload's hot path, and scanning the chain for each would grow with it)
        found = db.execute(
            "SELECT entry_id FROM chained_rows WHERE tbl = ? AND k = ?",
            (table, _canonical_key(key)),
        ).fetchone()
        last = None if found is None else last_state(db, table, key)
        if last is not None and last[1] is not None:
            return f"{table} {key}: in the chain, deleted from the catalog outside camdock"
        return None
    last = last_state(db, table, key)
    if last is None:
        return f"{table} {key}: not in the custody chain (written outside camdock)"
    here, there = _norm(json.loads(before)), _norm(last[1])
    if here != there:
        fields = sorted(
            f
            for f in set(here or {}) | set(there or {})
            if (here or {}).get(f) != (there or {}).get(f)
        )
        return f"{table} {key}: {', '.join(fields)} changed outside camdock"
    return None


def last_state(
    db: Database, table: str, key: str, *, follow: bool = True
) -> tuple[int, Columns | None] | None:
    """The last entry that chained this row, and the state it gave it (None: deleted); None
    when no entry has. ``chained_rows`` says where to look; with ``follow``, an entry after it
    that names the row as well (the index pointed back by hand) wins, so the index can only
    slow this down. Without (the scrub, many rows a step), the indexed entry is read alone."""
    canonical = _canonical_key(key)
    found = db.execute(
        "SELECT entry_id FROM chained_rows WHERE tbl = ? AND k = ?", (table, canonical)
    ).fetchone()
    start = int(found[0]) if found else 0
    needle = json.dumps({"key": canonical}, ensure_ascii=False)[1:-1]
    best: tuple[int, Columns | None] | None = None
    upto = None if follow else start  # NULL: to the chain's end
    for entry_id, states in db.execute(
        "SELECT id, rows FROM custody_log WHERE id >= ? AND (? IS NULL OR id <= ?) AND "
        "rows IS NOT NULL AND instr(rows, ?) > 0 ORDER BY id",
        (start, upto, upto, needle),
    ):
        for s in json.loads(states):
            if s["table"] == table and _canonical_key(s["key"]) == canonical:
                best = (int(entry_id), s["state"])
    return best


def index(db: Database, entry_id: int, states: list[State]) -> None:
    """Where each row's last chained state is (an accelerator the chain can always overrule)."""
    db.conn.executemany(
        "INSERT OR REPLACE INTO chained_rows (tbl, k, entry_id) VALUES (?, ?, ?)",
        [(s["table"], _canonical_key(s["key"]), entry_id) for s in states],
    )


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


def chained(db: Database) -> dict[tuple[str, str], Columns | None]:
    """The last state the chain gave each covered row (None: deleted)."""
    return {where: state for where, (state, _b) in _chained_by(db).items()}


def _chained_by(db: Database) -> dict[tuple[str, str], tuple[Columns | None, bool]]:
    """Each covered row's last chained state, and whether the upgrade's baseline gave it."""
    last: dict[tuple[str, str], tuple[Columns | None, bool]] = {}
    for r in rows(
        db,
        "SELECT rows, json_extract(details, '$.baseline') AS b FROM custody_log "
        "WHERE rows IS NOT NULL ORDER BY id",
    ):
        for s in json.loads(r["rows"]):
            last[(s["table"], _canonical_key(s["key"]))] = (s["state"], bool(r["b"]))
    return last


def _canonical_key(key: str) -> str:
    return json.dumps(json.loads(key), separators=(",", ":"), ensure_ascii=False)


def _live_image(db: Database, table: str) -> str | None:
    """SQL for each row of ``table``: its key and its state as the chain carries it (JSON, a
    BLOB as ``{"hex": …}``), in the catalog's own order; None: not in this schema."""
    keys, skip = COVERED[table]
    # By name: the chain's states are JSON with sorted keys (catalog/custody): the same text.
    info = sorted(db.execute(f"PRAGMA main.table_info({table})"), key=lambda c: str(c[1]))
    cols = [str(c[1]) for c in info if c[1] not in skip]
    if not cols:
        return None
    # A BLOB in any column (json_object refuses it): value by value; json(): CASE drops subtypes
    spelt = {c: f"json(CASE WHEN typeof({c}) = 'blob' THEN json_object('hex', lower(hex({c}))) "
                f"ELSE json_quote({c}) END)" for c in {*cols, *keys}}  # fmt: skip
    blob = " OR ".join(f"typeof({c}) = 'blob'" for c in sorted({*cols, *keys}))
    each, plain = (", ".join(f"'{c}', {spelt[c] if s else c}" for c in cols) for s in (1, 0))
    key = (f"CASE WHEN {blob} THEN json_array({', '.join(spelt[k] for k in keys)}) "
           f"ELSE json_array({', '.join(keys)}) END")  # fmt: skip
    state = f"CASE WHEN {blob} THEN json_object({each}) ELSE json_object({plain}) END"
    return (f"SELECT '{table}', {key}, {state} "  # noqa: S608
            f"FROM main.{table} WHERE true")  # fmt: skip


@contextlib.contextmanager
def _laid_out(db: Database) -> Iterator[None]:
    """The chain's last state of each covered row and every live row in temporary tables by
    (table, key) (issue 29): a year's catalog (600,000 states) costs a page cache, not the
    states. Read in one transaction (one snapshot); dropped after."""
    db.execute("DROP TABLE IF EXISTS temp.rowchain_last")
    db.execute("DROP TABLE IF EXISTS temp.rowchain_live")
    # rowid order: where a row was first chained (the order the old in-memory walk named them)
    db.execute("CREATE TEMP TABLE rowchain_last (tbl TEXT NOT NULL, k TEXT NOT NULL, "
               "state TEXT, base INTEGER NOT NULL, UNIQUE (tbl, k))")  # fmt: skip
    # Not unique: a key's constraint dropped in sqlite3 lets two rows share one (review2).
    db.execute("CREATE TEMP TABLE rowchain_live (tbl TEXT, k TEXT, state TEXT NOT NULL)")
    outer = db.conn.in_transaction
    try:
        if not outer:
            db.execute("BEGIN")
        db.execute(
            "INSERT INTO temp.rowchain_last (tbl, k, state, base) "
            "SELECT json_extract(j.value, '$.table'), json(json_extract(j.value, '$.key')), "
            "json_extract(j.value, '$.state'), "
            "CASE WHEN json_extract(c.details, '$.baseline') THEN 1 ELSE 0 END "
            "FROM custody_log c, json_each(c.rows) j WHERE c.rows IS NOT NULL ORDER BY c.id "
            "ON CONFLICT (tbl, k) DO UPDATE SET state = excluded.state, base = excluded.base"
        )
        for table in COVERED:
            if (image := _live_image(db, table)) is not None:
                db.execute(f"INSERT INTO temp.rowchain_live (tbl, k, state) {image}")
        db.execute("CREATE INDEX temp.rowchain_live_k ON rowchain_live (tbl, k)")
        yield
    finally:
        if not outer and db.conn.in_transaction:
            db.conn.rollback()  # only the temporary tables were written
        db.execute("DROP TABLE IF EXISTS temp.rowchain_live")
        db.execute("DROP TABLE IF EXISTS temp.rowchain_last")


def baseline_only(db: Database) -> dict[str, list[str]]:
    """The live rows whose last chained state is the one migration m014's baseline gave them at
    the upgrade, by table: the chain has trusted them as they were found, and no act of
    camdock's has chained them since (the trust boundary, README "The audit")."""
    out: dict[str, list[str]] = {}
    with _laid_out(db):
        for table, key in db.execute(
            "SELECT c.tbl, c.k FROM temp.rowchain_last c WHERE c.base AND c.state IS NOT NULL "
            "AND EXISTS (SELECT 1 FROM temp.rowchain_live l WHERE l.tbl = c.tbl AND "
            "l.k = c.k) ORDER BY c.rowid"
        ):
            out.setdefault(table, []).append(key)
    return out


def differences(db: Database) -> list[str]:
    """Every live covered row whose state is not the last one the chain gave it, with the
    fields that differ; every row the chain has that is gone; every row it never saw.

    Streamed (issue 29): SQLite pairs each live row with the chain's last state of it; only
    pairs whose JSON differs are compared here, field by field against the row read again
    (JSON that differs only in spelling is no difference). Memory stays flat."""
    problems: list[str] = []
    with _laid_out(db):
        shared = db.execute("SELECT tbl, k, count(*) FROM temp.rowchain_live GROUP BY tbl, k "
                            "HAVING count(*) > 1").fetchall()  # fmt: skip
        problems += [f"{t} {k}: {n} rows share this key (written outside camdock)"
                     for t, k, n in shared]  # fmt: skip
        named = {(t, k) for t, k, _n in shared}  # which of them counts is nobody's
        for table, key, said_json, known in db.execute(
            "SELECT l.tbl, l.k, c.state, c.k IS NOT NULL FROM temp.rowchain_live l "
            "LEFT JOIN temp.rowchain_last c USING (tbl, k) "
            "WHERE c.k IS NULL OR c.state IS NULL OR c.state IS NOT l.state ORDER BY l.rowid"
        ):
            if (table, key) not in named:
                problems += _compared(db, table, key, said_json, bool(known))
        for table, key in db.execute(
            "SELECT c.tbl, c.k FROM temp.rowchain_last c WHERE c.state IS NOT NULL AND "
            "NOT EXISTS (SELECT 1 FROM temp.rowchain_live l WHERE l.tbl = c.tbl AND "
            "l.k = c.k) ORDER BY c.rowid"
        ):
            problems.append(
                f"{table} {key}: in the custody chain, gone from the catalog "
                "(deleted outside camdock)"
            )
    return problems


def _compared(db: Database, table: str, key: str, said_json: str | None,
              known: bool) -> list[str]:  # fmt: skip
    """The problems of one live row whose JSON is not the chain's last state of it."""
    name = f"{table} {key}"
    if not known:
        return [f"{name}: not in the custody chain (written outside camdock)"]
    if said_json is None:
        return [f"{name}: deleted in the custody chain, present in the catalog"]
    said: Columns = json.loads(said_json)
    here = _state(db, table, json.loads(key)) or {}
    return [
        f"{name}: {field} is {here.get(field)!r} in the catalog, {said.get(field)!r} in the "
        "custody chain (changed outside camdock)"
        for field in sorted(set(said) | set(here))
        if here.get(field) != said.get(field)
    ]
