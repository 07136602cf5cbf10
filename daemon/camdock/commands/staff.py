"""``camdock staff``: the station's people and their roles (REG-4.1.1), the console password
hash for the config (read from standard input, never the command line), the config's staff
imported into the catalog (``sync``), and a second factor enrolled (``totp``, issue 27)."""

from __future__ import annotations

import argparse
import base64
import binascii
import getpass
import hmac
import os
import pwd
import secrets
import sys
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from camdock import passwords
from camdock.catalog import open_catalog
from camdock.catalog import staff as staff_rows
from camdock.commands.common import load_or_report, output
from camdock.config import Config
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
    sy = ps.add_parser("sync", help="import the config's staff into the catalog (recorded)")
    sy.add_argument("--config", type=Path, default=Path("/etc/camdock/camdock.toml"))
    sy.add_argument("--json", action="store_true")
    t = ps.add_parser("totp", help="enrol a person's one-time codes (shown once: a QR code, "
                      "the otpauth URI and recovery codes)")  # fmt: skip
    t.add_argument("id", help="the staff id")
    t.add_argument("--config", type=Path, default=Path("/etc/camdock/camdock.toml"))
    t.add_argument(
        "--codes",
        type=int,
        default=None,
        help=f"recovery codes to make ({RECOVERY_CODES}; 0 with --secret-stdin)",
    )
    t.add_argument("--secret-stdin", action="store_true",
                   help="enrol the base32 secret read on stdin (provisioning from a vault): "
                   "nothing is shown, and the same secret again changes nothing")  # fmt: skip
    t.add_argument("--replace", action="store_true",
                   help="with --secret-stdin: replace a different secret enrolled since (else "
                   "refused: a vault's old secret must not undo a re-enrolment)")  # fmt: skip
    t.add_argument("--json", action="store_true")


RECOVERY_CODES = 10
ISSUER = "camdock"


def _operator() -> str:
    """Who ran the command, as the custody entry names them (the shell's user)."""
    uid = os.getuid()
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid}, camdock staff)"
    except KeyError:
        return f"uid {uid} (camdock staff)"


def _recovery_code() -> str:
    """80 random bits in base32, as four groups of four."""
    text = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(16))
    return "-".join(text[i : i + 4] for i in range(0, 16, 4))


def _sync(args: argparse.Namespace) -> int:
    cfg = load_or_report(args.config)
    if cfg is None:
        raise CamdockError(f"invalid configuration {args.config}", ExitCode.CONFIG)
    db = open_catalog(cfg.catalog)
    try:
        changes = staff_rows.sync(db, cfg.staff, cfg.password_hashes, _operator())
    finally:
        db.close()
    return output(args, {"changes": changes},
                  lambda: [str(c) for c in changes] or ["no change"])  # fmt: skip


def _totp(args: argparse.Namespace) -> int:
    """Enrol ``args.id``: the secret into the catalog (recorded, never logged), shown once."""
    import pyotp
    import segno

    cfg = load_or_report(args.config)
    if cfg is None:
        raise CamdockError(f"invalid configuration {args.config}", ExitCode.CONFIG)
    if args.secret_stdin:
        return _totp_given(args, cfg)
    codes_wanted = RECOVERY_CODES if args.codes is None else args.codes
    if not 1 <= codes_wanted <= 50:
        raise UsageError("--codes: between 1 and 50")
    db = open_catalog(cfg.catalog)
    try:
        who = _member(db, cfg, args.id)
        secret = pyotp.random_base32(32)
        codes = [_recovery_code() for _ in range(codes_wanted)]
        staff_rows.enrol_totp(db, who.id, secret, codes, _operator())
    finally:
        db.close()
    uri = pyotp.TOTP(secret).provisioning_uri(name=f"{who.id}@{cfg.station_id}",
                                               issuer_name=ISSUER)  # fmt: skip
    doc = {"staff": who.id, "uri": uri, "secret": secret, "recovery_codes": codes}
    if args.json:
        return output(args, doc, list)
    qr = segno.make(uri, error="m")
    qr.terminal(out=sys.stdout, compact=True)
    lines = [
        f"{who.name} ({who.id}): scan the code above with an authenticator app, or enter",
        f"  {uri}",
        "Shown once: it is not kept anywhere it can be shown again. Re-enrolling replaces it.",
        f"Recovery codes (each works once, in place of a one-time code; {len(codes)}):",
        *(f"  {c}" for c in codes),
    ]
    return output(args, doc, lambda: lines)


MIN_SECRET = 26  # base32 characters: 130 bits (RFC 4226 asks for 128 at least)


def _given_secret() -> str:
    """The base32 secret on stdin (spaces and case as an authenticator app shows them)."""
    secret = "".join(sys.stdin.readline().split()).upper().rstrip("=")
    try:
        base64.b32decode(secret + "=" * (-len(secret) % 8))
    except binascii.Error:
        raise UsageError("--secret-stdin: not a base32 secret") from None
    if len(secret) < MIN_SECRET:
        raise UsageError(f"--secret-stdin: a secret has {MIN_SECRET} base32 characters at least")
    return secret


def _member(db: Database, cfg: Config, staff_id: str) -> staff_rows.Staff:
    """``staff_id`` on the station's staff (the config's list synced first), active, or
    ``CamdockError`` (exit 66)."""
    staff_rows.sync(db, cfg.staff, cfg.password_hashes, _operator())
    who = staff_rows.get(db, staff_id)
    if who is None or not who.active:
        raise CamdockError(f"{staff_id!r} is not on station {cfg.station_id}'s staff",
                           ExitCode.NOINPUT)  # fmt: skip
    return who


def _totp_given(args: argparse.Namespace, cfg: Config) -> int:
    """Enrol the secret on stdin (the Ansible role, from the vault; issue 30): idempotent, so
    a second run with the same secret changes nothing and spends no recovery codes; the secret
    is neither printed nor recorded (the custody entry says only that one was enrolled)."""
    codes_wanted = 0 if args.codes is None else args.codes
    if not 0 <= codes_wanted <= 50:
        raise UsageError("--codes: between 0 and 50")
    secret = _given_secret()
    db = open_catalog(cfg.catalog)
    try:
        who = _member(db, cfg, args.id)
        now = staff_rows.totp_of(db, who.id)
        same = now is not None and hmac.compare_digest(now.secret, secret)
        if now is not None and not same and not args.replace:
            # A person re-enrolled on the station (a lost phone) keeps their new secret: the
            # next routine apply of a vault's old one is refused, not done (review F6).
            raise CamdockError(f"{who.id} is enrolled with another secret (re-enrolled since?): "
                               "nothing changed; to replace it give --replace",
                               ExitCode.NOPERM)  # fmt: skip
        codes = [] if same else [_recovery_code() for _ in range(codes_wanted)]
        if not same:
            staff_rows.enrol_totp(db, who.id, secret, codes, _operator())
    finally:
        db.close()
    doc = {"staff": who.id, "enrolled": not same, "recovery_codes": codes}
    return output(args, doc, lambda: [
        f"{who.id}: " + ("second factor enrolled" if not same else "already enrolled, unchanged"),
        *(f"  {c}" for c in codes)])  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Print a hash, or the staff list; import the staff; enrol a second factor."""
    if args.action == "sync":
        return _sync(args)
    if args.action == "totp":
        return _totp(args)
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
