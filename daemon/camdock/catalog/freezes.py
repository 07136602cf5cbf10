"""Recordings frozen because the catalog and the custody chain disagree about them (issue 26).

The scrub judges a copy only by what the chain says the recording is (the hash and size in its
first ``store`` entry). When the catalog says something else, the catalog was edited outside
camdock, and no copy may be judged, repaired, destroyed, sealed or handed out on its word: the
recording is frozen, with an alarm naming it, until an auditor resolves it. Resolving puts the
recording's rows back to the last state the chain gave them (the chain is trusted, never a
column) and is itself a custody entry, with the auditor's name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from camdock.catalog import custody, rowchain
from camdock.catalog.custody import Action
from camdock.catalog.db import Row, one, rows_as, write_txn
from camdock.clock import utcnow
from camdock.errors import Refused

__all__ = ["Frozen", "freeze", "frozen", "open_freezes", "refuse_frozen", "resolve"]


@dataclass(frozen=True)
class Frozen(Row):
    """An open freeze: the recording, why, since when."""

    id: int
    recording_id: int
    reason: str
    found_at: str


def freeze(db: Database, recording_id: int, reason: str, actor: str) -> bool:
    """Freeze a recording (once: an open freeze is not opened again); whether it is new."""
    with write_txn(db):
        if (
            one(
                db,
                "SELECT id FROM freezes WHERE recording_id = ? AND resolved_at IS NULL",
                (recording_id,),
            )
            is not None
        ):
            return False
        db.execute(
            "INSERT INTO freezes (recording_id, reason, found_at) VALUES (?, ?, ?)",
            (recording_id, reason, utcnow()),
        )
        custody.append(db, Action.FREEZE, recording_id, actor, {"reason": reason})
    return True


def open_freezes(db: Database) -> list[Frozen]:
    """Every recording frozen now, oldest first."""
    return rows_as(
        Frozen,
        db,
        "SELECT id, recording_id, reason, found_at FROM freezes "
        "WHERE resolved_at IS NULL ORDER BY id",
    )


def frozen(db: Database, recording_ids: list[int]) -> list[Frozen]:
    """Which of these recordings are frozen."""
    wanted = set(recording_ids)
    return [f for f in open_freezes(db) if f.recording_id in wanted]


def refuse_frozen(db: Database, recording_ids: list[int], what: str) -> None:
    """Refuse ``what`` (destroy, seal, copy, view) for recordings the catalog and the chain
    disagree about; call inside the transaction that would act (the check and the act agree)."""
    if found := frozen(db, recording_ids):
        names = ", ".join(f"{f.recording_id} ({f.reason})" for f in found)
        raise Refused(
            f"{what} refused: recording(s) frozen until an auditor resolves them "
            f"(camdock audit resolve): {names}"
        )


# The rows a resolution puts back, parents before children (a deleted recording's row before
# its copies', a request before its links).
_ORDER = ("recordings", "copies", "holds", "requests", "request_recordings")


def _concerns(
    table: str, key: list[Any], state: dict[str, Any], what: tuple[str, int], requests: set[int]
) -> bool:
    """Whether a chained row is one of the rows a resolution of ``what`` puts back."""
    kind, ident = what
    if kind == "recording":
        return (
            (table == "recordings" and key == [ident])
            or (table == "copies" and key[0] == ident)
            or (table == "holds" and state.get("recording_id") == ident)
            or (table == "request_recordings" and key[1] == ident)
            or (table == "requests" and key[0] in requests)
        )
    if kind == "hold":
        return table == "holds" and key == [ident]
    return (table == "requests" and key == [ident]) or (
        table == "request_recordings" and key[0] == ident
    )


def _restore(db: Database, what: tuple[str, int]) -> list[str]:
    """Put the rows of ``what`` (a recording with its copies, the holds on it alone and the
    requests that name it; a hold; a request with its links) back to the chain's last state of
    them: an edited row is set back, a row deleted outside camdock is inserted again."""
    last = rowchain.chained(db)
    requests = (
        {
            json.loads(k)[0]
            for (t, k), state in last.items()
            if t == "request_recordings" and state is not None and json.loads(k)[1] == what[1]
        }
        if what[0] == "recording"
        else set()
    )
    wanted = [
        (table, key, state)
        for (table, key), state in last.items()
        if table in _ORDER
        and state is not None
        and _concerns(table, json.loads(key), state, what, requests)
    ]
    wanted.sort(key=lambda w: _ORDER.index(w[0]))
    restored = []
    for table, key, state in wanted:
        keys, _skip = rowchain.COVERED[table]
        k = json.loads(key)
        values = {
            c: bytes.fromhex(v["hex"]) if isinstance(v, dict) else v for c, v in state.items()
        }
        here = rowchain.current(db, table, k)
        if here is not None and rowchain.same(here, state):
            continue  # already as the chain has it
        cols = [c for c in values if here is None or c not in keys]
        if here is None:  # deleted outside camdock: inserted again as the chain has it
            db.execute(
                f"INSERT INTO {table} ({', '.join(cols)}) VALUES "  # noqa: S608
                f"({', '.join('?' for _ in cols)})",
                [values[c] for c in cols],
            )
        else:
            where = " AND ".join(f"{c} = ?" for c in keys)
            db.execute(
                f"UPDATE {table} SET {', '.join(f'{c} = ?' for c in cols)} "  # noqa: S608
                f"WHERE {where}",
                [*(values[c] for c in cols), *k],
            )
        restored.append(f"{table} {key}")
    return restored


def resolve(db: Database, ident: int, by: str, reason: str, kind: str = "recording") -> list[str]:
    """An auditor resolves a recording (frozen, or with rows edited or deleted outside camdock),
    a hold or a request (``kind``): its rows as the chain has them, an open freeze closed, a
    custody entry naming the auditor. Returns the rows put back."""
    with write_txn(db):
        open_one = None
        if kind == "recording":
            open_one = one(
                db,
                "SELECT id FROM freezes WHERE recording_id = ? AND resolved_at IS NULL",
                (ident,),
            )
        restored = _restore(db, (kind, ident))
        if open_one is None and not restored:
            raise Refused(
                f"{kind} {ident} is not frozen and its rows are as the custody chain "
                "has them: nothing to resolve"
            )
        rowchain.settle_restored(db)  # back as the chain has them: nothing new to chain
        if open_one is not None:
            db.execute(
                "UPDATE freezes SET resolved_by = ?, resolved_at = ?, resolution = ? WHERE id = ?",
                (by, utcnow(), reason, open_one["id"]),
            )
        details: dict[str, Any] = {"reason": reason, "restored_from_chain": restored}
        if kind != "recording":
            details[kind] = ident
        custody.append(db, Action.RESOLVE, ident if kind == "recording" else None, by, details)
    return restored
