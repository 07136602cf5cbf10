"""Retention (REG-4.3.1) and the catalog's backup (REG-4.3.2): holds and the daily pass; the
one door the commands, the console and the daemon use. Its parts: ``keeping`` (the rules in
force, the plan), ``destroying`` (a recording's destruction: live → destroying → destroyed) and
``destruction_lists`` (destruction only with approval).

The daily pass does not wait for anyone: approvals never used in time and drafts never
submitted expire first (each a custody entry and a ``request-updated`` event) and stop holding
their footage, then interrupted destructions are finished, due footage destroyed under a
standing authorisation in force, the alarms raised and the catalog backed up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from camdock import clock
from camdock.adapters.drives import prove_all
from camdock.catalog import destruction, holds
from camdock.catalog import retention as catalog
from camdock.core.retention import HoldKind, Plan, Policy
from camdock.errors import CamdockError, Conflict, ExitCode, UnknownRecording
from camdock.events import EventType
from camdock.services import access, backup
from camdock.services.audit import publish_head
from camdock.services.destroying import (
    AuthorityGone,
    Destroyed,
    DestructionStopped,
    destroy,
    finish_pending,
)
from camdock.services.destruction_lists import (
    approve_list,
    authorise,
    execute_list,
    propose_list,
    refuse_unapproved,
    revoke_authorisation,
)
from camdock.services.keeping import Keeping, in_force, keeping_footage, plan_for, refused

__all__ = [
    "Destroyed",
    "DestructionStopped",
    "Keeping",
    "PassResult",
    "Policy",
    "approve_list",
    "authorise",
    "covered_now",
    "daily_pass",
    "destroy",
    "execute_list",
    "expire_requests",
    "finish_pending",
    "in_force",
    "place_hold",
    "plan_for",
    "propose_list",
    "refuse_unapproved",
    "refused",
    "release_hold",
    "revoke_authorisation",
]

log = logging.getLogger(__name__)


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
        with keeping_footage(db):  # serialised with the destruction runner (issue 27 gap 1)
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
    expired: list[str] = field(default_factory=list)  # requests expired by this pass


def expire_requests(db: Database, keeping: Keeping, now: datetime) -> list[str]:
    """Approvals never used in time and drafts never submitted within ``draft_days`` expire
    (REG-4.3.1: they stop holding footage), each a compare-and-set with its custody entry and
    event: a request moved on meanwhile (submitted, viewed) keeps its new state."""
    gone = access.expire(db, now, keeping.topics)
    return gone + access.expire_drafts(db, now, keeping.draft_days, keeping.topics)


def daily_pass(db: Database, catalog_path: Path, keeping: Keeping, today: date,
               now: datetime | None = None) -> PassResult:  # fmt: skip
    """Expire what requests no longer hold, finish interrupted destructions, destroy what is
    due under a live standing authorisation (an approver's record in the catalog, issue 27),
    raise today's alarms, and back the catalog up to both drives."""
    result = PassResult(plan_for(db, today, keeping.draft_days))
    result.expired = expire_requests(db, keeping, now or clock.now())
    auth = destruction.live_authorisation(db, today)
    try:
        result.destroyed = finish_pending(db, keeping, today)
        if auth is not None and plan_for(db, today).due:
            reason = (f"retention period ended (REG-4.3.1), standing authorisation {auth.ref} "
                      f"approved by {auth.approved_by}")  # fmt: skip
            stopped: list[str] = []  # each due recording tried; each refusal said
            result.destroyed += destroy(db, keeping, today, auth.custodian,
                                        authority="standing", reason=reason, stopped=stopped,
                                        authorised=_in_force(db, auth, today))  # fmt: skip
            result.alarms += [f"destruction could not run: {why}" for why in stopped]
    except CamdockError as exc:
        result.alarms.append(f"destruction could not run: {exc}")
    after = plan_for(db, today, keeping.draft_days)
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


def _in_force(db: Database, auth: destruction.Authorisation, today: date) -> Callable[[], None]:
    """Asked inside each destruction's planning transaction: a revocation committed meanwhile
    stops the pass at once (issue 27, gap 3)."""

    def check() -> None:
        # The one the reasons name, still the one in force (a newer one waits for next pass).
        if (now := destruction.live_authorisation(db, today)) is None or now.id != auth.id:
            raise AuthorityGone(f"standing authorisation {auth.ref} is no longer in force "
                                "(revoked or replaced): nothing more is destroyed under "
                                "it")  # fmt: skip

    return check


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
