"""``camdock web``: the custodian's console, served over HTTPS on the station's network (plain
HTTP on loopback only)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from camdock.commands.common import broker_address, load_or_report
from camdock.errors import ExitCode

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    """The ``web`` subcommand."""
    w = sub.add_parser("web", help="the custodian's console (HTTPS on the station's network)")
    w.add_argument("--config", type=Path, default=Path("/etc/camdock/camdock.toml"), metavar="FILE")
    w.add_argument("--listen", default="127.0.0.1:8443", metavar="HOST:PORT")
    w.add_argument("--cert", type=Path, metavar="FILE", help="TLS certificate (PEM)")
    w.add_argument("--key", type=Path, metavar="FILE", help="TLS private key (PEM)")


def run(args: argparse.Namespace) -> int:
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
    # log_config=None: uvicorn's records go through camdock.adapters.logs (journald priorities), not
    # through handlers of its own with their own format.
    uvicorn.run(app, host=host, port=port, log_level="warning", log_config=None,
                ssl_certfile=str(args.cert) if args.cert else None,
                ssl_keyfile=str(args.key) if args.key else None)  # fmt: skip
    return 0
