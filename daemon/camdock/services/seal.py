"""The daily seal (REG-4.2.5): each duty day's recordings in an encrypted archive per
destination, checked against the catalog by reading it back, recorded, confirmed by a supervisor.

Sealing a day, per destination: the archive is journalled (``writing``), written under a temp
name beside the day's folder from that drive's own plain copies (each hashed on the way in and
compared with the catalog), read back from disk and checked member by member against the
catalog's list, and only then given its final name ``YYYY/MM/YYYYMMDD-<generation>.7z``. Once
every destination's archive is verified, one transaction makes them the day's seal (custody
entry, event). A crash at any moment leaves the plain files as they were and the seal absent or
complete: unfinished archives are removed by the next run (``recover``). A day that changes
after its seal (a late dock, a re-filing, a destruction) is sealed again as a new generation,
and the old archives go only after the new ones are recorded.

The plain files stay: removing them after sealing, and reading footage out of the archives, is
left for later (README).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from sqlite_utils import Database

from camdock import clock
from camdock.adapters import archive, fsio, ioprio
from camdock.adapters.drives import prove_all
from camdock.catalog import freezes, requests, seals
from camdock.catalog.db import file_of
from camdock.clock import iso_utc
from camdock.config import Config
from camdock.core import seal as core
from camdock.errors import CamdockError, Conflict, ExitCode, Refused
from camdock.events import Topics
from camdock.model import Drive
from camdock.services.sealkey import Key, SealKeyMissing, load_current, load_key, read_ring

__all__ = [
    "Key",
    "SealKeyMissing",
    "Sealed",
    "Sealing",
    "confirm_day",
    "load_current",
    "load_key",
    "read_ring",
    "recover",
    "remove_plain",
    "seal_day",
    "seal_pass",
    "verify_day",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sealing:
    """How this station seals: its key (None: none found, and why), destination roots in
    order (None: those the catalog records), drives to prove, where events go."""

    key: Key | None
    roots: tuple[str, ...] | None = None
    drives: tuple[Drive, ...] = ()
    topics: Topics | None = None
    missing: str | None = None  # why there is no key
    # True while the seal must give way (a bay is offloading): it stops within a block, the
    # unfinished generation is removed, the day stays due (the daemon; commands never pause).
    pause: Callable[[], bool] | None = None

    @classmethod
    def from_config(
        cls, cfg: Config, password_file: Path | None = None, key_dir: Path | None = None
    ) -> Sealing:
        """The station's roots, drives, topics and key (if it can be found), with its ring."""
        key, missing = None, None
        try:
            key = load_key(cfg.seal, password_file, key_dir)
        except SealKeyMissing as exc:
            missing = str(exc)
        return cls(
            key,
            tuple(str(d.root) for d in cfg.drives),
            cfg.drives if cfg.require_mounts else (),
            cfg.topics,
            missing,
        )

    def need_key(self) -> Key:
        """The key, or the reason there is none as an error."""
        if self.key is None:
            raise SealKeyMissing(self.missing or "no seal password")
        return self.key


def _file(root: str, rel: str) -> Path:
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts:
        raise CamdockError(f"seal path {rel} is not inside {root}", ExitCode.DATAERR)
    return Path(root, *path.parts)


@contextlib.contextmanager
def _sealing_lock(db: Database) -> Iterator[None]:
    """One seal at a time per catalog (the daemon's pass, a custodian's command): the next one's
    recovery must never take the running one's archive for a crash's leftover."""
    path = file_of(db)
    fd = os.open(f"{path}.seal.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CamdockError(
                "another seal is running on this catalog; try again when it has finished",
                ExitCode.TEMPFAIL,
            ) from None
        yield
    finally:
        os.close(fd)


def recover(db: Database) -> None:
    """Remove what a crash left: archives never recorded as verified (temp or final name) and
    superseded archives not yet removed."""
    stale = [s for s in seals.writing(db) if Path(s.destination).is_dir()]
    for s in stale:
        for rel in (s.temp_path, s.path):
            if rel:
                archive.discard(_file(s.destination, rel))
        day = date.fromisoformat(s.day)
        shutil.rmtree(_file(s.destination, _extract_dir(day, s.generation)), ignore_errors=True)
    if stale:
        seals.abandon(db, [s.id for s in stale])
    for s in seals.stale_files(db):
        if not Path(s.destination).is_dir():
            continue  # the drive is away: removed when it is back
        path = _file(s.destination, s.path)
        fsio.unlink_quietly(path)
        fsio.fsync_dir(path.parent)
        seals.mark_removed(db, s.id)


@dataclass(frozen=True)
class Sealed:
    """A day sealed: its generation, its members and each archive."""

    day: date
    generation: int
    members: int
    archives: tuple[seals.Written, ...]

    def as_json(self) -> dict[str, Any]:
        """For ``--json``."""
        return {
            "day": self.day.isoformat(),
            "generation": self.generation,
            "members": self.members,
            "archives": [a.as_json() for a in self.archives],
        }


def seal_day(
    db: Database, sealing: Sealing, day: date, by: str, by_id: str | None = None
) -> Sealed | None:
    """Seal ``day`` in every destination (a new generation if it was sealed before); None when
    the day has no recordings left and its old seal was retired. ``by_id``: the identity the
    seal is made under (a staff id, or ``station:<id>`` for the daemon's), which the
    confirming supervisor may not have; None: ``by``."""
    with _sealing_lock(db):
        return _seal_day(db, sealing, day, by, by_id or by)


def _seal_day(db: Database, sealing: Sealing, day: date, by: str, by_id: str) -> Sealed | None:
    key = sealing.need_key()
    if not key.password:  # a key ring alone reads seals; sealing needs the current key
        raise SealKeyMissing(
            f"no password for the current seal key {key.id}: a key ring reads "
            "seals made before, it does not make new ones"
        )
    recover(db)
    changes = seals.dirty(db).get(day.isoformat())
    members = seals.members_of(db, day)
    freezes.refuse_frozen(db, [m.id for m in members], f"sealing duty day {day}")
    if not members:
        if seals.current(db, day):
            seals.retire(db, day, by, sealing.topics)
            recover(db)
            return None
        raise CamdockError(f"no recordings filed under duty day {day}", ExitCode.NOINPUT)
    roots = sealing.roots or tuple(sorted({r for m in members for r in m.copies}))
    prove_all(sealing.drives)
    gen = seals.next_generation(db, day)
    expected = {m.relpath: (m.sha256, m.size) for m in members}
    jobs = []
    for root in roots:  # journalled here: the catalog's connection stays on this thread
        lacking = [m.relpath for m in members if root not in m.copies]
        if lacking:
            raise CamdockError(
                f"{root} holds no copy of {lacking[0]} (and {len(lacking) - 1} more): not sealed",
                ExitCode.IOERR,
            )
        name = f"{day:%Y%m%d}-{gen}.7z"
        rel, temp_rel = f"{day:%Y/%m}/{name}", f"{day:%Y/%m}/.{name}.tmp"
        begun = seals.Archive(day.isoformat(), gen, root, rel, temp_rel, key.id, by, by_id)
        jobs.append(_Job(seals.begin(db, begun), gen, root, rel, key.id))
    work = []
    for j in jobs:
        todo = _members(members, j.destination)
        if (old := _from_archive(db, day, members, j.destination, gen)) is not None:
            by_name = {t.name: t for t in old[1].values()}
            todo = [by_name.get(m.name, m) for m in todo]
        work.append((j, todo, old))
    # Each drive's archive is written and read back at once (threads: AES, SHA-256 and the
    # I/O release the GIL), so a day costs about one drive's time, not the sum of both.
    with ThreadPoolExecutor(len(work), thread_name_prefix="seal") as pool:
        futures = [
            pool.submit(_one_archive, j, todo, old, expected, key, sealing.pause)
            for j, todo, old in work
        ]
        errors = [f.exception() for f in futures]
    if failed := next((e for e in errors if e is not None), None):
        recover(db)  # this generation is never a seal: its archives go, the plain files stay
        raise failed
    done = [
        seals.Written(j.id, j.generation, j.destination, j.path, j.key_id, *f.result())
        for j, f in zip(jobs, futures, strict=True)
    ]
    listing: list[seals.Listed] = [(m.id, m.relpath, m.sha256, m.size) for m in members]
    seals.record_sealed(db, day, done, listing, by, changes, sealing.topics)
    recover(db)  # the previous generation's archives go now
    log.info("duty day %s sealed (generation %d, %d recordings) by %s", day, gen, len(members), by)
    return Sealed(day, gen, len(members), tuple(done))


@dataclass(frozen=True)
class _Job:
    """One drive's archive to write: its journalled row and where it goes."""

    id: int
    generation: int
    destination: str
    path: str
    key_id: str


def _members(members: list[seals.DayRecording], root: str) -> list[archive.Member]:
    """The day's recordings as one drive holds them (as plain files)."""
    return [
        archive.Member(m.relpath, _file(root, m.copies[root]), m.sha256, m.size) for m in members
    ]


_Old = tuple[Path, dict[str, "archive.Member"], str | None]  # archive, targets, its key id


def _from_archive(
    db: Database, day: date, members: list[seals.DayRecording], root: str, gen: int
) -> _Old | None:
    """For recordings whose plain file on ``root`` was removed after sealing: the archive in
    force there and, by its member names, where each is extracted to (a folder next to it).
    None when every plain file is there."""
    gone = [
        m
        for m in members
        if root in m.plain_removed or not os.path.lexists(_file(root, m.copies[root]))
    ]
    if not gone:
        return None
    seal = next((s for s in seals.current(db, day) if s.destination == root), None)
    if seal is None:
        raise archive.ArchiveError(
            f"{_file(root, gone[0].copies[root])} is gone and duty "
            f"day {day} has no seal on {root} to take it from"
        )
    names = {rec_id: name for rec_id, name, _, _ in seal.listed()}
    folder = _file(root, _extract_dir(day, gen))
    targets = {}
    for m in gone:
        if m.id not in names:
            raise archive.ArchiveError(
                f"recording {m.id} ({m.relpath}) is neither a plain file on {root} nor in its seal"
            )
        targets[names[m.id]] = archive.Member(m.relpath, folder / str(m.id), m.sha256, m.size)
    return _file(root, seal.path), targets, seal.key_id


def _extract_dir(day: date, gen: int) -> str:
    return f"{day:%Y/%m}/.{day:%Y%m%d}-{gen}.extract"


@ioprio.at_idle_io
def _one_archive(
    job: _Job,
    members: list[archive.Member],
    old: _Old | None,
    expected: dict[str, tuple[str, int]],
    key: Key,
    pause: Callable[[], bool] | None = None,
) -> tuple[str, int]:
    """Write one drive's archive under its temp name (taking recordings whose plain file is
    gone out of the archive in force first, each checked), read it back, check it, name it;
    returns the archive's SHA-256 and size."""
    root, rel = Path(job.destination), PurePosixPath(job.path)
    folder = fsio.make_dirs_durable(root, rel.parent.parts)
    temp = folder / f".{rel.name}.tmp"
    archive.discard(temp)
    if old is not None:
        extracted = next(iter(old[1].values())).source.parent
        shutil.rmtree(extracted, ignore_errors=True)
        extracted.mkdir(mode=0o700)
        archive.extract(old[0], key.for_seal(old[2]), old[1])
    archive.write(temp, members, key.password, pause=pause)
    if old is not None:
        shutil.rmtree(extracted, ignore_errors=True)
    back = archive.read_back(temp, key.password, pause)
    if problems := core.check(expected, back.members):
        raise archive.ArchiveError(
            f"{temp} does not match the catalog, not sealed: " + "; ".join(problems[:5])
        )
    fsio.link_no_clobber(temp, folder / rel.name)
    return back.sha256, back.size


def verify_day(db: Database, sealing: Sealing, day: date) -> list[str]:
    """Read the day's archives back from disk: each must be the archive recorded (hash, size)
    holding exactly the recorded members, and those must still be the catalog's list."""
    key = sealing.need_key()
    current = seals.current(db, day)
    if not current:
        return [f"duty day {day} has no seal"]
    problems = []
    recorded = {name: (sha, size) for _, name, sha, size in current[0].listed()}
    for s in current:
        path = _file(s.destination, s.path)
        try:
            back = archive.read_back(path, key.for_seal(s.key_id))
        except archive.ArchiveError as exc:
            problems.append(f"{exc} (sealed under key {s.key_id})")
            continue
        except SealKeyMissing as exc:
            problems.append(f"{path}: {exc}")
            continue
        if (back.sha256, back.size) != (s.sha256, s.size):
            problems.append(
                f"{path}: SHA-256 {back.sha256} ({back.size} bytes), sealed as "
                f"{s.sha256} ({s.size})"
            )
        problems += [f"{path}: {p}" for p in core.check(recorded, back.members)]
    now = {m.relpath: (m.sha256, m.size) for m in seals.members_of(db, day)}
    if now != recorded:
        problems.append(f"duty day {day} changed since it was sealed: a new seal is due")
    return problems


def confirm_day(
    db: Database, sealing: Sealing, day: date, by: str, by_id: str | None = None
) -> dict[str, Any]:
    """The supervisor confirms the day's seal (REG-4.2.5); refused for a day not sealed (or
    changed since), or confirmed by the custodian who sealed it; one already confirmed is a
    ``Conflict`` naming who and when, recorded as a refusal. All checked in the write."""
    try:
        gen = seals.confirm(db, day, by, sealing.topics, by_id)
    except Refused as exc:
        if not isinstance(exc, Conflict):  # their own seal, a day not sealed: recorded too
            requests.record_refusal(
                db, by, "confirm", None, str(exc), sealing.topics, {"day": day.isoformat()}
            )
            raise
        requests.record_refusal(
            db,
            by,
            "confirm",
            None,
            exc.what,
            sealing.topics,
            {"day": day.isoformat(), "conflict": True, "first_by": exc.by, "first_at": exc.at},
        )
        raise
    return {"day": day.isoformat(), "generation": gen, "by": by}


def remove_plain(db: Database, sealing: Sealing, keep_days: int, by: str) -> list[str]:
    """Remove the plain files of days sealed and confirmed at least ``keep_days`` ago, drive by
    drive, each only after that drive's archive is read back from disk now and found to hold
    every one of them (REG-4.2.5). Returns what could not be done (alarms)."""
    key = sealing.need_key()
    cutoff = iso_utc(clock.now() - timedelta(days=keep_days))
    problems = []
    with _sealing_lock(db):
        for seal in seals.plain_due(db, cutoff):
            root, day = seal.destination, date.fromisoformat(seal.day)
            if not Path(root).is_dir():
                continue  # the drive is away: next time
            try:
                prove_all(tuple(d for d in sealing.drives if str(d.root) == root))
                members = [m for m in seals.members_of(db, day) if root not in m.plain_removed]
                names = {i: (name, sha, size) for i, name, sha, size in seal.listed()}
                back = archive.read_back(
                    _file(root, seal.path), key.for_seal(seal.key_id), sealing.pause
                )
                for m in members:
                    listed = names.get(m.id)
                    if (
                        listed is None
                        or listed[1:] != (m.sha256, m.size)
                        or back.members.get(listed[0]) != listed[1:]
                    ):
                        raise archive.ArchiveError(
                            f"{root}/{seal.path} does not hold {m.relpath} as catalogued"
                        )
                for m in members:
                    fsio.remove_under(Path(root), PurePosixPath(m.copies[root]))
                seals.record_plain_removed(db, seal, [m.id for m in members], by)
                log.info(
                    "plain files of duty day %s removed from %s (sealed in %s)",
                    day,
                    root,
                    seal.path,
                )
            except archive.ArchivePaused:
                break  # a bay is offloading: next time
            except CamdockError as exc:
                problems.append(f"plain files of duty day {day} stay on {root}: {exc}")
    return problems


@ioprio.at_idle_io
def seal_pass(
    db: Database,
    sealing: Sealing,
    today: date,
    by: str,
    after_days: int,
    keep_plain_days: int | None = None,
) -> tuple[list[Sealed], list[str]]:
    """The daemon's daily part: seal every past day that changed, remove plain files the
    config lets go, then today's alarms."""
    made, alarms = [], []
    if sealing.key is None:
        alarms.append(f"days cannot be sealed: {sealing.missing}")
    else:
        for day in core.due_days(seals.dirty(db), today):
            if not seals.members_of(db, day) and not seals.current(db, day):
                seals.clean(db, day)  # nothing filed under it (all destroyed before a seal)
                continue
            try:
                if (s := seal_day(db, sealing, day, by)) is not None:
                    made.append(s)
            except archive.ArchivePaused:
                log.info("sealing duty day %s paused: a bay is offloading", day)
                break  # the day stays due; the daemon tries again once the bays are idle
            except CamdockError as exc:
                alarms.append(f"duty day {day} could not be sealed: {exc}")
        if keep_plain_days is not None:
            alarms += remove_plain(db, sealing, keep_plain_days, by)
    alarms += core.alarms(today, seals.dirty(db), seals.unconfirmed_days(db), after_days)
    return made, alarms
