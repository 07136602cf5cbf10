"""Invariant 3: SIGKILL a real `camdock offload --clear` at random moments, re-run, repeat.

After every kill: every original byte is either still on the camera or verified in every
destination and catalogued; no final-named file is partial; the catalog matches the disks.
After the last re-run: the camera is empty and each recording is stored exactly once.
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from camdock.adapters import manifest
from conftest import camdock_cmd, offload_args, sha_of, write_recording

KILLS = 20
FILES_PER_BATCH = 30


def _batch(cam: Path, batch: int, originals: dict[str, str]) -> None:
    rng = random.Random(batch)
    for n in range(FILES_PER_BATCH):
        hhmmss = f"{(batch * 7 + n // 60) % 24:02d}{n % 60:02d}{batch % 60:02d}"
        name = f"DCIM/{100 + batch}MEDIA/20261128_{hhmmss}_{n:04d}.MP4"
        originals[name] = write_recording(
            cam / name, rng.randint(100_000, 3_000_000), batch * 1000 + n
        )


_hashes: dict[tuple[str, int, int], str] = {}


def _sha(p: Path) -> str:
    """Final-named files never change once written, so hash each only once per test run."""
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key not in _hashes:
        _hashes[key] = sha_of(p)
    return _hashes[key]


def _check(cam: Path, dests: list[Path], catalog: Path, originals: dict[str, str]) -> int:
    """Every invariant that must hold after any kill; returns how many are safely offloaded."""
    known = set(originals.values())
    stored: list[dict[str, str]] = []
    for d in dests:
        files = {}
        for p in d.rglob("*"):
            if p.is_file():
                if p.name.startswith(".camdock-"):
                    assert p.name.endswith(".part")  # a temp name, never mistaken for footage
                    continue
                if not _footage(p):
                    continue
                sha = _sha(p)
                assert sha in known, f"final-named file {p} is not a complete recording"
                files[str(p.relative_to(d))] = sha
        stored.append(files)
    con = sqlite3.connect(catalog)
    try:
        recs = {sha: rel for sha, rel in con.execute("SELECT sha256, relpath FROM recordings")}
        copies = set(
            con.execute(
                "SELECT r.sha256, c.destination FROM copies c "
                "JOIN recordings r ON r.id = c.recording_id"
            )
        )
    finally:
        con.close()
    for sha, rel in recs.items():  # the catalog never claims what the disks do not hold
        for d, files in zip(dests, stored, strict=True):
            if (sha, str(d.resolve())) in copies:
                assert files.get(rel) == sha
    safe = 0
    for name, sha in originals.items():
        on_camera = (cam / name).exists()
        if on_camera:
            assert sha_of(cam / name) == sha  # the camera copy is untouched
            continue
        # Gone from the camera: it must be verified in every destination and catalogued.
        assert sha in recs, f"{name} left the camera but is not catalogued"
        for d, files in zip(dests, stored, strict=True):
            assert files.get(recs[sha]) == sha and (sha, str(d.resolve())) in copies
        safe += 1
    return safe


def _footage(p: Path) -> bool:
    """A file on a drive that is footage (or its temp): not a day's manifests, not camdock's
    own records (catalog backups, heads, the journal: issue 28)."""
    return p.is_file() and p.name not in manifest.NAMES and "camdock-catalog" not in p.parts


def _progress(cam: Path, dests: list[Path]) -> tuple[int, int, int]:
    """(files on the camera, final-named files stored, temp files)."""
    stored = [p for d in dests for p in d.rglob("*") if _footage(p)]
    temps = sum(p.name.startswith(".camdock-") for p in stored)
    return sum(p.is_file() for p in cam.rglob("*")), len(stored) - temps, temps


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    seed = int(os.environ.get("CAMDOCK_CRASH_SEED", time.time_ns() % 100_000))
    print(f"crash test seed {seed} (CAMDOCK_CRASH_SEED={seed} to repeat)")
    rng = random.Random(seed)
    cam, d1, d2 = tmp_path / "cam", tmp_path / "footage", tmp_path / "backup"
    catalog = tmp_path / "state" / "catalog.sqlite"
    for d in (d1, d2):
        d.mkdir()
    originals: dict[str, str] = {}
    batch = 0
    _batch(cam, batch, originals)
    args = offload_args(
        cam, [d1, d2], catalog, "--clear", "--allow-one-filesystem", "--tz", "Asia/Taipei"
    )
    # How long one whole run takes on this machine, so the kills land anywhere inside one.
    scratch = tmp_path / "scratch"
    _batch(scratch / "cam", 99, {})
    for d in ("d1", "d2"):
        (scratch / d).mkdir()
    t0 = time.monotonic()
    subprocess.run(
        camdock_cmd(
            "offload",
            str(scratch / "cam"),
            "--to",
            str(scratch / "d1"),
            "--to",
            str(scratch / "d2"),
            "--camera",
            "X",
            "--officer",
            "o",
            "--badge",
            "b",
            "--catalog",
            str(scratch / "c.sqlite"),
            "--clear",
            "--allow-one-filesystem",
        ),
        check=True,
        capture_output=True,
    )
    full = time.monotonic() - t0
    kills = finished = mid_work = 0
    while kills < KILLS:
        before = _progress(cam, [d1, d2])
        proc = subprocess.Popen(
            camdock_cmd(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            _, err = proc.communicate(timeout=rng.uniform(0.1, full))
            assert proc.returncode == 0, err.decode()
            finished += 1
        except subprocess.TimeoutExpired:
            proc.kill()  # SIGKILL: no handler, no cleanup
            proc.communicate()
            kills += 1
            # A kill that left temp files, or after which the run had stored or cleared something
            # without finishing, landed mid-offload rather than during interpreter start-up.
            after = _progress(cam, [d1, d2])
            mid_work += after[2] > 0 or after[:2] != before[:2]
        if catalog.exists():
            _check(cam, [d1, d2], catalog, originals)
        if not any(p.is_file() for p in cam.rglob("*")):
            batch += 1
            _batch(cam, batch, originals)

    final = subprocess.run(camdock_cmd(*args), capture_output=True, text=True, check=False)
    assert final.returncode == 0, final.stderr
    assert _check(cam, [d1, d2], catalog, originals) == len(originals)
    assert not [p for p in cam.rglob("*") if p.is_file()]
    for d in (d1, d2):
        files = [p for p in d.rglob("*") if _footage(p)]
        assert not [p for p in files if p.name.startswith(".camdock-")], "stale temp files"
        assert sorted(sha_of(p) for p in files) == sorted(originals.values())  # exactly once
    con = sqlite3.connect(catalog)
    try:
        assert con.execute(
            "SELECT count(*) FROM recordings WHERE cleared_at IS NULL"
        ).fetchone() == (0,)
        statuses = dict(
            con.execute("SELECT status, count(*) FROM offload_sessions GROUP BY status")
        )
    finally:
        con.close()
    assert statuses.get("running") is None
    # REG-7.1: the custody chain survived every kill, and covers every store and clear.
    audit = subprocess.run(
        [*camdock_cmd("audit", "--catalog", str(catalog))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert audit.returncode == 0, audit.stdout
    assert statuses.get("interrupted", 0) >= 1
    print(
        f"{kills} kills over runs of {full:.2f} s ({mid_work} mid-offload), {finished} runs "
        f"finished between kills, {len(originals)} recordings"
    )
    # The kills must really hit the copy/verify/clear phases, not only interpreter start-up.
    assert mid_work >= KILLS // 4
