"""The ``camdock`` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from camdock import __version__
from camdock.adapters import fsio
from camdock.commands import attribute as attribute_cmd
from camdock.commands import audit as audit_cmd
from camdock.commands import offload as offload_cmd
from camdock.commands import request as request_cmd
from camdock.commands import retention as retention_cmd
from camdock.commands import seal as seal_cmd
from camdock.commands import staff as staff_cmd
from camdock.commands.common import load_or_report
from camdock.errors import CamdockError, ExitCode

log = logging.getLogger("camdock")


# A declarative table, long on purpose: every command and option of camdock in one place.
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="camdock", description="Docking station for police body-worn cameras."
    )
    p.add_argument("--version", action="version", version=f"camdock {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = p.add_subparsers(dest="command", required=True)

    offload_cmd.add_parser(sub)
    attribute_cmd.add_parser(sub)
    retention_cmd.add_parsers(sub)
    seal_cmd.add_parser(sub)
    request_cmd.add_parsers(sub)
    staff_cmd.add_parser(sub)

    r = sub.add_parser("run", help="run the station daemon")
    r.add_argument("--config", type=Path, default=Path("/etc/camdock/camdock.toml"), metavar="FILE")

    c = sub.add_parser("check-config", help="validate a config file without starting")
    c.add_argument("config", type=Path, metavar="FILE")
    c.add_argument(
        "--without-files",
        action="store_true",
        help="do not look for the files the config names (MQTT password, CA, client "
        "certificate): for a config written before they are installed",
    )

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

    audit_cmd.add_parser(sub)

    w = sub.add_parser("web", help="the custodian's console (HTTPS on the station's network)")
    w.add_argument("--config", type=Path, default=Path("/etc/camdock/camdock.toml"), metavar="FILE")
    w.add_argument("--listen", default="127.0.0.1:8443", metavar="HOST:PORT")
    w.add_argument("--cert", type=Path, metavar="FILE", help="TLS certificate (PEM)")
    w.add_argument("--key", type=Path, metavar="FILE", help="TLS private key (PEM)")

    u = sub.add_parser("udev-rules", help="print the udev rules for this station's cameras")
    u.add_argument("--config", type=Path, default=Path("/etc/camdock/camdock.toml"), metavar="FILE")

    m = sub.add_parser("monitor", help="watch every station's bays and events over MQTT")
    m.add_argument("--broker", required=True, metavar="HOST[:PORT]")
    m.add_argument("--station", metavar="ID", help="only this station")
    m.add_argument("--prefix", default="camdock", help="topic prefix (default camdock)")
    m.add_argument("--json", action="store_true", help="one JSON object per message")
    m.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long")
    m.add_argument(
        "--witness",
        type=Path,
        metavar="FILE",
        help="append the custody head of every event seen (camdock audit --witness)",
    )
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
    """Run one ``camdock`` command; returns its exit code (errors.ExitCode). A CamdockError is
    one line on stderr (and, with --json, one JSON document on stdout), never a traceback."""
    args = _parser().parse_args(argv)
    fsio.bound_malloc()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        _text_arguments(args)
        return _dispatch(args)
    except CamdockError as exc:
        print(f"camdock {args.command}: {exc}", file=sys.stderr)
        if getattr(args, "json", False):
            error = {"ok": False, "error": str(exc), "exit_code": int(exc.exit_code)}
            print(json.dumps(error, ensure_ascii=False))
        return exc.exit_code


def _text_arguments(args: argparse.Namespace) -> None:
    """Every text given on the command line (names, reasons, case numbers) must be UTF-8: bytes
    in a legacy encoding (Big5) would otherwise reach the catalog as surrogates and fail there.
    Paths may hold any bytes (they are file names)."""
    for name, value in vars(args).items():
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str):
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    flag = "--" + name.replace("_", "-")
                    raise CamdockError(
                        f"{flag}: not valid UTF-8 (a legacy encoding such as "
                        "Big5?); give it in UTF-8",
                        ExitCode.USAGE,
                    ) from None


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "offload":
        return offload_cmd.run(args)
    if args.command == "attribute":
        return attribute_cmd.run(args)
    if args.command in ("hold", "retention", "catalog"):
        return retention_cmd.run(args)
    if args.command == "seal":
        return seal_cmd.run(args)
    if args.command in ("request", "register"):
        return request_cmd.run(args)
    if args.command == "staff":
        return staff_cmd.run(args)
    if args.command == "web":
        return _web(args)
    if args.command == "check-config":
        return _check_config(args.config, files=not args.without_files)
    if args.command == "run":
        return _run(args.config)
    if args.command == "simulate":
        from camdock.sim.station import main as simulate

        broker = broker_address(args.broker) if args.broker else None
        return simulate(args.bays, args.scenario, args.state_dir, not args.no_ui, args.json, broker)
    if args.command == "audit":
        return audit_cmd.run(args)
    if args.command == "selftest":
        return _selftest(args)
    if args.command == "udev-rules":
        from camdock import udev_rules

        cfg = load_or_report(args.config)
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
        opts = MonitorOptions(mqtt, args.station, args.json, args.duration, args.witness)
        try:
            return asyncio.run(monitor(opts))
        except KeyboardInterrupt:
            return 0
    return ExitCode.USAGE  # pragma: no cover - argparse requires a command


def _check_config(path: Path, files: bool = True) -> int:
    cfg = load_or_report(path, files=files)
    if cfg is None:
        return ExitCode.CONFIG
    print(
        f"{path}: ok — station {cfg.station_id}, {len(cfg.bays)} bays, "
        f"{len(cfg.cameras)} cameras, {len(cfg.officers)} officers"
    )
    return 0


def _run(path: Path) -> int:
    cfg = load_or_report(path, files=True)
    if cfg is None:
        return ExitCode.CONFIG  # systemd: RestartPreventExitStatus=78, no restart loop
    from camdock.adapters.gpio import make_pin_factory, pin_problems
    from camdock.adapters.mount import SystemMounter
    from camdock.adapters.udev import UdevHotplug
    from camdock.station.station import Station

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


def _web(args: argparse.Namespace) -> int:
    """Serve the console; without --cert/--key only on loopback (a session must not cross the
    network in clear)."""
    import uvicorn

    from camdock.web.app import make_app

    cfg = load_or_report(args.config)
    if cfg is None:
        return ExitCode.CONFIG
    host, port = broker_address(args.listen)
    if (args.cert is None) != (args.key is None):
        print("camdock web: give both --cert and --key, or neither", file=sys.stderr)
        return ExitCode.USAGE
    if args.cert is None and host not in ("127.0.0.1", "::1", "localhost"):
        print("camdock web: HTTPS (--cert, --key) is needed to listen beyond this machine",
              file=sys.stderr)  # fmt: skip
        return ExitCode.USAGE
    if not cfg.password_hashes:
        print("camdock web: nobody can log in: no [[staff]] password_hash in the config "
              "(camdock staff hash-password)", file=sys.stderr)  # fmt: skip
    app = make_app(cfg, https=args.cert is not None)
    uvicorn.run(app, host=host, port=port, log_level="warning",
                ssl_certfile=str(args.cert) if args.cert else None,
                ssl_keyfile=str(args.key) if args.key else None)  # fmt: skip
    return 0


def _selftest(args: argparse.Namespace) -> int:
    """The same test the bay button runs, on a camera connected to any machine."""
    from camdock.camera.driver import driver_for
    from camdock.core.selftest import Policy
    from camdock.services.selftest import run_function_test
    from camdock.station.preshift import policy_for

    policy, registered = Policy(), None
    if args.config is not None:
        cfg = load_or_report(args.config)
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
