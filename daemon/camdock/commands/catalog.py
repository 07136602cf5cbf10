"""``camdock catalog``: the catalog's backups to both drives (REG-4.3.2), its export (Annex 1)
and its restore from a drive when the SD card died, reconciled with the drives' manifests and
journal (issue 28)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

from camdock import forms
from camdock.catalog import custody, open_catalog, open_readonly, recordings, restored
from camdock.catalog.custody import Action
from camdock.catalog.db import write_txn
from camdock.commands import remote
from camdock.commands.common import (
    Where,
    by_from,
    day_text,
    moment_arg,
    opened,
    output,
    text_arg,
    where_from,
)
from camdock.commands.retention import common, keeping_of
from camdock.config import Config
from camdock.errors import CamdockError, ExitCode, Refused, UsageError
from camdock.services import backup, reconcile
from camdock.services import retention as service
from camdock.services.retention import Keeping

__all__ = ["add_parsers", "run"]


def add_parsers(sub: Any) -> None:
    """The ``catalog`` subcommands."""
    c = sub.add_parser("catalog", help="back up or restore the catalog (REG-4.3.2)")
    cs = c.add_subparsers(dest="action", required=True)
    b = cs.add_parser("backup", help="back the catalog up to both drives now")
    b.add_argument("--to", type=Path, action="append", metavar="ROOT", help="this drive root")
    common(b, by=False)
    ex = cs.add_parser("export", help="the catalog (Annex 1) for a duty day or an officer")
    ex.add_argument("--day", type=day_text, metavar="YYYY-MM-DD", help="a duty day")
    ex.add_argument(
        "--officer", type=text_arg, metavar="BADGE", help="an officer (with --from/--to)"
    )
    ex.add_argument("--from", dest="start", metavar="YYYY-MM-DD")
    ex.add_argument("--to", dest="end", metavar="YYYY-MM-DD")
    ex.add_argument("--format", choices=("csv", "json", "pdf"), default="csv")
    ex.add_argument("--out", type=Path, metavar="FILE", help="write here (PDF needs it)")
    common(ex, by=False)
    rest = cs.add_parser("restore", help="rebuild the catalog from a drive's backup")
    rest.add_argument(
        "--from",
        dest="source",
        type=Path,
        required=True,
        metavar="ROOT",
        help="a drive root (or its camdock-catalog folder)",
    )
    rest.add_argument(
        "--replace",
        action="store_true",
        help="replace an existing catalog (kept beside it as .replaced-…)",
    )
    rest.add_argument(
        "--reconcile-only",
        action="store_true",
        help="no backup: bring what the drives' manifests and journal show into this catalog",
    )
    common(rest)  # the daemon is stopped to restore its catalog: the config's hash proves who


def run(args: argparse.Namespace) -> int:
    """Run ``catalog`` (a CamdockError is reported by cli.main)."""
    if args.action == "restore":
        return _restore(args)
    handlers = {"backup": _backup, "export": _catalog_export}
    return handlers[args.action](args, where_from(args))


def _backup(args: argparse.Namespace, where: Where) -> int:
    roots = [str(p) for p in args.to] if args.to else sorted(keeping_of(where).roots or ())
    if not roots:
        raise UsageError("--to ROOT: a bare catalog has no drives to back up to")
    keeping = Keeping(
        keeping_of(where).policy,
        keeping_of(where).drives,
        frozenset(roots),
        keeping_of(where).topics,
    )
    alarms: list[str] = []
    with opened(where, write=True) as db:
        made = service.backup_everywhere(db, where.catalog, keeping, alarms)
    for a in alarms:
        print(f"camdock catalog backup: {a}", file=sys.stderr)
    output(
        args,
        {"ok": not alarms, "backups": made, "problems": alarms},
        lambda: [f"catalog backed up to {m}" for m in made],
    )
    return ExitCode.OK if not alarms else ExitCode.IOERR


def _a_stations(catalog: Path) -> bool:
    """Whether an existing catalog holds a station's staff or acts (commands/remote)."""
    try:
        db = open_readonly(catalog)
    except CamdockError:
        return False  # not a catalog: the restore says so itself
    try:
        return bool(remote.is_station(None, db))
    finally:
        db.close()


def _restore(args: argparse.Namespace) -> int:
    where = where_from(args)
    if where.cfg is not None:
        _daemon_stopped(where.cfg)
    by = _restorer(args, where)
    passed: list[str] = []
    made: backup.Backup | None = None
    if not args.reconcile_only:
        made, passed = backup.restore(args.source, where.catalog, replace=args.replace)
    elif not where.catalog.is_file():
        raise UsageError(f"--reconcile-only: no catalog at {where.catalog}")
    db = open_catalog(where.catalog)
    try:
        if made is not None:
            backup_head = restored.head(db)
            details = {"from": str(made.path), "sha256": made.sha256, "passed_over": passed,
                       "backup_head": backup_head}  # fmt: skip
            with write_txn(db):
                custody.append(db, Action.RESTORE, None, by, details)
            source, since = str(made.path), str(backup_head[2]) or None
        else:
            last = restored.last_restore(db)
            source = last.source if last else "(no restore recorded)"
            since = last.since if last else None
        # Issue 28: what happened after the backup comes back from the drives.
        back = reconcile.reconcile(db, _restore_roots(args.source, where, db), source, by, since)
        problems = custody.verify(db)
        entries, recordings = custody.count(db)
    finally:
        db.close()
    doc = {
        "ok": not problems and not back.not_restored,
        "restored_from": source,
        "sha256": made.sha256 if made else None,
        "catalog": str(where.catalog),
        "passed_over": passed,
        "custody_entries": entries,
        "recordings": recordings,
        "problems": problems,
        "by": by,
        "reconciled": back.as_json(),
    }
    output(args, doc, lambda: _restore_lines(doc, back))
    return ExitCode.OK if doc["ok"] else ExitCode.FAILED


def _daemon_stopped(cfg: Config) -> None:
    """A restore (or a reconcile) only while the station's daemon is stopped: under a running
    daemon, --replace moved the catalog it holds open aside, and what it did next went into the
    replaced file, not the restored one."""
    from camdock.adapters.control import listening

    path = remote.socket_path(cfg)
    if listening(path):
        raise CamdockError(
            f"the station daemon is running ({path}): stop it first (systemctl stop camdock), "
            "then restore; nothing was changed",
            ExitCode.TEMPFAIL,
        )


def _restorer(args: argparse.Namespace, where: Where) -> str:
    """Who restores, proven: with the station's config, the person's password against its
    staff (the catalog is gone, the daemon stopped: issue 27); a station's catalog never by a
    bare --catalog (anyone at the shell); a development catalog by the name given."""
    from camdock.core.access import refusal
    from camdock.services.access import acting

    if where.cfg is not None and remote.is_station(where.cfg, None):
        who = acting(where.cfg, remote.verify_locally(where.cfg, args, "restore"))
        if why := refusal(who.person, "restore"):
            raise Refused(why)
        return who.label
    if where.catalog.is_file() and _a_stations(where.catalog):
        raise CamdockError(f"{where.catalog} is a station's catalog: restore it with --config "
                           "(your password is checked against the station's staff)",
                           ExitCode.NOUSER)  # fmt: skip
    return acting(None, by_from(args)).label


def _restore_lines(doc: dict[str, Any], back: reconcile.Reconciled) -> list[str]:
    """The restore's report for a person."""
    catalog, source, by = doc["catalog"], doc["restored_from"], doc["by"]
    problems = doc["problems"]
    return [
        f"catalog {catalog} restored from {source} by {by}"
        if doc["sha256"]
        else f"catalog {catalog} reconciled with the drives by {by}",
        *(f"  passed over {p}" for p in doc["passed_over"]),
        f"brought back from the manifests: {len(back.recordings)} recording(s), "
        f"{len(back.copies)} more cop(ies); from the journal: {len(back.acts)} act(s), "
        f"{len(back.register)} register line(s)",
        *(f"  recording {r['id']}: {r['path']} ({r['manifest']})" for r in back.recordings),
        *(f"  {a}" for a in back.acts),
        *(f"  cannot come back: {n}" for n in back.not_restored),
        *(f"  ignored: {n}" for n in back.ignored),
        f"custody log: {doc['custody_entries']} entries, {doc['recordings']} recordings: "
        + ("intact" if not problems else f"{len(problems)} problem(s)"),
    ]


def _restore_roots(source: Path, where: Where, db: Any) -> list[Path]:
    """The drives to reconcile with: the one restored from, the config's, the catalog's."""
    src = source.parent if source.name == backup.BACKUP_DIR else source
    # Each drive once, under the name the catalog's copies give it (they are matched by it).
    named = [Path(r) for r in recordings.destinations(db)]
    named += [Path(d.root) for d in where.cfg.drives] if where.cfg is not None else []
    found: dict[Path, Path] = {}
    for p in [*named, src]:
        if p.is_dir():
            found.setdefault(p.resolve(), p)
    return sorted(found.values())


ANNEX1 = ["id", "duty_slot_start", "duty_slot", "officer_name", "officer_badge", "unit",
          "camera_id", "recorded_start", "recorded_end", "relpath", "size", "sha256",
          "ingested_at", "cleared_at", "retain_until", "destroy_by", "destroyed_at",
          "destroyed_by", "attribution", "time_note"]  # fmt: skip


def _catalog_export(args: argparse.Namespace, where: Where) -> int:
    """Annex 1 for a duty day or an officer, as CSV, JSON or the printed PDF."""
    if (args.day is None) == (args.officer is None):
        raise UsageError("give --day YYYY-MM-DD, or --officer BADGE [--from --to]")
    start = moment_arg(args.start, where, "--from")
    end = moment_arg(args.end, where, "--to", end=True)
    with opened(where, write=False) as db:
        found = recordings.listing(db, day=args.day, officer=args.officer,
                                   start=start.isoformat() if start else None,
                                   end=end.isoformat() if end else None)  # fmt: skip
    what = f"勤務日 duty day {args.day}" if args.day else f"員警 officer {args.officer}"
    if args.format == "pdf":
        if args.out is None:
            raise UsageError("--format pdf needs --out FILE")
        unit = where.cfg.unit if where.cfg else ""
        args.out.write_bytes(forms.pdf(forms.catalog_html(found, what, unit, where.tz)))
        return output(
            args,
            {"ok": True, "pdf": str(args.out), "recordings": len(found)},
            lambda: [f"catalog ({len(found)} recording(s)) written to {args.out}"],
        )
    if args.format == "json":
        doc = json.dumps({"catalog": [{k: getattr(r, k) for k in ANNEX1} for r in found]},
                         ensure_ascii=False)  # fmt: skip
    else:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(ANNEX1)
        w.writerows([[getattr(r, k) for k in ANNEX1] for r in found])
        doc = buf.getvalue()
    if args.out is not None:
        args.out.write_text(doc, encoding="utf-8-sig" if args.format == "csv" else "utf-8")
    else:
        print(doc, end="" if args.format == "csv" else "\n")
    return ExitCode.OK
