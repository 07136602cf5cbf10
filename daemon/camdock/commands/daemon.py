"""``camdock run`` and ``camdock check-config``: the station daemon, and the check of the
config it would run with (exit code 78 for a bad one, so systemd does not restart-loop)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from camdock.commands.common import load_or_report
from camdock.errors import ExitCode

__all__ = ["add_parsers", "run"]

log = logging.getLogger("camdock")


def add_parsers(sub: Any) -> None:
    """The ``run`` and ``check-config`` subcommands."""
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


def run(args: argparse.Namespace) -> int:
    """Run the daemon, or check a config."""
    if args.command == "check-config":
        return _check_config(args.config, files=not args.without_files)
    return _run(args.config)


def _check_config(path: Path, files: bool = True) -> int:
    cfg = load_or_report(path, files=files)
    if cfg is None:
        return ExitCode.CONFIG
    from camdock.adapters.gpio import factory_problem

    # The pin factory's library is loaded as `run` would load it (a missing lgpio fails here,
    # not only at start-up); opening the chip needs the board and is left to `run`.
    if (problem := factory_problem(cfg.pin_factory)) is not None:
        print(f"camdock: invalid configuration {cfg.source}:", file=sys.stderr)
        print(f"  gpio.pin_factory: {problem}", file=sys.stderr)
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
