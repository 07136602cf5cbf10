"""The control operations that read: the catalog, requests, seals, holds, the retention plan,
the duty log, the register, the audit, and a supervised viewing's stream (station/control.py)."""

from __future__ import annotations

import os
from datetime import date
from typing import Any

from camdock import clock, protocol
from camdock.catalog import (
    custody,
    destruction,
    recordings,
    requests,
    rowchain,
    seals,
    selftests,
    viewings,
)
from camdock.catalog import holds as hold_rows
from camdock.core.access import Role, State
from camdock.errors import CamdockError, ExitCode
from camdock.services import access, retention
from camdock.station import consoleday
from camdock.station.answers import DutyLogPage, QueuePage, RecordingPage, RequestPage, SealsPage
from camdock.station.calls import Call, fields_of, handles, person_json

__all__: list[str] = []  # the handlers register themselves in calls.HANDLERS


# --- reading ---------------------------------------------------------------------------------


@handles(protocol.Session)
def _session_check(c: Call, a: protocol.Session) -> dict[str, Any]:
    """The person a live session is for (``handle`` answers it without opening the catalog)."""
    return person_json(c.me)


@handles(protocol.CatalogSearch)
def _search(c: Call, a: protocol.CatalogSearch) -> list[recordings.Recording]:
    return recordings.search(c.db, a.officer, a.camera, a.day)


@handles(protocol.RecordingGet)
def _recording(c: Call, a: protocol.RecordingGet) -> RecordingPage:
    rec = recordings.get(c.db, a.id)
    if rec is None:
        raise CamdockError(f"沒有紀錄 No recording {a.id}", ExitCode.NOINPUT)
    day = date.fromisoformat(rec.relpath[:10].replace("/", "-"))
    return RecordingPage(
        rec,
        recordings.copies(c.db, a.id),
        custody.history(c.db, a.id),
        seals.current(c.db, day),
    )


@handles(protocol.RequestsList)
def _requests(c: Call, a: protocol.RequestsList) -> list[requests.AccessRequest]:
    sees_all = bool(c.me.roles - {Role.OFFICER})
    return [r for r in requests.listing(c.db) if sees_all or r.applicant_id == c.me.id]


@handles(protocol.RequestGet)
def _request(c: Call, a: protocol.RequestGet) -> RequestPage:
    req = requests.get(c.db, a.number)
    if req is None or (c.me.roles == {Role.OFFICER} and req.applicant_id != c.me.id):
        # Answered as not found, and on the record: who tried what (REG-7.1; issue 27).
        why = "no such request" if req is None else "another officer's request"
        c.ctl.refuse(c.me.label, "request.get", why, a.number)
        raise CamdockError("沒有這份申請書 No such request", ExitCode.NOINPUT)
    recs = requests.recordings_of(c.db, req.id)
    if c.me.roles == {Role.OFFICER} and req.state in (State.DRAFT, State.SUBMITTED):
        # Before approval an officer sees only their own footage in it (issue 27, item 8).
        recs = [r for r in recs if r.officer_badge == c.me.id]
    return RequestPage(req, recs, access.steps(c.who, req))


@handles(protocol.FormForged)
def _form_forged(c: Call, a: protocol.FormForged) -> dict[str, bool]:
    c.ctl.refuse(c.me.label, "form", "表單已失效或偽造 the form expired or was forged", None,
                 {"path": a.url[:200]})  # fmt: skip
    return {"recorded": True}


@handles(protocol.SealsList)
def _seals(c: Call, a: protocol.SealsList) -> SealsPage:
    days: dict[str, seals.Seal] = {}
    for s in seals.status(c.db):
        days.setdefault(s.day, s)
    return SealsPage(list(days.values()), sorted(seals.dirty(c.db)))


@handles(protocol.HoldsList)
def _holds(c: Call, a: protocol.HoldsList) -> list[hold_rows.PlacedHold]:
    return hold_rows.listing(c.db)


@handles(protocol.RetentionPlan)
def _plan(c: Call, a: protocol.RetentionPlan) -> dict[str, Any]:
    plan = retention.plan_for(c.db, c.today(), c.cfg.draft_days)
    lists = [destruction.as_json(d, destruction.items(c.db, d.id))
             for d in destruction.listing(c.db)[:20]]  # fmt: skip
    return {"plan": {**fields_of(plan), "alarms": plan.alarms}, "lists": lists,
            "auto": destruction.live_authorisation(c.db, c.today())}  # fmt: skip


@handles(protocol.AttributionQueue)
def _queue(c: Call, a: protocol.AttributionQueue) -> QueuePage:
    officers = [o.as_json() for o in c.cfg.officers.values()]
    return QueuePage(recordings.unattributed(c.db), officers)


@handles(protocol.DutyLog)
def _duty_log(c: Call, a: protocol.DutyLog) -> DutyLogPage:
    """REG-3.2: the pre-shift tests and the duty-log entries of a period."""
    offset = consoleday.first_row(a.page)
    got = selftests.duty_page(c.db, a.start, a.end, descending=bool(a.desc), offset=offset,
                              limit=consoleday.PER_PAGE)  # fmt: skip
    return DutyLogPage(got.tests, got.entries, got.tests_total, got.entries_total, offset,
                       consoleday.PER_PAGE)  # fmt: skip


@handles(protocol.Register)
def _register(c: Call, a: protocol.Register) -> list[requests.RegisterLine]:
    return requests.register_between(c.db, a.start, a.end)


@handles(protocol.AuditReport)
def _audit(c: Call, a: protocol.AuditReport) -> dict[str, Any]:
    """The six-monthly report (REG-7.2) for a period: the chain checked against the heads on
    the drives, again whenever anything it read changed (consoleday.ChainMemo, issue 29);
    fixity as the last scrub found it (a full read-back is `camdock audit
    --full`, hours of disk time, not a page load)."""
    return c.ctl.chain_memo.report(c.db, c.cfg, a.first, a.last, c.today(), c.me.label)


@handles(protocol.Home)
def _home(c: Call, a: protocol.Home) -> dict[str, Any]:
    """Issue 29: the console's landing page, for this staff member's roles."""
    return consoleday.home(c.db, c.cfg, c.me, c.today())


@handles(protocol.CatalogFind)
def _find(c: Call, a: protocol.CatalogFind) -> dict[str, Any]:
    return consoleday.find(c.db, a)


@handles(protocol.CustodySearch)
def _custody_search(c: Call, a: protocol.CustodySearch) -> dict[str, Any]:
    """Who did what to which recording (REG-7.1), as the chain recorded it."""
    return consoleday.custody_page(c.db, c.cfg, a)


@handles(protocol.VideoOpen)
def _video(c: Call, a: protocol.VideoOpen) -> tuple[int, dict[str, int]]:
    """A recording, opened only for a supervised viewing: an approved request that covers it,
    in its window, for its custodian (invariant 9). The descriptor goes to the console."""
    req = requests.get(c.db, a.number)
    if req is None or not any(r.id == a.id for r in requests.recordings_of(c.db, req.id)):
        # A recording outside a request: not found, and on the record (REG-7.1; issue 27).
        c.ctl.refuse(c.me.label, "view", f"recording {a.id} is not in request {a.number}",
                     a.number, {"recording": a.id})  # fmt: skip
        raise CamdockError("沒有此影音資料 Not in this request", ExitCode.NOINPUT)
    # The request and the recording as the chain has them: an approval typed into the catalog
    # streams nothing (issue 27, review).
    rowchain.require_rows(c.db, [("requests", [req.id]), ("request_recordings", [req.id, a.id])])
    rowchain.require_chained(c.db, a.id)
    access.authorize(c.db, c.who, "view", c.ctl.topics, access._rules(req), clock.now())
    path = recordings.plain_copy(c.db, a.id)
    if path is None:
        raise CamdockError("此檔案僅存於封存檔 Only in its seal", ExitCode.NOINPUT)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:  # the stream log: its register line and custody entry come when it ends (video.done)
        viewing = viewings.open_viewing(c.db, req.id, req.number, a.id, c.me.label, c.me.id)
    except BaseException:
        os.close(fd)
        raise
    return fd, {"viewing": viewing}


@handles(protocol.VideoDone)
def _video_done(c: Call, a: protocol.VideoDone) -> viewings.Closed:
    """The console's stream of a viewing ended: its register line and custody entry (REG-5.3)."""
    return viewings.close(c.db, a.viewing, c.me.id, a.sent)
