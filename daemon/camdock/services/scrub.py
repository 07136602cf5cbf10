"""The background scrub (REG-7.2): every stored copy read back from disk again, a few at a
time, the ones proven longest ago first, so all footage is covered every ``[scrub] days``.

A copy that is missing, changed or unreadable is an alarm (custody ``damage`` entry and a
``copy-damaged`` event), and is repaired from a copy on another drive that reads back intact
now: written with the verified copier under a temp name beside it, read back, and only then put
in its place (custody ``repair``, ``copy-repaired``). A recording with no good copy left is
reported loudly, every pass, and never dropped from the catalog.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from sqlite_utils import Database

from camdock.adapters import fsio
from camdock.adapters.copier import CopyJob, Destination, Hooks, StopFlags, VerifiedCopier
from camdock.catalog import freezes, recordings
from camdock.catalog import scrub as catalog
from camdock.catalog.scrub import DueCopy
from camdock.events import Topics

__all__ = ["ScrubResult", "scrub_step"]

log = logging.getLogger(__name__)


@dataclass
class ScrubResult:
    """What one step proved, found and repaired."""

    proven: int = 0
    bytes: int = 0
    damaged: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # no good copy left anywhere
    frozen: list[str] = field(default_factory=list)  # the catalog and the chain disagree


def _path(copy: DueCopy) -> Path:
    return Path(copy.destination, *PurePosixPath(copy.relpath).parts)


def _check(path: Path, sha256: str, size: int) -> str | None:
    """What is wrong with one copy on disk, or None."""
    try:
        digest, got = fsio.disk_sha256(path)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    if (digest, got) != (sha256, size):
        return f"changed: SHA-256 {digest} ({got} bytes)"
    return None


def scrub_step(db: Database, budget: int, topics: Topics | None,
               present: set[str] | None = None) -> ScrubResult:  # fmt: skip
    """Prove copies (oldest proof first) until ``budget`` bytes were read; repair what is
    damaged. ``present``: the destination roots that are there now (None: any that exist)."""
    result = ScrubResult()
    ok: list[tuple[int, str]] = []
    for copy in catalog.due(db, max(1, budget // (1 << 20)) + 16):
        if result.bytes >= budget:
            break
        root = copy.destination
        if (present is not None and root not in present) or not Path(root).is_dir():
            continue  # a drive that is away is the drive watcher's alarm, not damage
        if not copy.agrees or catalog.chain_disagrees(db, copy):  # frozen (issue 26)
            _disagrees(db, copy, result)
            continue
        result.bytes += copy.size
        what = _check(_path(copy), copy.sha256, copy.size)
        if what is None:
            ok.append((copy.recording_id, root))
            result.proven += 1
            continue
        _damaged(db, copy, what, topics, result)
    if ok:
        catalog.proven(db, ok)
    return result


def _disagrees(db: Database, copy: DueCopy, result: ScrubResult) -> None:
    if copy.chained_sha256 is None:
        why = "no 'store' entry in the custody chain"
    elif differs := catalog.chain_disagrees(db, copy):
        why = differs
    elif copy.copy_sha256 != copy.sha256:
        why = f"its copy on {copy.destination} is catalogued with another hash"
    else:
        why = (f"the catalog says SHA-256 {copy.sha256} ({copy.size} bytes), the custody chain "
               f"{copy.chained_sha256} ({copy.chained_size} bytes)")  # fmt: skip
    result.frozen.append(f"recording {copy.recording_id}: {why}")
    if freezes.freeze(db, copy.recording_id, why, "camdock scrub"):
        log.critical("recording %d frozen: %s; nothing is repaired, destroyed, sealed or handed "
                     "out until an auditor resolves it", copy.recording_id, why)  # fmt: skip


def _damaged(db: Database, copy: DueCopy, what: str, topics: Topics | None,
             result: ScrubResult) -> None:  # fmt: skip
    path = _path(copy)
    log.error("copy %s of recording %d is %s", path, copy.recording_id, what)
    result.damaged.append(f"{path}: {what}")
    others = [replace(copy, destination=d, relpath=c.relpath, proven_at=c.proven_at)
              for d, c in recordings.copies(db, copy.recording_id).items()
              if d != copy.destination and not c.plain_removed_at]  # fmt: skip
    good = [o for o in others if Path(o.destination).is_dir()
            and _check(_path(o), o.sha256, o.size) is None]  # fmt: skip
    catalog.record_damage(db, copy, what, [str(_path(o)) for o in good], topics)
    if not good:
        log.critical("recording %d has no good copy left (%s)", copy.recording_id, path)
        result.lost.append(str(path))
        return
    try:
        _repair(copy, good[0])
    except (OSError, RuntimeError) as exc:
        log.error("repair of %s failed: %s", path, exc)
        return
    catalog.record_repair(db, copy, str(_path(good[0])), topics)
    result.repaired.append(str(path))


def _repair(copy: DueCopy, good: DueCopy) -> None:
    """Write the good copy beside the damaged one with the verified copier, read it back, then
    put it in place (the damaged bytes are not evidence: the hash the custody chain gave the
    recording is, and the catalog agrees with it, or nothing is repaired)."""
    rel = PurePosixPath(copy.relpath)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise RuntimeError(f"{copy.relpath!r} is not a path inside the drive: not repaired")
    target = _path(copy)
    folder = fsio.make_dirs_durable(Path(copy.destination),
                                    PurePosixPath(copy.relpath).parent.parts)  # fmt: skip
    dest = Destination.pin(folder)
    temp = folder / f".camdock-repair-{target.name}.part"
    fsio.unlink_quietly(temp)
    source = _path(good)
    job = CopyJob(target.name, copy.size,
                  lambda: os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC),
                  lambda fd, n: None, (), {dest.key: temp})  # fmt: skip
    done: list[Any] = []
    failed: list[str] = []
    hooks = Hooks(on_copied=done.append, on_failed=lambda j, e: failed.append(e))
    VerifiedCopier([dest], hooks, StopFlags(), name="repair").run([job])
    if failed or not done or done[0].error or done[0].sha256 != copy.sha256:
        fsio.unlink_quietly(temp)
        raise RuntimeError(failed[0] if failed else "the repaired copy does not read back")
    os.replace(temp, target)
    fsio.fsync_dir(folder)
