"""The ``camdock`` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import asdict
from datetime import tzinfo
from pathlib import Path
from types import FrameType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from camdock import __version__
from camdock.config import Config, ConfigError, topic_segment_problem
from camdock.config import load as load_config
from camdock.core.naming import DutySlots
from camdock.errors import CamdockError, ExitCode
from camdock.events import EventContext, Topics
from camdock.services.offload import OffloadEngine, OffloadReport, OffloadRequest

log = logging.getLogger("camdock")

DEFAULT_SLOT_MINUTES = 240


def default_catalog() -> Path:
    """/var/lib/camdock/catalog.sqlite for root (the daemon's), else the user's state dir."""
    if os.geteuid() == 0:
        return Path("/var/lib/camdock/catalog.sqlite")
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "camdock" / "catalog.sqlite"


def station_tz(name: str | None) -> tzinfo:
    """The zone recordings are filed in: --tz, else the machine's /etc/localtime, else UTC."""
    if name:
        return ZoneInfo(name)
    try:
        with open("/etc/localtime", "rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError):
        return ZoneInfo("UTC")


# A declarative table, long on purpose: every command and option of camdock in one place.
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="camdock", description="Docking station for police body-worn cameras."
    )
    p.add_argument("--version", action="version", version=f"camdock {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = p.add_subparsers(dest="command", required=True)

    o = sub.add_parser(
        "offload",
        help="copy a camera volume to every destination, verify by read-back, catalog, clear",
        description=(
            "Offload every recording from SOURCE (a mounted camera volume) to each --to "
            "destination, verify each copy by SHA-256 read back from disk, file it as "
            "YYYY/MM/DD/<date>_<slot>_<officer>_<badge>_<camera>_<time>.<ext>, record it in the "
            "catalog, and with --clear delete it from the camera only after all of that."
        ),
    )
    o.add_argument("source", type=Path, metavar="SOURCE")
    o.add_argument(
        "--to",
        dest="destinations",
        type=Path,
        action="append",
        required=True,
        metavar="DEST",
        help="a destination root; give it once per destination",
    )
    o.add_argument("--camera", required=True, metavar="ID")
    o.add_argument("--officer", required=True, metavar="NAME")
    o.add_argument("--badge", required=True, metavar="NO")
    o.add_argument("--unit", default="", metavar="NAME")
    o.add_argument(
        "--catalog",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"catalog database (default {default_catalog()})",
    )
    o.add_argument(
        "--clear",
        action="store_true",
        help="delete each recording from SOURCE once verified everywhere and catalogued",
    )
    o.add_argument(
        "--allow-one-filesystem",
        action="store_true",
        help="development and tests only: let --clear follow copies that share one filesystem "
        "(REG-4.2.6 wants two drives)",
    )
    o.add_argument("--json", action="store_true", help="print a machine-readable summary")
    o.add_argument(
        "--slots",
        metavar="HH:MM,...",
        help="duty slot boundaries, e.g. 00:00,08:00,16:00 "
        f"(default: slots of {DEFAULT_SLOT_MINUTES} min from midnight)",
    )
    o.add_argument(
        "--slot-minutes",
        type=int,
        default=DEFAULT_SLOT_MINUTES,
        metavar="N",
        help="length of a duty slot when --slots is not given",
    )
    o.add_argument("--tz", metavar="ZONE", help="time zone for filing (default: the machine's)")
    o.add_argument(
        "--station",
        metavar="ID",
        help="record the offload's events in the catalog's outbox as this station's (REG-7.1): "
        "with the station's catalog, the daemon publishes them to the station server",
    )
    o.add_argument(
        "--topic-prefix",
        default="camdock",
        metavar="PREFIX",
        help="with --station: the [mqtt] topic_prefix of the station's config (default camdock)",
    )

    r = sub.add_parser("run", help="run the station daemon")
    r.add_argument("--config", type=Path, default=Path("/etc/camdock/camdock.toml"), metavar="FILE")

    c = sub.add_parser("check-config", help="validate a config file without starting")
    c.add_argument("config", type=Path, metavar="FILE")

    s = sub.add_parser("simulate", help="the whole station with simulated hardware")
    s.add_argument("--bays", type=int, default=4)
    s.add_argument("--scenario", choices=("shift-end", "pre-shift"), default="shift-end")
    s.add_argument("--json", action="store_true", help="print the summary as JSON")
    s.add_argument("--no-ui", action="store_true", help="no live view; events as log lines")
    s.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="keep the catalog, footage and camera volumes here",
    )
    s.add_argument(
        "--broker", metavar="HOST[:PORT]", help="publish the station's events to this broker"
    )

    t = sub.add_parser("selftest", help="run the pre-shift function test on a camera (REG-3.2)")
    t.add_argument("--port", required=True, metavar="TTY", help="the camera's serial port")
    t.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="check the camera against this station's registry and policy",
    )
    t.add_argument("--json", action="store_true")

    a = sub.add_parser("audit", help="verify the hash-chained custody log (REG-7.1)")
    a.add_argument(
        "--catalog",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"catalog database (default {default_catalog()})",
    )

    u = sub.add_parser("udev-rules", help="print the udev rules for this station's cameras")
    u.add_argument("--config", type=Path, default=Path("/etc/camdock/camdock.toml"), metavar="FILE")

    m = sub.add_parser("monitor", help="watch every station's bays and events over MQTT")
    m.add_argument("--broker", required=True, metavar="HOST[:PORT]")
    m.add_argument("--station", metavar="ID", help="only this station")
    m.add_argument("--prefix", default="camdock", help="topic prefix (default camdock)")
    m.add_argument("--json", action="store_true", help="one JSON object per message")
    m.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long")
    m.add_argument("--ca-file", type=Path)
    m.add_argument("--cert-file", type=Path)
    m.add_argument("--key-file", type=Path)
    m.add_argument("--username")
    m.add_argument("--password-file", type=Path)
    return p


def broker_address(text: str) -> tuple[str, int]:
    """HOST[:PORT] (an IPv6 address in brackets) → (host, port)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 1883
    host, sep, port = text.rpartition(":")
    return (host, int(port)) if sep else (text, 1883)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``camdock`` command; returns its exit code (errors.ExitCode)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command == "offload":
        return _offload(args)
    if args.command == "check-config":
        return _check_config(args.config)
    if args.command == "run":
        return _run(args.config)
    if args.command == "simulate":
        from camdock.sim.station import main as simulate

        broker = broker_address(args.broker) if args.broker else None
        return simulate(args.bays, args.scenario, args.state_dir, not args.no_ui, args.json, broker)
    if args.command == "audit":
        return _audit(args.catalog or default_catalog())
    if args.command == "selftest":
        return _selftest(args)
    if args.command == "udev-rules":
        from camdock import udev_rules

        cfg = _load_config(args.config)
        if cfg is None:
            return ExitCode.CONFIG
        print(udev_rules.render(cfg), end="")
        return 0
    if args.command == "monitor":
        from camdock.config import MqttSettings
        from camdock.services.monitor import MonitorOptions, monitor

        host, port = broker_address(args.broker)
        mqtt = MqttSettings(
            host=host,
            port=port,
            prefix=args.prefix,
            username=args.username,
            password_file=args.password_file,
            ca_file=args.ca_file,
            cert_file=args.cert_file,
            key_file=args.key_file,
        )
        opts = MonitorOptions(mqtt, args.station, args.json, args.duration)
        try:
            return asyncio.run(monitor(opts))
        except KeyboardInterrupt:
            return 0
    return ExitCode.USAGE  # pragma: no cover - argparse requires a command


def _load_config(path: Path) -> Config | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"camdock: invalid configuration {exc.source}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return None


def _check_config(path: Path) -> int:
    cfg = _load_config(path)
    if cfg is None:
        return ExitCode.CONFIG
    print(
        f"{path}: ok — station {cfg.station_id}, {len(cfg.bays)} bays, "
        f"{len(cfg.cameras)} cameras, {len(cfg.officers)} officers"
    )
    return 0


def _run(path: Path) -> int:
    cfg = _load_config(path)
    if cfg is None:
        return ExitCode.CONFIG  # systemd: RestartPreventExitStatus=78, no restart loop
    from camdock.adapters.gpio import make_pin_factory, pin_problems
    from camdock.adapters.mount import SystemMounter
    from camdock.adapters.udev import UdevHotplug
    from camdock.services.station import Station

    try:
        factory = make_pin_factory(cfg.pin_factory)
    except Exception as exc:  # noqa: BLE001 - gpiozero raises many kinds; all mean "no GPIO"
        print(
            f"camdock: cannot open GPIO with pin_factory {cfg.pin_factory!r}: {exc}",
            file=sys.stderr,
        )
        return ExitCode.CONFIG
    if problems := pin_problems(cfg, factory):
        print(f"camdock: invalid configuration {cfg.source}:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return ExitCode.CONFIG

    async def main() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        station = Station(cfg, hotplug=UdevHotplug(), mounter=SystemMounter(), pin_factory=factory)
        try:
            await station.run()
        except asyncio.CancelledError:
            log.info("stopped; unfinished offloads resume when their camera is docked again")
        finally:
            factory.close()

    asyncio.run(main())
    return 0


def _offload(args: argparse.Namespace) -> int:
    try:
        slots = DutySlots.parse(args.slots) if args.slots else DutySlots.every(args.slot_minutes)
        tz = station_tz(args.tz)
    except (ValueError, ZoneInfoNotFoundError) as exc:
        print(f"camdock offload: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    events = None
    if args.station is not None:
        if problem := topic_segment_problem(args.station):
            print(f"camdock offload: --station: {problem}", file=sys.stderr)
            return ExitCode.USAGE
        officer = {"badge": args.badge, "name": args.officer, "unit": args.unit}
        events = EventContext(Topics(args.topic_prefix, args.station), None, args.camera, officer)
    request = OffloadRequest(
        source=args.source,
        destinations=tuple(args.destinations),
        camera_id=args.camera,
        officer_name=args.officer,
        officer_badge=args.badge,
        unit=args.unit,
        catalog=args.catalog or default_catalog(),
        slots=slots,
        tz=tz,
        clear=args.clear,
        events=events,
        allow_one_filesystem=args.allow_one_filesystem,
    )
    engine = OffloadEngine(request)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.warning("signal %d: stopping; everything done so far is kept and resumable", signum)
        engine.cancel()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        report = engine.run()
    except CamdockError as exc:
        print(f"camdock offload: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.json:
        print(json.dumps(report.as_json(), ensure_ascii=False, indent=2))
    else:
        _print_human(report)
    return 0 if report.ok else 1


def _print_human(report: OffloadReport) -> None:
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
    t = report.as_json()["totals"]
    print(
        f"{t['verified']}/{t['files']} files verified in every destination, {t['cleared']} cleared,"
        f" {t['skipped']} skipped, {t['bytes_verified'] / 1e6:.1f} MB in {report.seconds:.1f} s"
    )


def _selftest(args: argparse.Namespace) -> int:
    """The same test the bay button runs, on a camera connected to any machine."""
    from camdock.camera.driver import driver_for
    from camdock.core.selftest import Policy
    from camdock.services.preshift import policy_for
    from camdock.services.selftest import run_function_test

    policy, registered = Policy(), None
    if args.config is not None:
        cfg = _load_config(args.config)
        if cfg is None:
            return ExitCode.CONFIG
        policy = policy_for(cfg)
        registered = cfg.cameras.__contains__

    async def main() -> int:
        driver = driver_for(args.port)
        try:
            answers, verdict = await run_function_test(driver, policy, registered)
        finally:
            driver.close()
        if args.json:
            print(
                json.dumps(
                    {
                        "port": args.port,
                        "passed": verdict.passed,
                        "identity": asdict(answers.identity) if answers.identity else None,
                        "drift_before": answers.drift_before,
                        "drift_after": answers.drift_after,
                        "checks": [c.__dict__ for c in verdict.checks],
                    },
                    ensure_ascii=False,
                    indent=2,
                )
            )
        else:
            for c in verdict.checks:
                print(
                    f"{'ok  ' if c.ok else 'FAIL'} {c.name:<17} {c.value}"
                    + (f"  — {c.reason}" if c.reason else "")
                )
            print("PASSED" if verdict.passed else "FAILED: " + verdict.summary())
        return 0 if verdict.passed else 1

    return asyncio.run(main())


def _audit(catalog: Path) -> int:
    """Verify the custody log's hash chain and that it covers every stored and cleared file."""
    from camdock.catalog import custody, open_catalog

    if not catalog.exists():
        print(f"camdock audit: no catalog at {catalog}", file=sys.stderr)
        return ExitCode.NOINPUT
    db = open_catalog(catalog)
    try:
        problems = custody.verify(db)
        entries, recordings = custody.count(db)
    finally:
        db.close()
    for p in problems:
        print(f"PROBLEM {p}")
    verdict = "intact" if not problems else f"{len(problems)} problem(s)"
    print(f"custody log: {entries} entries, {recordings} recordings: {verdict}")
    return 0 if not problems else 1
