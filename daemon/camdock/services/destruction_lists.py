"""Destruction only with approval (REG-4.3.1, REG-7.1; issue 27): destruction lists (a
custodian proposes, another person approves, a custodian executes once) and standing
authorisations (an approver's record the daemon destroys under)."""

from __future__ import annotations

from datetime import date

from sqlite_utils import Database

from camdock import clock
from camdock.catalog import destruction, requests, seals
from camdock.catalog import retention as catalog
from camdock.catalog import staff as staff_rows
from camdock.core.access import Role
from camdock.core.retention import add_months, refusal
from camdock.errors import CamdockError, Conflict, ExitCode, Refused, UnknownRecording
from camdock.events import Topics
from camdock.services import destroying
from camdock.services.destroying import Destroyed, day_of, destroy
from camdock.services.keeping import Keeping, in_force, plan_for, refused

__all__ = [
    "approve_list",
    "authorise",
    "execute_list",
    "propose_list",
    "refuse_unapproved",
    "revoke_authorisation",
]


def propose_list(db: Database, keeping: Keeping, today: date, by: str, by_id: str, *,
                 recordings: list[int] | None = None,
                 reason: str = "retention period ended (REG-4.3.1)") -> int:  # fmt: skip
    """A custodian proposes a destruction list: the recordings due today and not held (the
    retention plan's), or those named, each of which the rules must allow today."""
    active = in_force(db)
    if recordings is None:
        ids = [c.id for c in plan_for(db, today).due]
    else:
        ids = []
        for rec_id in dict.fromkeys(recordings):  # each once, in the order named
            c = catalog.candidate(db, rec_id)
            if c is None:
                raise UnknownRecording(f"no recording {rec_id} in the catalog (or destroyed)")
            if why := refusal(c, today, active, keeping.policy):
                raise Refused(f"recording {rec_id} may not be destroyed: {why}")
            ids.append(rec_id)
    return destruction.propose(db, ids, by, by_id, reason, keeping.topics)


def approve_list(db: Database, list_id: int, by: str, by_id: str,
                 topics: Topics | None) -> None:  # fmt: skip
    """An approver (not the proposer) approves a list; a refusal or a conflict is recorded."""
    try:
        destruction.approve(db, list_id, by, by_id, topics)
    except Conflict as exc:
        refused(db, by, "destroy-approve", exc, topics, {"list": list_id})
        raise
    except Refused as exc:
        requests.record_refusal(db, by, "destroy-approve", None, str(exc), topics,
                                {"list": list_id})  # fmt: skip
        raise


def execute_list(db: Database, keeping: Keeping, today: date, list_id: int, by: str,
                 by_id: str, *, resume: bool = False) -> list[Destroyed]:  # fmt: skip
    """Execute an approved list, once: each recording checked again by the rules inside the
    transaction that plans its destruction (a hold, a freeze, its retention date, destroyed
    already); one no longer allowed is skipped with the reason, never destroyed."""
    named = [c for i in destruction.recordings_of(db, list_id)
             if (c := catalog.candidate(db, i)) is not None]  # fmt: skip
    sealed = sorted({d for c in named if seals.current(db, d := day_of(c))})
    if sealed and keeping.reseal is None:  # refused before the list is taken: it stays approved
        raise Refused(f"duty day(s) {', '.join(map(str, sealed))} are sealed: destroying "
                      "their footage re-seals them, which needs the seal password "
                      "(--password-file, or the station's credential)")  # fmt: skip
    try:
        taken = destruction.start(db, list_id, by, by_id, resume=resume)
    except Conflict as exc:
        refused(db, by, "destroy", exc, keeping.topics, {"list": list_id})
        raise
    except Refused as exc:
        requests.record_refusal(db, by, "destroy", None, str(exc), keeping.topics,
                                {"list": list_id})  # fmt: skip
        raise
    # The event's contract names the authority manual or standing; the list is in the reason.
    reason = f"{taken.reason}; destruction list {list_id} approved by {taken.approved_by}"
    done: list[Destroyed] = []
    done_before = {i.recording_id for i in destruction.items(db, list_id) if i.outcome}
    for rec_id in destruction.recordings_of(db, list_id):
        if rec_id in done_before:  # a resumed list: what the interrupted run finished
            continue
        first = catalog.fate(db, rec_id)
        if first is not None and first[0] == "destroyed":  # by the run a crash interrupted
            destruction.note_outcome(db, list_id, rec_id, f"destroyed by {first[1]} at {first[2]}")
            continue
        try:  # one left destroying (a crash, a drive) is finished, its rules asked again
            made = (destroying.resume(db, keeping, today, rec_id) if first is not None
                    else destroy(db, keeping, today, by, recordings=[rec_id],
                                 reason=reason))  # fmt: skip
        except Refused as exc:
            destruction.note_outcome(db, list_id, rec_id, f"skipped: {exc}")
            continue
        destruction.note_outcome(db, list_id, rec_id, "destroyed")
        done += made
    destruction.finish(db, list_id, by, keeping.topics)
    return done


def refuse_unapproved(db: Database, by: str, topics: Topics | None,
                      recordings: list[int] | None = None) -> Refused:  # fmt: skip
    """A destruction asked for without an approved list: refused, and the attempt recorded."""
    exc = Refused("destruction needs an approved destruction list (REG-4.3.1): camdock "
                  "retention propose, approve (another person), execute --list N")  # fmt: skip
    requests.record_refusal(db, by, "destroy", None, str(exc), topics,
                            {"recordings": recordings})  # fmt: skip
    return exc


def authorise(db: Database, ref: str, custodian: str, expires: date, by: str, by_id: str,
              today: date) -> int:  # fmt: skip
    """An approver's standing authorisation for the daemon to destroy what is due: for at most
    a year, naming an active custodian on the staff who is not the approver (issue 27: two
    people, by identity); a refusal is recorded."""
    if expires < today:
        raise CamdockError(f"--until {expires}: already past", ExitCode.USAGE)
    if expires > add_months(today, 12):
        raise CamdockError(f"--until {expires}: a standing authorisation lasts a year at most",
                           ExitCode.USAGE)  # fmt: skip
    why, named = None, custodian.strip()
    if named == by_id:
        why = "the approver cannot authorise themselves as the custodian"
    elif staff_rows.has_roles(db):  # a station: the custodian by staff id, recorded by label
        who = staff_rows.person(db, named, clock.now())
        if who is None or Role.CUSTODIAN not in who.roles:
            why = f"{custodian!r} is not an active custodian's staff id"
        elif who.id == by_id:
            why = "the approver cannot authorise themselves as the custodian"
        else:
            named = who.label
    if why is not None:
        requests.record_refusal(db, by, "authorise", None, why, None, {"ref": ref})
        raise Refused(why)
    return destruction.authorise(db, ref, "due", named, expires, by, by_id)


def revoke_authorisation(db: Database, ref: str, by: str, by_id: str, reason: str,
                         topics: Topics | None) -> destruction.Authorisation:  # fmt: skip
    """An approver revokes a standing authorisation (REG-4.3.1): the daily pass stops using it
    at once; revoked already (by someone else a moment ago) is a ``Conflict`` naming who and
    when, recorded as a refusal."""
    if not ref.strip():
        raise CamdockError("REF: the written authorisation's reference number", ExitCode.USAGE)
    if not reason.strip():
        raise CamdockError("--reason: say why the authorisation is revoked", ExitCode.USAGE)
    try:
        return destruction.revoke(db, ref, by, by_id, reason.strip(), topics)
    except Conflict as exc:
        refused(db, by, "revoke-authorisation", exc, topics, {"ref": ref})
        raise
