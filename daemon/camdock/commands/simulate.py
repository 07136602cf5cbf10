"""``camdock simulate``: the whole station on simulated hardware (``camdock.sim``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from camdock.commands.common import broker_address

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    """The ``simulate`` subcommand."""
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


def run(args: argparse.Namespace) -> int:
    """Run the simulated station's scenario."""
    from camdock.sim.station import main as simulate

    broker = broker_address(args.broker) if args.broker else None
    return simulate(args.bays, args.scenario, args.state_dir, not args.no_ui, args.json, broker)
