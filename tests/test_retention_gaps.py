"""Four gaps a hostile review found in retention and destruction (REG-4.3.1, REG-7.1), each
proven here with real components: a hold placed during a destruction keeps every copy; one
refusal does not stop the rest of the day's due list; a standing authorisation is revoked;
destruction lists publish their events."""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from camdock.adapters import fsio, manifest
from camdock.catalog import custody, open_catalog, recordings
from camdock.catalog import retention as retention_rows
from camdock.core.retention import HoldKind
from camdock.errors import UnknownRecording
from camdock.events import Topics
from camdock.services.retention import Keeping, authorise, daily_pass, destroy, place_hold
from conftest import make_camera, needs_root, offload

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


def test_a_hold_placed_between_the_runners_check_and_its_unlink_loses_no_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """REG-4.3.1: a hold placed while the runner is between its check of the holds and the
    unlink of the first copy (forced by a barrier, no sleeps) either lands before the runner
    looks (every copy kept) or waits until the recording is destroyed (the hold refused: the
    recording is gone) — never a held recording with a copy gone."""
    d1, d2, catalog, keep = _recordings(tmp_path, 2)
    db = open_catalog(catalog)
    rel = db.execute("SELECT relpath FROM recordings WHERE id = 1").fetchone()[0]
    asked = threading.Event()  # the hold's writer has started (or, without a lock, finished)
    outcome: dict[str, Any] = {}

    real_lock = fsio.exclusive

    @contextlib.contextmanager
    def lock(path: Path, *, shared: bool = False) -> Iterator[None]:
        if shared:  # the hold's side: it is about to wait for the runner's lock
            asked.set()
        with real_lock(path, shared=True) if shared else real_lock(path):
            yield

    def place() -> None:
        other = open_catalog(catalog)  # its own connection, as a control thread has
        try:
            outcome["hold"] = place_hold(other, keep, "督察 (S1)", kind=HoldKind.INVESTIGATION,
                                         case="刑案 9", reason="偵查中", recording=1)  # fmt: skip
        except UnknownRecording as exc:
            outcome["refused"] = str(exc)
        finally:
            asked.set()
            other.close()

    real_tombstone = manifest.ensure_removed
    started: list[threading.Thread] = []

    def tombstone(*args: Any, **kw: Any) -> Any:
        if not started:  # the runner has asked the holds for its first copy: a hold now
            started.append(threading.Thread(target=place, name="hold"))
            started[0].start()
            assert asked.wait(60), "the hold's writer never started"
        return real_tombstone(*args, **kw)

    monkeypatch.setattr(fsio, "exclusive", lock)
    monkeypatch.setattr(manifest, "ensure_removed", tombstone)
    try:
        destroy(db, keep, LATER, "保管人 (C1)", recordings=[1])
    except Exception as exc:  # noqa: BLE001 - the runner may stop; what matters is below
        outcome["runner"] = repr(exc)
    started[0].join(60)
    assert not started[0].is_alive()
    held = db.execute("SELECT COUNT(*) FROM holds WHERE recording_id = 1").fetchone()[0]
    present = [(d / rel).is_file() for d in (d1, d2)]
    if held:  # the hold came first: both copies kept
        assert present == [True, True], outcome
    else:  # the runner came first: destroyed whole, the hold told it is gone
        assert present == [False, False] and "refused" in outcome, outcome
    # With the runner's lock the hold waits for the recording it is destroying.
    assert outcome.keys() == {"refused"}, outcome
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
