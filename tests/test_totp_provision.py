"""Issue 30: a second factor provisioned from a vault (the Ansible role runs ``camdock staff
totp ID --secret-stdin``): the secret read on stdin, enrolled once (a second run with the same
secret changes nothing and spends no recovery code), never printed nor in the custody log, and
the one-time code made from it logs the person in (REG-4.1.1; the daemon's login path)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pyotp

from camdock import clock, passwords
from camdock.config import load
from camdock.errors import ExitCode
from camdock.station.control import Control
from conftest import camdock_cmd, run
from stationcfg import write_config
from test_access import STAFF

PASSWORD = "a long console password"  # noqa: S105 - the test's own
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"  # noqa: S105 - a throwaway base32 secret (160 bits)


def _enrol(cfg_path: Path, staff: str, secret: str, *extra: str) -> tuple[int, str, str]:
    res = run(camdock_cmd("staff", "totp", staff, "--config", str(cfg_path), "--secret-stdin",
                          "--json", *extra), input=secret + "\n")  # fmt: skip
    return res.returncode, res.stdout, res.stderr


def _custody(catalog: Path) -> str:
    con = sqlite3.connect(catalog)
    try:
        return "\n".join(d + (r or "") for d, r in con.execute(
            "SELECT details, rows FROM custody_log"))  # fmt: skip
    finally:
        con.close()


def test_a_vault_secret_is_enrolled_once_and_logs_in(tmp_path: Path) -> None:
    hashed = passwords.hash_password(PASSWORD)
    cfg_path = write_config(tmp_path, STAFF.replace('roles = ["', f'password_hash = "{hashed}"\n'
                                                    'roles = ["'))  # fmt: skip
    # An authenticator app shows the secret in groups, in lower case: the same secret.
    shown = " ".join(SECRET[i : i + 4] for i in range(0, len(SECRET), 4)).lower()
    rc, out, err = _enrol(cfg_path, "S1", shown)
    assert rc == 0, err
    assert json.loads(out) == {"staff": "S1", "enrolled": True, "recovery_codes": []}
    rc, out, err = _enrol(cfg_path, "S1", SECRET)  # the role's second run
    assert rc == 0 and json.loads(out)["enrolled"] is False, err
    cfg = load(cfg_path)
    log = _custody(cfg.catalog)
    assert SECRET not in log and SECRET.lower() not in log and SECRET not in out
    assert log.count('"second factor enrolled"') == 1  # the second run recorded nothing
    ctl = Control(cfg)
    code = pyotp.TOTP(SECRET).at(clock.now())
    doc, _ = ctl.handle({"op": "login", "token": None,
                        "args": {"staff": "S1", "password": PASSWORD, "otp": code}}, 0)  # fmt: skip
    assert doc["ok"] and "supervisor" in doc["result"]["person"]["roles"], doc
    # A different secret (the vault's old one, after a re-enrolment on the station) is refused
    # and changes nothing (review F6); with --replace it re-enrols (recorded), with recovery
    # codes when asked.
    other = pyotp.random_base32(32)
    rc, out, err = _enrol(cfg_path, "S1", other)
    assert rc == ExitCode.NOPERM and "--replace" in err and "Traceback" not in err
    assert _custody(cfg.catalog).count('"second factor enrolled"') == 1
    rc, out, err = _enrol(cfg_path, "S1", other, "--codes", "2", "--replace")
    assert rc == 0 and json.loads(out)["enrolled"] and len(json.loads(out)["recovery_codes"]) == 2
    assert _custody(cfg.catalog).count('"second factor enrolled"') == 2


def test_a_bad_secret_or_person_is_refused_and_nothing_is_enrolled(tmp_path: Path) -> None:
    cfg_path = write_config(tmp_path, STAFF)
    for secret, code, why in (
        ("not base32 at all!", 64, "not a base32 secret"),
        ("JBSWY3DPEHPK3PXP", 64, "26 base32 characters"),  # 80 bits: too short
        ("", 64, "26 base32 characters"),
    ):
        rc, out, err = _enrol(cfg_path, "S1", secret)
        assert rc == code and why in err and len(err.strip().splitlines()) == 1, (secret, err)
        assert json.loads(out)["ok"] is False  # --json: one document, the error in it
    rc, out, err = _enrol(cfg_path, "ZZ9", SECRET)
    assert rc == 66 and "ZZ9" in err and json.loads(out)["ok"] is False
    assert '"second factor enrolled"' not in _custody(load(cfg_path).catalog)
