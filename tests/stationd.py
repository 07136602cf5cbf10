"""The station daemon's control side for tests that run acting commands (issue 27): a real
control server in the test process for a station's config, every staff member's password set
to ``PASSWORD``, and that password in a mode 0600 file for ``--password-file``."""

from __future__ import annotations

import dataclasses
import functools
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from camdock import passwords
from camdock.adapters.control import Server
from camdock.config import Config, load
from camdock.station.control import SOCKET, Control
from conftest import camdock_cmd, run

PASSWORD = "a long station password"  # noqa: S105 - the tests' own


@functools.cache
def _hashed() -> str:
    return passwords.hash_password(PASSWORD)  # once: scrypt is slow on purpose


def with_passwords(cfg: Config) -> Config:
    """``cfg`` with every staff member's password ``PASSWORD``."""
    return dataclasses.replace(cfg, password_hashes={sid: _hashed() for sid in cfg.staff})


def password_file(where: Path, password: str = PASSWORD, mode: int = 0o600) -> Path:
    """``password`` in a file of ``mode`` (first line), for ``--password-file``."""
    path = where / f"password-{mode:o}-{abs(hash(password)):x}"
    path.write_text(password + "\n", encoding="utf-8")
    path.chmod(mode)
    return path


@contextmanager
def control_server(cfg_path: Path, export_roots: tuple[Path, ...] | None = None,
                   seal_key: Path | None = None) -> Iterator[Config]:  # fmt: skip
    """The station's control socket answered by a ``Control`` in this process (the daemon's
    side of every acting command), while the block runs; ``seal_key``: the daemon's seal
    password file."""
    cfg = with_passwords(load(cfg_path))
    if seal_key is not None:
        cfg = dataclasses.replace(cfg, seal=dataclasses.replace(cfg.seal, password_file=seal_key))
    roots = export_roots if export_roots is not None else (cfg_path.parent,)
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    server = Server(cfg.run_dir / SOCKET, Control(cfg, roots).handle,
                    frozenset({0, os.geteuid()}))  # fmt: skip
    server.start()
    try:
        yield cfg
    finally:
        server.close()


def acting(
    cfg_path: Path,
    *args: str,
    password: str = PASSWORD,
    export_roots: tuple[Path, ...] | None = None,
    seal_key: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``camdock ARGS --config CFG`` with a control server answering for the station and the
    person's password in a 0600 file: an acting command, authenticated through the daemon."""
    pw = password_file(cfg_path.parent, password)
    extra = ["--config", str(cfg_path), "--password-file", str(pw)]
    with control_server(cfg_path, export_roots, seal_key) as cfg:
        extra += _second_factor(cfg, cfg_path.parent, args)
        return run(camdock_cmd(*args, *extra))


def _second_factor(cfg: Config, where: Path, args: tuple[str, ...]) -> list[str]:
    """Approvers, supervisors and auditors log in with a one-time code (issue 27): each such
    member of the station's staff enrolled once, and the acting person's code for now in a
    0600 file for ``--otp-file``."""
    from camdock.catalog import open_catalog
    from camdock.catalog import staff as staff_rows
    from staffotp import code, secret

    db = open_catalog(cfg.catalog)
    try:
        for p in cfg.staff.values():  # a roster may grant anyone a role that needs one
            if staff_rows.totp_of(db, p.id) is None:
                staff_rows.enrol_totp(db, p.id, secret(p.id), [], "test")
    finally:
        db.close()
    who = next((args[i + 1] for i, a in enumerate(args[:-1]) if a in ("--by", "--as")), None)
    person = cfg.staff.get(who or "")
    if person is None:
        return []
    otp = where / f"otp-{person.id}"
    otp.write_text(code(cfg.catalog, person.id) + "\n", encoding="utf-8")
    otp.chmod(0o600)
    return ["--otp-file", str(otp)]
