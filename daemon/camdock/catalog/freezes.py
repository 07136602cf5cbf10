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
        if one(db, "SELECT id FROM freezes WHERE recording_id = ? AND resolved_at IS NULL",
               (recording_id,)) is not None:  # fmt: skip
            return False
        db.execute(
            "INSERT INTO freezes (recording_id, reason, found_at) VALUES (?, ?, ?)",
            (recording_id, reason, utcnow()),
        )
        custody.append(db, Action.FREEZE, recording_id, actor, {"reason": reason})
    return True


def open_freezes(db: Database) -> list[Frozen]:
    """Every recording frozen now, oldest first."""
    return rows_as(Frozen, db, "SELECT id, recording_id, reason, found_at FROM freezes "
                   "WHERE resolved_at IS NULL ORDER BY id")  # fmt: skip


def frozen(db: Database, recording_ids: list[int]) -> list[Frozen]:
    """Which of these recordings are frozen."""
    wanted = set(recording_ids)
    return [f for f in open_freezes(db) if f.recording_id in wanted]


def refuse_frozen(db: Database, recording_ids: list[int], what: str) -> None:
    """Refuse ``what`` (destroy, seal, copy, view) for recordings the catalog and the chain
    disagree about; call inside the transaction that would act (the check and the act agree)."""
    if found := frozen(db, recording_ids):
        names = ", ".join(f"{f.recording_id} ({f.reason})" for f in found)
        raise Refused(f"{what} refused: recording(s) frozen until an auditor resolves them "
                      f"(camdock audit resolve): {names}")  # fmt: skip


def _restore(db: Database, recording_id: int) -> list[str]:
    """Put the recording's row and its copies' rows back to the chain's last state of them."""
    last = rowchain.chained(db)
    restored = []
    for (table, key), state in last.items():
        k = json.loads(key)
        if state is None or not (
            (table == "recordings" and k == [recording_id])
            or (table == "copies" and k[0] == recording_id)
        ):
            continue
        keys, _skip = rowchain.COVERED[table]
        cols = [c for c in state if c not in keys]
        values: list[Any] = [
            bytes.fromhex(v["hex"]) if isinstance(v, dict) else v for v in (state[c] for c in cols)
        ]
        where = " AND ".join(f"{c} = ?" for c in keys)
        sets = ", ".join(f"{c} = ?" for c in cols)
        done = db.execute(f"UPDATE {table} SET {sets} WHERE {where}", [*values, *k])  # noqa: S608
        if done.rowcount:
            restored.append(f"{table} {key}")
    return restored


def resolve(db: Database, recording_id: int, by: str, reason: str) -> list[str]:
    """An auditor resolves a freeze: the recording's rows as the chain has them, the freeze
    closed, a custody entry naming the auditor. Returns the rows put back."""
    with write_txn(db):
        open_one = one(db, "SELECT id FROM freezes WHERE recording_id = ? AND resolved_at IS "
                       "NULL", (recording_id,))  # fmt: skip
        if open_one is None:
            raise Refused(f"recording {recording_id} is not frozen")
        restored = _restore(db, recording_id)
        rowchain.settle_restored(db)  # back as the chain has them: nothing new to chain
        db.execute(
            "UPDATE freezes SET resolved_by = ?, resolved_at = ?, resolution = ? WHERE id = ?",
            (by, utcnow(), reason, open_one["id"]),
        )
        custody.append(db, Action.RESOLVE, recording_id, by,
                       {"reason": reason, "restored_from_chain": restored})  # fmt: skip
    return restored
