"""People and the access/copy workflow (REG-4.1.1, REG-5, REG-6; invariant 9).

Every manual action goes through ``authorize``: the person named with ``--by`` (or the console
login) must be on the station's staff with a role that may take the action, and a request must
be in the state, the window and the approval the action needs. A refusal raises ``Refused`` and
is recorded in the custody log first (REG-7.1). A station config without a staff list (or a bare
catalog) records the person as given and says that no role was checked.

A copy is made with the same verified copier as the offload (invariant 10): each recording is
read from a plain copy (or taken out of its day's seal, checked, when the plain files are gone),
written to the export medium under a temp name, read back from disk, and only then named; a
``MANIFEST.sha256`` (for ``sha256sum -c``), a ``manifest.json`` with the catalog entries and a
README for the recipient go with it, and the manifest's hash goes into the register (Annex 3).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from camdock import clock
from camdock.adapters import fsio
from camdock.catalog import assignments, freezes, recordings, requests
from camdock.catalog import staff as staff_rows
from camdock.catalog.custody import Action
from camdock.catalog.requests import AccessRequest
from camdock.clock import iso_utc
from camdock.config import Config
from camdock.core import access as core
from camdock.core.access import NO_ROLES, Person, Role, State
from camdock.errors import CamdockError, Conflict, ExitCode, Refused
from camdock.events import Topics
from camdock.services.export import README, export
from camdock.services.keeping import keeping_footage
from camdock.services.medium import Medium, open_medium
from camdock.services.seal import Key

__all__ = [
    "NO_ROLES",
    "UNVERIFIED",
    "Acting",
    "acting",
    "authorize",
    "copy",
    "expire",
    "expire_drafts",
    "identify",
    "new_request",
    "objection",
    "record",
    "select",
    "step",
    "steps",
]


log = logging.getLogger(__name__)

UNVERIFIED = "unverified actor"  # how a development catalog's custody entries name a person


@dataclass(frozen=True)
class Acting:
    """Who acts: the staff member (None: no staff list to check against), how the custody
    log names them, and the channel they act through (console, cli, daemon: issue 27)."""

    person: Person | None
    label: str
    channel: str = "daemon"

    @property
    def checked(self) -> bool:
        """Whether roles were checked."""
        return self.person is not None


def acting(cfg: Config | None, by: str, db: Database | None = None) -> Acting:
    """The person ``--by`` names. When the catalog holds a staff list (the daemon imports the
    config's, catalog/staff), it decides, so ``--config`` and a bare ``--catalog`` apply the
    same rules: an active member, with the roles the roster grants them for today's duty day.
    Otherwise the config's staff list, with the same roster grants; no list, no check."""
    now = clock.now()
    if db is not None and staff_rows.has_roles(db):
        person = staff_rows.person(db, by, now)
        if person is None:
            where = f"station {cfg.station_id}'s" if cfg is not None else "the catalog's"
            raise Refused(f"{by!r} is not on {where} staff (an active [[staff]] id)")
        return Acting(person, person.label)
    if cfg is None or not cfg.has_roles:  # a development catalog: nobody proved who this is
        return Acting(None, f"{by} ({UNVERIFIED})", "cli")
    person = cfg.staff.get(by)
    if person is None:
        raise Refused(f"{by!r} is not on station {cfg.station_id}'s staff ([[staff]] ids)")
    # A roster's grant lasts its duty day and goes only to people on the staff (issue 27).
    grant = assignments.granted(db, by, now) if db is not None else None
    if grant is not None:
        extra = frozenset(Role(r) for r in grant[2] if r in set(Role))
        person = Person(person.id, person.name, person.roles | extra, person.title, person.unit)
    return Acting(person, person.label)


def identify(db: Database, cfg: Config | None, by: str, action: str,
             topics: Topics | None) -> Acting:  # fmt: skip
    """``acting``, with an unknown person's attempt recorded as a refusal (REG-7.1)."""
    try:
        return acting(cfg, by, db)
    except Refused as exc:
        requests.record_refusal(db, by, action, None, str(exc), topics)
        raise


def authorize(
    db: Database,
    who: Acting,
    action: str,
    topics: Topics | None,
    request: core.Request | None = None,
    now: datetime | None = None,
) -> None:
    """Refuse (recorded in the custody log, then raised) unless ``who`` may take ``action``; an
    action someone else's overtook (approved already) is a ``Conflict`` naming them."""
    exc = objection(db, who, action, request, now)
    if exc is not None:
        record(db, who, action, request.number if request else None, exc, topics)
        raise exc


def objection(
    db: Database,
    who: Acting,
    action: str,
    request: core.Request | None,
    now: datetime | None = None,
) -> Refused | None:
    """Why ``who`` may not take ``action`` (on ``request`` as it is now), or None: a
    ``Conflict`` when the request has moved past the action, naming who moved it and when."""
    why = core.refusal(who.person, action, request, now)
    if why is None:
        return None
    if (request is not None and core.refusal(who.person, action) is None
            and core.overtaken(request.state, action)):  # fmt: skip
        by, at = requests.moved_by(db, request.number, request.state) or (None, None)
        return Conflict(f"request {request.number} is already {request.state.value}", by, at)
    return Refused(why)


def record(
    db: Database, who: Acting, action: str, number: str | None, exc: Refused,
    topics: Topics | None, extra: dict[str, Any] | None = None,
) -> None:  # fmt: skip
    """A refused attempt into the custody log (REG-7.1), once; a conflict with who and when."""
    more = dict(extra or {})
    if isinstance(exc, Conflict):
        more |= {"conflict": True, "first_by": exc.by, "first_at": exc.at}
    requests.record_refusal(db, who.label, action, number, exc.what if isinstance(
        exc, Conflict) else str(exc), topics, more)  # fmt: skip


# A compare-and-set check: given the request's row inside the write transaction, it raises to
# refuse (nothing is written).
Guard = Callable[[AccessRequest], None]


def _guarded(db: Database, who: Acting, action: str, now: datetime) -> Guard:
    """The compare-and-set of a step: the rules again, on the row inside its transaction."""

    def guard(fresh: AccessRequest) -> None:
        if (exc := objection(db, who, action, _rules(fresh), now)) is not None:
            raise exc

    return guard


def _change(db: Database, who: Acting, req: AccessRequest, action: str, now: datetime,
            topics: Topics | None, fields: dict[str, Any], register: dict[str, Any] | None,
            details: dict[str, Any] | None = None) -> None:  # fmt: skip
    """``requests.change`` under the step's guard; a step the guard refuses is recorded."""
    try:
        requests.change(db, req, Action(action), who.label, fields, topics, register, details,
                        guard=_guarded(db, who, action, now))  # fmt: skip
    except Refused as exc:
        record(db, who, action, req.number, exc, topics)
        raise


def steps(who: Acting, req: AccessRequest, now: datetime | None = None) -> list[str]:
    """The steps ``who`` may take on ``req`` now (core.open_steps: the rules ``authorize``
    applies), for the console to offer only those."""
    return list(core.open_steps(who.person, _rules(req), now or clock.now()))


def _rules(req: AccessRequest) -> core.Request:
    def when(v: str | None) -> datetime | None:
        return datetime.fromisoformat(v) if v else None

    return core.Request(
        req.number,
        req.state,
        req.applicant_id,
        req.created_by,
        req.kind,
        req.purpose,
        req.approved_by,
        when(req.approved_until),
        bool(req.pr_consulted_by),
        when(req.window_start),
        when(req.window_end),
        req.approved_by_id,
    )


# ---------------------------------------------------------------------------------------------
# Requests


def select(
    db: Database, officer: str | None, camera: str | None, start: datetime, end: datetime
) -> list[int]:
    """The live recordings of an officer and/or camera made from ``start`` to ``end``."""
    if officer is None and camera is None:
        raise CamdockError("select footage by --officer and/or --camera", ExitCode.USAGE)
    found = recordings.live_of(db, officer, camera)
    return [r.id for r in found if start <= datetime.fromisoformat(r.recorded_start) <= end]


def new_request(
    db: Database,
    cfg: Config | None,
    who: Acting,
    form: dict[str, Any],
    selection: tuple[str | None, str | None, datetime, datetime],
    topics: Topics | None,
) -> AccessRequest:
    """A draft Annex 2 request; the selection is resolved against the catalog now."""
    authorize(db, who, "request", topics)
    # A draft already holds what it covers (core.access.OPEN); later steps only move an open
    # request on, so this is the one write that starts keeping: the selection and the write
    # serialised with the destruction runner (REG-4.3.1), so no copy of it goes meanwhile.
    with keeping_footage(db):
        return _draft(db, cfg, who, form, select(db, *selection), selection, topics)


def _draft(db: Database, cfg: Config | None, who: Acting, form: dict[str, Any], ids: list[int],
           selection: tuple[str | None, str | None, datetime, datetime],
           topics: Topics | None) -> AccessRequest:  # fmt: skip
    """The draft written, with the recordings its selection resolved to (``ids``)."""
    if not ids:
        raise CamdockError("the selection covers no recording in the catalog", ExitCode.NOINPUT)
    officer, camera, start, end = selection
    applicant = who.person
    row = {
        **form,
        "created_by": applicant.id if applicant else who.label,
        "applicant_id": form.get("applicant_id") or (applicant.id if applicant else who.label),
        "applicant_name": form.get("applicant_name") or (applicant.name if applicant else ""),
        "applicant_title": form.get("applicant_title") or (applicant.title if applicant else ""),
        "applicant_unit": form.get("applicant_unit") or (applicant.unit if applicant else ""),
        "unit_full_name": form.get("unit_full_name") or (cfg.unit if cfg else ""),
        "recorded_by": officer,
        "camera_id": camera,
        "range_start": start.isoformat(),
        "range_end": end.isoformat(),
    }
    return requests.create(db, row, ids, who.label, topics)


def expire(db: Database, now: datetime, topics: Topics | None) -> list[str]:
    """Approvals never used in time expire (and stop holding their footage)."""
    gone = []
    for req in requests.listing(db):
        until = req.approved_until
        if (
            req.state in (State.APPROVED, State.SCHEDULED)
            and until
            and datetime.fromisoformat(until) < now
        ):
            try:
                requests.change(db, req, Action.EXPIRE, "camdock", {"state": State.EXPIRED},
                                topics, details=_released(db, req),
                                guard=_still(req.state,
                                             lambda f: _approval_over(f, now)))  # fmt: skip
            except Conflict as exc:  # another process expired it (or it moved on) meanwhile
                log.info("request %s not expired: %s", req.number, exc)
                continue
            gone.append(req.number)
    return gone


def _approval_over(fresh: AccessRequest, now: datetime) -> bool:
    """Whether an approval (as the row is inside the transaction) has run out unused."""
    until = fresh.approved_until
    return (fresh.state in (State.APPROVED, State.SCHEDULED) and until is not None
            and datetime.fromisoformat(until) < now)  # fmt: skip


def _released(db: Database, req: AccessRequest) -> dict[str, Any]:
    """What an expiry releases: the recordings the request held (REG-4.3.1)."""
    return {"released": [r.id for r in requests.recordings_of(db, req.id)]}


def expire_drafts(db: Database, now: datetime, draft_days: int,
                  topics: Topics | None) -> list[str]:  # fmt: skip
    """Requests never submitted within ``draft_days`` (``[access] draft_days``) expire and stop
    holding the footage they selected (issue 27); each expiry is a custody entry."""
    cutoff = iso_utc(now - timedelta(days=draft_days))
    gone = []
    for req in requests.listing(db):
        if req.state != State.DRAFT or req.created_at > cutoff:
            continue
        try:
            requests.change(db, req, Action.DRAFT_EXPIRE, "camdock", {"state": State.EXPIRED},
                            topics, details={"draft_days": draft_days, **_released(db, req)},
                            guard=_still(req.state, lambda f: f.created_at <= cutoff))  # fmt: skip
        except Conflict as exc:  # submitted (or expired by another pass) meanwhile
            log.info("request %s not expired: %s", req.number, exc)
            continue
        gone.append(req.number)
    return gone


def _still(state: State, due: Callable[[AccessRequest], bool]) -> Guard:
    """Expiry's compare-and-set: the request, as it is inside the transaction, is still in
    the state it was found in and still due to expire; else a ``Conflict`` (it moved on: the
    other outcome stands, and was recorded by whoever moved it)."""

    def guard(fresh: AccessRequest) -> None:
        if fresh.state != state or not due(fresh):
            raise Conflict(f"request {fresh.number} is {fresh.state.value} now")

    return guard


def step(
    db: Database,
    who: Acting,
    number: str,
    action: str,
    topics: Topics | None,
    now: datetime | None = None,
    **kw: Any,
) -> AccessRequest:
    """Move request ``number`` on by ``action`` (submit, consult, approve, deny, schedule, view,
    acknowledge, close), checked and recorded; returns the request as it is now."""
    now = now or clock.now()
    expire(db, now, topics)
    req = requests.get(db, number)
    if req is None:
        raise CamdockError(f"no request {number}", ExitCode.NOINPUT)
    authorize(db, who, action, topics, _rules(req), now)
    fields: dict[str, Any] = {}
    register = None
    after = core.transition(req.state, action)
    if after != req.state:
        fields["state"] = after.value
    if action == "consult":
        fields |= {"pr_consulted_by": who.label, "pr_consulted_at": iso_utc(now)}
    elif action == "approve":
        valid = kw.get("valid_days")
        until = now + timedelta(days=30 if valid is None else int(valid))
        fields |= {
            "approved_by": who.label,
            "approved_by_id": who.person.id if who.person is not None else None,
            "approved_at": iso_utc(now),
            "approved_until": until.isoformat(),
            "handling_review": kw.get("note"),
        }
    elif action == "deny":
        if not kw.get("reason"):
            raise CamdockError("--reason: say why the request is denied", ExitCode.USAGE)
        fields |= {"denied_by": who.label, "denied_reason": kw["reason"]}
    elif action == "schedule":
        start, end = kw["start"], kw["end"]
        fields |= {
            "scheduled_by": who.label,
            "window_start": start.isoformat(),
            "window_end": end.isoformat(),
        }
    elif action == "view":
        ids = [r.id for r in requests.recordings_of(db, req.id)]
        freezes.refuse_frozen(db, ids, f"viewing for request {req.number}")
        register = {
            "kind": "view",
            "recordings": json.dumps(ids),
            "custodian": who.label,
            "remarks": kw.get("remarks"),
        }
    elif action == "acknowledge":
        fields |= {"acknowledged_by": who.label, "acknowledged_at": iso_utc(now)}
    elif action == "close":
        fields |= {"closed_at": iso_utc(now)}
    _change(db, who, req, action, now, topics, fields, register)
    found = requests.get(db, req.id)
    assert found is not None
    return found


# ---------------------------------------------------------------------------------------------
# Verified copies


def copy(
    db: Database,
    who: Acting,
    number: str,
    target: Path,
    key: Key | None,
    topics: Topics | None,
    now: datetime | None = None,
    medium: str | None = None,
    roots: tuple[Path, ...] | None = None,
) -> dict[str, Any]:
    """Copy an approved request's recordings to ``target`` (the export medium, at or under one
    of ``roots``; without them ``target`` is its own root), verified, with their manifest; the
    register gets the line (Annex 3). The medium's problems are ``MediumError`` (a 409), and a
    copy that fails part-way is removed (services/medium.py)."""
    now = now or clock.now()
    expire(db, now, topics)
    req = requests.get(db, number)
    if req is None:
        raise CamdockError(f"no request {number}", ExitCode.NOINPUT)
    authorize(db, who, "copy", topics, _rules(req), now)
    recs = requests.recordings_of(db, req.id)
    freezes.refuse_frozen(db, [r.id for r in recs], f"copy for request {req.number}")
    opened = open_medium(target, roots or (Path(os.path.abspath(target)),), req.number)
    out = opened.shown
    try:
        files, manifest_sha = _write_copy(db, who, req, recs, opened, key, now)
        register = {
            "kind": "copy",
            "recordings": json.dumps([r.id for r in recs]),
            "custodian": who.label,
            "medium": medium or str(target),
            "manifest_sha256": manifest_sha,
        }
        fields = {"state": State.DONE.value} if req.state != State.DONE else {}
        made = {"folder": str(out), "manifest_sha256": manifest_sha, "files": len(files)}
        # The register line before the medium is let go: a step refused now (the approval
        # expired by the daily pass during the copy) removes the copy, never leaves footage
        # out with a manifest and no line in the register (review F4).
        _change(db, who, req, "copy", now, topics, fields, register, made)
    except BaseException as exc:
        problem = opened.failed(exc)
        if problem is not None:
            raise problem from exc
        raise
    finally:
        opened.close()
    return {
        "request": req.number,
        "folder": str(out),
        "files": files,
        "manifest_sha256": manifest_sha,
        "by": who.label,
    }


def _write_copy(
    db: Database,
    who: Acting,
    req: AccessRequest,
    recs: list[recordings.Recording],
    out: Medium,
    key: Key | None,
    now: datetime,
) -> tuple[list[dict[str, Any]], str]:
    """The files, then manifest.json and the README, then (last: a partial copy never has
    one) MANIFEST.sha256, each read back from the disk; the files and the manifest's hash."""
    files = export(db, recs, out.path, key, out.destination())
    manifest = "".join(f"{f['sha256']}  {f['name']}\n" for f in files)
    keys = ("id", "sha256", "size", "camera_id", "officer_name", "officer_badge", "duty_slot",
            "recorded_start", "recorded_end", "relpath")  # fmt: skip
    catalog_entries = [
        {k: getattr(r, k) for k in keys} | {"file": f["name"]}
        for r, f in zip(recs, files, strict=True)
    ]
    meta = {
        "request": req.number,
        "purpose": req.purpose,
        "approved_by": req.approved_by,
        "copied_at": iso_utc(now),
        "copied_by": who.label,
        "recordings": catalog_entries,
    }
    out.write("manifest.json", json.dumps(meta, ensure_ascii=False, indent=2) + "\n")
    out.write("README.txt", README.format(number=req.number, time=iso_utc(now), by=who.label))
    out.write("MANIFEST.sha256", manifest)
    for name in ("MANIFEST.sha256", "manifest.json", "README.txt"):
        fsio.evict(out.path / name)
    out.sync()
    return files, fsio.disk_sha256(out.path / "MANIFEST.sha256")[0]
