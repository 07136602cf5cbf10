"""Retention (REG-4.3.1) and the catalog's backup (REG-4.3.2): the daily pass, holds, and
destruction that can be proven.

Destruction, per recording: the rules are checked (core/retention.refusal), every destination
holding a copy is proven to be its drive, the destruction is journalled (who, under which
authority, why), each copy is removed, checked gone and its directory fsynced, and only then do
the tombstone, the custody entry and the ``recording-destroyed`` event commit together. A crash
in between leaves a planned destruction that the next pass (or command) finishes; one that had
removed nothing and is no longer allowed (a hold placed meanwhile) is abandoned instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sqlite_utils import Database

from camdock import clock
from camdock.adapters import fsio, manifest
from camdock.adapters.drives import StorageMissing, prove_all
from camdock.catalog import custody, destruction, freezes, holds, recordings, requests, seals
from camdock.catalog import retention as catalog
from camdock.catalog import staff as staff_rows
from camdock.config import Config
from camdock.core.access import OPEN, Role
from camdock.core.retention import (
    Candidate,
    Hold,
    HoldKind,
    Plan,
    Policy,
    add_months,
    plan,
    refusal,
)
from camdock.errors import CamdockError, Conflict, ExitCode, Refused, UnknownRecording
from camdock.events import EventType, Topics
from camdock.model import Drive
from camdock.services import backup
from camdock.services.audit import publish_head
from camdock.services.seal import Sealing, seal_day

__all__ = [
    "Keeping",
    "PassResult",
    "approve_list",
    "authorise",
    "covered_now",
    "daily_pass",
    "destroy",
    "execute_list",
    "finish_pending",
    "place_hold",
    "plan_for",
    "propose_list",
    "refuse_unapproved",
    "release_hold",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Keeping:
    """Where and under which rules retention acts: the policy, the destination drives to prove
    (empty on a development machine or a bare catalog), the destination roots copies may be
    removed from (None: as the catalog records them) and where events go (None: nowhere)."""

    policy: Policy = field(default_factory=Policy)
    drives: tuple[Drive, ...] = ()
    roots: frozenset[str] | None = None
    topics: Topics | None = None
    # Seals a day again without what was destroyed (REG-4.2.5): (db, day, who). None: no seal
    # key here, so footage of a sealed day is not destroyed.
    reseal: Callable[[Database, date, str], object] | None = None
    # The station's registry, for a hold's scope: each camera's USB serial → its agency id
    # (one identity, as `offload --camera` takes either), and the badges on its rolls.
    cameras: Mapping[str, str] = field(default_factory=dict)
    badges: frozenset[str] = frozenset()

    @classmethod
    def from_config(cls, cfg: Config, password_file: Path | None = None) -> Keeping:
        """The station's rules, drives, topics, seal key and registry."""
        sealing = Sealing.from_config(cfg, password_file)
        return cls(
            cfg.retention,
            cfg.drives if cfg.require_mounts else (),
            frozenset(str(d.root) for d in cfg.drives),
            cfg.topics,
            _resealer(sealing) if sealing.key is not None else None,
            {c.serial: c.id for c in cfg.cameras.values()},
            frozenset(cfg.officers) | frozenset(cfg.staff),
        )


def _resealer(sealing: Sealing) -> Callable[[Database, date, str], object]:
    return lambda db, day, by: seal_day(db, sealing, day, by)


def in_force(db: Database) -> list[Hold]:
    """Every hold in force: those placed, and each open access/copy request, which holds what
    it covers (REG-4.3.1: footage under a request is not destroyed)."""
    by_request: dict[str, set[int]] = {}
    for rec_id, numbers in requests.held_recordings(db, sorted(OPEN)).items():
        for n in numbers:
            by_request.setdefault(n, set()).add(rec_id)
    made = [Hold(-i, HoldKind.REQUEST, number, "an open access/copy request", "camdock",
                 recordings=frozenset(ids))
            for i, (number, ids) in enumerate(sorted(by_request.items()), 1)]  # fmt: skip
    return holds.active(db) + made


def plan_for(db: Database, today: date) -> Plan:
    """The retention pass for ``today``, without acting on it."""
    destroyable, becoming, live = catalog.counts(db, today)
    pending = tuple(d["recording_id"] for d in catalog.pending(db))
    return plan(today, catalog.due(db, today), in_force(db), destroyable=destroyable,
                becomes_destroyable=becoming, live=live, pending=pending)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Holds


def place_hold(
    db: Database,
    keeping: Keeping,
    by: str,
    *,
    kind: HoldKind,
    case: str,
    reason: str,
    recording: int | None = None,
    officer: str | None = None,
    camera: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    review_by: date | None = None,
    today: date | None = None,
) -> int:
    """Place a hold on one recording, or on an officer's or camera's footage over a range."""
    if review_by is not None and today is not None and review_by < today:
        raise CamdockError(f"--review-by {review_by}: a hold cannot be placed already past its "
                           "review date", ExitCode.USAGE)  # fmt: skip
    if recording is None and officer is None and camera is None:
        raise CamdockError("a hold needs a scope: --recording, or --officer/--camera "
                           "(with --from/--to)", ExitCode.USAGE)  # fmt: skip
    if recording is not None and (officer or camera or start or end):
        raise CamdockError("--recording holds one recording: no --officer, --camera or range",
                           ExitCode.USAGE)  # fmt: skip
    if start is not None and end is not None and end < start:
        raise CamdockError("--to is before --from", ExitCode.USAGE)
    if not case.strip() or not reason.strip():
        raise CamdockError("a hold names its case or reference number and its reason",
                           ExitCode.USAGE)  # fmt: skip
    if recording is not None and catalog.candidate(db, recording) is None:
        raise UnknownRecording(f"no recording {recording} in the catalog (or destroyed)")
    camera = _camera_identity(db, keeping, camera)
    if (
        officer is not None
        and officer not in keeping.badges
        and not catalog.known(db, officer=officer)
    ):
        raise CamdockError(f"--officer {officer}: no such badge on the station's rolls or in "
                           "the catalog", ExitCode.NOINPUT)  # fmt: skip
    row = {
        "kind": kind.value,
        "case_ref": case.strip(),
        "reason": reason.strip(),
        "recording_id": recording,
        "officer_badge": officer,
        "camera_id": camera,
        "range_start": start.isoformat() if start else None,
        "range_end": end.isoformat() if end else None,
        "review_by": review_by.isoformat() if review_by else None,
    }
    try:
        return holds.place(db, row, by, keeping.topics)
    except Conflict as exc:
        refused(db, by, "hold", exc, keeping.topics, {"case_ref": row["case_ref"]})
        raise


def _camera_identity(db: Database, keeping: Keeping, camera: str | None) -> str | None:
    """A camera named by its agency id or its USB serial, as the agency id (what recordings
    carry); one neither registered nor in the catalog is refused."""
    if camera is None:
        return None
    if camera in keeping.cameras:
        return keeping.cameras[camera]
    if camera in keeping.cameras.values() or catalog.known(db, camera=camera):
        return camera
    raise CamdockError(f"--camera {camera}: no such camera (agency id or USB serial) on the "
                       "station's registry or in the catalog", ExitCode.NOINPUT)  # fmt: skip


def covered_now(db: Database, hold_id: int) -> int:
    """How many live recordings a hold keeps today (a range hold also keeps footage docked
    later: zero now is said, not an error)."""
    found = next((h for h in holds.active(db) if h.id == hold_id), None)
    if found is None:
        return 0
    if found.recording_id is not None:
        return 1
    scope = catalog.live_in_scope(db, found.camera_id, found.officer_badge)
    return sum(1 for c in scope if found.covers(c))


def release_hold(db: Database, keeping: Keeping, hold_id: int, by: str, reason: str) -> None:
    """Release a hold in force; a hold already released (before, or by someone else at the same
    moment) is a ``Conflict`` that says by whom and when, recorded as a refusal."""
    row = holds.get(db, hold_id)
    if row is None:
        raise CamdockError(f"no hold {hold_id}", ExitCode.NOINPUT)
    if not reason.strip():
        raise CamdockError("--reason: say why the hold is released", ExitCode.USAGE)
    try:
        if row.released_at:
            raise Conflict(f"hold {hold_id} is already released", row.released_by,
                           row.released_at)  # fmt: skip
        holds.release(db, hold_id, by, reason.strip(), keeping.topics)
    except Conflict as exc:
        refused(db, by, "release", exc, keeping.topics, {"hold": hold_id})
        raise


def refused(db: Database, by: str, action: str, exc: Conflict, topics: Topics | None,
            extra: dict[str, Any]) -> None:  # fmt: skip
    """A conflict (someone did it first) into the custody log as a refusal, once."""
    requests.record_refusal(db, by, action, None, exc.what, topics,
                            {**extra, "conflict": True, "first_by": exc.by,
                             "first_at": exc.at})  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Destruction


@dataclass(frozen=True)
class Destroyed:
    """A recording destroyed: every copy removed and checked gone."""

    recording: int
    path: str
    copies: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        """For ``--json``."""
        return {"recording": self.recording, "path": self.path, "copies": list(self.copies)}


def destroy(
    db: Database,
    keeping: Keeping,
    today: date,
    by: str,
    *,
    recordings: list[int] | None = None,
    authority: str = "manual",
    reason: str = "retention period ended (REG-4.3.1)",
) -> list[Destroyed]:
    """Destroy ``recordings`` (each must be allowed, or nothing starts), or every recording
    due today and not held. Interrupted destructions are finished first."""
    done = finish_pending(db, keeping, today)
    active = in_force(db)
    if recordings is None:  # the plan's due list, each checked once more by the same rule
        targets = [
            c for c in plan_for(db, today).due if not refusal(c, today, active, keeping.policy)
        ]
    else:
        targets = [_allowed(db, keeping, today, rec_id, by, active) for rec_id in recordings]
    if recordings is None:  # the daily pass: a frozen recording waits for its auditor
        held_back = {f.recording_id for f in freezes.frozen(db, [c.id for c in targets])}
        targets = [c for c in targets if c.id not in held_back]
    else:
        freezes.refuse_frozen(db, [c.id for c in targets], "destruction")
    sealed = sorted({d for c in targets if seals.current(db, d := _day_of(c))})
    if sealed and keeping.reseal is None:
        raise Refused(f"duty day(s) {', '.join(map(str, sealed))} are sealed: destroying "
                      "their footage re-seals them, which needs the seal password "
                      "(--password-file, or the station's credential)")  # fmt: skip
    if targets:
        prove_all(keeping.drives)  # the copies are removed from the drives they belong to
    for c in targets:
        _check_copies(db, keeping, c)
        try:  # the compare-and-set: still live, nobody else destroying it, still allowed
            d_id = catalog.plan_destruction(db, c.id, by, authority, reason,
                                            _still_allowed(db, keeping, today, c.id))  # fmt: skip
        except Conflict as exc:
            if recordings is None:  # due today, and someone else is destroying it: theirs
                continue
            refused(db, by, "destroy", exc, keeping.topics, {"recording": c.id})
            raise
        planned = next((p for p in catalog.pending(db) if p["id"] == d_id), None)
        if planned is None:  # another pass finished it a moment after it was planned: done
            done.append(Destroyed(c.id, c.relpath, ()))
        elif (made := _finish(db, keeping, planned, mine=True)) is not None:
            done.append(made)
    for day in sealed:  # the archives go too: the day sealed again without them, verified
        assert keeping.reseal is not None
        keeping.reseal(db, day, by)
    return done


def _allowed(db: Database, keeping: Keeping, today: date, rec_id: int, by: str,
             active: list[Hold]) -> Candidate:  # fmt: skip
    """Recording ``rec_id`` if the rules let it be destroyed; one already destroyed (or being
    destroyed) by someone else is a ``Conflict`` naming them, recorded as a refusal."""
    c = catalog.candidate(db, rec_id)
    if c is None:
        if (first := catalog.fate(db, rec_id)) is None:
            raise UnknownRecording(f"no recording {rec_id} in the catalog (or destroyed)")
        exc = Conflict(f"recording {rec_id} is already {first[0]}", *first[1:])
        refused(db, by, "destroy", exc, keeping.topics, {"recording": rec_id})
        raise exc
    if why := refusal(c, today, active, keeping.policy):
        raise Refused(f"recording {rec_id} may not be destroyed: {why}")
    return c


def _still_allowed(db: Database, keeping: Keeping, today: date, rec_id: int) -> Callable[[], None]:
    """The rules once more, inside the transaction that plans the destruction: a hold placed
    (or a request opened) since the check above refuses it."""

    def guard() -> None:
        c = catalog.candidate(db, rec_id)
        if c is not None and (why := refusal(c, today, in_force(db), keeping.policy)):
            raise Refused(f"recording {rec_id} may not be destroyed: {why}")
        if freezes.frozen(db, [rec_id]):  # frozen since the check before (issue 26)
            raise Refused(f"recording {rec_id} may not be destroyed: frozen for its auditor")

    return guard


def _day_of(c: Candidate) -> date:
    """The duty day a recording is filed under (its folder)."""
    return date.fromisoformat(c.relpath[:10].replace("/", "-"))


def _check_copies(db: Database, keeping: Keeping, c: Candidate) -> None:
    """Every copy of ``c`` is under a destination root this station writes, that root is there
    and the copy can be removed: checked before anything is planned."""
    for root, copy in recordings.copies(db, c.id).items():
        fsio.remove_under(*_path_of(keeping, root, copy.relpath), dry_run=True)


def _path_of(keeping: Keeping, root: str, relpath: str) -> tuple[Path, PurePosixPath]:
    """Where a copy is (root, path in it), refused unless under a known destination root."""
    rel = PurePosixPath(relpath)
    if keeping.roots is not None and root not in keeping.roots:
        raise Refused(f"a copy is on {root}, which is not a destination of this station; "
                      "destroy it with the catalog it belongs to")  # fmt: skip
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise Refused(f"catalogued path {rel} is not inside its destination")
    if not Path(root).is_dir():
        raise StorageMissing(Drive("destination", Path(root)), f"{root} is not there")
    return Path(root), rel


def _finish(db: Database, keeping: Keeping, d: dict[str, Any], *,
            mine: bool = False) -> Destroyed | None:  # fmt: skip
    """Remove every copy of planned destruction ``d`` and record it. Two processes may finish
    the same one (an interrupted destruction, seen by two passes): only one records it; for the
    other it is None, or, for the one that planned it (``mine``), done all the same."""
    removed = []
    for copy in d["copies"]:
        root, rel = _path_of(keeping, copy["destination"], copy["relpath"])
        # The day manifest's tombstone first: it never claims a file that is gone (issue 28).
        manifest.ensure_removed(root, str(rel), reason="destroyed", by=d["actor"],
                                recording_id=d["recording_id"], head=custody.head(db))  # fmt: skip
        outcome = fsio.remove_under(root, rel)
        removed.append({**copy, "outcome": outcome})
    made = Destroyed(d["recording_id"], d["relpath"], tuple(c["destination"] for c in removed))
    try:
        catalog.record_destroyed(db, d, removed, keeping.topics)
    except Conflict:
        return made if mine else None
    log.info("recording %d destroyed by %s (%s)", d["recording_id"], d["actor"], d["reason"])
    return made


def finish_pending(db: Database, keeping: Keeping, today: date) -> list[Destroyed]:
    """Finish destructions a crash interrupted. One that has removed no copy yet and that the
    rules no longer allow (a hold placed since) is abandoned: nothing was lost."""
    done = []
    active = in_force(db)
    for d in catalog.pending(db):
        c = catalog.candidate(db, d["recording_id"])
        untouched = all(
            Path(*_path_of(keeping, copy["destination"], copy["relpath"])).exists()
            for copy in d["copies"]
        )
        if c is not None and untouched and refusal(c, today, active, keeping.policy):
            catalog.abandon(db, d["id"])
            log.warning("destruction of recording %d abandoned: no longer allowed",
                        d["recording_id"])  # fmt: skip
            continue
        prove_all(keeping.drives)
        if (made := _finish(db, keeping, d)) is not None:
            done.append(made)
    return done


# ---------------------------------------------------------------------------------------------
# The daily pass


@dataclass
class PassResult:
    """What one day's pass found and did."""

    plan: Plan
    destroyed: list[Destroyed] = field(default_factory=list)
    alarms: list[str] = field(default_factory=list)
    backups: list[str] = field(default_factory=list)
    sealed: list[Any] = field(default_factory=list)  # services.seal.Sealed, by the daemon


def daily_pass(db: Database, catalog_path: Path, keeping: Keeping, today: date) -> PassResult:
    """Finish interrupted destructions, destroy what is due under a live standing
    authorisation (an approver's record in the catalog, issue 27), raise today's alarms, and
    back the catalog up to both drives."""
    result = PassResult(plan_for(db, today))
    auth = destruction.live_authorisation(db, today)
    try:
        result.destroyed = finish_pending(db, keeping, today)
        if auth is not None and result.plan.due:
            reason = (f"retention period ended (REG-4.3.1), standing authorisation {auth.ref} "
                      f"approved by {auth.approved_by}")  # fmt: skip
            result.destroyed += destroy(db, keeping, today, auth.custodian,
                                        authority="standing",
                                        reason=reason)  # fmt: skip
    except CamdockError as exc:
        result.alarms.append(f"destruction could not run: {exc}")
    after = plan_for(db, today)
    result.plan = after
    result.alarms = after.alarms + result.alarms
    if auth is None and after.due:
        result.alarms.append(f"{len(after.due)} recording(s) due for destruction today and no "
                             "standing authorisation in force: camdock retention propose --by "
                             "CUSTODIAN, then approve --by APPROVER")  # fmt: skip
    if result.alarms:
        log.warning("retention: %s", "; ".join(result.alarms))
        catalog.alarm(db, keeping.topics, EventType.RETENTION_ALARM, {
            "alarms": result.alarms, "overdue": [c.id for c in after.overdue],
            "held_past_max": [c.id for c in after.held_past_max],
            "review_due": [h.id for h in after.review_due]})  # fmt: skip
    result.backups = backup_everywhere(db, catalog_path, keeping, result.alarms)
    return result


# ---------------------------------------------------------------------------------------------
# Destruction lists and standing authorisations (issue 27: destruction only with approval)


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
    return destruction.propose(db, ids, by, by_id, reason)


def approve_list(db: Database, list_id: int, by: str, by_id: str,
                 topics: Topics | None) -> None:  # fmt: skip
    """An approver (not the proposer) approves a list; a refusal or a conflict is recorded."""
    try:
        destruction.approve(db, list_id, by, by_id)
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
    sealed = sorted({d for c in named if seals.current(db, d := _day_of(c))})
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
    done_before = {i["recording_id"] for i in destruction.items(db, list_id) if i["outcome"]}
    for rec_id in destruction.recordings_of(db, list_id):
        if rec_id in done_before:  # a resumed list: what the interrupted run finished
            continue
        first = catalog.fate(db, rec_id)
        if first is not None and first[0] == "destroyed":  # by the run a crash interrupted
            destruction.note_outcome(db, list_id, rec_id, f"destroyed by {first[1]} at {first[2]}")
            continue
        try:
            made = destroy(db, keeping, today, by, recordings=[rec_id], reason=reason)  # fmt: skip
        except Refused as exc:
            destruction.note_outcome(db, list_id, rec_id, f"skipped: {exc}")
            continue
        destruction.note_outcome(db, list_id, rec_id, "destroyed")
        done += made
    destruction.finish(db, list_id, by)
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


def backup_everywhere(db: Database, catalog_path: Path, keeping: Keeping,
                      alarms: list[str]) -> list[str]:  # fmt: skip
    """Back the catalog up to every destination drive (REG-4.3.2), and its custody chain's head
    into each drive's heads file (invariant 6); a failure is an alarm."""
    made = []
    roots = sorted(keeping.roots or ())
    publish_head(db, roots)
    for root in roots:
        try:
            prove_all(tuple(d for d in keeping.drives if str(d.root) == root))
            info = backup.write(db, Path(root), keeping.policy.backup_generations)
        except (CamdockError, OSError) as exc:
            alarms.append(f"catalog backup to {root} failed: {exc}")
            catalog.alarm(db, keeping.topics, EventType.CATALOG_BACKUP_FAILED,
                          {"destination": root, "error": str(exc)})  # fmt: skip
            continue
        made.append(str(info.path))
        catalog.alarm(db, keeping.topics, EventType.CATALOG_BACKED_UP,
                      {"destination": root, "path": str(info.path), "sha256": info.sha256,
                       "size": info.size, "catalog": str(catalog_path)})  # fmt: skip
    return made
