"""The ``camdock`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from camdock import __version__
from camdock.adapters import fsio
from camdock.commands import attribute as attribute_cmd
from camdock.commands import audit as audit_cmd
from camdock.commands import common
from camdock.commands import daemon as daemon_cmd
from camdock.commands import monitor as monitor_cmd
from camdock.commands import offload as offload_cmd
from camdock.commands import request as request_cmd
from camdock.commands import retention as retention_cmd
from camdock.commands import seal as seal_cmd
from camdock.commands import selftest as selftest_cmd
from camdock.commands import server as server_cmd
from camdock.commands import simulate as simulate_cmd
from camdock.commands import staff as staff_cmd
from camdock.commands import udev as udev_cmd
from camdock.commands import web as web_cmd
from camdock.errors import CamdockError, ExitCode

__all__ = ["main"]

Run = Callable[[argparse.Namespace], int]

# Each command and the module that runs it (commands/: one module per command group).
_RUN: dict[str, Run] = {
    "offload": offload_cmd.run,
    "attribute": attribute_cmd.run,
    "hold": retention_cmd.run,
    "retention": retention_cmd.run,
    "catalog": retention_cmd.run,
    "seal": seal_cmd.run,
    "request": request_cmd.run,
    "register": request_cmd.run,
    "staff": staff_cmd.run,
    "run": daemon_cmd.run,
    "check-config": daemon_cmd.run,
    "simulate": simulate_cmd.run,
    "selftest": selftest_cmd.run,
    "audit": audit_cmd.run,
    "web": web_cmd.run,
    "udev-rules": udev_cmd.run,
    "monitor": monitor_cmd.run,
    "server": server_cmd.run,
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument exits 64 (EX_USAGE, the README's table), not 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(ExitCode.USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="camdock", description="Docking station for police body-worn cameras.")
    p.add_argument("--version", action="version", version=f"camdock {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = p.add_subparsers(dest="command", required=True)
    # In the order ``camdock --help`` lists them.
    offload_cmd.add_parser(sub)
    attribute_cmd.add_parser(sub)
    retention_cmd.add_parsers(sub)
    seal_cmd.add_parser(sub)
    request_cmd.add_parsers(sub)
    staff_cmd.add_parser(sub)
    daemon_cmd.add_parsers(sub)
    simulate_cmd.add_parser(sub)
    selftest_cmd.add_parser(sub)
    audit_cmd.add_parser(sub)
    web_cmd.add_parser(sub)
    udev_cmd.add_parser(sub)
    monitor_cmd.add_parser(sub)
    server_cmd.add_parser(sub)
    return p


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
    except OverflowError as exc:  # a number or a date no catalog or calendar holds (issue 29)
        return _failed(args, CamdockError(f"a number or a date out of range ({exc})",
                                          ExitCode.USAGE))  # fmt: skip
    except CamdockError as exc:
        return _failed(args, exc)


def _failed(args: argparse.Namespace, exc: CamdockError) -> int:
    """One line on stderr (and with --json one JSON document on stdout); the exit code."""
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
    run = _RUN.get(args.command)
    if run is None:  # pragma: no cover - argparse requires a command
        return ExitCode.USAGE
    if args.command in _DAEMONS:  # its own acts are the daemon's: the default channel
        return run(args)
    with common.through_cli():  # issue 27: what a command writes itself says so
        return run(args)


# The commands that run a station: what they write by themselves is channel "daemon".
_DAEMONS = frozenset({"run", "simulate"})
