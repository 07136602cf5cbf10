"""Four gaps a hostile review found in retention and destruction (REG-4.3.1, REG-7.1), each
proven here with real components: a hold placed during a destruction keeps every copy; one
refusal does not stop the rest of the day's due list; a standing authorisation is revoked;
destruction lists publish their events."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
import threading
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from camdock.adapters import fsio, manifest
from camdock.catalog import custody, open_catalog, recordings, requests
from camdock.catalog import destruction as destruction_rows
from camdock.catalog import retention as retention_rows
from camdock.config import load
from camdock.core.retention import HoldKind
from camdock.errors import CamdockError, Conflict, ExitCode, UnknownRecording
from camdock.events import Topics
from camdock.services import access
from camdock.services.retention import (
    Keeping,
    approve_list,
    authorise,
    daily_pass,
    destroy,
    execute_list,
    place_hold,
    plan_for,
    propose_list,
    revoke_authorisation,
)
from conftest import camdock_cmd, make_camera, needs_root, offload, run
from test_mqtt import message_for, validator

TOPICS = Topics("camdock", "test-01")
LATER = date(2027, 12, 1)  # past every recording's year: each may go


def _recordings(tmp_path: Path, count: int) -> tuple[Path, Path, Path, Keeping]:
    d1, d2 = tmp_path / "d1", tmp_path / "d2"
    d1.mkdir()
    d2.mkdir()
    make_camera(tmp_path / "cam", count, size=4096, seed=7)
    assert offload(tmp_path / "cam", [d1, d2], tmp_path / "c.db").ok
    return d1, d2, tmp_path / "c.db", Keeping(roots=frozenset({str(d1), str(d2)}))


# --- 1. a hold placed while a destruction runs ------------------------------------------------


def _keep_recording_one(catalog: Path, keep: Keeping, how: str) -> str:
    """What starts keeping recording 1, from another connection: a hold, or a request whose
    selection covers it (a draft holds what it covers). Returns what became of it."""
    other = open_catalog(catalog)  # its own connection, as a control thread has
    try:
        if how == "hold":
            place_hold(other, keep, "督察 (S1)", kind=HoldKind.INVESTIGATION, case="刑案 9",
                       reason="偵查中", recording=1)  # fmt: skip
            return "kept"
        start = datetime(2026, 11, 28, tzinfo=ZoneInfo("Asia/Taipei"))
        form = {"kind": "copy", "reason": "傷害案調查", "purpose": "investigation",
                "duty_item": "巡邏"}  # fmt: skip
        scope = ("A12345", None, start, start + timedelta(days=1))
        who = access.acting(None, "D1", other)
        req = access.new_request(other, None, who, form, scope, None)
        covered = [r.id for r in requests.recordings_of(other, req.id)]
        return "kept" if 1 in covered else "refused"
    except UnknownRecording:
        return "refused"
    finally:
        other.close()


@pytest.mark.parametrize("how", ["hold", "request"])
def test_footage_kept_between_the_runners_check_and_its_unlink_loses_no_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """REG-4.3.1: a hold placed (or a request made) while the runner is between its check of
    the holds and the unlink of the first copy (forced by a barrier, no sleeps) either lands
    before the runner looks (every copy kept) or waits until the recording is destroyed (then
    it does not keep it: it is gone) — never a kept recording with a copy gone."""
    d1, d2, catalog, keep = _recordings(tmp_path, 2)
    db = open_catalog(catalog)
    rel = db.execute("SELECT relpath FROM recordings WHERE id = 1").fetchone()[0]
    asked = threading.Event()  # the keeping writer has started (or, without a lock, finished)
    outcome: dict[str, Any] = {}

    real_lock = fsio.exclusive

    @contextlib.contextmanager
    def lock(path: Path, *, shared: bool = False) -> Iterator[None]:
        if shared:  # the keeping side: it is about to wait for the runner's lock
            asked.set()
        with real_lock(path, shared=True) if shared else real_lock(path):
            yield

    def keeper() -> None:
        try:
            outcome["writer"] = _keep_recording_one(catalog, keep, how)
        finally:
            asked.set()

    real_tombstone = manifest.ensure_removed
    started: list[threading.Thread] = []

    def tombstone(*args: Any, **kw: Any) -> Any:
        if not started:  # the runner has asked the holds for its first copy: keep it now
            started.append(threading.Thread(target=keeper, name="keeper"))
            started[0].start()
            assert asked.wait(60), "the keeping writer never started"
        return real_tombstone(*args, **kw)

    monkeypatch.setattr(fsio, "exclusive", lock)
    monkeypatch.setattr(manifest, "ensure_removed", tombstone)
    try:
        destroy(db, keep, LATER, "保管人 (C1)", recordings=[1])
    except Exception as exc:  # noqa: BLE001 - the runner may stop; what matters is below
        outcome["runner"] = repr(exc)
    started[0].join(60)
    assert not started[0].is_alive()
    present = [(d / rel).is_file() for d in (d1, d2)]
    if outcome["writer"] == "kept":  # it came first: both copies kept
        assert present == [True, True], outcome
    else:  # the runner came first: destroyed whole, and the writer does not claim it
        assert present == [False, False], outcome
    # With the runner's lock the writer waits for the recording it is destroying.
    assert outcome == {"writer": "refused"}, outcome
    assert recordings.copies(db, 1) == {}
    db.close()


# --- 2. one refusal does not stop the day's due list -------------------------------------------


@contextlib.contextmanager
def _immutable(path: Path) -> Iterator[None]:
    """The file made undeletable for real (chattr +i, as root): unlink answers EPERM."""
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@needs_root
def test_one_undeletable_copy_stops_only_its_recording_in_the_daily_pass(tmp_path: Path) -> None:
    """REG-4.3.1: three recordings due, the second one's copy on the backup drive undeletable:
    the daily pass destroys the first and the third; the second stays "destroying" with the
    alarm naming the drive, and the pass says so."""
    d1, d2, catalog, keep = _recordings(tmp_path, 3)
    keep = dataclasses.replace(keep, topics=TOPICS)
    db = open_catalog(catalog)
    paths = dict(db.execute("SELECT id, relpath FROM recordings").fetchall())
    assert sorted(paths) == [1, 2, 3]
    authorise(db, "保-9", "custodian-1", date(2028, 6, 1), "分局長 (P1)", "P1", LATER)
    with _immutable(d2 / paths[2]):
        result = daily_pass(db, catalog, keep, LATER)
    assert sorted(d.recording for d in result.destroyed) == [1, 3]
    for rec in (1, 3):
        assert not (d1 / paths[rec]).exists() and not (d2 / paths[rec]).exists()
    assert not (d1 / paths[2]).exists() and (d2 / paths[2]).is_file()  # never live, one gone
    [going] = retention_rows.destroying(db)
    assert going.recording == 2 and str(d2) in (going.stopped_reason or "")
    assert any("recording 2" in a and str(d2) in a for a in result.alarms), result.alarms
    stops = db.execute("SELECT recording_id FROM custody_log WHERE action = 'destroy-stop'")
    assert [r[0] for r in stops] == [2]
    assert custody.verify(db) == []
    # The drive is well again: the next pass finishes it.
    again = daily_pass(db, catalog, keep, LATER)
    assert [d.recording for d in again.destroyed] == [2] and not (d2 / paths[2]).exists()
    db.close()


# --- 3. a standing authorisation revoked ---------------------------------------------------------


def test_a_revoked_authorisation_stops_the_pass_at_once_and_twice_is_a_conflict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """REG-4.3.1, REG-7.1: an approver revokes a standing authorisation while the daily pass
    destroys under it (forced between the first recording's check and its unlink): the pass
    finishes that one and destroys nothing more, and says why; a second revocation is told who
    revoked it and when; each is on the custody log and the revocation is an event."""
    _, _, catalog, keep = _recordings(tmp_path, 3)
    keep = dataclasses.replace(keep, topics=TOPICS)
    db = open_catalog(catalog)
    authorise(db, "保-10", "custodian-1", date(2028, 6, 1), "分局長 (P1)", "P1", LATER)
    real_tombstone = manifest.ensure_removed
    revoked: list[Any] = []

    def revoke_now() -> None:
        other = open_catalog(catalog)  # the approver's own connection (a control thread)
        try:
            revoked.append(revoke_authorisation(other, "保-10", "分局長 (P1)", "P1",
                                                "改以清單核准", TOPICS))  # fmt: skip
        finally:
            other.close()

    def tombstone(*args: Any, **kw: Any) -> Any:
        if not revoked:
            worker = threading.Thread(target=revoke_now, name="revoke")
            worker.start()
            worker.join(60)
        return real_tombstone(*args, **kw)

    monkeypatch.setattr(manifest, "ensure_removed", tombstone)
    result = daily_pass(db, catalog, keep, LATER)
    monkeypatch.undo()
    assert revoked and revoked[0].revoked_by == "分局長 (P1)"
    assert [d.recording for d in result.destroyed] == [1]  # begun before: finished, whole
    assert plan_for(db, LATER).live == 2 and retention_rows.destroying(db) == []
    assert any("保-10 is no longer in force" in a for a in result.alarms), result.alarms
    # The next pass has no authorisation to destroy under: it says so.
    again = daily_pass(db, catalog, keep, LATER)
    assert again.destroyed == [] and any("no standing authorisation" in a for a in again.alarms)
    # Twice: a conflict naming who revoked it and when, recorded as a refusal.
    with pytest.raises(Conflict) as second:
        revoke_authorisation(db, "保-10", "副分局長 (P2)", "P2", "再撤銷", TOPICS)
    assert second.value.by == "分局長 (P1)" and second.value.at == revoked[0].revoked_at
    actions = [r[0] for r in db.execute("SELECT action FROM custody_log WHERE action IN "
                                        "('destroy-revoke', 'refused') ORDER BY id")]  # fmt: skip
    assert actions == ["destroy-revoke", "refused"]
    assert custody.verify(db) == []
    [event] = _events(db, "authorisation-revoked")
    assert event["data"]["ref"] == "保-10" and event["data"]["by"] == "分局長 (P1)"
    with pytest.raises(CamdockError) as missing:
        revoke_authorisation(db, "no-such", "分局長 (P1)", "P1", "x", TOPICS)
    assert missing.value.exit_code == ExitCode.NOINPUT
    db.close()


def _events(db: Any, kind: str) -> list[dict[str, Any]]:
    """The outbox's events of ``kind``, each checked against the contract (docs/asyncapi.yaml)."""
    bodies = [json.loads(r[0]) for r in db.execute("SELECT payload FROM outbox ORDER BY id")]
    for body in bodies:
        validator(message_for(body["type"])).validate(body)
    return [b for b in bodies if b["type"] == kind]


def test_revoke_authorisation_through_the_daemon_is_for_approvers(tmp_path: Path) -> None:
    """Issue 27, gap 3: ``camdock retention revoke-authorisation REF`` on a station goes through
    the daemon as the authenticated person: a custodian is refused (recorded), an approver
    revokes it, the second revocation is told who and when (exit 77, one line)."""
    from stationd import acting
    from test_access import _station

    cfg_path = _station(tmp_path)
    cfg = load(cfg_path)

    def act(*args: str) -> Any:
        return acting(cfg_path, *args)

    made = act("retention", "authorise", "--ref", "115-9", "--custodian", "C1", "--until",
               "2027-06-30", "--by", "P1")  # fmt: skip
    assert made.returncode == 0, made.stderr
    custodian = act("retention", "revoke-authorisation", "115-9", "--reason", "x", "--by", "C1")
    assert custodian.returncode == ExitCode.NOPERM, custodian.stderr
    ok = act("retention", "revoke-authorisation", "115-9", "--reason", "改以清單核准",
             "--by", "P1", "--json")  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert doc["authorisation"]["revoked_by_id"] == "P1" and doc["authorisation"]["revoked_at"]
    twice = act("retention", "revoke-authorisation", "115-9", "--reason", "y", "--by", "P1")
    assert twice.returncode == ExitCode.NOPERM and "already revoked" in twice.stderr
    assert len(twice.stderr.strip().splitlines()) == 1
    lists = run(camdock_cmd("retention", "lists", "--config", str(cfg_path), "--json"))
    [shown] = json.loads(lists.stdout)["authorisations"]
    assert shown["ref"] == "115-9" and shown["revoked_by_id"] == "P1"
    assert json.loads(lists.stdout)["standing_authorisation"] is None
    db = open_catalog(cfg.catalog)
    try:
        assert destruction_rows.live_authorisation(db, date(2026, 11, 29)) is None
        refused = [json.loads(r[0]) for r in db.execute(
            "SELECT details FROM custody_log WHERE action = 'refused' ORDER BY id")]  # fmt: skip
        assert [r["attempted"] for r in refused][-2:] == ["retention.revoke",
                                                          "revoke-authorisation"]  # fmt: skip
    finally:
        db.close()


# --- 4. destruction lists publish their events ---------------------------------------------------


def test_a_destruction_lists_steps_are_events_in_the_contract(tmp_path: Path) -> None:
    """REG-4.3.1, REG-7.1: a list proposed, approved and executed is three events through the
    outbox, each in the transaction of its step and valid against docs/asyncapi.yaml."""
    d1, d2, catalog, keep = _recordings(tmp_path, 2)
    keep = dataclasses.replace(keep, topics=TOPICS)
    db = open_catalog(catalog)
    list_id = propose_list(db, keep, LATER, "陳保管 (C1)", "C1")
    approve_list(db, list_id, "王分局長 (P1)", "P1", TOPICS)
    place_hold(db, keep, "督察 (S1)", kind=HoldKind.INVESTIGATION, case="刑案 3",
               reason="偵查中", recording=2)  # fmt: skip
    done = execute_list(db, keep, LATER, list_id, "陳保管 (C1)", "C1")
    assert [d.recording for d in done] == [1]
    [proposed] = _events(db, "destruction-proposed")
    assert proposed["data"] == {"list": list_id, "recordings": [1, 2], "state": "proposed",
                                "reason": "retention period ended (REG-4.3.1)",
                                "by": "陳保管 (C1)"}  # fmt: skip
    [approved] = _events(db, "destruction-approved")
    assert approved["data"] == {"list": list_id, "state": "approved", "by": "王分局長 (P1)"}
    [executed] = _events(db, "destruction-executed")
    assert executed["data"]["by"] == "陳保管 (C1)" and executed["data"]["state"] == "executed"
    outcomes = executed["data"]["outcomes"]
    assert outcomes["1"] == "destroyed" and outcomes["2"].startswith("skipped")
    kinds = [json.loads(r[0])["type"] for r in db.execute("SELECT payload FROM outbox ORDER BY id")]
    assert kinds.index("destruction-proposed") < kinds.index("destruction-approved")
    assert kinds.index("recording-destroyed") < kinds.index("destruction-executed")
    rel = dict(db.execute("SELECT id, relpath FROM recordings").fetchall())
    assert (d1 / rel[2]).is_file() and (d2 / rel[2]).is_file()
    db.close()
