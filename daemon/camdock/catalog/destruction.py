"""Destruction only with approval (REG-4.3.1, REG-7.1; issue 27): destruction lists (proposed
by a custodian, approved by someone else, executed once) and standing authorisations (an
approver's record, with its reference number, scope and expiry). Every change is one
transaction with its custody entry; each state change checks its precondition inside it
(compare-and-set), so two approvers at once approve a list once, and an execution never
starts on a list that is not approved when its transaction looks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlite_utils import Database

from camdock.catalog import custody
from camdock.catalog.custody import Action
from camdock.catalog.db import Row, one_as, pk, rows_as, write_txn
from camdock.catalog.outbox import record
from camdock.clock import utcnow
from camdock.errors import CamdockError, Conflict, ExitCode, Refused
from camdock.events import EventType, Topics

__all__ = [
    "Authorisation",
    "DestructionList",
    "ListItem",
    "approve",
    "authorisations",
    "authorise",
    "finish",
    "get",
    "items",
    "listing",
    "live_authorisation",
    "note_outcome",
    "propose",
    "revoke",
    "start",
]


@dataclass(frozen=True)
class DestructionList(Row):
    """A list of recordings to destroy, and where it is (proposed → approved → executed)."""

    id: int
    state: str
    reason: str
    proposed_by: str
    proposed_by_id: str
    proposed_at: str
    approved_by: str | None
    approved_by_id: str | None
    approved_at: str | None
    executed_by: str | None
    executed_by_id: str | None
    executed_at: str | None
    done_at: str | None


@dataclass(frozen=True)
class Authorisation(Row):
    """A standing authorisation to destroy what is due (an approver's record)."""

    id: int
    ref: str
    scope: str
    custodian: str
    approved_by: str
    approved_by_id: str
    approved_at: str
    expires: str
    revoked_at: str | None
    revoked_by: str | None = None  # issue 27, gap 3 (m024)
    revoked_by_id: str | None = None


def propose(db: Database, recording_ids: list[int], by: str, by_id: str, reason: str,
            topics: Topics | None = None) -> int:  # fmt: skip
    """A custodian's list of recordings to destroy; returns its number (and its event)."""
    if not recording_ids:
        raise CamdockError("nothing is due for destruction: no list proposed", ExitCode.NOINPUT)
    with write_txn(db):
        row = {"state": "proposed", "reason": reason, "proposed_by": by,
               "proposed_by_id": by_id, "proposed_at": utcnow()}  # fmt: skip
        list_id = pk(db.table("destruction_lists").insert(row).last_pk)
        db.conn.executemany(
            "INSERT INTO destruction_list_items (list_id, recording_id) VALUES (?, ?)",
            [(list_id, r) for r in recording_ids],
        )
        details = {"list": list_id, "recordings": recording_ids, "reason": reason,
                   "state": "proposed"}  # fmt: skip
        custody.append(db, Action.DESTROY_PROPOSE, None, by, details)
        _event(db, topics, EventType.DESTRUCTION_PROPOSED, details, by)
    return list_id


def get(db: Database, list_id: int) -> DestructionList | None:
    """One list by its number."""
    return one_as(DestructionList, db, "SELECT * FROM destruction_lists WHERE id = ?",
                  (list_id,))  # fmt: skip


def listing(db: Database) -> list[DestructionList]:
    """Every list, newest first."""
    return rows_as(DestructionList, db, "SELECT * FROM destruction_lists ORDER BY id DESC")


@dataclass(frozen=True)
class ListItem(Row):
    """One recording a list names and, once the list is executed, what became of it."""

    recording_id: int
    outcome: str | None


def items(db: Database, list_id: int) -> list[ListItem]:
    """A list's recordings and, once executed, what became of each."""
    return rows_as(ListItem, db, "SELECT recording_id, outcome FROM destruction_list_items "
                   "WHERE list_id = ? ORDER BY recording_id", (list_id,))  # fmt: skip


def _fresh(db: Database, list_id: int) -> DestructionList:
    found = get(db, list_id)
    if found is None:
        raise CamdockError(f"no destruction list {list_id}", ExitCode.NOINPUT)
    return found


def approve(db: Database, list_id: int, by: str, by_id: str,
            topics: Topics | None = None) -> None:  # fmt: skip
    """An approver approves a proposed list: checked inside the write (compare-and-set on its
    state), so of two approvers at once one approves and the other is told who did; nobody
    approves a list they proposed (checked by staff id)."""
    with write_txn(db):
        found = _fresh(db, list_id)
        if found.state != "proposed":
            raise Conflict(f"destruction list {list_id} is already {found.state}",
                           found.approved_by, found.approved_at)  # fmt: skip
        if found.proposed_by_id == by_id:
            raise Refused(f"destruction list {list_id}: nobody approves a list they proposed "
                          "(REG-4.3.1: an approver other than the custodian)")  # fmt: skip
        now = utcnow()
        db.execute("UPDATE destruction_lists SET state = 'approved', approved_by = ?, "
                   "approved_by_id = ?, approved_at = ? WHERE id = ? AND state = 'proposed'",
                   (by, by_id, now, list_id))  # fmt: skip
        details = {"list": list_id, "state": "approved"}
        custody.append(db, Action.DESTROY_APPROVE, None, by, details)
        _event(db, topics, EventType.DESTRUCTION_APPROVED, details, by)


def start(
    db: Database, list_id: int, by: str, by_id: str, *, resume: bool = False
) -> DestructionList:
    """Take an approved list for execution (compare-and-set: approved → executing), once; a
    list not approved (yet) is refused, one taken already a ``Conflict`` naming who.
    ``resume``: also take up a list whose execution was interrupted (a crash): each recording
    is destroyed once all the same (destruction's own compare-and-set)."""
    with write_txn(db):
        found = _fresh(db, list_id)
        if found.state == "executing" and resume:
            custody.append(db, Action.DESTROY_EXECUTE, None, by,
                           {"list": list_id, "state": "executing", "resumed": True})  # fmt: skip
            return found
        if found.state in ("executing", "executed"):
            raise Conflict(f"destruction list {list_id} is already {found.state}",
                           found.executed_by, found.executed_at)  # fmt: skip
        if found.state != "approved":
            raise Refused(f"destruction list {list_id} is {found.state}: only an approved list "
                          "is executed (REG-4.3.1)")  # fmt: skip
        db.execute("UPDATE destruction_lists SET state = 'executing', executed_by = ?, "
                   "executed_by_id = ?, executed_at = ? WHERE id = ? AND state = 'approved'",
                   (by, by_id, utcnow(), list_id))  # fmt: skip
        custody.append(db, Action.DESTROY_EXECUTE, None, by,
                       {"list": list_id, "state": "executing"})  # fmt: skip
    return _fresh(db, list_id)


def note_outcome(db: Database, list_id: int, recording_id: int, outcome: str) -> None:
    """What became of one recording of a list being executed."""
    with write_txn(db):
        db.execute("UPDATE destruction_list_items SET outcome = ? WHERE list_id = ? AND "
                   "recording_id = ?", (outcome, list_id, recording_id))  # fmt: skip
        custody.append(db, Action.STATE, recording_id, "camdock",
                       {"list": list_id, "outcome": outcome})  # fmt: skip


def finish(db: Database, list_id: int, by: str, topics: Topics | None = None) -> None:
    """The list executed: every recording destroyed or skipped with the reason."""
    with write_txn(db):
        db.execute("UPDATE destruction_lists SET state = 'executed', done_at = ? WHERE id = ? "
                   "AND state = 'executing'", (utcnow(), list_id))  # fmt: skip
        outcomes = {str(i.recording_id): i.outcome for i in items(db, list_id)}
        details = {"list": list_id, "state": "executed", "outcomes": outcomes}
        custody.append(db, Action.DESTROY_EXECUTE, None, by, details)
        _event(db, topics, EventType.DESTRUCTION_EXECUTED, details, by)


def _event(db: Database, topics: Topics | None, kind: EventType, details: dict[str, Any],
           by: str) -> None:  # fmt: skip
    """A list's (or an authorisation's) event, in the transaction of its change (REG-7.1)."""
    if topics is not None:
        record(db, topics, kind, data={**details, "by": by})


def authorise(db: Database, ref: str, scope: str, custodian: str, expires: date, by: str,
              by_id: str) -> int:  # fmt: skip
    """An approver's standing authorisation: the daemon destroys what is due (``scope``) under
    ``custodian``'s name until ``expires`` (inclusive)."""
    if not ref.strip():
        raise CamdockError("--ref: the written authorisation's reference number", ExitCode.USAGE)
    with write_txn(db):
        row = {"ref": ref.strip(), "scope": scope, "custodian": custodian, "approved_by": by,
               "approved_by_id": by_id, "approved_at": utcnow(),
               "expires": expires.isoformat()}  # fmt: skip
        auth_id = pk(db.table("standing_authorisations").insert(row).last_pk)
        details = {"authorisation": auth_id, **row}
        custody.append(db, Action.AUTHORISE, None, by, details)
    return auth_id


def live_authorisation(db: Database, today: date) -> Authorisation | None:
    """The standing authorisation in force today (the latest approved), or None."""
    return one_as(Authorisation, db, "SELECT * FROM standing_authorisations WHERE revoked_at IS "
                  "NULL AND expires >= ? AND scope = 'due' ORDER BY id DESC LIMIT 1",
                  (today.isoformat(),))  # fmt: skip


def revoke(db: Database, ref: str, by: str, by_id: str, reason: str,
           topics: Topics | None = None) -> Authorisation:  # fmt: skip
    """An approver revokes standing authorisation ``ref`` (REG-4.3.1): a compare-and-set on
    ``revoked_at IS NULL`` inside the write, so of two revocations the second is a
    ``Conflict`` naming who revoked it and when; the daily pass stops using it at once."""
    with write_txn(db):
        found = one_as(Authorisation, db, "SELECT * FROM standing_authorisations WHERE ref = ? "
                       "ORDER BY id DESC LIMIT 1", (ref.strip(),))  # fmt: skip
        if found is None:
            raise CamdockError(f"no standing authorisation {ref}", ExitCode.NOINPUT)
        # Every row the reference was recorded under (recorded twice, a corrected expiry):
        # one left unrevoked would stay in force under a reference its approver revoked.
        live = rows_as(Authorisation, db, "SELECT * FROM standing_authorisations WHERE ref = ? "
                       "AND revoked_at IS NULL ORDER BY id", (ref.strip(),))  # fmt: skip
        if not live:
            raise Conflict(f"standing authorisation {ref} is already revoked",
                           found.revoked_by or "?", found.revoked_at)  # fmt: skip
        now = utcnow()
        for each in live:
            db.execute("UPDATE standing_authorisations SET revoked_at = ?, revoked_by = ?, "
                       "revoked_by_id = ? WHERE id = ? AND revoked_at IS NULL",
                       (now, by, by_id, each.id))  # fmt: skip
            details = {"authorisation": each.id, "ref": each.ref, "reason": reason,
                       "revoked_at": now}  # fmt: skip
            custody.append(db, Action.REVOKE, None, by, details)
            _event(db, topics, EventType.AUTHORISATION_REVOKED, details, by)
        found = live[-1]
    revoked = one_as(Authorisation, db, "SELECT * FROM standing_authorisations WHERE id = ?",
                     (found.id,))  # fmt: skip
    assert revoked is not None
    return revoked


def authorisations(db: Database) -> list[Authorisation]:
    """Every standing authorisation, newest first, revoked ones included (the console)."""
    return rows_as(Authorisation, db, "SELECT * FROM standing_authorisations ORDER BY id DESC")


def recordings_of(db: Database, list_id: int) -> list[int]:
    """The recordings a list names."""
    return [i.recording_id for i in items(db, list_id)]


def as_json(found: DestructionList, its: list[ListItem]) -> dict[str, Any]:
    """A list and its recordings for ``--json`` and the console."""
    return {**found.as_dict(), "recordings": [i.as_dict() for i in its]}
