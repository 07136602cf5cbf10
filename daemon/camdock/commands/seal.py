"""``camdock seal create|verify|confirm|status``: the daily encrypted seal (REG-4.2.5), from the
station's config or a bare ``--catalog FILE``. The password comes from ``--password-file``
(root-only), the systemd credential or the config's ``[seal] password_file``, never from the
command line."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from camdock import protocol
from camdock.catalog import seals
from camdock.commands import remote
from camdock.commands.common import (
    Where,
    act_as,
    day_arg,
    opened,
    output,
    through_daemon,
    where_from,
)
from camdock.config import Config, SealSettings
from camdock.errors import ExitCode
from camdock.services import seal as service
from camdock.services.seal import Sealing

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    """The ``seal`` subcommand and its actions."""
    p = sub.add_parser("seal", help="the daily encrypted seal of a duty day (REG-4.2.5)")
    ps = p.add_subparsers(dest="action", required=True)
    for name, text, needs_day, by in (
        ("create", "seal a duty day in every destination", True, True),
        ("verify", "read a day's archives back and check them", True, False),
        ("confirm", "the supervisor confirms a day's seal", True, True),
        ("status", "who sealed and who confirmed each day", False, False),
    ):
        a = ps.add_parser(name, help=text)
        if needs_day:
            a.add_argument("day", type=day_arg, metavar="DAY", help="the duty day, YYYY-MM-DD")
        else:
            a.add_argument("--since", type=day_arg, metavar="DAY", help="from this day on")
        if by:
            a.add_argument("--by", metavar="STAFF", help="who acts (recorded in the custody log)")
            remote.add_credentials(a, password_file=False)
        a.add_argument(
            "--password-file",
            type=Path,
            metavar="FILE",
            help="the seal password, in a file only root can read"
            + (
                "; on a station: your own password (the daemon seals with the station's key)"
                if by
                else ""
            ),
        )
        a.add_argument("--key-id", default=None, help="the password's key id (bare catalog)")
        a.add_argument("--key-dir", type=Path, metavar="DIR",
                       help="a root-only folder of <key id>.key files: the keys of days "
                       "sealed before a rotation")  # fmt: skip
        a.add_argument("--config", type=Path, metavar="FILE", help="the station's config")
        a.add_argument("--catalog", type=Path, metavar="FILE", help="a catalog without a config")
        a.add_argument("--json", action="store_true", help="one JSON document on stdout")


def _sealing(args: argparse.Namespace, where: Where, *, key: bool) -> Sealing:
    if where.cfg is not None:
        return Sealing.from_config(where.cfg, args.password_file, args.key_dir)
    settings = SealSettings(key_id=args.key_id or SealSettings.key_id)
    if not key:
        return Sealing(None)
    return Sealing(service.load_key(settings, args.password_file, args.key_dir))


def run(args: argparse.Namespace) -> int:
    """Run one ``seal`` action (a CamdockError is reported by cli.main)."""
    where = where_from(args)
    if args.action == "status":
        with opened(where, write=False) as db:
            found = seals.status(db, args.since)
            dirty = sorted(seals.dirty(db))
        # Members as JSON, not a JSON string inside JSON (issue 29): [id, name, SHA-256, size].
        shown = [{**s.as_dict(), "members": [dict(zip(("recording", "name", "sha256", "size"), m,
                                                     strict=True)) for m in s.listed()]}
               for s in found]  # fmt: skip
        return output(
            args,
            {"seals": shown, "unsealed_days": dirty},
            lambda: [
                *(
                    f"{s.day} #{s.generation}  {s.destination}/{s.path}  "
                    f"sealed by {s.sealed_by}  "
                    + (f"confirmed by {s.confirmed_by}" if s.confirmed_by else "NOT CONFIRMED")
                    for s in found
                ),
                f"days waiting for a seal: {', '.join(dirty) or 'none'}",
            ],
        )
    if args.action in ("create", "confirm") and (cfg := through_daemon(where)) is not None:
        return _remote(args, cfg)
    sealing = _sealing(args, where, key=args.action != "confirm")
    if args.action == "create":
        with opened(where, write=True) as db:
            by, by_id, note = act_as(where, db, args, "seal")
            made = service.seal_day(db, sealing, args.day, by, by_id)
        doc = {"ok": True, "by": by, "seal": made.as_json() if made else None, "note": note}
        return output(
            args,
            doc,
            lambda: [
                f"duty day {args.day} sealed by {by}: "
                + (
                    f"generation {made.generation}, "
                    f"{made.members} recording(s), {len(made.archives)} archive(s)"
                    if made
                    else "no recordings left, the old seal retired"
                ),
                *(
                    f"  {a.destination}/{a.path}  SHA-256 {a.sha256}"
                    for a in (made.archives if made else ())
                ),
                note or "",
            ],
        )
    if args.action == "verify":
        with opened(where, write=False) as db:
            problems = service.verify_day(db, sealing, args.day)
        output(
            args,
            {"ok": not problems, "day": args.day.isoformat(), "problems": problems},
            lambda: [
                *(f"PROBLEM {p}" for p in problems),
                f"duty day {args.day}: "
                + ("the seal is intact" if not problems else f"{len(problems)} problem(s)"),
            ],
        )
        return ExitCode.OK if not problems else ExitCode.FAILED
    with opened(where, write=True) as db:
        by, by_id, note = act_as(where, db, args, "confirm")
        done = service.confirm_day(db, sealing, args.day, by, by_id)
    return output(
        args,
        {"ok": True, **done, "note": note},
        lambda: [f"duty day {args.day}'s seal confirmed by {by}", note or ""],
    )


def _remote(args: argparse.Namespace, cfg: Config) -> int:
    """A seal made or confirmed by the station's daemon as the authenticated person (issue 27):
    the daemon's key seals; the supervisor who confirms is who logged in."""
    if args.action == "create":
        made, by = remote.ask(cfg, args, protocol.SealCreate(args.day))
        return output(
            args,
            {"ok": True, "by": by, "seal": made, "note": None, "channel": remote.CHANNEL},
            lambda: [
                f"duty day {args.day} sealed by {by}: "
                + (
                    f"generation {made['generation']}, {made['members']} recording(s), "
                    f"{len(made['archives'])} archive(s)"
                    if made
                    else "no recordings left, the old seal retired"
                ),
                *(  # the daemon's answer is JSON: each archive a document
                    f"  {a['destination']}/{a['path']}  SHA-256 {a['sha256']}"
                    for a in (made["archives"] if made else ())
                ),
            ],
        )
    done, by = remote.ask(cfg, args, protocol.SealConfirm(args.day))
    return output(
        args,
        {"ok": True, **done, "note": None, "channel": remote.CHANNEL},
        lambda: [f"duty day {args.day}'s seal confirmed by {by}"],
    )
