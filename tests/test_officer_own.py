"""Officers see their own footage and requests only (issue 27, item 8): drafting a request shows
no one else's recordings before approval, and a draft never submitted expires after
``[access] draft_days`` (default 7) and stops holding the footage it selected, on the record."""

from __future__ import annotations

import json
import sqlite3
import tomllib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from camdock import clock
from camdock.catalog import open_catalog, requests
from camdock.config import Config, ConfigError, load, parse
from camdock.core.access import OPEN
from camdock.services import access
from camdock.services.retention import in_force
from conftest import make_camera, offload
from stationcfg import TEMPLATE, write_config
from test_access import STAFF
from test_control import ask, daemon, login  # noqa: F401 - daemon is the fixture

TAIPEI = ZoneInfo("Asia/Taipei")
NEW = {"from": "2026-11-28T00:00", "to": "2026-11-28T23:59", "officer": "A12345",
       "kind": "view", "purpose": "complaint", "reason": "a complaint"}  # fmt: skip


def test_an_officer_drafting_a_request_sees_no_one_elses_recordings(
    daemon: tuple[Config, Path],  # noqa: F811
) -> None:
    _, path = daemon
    officer = login(path, "D1")  # D1 is not A12345, whose footage the draft selects
    made = ask(path, "request.new", officer, **NEW)
    assert made["ok"], made
    number = made["result"]["number"]
    mine = ask(path, "request.get", officer, number=number)
    assert mine["ok"] and mine["result"]["recs"] == []
    custodian = ask(path, "request.get", login(path, "C1"), number=number)
    assert len(custodian["result"]["recs"]) == 1  # the custodian sees what the draft covers


def _draft(cfg: Config) -> str:
    db = open_catalog(cfg.catalog)
    try:
        who = access.acting(cfg, "D1", db)
        start = datetime(2026, 11, 28, tzinfo=TAIPEI)
        form = {"kind": "view", "reason": "r", "purpose": "complaint"}
        scope = ("A12345", None, start, start + timedelta(days=1))
        return access.new_request(db, cfg, who, form, scope, None).number
    finally:
        db.close()


def test_an_unsubmitted_draft_expires_and_stops_holding_footage(tmp_path: Path) -> None:
    cfg = load(write_config(tmp_path, STAFF + "\n[access]\ndraft_days = 3\n"))
    assert cfg.draft_days == 3
    make_camera(tmp_path / "cam", 2, size=8 * 1024, seed=9)
    assert offload(tmp_path / "cam", [cfg.footage, cfg.backup], cfg.catalog).ok
    number = _draft(cfg)
    db = open_catalog(cfg.catalog)
    try:
        assert requests.held_recordings(db, sorted(OPEN)) == {1: [number], 2: [number]}
        now = clock.now()
        assert access.expire_drafts(db, now + timedelta(days=2), cfg.draft_days, None) == []
        assert access.expire_drafts(db, now + timedelta(days=4), cfg.draft_days, None) == [number]
        assert access.expire_drafts(db, now + timedelta(days=5), cfg.draft_days, None) == []
        assert requests.held_recordings(db, sorted(OPEN)) == {}
        assert not [h for h in in_force(db) if h.case_ref == number]
        found = requests.get(db, number)
        assert found is not None and found.state == "expired"
    finally:
        db.close()
    con = sqlite3.connect(cfg.catalog)
    entries: list[Any] = con.execute(
        "SELECT actor, details FROM custody_log WHERE action = 'draft-expire'"
    ).fetchall()
    con.close()
    [(actor, details)] = entries
    assert actor == "camdock" and json.loads(details)["request"] == number


def test_draft_days_defaults_to_a_week_and_is_bounded() -> None:
    base = tomllib.loads(TEMPLATE.format(root="/tmp/x"))
    assert parse(base).draft_days == 7
    with pytest.raises(ConfigError, match="draft_days"):
        parse({**base, "access": {"draft_days": 0}})


def test_a_draft_submitted_as_it_expires_is_one_or_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from test_concurrency import _on_catalog, _race

    cfg = load(write_config(tmp_path, STAFF))
    make_camera(tmp_path / "cam", 1, size=8 * 1024, seed=2)
    assert offload(tmp_path / "cam", [cfg.footage, cfg.backup], cfg.catalog).ok
    number = _draft(cfg)
    barrier = threading.Barrier(2, timeout=60)  # both have read the draft; neither has written
    original = requests.change

    def waiting(*args: Any, **kw: Any) -> None:
        barrier.wait()
        original(*args, **kw)

    monkeypatch.setattr(requests, "change", waiting)
    later = clock.now() + timedelta(days=8)
    out = _race(
        _on_catalog(
            cfg, lambda db: access.step(db, access.acting(cfg, "D1", db), number, "submit", None)
        ),
        _on_catalog(cfg, lambda db: access.expire_drafts(db, later, cfg.draft_days, None)),
    )
    db = open_catalog(cfg.catalog)
    try:
        found = requests.get(db, number)
    finally:
        db.close()
    assert found is not None
    if isinstance(out[0], Exception):  # expired first: the submission is refused, recorded
        assert found.state == "expired" and out[1] == [number]
    else:
        assert found.state == "submitted" and out[1] == []
