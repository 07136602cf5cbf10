"""Re-filing a recording under another name (attribution, REG-4.2.4): the owned journal entry
and its compare-and-set steps. A re-filing is planned (its new name reserved) before any link is
made, linked once the catalog points at the new name, done once the old names are gone; each
step changes the row only from the state it expects, as its owner. Recovery takes over only a
dead owner's row (``claim``), so a live operation is never undone by another (issue 26)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlite_utils import Database

from camdock.catalog import custody
from camdock.catalog.custody import Action
from camdock.catalog.db import Row, one, pk, rows_as, write_txn
from camdock.clock import utcnow
from camdock.errors import CamdockError, Conflict

__all__ = [
    "NameTaken",
    "Owner",
    "Refile",
    "RefileState",
    "advance",
    "claim",
    "pending",
    "plan",
    "record_attribution",
]


class RefileState(StrEnum):
    """Where a re-filing is: planned before any link, linked once the catalog points at the new
    name, done once the old names are gone; abandoned when undone."""

    PLANNED = "planned"
    LINKED = "linked"
    DONE = "done"
    ABANDONED = "abandoned"


@dataclass(frozen=True)
class Owner:
    """The process that owns a re-filing: boot id, pid, start time (None: a row from before
    owners were recorded, whose process is gone)."""

    boot: str | None
    pid: int | None
    start: int | None


@dataclass(frozen=True)
class Refile(Row):
    """A pending re-filing, with the recording's hash, size, catalogued name and tombstone now."""

    id: int
    recording_id: int
    old_relpath: str
    new_relpath: str
    state: RefileState
    time: str
    owner_boot: str | None
    owner_pid: int | None
    owner_start: int | None
    actor: str | None
    sha256: str
    size: int
    relpath: str  # where the catalog files the recording now
    destroyed_at: str | None

    @property
    def owner(self) -> Owner:
        """Whose it is."""
        return Owner(self.owner_boot, self.owner_pid, self.owner_start)


class NameTaken(CamdockError):
    """The new name was taken or reserved meanwhile: choose another."""


def _why_not(db: Database, recording_id: int, old: str, badge: str) -> str | None:
    """Why the recording cannot be re-filed from ``old`` now (for the second custodian: who
    did it first and when), or None."""
    rec = one(
        db,
        "SELECT relpath, destroyed_at, destroyed_by, attribution, officer_badge "
        "FROM recordings WHERE id = ?",
        (recording_id,),
    )
    if rec is None:
        return f"no recording {recording_id} in the catalog"
    if rec["destroyed_at"]:
        return (
            f"recording {recording_id} was destroyed by {rec['destroyed_by']} at "
            f"{rec['destroyed_at']}"
        )
    busy = one(
        db,
        "SELECT actor, time FROM refiles WHERE recording_id = ? AND state IN "
        "('planned', 'linked') ORDER BY id LIMIT 1",
        (recording_id,),
    )
    if busy is not None:
        return (
            f"recording {recording_id} is being attributed by {busy['actor'] or '?'} "
            f"(since {busy['time']})"
        )
    same = rec["attribution"] == "manual" and rec["officer_badge"] == badge
    if rec["relpath"] == old and not same:
        return None
    first = one(
        db,
        "SELECT actor, time, details FROM custody_log WHERE recording_id = ? AND "
        "action = 'attribute' ORDER BY id DESC LIMIT 1",
        (recording_id,),
    )
    if first is None:
        return f"recording {recording_id} was re-filed meanwhile (now {rec['relpath']})"
    return (
        f"recording {recording_id} already attributed to {rec['officer_badge']} by "
        f"{first['actor']} at {first['time']}"
    )


def _reserved(db: Database, recording_id: int, new: str) -> bool:
    """Whether ``new`` names another recording, or is another pending re-filing's name."""
    taken = one(db, "SELECT id FROM recordings WHERE relpath = ? AND id != ?", (new, recording_id))
    reserved = one(
        db,
        "SELECT id FROM refiles WHERE state IN ('planned', 'linked') AND recording_id != ? "
        "AND (new_relpath = ? OR old_relpath = ?)",
        (recording_id, new, new),
    )
    return taken is not None or reserved is not None


def plan(
    db: Database, recording_id: int, old: str, new: str, *, badge: str, owner: Owner, actor: str
) -> int:
    """Journal a re-filing before any link is made, if the recording is still live under
    ``old``, not already filed under ``badge``, and nobody else is re-filing it; its new name
    is reserved. Refused otherwise: ``Conflict`` (recorded once in the custody log as a
    refusal, REG-7.1), or ``NameTaken``."""
    with write_txn(db):
        why = _why_not(db, recording_id, old, badge)
        if why is None:
            if _reserved(db, recording_id, new):
                raise NameTaken(f"{new} was taken meanwhile")
            row = {
                "recording_id": recording_id,
                "old_relpath": old,
                "new_relpath": new,
                "state": RefileState.PLANNED,
                "time": utcnow(),
                "owner_boot": owner.boot,
                "owner_pid": owner.pid,
                "owner_start": owner.start,
                "actor": actor,
            }
            return pk(db.table("refiles").insert(row).last_pk)
        refusal = {"attempted": "attribute", "recording": recording_id, "reason": why}
        custody.append(db, Action.REFUSED, None, actor, refusal)
    raise Conflict(why)


def _owner(owner: Owner) -> tuple[str | None, int | None, int | None]:
    return owner.boot, owner.pid, owner.start


def advance(db: Database, refile_id: int, owner: Owner, was: RefileState, now: RefileState) -> bool:
    """Move a re-filing on from ``was`` to ``now`` if it is still there and ``owner``'s."""
    with write_txn(db):
        cur = db.execute(
            "UPDATE refiles SET state = ? WHERE id = ? AND state = ? AND owner_boot IS ? AND "
            "owner_pid IS ? AND owner_start IS ?",
            (now, refile_id, was, *_owner(owner)),
        )
        return cur.rowcount == 1


def claim(db: Database, refile: Refile, me: Owner) -> bool:
    """Take over a dead owner's re-filing (recovery): only if nobody changed or took it since
    it was read, so two recoveries never work on one row at once."""
    with write_txn(db):
        cur = db.execute(
            "UPDATE refiles SET owner_boot = ?, owner_pid = ?, owner_start = ? WHERE id = ? "
            "AND state = ? AND owner_boot IS ? AND owner_pid IS ? AND owner_start IS ?",
            (*_owner(me), refile.id, refile.state, *_owner(refile.owner)),
        )
        return cur.rowcount == 1


def pending(db: Database) -> list[Refile]:
    """Re-filings not done nor abandoned, with the recording's hash, size and name now."""
    return rows_as(
        Refile,
        db,
        "SELECT f.*, r.sha256, r.size, r.relpath, r.destroyed_at FROM refiles f JOIN "
        "recordings r ON r.id = f.recording_id WHERE f.state IN ('planned', 'linked') "
        "ORDER BY f.id",
    )


def record_attribution(
    db: Database,
    *,
    refile_id: int,
    owner: Owner,
    recording_id: int,
    old: str,
    officer: dict[str, str],
    actor: str,
    details: dict[str, Any],
) -> str:
    """The recording is filed under ``officer`` at the re-filing's new name now: the row, its
    copies, the journal (planned → linked) and the 'attribute' custody entry (REG-7.1) in one
    transaction, only if the re-filing is still planned and ours and the recording still under
    ``old``. Returns the new name."""
    with write_txn(db):
        f = one(
            db,
            "SELECT new_relpath FROM refiles WHERE id = ? AND state = 'planned' AND "
            "owner_boot IS ? AND owner_pid IS ? AND owner_start IS ?",
            (refile_id, *_owner(owner)),
        )
        if f is None:
            raise CamdockError(
                f"re-filing {refile_id} of recording {recording_id} is no longer ours: not recorded"
            )
        new = str(f["new_relpath"])
        cur = db.execute(
            "UPDATE recordings SET officer_name = ?, officer_badge = ?, unit = ?, "
            "attribution = 'manual', relpath = ? WHERE id = ? AND relpath = ? AND "
            "destroyed_at IS NULL",
            (officer["name"], officer["badge"], officer["unit"], new, recording_id, old),
        )
        if cur.rowcount != 1:
            raise Conflict(f"recording {recording_id} changed while it was being re-filed")
        db.execute("UPDATE copies SET relpath = ? WHERE recording_id = ?", (new, recording_id))
        db.execute("UPDATE refiles SET state = 'linked' WHERE id = ?", (refile_id,))
        custody.append(db, Action.ATTRIBUTE, recording_id, actor, details)
    return new
