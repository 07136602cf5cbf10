"""The daily pass expires what requests no longer hold (REG-4.3.1, REG-5; issue 28, item 3):
an approval never used in time and a draft never submitted expire without any request command
running, each recorded (custody entry, ``request-updated`` event) with what it released; the
retention plan shows what each open request holds and until when. The expiry is a
compare-and-set: a person acting on the request at the same moment is never lost silently."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from camdock import clock
from camdock.catalog import open_catalog
from camdock.catalog import requests as request_rows
from camdock.config import Config, load
from camdock.core.access import State
from camdock.errors import Conflict, Refused
from camdock.services import access, retention
from camdock.services.retention import Keeping, authorise, daily_pass, plan_for
from conftest import TZ, camdock_cmd, run
from stationtime import STATION_NOW
from test_access import _station
from test_concurrency import _on_catalog, _race, both_before  # noqa: F401 - a fixture
from test_mqtt import message_for, validator


@pytest.fixture
def station(tmp_path: Path) -> Iterator[Config]:
    """The test station with D1's three recordings of 2026-11-28 filed."""
    yield load(_station(tmp_path))


def _draft(db: Database, cfg: Config) -> str:
    who = access.acting(cfg, "D1", db)
    start = datetime(2026, 11, 28, tzinfo=TZ)
    form = {"kind": "copy", "reason": "傷害案調查", "purpose": "investigation",
            "duty_item": "巡邏"}  # fmt: skip
    scope = ("A12345", None, start, start + timedelta(days=1))
    return access.new_request(db, cfg, who, form, scope, None).number


def _act(db: Database, cfg: Config, by: str, number: str, action: str, **kw: Any) -> None:
    access.step(db, access.acting(cfg, by, db), number, action, cfg.topics, **kw)


def _entries(db: Database, action: str) -> list[dict[str, Any]]:
    found = db.execute("SELECT details FROM custody_log WHERE action = ? ORDER BY id", (action,))
    return [json.loads(r[0]) for r in found]


def test_an_approval_for_one_day_expires_by_the_daily_pass_and_releases_its_footage(
    station: Config,
) -> None:
    cfg = station
    db = open_catalog(cfg.catalog)
    n = _draft(db, cfg)
    _act(db, cfg, "D1", n, "submit")
    _act(db, cfg, "P1", n, "approve", valid_days=1)
    today = date(2026, 11, 29)
    authorise(db, "保-7", "C1", date(2027, 11, 29), "王分局長 (P1)", "P1", today)
    # The plan says what the request holds and until when.
    [held] = plan_for(db, today, cfg.draft_days).requests
    assert (held.request, held.state, held.recordings) == (n, "approved", (1, 2, 3))
    assert held.until is not None and held.until.startswith("2026-11-30")
    shown = run(camdock_cmd("retention", "plan", "--config", str(cfg.source)))
    assert f"request {n} (approved) holds 3 recording(s) 1, 2, 3: until 2026-11-30" in shown.stdout
    # A year on, no request command has run: the daemon's pass alone expires the approval,
    # and the footage it held is destroyed on its day like any other.
    a_year_on = datetime(2027, 11, 28, 10, 0, tzinfo=TZ)
    with clock.using(clock.FixedClock(a_year_on)):
        result = daily_pass(db, cfg.catalog, Keeping.from_config(cfg), a_year_on.date(),
                            a_year_on)  # fmt: skip
    assert result.expired == [n]
    req = request_rows.get(db, n)
    assert req is not None and req.state is State.EXPIRED
    [entry] = _entries(db, "expire")
    assert entry["request"] == n and entry["released"] == [1, 2, 3]
    assert sorted(d.recording for d in result.destroyed) == [1, 2, 3]
    assert result.plan.requests == ()
    payloads = [json.loads(r[0]) for r in db.execute("SELECT payload FROM outbox ORDER BY id")]
    updates = [p for p in payloads if p["type"] == "request-updated"]
    assert updates[-1]["data"]["action"] == "expire" and updates[-1]["data"]["state"] == "expired"
    for body in payloads:  # the station server's contract (docs/asyncapi.yaml)
        validator(message_for(body["type"])).validate(body)
    db.close()


def test_a_draft_never_submitted_expires_after_draft_days_and_stops_holding(
    station: Config,
) -> None:
    cfg = station
    db = open_catalog(cfg.catalog)
    n = _draft(db, cfg)
    [held] = plan_for(db, date(2026, 11, 29), cfg.draft_days).requests
    assert held.state == "draft" and held.until is not None
    assert datetime.fromisoformat(held.until) == datetime.fromisoformat(
        request_rows.get(db, n).created_at  # type: ignore[union-attr]
    ) + timedelta(days=cfg.draft_days)
    keep = Keeping.from_config(cfg)
    early = STATION_NOW + timedelta(days=cfg.draft_days - 1)
    assert retention.expire_requests(db, keep, early) == []
    late = STATION_NOW + timedelta(days=cfg.draft_days, minutes=1)
    result = daily_pass(db, cfg.catalog, keep, late.astimezone(TZ).date(), late)
    assert result.expired == [n] and result.plan.requests == ()
    [entry] = _entries(db, "draft-expire")
    assert entry["released"] == [1, 2, 3] and entry["draft_days"] == cfg.draft_days
    db.close()


def test_a_submit_racing_the_draft_expiry_keeps_exactly_one_outcome_and_says_so(
    station: Config,
    both_before: Any,  # noqa: F811 - the fixture
) -> None:
    cfg = station
    keep = Keeping.from_config(cfg)
    late = STATION_NOW + timedelta(days=cfg.draft_days + 1)
    both_before(request_rows, "change")  # both have read the draft; neither has written
    outcomes = []
    for _ in range(4):
        n = _on_catalog(cfg, lambda db: _draft(db, cfg))()
        passed, submitted = _race(
            _on_catalog(cfg, lambda db: retention.expire_requests(db, keep, late)),
            _on_catalog(cfg, lambda db, n=n: _act(db, cfg, "D1", n, "submit")),
        )
        db = open_catalog(cfg.catalog)
        state = request_rows.get(db, n).state  # type: ignore[union-attr]
        submits = [e for e in _entries(db, "submit") if e["request"] == n]
        expiries = [e for e in _entries(db, "draft-expire") if e["request"] == n]
        refusals = [e for e in _entries(db, "refused") if e.get("request") == n]
        db.close()
        assert len(submits) + len(expiries) == 1  # one outcome, once
        if state is State.EXPIRED:  # the pass won: the applicant is told, and it is recorded
            assert isinstance(submitted, Conflict) and passed == [n]
            assert refusals and refusals[0]["first_by"] == "camdock"
        else:  # the applicant won: the request stays submitted, the pass let it be
            assert state is State.SUBMITTED and submitted is None and passed == []
        outcomes.append(state)
    assert all(s in (State.EXPIRED, State.SUBMITTED) for s in outcomes)


def test_a_schedule_racing_the_approval_expiry_keeps_exactly_one_outcome(
    station: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = station
    keep = Keeping.from_config(cfg)

    def approved(db: Database) -> str:
        n = _draft(db, cfg)
        _act(db, cfg, "D1", n, "submit")
        _act(db, cfg, "P1", n, "approve", valid_days=1)
        return n

    numbers: list[str] = []
    # The custodian schedules at the approval's last hour, as the pass (two days on) expires it.
    last_hour = STATION_NOW + timedelta(hours=23)
    after = STATION_NOW + timedelta(days=2)
    racing: list[str] = []
    barrier = threading.Barrier(2, timeout=60)
    original = request_rows.change

    def change(db: Database, req: Any, *args: Any, **kw: Any) -> None:
        if req.number in racing:  # both have read this request; neither has written
            barrier.wait()
        original(db, req, *args, **kw)

    monkeypatch.setattr(request_rows, "change", change)
    for _ in range(3):  # each raced on its own (the pass also expires the ones before)
        n = _on_catalog(cfg, approved)()
        numbers.append(n)
        racing[:] = [n]
        passed, scheduled = _race(
            _on_catalog(cfg, lambda db, n=n: access.expire(db, after, None)),
            _on_catalog(cfg, lambda db, n=n: access.step(
                db, access.acting(cfg, "C1", db), n, "schedule", None, now=last_hour,
                start=last_hour, end=last_hour + timedelta(hours=1))),
        )  # fmt: skip
        db = open_catalog(cfg.catalog)
        state = request_rows.get(db, n).state  # type: ignore[union-attr]
        refused = [e for e in _entries(db, "refused") if e.get("request") == n]
        db.close()
        if state is State.EXPIRED:
            assert isinstance(scheduled, Refused) and refused  # told, and recorded
        else:
            assert state is State.SCHEDULED and n not in passed and not refused
    # A schedule that won is still an approval run out: the next pass expires it.
    racing.clear()
    db = open_catalog(cfg.catalog)
    retention.expire_requests(db, keep, after)
    states = {request_rows.get(db, n).state for n in numbers}  # type: ignore[union-attr]
    assert states == {State.EXPIRED}
    con = sqlite3.connect(cfg.catalog)
    assert con.execute("SELECT count(*) FROM custody_log WHERE action = 'expire'").fetchone() == (
        len(numbers),
    )
    con.close()
    db.close()
