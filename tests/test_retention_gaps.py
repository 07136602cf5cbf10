"""Four gaps a hostile review found in retention and destruction (REG-4.3.1, REG-7.1), each
proven here with real components: a hold placed during a destruction keeps every copy; one
refusal does not stop the rest of the day's due list; a standing authorisation is revoked;
destruction lists publish their events."""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from camdock.adapters import fsio, manifest
from camdock.catalog import open_catalog, recordings
from camdock.core.retention import HoldKind
from camdock.errors import UnknownRecording
from camdock.services.retention import Keeping, destroy, place_hold
from conftest import make_camera, offload

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
