"""``camdock server``: the station server (issue 31). ``run`` consumes every station's events
from the cluster into the index; ``migrate`` brings the index's schema up to date; ``web``
serves the fleet view."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from camdock.commands.common import broker_address
from camdock.errors import ExitCode

__all__ = ["add_parser", "run"]

DEFAULT = Path("/etc/camdock/server.toml")


def add_parser(sub: Any) -> None:
    """The ``server`` subcommand and its actions."""
    s = sub.add_parser("server", help="the station server: every station's events into one index")
    actions = s.add_subparsers(dest="action", required=True)
    for name, text in (
        ("run", "consume the stations' events into the index"),
        ("migrate", "bring the index's schema up to date"),
        ("web", "serve the fleet view"),
    ):
        a = actions.add_parser(name, help=text)
        a.add_argument("--config", type=Path, default=DEFAULT, metavar="FILE")
        if name == "web":
            a.add_argument("--listen", metavar="HOST:PORT", help="default: [web].listen")


def run(args: argparse.Namespace) -> int:
    """Run one ``camdock server`` action."""
    from camdock.server import config

    cfg = config.load(args.config)
    if args.action == "migrate":
        from camdock.server.schema import migrate

        print(f"camdock server: the index is at schema {migrate(cfg.dsn)}")
        return 0
    if args.action == "web":
        import uvicorn

        from camdock.server.web import make_app

        host, port = broker_address(args.listen or cfg.listen)
        if not cfg.users:
            print(
                "camdock server web: nobody can log in: no [[users]] in the config", file=sys.stderr
            )
        uvicorn.run(make_app(cfg), host=host, port=port, log_level="warning")
        return 0
    from camdock.server.consumer import Server

    try:
        asyncio.run(Server(cfg).run())
    except KeyboardInterrupt:
        return 0
    return ExitCode.SOFTWARE  # it only returns when something ended it
