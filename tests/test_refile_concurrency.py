"""Re-filing under concurrency and SIGKILL (issue 26 item 2, invariant 11; REG-4.2.4, REG-7.1):
custodians attributing at once, in threads and in processes, lose nothing; the second of two
identical attributions is refused with who did it first and when, recorded once; a process
killed at any instant leaves every recording complete on each drive under its catalogued name
once recovery ran. Real files, real processes, the real catalog."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from camdock.catalog import custody, open_catalog, recordings, refiles
from camdock.core.attribution import Attribution
from camdock.errors import Conflict, ExitCode
from camdock.model import Officer
from camdock.services.attribute import attribute_recording, finish_pending
from camdock.services.audit import fixity
from conftest import camdock_cmd, make_camera, offload, run
from stationtime import at_station_time

COUNT = 88  # more than the 85 of the report
OFFICER = Officer("A12345", "王小明", "Zhongzheng 1st Precinct")

# One attributor in its own process: opens the catalog, says ready, waits for "go" on stdin
# (the start line every attributor crosses at once), then attributes its recordings in order.
DRIVER = """
import json, sys
from camdock.catalog import open_catalog
from camdock.errors import Conflict
from camdock.model import Officer
from camdock.services.attribute import attribute_recording
catalog, by, ids = sys.argv[1], sys.argv[2], [int(i) for i in sys.argv[3].split(",") if i]
db = open_catalog(catalog)
print("ready", flush=True)
sys.stdin.readline()
for i in ids:
    try:
        attribute_recording(db, i, Officer("A12345", "王小明", "Zhongzheng 1st Precinct"), by)
        print(json.dumps([i, "ok"]), flush=True)
    except Conflict as exc:
        print(json.dumps([i, str(exc)]), flush=True)
"""


def _pool(tmp_path: Path, count: int = COUNT) -> tuple[list[Path], Path, list[int]]:
    """A pool camera's footage, all of it in the unattributed queue."""
    cam, d1, d2, catalog = tmp_path / "cam", tmp_path / "d1", tmp_path / "d2", tmp_path / "c.db"
    d1.mkdir(), d2.mkdir()
    make_camera(cam, count, size=2048)
    report = offload(cam, [d1, d2], catalog, camera_id="POOL01",
                     attribution=Attribution("POOL01", ()))  # fmt: skip
    assert report.ok
    db = open_catalog(catalog)
    try:
        ids = [r.id for r in recordings.unattributed(db)]
    finally:
        db.close()
    assert len(ids) == count
    return [d1, d2], catalog, ids


def _assert_whole(catalog: Path, roots: list[Path], count: int) -> None:
    """Every recording complete on both drives under its catalogued name with the catalogued
    hash, nothing else there, nothing pending, and the custody log intact and agreeing with
    the catalog: each attributed recording's last 'attribute' entry names where it is."""
    db = open_catalog(catalog)
    try:
        findings, proven = fixity(db, [str(r) for r in roots], None)
        assert findings == [], [str(f) for f in findings]
        assert proven == 2 * count
        assert refiles.pending(db) == []
        assert custody.verify(db) == []
        entries = db.execute(
            "SELECT recording_id, details FROM custody_log WHERE action = 'attribute' ORDER BY id"
        ).fetchall()
        last = {rec: json.loads(d)["new_path"] for rec, d in entries}
        for rec, path in last.items():
            row = recordings.get(db, rec)
            assert row is not None and row.relpath == path and row.attribution == "manual"
        manual = db.execute("SELECT count(*) FROM recordings WHERE attribution = 'manual'")
        assert manual.fetchone()[0] == len(last)
    finally:
        db.close()


def _attributed(catalog: Path) -> int:
    db = open_catalog(catalog)
    try:
        return int(
            db.execute("SELECT count(*) FROM recordings WHERE attribution = 'manual'").fetchone()[0]
        )
    finally:
        db.close()


@pytest.mark.slow
@pytest.mark.parametrize("n", [2, 4, 8])
def test_concurrent_attributors_in_threads_lose_nothing(tmp_path: Path, n: int) -> None:
    roots, catalog, ids = _pool(tmp_path)
    start = threading.Barrier(n)
    errors: list[BaseException] = []

    def attributor(k: int) -> None:
        db = open_catalog(catalog)  # a connection of its own, as each console worker has
        try:
            start.wait()
            for rec in ids[k::n]:
                attribute_recording(db, rec, OFFICER, f"custodian-{k}")
        except BaseException as exc:  # noqa: BLE001 - reported below, by the test's thread
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=attributor, args=(k,), name=f"c{k}") for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _attributed(catalog) == COUNT
    _assert_whole(catalog, roots, COUNT)


def _driver(catalog: Path, by: str, ids: list[int]) -> subprocess.Popen[str]:
    argv = at_station_time([sys.executable, "-c", DRIVER, str(catalog), by,
                            ",".join(map(str, ids))])  # fmt: skip
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n", proc.stderr.read() if proc.stderr else ""
    return proc


def _go(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()


@pytest.mark.slow
@pytest.mark.parametrize("n", [2, 4, 8])
def test_concurrent_attributors_in_processes_lose_nothing(tmp_path: Path, n: int) -> None:
    roots, catalog, ids = _pool(tmp_path)
    procs = [_driver(catalog, f"custodian-{k}", ids[k::n]) for k in range(n)]
    _go(procs)
    for p in procs:
        out, err = p.communicate()
        assert p.returncode == 0, err
        assert all(json.loads(line)[1] == "ok" for line in out.splitlines())
    assert _attributed(catalog) == COUNT
    _assert_whole(catalog, roots, COUNT)


def _refusals(catalog: Path) -> list[dict[str, object]]:
    db = open_catalog(catalog)
    try:
        found = db.execute("SELECT details FROM custody_log WHERE action = 'refused'")
        return [json.loads(d) for (d,) in found.fetchall()]
    finally:
        db.close()


def test_two_custodians_on_the_same_recording_one_wins(tmp_path: Path) -> None:
    """Both press 歸屬 on the same recording at once, over and over: each time exactly one
    re-files it; the other is told who did it first (and when), recorded once as a refusal."""
    roots, catalog, ids = _pool(tmp_path, 12)
    start = threading.Barrier(2, timeout=120)  # a guard against a hang, not a timing check
    outcomes: dict[str, list[object]] = {"a": [], "b": []}

    def custodian(who: str) -> None:
        db = open_catalog(catalog)
        try:
            for rec in ids:
                start.wait()
                try:
                    outcomes[who].append(attribute_recording(db, rec, OFFICER, who).new_relpath)
                except Exception as exc:  # noqa: BLE001 - anything but a Conflict fails below
                    outcomes[who].append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=custodian, args=(w,)) for w in outcomes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(outcomes["a"], outcomes["b"], strict=True):
        assert [isinstance(x, Conflict) for x in (a, b)].count(True) == 1, (a, b)
        lost, won = (a, "b") if isinstance(a, Conflict) else (b, "a")
        assert f" by {won} " in str(lost), lost  # who did it first …
        assert " at 2026-" in str(lost) or " (since 2026-" in str(lost), lost  # … and when
    refused = _refusals(catalog)
    assert len(refused) == len(ids)
    assert sorted(r["recording"] for r in refused) == sorted(ids)  # type: ignore[type-var]
    assert _attributed(catalog) == len(ids)
    _assert_whole(catalog, roots, len(ids))


def test_the_second_attribute_command_is_refused_with_who_and_when(tmp_path: Path) -> None:
    """The command as a custodian runs it: the second is a conflict (no traceback), naming the
    first custodian, with one refusal in the custody log."""
    roots, catalog, ids = _pool(tmp_path, 2)
    args = ["attribute", str(ids[0]), "--officer", "A12345", "--name", "王小明",
            "--catalog", str(catalog)]  # fmt: skip
    first = run(camdock_cmd(*args, "--by", "custodian-1"))
    assert first.returncode == 0, first.stderr
    second = run(camdock_cmd(*args, "--by", "custodian-2"))
    assert second.returncode == ExitCode.NOPERM, second.stderr
    assert "already attributed to A12345 by custodian-1 at " in second.stderr
    assert "Traceback" not in second.stderr
    [refusal] = _refusals(catalog)
    assert refusal["recording"] == ids[0] and refusal["attempted"] == "attribute"
    _assert_whole(catalog, roots, 2)


def test_recovery_leaves_a_live_refiling_alone(tmp_path: Path) -> None:
    """A re-filing owned by a running process (this one, or another) is not recovery's; one
    whose process is gone (a pid reused by a later process) is."""
    roots, catalog, ids = _pool(tmp_path, 2)
    db = open_catalog(catalog)
    try:
        rec = recordings.get(db, ids[0])
        assert rec is not None
        live = refiles.Owner(*_identity())
        refile = refiles.plan(db, rec.id, rec.relpath, "2026/11/28/x.mp4", badge="b",
                              owner=live, actor="c")  # fmt: skip
        for r in roots:
            os.link(r / rec.relpath, r / "2026/11/28/x.mp4")
        assert finish_pending(db) == 0  # ours, alive: untouched
        assert all((r / "2026/11/28/x.mp4").is_file() for r in roots)
        reused = refiles.Owner(live.boot, live.pid, (live.start or 0) - 1)  # same pid, earlier
        db.execute("UPDATE refiles SET owner_start = ? WHERE id = ?", (reused.start, refile))
        assert finish_pending(db) == 1
    finally:
        db.close()
    assert not any((r / "2026/11/28/x.mp4").exists() for r in roots)
    _assert_whole(catalog, roots, 2)


def _identity() -> tuple[str, int, int]:
    from camdock.adapters import process

    return process.identity()


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    """A custodian's process attributing in a loop is SIGKILLed at a random moment, round after
    round; after recovery every recording is whole on both drives, catalog and custody agree."""
    roots, catalog, _ = _pool(tmp_path)
    rnd = random.Random(26)
    for _round in range(12):
        db = open_catalog(catalog)
        try:
            todo = [r.id for r in recordings.unattributed(db)]
        finally:
            db.close()
        if not todo:
            break
        rnd.shuffle(todo)
        proc = _driver(catalog, "custodian-k", todo)
        _go([proc])
        assert proc.stdout is not None
        for _ in range(rnd.randrange(0, 4)):  # a few attributions done, then a random moment
            proc.stdout.readline()
        threading.Event().wait(rnd.uniform(0, 0.05))
        proc.kill()
        proc.communicate()
        db = open_catalog(catalog)
        try:
            finish_pending(db)  # the killed process is gone: its re-filing is finished or undone
        finally:
            db.close()
        _assert_whole(catalog, roots, COUNT)
    assert _attributed(catalog) > 0


ROUNDS = 20


def _restore_pool(pristine: Path, roots: list[Path], catalog: Path) -> None:
    """The pool as it was before the first round, in place (the catalog names the drives by
    path): footage hard-linked from the pristine tree (a re-filing links and unlinks names,
    never writes a file), every other file copied (a heads file is appended to)."""

    def link_footage(src: str, dst: str) -> None:
        if src.lower().endswith(".mp4"):
            os.link(src, dst)
        else:
            shutil.copy2(src, dst)

    for root in roots:
        shutil.rmtree(root)
        shutil.copytree(pristine / root.name, root, copy_function=link_footage)
    for suffix in ("-wal", "-shm"):
        Path(f"{catalog}{suffix}").unlink(missing_ok=True)
    shutil.copy2(pristine / catalog.name, catalog)


def _in_threads(catalog: Path, ids: list[int], n: int) -> list[BaseException]:
    """``n`` custodians in threads, each with its connection, attributing ``ids[k::n]``."""
    start, errors = threading.Barrier(n), []

    def attributor(k: int) -> None:
        db = open_catalog(catalog)
        try:
            start.wait()
            for rec in ids[k::n]:
                attribute_recording(db, rec, OFFICER, f"custodian-{k}")
        except BaseException as exc:  # noqa: BLE001 - reported by the test's thread
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=attributor, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


@pytest.mark.slow
def test_eight_attributors_lose_nothing_in_twenty_rounds(tmp_path: Path) -> None:
    """Issue 26, done when: 8 custodians attribute 88 recordings (more than the report's 85)
    at once, 20 times over, and the audit is clean every time (the chain, the rows against it,
    the heads, and every copy re-hashed from disk: ``audit --full``'s own checks). Rounds
    alternate threads and processes; one pool is offloaded, and put back before each round."""
    from camdock.services.audit import chain

    roots, catalog, ids = _pool(tmp_path)
    db = open_catalog(catalog)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    pristine = tmp_path / "pristine"
    pristine.mkdir()
    for root in roots:
        shutil.copytree(root, pristine / root.name)
    shutil.copy2(catalog, pristine / catalog.name)
    n = 8
    for round_ in range(ROUNDS):
        if round_:
            _restore_pool(pristine, roots, catalog)
        if round_ % 2:
            procs = [_driver(catalog, f"custodian-{k}", ids[k::n]) for k in range(n)]
            _go(procs)
            for p in procs:
                out, err = p.communicate()
                assert p.returncode == 0, err
                assert all(json.loads(line)[1] == "ok" for line in out.splitlines()), out
        else:
            assert _in_threads(catalog, ids, n) == [], round_
        assert _attributed(catalog) == COUNT, round_
        _assert_whole(catalog, roots, COUNT)
        db = open_catalog(catalog)
        try:
            assert chain(db, [str(r) for r in roots]) == [], round_
        finally:
            db.close()
