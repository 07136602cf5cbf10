"""Writing an approved copy's files onto the export medium (REG-5, Annex 3): each recording
from its plain copy, or out of its day's seal when the plain files are gone, through the
verified copier; and the README that goes with them."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sqlite_utils import Database

from camdock.adapters import archive, fsio
from camdock.adapters.copier import CopyJob, Destination, Hooks, StopFlags, VerifiedCopier
from camdock.catalog import recordings, seals
from camdock.catalog.recordings import Recording
from camdock.errors import CamdockError, ExitCode
from camdock.services.seal import Key

__all__ = ["README", "export"]


README = """這是依核准之調閱／複製申請書（附件二）第 {number} 號複製之微型攝影機影音資料。
內容不得外流或作其他用途。檢查檔案是否完整：在此資料夾執行

    sha256sum -c MANIFEST.sha256

每個檔案都應顯示「OK」。manifest.json 列出每個檔案的目錄清冊資料與 SHA-256。

Body-worn camera footage copied under approved access/copy request {number} (Annex 2).
It must not be disclosed or used for any other purpose. To check every file, run in this folder

    sha256sum -c MANIFEST.sha256

and every line must say OK. manifest.json lists each file's catalog entry and SHA-256.
Copied {time} by {by}.
"""


def export(db: Database, recs: list[Recording], out: Path, key: Key | None,
           dest: Destination | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Each recording onto the export medium, proven by reading it back from disk; ``dest``:
    the medium's folder as already opened (services/medium.py), else ``out`` pinned now."""
    dest = dest or Destination.pin(out)
    jobs, done = [], []
    for r in recs:
        name = PurePosixPath(r.relpath).name
        source = _plain_source(db, r)
        if source is None:  # its day's plain files are gone: out of the seal, checked
            source = _from_seal(db, r, out, key)
        temp = out / f".{name}.part"
        jobs.append(
            CopyJob(
                name,
                r.size,
                _opener(source),
                lambda fd, n: None,
                (),
                {dest.key: temp},
                (r, name, source),
            )
        )
    problems: list[str] = []

    def copied(c: Any) -> None:
        r, name, source = c.job.tag
        if c.error or c.sha256 != r.sha256 or c.size != r.size:
            problems.append(f"{name}: {c.error or 'does not read back as catalogued'}")
            return
        fsio.link_no_clobber(c.temps[dest.key], out / name)
        if source.parent.name == ".extract":
            fsio.unlink_quietly(source)
        done.append({"recording": r.id, "name": name, "sha256": c.sha256, "size": c.size})

    hooks = Hooks(on_copied=copied, on_failed=lambda job, e: problems.append(f"{job.label}: {e}"))
    VerifiedCopier([dest], hooks, StopFlags(), name="export").run(jobs)
    extract = out / ".extract"
    if extract.exists():
        for p in extract.iterdir():
            fsio.unlink_quietly(p)
        extract.rmdir()
    if problems:
        raise CamdockError("copy not made: " + "; ".join(problems), ExitCode.IOERR)
    return done


def _opener(path: Path) -> Any:
    return lambda: os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)


def _plain_source(db: Database, r: Recording) -> Path | None:
    for _, c in sorted(recordings.copies(db, r.id).items()):
        path = Path(c.destination, *PurePosixPath(c.relpath).parts)
        if not c.plain_removed_at and path.is_file():
            return path
    return None


def _from_seal(db: Database, r: Recording, out: Path, key: Key | None) -> Path:
    if key is None:
        raise CamdockError(
            f"recording {r.id} is only in its day's seal: the seal password "
            "is needed (--password-file)",
            ExitCode.NOINPUT,
        )
    day = datetime.fromisoformat(r.relpath[:10].replace("/", "-")).date()
    for seal in seals.current(db, day):
        names = {m[0]: m[1] for m in seal.listed()}
        if r.id in names and Path(seal.destination).is_dir():
            folder = out / ".extract"
            folder.mkdir(mode=0o700, exist_ok=True)
            target = folder / str(r.id)
            member = archive.Member(r.relpath, target, r.sha256, r.size)
            archive.extract(
                Path(seal.destination, *PurePosixPath(seal.path).parts),
                key.for_seal(seal.key_id),
                {names[r.id]: member},
            )
            return target
    raise CamdockError(f"recording {r.id}: no plain copy and no seal holds it", ExitCode.IOERR)
