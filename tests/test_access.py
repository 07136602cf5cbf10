"""People, roles and the access/copy workflow (REG-4.1.1, REG-5, REG-6; invariant 9): every
refusal, the whole path of one request with a verified copy, and a copy out of a sealed day."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from datetime import date, timedelta
from pathlib import Path

from camdock import clock
from camdock.catalog import custody, open_catalog
from camdock.config import load
from camdock.errors import ExitCode
from camdock.services.retention import plan_for
from conftest import TZ, camdock_cmd, make_camera, offload, run
from stationcfg import write_config
from test_mqtt import message_for, validator

STAFF = """
[[staff]]
id = "C1"
name = "陳保管"
title = "保管人"
roles = ["custodian"]

[[staff]]
id = "S1"
name = "林督導"
roles = ["supervisor"]

[[staff]]
id = "P1"
name = "王分局長"
title = "分局長"
roles = ["approver"]

[[staff]]
id = "P2"
name = "張副分局長"
roles = ["approver"]

[[staff]]
id = "R1"
name = "李公關"
roles = ["pr"]

[[staff]]
id = "D1"
name = "周偵查員"
title = "偵查員"
unit = "刑事組"
roles = ["officer"]
"""


def _station(tmp_path: Path) -> Path:
    cfg_path = write_config(tmp_path, STAFF)
    cfg = load(cfg_path)
    make_camera(tmp_path / "cam", 3, size=16 * 1024, seed=21)
    assert offload(tmp_path / "cam", [cfg.footage, cfg.backup], cfg.catalog).ok
    return cfg_path


def _cmd(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(camdock_cmd(*args, "--config", str(cfg)))


def _new(cfg: Path, by: str, purpose: str = "investigation", kind: str = "copy") -> str:
    made = _cmd(cfg, "request", "new", "--officer", "A12345", "--from", "2026-11-28", "--to",
                "2026-11-28", "--kind", kind, "--reason", "傷害案調查", "--purpose", purpose,
                "--duty-item", "巡邏", "--by", by, "--json")  # fmt: skip
    assert made.returncode == 0, made.stderr
    doc = json.loads(made.stdout)
    assert len(doc["recordings"]) == 3 and doc["note"] is None
    return str(doc["request"]["number"])


def _refused(r: subprocess.CompletedProcess[str], text: str) -> None:
    assert r.returncode == ExitCode.NOPERM, r.stdout + r.stderr
    assert text in r.stderr and "Traceback" not in r.stderr


def _now(minutes: int = 0) -> str:
    return (clock.now() + timedelta(minutes=minutes)).isoformat(timespec="minutes")


def test_one_request_from_draft_to_acknowledged_with_a_verified_copy(tmp_path: Path) -> None:
    cfg = _station(tmp_path)
    n = _new(cfg, "D1")
    _refused(_cmd(cfg, "request", "approve", n, "--by", "P1"), "needs it submitted")
    assert _cmd(cfg, "request", "submit", n, "--by", "D1").returncode == 0
    _refused(_cmd(cfg, "request", "approve", n, "--by", "C1"), "needs the role approver")
    _refused(_cmd(cfg, "request", "approve", n, "--by", "X9"), "not on station test-01's staff")
    assert _cmd(cfg, "request", "approve", n, "--by", "P1", "--note", "依規定核准").returncode == 0
    export = tmp_path / "usb"
    export.mkdir()
    _refused(_cmd(cfg, "request", "copy", n, "--to", str(export), "--by", "C1"), "scheduled")
    assert _cmd(cfg, "request", "schedule", n, "--at", _now(-5), "--by", "C1").returncode == 0
    _refused(_cmd(cfg, "request", "copy", n, "--to", str(export), "--by", "S1"), "custodian")
    copied = _cmd(cfg, "request", "copy", n, "--to", str(export), "--by", "C1", "--medium",
                  "USB SN 4411", "--json")  # fmt: skip
    assert copied.returncode == 0, copied.stderr
    doc = json.loads(copied.stdout)
    folder = Path(doc["folder"])
    assert len(doc["files"]) == 3 and (folder / "README.txt").is_file()
    check = run(["sha256sum", "-c", "MANIFEST.sha256"], cwd=folder)
    assert check.returncode == 0 and check.stdout.count(": OK") == 3
    assert not list(folder.glob(".*"))  # no temp left
    _refused(_cmd(cfg, "request", "acknowledge", n, "--by", "C1"), "only the applicant")
    assert _cmd(cfg, "request", "acknowledge", n, "--by", "D1").returncode == 0
    shown = json.loads(_cmd(cfg, "request", "show", n, "--json").stdout)["request"]
    assert shown["state"] == "acknowledged" and shown["approved_by"] == "王分局長 (P1)"
    assert shown["applicant_name"] == "周偵查員" and shown["applicant_unit"] == "刑事組"
    # While open, the request holds its footage; closed, it does not.
    c = load(cfg)
    db = open_catalog(c.catalog)
    assert len(plan_for(db, date(2028, 1, 1)).held) == 3
    db.close()
    assert _cmd(cfg, "request", "close", n, "--by", "C1").returncode == 0
    db = open_catalog(c.catalog)
    assert plan_for(db, date(2028, 1, 1)).held == ()
    assert custody.verify(db) == []
    actions = [r[0] for r in db.execute("SELECT action FROM custody_log WHERE action NOT IN "
                                        "('store', 'clear') ORDER BY id")]  # fmt: skip
    assert actions.count("refused") == 6
    assert [a for a in actions if a != "refused"] == ["request", "submit", "approve", "schedule",
                                                      "copy", "acknowledge", "close"]  # fmt: skip
    refusals = [
        json.loads(r[0])
        for r in db.execute(
            "SELECT payload FROM outbox WHERE type IN (?, ?)", ("access-refused", "request-updated")
        )
    ]
    for body in refusals:
        validator(message_for(body["type"])).validate(body)
    db.close()
    reg = _cmd(cfg, "register", "export", "--from", "2026-01-01", "--to", "2030-01-01")
    assert reg.returncode == 0 and n in reg.stdout and "USB SN 4411" in reg.stdout
    assert "保管人 custodian" in reg.stdout.splitlines()[0]
    line = json.loads(_cmd(cfg, "register", "export", "--from", "2026-01-01", "--to",
                           "2030-01-01", "--format", "json").stdout)["register"][0]  # fmt: skip
    assert line["kind"] == "copy" and line["custodian"] == "陳保管 (C1)" and line["manifest_sha256"]


def test_refusals_separation_of_duties_media_window_and_expiry(tmp_path: Path) -> None:
    cfg = _station(tmp_path)
    own = _new(cfg, "P2")  # an approver's own request
    assert _cmd(cfg, "request", "submit", own, "--by", "P2").returncode == 0
    _refused(_cmd(cfg, "request", "approve", own, "--by", "P2"), "their own request")
    media = _new(cfg, "D1", purpose="media", kind="view")
    assert _cmd(cfg, "request", "submit", media, "--by", "D1").returncode == 0
    _refused(_cmd(cfg, "request", "approve", media, "--by", "P1"), "public-relations")
    _refused(_cmd(cfg, "request", "consult", media, "--by", "C1"), "role pr")
    assert _cmd(cfg, "request", "consult", media, "--by", "R1").returncode == 0
    assert _cmd(cfg, "request", "approve", media, "--by", "P1").returncode == 0
    assert _cmd(cfg, "request", "schedule", media, "--at", _now(120), "--by", "C1").returncode == 0
    _refused(_cmd(cfg, "request", "view", media, "--by", "C1"), "not now")
    _refused(_cmd(cfg, "request", "copy", media, "--to", str(tmp_path), "--by", "C1"),
             "approves a view")  # fmt: skip
    late = _new(cfg, "D1", kind="view")
    assert _cmd(cfg, "request", "submit", late, "--by", "D1").returncode == 0
    assert _cmd(cfg, "request", "approve", late, "--by", "P1", "--valid-days", "0").returncode == 0
    _refused(_cmd(cfg, "request", "schedule", late, "--at", _now(), "--by", "C1"), "expired")
    listed = json.loads(_cmd(cfg, "request", "list", "--json").stdout)["requests"]
    assert {r["number"]: r["state"] for r in listed}[late] == "expired"
    # The other manual commands check roles too, and record the refusal.
    destroy = _cmd(cfg, "retention", "destroy", "--recording", "1", "--by", "D1")
    _refused(destroy, "needs the role custodian")
    db = sqlite3.connect(load(cfg).catalog)
    [(n,)] = db.execute("SELECT count(*) FROM custody_log WHERE action = 'refused' AND "
                        "details LIKE '%destroy%'")  # fmt: skip
    db.close()
    assert n == 1


def test_a_copy_out_of_a_sealed_day_whose_plain_files_are_gone(tmp_path: Path) -> None:
    from camdock.services.seal import Key, Sealing, confirm_day, remove_plain, seal_day

    cfg = _station(tmp_path)
    c = load(cfg)
    key = tmp_path / "seal.key"
    key.write_text("a seal password for the test")
    key.chmod(0o600)
    db = open_catalog(c.catalog)
    sealing = Sealing(Key("1", "a seal password for the test"))
    seal_day(db, sealing, date(2026, 11, 28), "C1")
    confirm_day(db, sealing, date(2026, 11, 28), "S1")
    assert remove_plain(db, sealing, 0, "C1") == []
    db.close()
    assert not list(c.footage.rglob("*.mp4"))
    n = _new(cfg, "D1")
    for step, by in (("submit", "D1"), ("approve", "P1")):
        assert _cmd(cfg, "request", step, n, "--by", by).returncode == 0
    assert _cmd(cfg, "request", "schedule", n, "--at", _now(-1), "--by", "C1").returncode == 0
    export = tmp_path / "usb"
    export.mkdir()
    nokey = _cmd(cfg, "request", "copy", n, "--to", str(export), "--by", "C1")
    assert nokey.returncode == ExitCode.NOINPUT and "seal password" in nokey.stderr
    export2 = tmp_path / "usb2"
    export2.mkdir()
    done = _cmd(cfg, "request", "copy", n, "--to", str(export2), "--by", "C1", "--password-file",
                str(key), "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    folder = Path(json.loads(done.stdout)["folder"])
    assert run(["sha256sum", "-c", "MANIFEST.sha256"], cwd=folder).returncode == 0
    assert not (folder / ".extract").exists()


def test_the_printed_forms_are_pdf_in_traditional_chinese(tmp_path: Path) -> None:
    import shutil

    import pytest

    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext not installed (poppler-utils; make test as root installs it)")
    cfg = _station(tmp_path)
    n = _new(cfg, "D1")
    for step, by in (("submit", "D1"), ("approve", "P1")):
        assert _cmd(cfg, "request", step, n, "--by", by).returncode == 0
    assert _cmd(cfg, "request", "schedule", n, "--at", _now(-1), "--by", "C1").returncode == 0
    usb = tmp_path / "usb"
    usb.mkdir()
    assert _cmd(cfg, "request", "copy", n, "--to", str(usb), "--by", "C1").returncode == 0

    def text(pdf: Path) -> str:
        assert pdf.read_bytes()[:5] == b"%PDF-"
        out = run(["pdftotext", "-layout", str(pdf), "-"])
        assert out.returncode == 0
        return out.stdout

    form = tmp_path / "annex2.pdf"
    assert _cmd(cfg, "request", "show", n, "--pdf", str(form)).returncode == 0
    annex2 = text(form)
    for words in ("調閱／複製申請書", "攝錄員警", "周偵查員", "王分局長", "公共關係單位", n):
        assert words in annex2, words
    reg = tmp_path / "annex3.pdf"
    made = _cmd(cfg, "register", "export", "--from", "2026-01-01", "--to", "2030-12-31",
                "--format", "pdf", "--out", str(reg))  # fmt: skip
    assert made.returncode == 0, made.stderr
    annex3 = text(reg)
    assert "紀錄清冊" in annex3 and "陳保管" in annex3 and n in annex3
    cat = tmp_path / "annex1.pdf"
    made = _cmd(cfg, "catalog", "export", "--day", "2026-11-28", "--format", "pdf", "--out",
                str(cat))  # fmt: skip
    assert made.returncode == 0, made.stderr
    annex1 = text(cat)
    assert "目錄清冊" in annex1 and "王小明" in annex1 and "共 3 筆" in annex1
    csv_out = _cmd(cfg, "catalog", "export", "--officer", "A12345", "--format", "csv")
    assert csv_out.returncode == 0 and len(csv_out.stdout.strip().splitlines()) == 4


def test_console_password_hashes_and_the_staff_list(tmp_path: Path) -> None:
    from camdock import passwords

    made = run(camdock_cmd("staff", "hash-password"), input="correct horse battery\n")
    assert made.returncode == 0, made.stderr
    hashed = made.stdout.strip()
    assert passwords.verify("correct horse battery", hashed)
    assert not passwords.verify("wrong horse battery", hashed)
    assert "correct horse" not in made.stdout
    short = run(camdock_cmd("staff", "hash-password"), input="short\n")
    assert short.returncode == ExitCode.USAGE
    cfg = write_config(
        tmp_path, STAFF.replace('roles = ["pr"]', f'roles = ["pr"]\npassword_hash = "{hashed}"')
    )
    listed = json.loads(run(camdock_cmd("staff", "list", "--config", str(cfg), "--json")).stdout)
    people = {p["id"]: p for p in listed["staff"]}
    assert people["R1"]["console"] and not people["C1"]["console"]
    assert people["A12345"]["roles"] == ["officer"]
    bad = write_config(tmp_path / "bad", STAFF.replace('roles = ["pr"]', 'roles = ["king"]'))
    checked = run(camdock_cmd("check-config", str(bad)))
    assert checked.returncode == ExitCode.CONFIG and "staff[4].roles[0]" in checked.stderr


def test_text_in_a_legacy_encoding_is_refused_by_every_command(tmp_path: Path) -> None:
    big5 = "陳情".encode("big5").decode("utf-8", "surrogateescape")
    catalog = tmp_path / "c.db"
    for args in (["hold", "place", "--recording", "1", "--kind", "complaint", "--case", big5,
                  "--reason", "r", "--by", "x", "--catalog", str(catalog), "--json"],
                 ["request", "new", "--officer", "A1", "--from", "2026-11-28", "--to",
                  "2026-11-28", "--kind", "view", "--reason", big5, "--purpose", "official",
                  "--by", "x", "--catalog", str(catalog), "--json"]):  # fmt: skip
        out = run(camdock_cmd(*args))
        assert out.returncode == ExitCode.USAGE and "not valid UTF-8" in out.stderr
        assert json.loads(out.stdout)["ok"] is False and "Traceback" not in out.stderr


def test_the_roster_can_grant_a_role_for_the_day(tmp_path: Path) -> None:
    """REG-4.1.1: the server's roster names today's delegate approving officer; every command
    then checks that grant (the daemon keeps it in the catalog)."""
    from camdock.catalog import assignments
    from camdock.catalog.db import write_txn
    from camdock.core.roster import Registry, parse
    from camdock.errors import RosterError

    registry = Registry("Test Precinct", frozenset({"A12345"}), frozenset({"CAM0001"}))
    delegate = {"badge": "B77", "name": "代理分局長", "roles": ["approver"]}
    body = {"version": 1, "date": "2026-11-29", "assignments": [], "officers": [delegate]}
    roster = parse(json.dumps(body).encode(), registry)
    assert roster.roles == {"B77": frozenset({"approver"})}
    import pytest

    with pytest.raises(RosterError, match="roles"):
        king = {**body, "officers": [{"badge": "B7", "name": "x", "roles": ["king"]}]}
        parse(json.dumps(king).encode(), registry)
    cfg = _station(tmp_path)
    n = _new(cfg, "D1")
    assert _cmd(cfg, "request", "submit", n, "--by", "D1").returncode == 0
    _refused(_cmd(cfg, "request", "approve", n, "--by", "B77"), "not on station")
    _refused(_cmd(cfg, "request", "approve", n, "--by", "R1"), "approve")
    db = open_catalog(load(cfg).catalog)
    with write_txn(db):  # as the daemon keeps a roster's grants (station/rosters.py)
        assignments.record_roles(
            db,
            "2026-11-29",
            {"B77": ("代理分局長", "", ["approver"]), "R1": ("李公關", "", ["approver"])},
            TZ,
        )
    db.close()
    # Issue 27: a roster grants no role to someone on no staff list …
    _refused(_cmd(cfg, "request", "approve", n, "--by", "B77"), "not on station")
    # … and to the staff for the duty day it names (tests/test_identity.py: not the day after).
    ok = _cmd(cfg, "request", "approve", n, "--by", "R1", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["request"]["approved_by"] == "李公關 (R1)"
