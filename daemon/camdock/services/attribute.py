"""Attributing a recording to an officer afterwards (REG-4.2.4): the custodian's answer to the
unattributed queue. Both copies are re-filed under the new name, each proven by reading it back
from disk, the catalog and the custody log (REG-7.1) say so in one transaction, and only then
do the old names go.

Two custodians at once, a crash, or SIGKILL at any instant leave every recording complete and
verified on each drive under the name the catalog gives it (issue 26, invariant 11):

- the re-filing is journalled, owned by this process (boot, pid, start time), and planned only
  if the recording is still where we read it and nobody else is re-filing it; its new name is
  reserved in the same transaction (``catalog.refiles.plan``: a compare-and-set);
- per drive the new name is added beside the old one (a hard link, never over anything) and
  read back from disk before the catalog points at it; the old name goes only after the
  catalog moved (planned → linked, as owner, still under the old name), and only if the new
  name holds the recording and the old one still does too;
- an operation that fails undoes its own step before the error goes on; recovery
  (``finish_pending``, at daemon start and before an attribution) takes over only re-filings
  whose owner is gone, claiming each first, and never a live operation's.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, replace
from datetime import datetime, time, tzinfo
from pathlib import Path, PurePosixPath
from typing import Any

from sqlite_utils import Database

from camdock.adapters import fsio, manifest, process
from camdock.adapters.drives import prove_all
from camdock.catalog import assignments, custody, recordings, refiles
from camdock.catalog.recordings import Recording
from camdock.catalog.refiles import Owner, Refile, RefileState
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


def me() -> Owner:
    """This process, as the owner of the re-filings it makes."""
    return Owner(*process.identity())


def attribute_recording(
    db: Database, recording_id: int, officer: Officer, by: str, drives: tuple[Drive, ...] = ()
) -> Refiled:
    """File recording ``recording_id`` under ``officer`` in every destination; ``by`` is the
    custodian who decided it (recorded in the custody log). The second of two identical
    attributions is refused (``Conflict``, saying who did it first and when)."""
    finish_pending(db)
    rec = recordings.get(db, recording_id)
    if rec is None or rec.destroyed_at:
        raise UnknownRecording(f"no recording {recording_id} in the catalog")
    prove_all(drives)  # REG-4.2.1: the drives are the ones footage belongs on
    copies = recordings.copies(db, recording_id)
    if any(c.plain_removed_at for c in copies.values()):
        raise Refused(f"recording {recording_id}'s plain files were removed after its day was "
                      "sealed: it can be re-filed only while they are there")  # fmt: skip
    roots = [Path(d) for d in sorted(copies)]
    owner = me()
    refile, new = _plan(db, rec, officer, roots, owner, by)
    old = PurePosixPath(rec.relpath)
    details = {
        "old_path": rec.relpath,
        "new_path": str(new),
        "officer": officer.badge,
        "previous_officer": rec.officer_badge,
        "sha256": rec.sha256,
        "destinations": sorted(copies),
    }
    try:
        for root in roots:
            _link_and_verify(root, old, new, rec, refile)
        refiles.record_attribution(
            db, refile_id=refile, owner=owner, recording_id=recording_id, old=rec.relpath,
            officer=officer.as_json(), actor=by, details=details,
        )  # fmt: skip
    except BaseException:
        _undo(db, refile, owner, roots, old, new, rec)
        raise
    for root in roots:
        _forward(root, old, new, rec.sha256, rec.size, refile, db, recording_id)
    refiles.advance(db, refile, owner, RefileState.LINKED, RefileState.DONE)
    log.info("recording %d attributed to %s by %s: %s", recording_id, officer.badge, by, new)
    return Refiled(recording_id, officer, rec.relpath, str(new), tuple(sorted(copies)))


def _plan(db: Database, rec: Recording, officer: Officer, roots: list[Path], owner: Owner,
          by: str) -> tuple[int, PurePosixPath]:  # fmt: skip
    """Journal the re-filing under a name nobody else has or reserved (another attributor may
    reserve the one we chose first: then the next)."""
    passed: set[str] = set()
    for _ in range(100):
        new = _new_relpath(db, rec, officer, roots, passed)
        try:
            return refiles.plan(db, rec.id, rec.relpath, str(new), badge=officer.badge,
                                owner=owner, actor=by), new  # fmt: skip
        except refiles.NameTaken:
            passed.add(str(new))
    raise CamdockError(f"no free name for recording {rec.id}", ExitCode.TEMPFAIL)


def _new_relpath(
    db: Database, rec: Recording, officer: Officer, roots: list[Path], passed: set[str]
) -> PurePosixPath:
    start = datetime.fromisoformat(rec.recorded_start)
    slot = DutySlot.from_label(datetime.fromisoformat(rec.duty_slot_start), rec.duty_slot)
    filing = Filing(officer.name, officer.badge, rec.camera_id)
    ext = safe_extension(rec.relpath)
    for seq in range(1, 10_000):
        rel = footage_relpath(start, slot, filing, ext, seq)
        if str(rel) == rec.relpath:
            return rel
        if str(rel) in passed or recordings.relpath_taken(db, str(rel)):
            continue
        if all(_free_or_ours(root / rel, rec.sha256) for root in roots):
            return rel
    raise CamdockError(f"no free name for recording {rec.id}")


def _holds(path: Path, sha256: str, size: int | None = None) -> bool:
    """Whether ``path`` is a regular file whose bytes on disk are the recording's."""
    try:
        if not path.is_file() or path.is_symlink():
            return False
        digest, got = fsio.disk_sha256(path)
    except FileNotFoundError:
        return False
    return digest == sha256 and (size is None or got == size)


def _free_or_ours(path: Path, sha256: str) -> bool:
    return not os.path.lexists(path) or _holds(path, sha256)


def _temp(root: Path, name: PurePosixPath, refile: int) -> Path:
    """Where a copy is made first on a drive without hard links."""
    return root / name.parent / f".camdock-refile-{refile}.tmp"


def _add_verified(root: Path, have: PurePosixPath, want: PurePosixPath, rec_sha: str,
                  size: int, refile: int) -> None:  # fmt: skip
    """Give the copy at ``have`` the name ``want`` too (never over another file), then read
    ``want`` back from disk: it must be the recording."""
    fsio.make_dirs_durable(root, want.parent.parts)
    # A name already there is ours from before (a reserved name holds nothing else), or it is
    # refused just below.
    with contextlib.suppress(FileExistsError):
        fsio.add_name(root / have, root / want, _temp(root, want, refile))
    if not _holds(root / want, rec_sha, size):
        raise CamdockError(
            f"{root / want}: read back, it is not recording's {rec_sha[:16]}… ({size} B): "
            "not re-filed; run camdock audit",
            ExitCode.IOERR,
        )


def _link_and_verify(
    root: Path, old: PurePosixPath, new: PurePosixPath, rec: Recording, refile: int
) -> None:
    """A second name for the copy, read back from disk before the catalog points at it."""
    if old != new:
        _add_verified(root, old, new, rec.sha256, rec.size, refile)


def _drop(root: Path, name: PurePosixPath, sha256: str) -> None:
    """Remove a name that is not (or no longer) catalogued, if it holds the recording: never
    anything else that took its place."""
    path = root / name
    if _holds(path, sha256):
        fsio.unlink_quietly(path)
        fsio.fsync_dir(path.parent)


def _forward(root: Path, old: PurePosixPath, new: PurePosixPath, sha256: str, size: int,
             refile: int, db: Database | None = None, rec_id: int = 0) -> None:  # fmt: skip
    """The catalog points at ``new``: make sure it holds the recording, then the old name
    goes (the day manifests say so in between: the new name first, the old one's removal
    before it goes, so a manifest never claims a name that is not there)."""
    if old != new:
        if not _holds(root / new, sha256, size):
            _add_verified(root, old, new, sha256, size, refile)
        if db is not None:
            _manifest_moved(db, root, old, new, rec_id)
        _drop(root, old, sha256)


def _manifest_moved(db: Database, root: Path, old: PurePosixPath, new: PurePosixPath,
                    rec_id: int) -> None:  # fmt: skip
    """The re-filing in the day manifests on ``root`` (issue 28): a 'store' line for the new
    name (its officer now), a 'remove' line for the old one."""
    rec = recordings.get(db, rec_id)
    if rec is None:
        return
    before = manifest.read_folder(root / manifest.day_of(str(old))[0], root).live()
    fast = before[str(old)].data.get("xxh3_128") if str(old) in before else None
    head = custody.head(db)
    fields = {k: getattr(rec, k, None) for k in manifest.RECORDING_FIELDS}
    manifest.ensure_stored(root, str(new), sha256=rec.sha256, xxh3_128=fast, recording_id=rec.id,
                           recording=fields, head=head, refiled_from=str(old))  # fmt: skip
    manifest.record_removed(root, str(old), reason="refiled", recording_id=rec.id, head=head,
                            to=str(new))  # fmt: skip


def _back(root: Path, old: PurePosixPath, new: PurePosixPath, sha256: str, size: int,
          refile: int) -> None:  # fmt: skip
    """The catalog points at ``old``: make sure it holds the recording (a crash of an older
    camdock may have left only the new name), then the new name goes."""
    if old == new or not _holds(root / new, sha256, size):
        return
    if not _holds(root / old, sha256, size):
        _add_verified(root, new, old, sha256, size, refile)
    _drop(root, new, sha256)


def _undo(db: Database, refile: int, owner: Owner, roots: list[Path], old: PurePosixPath,
          new: PurePosixPath, rec: Recording) -> None:  # fmt: skip
    """Our own step failed: if the catalog still points at the old name, the new names go and
    the re-filing is abandoned; if that fails too, it stays ours for recovery after we exit."""
    if not any(f.id == refile and f.state == RefileState.PLANNED for f in refiles.pending(db)):
        return  # the catalog moved (the transaction committed after all): forward, later
    try:
        for root in roots:
            _back(root, old, new, rec.sha256, rec.size, refile)
        refiles.advance(db, refile, owner, RefileState.PLANNED, RefileState.ABANDONED)
    except Exception:  # the first error is the one to report
        log.exception("re-filing %d of recording %d not undone; recovery will", refile, rec.id)


def finish_pending(db: Database) -> int:
    """Complete or undo re-filings whose owner is gone (a crash, SIGKILL, a reboot; a row from
    before owners were recorded); returns how many. A live owner's, in this process or
    another, is never touched; each one is claimed first, so two recoveries never race."""
    count, owner = 0, me()
    for f in refiles.pending(db):
        if process.running(f.owner_boot, f.owner_pid, f.owner_start):
            continue
        if not refiles.claim(db, f, owner):
            continue  # another recovery took it, or it moved on
        try:
            _finish(db, f, owner)
        except (CamdockError, OSError) as exc:
            log.error("re-filing %d of recording %d not finished: %s; run camdock audit",
                      f.id, f.recording_id, exc)  # fmt: skip
            continue
        count += 1
    if count:
        log.warning("finished %d interrupted re-filing(s)", count)
    return count


def _finish(db: Database, f: Refile, owner: Owner) -> None:
    roots = [Path(r) for r in sorted(recordings.copies(db, f.recording_id))]
    old, new = PurePosixPath(f.old_relpath), PurePosixPath(f.new_relpath)
    linked = f.state == RefileState.LINKED
    if f.relpath != str(new if linked else old):
        raise CamdockError(f"the catalog files recording {f.recording_id} as {f.relpath}, "
                           f"the journal expects {new if linked else old}")  # fmt: skip
    for root in roots:
        if f.destroyed_at:  # destroyed meanwhile: only the uncatalogued name is left to go
            _drop(root, old if linked else new, f.sha256)
        elif linked:
            _forward(root, old, new, f.sha256, f.size, f.id, db, f.recording_id)
        else:
            _back(root, old, new, f.sha256, f.size, f.id)
    done = RefileState.DONE if linked else RefileState.ABANDONED
    refiles.advance(db, f.id, owner, f.state, done)


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
