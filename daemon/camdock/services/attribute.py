"""Attributing a recording to an officer afterwards (REG-4.2.4): the custodian's answer to the
unattributed queue. Both copies are re-filed under the new name, each proven by reading it back
from disk, the catalog and the custody log (REG-7.1) say so in one transaction, and only then
do the old names go. A crash at any step leaves the recording under one complete, verified,
catalogued name; the next run finishes or undoes the step (``finish_pending``)."""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, replace
from datetime import datetime, time, tzinfo
from pathlib import Path, PurePosixPath
from typing import Any

from sqlite_utils import Database

from camdock.adapters import fsio
from camdock.adapters.drives import prove_all
from camdock.catalog import assignments, recordings
from camdock.catalog.recordings import Recording, RefileState
from camdock.config import Config
from camdock.core.attribution import Assignment, Attribution, Source
from camdock.core.naming import DutySlot, Filing, footage_relpath, safe_extension
from camdock.errors import CamdockError, ExitCode, Refused, UnknownRecording
from camdock.model import Camera, Drive, Officer

__all__ = [
    "Refiled",
    "UnknownRecording",
    "attribute_recording",
    "finish_pending",
    "history_for",
    "registered_from",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refiled:
    """A recording now filed under ``officer``: where it was, where it is."""

    recording: int
    officer: Officer
    old_relpath: str
    new_relpath: str
    destinations: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        """The ``--json`` document."""
        return {
            "recording": self.recording,
            "officer": self.officer.as_json(),
            "old_path": self.old_relpath,
            "new_path": self.new_relpath,
            "destinations": list(self.destinations),
        }


def attribute_recording(
    db: Database, recording_id: int, officer: Officer, by: str, drives: tuple[Drive, ...] = ()
) -> Refiled:
    """File recording ``recording_id`` under ``officer`` in every destination; ``by`` is the
    custodian who decided it (recorded in the custody log)."""
    finish_pending(db)
    rec = recordings.get(db, recording_id)
    if rec is None or rec.destroyed_at:
        raise UnknownRecording(f"no recording {recording_id} in the catalog")
    prove_all(drives)  # REG-4.2.1: the drives are the ones footage belongs on
    copies = recordings.copies(db, recording_id)
    if any(c.plain_removed_at for c in copies.values()):
        raise Refused(f"recording {recording_id}'s plain files were removed after its day was "
                      "sealed: it can be re-filed only while they are there")  # fmt: skip
    old = rec.relpath
    new = _new_relpath(db, rec, officer, [Path(d) for d in copies])
    refile = recordings.plan_refile(db, recording_id, old, str(new))
    for root in copies:
        _link_and_verify(Path(root), PurePosixPath(old), new, rec.sha256, rec.size)
    details = {
        "old_path": old,
        "new_path": str(new),
        "officer": officer.badge,
        "previous_officer": rec.officer_badge,
        "sha256": rec.sha256,
        "destinations": sorted(copies),
    }
    recordings.record_attribution(
        db, refile_id=refile, recording_id=recording_id, officer=officer.as_json(),
        relpath=str(new), actor=by, details=details,
    )  # fmt: skip
    for root in copies:
        _unlink_old(Path(root), PurePosixPath(old), rec.sha256)
    recordings.refile_state(db, refile, RefileState.DONE)
    log.info("recording %d attributed to %s by %s: %s", recording_id, officer.badge, by, new)
    return Refiled(recording_id, officer, old, str(new), tuple(sorted(copies)))


def _new_relpath(
    db: Database, rec: Recording, officer: Officer, roots: list[Path]
) -> PurePosixPath:
    start = datetime.fromisoformat(rec.recorded_start)
    slot = DutySlot.from_label(datetime.fromisoformat(rec.duty_slot_start), rec.duty_slot)
    filing = Filing(officer.name, officer.badge, rec.camera_id)
    ext = safe_extension(rec.relpath)
    for seq in range(1, 10_000):
        rel = footage_relpath(start, slot, filing, ext, seq)
        if str(rel) == rec.relpath:
            return rel
        if recordings.relpath_taken(db, str(rel)):
            continue
        if all(_free_or_ours(root / rel, rec.sha256) for root in roots):
            return rel
    raise CamdockError(f"no free name for recording {rec.id}")


def _free_or_ours(path: Path, sha256: str) -> bool:
    return not os.path.lexists(path) or (
        path.is_file() and not path.is_symlink() and fsio.disk_sha256(path)[0] == sha256
    )


def _link_and_verify(
    root: Path, old: PurePosixPath, new: PurePosixPath, sha256: str, size: int
) -> None:
    """A second name for the copy, read back from disk before the catalog points at it."""
    if old == new:
        return
    fsio.make_dirs_durable(root, new.parent.parts)
    if not os.path.lexists(root / new):
        fsio.link_no_clobber(root / old, root / new)
    sha, got = fsio.disk_sha256(root / new)
    if sha != sha256 or got != size:
        raise CamdockError(
            f"{root / new}: read back {sha[:16]}… ({got} B), the catalog says {sha256[:16]}… "
            f"({size} B): not re-filed; run camdock audit",
            ExitCode.IOERR,
        )


def _unlink_old(root: Path, old: PurePosixPath, sha256: str) -> None:
    """The old name goes once the catalog points at the new one, and only if it still holds
    the recording (never anything else that took its place)."""
    path = root / old
    with contextlib.suppress(FileNotFoundError):
        if path.is_file() and not path.is_symlink() and fsio.disk_sha256(path)[0] == sha256:
            os.unlink(path)
            fsio.fsync_dir(path.parent)


def finish_pending(db: Database) -> int:
    """Complete or undo re-filings a crash interrupted; returns how many."""
    count = 0
    for f in recordings.pending_refiles(db):
        roots = [Path(r) for r in recordings.copies(db, f.recording_id)]
        if f.state == RefileState.LINKED:  # the catalog already points at the new name
            for root in roots:
                _unlink_old(root, PurePosixPath(f.old_relpath), f.sha256)
            recordings.refile_state(db, f.id, RefileState.DONE)
        else:  # the catalog still points at the old name: the new links go
            for root in roots:
                new = root / f.new_relpath
                if new != root / f.old_relpath and _free_or_ours(new, f.sha256):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(new)
            recordings.refile_state(db, f.id, RefileState.ABANDONED)
        count += 1
    return count


def registered_from(camera: Camera, tz: tzinfo) -> datetime | None:
    """The start of the day the camera was registered, in the station's zone (or None)."""
    if camera.registered is None:
        return None
    return datetime.combine(camera.registered, time(0), tzinfo=tz)


def history_for(
    db: Database, base: Config, officers: dict[str, Officer], camera: Camera
) -> Attribution:
    """The camera's history (REG-4.2.4): the configured assignment as the baseline, each
    roster from its duty day on, and its loans; units from the officers known now."""
    as_configured = base.cameras.get(camera.serial)
    configured = base.officer_for(as_configured) if as_configured else None
    baseline = [Assignment(camera.id, configured, None, Source.CONFIG)] if configured else []

    def known(o: Officer) -> Officer:
        return o if o.unit else officers.get(o.badge) or replace(o, unit=base.unit)

    history = [replace(a, officer=known(a.officer)) for a in assignments.history(db, camera.id)]
    lent = [replace(x, officer=known(x.officer)) for x in assignments.loans(db, camera.id, "")]
    return Attribution(camera.id, (*baseline, *history), tuple(lent))
