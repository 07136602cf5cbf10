"""``camdock udev-rules``: the udev rules for this station's cameras, from its config."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from camdock.commands.common import load_or_report
from camdock.errors import ExitCode

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    """The ``udev-rules`` subcommand."""
    u = sub.add_parser("udev-rules", help="print the udev rules for this station's cameras")
    u.add_argument("--config", type=Path, default=Path("/etc/camdock/camdock.toml"), metavar="FILE")


def run(args: argparse.Namespace) -> int:
    """Print the rules (camdock.udev_rules renders them)."""
    from camdock import udev_rules

    cfg = load_or_report(args.config)
    if cfg is None:
        return ExitCode.CONFIG
    print(udev_rules.render(cfg), end="")
    return 0
