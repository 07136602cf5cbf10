"""The custodian's side of attribution (REG-4.2.4): the unattributed queue, re-filing a recording
under its officer (both copies, verified, custody entry naming who decided), crash recovery of a
re-filing; and ``camdock offload --config`` filing as the station does."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from zoneinfo import ZoneInfo

from camdock import clock
from camdock.catalog import custody, open_catalog, recordings, refiles
from camdock.core.attribution import Attribution
from camdock.errors import ExitCode
from camdock.services.attribute import finish_pending
from conftest import camdock_cmd, make_camera, offload, offload_args, run, tree_hashes
from stationcfg import write_config


def _pool_offload(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A pool camera nobody is assigned: its footage lands in the unattributed queue."""
    cam, d1, d2, catalog = tmp_path / "cam", tmp_path / "d1", tmp_path / "d2", tmp_path / "c.db"
    d1.mkdir(), d2.mkdir()
    make_camera(cam, 2)
    report = offload(cam, [d1, d2], catalog, camera_id="POOL01",
                     attribution=Attribution("POOL01", ()))  # fmt: skip
    assert report.ok and all(f.cleared for f in report.files)  # nothing stays on the camera
    return d1, d2, catalog


def test_the_queue_and_refiling_both_copies_under_the_officer(tmp_path: Path) -> None:
    d1, d2, catalog = _pool_offload(tmp_path)
    listed = run(camdock_cmd("attribute", "--list", "--catalog", str(catalog), "--json"))
    assert listed.returncode == 0, listed.stderr
    queue = json.loads(listed.stdout)["unattributed"]
    assert len(queue) == 2 and all("/unattributed/" in r["relpath"] for r in queue)
    rec = queue[0]["id"]
    args = ["attribute", str(rec), "--officer", "A12345", "--name", "王小明", "--by", "custodian-7"]
    done = run(camdock_cmd(*args, "--catalog", str(catalog), "--json"))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["by"] == "custodian-7 (unverified actor)" and "unverified actor" in out["note"]
    new = out["new_path"]
    assert "_王小明_A12345_POOL01_" in new and "/unattributed/" not in new
    for d in (d1, d2):
        assert (d / new).is_file() and not (d / out["old_path"]).exists()
    db = open_catalog(catalog)
    try:
        row = recordings.get(db, rec)
        assert row is not None and (row.officer_badge, row.attribution) == (
            "A12345",
            "manual",
        )
        assert {c.relpath for c in recordings.copies(db, rec).values()} == {new}
        assert custody.verify(db) == []
        [entry] = db.execute(
            "SELECT actor, details FROM custody_log WHERE action = 'attribute'"
        ).fetchall()
        assert entry[0] == "custodian-7 (unverified actor)"  # a bare catalog (issue 27)
        assert json.loads(entry[1])["new_path"] == new
    finally:
        db.close()
    assert len(json.loads(run(camdock_cmd("attribute", "--list", "--catalog", str(catalog),
                                          "--json")).stdout)["unattributed"]) == 1  # fmt: skip
    assert run(camdock_cmd("audit", "--catalog", str(catalog))).returncode == 0


def test_refusals_are_clear(tmp_path: Path) -> None:
    _, _, catalog = _pool_offload(tmp_path)
    base = ["attribute", "--catalog", str(catalog)]
    unknown = run(camdock_cmd(*base, "999", "--officer", "A1", "--name", "x", "--by", "c"))
    assert unknown.returncode == ExitCode.NOINPUT and "no recording 999" in unknown.stderr
    nobody = run(camdock_cmd(*base, "1", "--officer", "A1", "--name", "x"))
    assert nobody.returncode == ExitCode.USAGE and "--by" in nobody.stderr
    blank = run(camdock_cmd(*base, "1", "--officer", "A1", "--name", "x", "--by", " "))
    assert blank.returncode == ExitCode.USAGE
    missing = run(camdock_cmd("attribute", "--list", "--catalog", str(tmp_path / "none.db")))
    assert missing.returncode == ExitCode.NOINPUT and "no catalog" in missing.stderr
    assert "Traceback" not in unknown.stderr + nobody.stderr + blank.stderr + missing.stderr


def test_an_interrupted_refiling_is_finished_or_undone(tmp_path: Path) -> None:
    """A crash after the new links, before the catalog: the links go. A crash after the catalog,
    before the old names went: the old names go. Either way one complete, catalogued name. The
    owner is a process of an earlier boot: gone."""
    d1, d2, catalog = _pool_offload(tmp_path)
    gone = refiles.Owner("an-earlier-boot", os.getpid(), 1)
    db = open_catalog(catalog)
    try:
        first, second = (r.id for r in recordings.unattributed(db))
        planned = recordings.get(db, first)
        assert planned is not None
        new = "2026/11/28/new-name.mp4"
        refiles.plan(db, first, planned.relpath, new, badge="b", owner=gone, actor="c")
        for d in (d1, d2):
            os.link(d / planned.relpath, d / new)  # linked, then the power went
        linked = recordings.get(db, second)
        assert linked is not None
        later = "2026/11/28/later.mp4"
        refile = refiles.plan(db, second, linked.relpath, later, badge="b", owner=gone, actor="c")
        for d in (d1, d2):
            os.link(d / linked.relpath, d / later)
        refiles.record_attribution(
            db, refile_id=refile, owner=gone, recording_id=second, old=linked.relpath,
            officer={"name": "n", "badge": "b", "unit": "u"}, actor="c", details={},
        )  # fmt: skip
        assert finish_pending(db) == 2
        assert refiles.pending(db) == []
    finally:
        db.close()
    for d in (d1, d2):
        assert not (d / new).exists() and (d / planned.relpath).is_file()
        assert (d / later).is_file() and not (d / linked.relpath).exists()


def test_offload_with_the_station_config_files_as_the_station(tmp_path: Path) -> None:
    """One filing policy (REG-4.2.3/4): the config's slots, zone, registry and officers."""
    cfg = write_config(tmp_path)
    cam = tmp_path / "cam"
    make_camera(cam, 2)
    refused = run(camdock_cmd("offload", str(cam), "--config", str(cfg), "--camera", "NOPE"))
    assert refused.returncode == ExitCode.USAGE and "not registered" in refused.stderr
    res = run(camdock_cmd("offload", str(cam), "--config", str(cfg), "--camera", "CAM0001",
                          "--clear", "--json"))  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["filing"]["slots"] == "00:00,08:00,16:00"
    assert out["filing"]["timezone"] == "Asia/Taipei" and "config" in out["filing"]["from"]
    paths = [next(iter(f["destinations"].values())) for f in out["files"]]
    assert all("20261128_0800-1600_王小明_A12345_CAM0001_" in p for p in paths)
    assert tree_hashes(tmp_path / "footage") and tree_hashes(cam) == {}
    con = sqlite3.connect(tmp_path / "state" / "catalog.sqlite")
    try:
        kinds = {t for (t,) in con.execute("SELECT type FROM outbox")}
    finally:
        con.close()
    assert {"offload-started", "file-verified", "offload-completed"} <= kinds


def test_offload_without_a_config_says_which_grid_and_zone(tmp_path: Path) -> None:
    cam, d1, catalog = tmp_path / "cam", tmp_path / "d1", tmp_path / "c.db"
    make_camera(cam, 1)
    d1.mkdir()
    res = run(camdock_cmd(*offload_args(cam, [d1], catalog, "--json", "--tz", "UTC")))
    assert res.returncode == 0, res.stderr
    filing = json.loads(res.stdout)["filing"]
    assert filing["slots"] == "00:00,04:00,08:00,12:00,16:00,20:00"
    assert filing["timezone"] == "UTC" and "command line" in filing["from"]


def test_offload_with_the_config_refuses_no_clock_and_files_by_the_dock(tmp_path: Path) -> None:
    """A recording dated before the camera's registration is a wrong clock (REG-4.2.3): filed
    by the dock's duty day, the camera's time kept and flagged; a pool camera's footage is
    unattributed, by `camdock offload --config` exactly as by the daemon."""
    extra = '\n[[cameras]]\nserial = "POOL1"\nid = "POOL01"\nregistered = 2026-11-28\n'
    cfg = write_config(tmp_path, extra)
    cam = tmp_path / "cam"
    (cam / "DCIM").mkdir(parents=True)
    (cam / "DCIM" / "20261101_090000_0001.MP4").write_bytes(b"before registration" * 100)
    make_camera(cam, 1)  # 2026-11-28 08:00: fine
    res = run(camdock_cmd("offload", str(cam), "--config", str(cfg), "--camera", "POOL01",
                          "--clear", "--json"))  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert any("before the camera was registered" in w for w in out["warnings"])
    paths = sorted(next(iter(f["destinations"].values())) for f in out["files"])
    today = clock.now().astimezone(ZoneInfo("Asia/Taipei"))
    assert any(f"/{today:%Y/%m/%d}/unattributed/" in p and p.endswith("_090000.mp4") for p in paths)
    assert any("/2026/11/28/unattributed/" in p for p in paths)
