"""The audit (REG-7.1, REG-7.2): the custody chain against the heads kept elsewhere, and the
fixity of every stored copy read back from disk.

``chain`` checks the hash chain itself, the recordings and copies against it, and the chain
against every head seen outside the SD card: the drives' heads files and, given one, the
server's witness (``camdock monitor --witness FILE``). ``fixity`` re-hashes every copy past the
page cache (a sealed day's archive, once its plain files are gone, member by member) and walks
the drives for footage the catalog does not know.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, tzinfo
from pathlib import Path, PurePosixPath
from typing import Any

from sqlite_utils import Database

from camdock.adapters import archive, fsio, heads, manifest
from camdock.catalog import chainkey, custody, freezes, recordings, report, seals
from camdock.catalog import retention as retention_rows
from camdock.catalog.recordings import LiveCopy
from camdock.catalog.seals import Seal, SealState
from camdock.clock import iso_utc
from camdock.services.seal import Key, SealKeyMissing

__all__ = [
    "Finding",
    "chain",
    "fixity",
    "heads_to",
    "period_report",
    "publish_head",
    "roots_of",
    "witness_heads",
]

log = logging.getLogger(__name__)

_YEAR = re.compile(r"^\d{4}$")


def publish_head(db: Database, roots: list[str] | tuple[str, ...]) -> None:
    """Append the chain's head to every present drive's heads file (a drive that is away gets
    the next one). Never raises: a head not written is logged, the next one follows."""
    heads_to(roots, *custody.head(db))


def heads_to(roots: list[str] | tuple[str, ...], seq: int, digest: str) -> None:
    """Append the head ``seq``/``digest`` to every present drive's heads file."""
    for root in roots:
        if Path(root).is_dir():
            try:
                heads.append(Path(root), seq, digest)
            except OSError as exc:
                log.warning("custody head not written to %s: %s", root, exc.strerror or exc)


def roots_of(db: Database) -> list[str]:
    """The destination roots the catalog records copies on (a bare catalog's drives)."""
    return recordings.destinations(db)


def witness_heads(path: Path, station: str | None) -> tuple[list[tuple[int, str]], list[str]]:
    """The heads in a witness file (JSON lines from ``camdock monitor --witness``)."""
    found, bad = [], []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        return [], [f"witness {path}: {exc.strerror}"]
    for n, line in enumerate(lines, 1):
        try:
            w = json.loads(line)
            if station is None or w.get("station") == station:
                found.append((int(w["custody"]["seq"]), str(w["custody"]["hash"])))
        except (ValueError, KeyError, TypeError):
            bad.append(f"witness {path}:{n}: not a witness line")
    return found, bad


def chain(
    db: Database,
    roots: list[str],
    witness: Path | None = None,
    station: str | None = None,
    key: bytes | None = None,
) -> list[str]:
    """Every problem with the custody chain, its MACs (under ``key``, else this process's chain
    key when it has one), the catalog against it, and the chain against the heads on the
    drives and in the witness."""
    problems = custody.verify(db)
    problems += custody.verify_keys(db, key or chainkey.current())[0]
    problems += [
        f"recording {f.recording_id}: frozen since {f.found_at}: {f.reason} (camdock "
        f"audit resolve --recording {f.recording_id} --by AUDITOR --reason …)"
        for f in freezes.open_freezes(db)
    ]
    for root in roots:
        seen, bad = heads.read(Path(root))
        problems += bad + custody.verify_heads(db, seen, f"heads file on {root}")
    if witness is not None:
        seen, bad = witness_heads(witness, station)
        problems += bad + custody.verify_heads(db, seen, f"witness {witness}")
    return problems


@dataclass(frozen=True)
class Finding:
    """One thing wrong with the footage on a drive."""

    kind: str  # missing | changed | unreadable | extra | archive | destroying
    path: str
    recording: int | None
    detail: str

    def as_json(self) -> dict[str, Any]:
        """For ``--json``."""
        return {
            "kind": self.kind,
            "path": self.path,
            "recording": self.recording,
            "detail": self.detail,
        }

    def __str__(self) -> str:
        rec = f" (recording {self.recording})" if self.recording is not None else ""
        return f"{self.kind.upper()} {self.path}{rec}: {self.detail}"


def fixity(
    db: Database,
    roots: list[str],
    key: Key | None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[Finding], int]:
    """Re-hash every stored copy from disk and look for footage nobody catalogued; returns the
    findings and how many copies were proven."""
    findings: list[Finding] = []
    copies = recordings.live_copies(db)
    # Being destroyed (issue 28): a copy its destruction removed is that, not a missing copy.
    going = {d.recording: d for d in retention_rows.destroying(db)}
    sealed = seals.archives_on_drives(db)
    archives = {(s.destination, s.path): s for s in sealed}
    in_archive: dict[tuple[str, str], list[LiveCopy]] = {}
    proven = 0
    for n, c in enumerate(copies, 1):
        if progress is not None:
            progress(n, len(copies))
        root, rel = c.destination, PurePosixPath(c.relpath)
        path = Path(root, *rel.parts)
        if c.plain_removed_at:
            seal = _seal_holding(sealed, root, c.recording_id)
            if seal is None:
                findings.append(
                    Finding(
                        "missing",
                        str(path),
                        c.recording_id,
                        "plain file removed and no seal holds it",
                    )
                )
            else:
                in_archive.setdefault((root, seal.path), []).append(c)
            continue
        try:
            digest, size = fsio.disk_sha256(path)
        except FileNotFoundError:
            if (d := going.get(c.recording_id)) is not None:
                findings.append(Finding("destroying", str(path), c.recording_id,
                                        f"removed by its destruction (by {d.actor}, since "
                                        f"{d.since}), not finished"
                                        + (f": {d.stopped_reason}" if d.stopped_reason
                                           else "")))  # fmt: skip
            else:
                findings.append(Finding("missing", str(path), c.recording_id, "not on the drive"))
            continue
        except OSError as exc:
            findings.append(
                Finding("unreadable", str(path), c.recording_id, exc.strerror or str(exc))
            )
            continue
        if (digest, size) != (c.sha256, c.size):
            findings.append(
                Finding(
                    "changed",
                    str(path),
                    c.recording_id,
                    f"SHA-256 {digest} ({size} bytes), catalogued {c.sha256} ({c.size})",
                )
            )
        else:
            proven += 1
    for where, members in sorted(in_archive.items()):
        proven += _check_archive(archives[where], members, key, findings)
    for where, seal in sorted(archives.items()):
        if where not in in_archive:
            _check_archive(seal, [], key, findings)
    for root in roots:
        known = {c.relpath for c in copies if c.destination == root}
        findings += _extra(root, known, {rel for (r, rel) in archives if r == root})
    return findings, proven


def _seal_holding(sealed: list[Seal], root: str, rec_id: int) -> Seal | None:
    for s in sealed:
        if (
            s.state is SealState.VERIFIED
            and s.destination == root
            and any(m[0] == rec_id for m in s.listed())
        ):
            return s
    return None


def _check_archive(
    seal: Seal, members: list[LiveCopy], key: Key | None, findings: list[Finding]
) -> int:
    """A seal's archive from disk: its hash, and (with the key) every member; returns how many
    of ``members`` (copies living only there) it proved."""
    path = Path(seal.destination, *PurePosixPath(seal.path).parts)
    try:
        if key is None:
            digest, size = fsio.disk_sha256(path)
            found: dict[str, tuple[str, int]] = {}
        else:
            back = archive.read_back(path, key.for_seal(seal.key_id))
            digest, size, found = back.sha256, back.size, back.members
    except FileNotFoundError:
        findings.append(Finding("missing", str(path), None, f"the seal of {seal.day}"))
        return 0
    except (OSError, archive.ArchiveError, SealKeyMissing) as exc:
        why = str(exc) if isinstance(exc, SealKeyMissing) else f"{exc} (key {seal.key_id})"
        findings.append(Finding("archive", str(path), None, why))
        return 0
    if (digest, size) != (seal.sha256, seal.size):
        findings.append(
            Finding(
                "archive",
                str(path),
                None,
                f"SHA-256 {digest} ({size} bytes), sealed as {seal.sha256} ({seal.size})",
            )
        )
        return 0
    if key is None:
        return 0
    names = {m[0]: m[1] for m in seal.listed()}
    proven = 0
    for c in members:
        name = names.get(c.recording_id, "")
        if found.get(name) == (c.sha256, c.size):
            proven += 1
        else:
            why = "the archive's member is not the catalogued recording"
            findings.append(Finding("changed", f"{path}:{name}", c.recording_id, why))
    return proven


def _extra(root: str, known: set[str], archives: set[str]) -> list[Finding]:
    """Files in a drive's footage folders (YYYY/...) the catalog does not know, leaving out
    camdock's own work in progress (temp names)."""
    findings = []
    base = Path(root)
    if not base.is_dir():
        return [Finding("missing", root, None, "the drive is not there")]
    for year in sorted(p for p in base.iterdir() if _YEAR.match(p.name) and p.is_dir()):
        for dirpath, dirnames, filenames in os.walk(year):
            dirnames[:] = [d for d in dirnames if not d.endswith(".extract")]
            for name in filenames:
                rel = str(Path(dirpath, name).relative_to(base))
                if name.startswith(".") and (name.endswith((".tmp", ".part"))):
                    continue  # an offload or seal in progress, or a crash's leftover
                if name in manifest.NAMES:
                    continue  # the day's manifest (adapters/manifest.py), not footage
                if rel not in known and rel not in archives:
                    findings.append(
                        Finding(
                            "extra",
                            str(Path(dirpath, name)),
                            None,
                            "on the drive, not in the catalog",
                        )
                    )
    return findings


def period_report(
    db: Database,
    tz: tzinfo,
    first: date,
    last: date,
    today: date,
    problems: list[str],
    findings: list[Finding],
    auditor: str | None,
    full: bool,
) -> dict[str, Any]:
    """The six-monthly report's figures (REG-7.2, REG-7.3) for ``first`` … ``last`` (days in
    the station's zone), with the chain's problems and the fixity findings of this audit."""
    start = datetime.combine(first, time.min, tz).astimezone(UTC)
    end = datetime.combine(last, time.max, tz).astimezone(UTC)
    doc = report.period(
        db, iso_utc(start), iso_utc(end), first.isoformat(), last.isoformat(), today.isoformat()
    )
    retention = doc["retention"]
    retention["destroyed_early"] = [  # REG-4.3.1 on the station's calendar day
        r
        for r in retention["destroyed_early"]
        if datetime.fromisoformat(r["destroyed_at"]).astimezone(tz).date()
        < date.fromisoformat(r["retain_until"])
    ]
    lines, entries = doc["register"]["lines"], doc["register"]["custody_entries"]
    # Independent sources (issue 27): the lines against the custody entries, and against the
    # stream log and the destructions (written apart from the register; ``missing``).
    doc["register"]["complete"] = not doc["register"]["missing"] and all(
        lines.get(k, 0) == entries.get(k, 0) for k in set(lines) | set(entries)
    )
    doc["fixity"]["findings"] = [str(f) for f in findings]
    doc["chain_problems"] = problems
    doc["period"] = {"from": first.isoformat(), "to": last.isoformat()}
    doc["by"] = auditor
    doc["full"] = full
    return doc
