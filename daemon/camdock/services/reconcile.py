"""A catalog that comes back whole (REG-4.3.2, REG-7.1; issue 28 item 5): after
``camdock catalog restore`` put back the newest sound backup, what happened since it comes back
from the drives.

- **Footage**: every file in a drive's ``YYYY/MM/DD`` folders the catalog does not know is
  checked against the day manifests of every drive (size, SHA-256 read from disk now) and, when
  a manifest line says it is there with those bytes, catalogued again: its recording row as the
  line gives it (under its old id when free, so holds and requests naming it still do), a copy
  row for each drive it is verified on, and a ``store`` custody entry that says "restored from
  manifest", naming the backup and the manifest line, chained like every other entry.
- **Holds, requests, register lines**: the journal lines on the drives after the backup's chain
  head (and not already in the chain) are replayed in order: each covered row is made what the
  line says, each register line added under its number, and each act gets a custody entry
  "restored from journal" naming the line.
- **What cannot come back** is listed by name: a file no manifest line vouches for (or whose
  bytes differ from it), a manifest line whose file is on no drive, a journal row that names
  what is not here.

Running it again changes nothing: what it brought back is then known to the catalog.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from camdock.adapters import fsio, manifest
from camdock.catalog import custody, journal, restored
from camdock.catalog.custody import Action
from camdock.catalog.db import write_txn
from camdock.clock import utcnow

__all__ = ["Reconciled", "reconcile"]

log = logging.getLogger(__name__)

_YEAR = re.compile(r"^\d{4}$")


@dataclass
class Reconciled:
    """What came back, and what could not (each by name)."""

    recordings: list[dict[str, Any]] = field(default_factory=list)  # id, path, drives
    copies: list[str] = field(default_factory=list)  # root:path added to a known recording
    acts: list[str] = field(default_factory=list)  # journal lines replayed
    register: list[int] = field(default_factory=list)
    not_restored: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # torn or foreign manifest/journal lines

    def as_json(self) -> dict[str, Any]:
        """As ``--json`` shows it."""
        return {
            "recordings": self.recordings,
            "copies": self.copies,
            "acts": self.acts,
            "register": self.register,
            "not_restored": self.not_restored,
            "ignored": self.ignored,
        }

    @property
    def changed(self) -> bool:
        """Whether anything was brought back."""
        return bool(self.recordings or self.copies or self.acts or self.register)


def _footage(root: Path) -> list[str]:
    """Every footage file on a drive (relpaths), leaving out temps and manifests."""
    found: list[str] = []
    if not root.is_dir():
        return found
    for year in sorted(p for p in root.iterdir() if _YEAR.match(p.name) and p.is_dir()):
        for dirpath, dirnames, filenames in os.walk(year):
            dirnames[:] = [d for d in dirnames if not d.endswith(".extract")]
            for name in filenames:
                if name.startswith(".") or name in manifest.NAMES:
                    continue
                path = Path(dirpath, name)
                if path.is_file() and not path.is_symlink():
                    found.append(str(path.relative_to(root)))
    return sorted(found)


def reconcile(
    db: Database, roots: list[Path], backup: str, by: str, since: str | None = None
) -> Reconciled:
    """Bring back into ``db`` what the drives ``roots`` show happened after ``backup`` (the
    restored generation; ``since``: its chain head's time, for the journal)."""
    out = Reconciled()
    _footage_back(db, roots, backup, by, out)
    _journal_back(db, roots, backup, by, since, out)
    return out


def _footage_back(db: Database, roots: list[Path], backup: str, by: str, out: Reconciled) -> None:
    lives: dict[Path, dict[str, manifest.Line]] = {}
    for root in roots:
        m = manifest.read(root)
        out.ignored += [f"{root}/{i}" for i in m.ignored]
        lives[root] = m.live()
    known = restored.copies_known(db)
    # relpath → the drives it is on unknown to the catalog
    unknown: dict[str, list[Path]] = {}
    on_disk: dict[Path, set[str]] = {}
    for root in roots:
        on_disk[root] = set(_footage(root))
        for rel in on_disk[root]:
            if (str(root), rel) not in known:
                unknown.setdefault(rel, []).append(root)
    for rel, where in sorted(unknown.items()):
        lines = [lives[r][rel] for r in roots if rel in lives[r]]
        if not lines:
            out.not_restored += [f"{r / rel}: no manifest line names it" for r in where]
            continue
        line = lines[0]
        want, size = str(line.data["sha256"]), line.data.get("size")
        good: list[Path] = []
        for r in where:
            have, got = fsio.disk_sha256(r / rel)
            if have != want or (size is not None and got != size):
                out.not_restored.append(
                    f"{r / rel}: its bytes match no manifest line "
                    f"({have[:12]}…, {got} bytes; {line.where} says "
                    f"{want[:12]}…, {size} bytes)"
                )
            else:
                good.append(r)
        if good:
            _bring_back(db, rel, line, good, backup, by, out)
    # A manifest line whose file is on no drive and that the catalog does not know.
    known = restored.copies_known(db)
    for root in roots:
        for rel, line in sorted(lives[root].items()):
            if any(rel in on_disk[r] for r in roots) or any((str(r), rel) in known for r in roots):
                continue
            if restored.by_relpath(db, rel) is None:
                out.not_restored.append(f"{root}/{line.where}: {rel} is on no drive")


def _bring_back(
    db: Database,
    rel: str,
    line: manifest.Line,
    good: list[Path],
    backup: str,
    by: str,
    out: Reconciled,
) -> None:
    data = line.data
    now = utcnow()
    with write_txn(db):
        rec = restored.by_relpath(db, rel)
        if rec is not None and (rec.sha256 != data["sha256"] or rec.destroyed_at):
            out.not_restored.append(
                f"{rel}: the catalog files another or a destroyed "
                f"recording ({rec.id}) under this name"
            )
            return
        fresh = rec is None
        if rec is None:
            row = {k: data.get(k) for k in manifest.RECORDING_FIELDS}
            raw = row.get("original_name_raw")
            row["original_name_raw"] = bytes.fromhex(raw["hex"]) if isinstance(raw, dict) else raw
            row.update(
                sha256=data["sha256"], relpath=rel, ingested_at=data.get("time") or now, hold=0
            )
            rec_id = restored.insert_recording(db, row, data.get("recording"))
        else:
            rec_id = rec.id
        for r in good:
            restored.add_copy(db, rec_id, str(r), rel, data["sha256"], now)
        custody.append(
            db,
            Action.STORE,
            rec_id,
            by,
            {
                "restored": "from manifest",
                "backup": backup,
                "manifest": f"{good[0]}/{line.where}",
                "sha256": data["sha256"],
                "size": data.get("size"),
                "path": rel,
                "destinations": [str(r) for r in good],
                "camera": data.get("camera_id"),
                "officer": data.get("officer_badge"),
            },
        )
    if fresh:
        out.recordings.append(
            {
                "id": rec_id,
                "path": rel,
                "drives": [str(r) for r in good],
                "manifest": f"{good[0]}/{line.where}",
            }
        )
    else:
        out.copies += [f"{r}:{rel}" for r in good]


def _journal_back(
    db: Database, roots: list[Path], backup: str, by: str, since: str | None, out: Reconciled
) -> None:
    seen: dict[str, journal.Read] = {}
    for root in roots:
        lines, ignored = journal.read(root)
        out.ignored += ignored
        for line in lines:
            entries = line.data.get("entries") or []
            ident = entries[0]["hash"] if entries else repr(line.data.get("register"))
            seen.setdefault(ident, line)
    chained = restored.chain_hashes(db)
    ordered = sorted(
        seen.values(), key=lambda r: min((e["time"] for e in r.data["entries"]), default="")
    )
    for line in ordered:
        entries = [
            e
            for e in line.data["entries"]
            if e["hash"] not in chained and (since is None or e["time"] > since)
        ]
        if not entries:
            continue
        with write_txn(db):
            changed, problems = False, []
            for e in entries:
                for s in e.get("rows") or []:
                    if s["table"] not in journal.TABLES:
                        continue
                    key = _key(s["key"])
                    if (
                        s["table"] == "request_recordings"
                        and s["state"] is not None
                        and restored.state_of(db, "recordings", [key[1]]) is None
                    ):
                        problems.append(
                            f"{line.where}: request {key[0]} names recording "
                            f"{key[1]}, which is not here"
                        )
                        continue
                    changed |= restored.put_state(db, s["table"], key, s["state"])
            for reg in line.data.get("register") or []:
                added, why = restored.put_register(db, reg)
                if why:
                    problems.append(f"{line.where}: {why}")
                if added:
                    out.register.append(int(reg["id"]))
                    changed = True
            out.not_restored += problems
            if not changed:
                continue
            first = entries[0]
            try:
                action = Action(first["action"])
            except ValueError:
                action = Action.STATE
            custody.append(
                db,
                action,
                first.get("recording_id"),
                by,
                {
                    "restored": "from journal",
                    "backup": backup,
                    "journal": line.where,
                    "original": [
                        {k: e[k] for k in ("seq", "hash", "time", "action", "actor", "details")}
                        for e in entries
                    ],
                },
            )
            out.acts.append(f"{line.where}: {', '.join(e['action'] for e in entries)}")


def _key(key: str) -> list[Any]:
    import json

    found = json.loads(key)
    return list(found)
