"""``camdock offload``: a camera volume to the destinations, verified, catalogued, cleared.

With ``--config`` it files exactly as the daemon does — the station's duty slots and zone, its
camera registry (an unregistered camera is refused, REG-2), each recording under the officer
who had the camera then (REG-4.2.4), the station's catalog and its two proven drives. Without
it, the custodian names the officer, and the summary says which slot grid and zone were used.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfoNotFoundError

from camdock.adapters.drives import abort_stalled
from camdock.catalog import open_catalog
from camdock.commands.common import (
    default_catalog,
    load_or_report,
    slot_minutes_arg,
    station_tz,
    text_arg,
    tz_name,
)
from camdock.config import Config, topic_segment_problem
from camdock.core.naming import DutySlots, name_text
from camdock.errors import CamdockError, ExitCode, UsageError
from camdock.events import EventContext, Topics
from camdock.model import Camera
from camdock.offload import (
    ABORT_WAIT,
    STOP_WAIT,
    OffloadEngine,
    OffloadReport,
    OffloadRequest,
)
from camdock.services.attribute import history_for, registered_from

__all__ = ["DEFAULT_SLOT_MINUTES", "add_parser", "run"]

log = logging.getLogger("camdock")

DEFAULT_SLOT_MINUTES = 240


# A declarative table, long on purpose: the command's options in one place.
def add_parser(sub: Any) -> None:
    """The ``offload`` subcommand's options."""
    p = sub.add_parser(
        "offload",
        help="copy a camera volume to every destination, verify by read-back, catalog, clear",
        description=(
            "Offload every recording from SOURCE (a mounted camera volume) to each --to "
            "destination (SHA-256 of the camera's bytes, read once), verify each copy by reading "
            "it back from disk (XXH3-128 against the same stream), file it as "
            "YYYY/MM/DD/<date>_<slot>_<officer>_<badge>_<camera>_<time>.<ext>, record it in the "
            "catalog, and with --clear delete it from the camera only after all of that."
        ),
    )
    p.add_argument("source", type=Path, metavar="SOURCE")
    p.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="file as the station does (REG-4.2.3/4): its duty slots, time zone, camera registry, "
        "officers and their dated assignments, its catalog and its two drives (proven by UUID)",
    )
    p.add_argument(
        "--to",
        dest="destinations",
        type=Path,
        action="append",
        default=[],
        metavar="DEST",
        help="a destination root; give it once per destination (default with --config: the "
        "station's footage and backup drives)",
    )
    p.add_argument("--camera", required=True, metavar="ID", help="camera id (or USB serial)")
    p.add_argument(
        "--officer",
        type=text_arg,
        metavar="NAME",
        help="file everything under this officer (required without --config; with it, each "
        "recording goes to the officer who had the camera when it was made)",
    )
    p.add_argument("--badge", metavar="NO", help="the officer's badge (with --officer)")
    p.add_argument("--unit", default="", metavar="NAME")
    p.add_argument(
        "--catalog",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"catalog database (default: the config's, else {default_catalog()})",
    )
    p.add_argument(
        "--clear",
        action="store_true",
        help="delete each recording from SOURCE once verified everywhere and catalogued",
    )
    p.add_argument(
        "--allow-one-filesystem",
        action="store_true",
        help="development and tests only: let --clear follow copies that share one filesystem "
        "(REG-4.2.6 wants two drives)",
    )
    p.add_argument("--json", action="store_true", help="print a machine-readable summary")
    p.add_argument(
        "--slots",
        metavar="HH:MM,...",
        help="without --config: duty slot boundaries, e.g. 00:00,08:00,16:00 "
        f"(default: slots of {DEFAULT_SLOT_MINUTES} min from midnight; the summary says which)",
    )
    p.add_argument(
        "--slot-minutes",
        type=slot_minutes_arg,
        default=None,
        metavar="N",
        help="length of a duty slot when --slots is not given",
    )
    p.add_argument(
        "--tz",
        metavar="ZONE",
        help="without --config: time zone for filing (default: the machine's; the summary says it)",
    )
    p.add_argument(
        "--station",
        metavar="ID",
        help="record the offload's events in the catalog's outbox as this station's (REG-7.1): "
        "with the station's catalog, the daemon publishes them to the station server",
    )
    p.add_argument(
        "--topic-prefix",
        default="camdock",
        metavar="PREFIX",
        help="with --station: the [mqtt] topic_prefix of the station's config (default camdock)",
    )


@dataclass(frozen=True)
class _Plan:
    request: OffloadRequest
    filing: dict[str, str]  # which slot grid and zone, and where they came from


def run(args: argparse.Namespace) -> int:
    """Offload; 0 when every file is verified everywhere (and cleared when asked), else 1."""
    plan = _from_config(args) if args.config else _from_command_line(args)
    if plan is None:
        return ExitCode.CONFIG
    engine = OffloadEngine(plan.request)
    stopping: list[float] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.warning("signal %d: stopping; everything done so far is kept and resumable", signum)
        stopping.append(time.monotonic())
        engine.cancel()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # The engine on a daemon thread: a camera read that stalls must not hold the stop.
    outcome: dict[str, Any] = {}
    worker = threading.Thread(target=_run_engine, args=(engine, outcome), daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.2)
        if stopping and time.monotonic() - stopping[0] > STOP_WAIT and worker.is_alive():
            # A stalled FUSE driver would hold the process even past exit: let go of it.
            done = abort_stalled(plan.request.source)
            if done:
                log.error("%s", done)
                worker.join(ABORT_WAIT)
            raise CamdockError(
                f"stopped after {STOP_WAIT:.0f} s: the camera's reads are stalled; what was "
                "verified stays catalogued, the rest stays on the camera",
                ExitCode.TEMPFAIL,
            )
    if "error" in outcome:
        raise outcome["error"]  # a CamdockError is reported by cli.main
    report: OffloadReport = outcome["report"]
    if args.json:
        report.write_json(sys.stdout, {"filing": plan.filing})
    else:
        _print_human(report, plan.filing)
    if report.catalog_error:
        return ExitCode.IOERR
    return 0 if report.ok else 1


def _run_engine(engine: OffloadEngine, outcome: dict[str, Any]) -> None:
    try:
        outcome["report"] = engine.run()
    except BaseException as exc:  # noqa: BLE001 - re-raised on the main thread
        outcome["error"] = exc


def _from_command_line(args: argparse.Namespace) -> _Plan:
    if not args.destinations:
        raise UsageError("at least one destination (--to) is needed (or --config)")
    if not (args.officer and args.badge):
        raise UsageError("--officer and --badge name whose footage it is (or give --config)")
    try:
        minutes = args.slot_minutes or DEFAULT_SLOT_MINUTES
        slots = DutySlots.parse(args.slots) if args.slots else DutySlots.every(minutes)
        tz = station_tz(args.tz)
    except (ValueError, ZoneInfoNotFoundError) as exc:
        raise UsageError(str(exc)) from exc
    events = None
    if args.station is not None:
        if problem := topic_segment_problem(args.station):
            raise UsageError(f"--station: {problem}")
        officer = {"badge": args.badge, "name": args.officer, "unit": args.unit}
        events = EventContext(Topics(args.topic_prefix, args.station), None, args.camera, officer)
    request = OffloadRequest(
        source=args.source,
        destinations=tuple(args.destinations),
        camera_id=name_text(args.camera),
        officer_name=name_text(args.officer),  # NFC: one officer, however it was typed
        officer_badge=name_text(args.badge),
        unit=name_text(args.unit),
        catalog=args.catalog or default_catalog(),
        slots=slots,
        tz=tz,
        clear=args.clear,
        events=events,
        allow_one_filesystem=args.allow_one_filesystem,
    )
    source = "--slots" if args.slots else f"--slot-minutes {minutes}"
    zone = args.tz or "the machine's"
    filing = {"slots": slots.text, "timezone": tz_name(tz),
              "from": f"the command line ({source}, --tz {zone})"}  # fmt: skip
    return _Plan(request, filing)


def _from_config(args: argparse.Namespace) -> _Plan | None:
    cfg = load_or_report(args.config)
    if cfg is None:
        return None
    for flag, value in (("--slots", args.slots), ("--slot-minutes", args.slot_minutes),
                        ("--tz", args.tz), ("--station", args.station)):  # fmt: skip
        if value is not None:
            raise UsageError(f"{flag} comes from the config ({args.config}); leave it out")
    camera = _registered(cfg, args.camera)
    catalog = args.catalog or cfg.catalog
    db = open_catalog(catalog)
    try:
        history = history_for(db, cfg, cfg.officers, camera)
    finally:
        db.close()
    assigned = cfg.officer_for(camera)
    given = bool(args.officer or args.badge)
    if given and not (args.officer and args.badge):
        raise UsageError("--officer and --badge go together")
    name = (
        name_text(args.officer) if args.officer else (assigned.name if assigned else "unassigned")
    )
    badge = name_text(args.badge) if args.badge else (assigned.badge if assigned else "none")
    unit = name_text(args.unit) if args.unit else (assigned.unit if assigned else cfg.unit)
    prefix = cfg.mqtt.prefix if cfg.mqtt else "camdock"
    officer = {"badge": badge, "name": name, "unit": unit}
    on_drives = not args.destinations and cfg.require_mounts
    request = OffloadRequest(
        source=args.source,
        destinations=tuple(args.destinations) or (cfg.footage, cfg.backup),
        camera_id=camera.id,
        officer_name=name,
        officer_badge=badge,
        unit=unit,
        catalog=catalog,
        slots=cfg.slots,
        tz=cfg.tz,
        clear=args.clear,
        # The station's catalog: the daemon publishes these events (REG-7.1).
        events=EventContext(Topics(prefix, cfg.station_id), None, camera.id, officer),
        drives=cfg.drives if on_drives else (),
        allow_one_filesystem=args.allow_one_filesystem or not cfg.require_mounts,
        attribution=None if given else history,
        not_before=registered_from(camera, cfg.tz),
        retention=cfg.retention,
    )
    filing = {"slots": cfg.slots.text, "timezone": tz_name(cfg.tz),
              "from": f"the station's config {args.config}"}  # fmt: skip
    return _Plan(request, filing)


def _registered(cfg: Config, camera: str) -> Camera:
    """REG-2: only a registered camera is offloaded (by camera id or USB serial)."""
    found = cfg.cameras.get(camera) or next(
        (c for c in cfg.cameras.values() if c.id == camera), None
    )
    if found is None:
        raise UsageError(f"camera {camera!r} is not registered at station {cfg.station_id} (REG-2)")
    return found


def _print_human(report: OffloadReport, filing: dict[str, str]) -> None:
    print(f"filing: duty slots {filing['slots']}, zone {filing['timezone']} ({filing['from']})")
    for w in report.warnings:
        print(f"warning: {w}")
    for s in report.skipped:
        print(f"skipped  {s.path}: {s.reason}")
    for f in report.files:
        mark = "ok     " if f.verified else "FAILED "
        where = next(iter(f.stored.values()), "")
        line = f"{mark} {f.source} → {where}" if f.verified else f"{mark} {f.source}: {f.error}"
        if f.cleared:
            line += " (cleared)"
        elif f.verified and f.error:
            line += f" ({f.error})"
        print(line)
    t = report.totals()
    print(
        f"{t['verified']}/{t['files']} files verified in every destination, {t['cleared']} cleared,"
        f" {t['skipped']} skipped, {t['bytes_verified'] / 1e6:.1f} MB in {report.seconds:.1f} s"
    )
