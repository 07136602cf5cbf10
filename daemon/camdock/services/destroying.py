"""Destruction per recording (REG-4.3.1; issue 28): a small state machine,
live → destroying → destroyed.

- live → destroying: the rules are checked (core/retention.refusal) inside the transaction that
  journals the destruction and chains the intent (custody ``destroy-start``), before any copy is
  removed; every destination holding a copy is proven to be its drive first.
- destroying → destroyed: each copy's manifest tombstone, then the copy removed, checked gone
  and its directory fsynced; only when every copy is gone do the tombstone, the custody
  ``destroy`` entry and the ``recording-destroyed`` event commit together.
- Every step (each copy, a re-run after a crash) checks holds and open requests first: one held
  since keeps what is left. With nothing removed yet it goes back to live (``abandoned``); with a
  copy gone it stays destroying and says why (``destroy-stop``), never live with a copy gone.
- A drive's I/O error (read-only, failing) leaves it destroying with an alarm naming the drive
  (custody ``destroy-stop``, a ``retention-alarm`` event, the plan's alarms every day until
  handled) and a ``DestructionStopped`` (exit 69), never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path, PurePosixPath
from typing import Any

from sqlite_utils import Database

from camdock.adapters import fsio, manifest
from camdock.adapters.drives import StorageMissing, prove_all
from camdock.catalog import custody, destruction, freezes, recordings, rowchain, seals
from camdock.catalog import retention as catalog
from camdock.core.retention import Candidate, Hold, refusal
from camdock.errors import CamdockError, Conflict, ExitCode, Refused, UnknownRecording
from camdock.model import Drive
from camdock.services.keeping import Keeping, in_force, plan_for, refused

__all__ = [
    "AuthorityGone",
    "Destroyed",
    "DestructionStopped",
    "day_of",
    "destroy",
    "finish_pending",
    "resume",
]

log = logging.getLogger(__name__)


class DestructionStopped(CamdockError):
    """A destruction that could not go on (a drive's error): the recording stays
    "destroying", the alarm names the drive; a re-run (or the daily pass) finishes it."""

    exit_code = ExitCode.UNAVAILABLE


class AuthorityGone(Refused):
    """The authority a pass destroys under (a standing authorisation) was revoked or lapsed
    while it ran: nothing more is destroyed under it (issue 27, gap 3)."""


@dataclass(frozen=True)
class Destroyed:
    """A recording destroyed: every copy removed and checked gone."""

    recording: int
    path: str
    copies: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        """For ``--json``."""
        return {"recording": self.recording, "path": self.path, "copies": list(self.copies)}


def destroy(
    db: Database,
    keeping: Keeping,
    today: date,
    by: str,
    *,
    recordings: list[int] | None = None,
    authority: str = "manual",
    reason: str = "retention period ended (REG-4.3.1)",
    stopped: list[str] | None = None,
    authorised: Callable[[], None] | None = None,
) -> list[Destroyed]:
    """Destroy ``recordings`` (each must be allowed, or nothing starts), or every recording
    due today and not held. Interrupted destructions are finished first. The day's due list
    (``recordings`` None) tries each one: a refusal or a drive's stop for one (recorded, and
    alarmed, as always) is added to ``stopped`` and the others go on (issue 27 gap 2).
    ``authorised``: asked inside each recording's planning transaction, raising
    ``AuthorityGone`` once the authority is revoked; the pass stops there (gap 3)."""
    done = finish_pending(db, keeping, today)
    active = in_force(db)
    if recordings is None:  # the plan's due list, each checked once more by the same rule
        targets = [
            c for c in plan_for(db, today).due if not refusal(c, today, active, keeping.policy)
        ]
    else:
        targets = [_allowed(db, keeping, today, rec_id, by, active) for rec_id in recordings]
    if recordings is None:  # the daily pass: a frozen recording waits for its auditor
        held_back = {f.recording_id for f in freezes.frozen(db, [c.id for c in targets])}
        targets = [c for c in targets if c.id not in held_back]
    else:
        freezes.refuse_frozen(db, [c.id for c in targets], "destruction")
    sealed = sorted({d for c in targets if seals.current(db, d := day_of(c))})
    if sealed and keeping.reseal is None:
        raise Refused(f"duty day(s) {', '.join(map(str, sealed))} are sealed: destroying "
                      "their footage re-seals them, which needs the seal password "
                      "(--password-file, or the station's credential)")  # fmt: skip
    if targets:
        prove_all(keeping.drives)  # the copies are removed from the drives they belong to
    problems: list[CamdockError] = []  # Refused, DestructionStopped, Tampered, a drive
    finished = False
    try:
        _each(db, keeping, today, targets, by, authority, reason, authorised, recordings is None,
              done, problems)  # fmt: skip
        finished = True
    finally:  # the archives go too: the day sealed again without them, verified; also when
        gone = {d.recording for d in done}  # a later one failed: a sealed day's destroyed
        for day in sealed:  # footage must not stay in its archive (review2)
            if finished or any(c.id in gone and day_of(c) == day for c in targets):
                assert keeping.reseal is not None
                keeping.reseal(db, day, by)
    if stopped is not None:
        stopped.extend(str(p) for p in problems)
    elif problems:  # nobody to hand them to: said all at once, after the others went
        first = problems[0]
        if len(problems) == 1 or not isinstance(first, (Refused, DestructionStopped)):
            raise first  # as it was raised (Tampered names its rows; the rest were logged)
        raise type(first)("; ".join(map(str, problems)))
    return done


def _each(db: Database, keeping: Keeping, today: date, targets: list[Candidate], by: str,
          authority: str, reason: str, authorised: Callable[[], None] | None, daily: bool,
          done: list[Destroyed], problems: list[CamdockError]) -> None:  # fmt: skip
    """``destroy``'s loop: the day's list (``daily``) goes on past one recording's failure."""
    for c in targets:
        try:
            made = _one(db, keeping, today, c, by, authority, reason, authorised)
            if made is not None:
                done.append(made)
        except Conflict as exc:
            if daily:  # due today, and someone else is destroying it: theirs
                continue
            refused(db, by, "destroy", exc, keeping.topics, {"recording": c.id})
            raise
        except AuthorityGone as exc:  # revoked: not one more under it, the rest said
            problems.append(exc)
            break
        except CamdockError as exc:  # a refusal, a drive's stop, a row edited in sqlite3
            if not daily:
                raise
            log.warning("%s", exc)  # recorded where it happened; the rest of the day goes on
            problems.append(exc)


def _one(db: Database, keeping: Keeping, today: date, c: Candidate, by: str, authority: str,
         reason: str, authorised: Callable[[], None] | None) -> Destroyed | None:  # fmt: skip
    """Plan and finish the destruction of ``c``: ``Conflict`` when another has it."""
    _check_copies(db, keeping, c)
    allowed = _still_allowed(db, keeping, today, c.id)

    def guard() -> None:  # the compare-and-set: still live, nobody else's, still allowed
        if authorised is not None:
            authorised()
        allowed()

    d_id = catalog.plan_destruction(db, c.id, by, authority, reason, guard)
    planned = next((p for p in catalog.pending(db) if p.id == d_id), None)
    if planned is None:  # another pass finished it a moment after it was planned: done
        return Destroyed(c.id, c.relpath, ())
    return _finish(db, keeping, today, planned, mine=True)


def _allowed(db: Database, keeping: Keeping, today: date, rec_id: int, by: str,
             active: list[Hold]) -> Candidate:  # fmt: skip
    """Recording ``rec_id`` if the rules let it be destroyed; one already destroyed (or being
    destroyed) by someone else is a ``Conflict`` naming them, recorded as a refusal."""
    c = catalog.candidate(db, rec_id)
    if c is None:
        if (first := catalog.fate(db, rec_id)) is None:
            raise UnknownRecording(f"no recording {rec_id} in the catalog (or destroyed)")
        exc = Conflict(f"recording {rec_id} is already {first[0]}", *first[1:])
        refused(db, by, "destroy", exc, keeping.topics, {"recording": rec_id})
        raise exc
    if why := refusal(c, today, active, keeping.policy):
        raise Refused(f"recording {rec_id} may not be destroyed: {why}")
    return c


def _kept(db: Database, keeping: Keeping, today: date, rec_id: int) -> str | None:
    """Why recording ``rec_id`` may not be destroyed now (a hold, an open request, a freeze),
    or None: asked before every step of a destruction (issue 28)."""
    # The rows that keep it, as the chain has them: a hold or a request's link deleted (or
    # edited) in sqlite3 refuses, never lets the destruction through (issue 28, review).
    rowchain.require_table(db, "holds")
    rowchain.require_table(db, "request_recordings", "recording_id = ?", (rec_id,),
                           like=f"[%,{rec_id}]")  # fmt: skip
    rowchain.require_table(db, "requests", "id IN (SELECT request_id FROM request_recordings "
                           "WHERE recording_id = ?)", (rec_id,))  # fmt: skip
    c = catalog.candidate(db, rec_id)
    if c is not None and (why := refusal(c, today, in_force(db), keeping.policy)):
        return why
    if freezes.frozen(db, [rec_id]):  # frozen since the check before (issue 26)
        return "frozen for its auditor"
    return None


def _still_allowed(db: Database, keeping: Keeping, today: date, rec_id: int) -> Callable[[], None]:
    """The rules once more, inside the transaction that plans the destruction: a hold placed
    (or a request opened) since the check above refuses it."""

    def guard() -> None:
        if why := _kept(db, keeping, today, rec_id):
            raise Refused(f"recording {rec_id} may not be destroyed: {why}")

    return guard


def day_of(c: Candidate) -> date:
    """The duty day a recording is filed under (its folder)."""
    return date.fromisoformat(c.relpath[:10].replace("/", "-"))


def _check_copies(db: Database, keeping: Keeping, c: Candidate) -> None:
    """Every copy of ``c`` is under a destination root this station writes, that root is there
    and the copy can be removed: checked before anything is planned."""
    for root, copy in recordings.copies(db, c.id).items():
        fsio.remove_under(*_path_of(keeping, root, copy.relpath), dry_run=True)


def _path_of(keeping: Keeping, root: str, relpath: str) -> tuple[Path, PurePosixPath]:
    """Where a copy is (root, path in it), refused unless under a known destination root."""
    rel = PurePosixPath(relpath)
    if keeping.roots is not None and root not in keeping.roots:
        raise Refused(f"a copy is on {root}, which is not a destination of this station; "
                      "destroy it with the catalog it belongs to")  # fmt: skip
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise Refused(f"catalogued path {rel} is not inside its destination")
    if not Path(root).is_dir():
        raise StorageMissing(Drive("destination", Path(root)), f"{root} is not there")
    return Path(root), rel


def _finish(db: Database, keeping: Keeping, today: date, d: catalog.Planned, *,
            mine: bool = False) -> Destroyed | None:  # fmt: skip
    """Take destroying recording ``d`` to destroyed: each copy removed after the rules are
    asked again. Two processes may finish the same one (an interrupted destruction, seen by
    two passes): only one records it; for the other it is None, or, for the one that planned
    it (``mine``), done all the same. Kept since: ``Refused`` (abandoned when nothing was
    removed, else stopped with why); a drive's error: ``DestructionStopped``."""
    with fsio.exclusive(catalog.runner_lock(db)):  # one runner per destruction at a time (review)
        return _finish_owned(db, keeping, today, d, mine)


def _finish_owned(db: Database, keeping: Keeping, today: date, d: catalog.Planned,
                  mine: bool) -> Destroyed | None:  # fmt: skip
    rec_id, removed = d.recording_id, []
    fresh = next((p for p in catalog.pending(db) if p.id == d.id), None)
    if fresh is None:  # another runner finished (or gave up) this one while we waited
        if not mine:
            return None
        if (fate := catalog.fate(db, rec_id)) is not None and fate[0] == "destroyed":
            return Destroyed(rec_id, d.relpath, ())
        raise Refused(f"recording {rec_id} was not destroyed: its destruction was given up "
                      "while this one waited (a hold or request since)")  # fmt: skip
    d = fresh
    # The destruction and the rows it acts on as the chain has them, before any file goes: a
    # copy row pointed at another recording's file, or a destruction typed into the catalog,
    # removes nothing (issue 28, review).
    rowchain.require_rows(db, [("destructions", [d.id])])
    rowchain.require_chained(db, rec_id)
    if d.authority == "standing" and destruction.live_authorisation(db, today) is None:
        # Planned under a standing authorisation, then a crash; revoked (or lapsed) since:
        # nothing removed yet, nothing is, under it (review2). Begun: finished, whole.
        _halt_untouched(db, keeping, d, "the standing authorisation it was planned under is "
                        "no longer in force")  # fmt: skip
    for copy in d.copies:
        root, rel = _path_of(keeping, copy.destination, copy.relpath)
        if why := _kept(db, keeping, today, rec_id):
            _halt(db, keeping, d, why)
        try:
            # The day manifest's tombstone first: it never claims a file that is gone.
            manifest.ensure_removed(root, str(rel), reason="destroyed", by=d.actor,
                                    recording_id=rec_id, head=custody.head(db))  # fmt: skip
            outcome = fsio.remove_under(root, rel)
        except OSError as exc:  # EROFS, EIO: the drive's, named; nothing else changes
            drive = keeping.drive_name(copy.destination)
            why = f"the copy on {drive} could not be removed: {exc.strerror or exc}"
            catalog.stop(db, d.id, why, drive, keeping.topics)
            raise DestructionStopped(f"recording {rec_id} is still being destroyed: {why}; "
                                     "fix the drive, then run it again (or the daily pass "
                                     "finishes it)") from None  # fmt: skip
        removed.append({"destination": copy.destination, "relpath": copy.relpath,
                        "outcome": outcome})  # fmt: skip
    made = Destroyed(rec_id, d.relpath, tuple(c["destination"] for c in removed))
    try:
        catalog.record_destroyed(db, d, removed, keeping.topics)
    except Conflict:
        return made if mine else None
    log.info("recording %d destroyed by %s (%s)", rec_id, d.actor, d.reason)
    return made


def _untouched(keeping: Keeping, d: catalog.Planned) -> bool:
    return all(Path(*_path_of(keeping, c.destination, c.relpath)).exists() for c in d.copies)


def _halt_untouched(db: Database, keeping: Keeping, d: catalog.Planned, why: str) -> None:
    """``_halt`` when nothing of ``d`` was removed yet; else nothing (it is finished)."""
    if _untouched(keeping, d):
        _halt(db, keeping, d, why)


def _halt(db: Database, keeping: Keeping, d: catalog.Planned, why: str) -> None:
    """A destruction the rules no longer allow: back to live if every copy is still there,
    else it stays destroying, keeping what is left, and says why. Raises ``Refused``."""
    rec_id = d.recording_id
    if _untouched(keeping, d):
        catalog.abandon(db, d.id)
        log.warning("destruction of recording %d abandoned: %s", rec_id, why)
    else:
        catalog.stop(db, d.id, f"{why}; the remaining copy is kept", None, keeping.topics)
        log.warning("destruction of recording %d stopped: %s", rec_id, why)
    raise Refused(f"recording {rec_id} may not be destroyed: {why}")


def finish_pending(db: Database, keeping: Keeping, today: date) -> list[Destroyed]:
    """Finish destructions a crash (or a drive) interrupted, each step asking the rules first:
    one held since stays as it is, saying why; one a drive still refuses stays, alarmed."""
    done = []
    for d in catalog.pending(db):
        prove_all(keeping.drives)
        try:
            if (made := _finish(db, keeping, today, d)) is not None:
                done.append(made)
        except (Refused, DestructionStopped) as exc:
            log.warning("%s", exc)
    return done


def resume(db: Database, keeping: Keeping, today: date, rec_id: int) -> list[Destroyed]:
    """Finish the destruction of one recording left destroying (a list taken up again): a
    drive's error travels (``DestructionStopped``), a hold since is ``Refused``."""
    found = [d for d in catalog.pending(db) if d.recording_id == rec_id]
    if found:
        prove_all(keeping.drives)
    return [m for d in found if (m := _finish(db, keeping, today, d, mine=True)) is not None]
