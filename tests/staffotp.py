"""The second factor in tests (issue 27): approvers, supervisors and auditors log in with a
one-time code. ``enrol`` gives each of a station's people in those roles a secret made from
their id (in the catalog, as ``camdock staff totp`` stores it); ``code`` answers one for now
by the station's clock, moving the test's clock on to a fresh time step when the last one was
used (the daemon refuses a code replayed within its window)."""

from __future__ import annotations

import base64
import hashlib
import sqlite3
from datetime import timedelta
from pathlib import Path

import pyotp

from camdock import clock
from camdock.catalog import open_catalog
from camdock.catalog import staff as staff_rows
from camdock.config import Config
from camdock.station.control import NEEDS_OTP, SOCKET

__all__ = ["code", "enrol", "secret"]

_CATALOGS: dict[Path, Path] = {}  # a control socket → the catalog of its station


def secret(staff_id: str) -> str:
    """The test's TOTP secret of ``staff_id`` (base32)."""
    return base64.b32encode(hashlib.sha256(staff_id.encode()).digest()[:20]).decode()


def enrol(cfg: Config, socket_path: Path | None = None) -> None:
    """The config's staff into the catalog, and each one who needs a second factor enrolled."""
    db = open_catalog(cfg.catalog)
    try:
        staff_rows.sync(db, cfg.staff, cfg.password_hashes)
        for p in cfg.staff.values():
            if p.roles & NEEDS_OTP:
                staff_rows.enrol_totp(db, p.id, secret(p.id), [], "test")
    finally:
        db.close()
    _CATALOGS[socket_path or cfg.run_dir / SOCKET] = cfg.catalog


def code(where: Path, staff_id: str) -> str:
    """A code ``staff_id`` has not used yet; ``where``: the catalog or the control socket."""
    catalog = _CATALOGS.get(where, where)
    con = sqlite3.connect(catalog)
    try:
        found = con.execute("SELECT last_step FROM staff_totp WHERE staff_id = ?", (staff_id,))
        last = int((found.fetchone() or (0,))[0] or 0)
    finally:
        con.close()
    totp = pyotp.TOTP(secret(staff_id))
    at = totp.timecode(clock.now())
    if at + 1 <= last:  # used up to the window's end: the station's clock moves on
        running = clock._clock  # the test's own clock
        assert isinstance(running, clock.RunningClock | clock.FixedClock), running
        running.at += timedelta(seconds=30 * (last - at))
        at = totp.timecode(clock.now())
    step = at if at > last else at + 1
    return totp.generate_otp(step)
