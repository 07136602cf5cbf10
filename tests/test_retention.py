"""Retention, holds and destruction (REG-4.3.1; invariant 8), on real files and a real catalog.

The service is driven through a year with an injected "today"; the commands, which take the
machine's date, are tested on recordings made a year older in the catalog (their dates moved
back by SQL: the only way to age a recording for a separate process)."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from camdock.catalog import custody, open_catalog, recordings, write_txn
from camdock.config import ConfigError, parse
from camdock.core.retention import (
    Candidate,
    Hold,
    HoldKind,
    Policy,
    add_months,
    plan,
    refusal,
)
from camdock.errors import CamdockError, ExitCode, Refused
from camdock.events import Topics
from camdock.services.retention import (
    Keeping,
    authorise,
    covered_now,
    daily_pass,
    destroy,
    in_force,
    place_hold,
    plan_for,
    release_hold,
)
from conftest import TZ, camdock_cmd, make_camera, needs_root, offload, run, tmpfs, write_recording
from stationcfg import TEMPLATE
from test_mqtt import message_for, validator

TOPICS = Topics("camdock", "test-01")
RECORDED = date(2026, 11, 28)  # make_camera's recordings


# ---------------------------------------------------------------------------------------------
# The pure rules


def test_the_window_is_never_shorter_than_a_month_nor_longer_than_a_year() -> None:
    """REG-4.3.1 for every day of three years (leap days, 31-day months) and several policies."""
    policies = [Policy(), Policy(30, 30), Policy(45, 200), Policy(365, 365), Policy(31, 366 - 1)]
    day = date(2024, 1, 1)
    while day < date(2027, 1, 1):
        for p in policies:
            keep, due = p.window(day)
            assert keep >= add_months(day, 1) and keep >= day + timedelta(days=p.min_days)
            assert due <= add_months(day, 12) or due == keep
            assert keep <= due
        day += timedelta(days=1)
    # 30 days after 1 March is 31 March: one day short of a month, so the month wins.
    assert Policy().window(date(2026, 3, 1)) == (date(2026, 4, 1), date(2027, 3, 1))


def _cand(i: int, keep: date, due: date, officer: str = "A1", camera: str = "C1") -> Candidate:
    t = datetime(2026, 1, 10, 9, 0, tzinfo=TZ)
    return Candidate(i, keep, due, camera, officer, (t,), f"r{i}")


def test_holds_decide_what_is_due_held_and_late() -> None:
    today = date(2027, 1, 20)
    due = [
        _cand(1, date(2026, 2, 10), date(2027, 1, 10)),  # late
        _cand(2, date(2026, 2, 10), date(2027, 1, 20), officer="B2"),  # due today, held
        _cand(3, date(2026, 2, 10), date(2027, 1, 10), camera="C9"),
    ]  # late, investigation
    t0, t1 = datetime(2026, 1, 1, tzinfo=TZ), datetime(2026, 2, 1, tzinfo=TZ)
    holds = [
        Hold(7, HoldKind.COMPLAINT, "K-1", "r", "s", officer_badge="B2", start=t0, end=t1),
        Hold(
            8, HoldKind.INVESTIGATION, "K-2", "r", "s", camera_id="C9", review_by=date(2027, 1, 1)
        ),
    ]
    p = plan(today, due, holds, destroyable=3, becomes_destroyable=0, live=3)
    assert [c.id for c in p.due] == [1] and [c.id for c in p.overdue] == [1]
    assert [(c.id, ids) for c, ids in p.held] == [(2, (7,)), (3, (8,))]
    assert p.held_past_max == ()  # 2 is due today (not past); 3 is an investigation
    assert [h.id for h in p.review_due] == [8] and len(p.alarms) == 2
    late = plan(today + timedelta(days=1), due, holds, destroyable=3, becomes_destroyable=0, live=3)
    assert [c.id for c in late.held_past_max] == [2]  # a complaint cannot keep it past a year
    young = _cand(4, date(2027, 2, 1), date(2028, 1, 1))
    assert "kept until 2027-02-01" in str(refusal(young, today, [], Policy()))
    assert "hold 7" in str(refusal(due[1], today, holds, Policy()))
    assert refusal(due[0], today, holds, Policy()) is None
    # The catalogued window is not trusted alone: a row edited to "destroy now" is refused.
    forged = _cand(5, date(2025, 1, 1), date(2025, 1, 1))
    assert refusal(forged, date(2026, 1, 20), [], Policy()) is not None


def test_the_config_cannot_shorten_or_stretch_the_law() -> None:
    base = TEMPLATE.format(root="/tmp/x")

    def problems(section: str) -> list[str]:
        import tomllib

        with pytest.raises(ConfigError) as exc:
            parse(tomllib.loads(base + section))
        return exc.value.problems

    assert any(
        p.startswith("retention.min_days: must be from 30")
        for p in problems("[retention]\nmin_days = 20\n")
    )
    assert any(
        p.startswith("retention.max_days: must be from 30 to 365")
        for p in problems("[retention]\nmax_days = 400\n")
    )
    assert any(
        "less than min_days" in p for p in problems("[retention]\nmin_days = 90\nmax_days = 60\n")
    )
    assert any(
        p.startswith("retention.authorisation_ref")
        for p in problems('[retention]\nauthorisation_ref = "X-1"\n')
    )
    assert any(p.startswith("retention.colour") for p in problems("[retention]\ncolour = 1\n"))
    import tomllib

    cfg = parse(
        tomllib.loads(base + '[retention]\nmin_days = 60\nstanding_authorisation = "保管人 陳"\n')
    )
    assert cfg.retention == Policy(60, 365, "保管人 陳", None, 14)


# ---------------------------------------------------------------------------------------------
# A year on real files


def _ingest(tmp_path: Path, d1: Path, d2: Path, catalog: Path) -> dict[str, list[int]]:
    """Two officers' cameras offloaded for real; returns recording ids by camera."""
    ids: dict[str, list[int]] = {}
    for cam_id, badge, name, seed in (
        ("CAM0001", "A12345", "王小明", 1),
        ("CAM0002", "B23456", "李美玲", 2),
    ):
        cam = tmp_path / cam_id
        make_camera(cam, 3, size=8192, seed=seed)
        report = offload(
            cam, [d1, d2], catalog, camera_id=cam_id, officer_badge=badge, officer_name=name
        )
        assert report.ok
        db = open_catalog(catalog)
        ids[cam_id] = [
            r[0]
            for r in db.execute(
                "SELECT id FROM recordings WHERE camera_id = ? ORDER BY id", (cam_id,)
            )
        ]
        db.close()
    return ids


def _files(root: Path) -> set[str]:
    """The footage on a drive (not camdock's own records: manifests, journal, backups)."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()
            and p.name not in ("manifest.jsonl", "manifest-sha256.txt")
            and "camdock-catalog" not in p.relative_to(root).parts}  # fmt: skip


def test_a_year_of_daily_passes_destroys_exactly_what_is_due(tmp_path: Path) -> None:
    d1, d2, catalog = tmp_path / "footage", tmp_path / "backup", tmp_path / "c.db"
    d1.mkdir(), d2.mkdir()
    ids = _ingest(tmp_path, d1, d2, catalog)
    keep = Keeping(
        Policy(standing_authorisation="custodian-1", authorisation_ref="保-7"),
        roots=frozenset({str(d1), str(d2)}),
        topics=TOPICS,
    )
    keep_no_backup = Keeping(keep.policy, roots=None, topics=TOPICS)
    db = open_catalog(catalog)
    rows = {r.id: r for r in (recordings.get(db, i) for v in ids.values() for i in v) if r}
    assert {r.retain_until for r in rows.values()} == {"2026-12-28"}
    assert {r.destroy_by for r in rows.values()} == {"2027-11-28"}
    a0, a1, a2 = ids["CAM0001"]
    investigation = place_hold(
        db,
        keep,
        "detective-9",
        kind=HoldKind.INVESTIGATION,
        case="刑案 115-0042",
        reason="assault outside the station",
        recording=a0,
        review_by=date(2027, 6, 1),
    )
    complaint = place_hold(
        db,
        keep,
        "supervisor-2",
        kind=HoldKind.COMPLAINT,
        case="陳情 88",
        reason="citizen complaint",
        officer="B23456",
        start=datetime(2026, 11, 28, tzinfo=TZ),
        end=datetime(2026, 11, 28, 23, 59, tzinfo=TZ),
    )
    # Footage that arrives later inside a hold's range is covered too.
    late_cam = tmp_path / "late"
    write_recording(late_cam / "DCIM/100MEDIA/20261128_201500_0099.MP4", 4096, 99)
    assert offload(
        late_cam,
        [d1, d2],
        catalog,
        camera_id="CAM0002",
        officer_badge="B23456",
        officer_name="李美玲",
    ).ok
    late_id = db.execute("SELECT max(id) FROM recordings").fetchone()[0]
    before = {d: _files(d) for d in (d1, d2)}
    # Issue 27: the daemon destroys by itself only under a standing authorisation recorded
    # in the catalog by its approver (reference, scope, expiry).
    first_day = date(2026, 11, 29)
    authorise(db, "保-7", "custodian-1", date(2027, 11, 29), "分局長 (P1)", "P1", first_day)

    destroyed_on: dict[int, date] = {}
    alarms_on: dict[date, list[str]] = {}
    day = date(2026, 11, 29)
    while day <= date(2027, 12, 31):
        if day == date(2027, 11, 29):  # renewed as it lapses: one lasts a year at most
            authorise(db, "保-8", "custodian-1", date(2028, 11, 28), "分局長 (P1)", "P1", day)
        if day == date(2027, 12, 10):
            release_hold(db, keep, complaint, "supervisor-2", "complaint closed")
        result = daily_pass(db, catalog, keep_no_backup, day)
        alarms_on[day] = result.alarms
        for d in result.destroyed:
            destroyed_on[d.recording] = day
        day += timedelta(days=1)

    # Nothing before its day, everything unheld on its day, nothing held, the rest after release.
    assert destroyed_on == {
        a1: date(2027, 11, 28),
        a2: date(2027, 11, 28),
        **{i: date(2027, 12, 10) for i in [*ids["CAM0002"], late_id]},
    }
    assert a0 not in destroyed_on  # the investigation keeps it past one year
    assert not any(alarms_on[date(2027, 5, d)] for d in range(1, 32))  # a quiet month
    assert any("review date" in a for a in alarms_on[date(2027, 6, 2)])
    assert any("not an investigation" in a for a in alarms_on[date(2027, 11, 29)])
    assert not any("not an investigation" in a for a in alarms_on[date(2027, 12, 11)])
    for d in (d1, d2):  # the copies are gone from both drives, the kept one is there
        left = _files(d)
        assert left == {p for p in before[d] if rows[a0].relpath == p}
    # Tombstones: the row keeps hash, size, who, when, why; the custody chain covers it.
    for rec_id in destroyed_on:
        r = recordings.get(db, rec_id)
        assert r is not None and r.destroyed_at and r.destroyed_by == "custodian-1"
        assert len(r.sha256) == 64 and r.size > 0
        assert "standing authorisation 保-" in (r.destroy_reason or "")
        assert recordings.copies(db, rec_id) == {}
    assert custody.verify(db) == []
    actions = [
        r[0]
        for r in db.execute(
            "SELECT action FROM custody_log WHERE action != 'store' "
            "AND action != 'clear' ORDER BY id"
        )
    ]
    assert actions.count("destroy") == len(destroyed_on)
    assert actions[:2] == ["hold-place", "hold-place"] and "hold-release" in actions
    payloads = [json.loads(r[0]) for r in db.execute("SELECT payload FROM outbox ORDER BY id")]
    for body in payloads:  # the station server's contract (docs/asyncapi.yaml)
        validator(message_for(body["type"])).validate(body)
    events = [b["type"] for b in payloads]
    assert events.count("recording-destroyed") == len(destroyed_on)
    assert {"hold-placed", "hold-released", "retention-alarm"} <= set(events)
    assert investigation and plan_for(db, date(2027, 12, 31)).live == 1
    db.close()


def test_destruction_refuses_what_the_rules_keep(tmp_path: Path) -> None:
    d1, d2, catalog = tmp_path / "footage", tmp_path / "backup", tmp_path / "c.db"
    d1.mkdir(), d2.mkdir()
    ids = _ingest(tmp_path, d1, d2, catalog)
    keep = Keeping(roots=frozenset({str(d1), str(d2)}))
    db = open_catalog(catalog)
    a0, a1, _ = ids["CAM0001"]
    with pytest.raises(Refused, match="kept until 2026-12-28"):
        destroy(db, keep, date(2026, 12, 27), "custodian-1", recordings=[a0])
    place_hold(db, keep, "s", kind=HoldKind.THIRD_PARTY, case="X", reason="r", recording=a0)
    with pytest.raises(Refused, match="held"):
        destroy(db, keep, date(2027, 1, 5), "custodian-1", recordings=[a1, a0])
    assert recordings.get(db, a1).destroyed_at is None  # type: ignore[union-attr]  # all or none
    # After the minimum, on request, before the year is out: allowed.
    [done] = destroy(db, keep, date(2027, 1, 5), "custodian-1", recordings=[a1])
    assert done.recording == a1 and not (d1 / done.path).exists()
    # A folder on the drive replaced by a symlink: nothing outside the drive is removed.
    b0 = ids["CAM0002"][0]
    rel = Path(recordings.get(db, b0).relpath)  # type: ignore[union-attr]
    outside = tmp_path / "outside"
    (outside / rel.parent.name).mkdir(parents=True)
    (outside / rel.parent.name / rel.name).write_bytes(b"not footage")
    day_dir = d2 / rel.parent
    day_dir.rename(tmp_path / "moved-day")
    day_dir.symlink_to(outside / rel.parent.name)
    with pytest.raises(CamdockError, match="not removed"):
        destroy(db, keep, date(2027, 1, 5), "custodian-1", recordings=[b0])
    assert (outside / rel.parent.name / rel.name).read_bytes() == b"not footage"
    assert (d1 / rel).is_file()  # refused before anything was planned or removed
    assert not db.execute("SELECT 1 FROM destructions WHERE state = 'planned'").fetchall()
    day_dir.unlink()
    (tmp_path / "moved-day").rename(day_dir)
    # A copy outside this station's destinations is never removed.
    other = Keeping(roots=frozenset({str(tmp_path / "elsewhere")}))
    with pytest.raises(Refused, match="not a destination of this station"):
        destroy(db, other, date(2027, 1, 5), "custodian-1", recordings=[ids["CAM0002"][1]])
    db.close()


# ---------------------------------------------------------------------------------------------
# The commands


def _age(catalog: Path, years: int = 1) -> None:
    """Make every recording ``years`` older (its dates and its window), as a year would: through
    camdock's catalog, so the custody chain has the rows' new state (an edit with any other tool
    is what the audit finds)."""
    db = open_catalog(catalog)
    with write_txn(db):
        found = db.execute("SELECT id, recorded_start, duty_slot_start FROM recordings").fetchall()
        for rec_id, *times in found:
            older = [
                datetime.fromisoformat(t).replace(year=datetime.fromisoformat(t).year - years)
                for t in times
            ]
            db.execute(
                "UPDATE recordings SET recorded_start = ?, duty_slot_start = ?, retain_until = "
                "date(retain_until, ?), destroy_by = date(destroy_by, ?) WHERE id = ?",
                (older[0].isoformat(), older[1].isoformat(), f"-{years} year", f"-{years} year",
                 rec_id),
            )  # fmt: skip
    db.close()


def _approved_list(base: list[str], by: str, approver: str, *more: str) -> int:
    """A destruction list proposed by ``by`` and approved by ``approver`` (issue 27); ``more``:
    e.g. ``--recording ID``. Its proposer may not approve it (recorded)."""
    made = run(camdock_cmd("retention", "propose", "--by", by, "--json", *more, *base))
    assert made.returncode == 0, made.stderr
    list_id = int(json.loads(made.stdout)["list"]["id"])
    own = run(camdock_cmd("retention", "approve", str(list_id), "--by", by, *base))
    assert own.returncode == ExitCode.NOPERM and "they proposed" in own.stderr
    ok = run(camdock_cmd("retention", "approve", str(list_id), "--by", approver, *base))
    assert ok.returncode == 0, ok.stderr
    return list_id


def test_commands_hold_plan_destroy_from_a_bare_catalog(tmp_path: Path) -> None:
    d1, d2, catalog = tmp_path / "footage", tmp_path / "backup", tmp_path / "c.db"
    d1.mkdir(), d2.mkdir()
    ids = _ingest(tmp_path, d1, d2, catalog)
    base = ["--catalog", str(catalog)]
    a0 = ids["CAM0001"][0]
    young = run(camdock_cmd("retention", "propose", "--recording", str(a0), "--by", "c1", *base))
    assert young.returncode == ExitCode.NOPERM and "kept until" in young.stderr
    nobody = run(camdock_cmd("retention", "destroy", *base))
    assert nobody.returncode == ExitCode.USAGE and "--by" in nobody.stderr
    unknown = run(camdock_cmd("retention", "propose", "--recording", "999", "--by", "c", *base))
    assert unknown.returncode == ExitCode.NOINPUT
    held = run(
        camdock_cmd(
            "hold",
            "place",
            "--recording",
            str(a0),
            "--kind",
            "investigation",
            "--case",
            "刑 1",
            "--reason",
            "r",
            "--by",
            "偵查員 林",
            "--json",
            *base,
        )
    )
    assert held.returncode == 0, held.stderr
    hold = json.loads(held.stdout)
    # A bare catalog without staff: acted on directly, by an unverified actor (issue 27).
    assert hold["hold"]["placed_by"] == "偵查員 林 (unverified actor)"
    assert "unverified actor" in hold["note"]
    expired = run(camdock_cmd("hold", "place", "--recording", str(a0), "--kind", "complaint",
                              "--case", "c", "--reason", "r", "--review-by", "2020-01-01",
                              "--by", "s", *base))  # fmt: skip
    assert expired.returncode == ExitCode.USAGE and "past its review date" in expired.stderr
    noscope = run(
        camdock_cmd(
            "hold",
            "place",
            "--kind",
            "complaint",
            "--case",
            "c",
            "--reason",
            "r",
            "--by",
            "s",
            *base,
        )
    )
    assert noscope.returncode == ExitCode.USAGE and "scope" in noscope.stderr
    _age(catalog)
    planned = run(camdock_cmd("retention", "plan", "--json", *base))
    assert planned.returncode == 0, planned.stderr
    p = json.loads(planned.stdout)
    assert len(p["due"]) == 5 and [h["recording"] for h in p["held"]] == [a0]
    assert p["overdue"] and any("past their destruction date" in a for a in p["alarms"])
    # REG-4.3.1, issue 27: no destruction without an approved list; the attempt is recorded.
    unlisted = run(camdock_cmd("retention", "destroy", "--by", "保管人 陳", *base))
    assert unlisted.returncode == ExitCode.NOPERM and "approved destruction list" in unlisted.stderr
    listed_id = _approved_list(base, "保管人 陳", "分局長 王")
    gone = run(camdock_cmd("retention", "execute", "--list", str(listed_id), "--by", "保管人 陳",
                           "--json", *base))  # fmt: skip
    assert gone.returncode == 0, gone.stderr
    out = json.loads(gone.stdout)
    assert len(out["destroyed"]) == 5 and out["by"] == "保管人 陳 (unverified actor)"
    assert (
        out["list"]["state"] == "executed"
        and out["list"]["approved_by"] == "分局長 王 (unverified actor)"
    )
    again_list = run(camdock_cmd("retention", "execute", "--list", str(listed_id), "--by",
                                 "保管人 陳", *base))  # fmt: skip
    assert again_list.returncode == ExitCode.NOPERM and "already executed" in again_list.stderr
    conn = sqlite3.connect(catalog)
    said = [json.loads(d) for (d,) in conn.execute(
        "SELECT details FROM custody_log WHERE action = 'refused' ORDER BY id")]  # fmt: skip
    conn.close()
    assert [d["attempted"] for d in said].count("destroy") == 2  # unlisted, executed twice
    assert all(not (d / x["path"]).exists() for x in out["destroyed"] for d in (d1, d2))
    listed = json.loads(run(camdock_cmd("hold", "list", "--json", *base)).stdout)
    assert [h["id"] for h in listed["holds"]] == [hold["hold"]["id"]]
    rel = run(
        camdock_cmd(
            "hold", "release", str(hold["hold"]["id"]), "--reason", "結案", "--by", "s2", *base
        )
    )
    assert rel.returncode == 0, rel.stderr
    again = run(
        camdock_cmd(
            "hold", "release", str(hold["hold"]["id"]), "--reason", "x", "--by", "s2", *base
        )
    )
    assert again.returncode == ExitCode.NOPERM
    assert "released by s2 (unverified actor)" in again.stderr
    assert run(camdock_cmd("audit", "--catalog", str(catalog))).returncode == 0
    for r in (young, nobody, unknown, noscope, again, expired):
        assert "Traceback" not in r.stderr


# ---------------------------------------------------------------------------------------------
# Crash safety


@pytest.mark.slow
def test_sigkill_during_destruction_leaves_nothing_half_recorded(tmp_path: Path) -> None:
    d1, d2, catalog = tmp_path / "footage", tmp_path / "backup", tmp_path / "c.db"
    d1.mkdir(), d2.mkdir()
    cam = tmp_path / "cam"
    make_camera(cam, 150, size=2048, seed=5)
    assert offload(cam, [d1, d2], catalog).ok
    _age(catalog)
    rng = random.Random(7)
    list_id = _approved_list(["--catalog", str(catalog)], "custodian-1", "approver-1")
    args = ("retention", "execute", "--list", str(list_id), "--resume", "--by", "custodian-1",
            "--catalog", str(catalog))  # fmt: skip
    kills, midway = 0, 0
    for _ in range(8):
        # Killed once it has destroyed some (read from the catalog as it goes), at a random
        # moment after that: inside a copy's removal, between copies, or mid-commit.
        proc = subprocess.Popen(
            camdock_cmd(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        start = _destroyed(catalog)
        target = start + rng.randint(1, 12)
        while proc.poll() is None and _destroyed(catalog) < target:
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.01))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        left = _check_destruction_state(catalog, d1, d2)
        midway += 0 < left < 150
    final = run(camdock_cmd(*args))
    assert final.returncode == 0, final.stderr
    _check_destruction_state(catalog, d1, d2)
    conn = sqlite3.connect(catalog)
    assert conn.execute(
        "SELECT count(*) FROM recordings WHERE destroyed_at IS NULL"
    ).fetchone() == (0,)
    per = conn.execute(
        "SELECT recording_id, count(*) FROM custody_log WHERE action = 'destroy' "
        "GROUP BY recording_id"
    ).fetchall()
    assert len(per) == 150 and all(n == 1 for _, n in per)
    conn.close()
    assert not [p for d in (d1, d2) for p in d.rglob("*.mp4")]
    assert run(camdock_cmd("audit", "--catalog", str(catalog))).returncode == 0
    assert kills >= 4 and midway >= 4  # killed with part of the work done, then resumed


def _destroyed(catalog: Path) -> int:
    conn = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True, timeout=5)
    try:
        return int(
            conn.execute(
                "SELECT count(*) FROM recordings WHERE destroyed_at IS NOT NULL"
            ).fetchone()[0]
        )
    finally:
        conn.close()


def _check_destruction_state(catalog: Path, d1: Path, d2: Path) -> int:
    """After any kill: a live recording not being destroyed has both copies; a destroyed one
    has none and its custody entry; one being destroyed has its intent chained; the chain is
    intact. Returns how many are left."""
    db = open_catalog(catalog)
    try:
        planned = {
            r[0]
            for r in db.execute("SELECT recording_id FROM destructions WHERE state = 'planned'")
        }
        for rec_id, relpath, destroyed in db.execute(
            "SELECT id, relpath, destroyed_at FROM recordings"
        ).fetchall():
            there = [(d / relpath).exists() for d in (d1, d2)]
            if destroyed:
                assert there == [False, False], relpath
            elif rec_id not in planned:
                assert there == [True, True], relpath
        # live → destroying → destroyed (issue 28): every destruction begun has its intent on
        # the chain, committed before its first copy went.
        started = {
            json.loads(r[0])["destruction"]
            for r in db.execute("SELECT details FROM custody_log WHERE action = 'destroy-start'")
        }
        begun = {r[0] for r in db.execute("SELECT id FROM destructions")}
        assert begun <= started
        assert custody.verify(db) == []
        return int(
            db.execute("SELECT count(*) FROM recordings WHERE destroyed_at IS NULL").fetchone()[0]
        )
    finally:
        db.close()


# ---------------------------------------------------------------------------------------------
# The catalog outlives the SD card (REG-4.3.2)


def test_the_sd_card_dies_and_the_catalog_comes_back_from_a_drive(tmp_path: Path) -> None:
    d1, d2 = tmp_path / "footage", tmp_path / "backup"
    catalog = tmp_path / "sd" / "catalog.sqlite"
    d1.mkdir(), d2.mkdir()
    ids = _ingest(tmp_path, d1, d2, catalog)
    base = ["--catalog", str(catalog)]
    made = []
    for _ in range(3):  # generations; the newest on d1 will be damaged
        out = run(camdock_cmd("catalog", "backup", "--to", str(d1), "--to", str(d2), "--json",
                              *base))  # fmt: skip
        assert out.returncode == 0, out.stderr
        made.append(json.loads(out.stdout)["backups"])
    gens = sorted((d1 / "camdock-catalog").glob("catalog-*.sqlite"))
    assert len(gens) == 3 and all(
        run(["sha256sum", "-c", g.name + ".sha256"], cwd=g.parent).returncode == 0 for g in gens
    )
    db = open_catalog(catalog)
    before = db.execute("SELECT id, sha256, relpath FROM recordings ORDER BY id").fetchall()
    custody_before = db.execute("SELECT count(*) FROM custody_log").fetchone()[0]
    db.close()

    # The SD card dies: catalog, WAL and all.
    shutil.rmtree(catalog.parent)
    with open(gens[-1], "r+b") as f:  # and the newest backup on the footage drive is damaged
        f.seek(4096)
        f.write(b"\xff" * 512)
    restored = run(camdock_cmd("catalog", "restore", "--from", str(d1), "--by", "技術員 張",
                               "--json", *base))  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    doc = json.loads(restored.stdout)
    assert doc["restored_from"] == str(gens[-2]) and "SHA-256" in doc["passed_over"][0]
    assert doc["recordings"] == len(before) and doc["problems"] == []
    db = open_catalog(catalog)
    assert db.execute("SELECT id, sha256, relpath FROM recordings ORDER BY id").fetchall() == before
    [(actor,)] = db.execute("SELECT actor FROM custody_log WHERE action = 'catalog-restore'")
    assert actor == "技術員 張 (unverified actor)"  # a bare catalog (issue 27)
    assert db.execute("SELECT count(*) FROM custody_log").fetchone()[0] == custody_before + 1
    db.close()
    # The restored station goes on: a recording from before the card died can be destroyed.
    assert run(camdock_cmd("audit", *base)).returncode == 0
    again = run(camdock_cmd("catalog", "restore", "--from", str(d2), "--by", "x", *base))
    assert again.returncode == ExitCode.CANTCREAT and "never overwrites" in again.stderr
    replaced = run(camdock_cmd("catalog", "restore", "--from", str(d2), "--by", "x",
                               "--replace", *base))  # fmt: skip
    assert replaced.returncode == 0, replaced.stderr
    assert list(catalog.parent.glob("catalog.sqlite.replaced-*"))
    assert ids


def test_backups_keep_their_generations_and_a_missing_drive_is_an_alarm(tmp_path: Path) -> None:
    from camdock.services import backup
    from camdock.services.retention import backup_everywhere

    d1, d2, catalog = tmp_path / "footage", tmp_path / "backup", tmp_path / "c.db"
    d1.mkdir(), d2.mkdir()
    _ingest(tmp_path, d1, d2, catalog)
    db = open_catalog(catalog)
    for _ in range(4):
        backup.write(db, d1, 2)
    assert len(backup.generations(d1)) == 2
    assert len(list((d1 / "camdock-catalog").glob("*.sha256"))) == 2
    alarms: list[str] = []
    keep = Keeping(roots=frozenset({str(d1), str(tmp_path / "unplugged" / "x")}), topics=TOPICS)
    made = backup_everywhere(db, catalog, keep, alarms)
    assert len(made) == 1 and len(alarms) == 1 and "unplugged" in alarms[0]
    kinds = [r[0] for r in db.execute("SELECT type FROM outbox ORDER BY id")]
    assert kinds[-2:] == ["catalog-backup-failed", "catalog-backed-up"] or set(kinds[-2:]) == {
        "catalog-backup-failed",
        "catalog-backed-up",
    }
    db.close()


@needs_root
def test_a_full_backup_drive_is_the_backup_s_problem_not_the_catalog_s(tmp_path: Path) -> None:
    """REG-4.3.2: a drive too full for the catalog's backup is an alarm naming that drive; the
    catalog is fine and no half-written backup stays behind."""
    d1, d2, catalog = tmp_path / "footage", tmp_path / "backup", tmp_path / "c.db"
    d1.mkdir(), d2.mkdir()
    _ingest(tmp_path, d1, d2, catalog)
    with tmpfs(tmp_path / "full", "64k") as full:
        out = run(camdock_cmd("catalog", "backup", "--to", str(full), "--catalog", str(catalog),
                              "--json"))  # fmt: skip
        doc = json.loads(out.stdout)
        assert out.returncode == ExitCode.IOERR and not doc["ok"]
        assert str(full) in doc["problems"][0] and "full" in doc["problems"][0]
        assert not [p for p in full.rglob("*.sqlite*") if p.is_file()]  # (the heads file fits)
    assert run(camdock_cmd("audit", "--catalog", str(catalog))).returncode == 0


def test_a_month_counts_from_when_the_recording_was_made_not_its_duty_day(
    tmp_path: Path,
) -> None:
    """REG-4.3.1 by the calendar (issue 28): a recording made at 01:30 on 1 March in a
    22:00-06:00 slot is filed under 28 February, but its month counts from 1 March: kept until
    1 April, and destroying it on 30 or 31 March is refused."""
    from camdock.core.naming import DutySlots

    d1, d2, catalog = tmp_path / "footage", tmp_path / "backup", tmp_path / "c.db"
    d1.mkdir(), d2.mkdir()
    cam = tmp_path / "cam"
    write_recording(cam / "DCIM/100MEDIA/20260301_013000_0001.MP4", 8192, 1)
    night = DutySlots.parse("06:00,14:00,22:00")
    assert offload(cam, [d1, d2], catalog, slots=night).ok
    db = open_catalog(catalog)
    [rec] = [r for r in (recordings.get(db, i) for i in range(1, 3)) if r]
    assert rec.relpath.startswith("2026/02/28/"), "filed under the duty day (REG-4.2.3)"
    assert (rec.retain_until, rec.destroy_by) == ("2026-04-01", "2027-03-01")
    keep = Keeping(Policy(), roots=frozenset({str(d1), str(d2)}), topics=TOPICS)
    for early in (date(2026, 3, 30), date(2026, 3, 31)):
        with pytest.raises(Refused, match="2026-04-01"):
            destroy(db, keep, early, "custodian-1", recordings=[rec.id])
    [done] = destroy(db, keep, date(2026, 4, 1), "custodian-1", recordings=[rec.id])
    assert done.recording == rec.id
    db.close()


def test_the_calendar_rule_at_month_ends_never_keeps_less_than_a_month_or_more_than_a_year() -> (
    None
):
    """Where the later month has no such day the minimum rounds up, the maximum down
    (core/retention.py): 31 Jan is kept until 1 Mar (30 days would be 2 Mar: the policy's days
    keep longer), 29 Feb 2028 at most until 28 Feb 2029."""
    assert add_months(date(2026, 1, 31), 1, round_up=True) == date(2026, 3, 1)
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2028, 2, 29), 12) == date(2029, 2, 28)
    assert Policy(min_days=30).window(date(2026, 3, 1)) == (date(2026, 4, 1), date(2027, 3, 1))
    assert Policy(min_days=30).window(date(2026, 1, 30)) == (date(2026, 3, 1), date(2027, 1, 30))
    assert Policy(min_days=30).window(date(2028, 2, 29))[1] == date(2029, 2, 28)
    for day in (date(2026, 1, d) for d in range(1, 32)):
        keep, due = Policy().window(day)
        assert add_months(day, 1, round_up=True) <= keep and due <= add_months(day, 12)


def test_a_lawful_destruction_just_after_local_midnight_is_not_reported_early(
    tmp_path: Path,
) -> None:
    """The six-monthly report compares days in the station's zone (issue 28): a recording made
    on 1 Mar may go from 1 Apr; destroyed at 00:10 Taipei on 1 Apr (16:10 UTC on 31 Mar) it was
    not destroyed early."""
    from camdock import clock
    from camdock.services.audit import period_report

    d1, d2, catalog = tmp_path / "footage", tmp_path / "backup", tmp_path / "c.db"
    d1.mkdir(), d2.mkdir()
    cam = tmp_path / "cam"
    write_recording(cam / "DCIM/100MEDIA/20260301_101000_0001.MP4", 8192, 1)
    assert offload(cam, [d1, d2], catalog).ok
    db = open_catalog(catalog)
    keep = Keeping(Policy(), roots=frozenset({str(d1), str(d2)}), topics=TOPICS)
    assert recordings.get(db, 1).retain_until == "2026-04-01"  # type: ignore[union-attr]
    with clock.using(clock.FixedClock(datetime(2026, 4, 1, 0, 10, tzinfo=TZ))):
        destroy(db, keep, date(2026, 4, 1), "custodian-1", recordings=[1])
    doc = period_report(db, TZ, date(2026, 1, 1), date(2026, 6, 30), date(2026, 7, 1), [], [],
                        None, False)  # fmt: skip
    db.close()
    assert doc["retention"]["destroyed"] == 1
    assert doc["retention"]["destroyed_early"] == []


def test_a_hold_matches_recordings_by_their_own_span_and_cameras_by_one_identity(
    tmp_path: Path,
) -> None:
    """Hold scopes (issue 28): a hold on CAM0002 08:00-12:00 keeps the 09:00 recording, not
    the 15:00 one (a duty slot starting at 12:00 is not the recording's time); the camera
    named by its USB serial is the same camera; an unknown badge or camera is refused; a hold
    that matches nothing yet says so."""
    d1, d2, catalog = tmp_path / "footage", tmp_path / "backup", tmp_path / "c.db"
    d1.mkdir(), d2.mkdir()
    cam = tmp_path / "cam"
    write_recording(cam / "DCIM/100MEDIA/20261128_090000_0001.MP4", 4096, 1)
    write_recording(cam / "DCIM/100MEDIA/20261128_150000_0002.MP4", 4096, 2)
    assert offload(cam, [d1, d2], catalog, camera_id="CAM0002").ok
    keep = Keeping(Policy(), roots=frozenset({str(d1), str(d2)}), topics=TOPICS,
                   cameras={"SN0002": "CAM0002"}, badges=frozenset({"A12345"}))  # fmt: skip
    db = open_catalog(catalog)
    morning = (datetime(2026, 11, 28, 8, tzinfo=TZ), datetime(2026, 11, 28, 12, tzinfo=TZ))
    hold = place_hold(db, keep, "detective-9", kind=HoldKind.INVESTIGATION, case="刑 1",
                      reason="r", camera="SN0002", start=morning[0], end=morning[1])  # fmt: skip
    [h] = [h for h in in_force(db) if h.id == hold]
    assert h.camera_id == "CAM0002"
    by_time = {r.recorded_start[11:16]: r.id for r in (recordings.get(db, i) for i in (1, 2)) if r}
    year_on = date(2027, 11, 29)
    result = plan_for(db, year_on)
    assert [c.id for c, _ in result.held] == [by_time["09:00"]]
    assert by_time["15:00"] in [c.id for c in result.due]
    assert covered_now(db, hold) == 1
    with pytest.raises(CamdockError, match="A99999X"):
        place_hold(db, keep, "s", kind=HoldKind.COMPLAINT, case="c", reason="r",
                   officer="A99999X")  # fmt: skip
    with pytest.raises(CamdockError, match="SN9999"):
        place_hold(db, keep, "s", kind=HoldKind.COMPLAINT, case="c", reason="r", camera="SN9999")
    later = place_hold(db, keep, "s", kind=HoldKind.COMPLAINT, case="c", reason="r",
                       officer="A12345", start=datetime(2026, 12, 1, tzinfo=TZ))  # fmt: skip
    assert covered_now(db, later) == 0
    db.close()
