"""The verified offload engine on real files (REG-4.1.2, REG-4.2.1–4.2.4, REG-4.2.6)."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from camdock.errors import ExitCode, OffloadRefused
from camdock.events import FileStarted, Progress
from conftest import (
    IS_ROOT,
    camdock_cmd,
    make_camera,
    offload,
    offload_args,
    run,
    sha_of,
    tmpfs,
    tree_hashes,
    write_recording,
)

EX_USAGE, EX_NOINPUT, EX_CANTCREAT = ExitCode.USAGE, ExitCode.NOINPUT, ExitCode.CANTCREAT


def grow_while_read(victim: Path) -> Callable[[Progress], None]:
    """A progress hook that appends to ``victim`` as soon as the engine starts reading it: a
    file still being written (or tampered with)."""

    def grow(event: Progress) -> None:
        if isinstance(event, FileStarted) and event.source.endswith(victim.name):
            with open(victim, "ab") as f:
                f.write(b"more footage")

    return grow


def catalog_rows(catalog: Path, sql: str) -> list[dict[str, Any]]:
    con = sqlite3.connect(catalog)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql)]
    finally:
        con.close()


def no_temp_files(*roots: Path) -> bool:
    return not [p for r in roots for p in r.rglob(".camdock-*")]


def test_offload_verifies_every_copy_then_clears(station: dict[str, Path]) -> None:
    """REG-4.1.2 + REG-4.2.6: two verified copies, catalogued, then the camera is cleared."""
    cam, d1, d2, catalog = station["cam"], station["d1"], station["d2"], station["catalog"]
    originals = make_camera(cam, 5)
    report = offload(cam, [d1, d2], catalog)
    assert report.ok, report.as_json()
    assert all(f.status == "verified" and f.cleared for f in report.files)
    assert tree_hashes(cam) == {}  # every recording cleared
    stored1, stored2 = tree_hashes(d1), tree_hashes(d2)
    assert stored1 == stored2
    assert sorted(stored1.values()) == sorted(originals.values())
    # REG-4.2.3: YYYY/MM/DD folders; REG-4.2.4: slot and officer in the name
    assert all(
        p.startswith("2026/11/28/20261128_") and "_王小明_A12345_CAM0001_" in p for p in stored1
    )
    recs = catalog_rows(catalog, "SELECT * FROM recordings")
    assert len(recs) == 5
    for r in recs:
        assert r["cleared_at"] and r["ingested_at"] and r["retain_until"] and r["destroy_by"]
        assert r["officer_name"] == "王小明" and r["unit"] == "Zhongzheng 1st Precinct"
        assert r["time_source"] == "name" and r["duty_slot"] in ("0800-1200",)
        assert stored1[r["relpath"]] == r["sha256"]
    copies = catalog_rows(catalog, "SELECT * FROM copies")
    assert {c["destination"] for c in copies} == {str(d1.resolve()), str(d2.resolve())}
    assert len(copies) == 10
    sessions = catalog_rows(catalog, "SELECT * FROM offload_sessions")
    assert [s["status"] for s in sessions] == ["completed"]
    assert sessions[0]["files_cleared"] == 5
    assert no_temp_files(d1, d2)


def test_rerun_is_idempotent_and_never_duplicates(station: dict[str, Path]) -> None:
    cam, d1, d2, catalog = station["cam"], station["d1"], station["d2"], station["catalog"]
    originals = make_camera(cam, 4)
    first = offload(cam, [d1, d2], catalog, clear=False)
    assert first.ok and not any(f.cleared for f in first.files)
    assert {k: v for k, v in tree_hashes(cam).items()} == originals  # nothing cleared
    before = tree_hashes(d1)

    again = offload(cam, [d1, d2], catalog, clear=False)
    assert again.ok
    assert [f.status for f in again.files] == ["already-catalogued"] * 4
    assert tree_hashes(d1) == before and tree_hashes(d2) == before
    assert len(catalog_rows(catalog, "SELECT * FROM recordings")) == 4

    cleared = offload(cam, [d1, d2], catalog, clear=True)
    assert cleared.ok and all(f.cleared for f in cleared.files)
    assert tree_hashes(cam) == {} and tree_hashes(d1) == before
    assert all(r["cleared_at"] for r in catalog_rows(catalog, "SELECT * FROM recordings"))


def test_destination_added_later_gets_the_same_names(station: dict[str, Path]) -> None:
    cam, d1, d2, catalog = station["cam"], station["d1"], station["d2"], station["catalog"]
    make_camera(cam, 3)
    assert offload(cam, [d1], catalog, clear=False).ok
    report = offload(cam, [d1, d2], catalog, clear=True)
    assert report.ok
    assert tree_hashes(d1) == tree_hashes(d2)
    assert len(catalog_rows(catalog, "SELECT * FROM copies")) == 6


def test_same_content_twice_is_one_recording(station: dict[str, Path]) -> None:
    cam, d1, d2, catalog = station["cam"], station["d1"], station["d2"], station["catalog"]
    write_recording(cam / "20261128_090000.MP4", 5000, seed=7)
    write_recording(cam / "copy" / "20261128_090000.MP4", 5000, seed=7)
    report = offload(cam, [d1, d2], catalog)
    assert report.ok
    assert sorted(f.status for f in report.files) == ["already-catalogued", "verified"]
    assert tree_hashes(cam) == {}
    assert len(catalog_rows(catalog, "SELECT * FROM recordings")) == 1


def test_same_second_recordings_get_distinct_names(station: dict[str, Path]) -> None:
    cam, d1, d2, catalog = station["cam"], station["d1"], station["d2"], station["catalog"]
    write_recording(cam / "A" / "20261128_090000.MP4", 5000, seed=1)
    write_recording(cam / "B" / "20261128_090000.MP4", 5000, seed=2)
    assert offload(cam, [d1, d2], catalog).ok
    names = sorted(Path(p).name for p in tree_hashes(d1))
    assert names == [
        "20261128_0800-1200_王小明_A12345_CAM0001_090000.mp4",
        "20261128_0800-1200_王小明_A12345_CAM0001_090000_2.mp4",
    ]


def test_hostile_camera_filesystem(station: dict[str, Path], tmp_path: Path) -> None:
    """Invariant 5: symlinks, FIFOs, sockets are skipped, never followed; odd names survive;
    nothing is written outside the destination roots."""
    cam, d1, d2, catalog = station["cam"], station["d1"], station["d2"], station["catalog"]
    secret = tmp_path / "outside" / "secret.mp4"
    write_recording(secret, 1000, seed=99)
    outside = tmp_path / "outside"
    os.symlink(secret, cam / "link.mp4")
    os.symlink(outside, cam / "DCIM")  # a directory symlink pointing out of the camera
    os.symlink("../../outside", cam / "dotdot.mp4")
    os.mkfifo(cam / "fifo.mp4")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(cam / "sock.mp4"))
    odd = {
        b"new\nline_20261128_101010.mp4": 1,
        b"bad\xff\xfeutf8.mp4": 2,
        b"-rf --no-preserve-root.mp4": 3,
        b"x" * 251 + b".mp4": 4,
        "中文檔名_20261128_111111.MP4".encode(): 5,
    }
    for raw, seed in odd.items():
        write_recording(Path(os.fsdecode(os.fsencode(str(cam)) + b"/" + raw)), 3000 + seed, seed)
    outside_before = tree_hashes(outside)

    report = offload(cam, [d1, d2], catalog)
    sock.close()
    assert report.ok, report.as_json()
    assert len(report.files) == len(odd)
    assert all(f.cleared for f in report.files)
    reasons = {s.path: s.reason for s in report.skipped}
    assert "symlink" in reasons["link.mp4"] and "symlink" in reasons["DCIM"]
    assert "FIFO" in reasons["fifo.mp4"] and "socket" in reasons["sock.mp4"]
    assert "bad\\xff\\xfeutf8.mp4" in {f.source for f in report.files}
    assert "new\\nline_20261128_101010.mp4" in {f.source for f in report.files}
    # Untouched: the link targets, and the links themselves.
    assert tree_hashes(outside) == outside_before
    assert (cam / "link.mp4").is_symlink() and stat.S_ISFIFO(os.lstat(cam / "fifo.mp4").st_mode)
    # Nothing but footage, in YYYY/MM/DD, in the destinations.
    for p in d1.rglob("*"):
        rel = p.relative_to(d1)
        assert len(rel.parts) <= 4 and not p.is_symlink()
    assert len(tree_hashes(d1)) == len(odd)
    # The original bytes of every name are in the catalog.
    raws = {
        bytes(r["original_name_raw"]) for r in catalog_rows(catalog, "SELECT * FROM recordings")
    }
    assert raws == set(odd)


@pytest.mark.skipif(not IS_ROOT, reason="mknod needs root")
def test_device_nodes_are_never_opened(station: dict[str, Path]) -> None:
    cam, d1, d2, catalog = station["cam"], station["d1"], station["d2"], station["catalog"]
    os.mknod(cam / "zero.mp4", 0o600 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero: endless
    write_recording(cam / "20261128_090000.MP4", 100, 1)
    report = offload(cam, [d1, d2], catalog)
    assert report.ok and len(report.files) == 1
    assert "device node" in report.skipped[0].reason


def test_file_changing_while_read_is_not_cleared(station: dict[str, Path]) -> None:
    """A file still being written (or tampered with) fails and stays on the camera."""
    cam, d1, d2, catalog = station["cam"], station["d1"], station["d2"], station["catalog"]
    make_camera(cam, 3, size=2 << 20)
    victim = sorted(cam.rglob("*.MP4"))[1]
    report = offload(cam, [d1, d2], catalog, progress=grow_while_read(victim))
    assert not report.ok
    failed = [f for f in report.files if not f.verified]
    assert [f.source.split("/")[-1] for f in failed] == [victim.name]
    assert "changed while being read" in (failed[0].error or "")
    assert victim.exists() and victim.read_bytes().endswith(b"more footage")
    assert len(tree_hashes(cam)) == 1 and len(tree_hashes(d1)) == 2
    assert no_temp_files(d1, d2)
    # A re-run once the file is stable takes it.
    assert offload(cam, [d1, d2], catalog).ok
    assert tree_hashes(cam) == {}


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("dest-in-source", EX_USAGE),
        ("source-in-dest", EX_USAGE),
        ("same-dest-twice", EX_USAGE),
        ("missing-source", EX_NOINPUT),
        ("missing-dest", EX_CANTCREAT),
        ("source-is-file", EX_NOINPUT),
        ("empty-officer", EX_USAGE),
    ],
)
def test_refused_before_anything_is_written(station: dict[str, Path], case: str, code: int) -> None:
    cam, d1, d2, catalog = station["cam"], station["d1"], station["d2"], station["catalog"]
    originals = make_camera(cam, 2)
    src, dests, extra = cam, [d1, d2], {}
    if case == "dest-in-source":
        (cam / "out").mkdir()
        dests = [d1, cam / "out"]
    elif case == "source-in-dest":
        src = d1 / "cam"
        make_camera(src, 1)
    elif case == "same-dest-twice":
        os.symlink(d1, d1.parent / "alias")
        dests = [d1, d1.parent / "alias"]
    elif case == "missing-source":
        src = cam / "nope"
    elif case == "missing-dest":
        dests = [d1, d2 / "nope"]
    elif case == "source-is-file":
        src = next(cam.rglob("*.MP4"))
    elif case == "empty-officer":
        extra = {"officer_name": " "}
    with pytest.raises(OffloadRefused) as err:
        offload(src, dests, catalog, **extra)
    assert err.value.exit_code == code
    assert tree_hashes(cam) == originals
    assert tree_hashes(d2) == {} and not catalog.exists()


def test_read_only_destination_is_refused(station: dict[str, Path]) -> None:
    cam, d1, d2, catalog = station["cam"], station["d1"], station["d2"], station["catalog"]
    originals = make_camera(cam, 2)
    if IS_ROOT:
        ctx = tmpfs(d2, "1m", "ro")  # root ignores mode bits; a read-only mount it cannot
    else:
        d2.chmod(0o555)
        ctx = None
    try:
        if ctx:
            ctx.__enter__()
        with pytest.raises(OffloadRefused, match="not writable") as err:
            offload(cam, [d1, d2], catalog)
        assert err.value.exit_code == EX_CANTCREAT
    finally:
        if ctx:
            ctx.__exit__(None, None, None)
        d2.chmod(0o755)
    assert tree_hashes(cam) == originals and tree_hashes(d1) == {}


def test_cli_json_summary_and_exit_status(station: dict[str, Path]) -> None:
    cam, d1, d2, catalog = station["cam"], station["d1"], station["d2"], station["catalog"]
    originals = make_camera(cam, 2)
    args = offload_args(
        cam, [d1, d2], catalog, "--clear", "--allow-one-filesystem", "--json", "--tz", "Asia/Taipei"
    )
    res = run(camdock_cmd(*args))
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert (
        summary["ok"] and summary["totals"]["verified"] == 2 and summary["totals"]["cleared"] == 2
    )
    for f in summary["files"]:
        assert f["verified"] and f["cleared"] and f["sha256"] in originals.values()
        assert set(f["destinations"]) == {str(d1.resolve()), str(d2.resolve())}
        for path in f["destinations"].values():
            assert sha_of(Path(path)) == f["sha256"]
    assert summary["seconds"] >= 0 and "mb_per_s" in summary

    res = run(camdock_cmd(*[a if a != str(d2) else str(d2 / "gone") for a in args]))
    assert res.returncode == EX_CANTCREAT
    assert "gone" in res.stderr and "not a directory" in res.stderr
    res = run(
        camdock_cmd(
            "offload",
            str(cam),
            "--to",
            str(d1),
            "--camera",
            "C",
            "--officer",
            "o",
            "--badge",
            "b",
            "--slots",
            "25:00",
            "--catalog",
            str(catalog),
        )
    )
    assert res.returncode == EX_USAGE and "25:00" in res.stderr


@pytest.mark.skipif(not IS_ROOT, reason="drops capabilities with setpriv; needs root")
def test_unreadable_camera_file_fails_and_stays(tmp_path: Path) -> None:
    """An unreadable recording is reported, not cleared; the others still go through."""
    cam, d1, d2 = tmp_path / "cam", tmp_path / "d1", tmp_path / "d2"
    for d in (cam, d1, d2):
        d.mkdir()
    make_camera(cam, 2)
    locked = sorted(cam.rglob("*.MP4"))[0]
    locked.chmod(0)
    # Still uid 0 (so the interpreter is reachable wherever the checkout lives), but without the
    # capabilities that let root ignore permission bits: the mode-000 file is unreadable.
    no_dac = "-dac_override,-dac_read_search"
    res = run(
        [
            "setpriv",
            f"--inh-caps={no_dac}",
            f"--bounding-set={no_dac}",
            *camdock_cmd(
                *offload_args(
                    cam,
                    [d1, d2],
                    tmp_path / "state" / "c.sqlite",
                    "--clear",
                    "--allow-one-filesystem",
                    "--json",
                    officer="o",
                    badge="b",
                )
            ),
        ]
    )
    assert res.returncode == 1, res.stderr
    summary = json.loads(res.stdout)
    bad = [f for f in summary["files"] if not f["verified"]]
    assert len(bad) == 1 and "Permission denied" in bad[0]["error"]
    assert locked.exists() and summary["totals"]["cleared"] == 1


def test_a_filing_that_could_not_be_completed_is_in_the_duty_log(
    station: dict[str, Path],
) -> None:
    """REG-4.2.7: the officer, the camera, what failed and what stayed on the camera."""
    cam, d1, d2, catalog = station["cam"], station["d1"], station["d2"], station["catalog"]
    make_camera(cam, 3, size=2 << 20)
    victim = sorted(cam.rglob("*.MP4"))[1]
    report = offload(cam, [d1, d2], catalog, progress=grow_while_read(victim))
    assert not report.ok and report.left_on_camera == 1
    [entry] = catalog_rows(catalog, "SELECT * FROM duty_log")
    assert (entry["officer_badge"], entry["officer_name"], entry["camera_id"]) == (
        "A12345",
        "王小明",
        "CAM0001",
    )
    assert "REG-4.2.7" in entry["entry"] and "changed while being read" in entry["entry"]
    assert "2 of 3 recordings filed; 1 stayed on the camera" in entry["entry"]
    # A complete filing writes no entry.
    make_camera(cam, 2, seed=5)
    assert offload(cam, [d1, d2], catalog).ok
    assert len(catalog_rows(catalog, "SELECT * FROM duty_log")) == 1


def test_files_are_planned_and_copied_in_batches(
    station: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory stays flat in the file count (issue 11): plans and copy jobs live per batch. The
    outcome is the same as one big batch, journal and catalog included."""
    from camdock.offload import engine as offload_mod

    monkeypatch.setattr(offload_mod, "PLAN_BATCH", 2)
    cam, d1, d2, catalog = station["cam"], station["d1"], station["d2"], station["catalog"]
    make_camera(cam, 5)
    report = offload(cam, [d1, d2], catalog)
    assert report.ok and len(report.files) == 5 and all(f.cleared for f in report.files)
    assert len(catalog_rows(catalog, "SELECT * FROM recordings")) == 5
    assert len(catalog_rows(catalog, "SELECT * FROM offload_files")) == 5


def test_a_camera_file_is_found_in_the_catalog_by_an_index(station: dict[str, Path]) -> None:
    """A re-run looks each camera file up by camera and name: without an index that scanned
    the whole catalog per file (20,000 files: 45 s became 219 s)."""
    cam, d1, catalog = station["cam"], station["d1"], station["catalog"]
    make_camera(cam, 1)
    offload(cam, [d1], catalog, clear=False)
    con = sqlite3.connect(catalog)
    try:
        plan = con.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM recordings WHERE camera_id = ? "
            "AND original_name_raw = ? AND size = ? AND source_mtime_ns = ?",
            ("CAM0001", b"x", 1, 1),
        ).fetchall()
    finally:
        con.close()
    assert any("original_name_raw" in str(row[-1]) for row in plan), plan
