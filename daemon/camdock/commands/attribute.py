"""``camdock attribute``: the custodian's unattributed queue (REG-4.2.4), and filing one of its
recordings under the officer who made it — both copies re-filed, proven, and in the custody log
with the person who decided it (REG-7.1)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from camdock import protocol
from camdock.catalog import open_catalog, open_readonly, recordings
from camdock.catalog.db import DatabaseError, catalog_error
from camdock.commands import remote
from camdock.commands.common import check_person, default_catalog, load_or_report, person
from camdock.config import Config
from camdock.errors import CamdockError, ExitCode, UsageError
from camdock.model import Officer
from camdock.services.attribute import attribute_recording

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    """The ``attribute`` subcommand's options."""
    p = sub.add_parser(
        "attribute",
        help="list unattributed recordings, or file one under its officer (REG-4.2.4)",
        description="Footage whose camera had no assigned officer when it was recorded is "
        "filed under YYYY/MM/DD/unattributed/. --list shows that queue; RECORDING --officer "
        "BADGE --by STAFF re-files both copies under the officer's name, verified, with a "
        "custody entry naming STAFF.",
    )
    p.add_argument("recording", type=int, nargs="?", metavar="RECORDING", help="catalog id")
    p.add_argument("--list", action="store_true", help="the unattributed recordings")
    p.add_argument("--officer", metavar="BADGE", help="the officer who made the recording")
    p.add_argument("--name", metavar="NAME", help="the officer's name (without --config)")
    p.add_argument("--unit", default="", metavar="UNIT", help="the officer's unit")
    p.add_argument("--by", metavar="STAFF", help="who decides this (recorded in the custody log)")
    remote.add_credentials(p)
    p.add_argument("--config", type=Path, metavar="FILE", help="the station's config")
    p.add_argument("--catalog", type=Path, metavar="FILE", help="a catalog without a config")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")


def run(args: argparse.Namespace) -> int:
    """List the queue, or attribute one recording (a CamdockError is reported by cli.main)."""
    cfg = None
    if args.config is not None:
        cfg = load_or_report(args.config)
        if cfg is None:
            return ExitCode.CONFIG
    catalog = args.catalog or (cfg.catalog if cfg else default_catalog())
    if not catalog.is_file():
        raise CamdockError(f"no catalog at {catalog}", ExitCode.NOINPUT)
    if args.list:  # a reader: opened read-only, never migrated
        ro = open_readonly(catalog)
        try:
            queue = recordings.unattributed(ro)
        except DatabaseError as exc:  # not SQLite, or a catalog no camdock has migrated yet
            raise catalog_error(catalog, exc) from exc
        finally:
            ro.close()
        return _list(queue, args.json)
    by_given = args.by or args.as_
    if args.recording is None or not args.officer or not by_given:
        raise UsageError("give RECORDING --officer BADGE --by STAFF (or --list)")
    if remote.is_station(cfg, None) and cfg is not None:  # issue 27: through the daemon
        return _remote(args, cfg)
    db = open_catalog(catalog)
    try:
        by, note = check_person(cfg, db, person(by_given), "attribute")
        if cfg is not None:
            officer = cfg.officers.get(args.officer)
            if officer is None:
                raise UsageError(f"--officer: badge {args.officer!r} is not an officer of "
                                 f"station {cfg.station_id}")  # fmt: skip
        else:
            if not args.name:
                raise UsageError("--name NAME: without --config the officer's name is needed")
            officer = Officer(person(args.officer, "--officer"), person(args.name, "--name"),
                              args.unit)  # fmt: skip
        drives = cfg.drives if cfg is not None and cfg.require_mounts else ()
        done = attribute_recording(db, args.recording, officer, by, drives)
    finally:
        db.close()
    if args.json:
        print(json.dumps({**done.as_json(), "by": by, "note": note}, ensure_ascii=False))
    else:
        print(f"recording {done.recording} → {done.new_relpath} ({officer.name}, {officer.badge})")
        print(f"recorded in the custody log as decided by {by}" + (f"; {note}" if note else ""))
    return 0


def _remote(args: argparse.Namespace, cfg: Config) -> int:
    """REG-4.2.4: the station's daemon re-files the recording, deciding as who logged in."""
    done, by = remote.ask(cfg, args, protocol.Attribute(args.recording, args.officer))
    officer = done["officer"]
    if args.json:
        print(json.dumps({**done, "by": by, "note": None, "channel": remote.CHANNEL},
                         ensure_ascii=False))  # fmt: skip
    else:
        print(f"recording {done['recording']} → {done['new_path']} ({officer['name']}, "
              f"{officer['badge']})")  # fmt: skip
        print(f"recorded in the custody log as decided by {by}")
    return 0


def _list(queue: list[recordings.Unattributed], as_json: bool) -> int:
    if as_json:
        print(json.dumps({"unattributed": [r.as_dict() for r in queue]}, ensure_ascii=False))
        return 0
    for r in queue:
        suspect = f"  (camera clock suspect: {r.time_note})" if r.time_suspect else ""
        print(f"{r.id:>6}  {r.camera_id:<10} {r.recorded_start}  {r.relpath}{suspect}")
    print(f"{len(queue)} unattributed recording(s)")
    return 0
