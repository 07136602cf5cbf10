"""``camdock staff``: the station's people and their roles (REG-4.1.1), and the console
password hash for the config (read from standard input, never the command line)."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from camdock import passwords
from camdock.commands.common import load_or_report, output
from camdock.errors import CamdockError, ExitCode, UsageError

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    """The ``staff`` subcommand."""
    p = sub.add_parser("staff", help="the station's staff and roles; console password hashes")
    ps = p.add_subparsers(dest="action", required=True)
    h = ps.add_parser("hash-password", help="read a password on stdin, print its scrypt hash")
    h.add_argument("--json", action="store_true")
    lst = ps.add_parser("list", help="who is on the staff, with which roles")
    lst.add_argument("--config", type=Path, default=Path("/etc/camdock/camdock.toml"))
    lst.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    """Print a hash, or the staff list."""
    if args.action == "hash-password":
        text = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline()
        password = text.rstrip("\r\n")
        if len(password) < 12:
            raise UsageError("a console password has at least 12 characters")
        hashed = passwords.hash_password(password)
        return output(args, {"password_hash": hashed}, lambda: [hashed])
    cfg = load_or_report(args.config)
    if cfg is None:
        raise CamdockError(f"invalid configuration {args.config}", ExitCode.CONFIG)
    people = sorted(cfg.staff.values(), key=lambda p: p.id)
    doc = {
        "staff": [
            {
                "id": p.id,
                "name": p.name,
                "title": p.title,
                "unit": p.unit,
                "roles": sorted(r.value for r in p.roles),
                "console": p.id in cfg.password_hashes,
            }
            for p in people
        ]
    }
    return output(
        args,
        doc,
        lambda: [
            f"{p.id:<10} {p.name:<10} {', '.join(sorted(r.value for r in p.roles))}"
            + ("  (console login)" if p.id in cfg.password_hashes else "")
            for p in people
        ],
    )
