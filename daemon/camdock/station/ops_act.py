"""The control operations that act: requests and their steps, seals, holds, destruction lists,
attribution and the audit's resolutions; each through the services' own rules, which record
refusals (station/control.py)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from camdock import clock, protocol
from camdock.catalog import (
    custody,
    freezes,
    requests,
)
from camdock.catalog.db import write_txn
from camdock.model import Officer
from camdock.protocol import BadRequest
from camdock.services import access, audit, retention
from camdock.services.attribute import attribute_recording
from camdock.services.seal import Sealing, confirm_day, seal_day
from camdock.station.answers import RequestMade, RequestStepped
from camdock.station.calls import Call, handles

__all__: list[str] = []  # the handlers register themselves in calls.HANDLERS


# --- acting ----------------------------------------------------------------------------------


@handles(protocol.RequestNew)
def _request_new(c: Call, a: protocol.RequestNew) -> RequestMade:
    form = {"duty_item": a.duty_item, "kind": a.kind.value, "reason": a.reason,
            "purpose": a.purpose.value, "unit_supervisor": a.unit_supervisor,
            "applicant_unit": a.applicant_unit, "applicant_title": a.applicant_title,
            "viewing_at": c.local(a.viewing_at).isoformat() if a.viewing_at else None}  # fmt: skip
    scope = (a.officer, a.camera, c.local(a.begin), c.local(a.end))
    req = access.new_request(c.db, c.cfg, c.who, form, scope, c.ctl.topics)
    return RequestMade(req.number, req, requests.recordings_of(c.db, req.id))


@handles(protocol.RequestStep)
def _request_step(c: Call, a: protocol.RequestStep) -> RequestStepped:
    kw: dict[str, Any] = {}
    if a.action == "deny":
        kw["reason"] = a.reason
    # The console's numbers bounded as the command's are (issue 29: -60 minutes, -5 days).
    if a.minutes is not None and not 1 <= a.minutes <= 24 * 60:
        raise BadRequest("minutes from 1 to 1440", "minutes")
    if a.valid_days is not None and not 0 <= a.valid_days <= 366:  # 0: expires at once
        raise BadRequest("days from 0 to 366", "valid_days")
    if a.action == "schedule":
        if a.at is None:
            raise BadRequest("a time YYYY-MM-DDTHH:MM is needed", "at")
        start = c.local(a.at)
        kw |= {"start": start, "end": start + timedelta(minutes=a.minutes or 120)}
    if a.action == "approve":
        kw |= {"valid_days": a.valid_days, "note": a.note or None}
    if a.action == "view":
        kw["remarks"] = a.remarks or None
    req = access.step(c.db, c.who, a.number, a.action, c.ctl.topics, clock.now(), **kw)
    return RequestStepped(req)


@handles(protocol.RequestCopy)
def _request_copy(c: Call, a: protocol.RequestCopy) -> dict[str, Any]:
    to = Path(os.path.abspath(a.to))
    if not any(to == r or r in to.parents for r in c.ctl.export_roots) or ".." in to.parts:
        roots = ", ".join(str(r) for r in c.ctl.export_roots)
        raise BadRequest(
            f"匯出位置須在 {roots} 之下 the copy goes onto export media: under {roots}", "to"
        )
    sealing = Sealing.from_config(c.cfg)
    done = access.copy(c.db, c.who, a.number, to, sealing.key, c.ctl.topics,
                       medium=a.medium or None, roots=c.ctl.export_roots)  # fmt: skip
    return {**done, "folder": str(done["folder"])}


@handles(protocol.SealCreate)
def _seal_create(c: Call, a: protocol.SealCreate) -> dict[str, Any] | None:
    """REG-4.2.5: a duty day sealed by hand, with the station's own key, naming who did it."""
    access.authorize(c.db, c.who, "seal", c.ctl.topics)
    made = seal_day(c.db, Sealing.from_config(c.cfg), a.day, c.me.label, c.me.id)
    return made.as_json() if made else None


@handles(protocol.SealConfirm)
def _seal_confirm(c: Call, a: protocol.SealConfirm) -> dict[str, Any]:
    access.authorize(c.db, c.who, "confirm", c.ctl.topics)
    return confirm_day(c.db, Sealing(None, topics=c.ctl.topics), a.day, c.me.label, c.me.id)


@handles(protocol.HoldPlace)
def _hold_place(c: Call, a: protocol.HoldPlace) -> int:
    access.authorize(c.db, c.who, "hold", c.ctl.topics)
    try:
        return retention.place_hold(
            c.db, retention.Keeping.from_config(c.cfg), c.me.label, kind=a.kind, case=a.case,
            reason=a.reason, recording=a.recording, officer=a.officer, camera=a.camera,
            start=c.local(a.begin) if a.begin else None, end=c.local(a.end) if a.end else None,
            review_by=a.review_by, today=c.today())  # fmt: skip
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


@handles(protocol.HoldRelease)
def _hold_release(c: Call, a: protocol.HoldRelease) -> None:
    access.authorize(c.db, c.who, "release", c.ctl.topics)
    retention.release_hold(c.db, retention.Keeping.from_config(c.cfg), a.id, c.me.label,
                           a.reason)  # fmt: skip
    return None


@handles(protocol.RetentionPropose)
def _propose(c: Call, a: protocol.RetentionPropose) -> int:
    access.authorize(c.db, c.who, "destroy-propose", c.ctl.topics)
    try:
        chosen = [int(n) for n in a.recordings.split(",") if n.strip()] or None
    except ValueError:
        raise BadRequest("recording ids, comma-separated", "recordings") from None
    kw = {"reason": a.reason} if a.reason.strip() else {}
    return retention.propose_list(c.db, retention.Keeping.from_config(c.cfg), c.today(),
                                  c.me.label, c.me.id, recordings=chosen, **kw)  # fmt: skip


@handles(protocol.RetentionAuthorise)
def _authorise(c: Call, a: protocol.RetentionAuthorise) -> int:
    """An approver's standing authorisation, a record in the catalog (issue 27)."""
    access.authorize(c.db, c.who, "authorise", c.ctl.topics)
    return retention.authorise(c.db, a.ref, a.custodian, a.until, c.me.label, c.me.id,
                               c.today())  # fmt: skip


@handles(protocol.RetentionRevoke)
def _revoke(c: Call, a: protocol.RetentionRevoke) -> dict[str, Any]:
    """An approver revokes a standing authorisation (issue 27, gap 3)."""
    access.authorize(c.db, c.who, "revoke-authorisation", c.ctl.topics)
    done = retention.revoke_authorisation(c.db, a.ref, c.me.label, c.me.id, a.reason,
                                          c.ctl.topics)  # fmt: skip
    return done.as_dict()


@handles(protocol.RetentionApprove)
def _approve_list(c: Call, a: protocol.RetentionApprove) -> None:
    access.authorize(c.db, c.who, "destroy-approve", c.ctl.topics)
    retention.approve_list(c.db, a.list, c.me.label, c.me.id, c.ctl.topics)
    return None


@handles(protocol.RetentionDestroy)
def _destroy(c: Call, a: protocol.RetentionDestroy) -> list[dict[str, Any]] | int:
    """Destruction only under an approved list (REG-4.3.1; issue 27)."""
    access.authorize(c.db, c.who, "destroy", c.ctl.topics)
    if a.list is None:
        raise retention.refuse_unapproved(c.db, c.me.label, c.ctl.topics)
    done = retention.execute_list(c.db, retention.Keeping.from_config(c.cfg), c.today(), a.list,
                                  c.me.label, c.me.id, resume=bool(a.resume))  # fmt: skip
    return [d.as_json() for d in done] if a.detail else len(done)


@handles(protocol.Attribute)
def _attribute(c: Call, a: protocol.Attribute) -> dict[str, Any]:
    """REG-4.2.4: file an unattributed recording under the officer who recorded it."""
    access.authorize(c.db, c.who, "attribute", c.ctl.topics)
    officer: Officer | None = c.cfg.officers.get(a.officer)
    if officer is None:
        raise BadRequest(f"badge {a.officer!r} is not an officer of this station", "officer")
    drives = c.cfg.drives if c.cfg.require_mounts else ()
    done = attribute_recording(c.db, a.recording, officer, c.me.label, drives)
    return done.as_json()


@handles(protocol.AuditResolve)
def _audit_resolve(c: Call, a: protocol.AuditResolve) -> dict[str, Any]:
    """Issue 26: an auditor puts a frozen recording back as the custody chain has it."""
    access.authorize(c.db, c.who, "resolve", c.ctl.topics)
    if not a.reason.strip():
        raise BadRequest("say what the auditor found", "reason")
    chosen = [(k, v) for k in ("recording", "hold", "request") if (v := getattr(a, k)) is not None]
    if len(chosen) != 1:
        raise BadRequest("name one recording, hold or request", "recording")
    kind, ident = chosen[0]
    restored = freezes.resolve(c.db, ident, c.me.label, a.reason.strip(), kind)
    return {kind: ident, "restored_from_chain": restored}


@handles(protocol.AuditRecord)
def _audit_record(c: Call, a: protocol.AuditRecord) -> None:
    """REG-7.2: the audit itself on the record, naming the auditor, with what it found."""
    access.authorize(c.db, c.who, "audit", c.ctl.topics)
    with write_txn(c.db):
        custody.append(c.db, custody.Action.AUDIT, None, c.me.label, {
            "full": bool(a.full), "problems": a.problems, "findings": a.findings,
            "copies_proven": a.copies_proven, "witness": a.witness})  # fmt: skip
    audit.publish_head(c.db, [str(d.root) for d in c.cfg.drives])
    return None
