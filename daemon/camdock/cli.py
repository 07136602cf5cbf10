"""The ``camdock`` command line."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from camdock import __version__
from camdock.errors import CamdockError, ExitCode

__all__ = ["main"]

Run = Callable[[argparse.Namespace], int]

# Each command and the module under commands/ that parses and runs it (one module per command
# group), in the order ``camdock --help`` lists them. A module is imported only when its command
# is asked for: importing all of them (the catalog, the offload engine, the console, MQTT) cost
# ~0.4 s of CPU on every start, ~3x that on a Pi 4 (issue 30; bench/cli_startup.py).
_RUN: dict[str, str] = {
    "offload": "offload",
    "attribute": "attribute",
    "hold": "retention",
    "retention": "retention",
    "catalog": "catalog",
    "seal": "seal",
    "request": "request",
    "register": "request",
    "staff": "staff",
    "run": "daemon",
    "check-config": "daemon",
    "simulate": "simulate",
    "selftest": "selftest",
    "audit": "audit",
    "web": "web",
    "udev-rules": "udev",
    "monitor": "monitor",
    "server": "server",
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument exits 64 (EX_USAGE, the README's table), not 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(ExitCode.USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _module(name: str) -> object:
    return importlib.import_module(f"camdock.commands.{name}")


def _command_word(argv: Sequence[str]) -> str | None:
    """The command named on the line (the global options take no values), or None."""
    return next((a for a in argv if not a.startswith("-")), None)


def _parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with ``argv`` naming a known command, only that command's module is loaded
    (``--version`` alone loads none; ``--help`` or an unknown command, all of them)."""
    p = _Parser(prog="camdock", description="Docking station for police body-worn cameras.")
    p.add_argument("--version", action="version", version=f"camdock {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = p.add_subparsers(dest="command", required=True)
    modules = list(dict.fromkeys(_RUN.values()))
    if argv is not None:
        word = _command_word(argv)
        if word in _RUN:
            modules = [_RUN[word]]
        elif word is None and "--version" in argv and not {"-h", "--help"} & set(argv):
            modules = []
    for name in modules:
        module = _module(name)
        add = getattr(module, "add_parsers", None) or module.add_parser  # type: ignore[attr-defined]
        add(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``camdock`` command; returns its exit code (errors.ExitCode). A CamdockError is
    one line on stderr (and, with --json, one JSON document on stdout), never a traceback."""
    words = sys.argv[1:] if argv is None else list(argv)
    args = _parser(words).parse_args(words)
    from camdock.adapters import fsio, logs

    fsio.bound_malloc()
    logs.setup(verbose=args.verbose)
    try:
        _text_arguments(args)
        return _dispatch(args)
    except OverflowError as exc:  # a number or a date no catalog or calendar holds (issue 29)
        return _failed(args, CamdockError(f"a number or a date out of range ({exc})",
                                          ExitCode.USAGE))  # fmt: skip
    except CamdockError as exc:
        return _failed(args, exc)
    finally:
        _wake_daemon(args)


def _failed(args: argparse.Namespace, exc: CamdockError) -> int:
    """One line on stderr (and with --json one JSON document on stdout); the exit code."""
    print(f"camdock {args.command}: {exc}", file=sys.stderr)
    if getattr(args, "json", False):
        error = {"ok": False, "error": str(exc), "exit_code": int(exc.exit_code)}
        print(json.dumps(error, ensure_ascii=False))
    return exc.exit_code


def _wake_daemon(args: argparse.Namespace) -> None:
    """Events this command committed to the station's outbox go out now: the running daemon
    is told over its control socket (in the config's run directory, else /run/camdock)."""
    outbox = sys.modules.get("camdock.catalog.outbox")
    if args.command in ("run", "simulate") or not getattr(outbox, "recorded_here", False):
        return
    from pathlib import Path

    from camdock.adapters.control import wake

    run_dir = Path("/run/camdock")
    config = getattr(args, "config", None)
    if isinstance(config, Path):
        import tomllib

        try:  # only where the daemon listens: the command itself has checked the rest
            with config.open("rb") as f:
                run_dir = Path(tomllib.load(f)["station"]["run_dir"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    wake(run_dir / "control.sock")  # station/control.py's SOCKET (not imported: it is heavy)


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
    name = _RUN.get(args.command)
    if name is None:  # pragma: no cover - argparse requires a command
        return ExitCode.USAGE
    run: Run = _module(name).run  # type: ignore[attr-defined]
    if args.command in _DAEMONS:  # its own acts are the daemon's: the default channel
        return run(args)
    from camdock.commands import common

    with common.through_cli():  # issue 27: what a command writes itself says so
        return run(args)


# The commands that run a station: what they write by themselves is channel "daemon".
_DAEMONS = frozenset({"run", "simulate"})
