"""Separated duties, by identity (REG-5.1, REG-4.2.5; issue 27, item 7): nobody approves,
supervises a viewing of, or copies a request they applied for or approved; nobody confirms a
seal made under their own identity; the daemon's seals are made as the station. Identity is the
staff id, never a name string: the same person under another name is still refused, and every
refusal is on the record."""

from __future__ import annotations

import json
import sqlite3
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from camdock import clock
from camdock.catalog import open_catalog, seals
from camdock.config import Config, load
from camdock.errors import Refused
from camdock.services import access
from camdock.services.seal import Sealing, confirm_day
from conftest import make_camera, offload
from stationcfg import write_config
from test_access import STAFF

TAIPEI = ZoneInfo("Asia/Taipei")
# Someone who holds two roles at a small station: custodian and deputy chief.
BOTH = '\n[[staff]]\nid = "X1"\nname = "許兼任"\nroles = ["custodian", "approver"]\n'
DAY = date(2026, 11, 28)


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    loaded = load(write_config(tmp_path, STAFF + BOTH))
    make_camera(tmp_path / "cam", 2, size=8 * 1024, seed=4)
    assert offload(tmp_path / "cam", [loaded.footage, loaded.backup], loaded.catalog).ok
    return loaded


def _refusals(cfg: Config) -> list[dict[str, Any]]:
    con = sqlite3.connect(cfg.catalog)
    try:
        found = con.execute("SELECT actor, details FROM custody_log WHERE action = 'refused' "
                            "ORDER BY id").fetchall()  # fmt: skip
        return [{"actor": a, **json.loads(d)} for a, d in found]
    finally:
        con.close()


def _scheduled(cfg: Config, applicant: str, approver: str, scheduler: str) -> str:
    db = open_catalog(cfg.catalog)
    try:
        who = access.acting(cfg, applicant, db)
        start = datetime(2026, 11, 28, tzinfo=TAIPEI)
        form = {"kind": "both", "reason": "傷害案調查", "purpose": "investigation",
                "duty_item": "巡邏"}  # fmt: skip
        req = access.new_request(db, cfg, who, form, ("A12345", None, start,
                                                      start + timedelta(days=1)), None)  # fmt: skip
        access.step(db, who, req.number, "submit", None)
        access.step(db, access.acting(cfg, approver, db), req.number, "approve", None)
        now = clock.now().astimezone(TAIPEI) - timedelta(minutes=5)
        access.step(db, access.acting(cfg, scheduler, db), req.number, "schedule", None,
                    start=now, end=now + timedelta(hours=2))  # fmt: skip
        return req.number
    finally:
        db.close()


def test_the_approver_neither_supervises_the_viewing_nor_copies(
    cfg: Config, tmp_path: Path
) -> None:
    number = _scheduled(cfg, "D1", "X1", "C1")
    db = open_catalog(cfg.catalog)
    try:
        x1 = access.acting(cfg, "X1", db)
        with pytest.raises(Refused, match="they applied for or approved"):
            access.step(db, x1, number, "view", None)
        (tmp_path / "usb").mkdir()
        with pytest.raises(Refused, match="they applied for or approved"):
            access.copy(db, x1, number, tmp_path / "usb", None, None)
        found = access.step(db, access.acting(cfg, "C1", db), number, "view", None)
        assert found.approved_by_id == "X1"
    finally:
        db.close()
    assert [(r["actor"], r["attempted"]) for r in _refusals(cfg)] == [
        ("許兼任 (X1)", "view"),
        ("許兼任 (X1)", "copy"),
    ]


def test_the_applicant_neither_approves_nor_supervises_their_own_viewing(cfg: Config) -> None:
    number = _scheduled(cfg, "X1", "P1", "C1")
    db = open_catalog(cfg.catalog)
    try:
        with pytest.raises(Refused, match="they applied for or approved"):
            access.step(db, access.acting(cfg, "X1", db), number, "view", None)
    finally:
        db.close()
    assert [r["attempted"] for r in _refusals(cfg)] == ["view"]


def _sealed(cfg: Config, by: str, by_id: str) -> None:
    db = open_catalog(cfg.catalog)
    try:  # a verified seal of the day, as the sealing records it
        row = seals.Archive(
            DAY.isoformat(), 1, str(cfg.footage), "2026/11/20261128-1.7z", "x", "k", by, by_id
        )
        sid = seals.begin(db, row)
        done = [seals.Written(sid, 1, row.destination, row.path, "k", "0" * 64, 1)]
        seals.record_sealed(db, DAY, done, [], by, seals.dirty(db).get(str(DAY)), None)
    finally:
        db.close()


def test_nobody_confirms_a_seal_made_under_their_own_id_whatever_the_name(cfg: Config) -> None:
    # Sealed under staff id X1 with one spelling of the name; confirmed under another.
    _sealed(cfg, "Hsu (X1)", "X1")
    db = open_catalog(cfg.catalog)
    try:
        with pytest.raises(Refused, match="the supervisor who confirms is someone else"):
            confirm_day(db, Sealing(None), DAY, "許兼任 (X1)", "X1")
        done = confirm_day(db, Sealing(None), DAY, "林督導 (S1)", "S1")
        assert done["by"] == "林督導 (S1)"
    finally:
        db.close()
    assert [(r["actor"], r["attempted"], r["day"]) for r in _refusals(cfg)] == [
        ("許兼任 (X1)", "confirm", DAY.isoformat())
    ]


def test_the_daemons_seal_is_the_stations_and_a_supervisor_confirms_it(cfg: Config) -> None:
    station = f"station:{cfg.station_id}"
    _sealed(cfg, station, station)
    db = open_catalog(cfg.catalog)
    try:
        # A custodian's name in the config's [seal] sealed_by makes them no sealer of it.
        assert confirm_day(db, Sealing(None), DAY, "林督導 (S1)", "S1")["generation"] == 1
    finally:
        db.close()
