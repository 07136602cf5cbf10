"""A catalog that comes back whole (issue 28 item 5; REG-4.3.2, REG-7.1): the day manifests
beside the footage on both drives, the journal of holds and register lines, and
``camdock catalog restore`` bringing back what a day-old backup lacks."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from camdock.adapters import manifest
from camdock.catalog import journal, open_catalog
from camdock.catalog.db import rows
from camdock.core.retention import HoldKind
from camdock.services import backup
from camdock.services import retention as service
from camdock.services.retention import Keeping
from conftest import camdock_cmd, offload, write_recording

SHA = "a" * 64


def _line(root: Path, rel: str, sha: str = SHA, rec: int = 1) -> None:
    manifest.record_stored(
        root,
        rel,
        sha256=sha,
        xxh3_128="b" * 32,
        recording_id=rec,
        recording={"size": 3, "camera_id": "CAM0001"},
        head=(4, "c" * 64),
    )


# --- the manifest format ---------------------------------------------------------------------


def test_manifest_is_checked_by_sha256sum(tmp_path: Path) -> None:
    """REG-7.1: an auditor checks a day with a standard tool, `sha256sum -c`."""
    rel = "2026/11/28/20261128_0800-1200_王小明_A12345_CAM0001_080000.mp4"
    sha = write_recording(tmp_path / rel, 1000, 1)
    _line(tmp_path, rel, sha)
    day = tmp_path / "2026/11/28"
    done = subprocess.run(
        ["sha256sum", "-c", manifest.SUMS], cwd=day, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    line = json.loads((day / manifest.HISTORY).read_text().splitlines()[0])
    assert line["head"] == [4, "c" * 64] and line["xxh3_128"] == "b" * 32


def test_a_torn_last_line_is_ignored_and_the_next_append_parses(tmp_path: Path) -> None:
    rel = "2026/11/28/a.mp4"
    _line(tmp_path, rel)
    history = tmp_path / "2026/11/28" / manifest.HISTORY
    with open(history, "ab") as f:
        f.write(b'{"v":1,"op":"store","relpath":"2026/11/28/b.mp4","sha2')  # the crash
    m = manifest.read(tmp_path)
    assert list(m.live()) == [rel] and m.ignored == ["2026/11/28/manifest.jsonl:2: torn last line"]
    _line(tmp_path, "2026/11/28/c.mp4", rec=3)
    m = manifest.read(tmp_path)
    assert sorted(m.live()) == [rel, "2026/11/28/c.mp4"]
    assert m.ignored == ["2026/11/28/manifest.jsonl:2: not a manifest line"]


def test_a_destroyed_file_leaves_a_tombstone_not_a_gap(tmp_path: Path) -> None:
    """REG-4.3.1: history is kept; the sums file lists only what is in place."""
    _line(tmp_path, "2026/11/28/a.mp4")
    assert manifest.ensure_removed(
        tmp_path,
        "2026/11/28/a.mp4",
        reason="destroyed",
        recording_id=1,
        head=(9, "d" * 64),
        by="保管人 陳",
    )
    assert not manifest.ensure_removed(
        tmp_path, "2026/11/28/a.mp4", reason="destroyed", recording_id=1, head=None
    )  # a re-run: said once
    m = manifest.read(tmp_path)
    assert [ln.data["op"] for ln in m.lines] == ["store", "remove"]
    assert m.live() == {} and m.removed()["2026/11/28/a.mp4"].data["by"] == "保管人 陳"
    assert (tmp_path / "2026/11/28" / manifest.SUMS).read_text() == ""


def test_a_refiling_moves_the_line_between_folders(tmp_path: Path) -> None:
    old, new = "2026/11/28/unattributed/a.mp4", "2026/11/28/b.mp4"
    _line(tmp_path, old)
    manifest.ensure_stored(
        tmp_path,
        new,
        sha256=SHA,
        xxh3_128=None,
        recording_id=1,
        recording={},
        head=None,
        refiled_from=old,
    )
    manifest.record_removed(tmp_path, old, reason="refiled", recording_id=1, head=None, to=new)
    live = manifest.read(tmp_path).live()
    assert list(live) == [new] and live[new].data["from"] == old
    sums = (tmp_path / "2026/11/28" / manifest.SUMS).read_text()
    assert sums == f"{SHA}  b.mp4\n"


# --- a simulated week, and the SD card killed -------------------------------------------------


def _camera(root: Path, day: int, count: int, seed: int) -> None:
    for n in range(count):
        name = f"DCIM/100MEDIA/202611{day:02d}_{9 + n:02d}1500_{n:04d}.MP4"
        write_recording(root / name, 20_000 + 991 * n, seed * 100 + n)


RecordingFacts = tuple[Any, ...]


def _facts(catalog: Path) -> tuple[dict[int, RecordingFacts], list[RecordingFacts], set[Any]]:
    db = open_catalog(catalog)
    try:
        recs = {
            r["id"]: (
                r["sha256"],
                r["size"],
                r["officer_name"],
                r["officer_badge"],
                r["camera_id"],
                r["recorded_start"],
                r["recorded_end"],
                r["relpath"],
                r["duty_slot"],
                r["retain_until"],
                r["destroy_by"],
            )
            for r in rows(db, "SELECT * FROM recordings")
        }
        held = [
            (
                h["id"],
                h["kind"],
                h["case_ref"] if "case_ref" in h else h.get("case"),
                h["released_at"],
            )
            for h in rows(db, "SELECT * FROM holds ORDER BY id")
        ]
        copies = {
            (c["recording_id"], c["destination"], c["relpath"])
            for c in rows(db, "SELECT * FROM copies")
        }
    finally:
        db.close()
    return recs, held, copies


def _kill_card(catalog: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{catalog}{suffix}").unlink(missing_ok=True)


def _restore(catalog: Path, drive: Path, *extra: str) -> dict[str, Any]:
    done = subprocess.run(
        camdock_cmd(
            "catalog",
            "restore",
            "--from",
            str(drive),
            "--catalog",
            str(catalog),
            "--by",
            "技術員 張",
            "--json",
            *extra,
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.stdout, done.stderr
    return dict(json.loads(done.stdout))


def _audit(catalog: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        camdock_cmd("audit", "--catalog", str(catalog), "--full", "--json"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return list(json.loads(done.stdout)["findings"])


def _week(tmp_path: Path, seed: int) -> tuple[Path, list[Path], Path, int]:
    """Five days of dockings, holds placed and released, the daily backup; the card dies
    after a random step past the first backup. Returns (catalog, drives, cameras, kill step)."""
    rng = random.Random(seed)
    drives = [tmp_path / "footage", tmp_path / "backup"]
    for d in drives:
        d.mkdir()
    catalog = tmp_path / "sd" / "catalog.sqlite"
    keeping = Keeping()
    steps: list[Any] = []
    for day in range(23, 28):
        cam = tmp_path / f"cam{day}"

        def dock(day: int = day, cam: Path = cam) -> None:
            _camera(cam, day, 2 + day % 3, day)
            report = offload(cam, drives, catalog, camera_id=f"CAM000{day % 3 + 1}")
            assert all(f.status == "verified" for f in report.files)

        def hold(day: int = day) -> None:
            db = open_catalog(catalog)
            try:
                newest = max(r["id"] for r in rows(db, "SELECT id FROM recordings"))
                service.place_hold(
                    db,
                    keeping,
                    "偵查員 林",
                    kind=HoldKind.INVESTIGATION,
                    case=f"刑案 {day}",
                    reason="assault",
                    recording=newest,
                )
                if day % 2:
                    first = min(
                        h["id"] for h in rows(db, "SELECT id FROM holds WHERE released_at IS NULL")
                    )
                    service.release_hold(db, keeping, first, "督察 王", "case closed")
            finally:
                db.close()

        def back_up() -> None:
            db = open_catalog(catalog)
            try:
                for d in drives:
                    backup.write(db, d, 14)
            finally:
                db.close()

        steps += [dock, hold, back_up]
    kill_after = rng.randrange(3, len(steps))  # after the first backup at the earliest
    for step in steps[: kill_after + 1]:
        step()
    return catalog, drives, tmp_path, kill_after


@pytest.mark.parametrize("seed", [4, 9, 13])  # killed after a docking, a hold, a hold
def test_a_week_comes_back_whole_after_the_card_dies(tmp_path: Path, seed: int) -> None:
    """REG-4.3.2: every recording on the drives, every hold, back in the catalog; nothing
    missing or extra for the audit; a second run changes nothing."""
    catalog, drives, _tmp, _killed = _week(tmp_path, seed)
    recs, held, copies = _facts(catalog)
    _kill_card(catalog)
    doc = _restore(catalog, drives[1])
    assert doc["reconciled"]["not_restored"] == [], doc
    assert doc["reconciled"]["recordings"] or doc["reconciled"]["acts"]  # the backup was behind
    assert doc["problems"] == [], doc["problems"]
    recs2, held2, copies2 = _facts(catalog)
    assert recs2 == recs
    assert held2 == held
    assert copies2 == copies
    assert [f for f in _audit(catalog) if f["kind"] in ("missing", "extra")] == []
    again = _restore(catalog, drives[0], "--reconcile-only")
    assert again["reconciled"] == {
        "recordings": [],
        "copies": [],
        "acts": [],
        "register": [],
        "not_restored": [],
        "ignored": [],
    }
    assert _facts(catalog) == (recs, held, copies)


def test_what_cannot_come_back_is_named(tmp_path: Path) -> None:
    """A file no manifest vouches for, a file whose bytes changed, a line without its file."""
    catalog, drives, _tmp, _k = _week(tmp_path, 3)
    recs, _held, _copies = _facts(catalog)
    db = open_catalog(catalog)
    try:
        for d in drives:
            backup.write(db, d, 14)
    finally:
        db.close()
    cam = tmp_path / "late"
    _camera(cam, 28, 3, 99)
    offload(cam, drives, catalog, camera_id="CAM0003")
    recs_after, _h, _c = _facts(catalog)
    late = sorted(set(recs_after) - set(recs))
    stray = drives[0] / "2026/11/28/stray.mp4"
    write_recording(stray, 500, 5)
    changed = [drives[0] / recs_after[late[0]][7], drives[1] / recs_after[late[0]][7]]
    for p in changed:
        p.write_bytes(b"tampered" + p.read_bytes()[8:])
    gone = recs_after[late[1]][7]
    for d in drives:
        (d / gone).unlink()
    _kill_card(catalog)
    doc = _restore(catalog, drives[0])
    names = "\n".join(doc["reconciled"]["not_restored"])
    assert str(stray) in names and "no manifest line" in names
    assert all(str(p) in names for p in changed) and "match no manifest line" in names
    assert f"{gone} is on no drive" in names
    assert [r["path"] for r in doc["reconciled"]["recordings"]] == [recs_after[late[2]][7]]
    assert not doc["ok"]


@pytest.mark.slow
def test_a_sigkill_mid_offload_then_the_card_dies(tmp_path: Path) -> None:
    """Invariant 3 with the catalog lost as well: the files a killed offload put in place and
    described come back; the rest are still on the camera, and docking again files them."""
    drives = [tmp_path / "footage", tmp_path / "backup"]
    for d in drives:
        d.mkdir()
    catalog = tmp_path / "sd" / "catalog.sqlite"
    _camera(tmp_path / "cam0", 26, 2, 1)
    offload(tmp_path / "cam0", drives, catalog)
    db = open_catalog(catalog)
    try:
        for d in drives:
            backup.write(db, d, 14)
    finally:
        db.close()
    cam = tmp_path / "cam"
    for n in range(40):
        name = f"DCIM/100MEDIA/20261127_{9 + n // 60:02d}{n % 60:02d}00_{n:04d}.MP4"
        write_recording(cam / name, 1_500_000, 500 + n)
    args = [
        str(cam),
        *[a for d in drives for a in ("--to", str(d))],
        "--camera",
        "CAM0002",
        "--officer",
        "王小明",
        "--badge",
        "A12345",
        "--catalog",
        str(catalog),
        "--clear",
        "--allow-one-filesystem",
    ]
    proc = subprocess.Popen(
        camdock_cmd("offload", *args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    day = drives[1] / "2026/11/27" / manifest.HISTORY
    deadline = time.monotonic() + 60
    want = random.Random(11).randrange(3, 15)
    while time.monotonic() < deadline and proc.poll() is None:
        if day.exists() and day.read_bytes().count(b"\n") >= want:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the offload ended before it could be killed"
    _kill_card(catalog)
    doc = _restore(catalog, drives[0])
    # Killed between the catalog's commit and the manifest line (README: what restore cannot
    # bring back), one file may be in place on each drive and named by nothing: listed by name,
    # still on the camera (not cleared), and filed by docking again below.
    stray = doc["reconciled"]["not_restored"]
    assert len(stray) <= 2 and all("no manifest line names it" in s for s in stray), stray
    back = len(doc["reconciled"]["recordings"])
    assert back >= want - 1
    # Dock the camera again: what it still holds is filed; nothing is duplicated.
    subprocess.run(camdock_cmd("offload", *args), capture_output=True, timeout=300, check=False)
    recs, _held, copies = _facts(catalog)
    assert len(recs) == 42 and len({r[0] for r in recs.values()}) == 42
    assert len(copies) == 84
    assert [f for f in _audit(catalog) if f["kind"] in ("missing", "extra")] == []
    assert not list((cam / "DCIM/100MEDIA").iterdir())


def test_a_hold_is_journaled_on_both_drives(tmp_path: Path) -> None:
    """REG-4.3.1: a hold placed is a line on each drive, with the row it left."""
    drives = [tmp_path / "a", tmp_path / "b"]
    for d in drives:
        d.mkdir()
    catalog = tmp_path / "catalog.sqlite"
    _camera(tmp_path / "cam", 26, 1, 1)
    offload(tmp_path / "cam", drives, catalog)
    db = open_catalog(catalog)
    try:
        service.place_hold(
            db,
            Keeping(),
            "偵查員 林",
            kind=HoldKind.COMPLAINT,
            case="陳情 1",
            reason="r",
            recording=1,
        )
    finally:
        db.close()
    for d in drives:
        lines, ignored = journal.read(d)
        assert len(lines) == 1 and not ignored
        (entry,) = lines[0].data["entries"]
        assert entry["action"] == "hold-place"
        assert any(s["table"] == "holds" for s in entry["rows"])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
