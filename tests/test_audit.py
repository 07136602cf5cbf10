"""The audit (REG-7.1, REG-7.2; invariant 6): fixity of every stored copy read back from disk,
and a custody chain that cannot be cut short or rewritten unseen — against the heads on the
drives and against the server's witness, seen through a real mosquitto."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from camdock import clock
from camdock.catalog import chainkey, custody, open_catalog
from camdock.catalog.custody import Action
from camdock.catalog.db import write_txn
from camdock.errors import CamdockError, ExitCode
from camdock.events import EventType, Topics
from conftest import TZ, camdock_cmd, make_camera, offload, run, tree_hashes
from mqttbroker import Broker
from test_mqtt import (
    broker,  # noqa: F401 - the fixture
    message_for,
    validator,
)

TOPICS = Topics("camdock", "test-01")


def _offloaded(tmp_path: Path, files: int = 4) -> tuple[Path, Path, Path]:
    d1, d2, catalog = tmp_path / "footage", tmp_path / "backup", tmp_path / "c.db"
    d1.mkdir(), d2.mkdir()
    make_camera(tmp_path / "cam", files, size=32 * 1024, seed=9)
    assert offload(tmp_path / "cam", [d1, d2], catalog).ok
    return d1, d2, catalog


def _audit(catalog: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(camdock_cmd("audit", "--catalog", str(catalog), *args))


def test_fixity_finds_flipped_truncated_deleted_and_extra_files(tmp_path: Path) -> None:
    d1, d2, catalog = _offloaded(tmp_path)
    clean = _audit(catalog, "--full", "--json")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert json.loads(clean.stdout)["copies_proven"] == 8
    a, b, c, _ = sorted(d1.rglob("*.mp4"))
    with open(a, "r+b") as f:  # one bit flipped
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0x01]))
    with open(b, "r+b") as f:  # truncated
        f.truncate(100)
    c.unlink()  # deleted
    stray = d2 / "2026" / "11" / "28" / "someone-elses.mp4"
    stray.write_bytes(b"not catalogued")
    found = _audit(catalog, "--full", "--json")
    assert found.returncode == ExitCode.FAILED
    doc = json.loads(found.stdout)
    kinds = {(f["kind"], Path(f["path"]).name) for f in doc["findings"]}
    assert kinds == {("changed", a.name), ("changed", b.name), ("missing", c.name),
                     ("extra", stray.name)}  # fmt: skip
    assert all(f["recording"] for f in doc["findings"] if f["kind"] != "extra")
    assert doc["copies_proven"] == 5
    text = _audit(catalog, "--full")
    assert "CHANGED" in text.stdout and str(stray) in text.stdout


def test_a_chain_cut_short_is_found_by_the_drives_heads(tmp_path: Path) -> None:
    d1, d2, catalog = _offloaded(tmp_path)
    audited = _audit(catalog, "--by", "稽核員 吳", "--json")  # records the audit, writes heads
    assert audited.returncode == 0, audited.stderr
    assert (d1 / "camdock-catalog" / "custody-heads.log").is_file()
    db = open_catalog(catalog)
    [(actor,)] = db.execute("SELECT actor FROM custody_log WHERE action = 'audit'")
    assert actor == "稽核員 吳 (unverified actor)"  # a bare catalog (issue 27)
    db.close()
    # Someone with the SD card drops the triggers and the last entries with their rows.
    conn = sqlite3.connect(catalog)
    conn.execute("DROP TRIGGER custody_no_delete")
    conn.execute("DELETE FROM custody_log WHERE id > (SELECT max(id) - 3 FROM custody_log)")
    conn.commit()
    conn.close()
    cut = _audit(catalog, "--json")
    assert cut.returncode == ExitCode.FAILED
    problems = json.loads(cut.stdout)["chain_problems"]
    assert any("cut short" in p and str(d1) in p for p in problems)
    assert any("cut short" in p and str(d2) in p for p in problems)


def test_a_chain_rewritten_whole_is_found_by_the_heads(tmp_path: Path) -> None:
    _, _, catalog = _offloaded(tmp_path)
    assert _audit(catalog, "--by", "a").returncode == 0
    # A consistent chain rebuilt from scratch: it verifies on its own, not against the heads.
    conn = sqlite3.connect(catalog)
    old = conn.execute("SELECT action, recording_id, actor, details, rows FROM custody_log "
                       "ORDER BY id").fetchall()  # fmt: skip
    conn.execute("DROP TRIGGER custody_no_delete")
    conn.execute("DELETE FROM custody_log")
    conn.execute("DELETE FROM sqlite_sequence WHERE name = 'custody_log'")
    conn.commit()
    conn.close()
    db = open_catalog(catalog)
    with write_txn(db):
        for action, rec, actor, details, states in old:  # with the rows' states, as camdock would
            custody._append(db, Action(action), rec, "forger" if action == "audit" else actor,
                            json.loads(details), json.loads(states) if states else [])  # fmt: skip
    assert custody.verify(db) == []  # internally consistent
    db.close()
    found = _audit(catalog, "--json")
    assert found.returncode == ExitCode.FAILED
    assert any("rewritten" in p for p in json.loads(found.stdout)["chain_problems"])


def test_catalog_rows_changed_outside_camdock_are_found(tmp_path: Path) -> None:
    _, _, catalog = _offloaded(tmp_path, files=2)
    conn = sqlite3.connect(catalog)
    conn.execute("UPDATE recordings SET sha256 = ? WHERE id = 1", ("0" * 64,))
    conn.execute("UPDATE recordings SET relpath = 'elsewhere.mp4' WHERE id = 2")
    conn.commit()
    conn.close()
    out = _audit(catalog, "--json")
    problems = json.loads(out.stdout)["chain_problems"]
    assert out.returncode == ExitCode.FAILED
    assert any("recording 1: sha256" in p for p in problems)
    assert any("recording 2: relpath" in p for p in problems)


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        ("UPDATE recordings SET retain_until = '2026-11-30' WHERE id = 1", "retain_until"),
        ("UPDATE recordings SET destroy_by = '2026-11-30' WHERE id = 1", "destroy_by"),
        ("UPDATE recordings SET recorded_start = '2025-11-28T09:07:00+08:00' WHERE id = 1",
         "recorded_start"),
        ("UPDATE recordings SET ingested_at = '2025-11-28T09:07:00+00:00' WHERE id = 1",
         "ingested_at"),
        ("UPDATE recordings SET officer_badge = 'X99999' WHERE id = 1", "officer_badge"),
        ("UPDATE recordings SET duty_slot = '0000-0400' WHERE id = 1", "duty_slot"),
        ("UPDATE recordings SET camera_id = 'CAM-X' WHERE id = 1", "camera_id"),
        ("UPDATE copies SET destination = '/elsewhere' WHERE recording_id = 1 "
         "AND destination = (SELECT min(destination) FROM copies)", "gone from the catalog"),
        ("DELETE FROM copies WHERE recording_id = 2 AND destination = "
         "(SELECT max(destination) FROM copies)", "gone from the catalog"),
        ("INSERT INTO roster_roles (badge, name, unit, roles, duty_day, received_at) VALUES "
         "('Z1', 'z', 'u', '[\"auditor\"]', '2026-11-29', '2026-11-29T00:00:00+00:00')",
         "not in the custody chain"),
    ],
)  # fmt: skip
def test_an_insider_edit_with_the_triggers_dropped_is_named(
    tmp_path: Path, edit: str, named: str
) -> None:
    """Issue 26: an insider with the catalog open in sqlite3 (camdock's own triggers dropped)
    edits a row custody depends on; the audit (without --full) names the row and the field."""
    _, _, catalog = _offloaded(tmp_path, files=2)
    assert _audit(catalog).returncode == 0
    conn = sqlite3.connect(catalog)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute(edit)
    conn.commit()
    conn.close()
    out = _audit(catalog, "--json")
    problems = json.loads(out.stdout)["chain_problems"]
    assert out.returncode == ExitCode.FAILED
    assert any(named in p for p in problems), problems


def test_changes_through_camdock_leave_the_audit_clean(tmp_path: Path) -> None:
    """The same kind of change made through the catalog's own functions is chained with it:
    a hold placed and released, a recording destroyed, the audit still clean."""
    _, _, catalog = _offloaded(tmp_path, files=2)
    db = open_catalog(catalog)
    with write_txn(db):  # what a change without its own entry would look like: chained at commit
        db.execute("UPDATE recordings SET hold_reason = 'x' WHERE id = 1")
    kinds = [r[0] for r in db.execute("SELECT action FROM custody_log ORDER BY id")]
    db.close()
    assert kinds[-1] == "state"
    assert _audit(catalog).returncode == 0


def test_the_witness_the_server_kept_finds_a_rewritten_chain(
    tmp_path: Path,
    broker: Broker,  # noqa: F811 - the fixture imported above
) -> None:
    from camdock.catalog.outbox import record

    _, _, catalog = _offloaded(tmp_path, files=2)
    witness = tmp_path / "witness.jsonl"
    proc = subprocess.Popen(camdock_cmd("monitor", "--broker", f"127.0.0.1:{broker.port}",
                                        "--json", "--duration", "6", "--witness", str(witness)),
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    import paho.mqtt.publish as publish

    publish.single("camdock/v1/test-01/status", "online", qos=1, retain=True,
                   hostname="127.0.0.1", port=broker.port)  # fmt: skip
    assert proc.stdout is not None
    proc.stdout.readline()  # subscribed
    db = open_catalog(catalog)
    with write_txn(db):
        record(db, TOPICS, EventType.BAY_FAULT, bay=1, data={"message": "x"})
    [(payload,)] = db.execute("SELECT payload FROM outbox ORDER BY id DESC LIMIT 1")
    db.close()
    publish.single("camdock/v1/test-01/events/bay-fault", payload, qos=1,
                   hostname="127.0.0.1", port=broker.port)  # fmt: skip
    proc.communicate(timeout=20)
    [seen] = [json.loads(x) for x in witness.read_text().splitlines()]
    assert seen["station"] == "test-01" and seen["custody"]["seq"] >= 4
    assert _audit(catalog, "--witness", str(witness)).returncode == 0
    conn = sqlite3.connect(catalog)  # the last entry's details edited, its hash recomputed
    conn.execute("DROP TRIGGER custody_no_update")
    last = conn.execute("SELECT id, prev_hash FROM custody_log ORDER BY id DESC LIMIT 1").fetchone()
    conn.execute("UPDATE custody_log SET hash = ? WHERE id = ?", ("f" * 64, last[0]))
    conn.commit()
    conn.close()
    found = _audit(catalog, "--witness", str(witness), "--json")
    assert found.returncode == ExitCode.FAILED
    assert any("witness" in p and "rewritten" in p
               for p in json.loads(found.stdout)["chain_problems"])  # fmt: skip


def test_the_scrub_repairs_a_damaged_copy_from_the_good_one(tmp_path: Path) -> None:
    from camdock.services.scrub import scrub_step

    d1, d2, catalog = _offloaded(tmp_path, files=3)
    a, b, c = sorted(d1.rglob("*.mp4"))
    good_a = (d2 / a.relative_to(d1)).read_bytes()
    with open(a, "r+b") as f:  # a bit flipped on the footage drive
        f.seek(5)
        f.write(b"\xff")
    b.unlink()  # a copy gone
    lost = d2 / c.relative_to(d1)
    c.write_bytes(b"x")  # and one recording damaged on both drives
    lost.write_bytes(b"y")
    db = open_catalog(catalog)
    result = scrub_step(db, 1 << 30, TOPICS)
    assert len(result.damaged) == 4 and len(result.repaired) == 2
    assert len(result.lost) == 2  # both copies of the one recording with no good copy left
    assert a.read_bytes() == good_a and b.read_bytes() == (d2 / b.relative_to(d1)).read_bytes()
    assert c.read_bytes() == b"x"  # nothing good to repair it from: reported, left as found
    assert custody.verify(db) == []
    actions = [r[0] for r in db.execute("SELECT action FROM custody_log WHERE action IN "
                                        "('damage', 'repair') ORDER BY id")]  # fmt: skip
    assert actions.count("damage") == 4 and actions.count("repair") == 2
    kinds = [
        json.loads(r[0])
        for r in db.execute(
            "SELECT payload FROM outbox WHERE type IN (?, ?)", ("copy-damaged", "copy-repaired")
        )
    ]
    for body in kinds:
        validator(message_for(body["type"])).validate(body)
    # The next step proves the repaired copies; the lost one stays reported.
    again = scrub_step(db, 1 << 30, TOPICS)
    assert again.lost and len(again.damaged) == 2 and not again.repaired
    db.close()
    assert not list(d1.rglob(".camdock-repair-*"))


def test_a_forged_copy_with_a_forged_catalog_hash_leaves_the_genuine_copy_alone(
    tmp_path: Path,
) -> None:
    """Issue 26: a footage copy replaced with other bytes, and their hash written into the
    catalog (triggers dropped). The scrub judges by the custody chain, not the column: the
    genuine copy on the backup drive is untouched, the recording frozen (no destruction), the
    audit names it; an auditor resolves it, and only then is the forged copy repaired."""
    from camdock.catalog import freezes
    from camdock.errors import Refused
    from camdock.services.scrub import scrub_step

    d1, d2, catalog = _offloaded(tmp_path, files=2)
    forged_path = sorted(d1.rglob("*.mp4"))[0]
    genuine_path = d2 / forged_path.relative_to(d1)
    genuine = genuine_path.read_bytes()
    forged = b"forged bytes " * 1000
    forged_path.write_bytes(forged)
    conn = sqlite3.connect(catalog)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
        conn.execute(f"DROP TRIGGER {name}")
    rel = str(forged_path.relative_to(d1))
    (rec_id,) = conn.execute("SELECT id FROM recordings WHERE relpath = ?", (rel,)).fetchone()
    digest = hashlib.sha256(forged).hexdigest()
    conn.execute("UPDATE recordings SET sha256 = ?, size = ? WHERE id = ?",
                 (digest, len(forged), rec_id))  # fmt: skip
    conn.execute("UPDATE copies SET sha256 = ? WHERE recording_id = ?", (digest, rec_id))
    conn.commit()
    conn.close()
    db = open_catalog(catalog)
    try:
        result = scrub_step(db, 1 << 30, TOPICS)
        assert genuine_path.read_bytes() == genuine  # the only genuine copy: untouched
        assert forged_path.read_bytes() == forged  # and nothing "repaired" from the forgery
        assert not result.repaired and len(result.frozen) == 2, result
        assert [f.recording_id for f in freezes.open_freezes(db)] == [rec_id]
        with pytest.raises(Refused, match="frozen"):
            freezes.refuse_frozen(db, [rec_id], "destruction")
        again = scrub_step(db, 1 << 30, TOPICS)  # frozen once, still named
        assert len(again.frozen) == 2 and len(freezes.open_freezes(db)) == 1
    finally:
        db.close()
    found = _audit(catalog, "--json")
    problems = json.loads(found.stdout)["chain_problems"]
    assert found.returncode == ExitCode.FAILED
    assert any(f"recording {rec_id}: frozen" in p for p in problems), problems
    assert any(f"recordings [{rec_id}]: sha256" in p for p in problems), problems
    resolved = _audit(catalog, "resolve", "--recording", str(rec_id), "--by", "稽核員 林",
                      "--reason", "catalog edited; the chain is right", "--json")  # fmt: skip
    assert resolved.returncode == 0, resolved.stderr
    assert f"recordings [{rec_id}]" in json.loads(resolved.stdout)["restored_from_chain"]
    db = open_catalog(catalog)
    try:
        repaired = scrub_step(db, 1 << 30, TOPICS)
        assert len(repaired.repaired) == 1 and not repaired.frozen
    finally:
        db.close()
    assert forged_path.read_bytes() == genuine
    assert _audit(catalog, "--full").returncode == 0


def _as_insider(catalog: Path, *statements: tuple[str, tuple[object, ...]]) -> None:
    conn = sqlite3.connect(catalog)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
        conn.execute(f"DROP TRIGGER {name}")
    for sql, params in statements:
        conn.execute(sql, params)
    conn.commit()
    conn.close()


def test_camdock_never_chains_an_insiders_edit(tmp_path: Path) -> None:
    """Issue 26 (review): a recording's dates edited in sqlite3, then the retention pass asked
    to destroy what is due. The next change camdock would make to the row would chain the
    forgery; it is refused instead, nothing is destroyed, and the audit still names it."""
    d1, d2, catalog = _offloaded(tmp_path, files=2)
    before = tree_hashes(d1), tree_hashes(d2)
    _as_insider(
        catalog,
        (
            "UPDATE recordings SET retain_until = '2026-11-29', destroy_by = "
            "'2026-11-29', recorded_start = '2025-10-01T08:00:00+08:00', "
            "duty_slot_start = '2025-10-01T08:00:00+08:00'",
            (),
        ),
    )
    from test_retention import _approved_list

    list_id = _approved_list(["--catalog", str(catalog)], "daily", "approver")
    gone = run(camdock_cmd("retention", "execute", "--list", str(list_id), "--catalog",
                           str(catalog), "--by", "daily"))  # fmt: skip
    assert gone.returncode != 0 and "changed outside camdock" in gone.stderr, gone
    assert (tree_hashes(d1), tree_hashes(d2)) == before  # nothing destroyed
    db = open_catalog(catalog)
    try:
        with pytest.raises(CamdockError, match="retain_until"), write_txn(db):
            db.execute("UPDATE recordings SET hold_reason = 'x' WHERE id = 1")
    finally:
        db.close()
    found = _audit(catalog, "--json")
    assert found.returncode == ExitCode.FAILED
    assert any("retain_until" in p for p in json.loads(found.stdout)["chain_problems"])


def test_a_copy_row_pointed_at_another_recording_is_never_repaired_over_it(
    tmp_path: Path,
) -> None:
    """Issue 26 (review): a copy's path edited to another recording's file. The scrub judges
    the copy row by the chain: the other recording's file is left alone, this one frozen."""
    from camdock.services.scrub import scrub_step

    d1, d2, catalog = _offloaded(tmp_path, files=2)
    first, second = sorted(str(p.relative_to(d1)) for p in d1.rglob("*.mp4"))
    before = tree_hashes(d1), tree_hashes(d2)
    _as_insider(catalog, ("UPDATE copies SET relpath = ? WHERE relpath = ? AND destination = ?",
                          (second, first, str(d1))))  # fmt: skip
    db = open_catalog(catalog)
    try:
        result = scrub_step(db, 1 << 30, TOPICS)
    finally:
        db.close()
    assert not result.repaired and result.frozen, result
    assert (tree_hashes(d1), tree_hashes(d2)) == before


def test_the_six_monthly_report(tmp_path: Path) -> None:
    import shutil

    import pytest

    _, _, catalog = _offloaded(tmp_path, files=2)
    out = _audit(catalog, "report", "--from", "2026-06-01", "--to", "2026-12-31", "--by", "稽核員",
                 "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["recordings"]["ingested"] == 2 and doc["seals"]["days"] == 1
    assert doc["seals"]["unsealed"] == ["2026-11-28"] and doc["register"]["complete"]
    assert doc["retention"]["destroyed_early"] == [] and doc["chain_problems"] == []
    assert doc["by"] == "稽核員"
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext not installed")
    pdf = tmp_path / "report.pdf"
    made = _audit(catalog, "report", "--from", "2026-06-01", "--to", "2026-12-31", "--out",
                  str(pdf))  # fmt: skip
    assert made.returncode == 0, made.stderr
    text = run(["pdftotext", "-layout", str(pdf), "-"]).stdout
    assert "查核報告" in text and "每日加密封存" in text and "2026-11-28" in text
    bad = _audit(catalog, "report", "--from", "2026-06-01")
    assert bad.returncode == ExitCode.USAGE and "Traceback" not in bad.stderr


def test_the_report_over_a_simulated_half_year(tmp_path: Path) -> None:
    """REG-7.2/7.3: six months of a station, condensed — two duty days (one sealed and
    confirmed, one not), pre-shift tests passed and failed with the duty-log entry, a request
    taken to a verified copy, a refusal, damage found and repaired, a hold past its review, an
    audit — and the report counts each where the regulation looks for it."""
    from datetime import date, datetime, timedelta

    from camdock.catalog import requests as request_rows
    from camdock.catalog import selftests
    from camdock.core.retention import HoldKind
    from camdock.services import access
    from camdock.services.retention import Keeping, place_hold
    from camdock.services.scrub import scrub_step
    from camdock.services.seal import Key, Sealing, confirm_day, seal_day
    from conftest import write_recording

    d1, d2, catalog = _offloaded(tmp_path, files=2)  # duty day 2026-11-28
    other = tmp_path / "cam2"
    write_recording(other / "DCIM/100MEDIA/20261127_101500_0001.MP4", 8192, 41)
    assert offload(other, [d1, d2], catalog, camera_id="CAM0002", officer_badge="B2",
                   officer_name="李美玲").ok  # fmt: skip
    db = open_catalog(catalog)
    sealing = Sealing(Key("1", "a seal password for the report"))
    seal_day(db, sealing, date(2026, 11, 28), "保管人")
    confirm_day(db, sealing, date(2026, 11, 28), "督導")
    with write_txn(db):
        selftests.add_selftest(
            db,
            selftests.NewSelfTest(
                camera_id="CAM0001",
                officer_badge="A12345",
                officer_name="王小明",
                passed=1,
                checks="[]",
            ),
        )
        failed = selftests.add_selftest(
            db,
            selftests.NewSelfTest(
                camera_id="CAM0002",
                officer_badge="B2",
                officer_name="李美玲",
                passed=0,
                checks="[]",
            ),
        )
        entry = selftests.NewDutyEntry(
            "電池不足 battery low", "B2", "李美玲", "CAM0002", None, failed
        )
        selftests.add_duty_log(db, entry)
    who = access.Acting(None, "偵查員")
    start = datetime(2026, 11, 28, tzinfo=TZ)
    form = {"kind": "copy", "reason": "r", "purpose": "complaint"}
    req = access.new_request(
        db, None, who, form, ("A12345", None, start, start + timedelta(days=1)), TOPICS
    )
    boss = access.Acting(None, "分局長")
    for action, by, kw in (("submit", who, {}), ("approve", boss, {}),
                           ("schedule", access.Acting(None, "保管人"),
                            {"start": clock.now() - timedelta(minutes=1),
                             "end": clock.now() + timedelta(hours=1)})):  # fmt: skip
        access.step(db, by, req.number, action, TOPICS, **kw)
    usb = tmp_path / "usb"
    usb.mkdir()
    access.copy(db, access.Acting(None, "保管人"), req.number, usb, None, TOPICS)
    request_rows.record_refusal(db, "路人", "copy", req.number, "not on the staff", TOPICS)
    damaged = next(iter(sorted(d1.rglob("*.mp4"))))
    damaged.write_bytes(b"rot")
    scrub_step(db, 1 << 30, TOPICS)
    place_hold(db, Keeping(topics=TOPICS), "督導", kind=HoldKind.COMPLAINT, case="陳情 9",
               reason="r", recording=1, review_by=date(2026, 11, 28))  # fmt: skip
    db.close()
    assert _audit(catalog, "--full", "--by", "稽核員").returncode == 0  # repaired: intact
    out = _audit(catalog, "report", "--from", "2026-06-01", "--to", "2026-11-30", "--json")
    doc = json.loads(out.stdout)
    assert {(t["camera_id"], t["tests"], t["passed"]) for t in doc["selftests"]} == {
        ("CAM0001", 1, 1), ("CAM0002", 1, 0)}  # fmt: skip
    assert [d["entry"] for d in doc["duty_log"]] == ["電池不足 battery low"]
    assert doc["recordings"]["ingested"] == 3
    assert doc["seals"] == {"days": 2, "sealed": 1, "confirmed": 1, "unsealed": ["2026-11-27"],
                            "unconfirmed": []}  # fmt: skip
    assert doc["register"]["complete"] and doc["register"]["lines"] == {"copy": 1}
    assert doc["register"]["refusals"] == 1
    assert doc["fixity"]["scrub"] == {"damage": 1, "repair": 1}
    assert [a["actor"] for a in doc["fixity"]["audits"]] == ["稽核員 (unverified actor)"]
    assert len(doc["retention"]["holds_past_review"]) == 1 and doc["chain_problems"] == []


def test_audit_resolve_inserts_again_the_rows_an_insider_deleted(tmp_path: Path) -> None:
    """Issue 26 (item 2; REG-7.1, REG-4.3.1): an insider deletes in sqlite3 a recording's row,
    its copies' rows, the hold on it and its request's link (and an officer's hold). The audit
    names each row gone; ``audit resolve`` inserts them again as the chain last had them,
    recorded with the auditor, and the audit is clean (the footage itself was never touched)."""
    from camdock.catalog import holds, requests

    _, _, catalog = _offloaded(tmp_path, files=2)
    db = open_catalog(catalog)
    try:
        hold = {"kind": "complaint", "case_ref": "C-1", "reason": "r", "recording_id": 1}
        on_one = holds.place(db, hold, "督察 王", None)
        officer = holds.place(db, {"kind": "complaint", "case_ref": "C-2", "reason": "r",
                                   "officer_badge": "A12345"}, "督察 王", None)  # fmt: skip
        req = requests.create(db, {"created_by": "P1", "kind": "view", "purpose": "complaint",
                                   "reason": "r"}, [1, 2], "P1", None)  # fmt: skip
        before = {t: db.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()  # noqa: S608
                  for t in ("recordings", "copies", "holds", "request_recordings")}  # fmt: skip
    finally:
        db.close()
    assert _audit(catalog).returncode == 0
    _as_insider(
        catalog,
        ("DELETE FROM copies WHERE recording_id = 1", ()),
        ("DELETE FROM recordings WHERE id = 1", ()),
        ("DELETE FROM holds", ()),
        ("DELETE FROM request_recordings WHERE recording_id = 1", ()),
    )
    found = _audit(catalog, "--json")
    problems = json.loads(found.stdout)["chain_problems"]
    assert found.returncode == ExitCode.FAILED
    for gone in ("recordings [1]", "copies [1,", f"holds [{on_one}]", f"holds [{officer}]",
                 f"request_recordings [{req.id},1]"):  # fmt: skip
        assert any(p.startswith(gone) and "gone from the catalog" in p for p in problems), gone
    by = ("--by", "稽核員 林", "--reason", "rows deleted in sqlite3; the chain is right", "--json")
    resolved = _audit(catalog, "resolve", "--recording", "1", *by)
    assert resolved.returncode == 0, resolved.stderr
    put_back = json.loads(resolved.stdout)["restored_from_chain"]
    assert put_back[0] == "recordings [1]" and len(put_back) == 5, put_back  # 2 copies, hold, link
    assert _audit(catalog, "resolve", "--recording", "1", *by).returncode != 0  # nothing left
    held = _audit(catalog, "resolve", "--hold", str(officer), *by)
    assert held.returncode == 0 and json.loads(held.stdout)["restored_from_chain"] == [
        f"holds [{officer}]"
    ]
    db = open_catalog(catalog)
    try:
        after = {t: db.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()  # noqa: S608
                 for t in before}  # fmt: skip
        kinds = [r[0] for r in db.execute("SELECT actor FROM custody_log WHERE action = ?",
                                          (Action.RESOLVE.value,))]  # fmt: skip
    finally:
        db.close()
    assert after == before, (after, before)
    assert kinds == ["稽核員 林 (unverified actor)"] * 2, kinds
    clean = _audit(catalog, "--full", "--json")
    assert clean.returncode == 0, clean.stdout


def test_the_audit_names_rows_only_the_upgrades_baseline_chained(tmp_path: Path) -> None:
    """Issue 26 (item 3; REG-7.1): migration m014 chained the rows it found at the upgrade as
    they were (the trust boundary). The audit lists, as a note that does not fail it, each live
    row whose only chained state is that baseline; a row an act has chained since is not."""
    _, _, catalog = _offloaded(tmp_path, files=2)
    assert json.loads(_audit(catalog, "--json").stdout)["baseline_only"] == {}
    db = open_catalog(catalog)
    try:
        with write_txn(db):  # what m014 did to a catalog from before it, rows and all
            custody.baseline(db)
        with write_txn(db):  # an act after the upgrade chains recording 1 again
            db.execute("UPDATE recordings SET hold_reason = 'x' WHERE id = 1")
    finally:
        db.close()
    out = _audit(catalog, "--json")
    assert out.returncode == 0, out.stdout
    unproven = json.loads(out.stdout)["baseline_only"]
    assert unproven["recordings"] == ["[2]"]
    assert len(unproven["copies"]) == 4
    text = _audit(catalog).stdout
    assert "NOTE recordings: 1 row(s) chained only by the upgrade's baseline" in text, text


def _forge_state_entry(catalog: Path, mac: str | None) -> None:
    """What an insider without the key does: edit a row in sqlite3 (triggers dropped), then
    append a custody ``state`` entry of their own that "chains" the edit, hashed exactly as
    camdock hashes, so the hash chain and the rows agree again."""
    conn = sqlite3.connect(catalog)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("UPDATE recordings SET retain_until = '2026-11-30' WHERE id = 1")
    cols = [c[1] for c in conn.execute("PRAGMA table_info(recordings)")]
    row = conn.execute("SELECT * FROM recordings WHERE id = 1").fetchone()
    state = {c: {"hex": v.hex()} if isinstance(v, bytes) else v  # as camdock writes a BLOB
             for c, v in zip(cols, row, strict=True)}  # fmt: skip
    states = [{"table": "recordings", "key": "[1]", "state": state}]
    (prev,) = conn.execute("SELECT hash FROM custody_log ORDER BY id DESC LIMIT 1").fetchone()
    entry = {"time": "2026-11-29T02:00:00+00:00", "action": "state", "recording_id": None,
             "actor": "camdock", "details": {}, "rows": states}  # fmt: skip
    if mac is not None:
        entry["mac"] = mac
    canonical = json.dumps(entry, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    digest = hashlib.sha256(f"{prev}\n{canonical}".encode()).hexdigest()
    conn.execute("INSERT INTO custody_log (time, action, recording_id, actor, details, "
                 "prev_hash, hash, rows, mac) VALUES (?, 'state', NULL, 'camdock', '{}', ?, ?, "
                 "?, ?)", (entry["time"], prev, digest, json.dumps(states), mac))  # fmt: skip
    conn.commit()
    conn.close()


@pytest.mark.parametrize("mac", [None, "ab" * 32], ids=["no-mac", "made-up-mac"])
def test_an_entry_appended_without_the_chain_key_is_named(tmp_path: Path, mac: str | None) -> None:
    """Issue 26 (item 4; REG-7.1, invariant 6): entries from before the key are unkeyed, not
    failed; from the daemon's key on every entry carries a MAC. An insider who edits a row and
    appends a re-hashed ``state`` entry that chains the edit passes the hash chain and the row
    check, but not the key: the audit names the entry (with the key: its MAC fails; without
    it, an entry without a MAC after keyed ones is named all the same)."""
    _, _, catalog = _offloaded(tmp_path, files=2)  # written before the station had a key
    key_file = tmp_path / "state" / "chain.key"
    key = chainkey.load_or_create(key_file)
    assert key_file.stat().st_mode & 0o777 == 0o400
    assert chainkey.load_or_create(key_file) == key  # made once, then read
    chainkey.use(key)
    db = open_catalog(catalog)
    try:
        with write_txn(db):  # the daemon's acts from now on are keyed
            db.execute("UPDATE recordings SET hold_reason = 'x' WHERE id = 2")
    finally:
        db.close()
        chainkey.use(None)
    clean = _audit(catalog, "--chain-key", str(key_file), "--json")
    assert clean.returncode == 0, clean.stdout
    keys = json.loads(clean.stdout)["keys"]
    assert keys["checked"] and keys["keyed"] == 1 and keys["unkeyed"] >= 4, keys
    _forge_state_entry(catalog, mac)
    (forged,) = sqlite3.connect(catalog).execute("SELECT max(id) FROM custody_log").fetchone()
    found = _audit(catalog, "--chain-key", str(key_file), "--json")
    problems = json.loads(found.stdout)["chain_problems"]
    assert found.returncode == ExitCode.FAILED
    why = "MAC fails" if mac else "no MAC"
    assert (
        [p for p in problems if p.startswith(f"entry {forged} ")]
        == [p for p in problems if why in p]
        != []
    ), problems
    assert not any("retain_until" in p for p in problems)  # the forgery did fool the row check
    unkeyed = _audit(catalog, "--json")  # an auditor without the key
    if mac is None:
        assert unkeyed.returncode == ExitCode.FAILED
        assert any(p.startswith(f"entry {forged} ") for p in json.loads(unkeyed.stdout)[
            "chain_problems"])  # fmt: skip
    else:
        assert "MACs not checked" in _audit(catalog).stdout
