"""Filing a verified file (REG-4.2.3/4, REG-4.1.2): its final name in every destination, its
catalog row with custody entry and event, and only then the clear from the camera.

Runs on the copier's verifier thread, one file at a time, in the order the camera was read.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from sqlite_utils import Database

from camdock.adapters import fsio, manifest
from camdock.adapters.copier import Copied, Destination, VerifiedCopier, discard_temps, reason_of
from camdock.catalog import custody, recordings, sessions
from camdock.core.naming import Filing, footage_relpath, safe_extension, unattributed
from camdock.events import FileCleared, FileVerified, Progress
from camdock.offload.types import OffloadRequest, PlannedFile

__all__ = ["Filer", "FilingContext"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FilingContext:
    """What the filer needs from its offload session: the request, the session, the checked
    destinations and their copier, and where to report what became of a file."""

    request: OffloadRequest
    session_id: int  # the session's catalog row
    session_uid: str  # the session's name in custody entries and events
    actor: str  # who the custody log names (REG-7.1)
    destinations: tuple[Destination, ...]
    copier: VerifiedCopier  # its read-back, and its message for a destination that failed
    fail: Callable[[PlannedFile, str], None]  # the file failed; it stays on the camera
    retry: Callable[[PlannedFile], None]  # the file is to be copied again at the session's end
    emit: Callable[[Progress], None]
    camera_drift: float | None = None  # the last drift the pre-shift test measured


class Filer:
    """Files the verified copies of one offload session."""

    def __init__(self, ctx: FilingContext) -> None:
        self.ctx = ctx
        self.req = ctx.request
        self._roots = tuple(d.key for d in ctx.destinations)

    def _filing(self, item: PlannedFile) -> Filing:
        officer = item.attributed.officer
        if officer is None:
            return unattributed(self.req.camera_id)
        return Filing(officer.name, officer.badge, self.req.camera_id)

    def finish(self, db: Database, item: PlannedFile, c: Copied) -> None:
        """Name, catalogue and (when asked) clear one copied file."""
        r = item.result
        r.sha256 = c.sha256
        if c.error is not None:
            self.ctx.fail(item, c.error)
            sessions.journal(db, self.ctx.session_id, item.seq, "failed", sha256=c.sha256,
                             error=r.error)  # fmt: skip
            return
        if item.confirm is not None and item.confirm.sha256 != c.sha256:
            log.warning(
                "%s: same name, size and time as a catalogued file, other content", r.source
            )
            self.ctx.retry(item)
            sessions.journal(db, self.ctx.session_id, item.seq, "abandoned", sha256=c.sha256,
                             error="content differs: copied again")  # fmt: skip
            return
        existing = item.confirm or recordings.by_content(db, self.req.camera_id, c.sha256)
        have = {} if existing is None else recordings.copies(db, existing.id)
        if errors := self._check_stored(c, have):
            discard_temps(c.temps)
            self.ctx.fail(item, "; ".join(errors))
            sessions.journal(db, self.ctx.session_id, item.seq, "failed", sha256=c.sha256,
                             error=r.error)  # fmt: skip
            return
        new = [d for d in self.ctx.destinations if d.key not in have]
        if existing is not None:
            rel, adopt = PurePosixPath(existing.relpath), set[str]()
        else:
            rel, adopt = self._choose_relpath(db, item, c, new)
        named: list[Path] = []  # final names given in this step, until the catalog has them
        try:
            for dest in new:
                self._give_final_name(dest, rel, c.temps[dest.key], adopt=dest.key in adopt)
                named.append(dest.root / rel)
            rec_id = recordings.store(db, self._stored(item, c, existing, rel, new))
        except BaseException as exc:
            # Invariant 2: a final name means catalogued and verified. What this step named is
            # taken back (the camera still holds the recording: nothing is lost).
            _unname(named)
            discard_temps(c.temps)
            if not isinstance(exc, OSError):
                raise
            failed = next(d for d in new if (d.root / rel) not in named)
            self.ctx.fail(item, self.ctx.copier.dest_failed(failed, exc))
            sessions.journal(db, self.ctx.session_id, item.seq, "failed", sha256=c.sha256,
                             error=r.error)  # fmt: skip
            return
        self._manifest(db, rel, c, rec_id, item, existing, new)
        r.status = "verified" if existing is None else "already-catalogued"
        r.relpath, r.roots = str(rel), self._roots
        self.ctx.emit(FileVerified(r.source, c.sha256, str(rel)))
        if self.req.clear:
            self._clear(db, item, rec_id)

    def _manifest(
        self,
        db: Database,
        rel: PurePosixPath,
        c: Copied,
        rec_id: int,
        item: PlannedFile,
        existing: recordings.Recording | None,
        new: list[Destination],
    ) -> None:
        """The day's manifest on each drive says the file is there (issue 28): after the commit,
        before the camera is cleared, so a crash between leaves the camera's copy to dock again
        (and the re-run, finding the file catalogued, writes the line it finds missing)."""
        stored = asdict(self._stored(item, c, existing, rel, new).recording)
        if existing is not None:
            stored = {k: getattr(existing, k, None) for k in manifest.RECORDING_FIELDS}
        head = custody.head(db)
        for dest in self.ctx.destinations:
            try:
                manifest.ensure_stored(dest.root, str(rel), sha256=c.sha256, xxh3_128=c.fast,
                                       recording_id=rec_id, recording=stored,
                                       head=head)  # fmt: skip
            except OSError as exc:  # catalogued and verified: the file stays; the gap is said
                log.error("%s: manifest on %s not written: %s", rel, dest.key, reason_of(exc))

    def _check_stored(self, c: Copied, have: dict[str, recordings.Copy]) -> list[str]:
        """Already stored (a re-run, or the same content twice on the camera): the camera copy
        may go only if the stored copy is still intact, read back now."""
        errors = []
        for dest in self.ctx.destinations:
            if dest.key not in have:
                continue
            if dest.key in c.temps:
                fsio.unlink_quietly(c.temps.pop(dest.key))
            path = dest.root / have[dest.key].relpath
            if error := self.ctx.copier.readback(path, c.sha256, c.size, "catalogued copy", dest):
                errors.append(error)
        return errors

    def _stored(
        self,
        item: PlannedFile,
        c: Copied,
        existing: recordings.Recording | None,
        rel: PurePosixPath,
        new: list[Destination],
    ) -> recordings.Stored:
        when, slot = item.placement.when, item.placement.slot
        officer = item.attributed.officer
        # REG-4.3.1 from the day it was made, in the station's zone (core/retention.py: the
        # calendar rule), not the duty day it is filed under. A time the camera's clock makes
        # suspect counts from the duty day instead, and never from before it: a clock that says
        # 1970 must not make footage filed today due for destruction at once.
        made = when.start.astimezone(slot.start.tzinfo).date()
        if item.placement.suspect is not None:
            made = slot.start.date()
        retain_until, destroy_by = self.req.retention.window(max(made, slot.start.date()))
        return recordings.Stored(
            session_id=self.ctx.session_id,
            seq=item.seq,
            existing_id=existing.id if existing is not None else None,
            recording=recordings.NewRecording(
                sha256=c.sha256,
                size=c.size,
                camera_id=self.req.camera_id,
                officer_name=officer.name if officer else None,
                officer_badge=officer.badge if officer else None,
                unit=officer.unit if officer else self.req.unit,
                attribution=item.attributed.source.value,
                time_suspect=int(item.placement.suspect is not None),
                time_note=item.placement.suspect,
                camera_drift=self.ctx.camera_drift,
                duty_slot=slot.label,
                duty_slot_start=slot.start.isoformat(),
                recorded_start=when.start.isoformat(),
                recorded_end=when.end.isoformat() if when.end else None,
                time_source=when.source,
                original_name=item.src.display,
                original_name_raw=item.src.raw,
                source_mtime_ns=item.src.mtime_ns,
                retain_until=retain_until.isoformat(),
                destroy_by=destroy_by.isoformat(),
                hold=0,
            ),
            relpath=str(rel),
            sha256=c.sha256,
            new_destinations=tuple(d.key for d in new),
            actor=self.ctx.actor,
            custody_details={  # REG-7.1: stored (and verified) in these destinations
                "sha256": c.sha256,
                "size": c.size,
                "path": str(rel),
                "destinations": [d.key for d in new],
                "camera": self.req.camera_id,
                "officer": officer.badge if officer else None,
                "session": self.ctx.session_uid,
                "source": item.src.display,
            },
            event=self.req.events,
            event_data={
                "session": self.ctx.session_uid,
                "source": item.result.source,
                "sha256": c.sha256,
                "size": c.size,
                "path": str(rel),
                "recorded_start": when.start.isoformat(),
                "destinations": len(self.ctx.destinations),
                "officer": officer.badge if officer else None,
                "attribution": item.attributed.source.value,
                "time_suspect": item.placement.suspect,
            },
        )

    def _give_final_name(self, dest: Destination, rel: PurePosixPath, temp: Path,
                         adopt: bool) -> None:  # fmt: skip
        dest.check_mounted()
        fsio.make_dirs_durable(dest.root, rel.parent.parts)
        if adopt:
            fsio.unlink_quietly(temp)
        else:
            fsio.link_no_clobber(temp, dest.root / rel)

    def _clear(self, db: Database, item: PlannedFile, rec_id: int) -> None:
        """REG-4.1.2: the camera copy goes only now — every destination verified, row committed."""
        r = item.result
        try:
            fsio.remove_source(self.req.source, item.src)
        except (OSError, fsio.SourceChanged) as exc:
            r.error = f"verified but not cleared: {reason_of(exc)}"
            log.error("%s: %s", r.source, r.error)
            return
        recordings.record_clear(
            db,
            session_id=self.ctx.session_id,
            seq=item.seq,
            recording_id=rec_id,
            actor=self.ctx.actor,
            details={
                "camera": self.req.camera_id,
                "source": item.src.display,
                "sha256": r.sha256,
                "session": self.ctx.session_uid,
            },
            event=self.req.events,
            event_data={"session": self.ctx.session_uid, "source": r.source, "sha256": r.sha256},
        )
        r.cleared = True
        self.ctx.emit(FileCleared(r.source))

    def _choose_relpath(
        self, db: Database, item: PlannedFile, c: Copied, dests: list[Destination]
    ) -> tuple[PurePosixPath, set[str]]:
        """The file's name: deterministic, and never one that holds other content.

        A name already on disk with this very content (a crash after the link, before the
        catalog commit) is adopted after a read-back; any other clash takes the next number.
        """
        ext = safe_extension(item.src.name)
        start, slot = item.placement.when.start, item.placement.slot
        for seq in range(1, 10_000):
            rel = footage_relpath(start, slot, self._filing(item), ext, seq)
            if recordings.relpath_taken(db, str(rel)):
                continue
            adopt: set[str] = set()
            for dest in dests:
                final = dest.root / rel
                if not os.path.lexists(final):
                    continue
                ours = final.is_file() and not final.is_symlink()
                if ours and fsio.disk_sha256(final)[0] == c.sha256:
                    adopt.add(dest.key)
                    continue
                break  # taken by something else
            else:
                return rel, adopt
        raise RuntimeError(f"no free footage name for {item.result.source}")


def _unname(paths: list[Path]) -> None:
    """Remove final names given in a step that did not complete, durably."""
    for p in paths:
        with contextlib.suppress(OSError):
            fsio.unlink_quietly(p)
            fsio.fsync_dir(p.parent)
