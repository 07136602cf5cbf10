"""Issue 27: every acting command is authenticated through the daemon (REG-4.1.1; invariant 13).
A station's catalog refuses an act that did not go through the daemon — a bare ``--catalog``, a
``--by`` with no password — and records the refusal (REG-7.1); a wrong password, a password file
others may read, a daemon that is not running are refused with their own exit codes; a one-time
code is asked when the daemon wants it; a development catalog says "unverified actor" in every
output and custody entry; every custody entry names its channel."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from camdock.adapters.control import Server
from camdock.catalog import custody, open_catalog, open_readonly
from camdock.config import Config, load
from camdock.errors import ExitCode
from conftest import camdock_cmd, make_camera, offload, run
from stationd import PASSWORD, acting, password_file
from test_access import _new, _station


def _entries(catalog: Path, action: str) -> list[dict[str, Any]]:
    db = open_readonly(catalog)
    try:
        got = db.execute("SELECT actor, channel, details FROM custody_log WHERE action = ? "
                         "ORDER BY id", (action,)).fetchall()  # fmt: skip
    finally:
        db.close()
    return [{"actor": a, "channel": c, "details": json.loads(d)} for a, c, d in got]


def _submitted(tmp_path: Path) -> tuple[Path, Path, str]:
    cfg = _station(tmp_path)
    n = _new(cfg, "D1")
    assert acting(cfg, "request", "submit", n, "--by", "D1").returncode == 0
    return cfg, load(cfg).catalog, n


def test_an_approval_through_the_daemon_names_the_person_and_the_channel(tmp_path: Path) -> None:
    """Issue 27 item 2: the custody entry names the authenticated person and channel cli."""
    cfg, catalog, n = _submitted(tmp_path)
    done = acting(cfg, "request", "approve", n, "--as", "P1", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)  # exactly one JSON document on stdout
    assert doc["by"] == "王分局長 (P1)" and doc["channel"] == "cli"
    assert doc["request"]["state"] == "approved"
    approve = _entries(catalog, "approve")
    assert [(e["actor"], e["channel"]) for e in approve] == [("王分局長 (P1)", "cli")]
    assert [e["channel"] for e in _entries(catalog, "request")] == ["cli"]
    # What a station does by itself (here: the offload) is channel daemon.
    assert {e["channel"] for e in _entries(catalog, "store")} == {"daemon"}
    db = open_readonly(catalog)
    try:
        assert custody.verify(db) == []
    finally:
        db.close()


def test_a_bare_catalog_approval_on_a_station_is_refused_and_recorded(tmp_path: Path) -> None:
    """The issue's first symptom: `request approve --catalog <station's> --by "王大同 (P1)"`."""
    _, catalog, n = _submitted(tmp_path)
    bare = run(camdock_cmd("request", "approve", n, "--catalog", str(catalog), "--by",
                           "王大同 (P1)", "--json"))  # fmt: skip
    assert bare.returncode == ExitCode.NOUSER, bare.stderr
    assert "through the running daemon" in bare.stderr and "Traceback" not in bare.stderr
    assert json.loads(bare.stdout)["ok"] is False  # --json: one document, even refused
    refused = _entries(catalog, "refused")[-1]
    assert refused["actor"] == "王大同 (P1)" and refused["channel"] == "cli"
    assert "approve" in json.dumps(refused["details"]) and refused["details"]["direct"] is True
    assert _entries(catalog, "approve") == []
    shown = json.loads(run(camdock_cmd("request", "show", n, "--catalog", str(catalog),
                                       "--json")).stdout)  # fmt: skip
    assert shown["request"]["state"] == "submitted"


def test_an_unauthenticated_cli_approval_is_refused_and_recorded(tmp_path: Path) -> None:
    """--config with --by and no password (no terminal, no file): refused before the daemon is
    asked, and recorded in the station's catalog (this process may write it)."""
    cfg, catalog, n = _submitted(tmp_path)
    bare = run(camdock_cmd("request", "approve", n, "--config", str(cfg), "--by", "P1"),
               stdin=subprocess.DEVNULL)  # fmt: skip
    assert bare.returncode == ExitCode.NOUSER, bare.stderr
    assert "--password-file" in bare.stderr
    refused = _entries(catalog, "refused")[-1]
    assert refused["actor"] == "P1" and refused["channel"] == "cli"
    assert _entries(catalog, "approve") == []


def test_a_wrong_password_is_refused(tmp_path: Path) -> None:
    cfg, catalog, n = _submitted(tmp_path)
    wrong = acting(cfg, "request", "approve", n, "--by", "P1", password="not the password")  # noqa: S106
    assert wrong.returncode == ExitCode.NOUSER and "Wrong staff id or password" in wrong.stderr
    assert _entries(catalog, "approve") == []


def test_a_password_file_others_may_read_is_refused(tmp_path: Path) -> None:
    cfg, catalog, n = _submitted(tmp_path)
    loose = password_file(tmp_path, PASSWORD, 0o644)
    r = run(camdock_cmd("request", "approve", n, "--config", str(cfg), "--by", "P1",
                        "--password-file", str(loose)))  # fmt: skip
    assert r.returncode == ExitCode.USAGE and "0644" in r.stderr and "chmod 600" in r.stderr
    assert _entries(catalog, "approve") == []


def test_without_the_daemon_acting_is_unavailable(tmp_path: Path) -> None:
    cfg = _station(tmp_path)
    pw = password_file(tmp_path)
    r = run(camdock_cmd("hold", "place", "--kind", "investigation", "--case", "115-1", "--reason",
                        "r", "--recording", "1", "--config", str(cfg), "--by", "C1",
                        "--password-file", str(pw), "--json"))  # fmt: skip
    assert r.returncode == ExitCode.UNAVAILABLE, r.stderr
    assert "acting commands go through the running daemon" in r.stderr
    assert len(r.stdout.strip().splitlines()) == 1 and json.loads(r.stdout)["exit_code"] == 69
    # Reading needs no daemon and no credentials.
    listed = run(camdock_cmd("hold", "list", "--config", str(cfg), "--json"))
    assert listed.returncode == 0 and json.loads(listed.stdout)["holds"] == []


def test_a_one_time_code_is_asked_when_the_daemon_wants_it(tmp_path: Path) -> None:
    """The second factor's contract (issue 27 item 3): a login answered ``otp_required`` is
    repeated with the code from --otp-file; the request then goes with the token."""
    cfg_path = _station(tmp_path)
    cfg = load(cfg_path)
    seen: list[dict[str, Any]] = []

    def daemon(request: dict[str, Any], uid: int) -> tuple[dict[str, Any], None]:
        seen.append(request)
        if request["op"] == "login":
            if request["args"].get("otp") != "123456":
                return {"ok": False, "status": 401, "kind": "otp_required",
                        "error": "one-time code needed"}, None  # fmt: skip
            person = {"id": "S1", "name": "林督導", "roles": ["supervisor"], "label": "林督導 (S1)"}
            return {"ok": True, "result": {"token": "t", "person": person}}, None
        if request["op"] == "logout":
            return {"ok": True, "result": None}, None
        return {"ok": True, "result": {"day": "2026-11-28", "generation": 1, "by": "林督導 (S1)"}
                }, None  # fmt: skip

    server = Server(cfg.run_dir / "control.sock", daemon, frozenset({0, os.geteuid()}))
    server.start()
    try:
        pw = password_file(tmp_path)
        args = ["seal", "confirm", "2026-11-28", "--config", str(cfg_path), "--as", "S1",
                "--password-file", str(pw), "--json"]  # fmt: skip
        no_code = run(camdock_cmd(*args), stdin=subprocess.DEVNULL)
        assert no_code.returncode == ExitCode.NOUSER and "--otp-file" in no_code.stderr
        code = tmp_path / "otp"
        code.write_text("123456\n")
        code.chmod(0o600)
        done = run(camdock_cmd(*args, "--otp-file", str(code)))
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["channel"] == "cli"
    finally:
        server.close()
    ops = [(r["op"], r["args"].get("otp"), r.get("channel")) for r in seen[-4:]]
    assert ops == [("login", None, "cli"), ("login", "123456", "cli"),
                   ("seal.confirm", None, "cli"), ("logout", None, "cli")]  # fmt: skip
    assert seen[-2]["token"] == "t"  # noqa: S105 - the fake daemon's token
    assert seen[-2]["args"] == {"day": "2026-11-28"}


def test_a_development_catalog_says_unverified_actor(tmp_path: Path) -> None:
    """A catalog made without staff acts directly, but says so in every output and entry."""
    make_camera(tmp_path / "cam", 2, size=8 * 1024, seed=3)
    catalog = tmp_path / "catalog.sqlite"
    (tmp_path / "d1").mkdir()
    (tmp_path / "d2").mkdir()
    assert offload(tmp_path / "cam", [tmp_path / "d1", tmp_path / "d2"], catalog).ok
    place = ["hold", "place", "--kind", "complaint", "--case", "c", "--reason", "r"]
    text = run(
        camdock_cmd(*place, "--recording", "1", "--catalog", str(catalog), "--by", "督察 王")
    )
    assert text.returncode == 0, text.stderr
    assert all("unverified actor" in line for line in text.stdout.strip().splitlines()[:1])
    doc = run(camdock_cmd("hold", "release", "1", "--reason", "done", "--catalog", str(catalog),
                          "--by", "督察 王", "--json"))  # fmt: skip
    assert doc.returncode == 0, doc.stderr
    got = json.loads(doc.stdout)
    assert "unverified actor" in got["note"] and got["hold"]["released_by"].endswith(
        "(unverified actor)"
    )
    for action in ("hold-place", "hold-release"):
        [entry] = _entries(catalog, action)
        assert entry["actor"] == "督察 王 (unverified actor)" and entry["channel"] == "cli"
    history = run(camdock_cmd("audit", "history", "--recording", "1", "--catalog", str(catalog)))
    assert history.returncode == 0, history.stderr
    assert "hold-place     督察 王 (unverified actor)  [cli]" in history.stdout
    audit = run(camdock_cmd("audit", "--catalog", str(catalog), "--json"))
    assert audit.returncode == 0 and json.loads(audit.stdout)["ok"] is True
    db = open_catalog(catalog)
    try:
        assert custody.verify(db) == []
    finally:
        db.close()


def test_a_custodians_day_through_the_daemon(tmp_path: Path) -> None:
    """Holds, a destruction pass, a seal made and confirmed, an audit recorded: each act by the
    person who logged in, through channel cli (REG-4.2.5, REG-4.3.1, REG-7.2; issue 27)."""
    cfg = _station(tmp_path)
    catalog = load(cfg).catalog
    key = tmp_path / "seal.key"
    key.write_text("a seal password for the test")
    key.chmod(0o600)
    placed = acting(cfg, "hold", "place", "--kind", "investigation", "--case", "115-7",
                    "--reason", "傷害案", "--recording", "1", "--as", "S1", "--json")  # fmt: skip
    assert placed.returncode == 0, placed.stderr
    hold = json.loads(placed.stdout)
    assert hold["by"] == "林督導 (S1)" and hold["hold"]["placed_by"] == "林督導 (S1)"
    wrong_role = acting(cfg, "hold", "release", str(hold["hold"]["id"]), "--reason", "r",
                        "--as", "D1")  # fmt: skip
    assert wrong_role.returncode == ExitCode.NOPERM, wrong_role.stderr
    assert acting(cfg, "hold", "release", str(hold["hold"]["id"]), "--reason", "結案",
                  "--as", "S1").returncode == 0  # fmt: skip
    # Destruction only under an approved list (issue 27): none proposed, so none destroyed.
    destroyed = acting(cfg, "retention", "destroy", "--as", "C1", "--json")
    assert destroyed.returncode == ExitCode.NOPERM, destroyed.stderr
    assert "approved destruction list" in destroyed.stderr
    sealed = acting(cfg, "seal", "create", "2026-11-28", "--as", "C1", seal_key=key)  # as text
    assert sealed.returncode == 0, sealed.stderr
    assert "3 recording(s)" in sealed.stdout and sealed.stdout.count("SHA-256") == 2
    own = acting(cfg, "seal", "confirm", "2026-11-28", "--as", "C1")
    assert own.returncode == ExitCode.NOPERM, own.stderr
    confirmed = acting(cfg, "seal", "confirm", "2026-11-28", "--as", "S1")
    assert confirmed.returncode == 0 and "confirmed by 林督導 (S1)" in confirmed.stdout
    audited = acting(cfg, "audit", "--as", "S1", "--json")
    assert audited.returncode == 0, audited.stderr
    assert json.loads(audited.stdout)["by"] == "林督導 (S1)"
    for action, actor in (("hold-place", "林督導 (S1)"), ("hold-release", "林督導 (S1)"),
                          ("seal", "陳保管 (C1)"), ("seal-confirm", "林督導 (S1)"),
                          ("audit", "林督導 (S1)")):  # fmt: skip
        entries = _entries(catalog, action)
        assert entries and (entries[-1]["actor"], entries[-1]["channel"]) == (actor, "cli")
    refused = [e for e in _entries(catalog, "refused") if e["channel"] == "cli"]
    assert {e["actor"] for e in refused} >= {"周偵查員 (D1)", "陳保管 (C1)"}
    history = run(camdock_cmd("audit", "history", "--recording", "1", "--config", str(cfg)))
    assert "hold-place     林督導 (S1)  [cli]" in history.stdout, history.stdout


def _backed_up_station(tmp_path: Path) -> tuple[Path, Config]:
    """A station whose staff have password hashes, two recordings offloaded, its catalog
    backed up to the footage drive (REG-4.3.2): what a restore starts from."""
    from camdock import passwords
    from stationcfg import write_config
    from test_access import STAFF

    hashed = passwords.hash_password(PASSWORD)
    cfg_path = write_config(tmp_path, STAFF.replace('roles = ["', f'password_hash = "{hashed}"\n'
                                                                  'roles = ["'))  # fmt: skip
    cfg = load(cfg_path)
    make_camera(tmp_path / "cam", 2, size=8 * 1024, seed=5)
    assert offload(tmp_path / "cam", [cfg.footage, cfg.backup], cfg.catalog).ok
    backed = run(camdock_cmd("catalog", "backup", "--config", str(cfg_path)))
    assert backed.returncode == 0, backed.stderr
    return cfg_path, cfg


def test_restoring_a_stations_catalog_needs_the_persons_password(tmp_path: Path) -> None:
    """REG-4.3.2 with the daemon stopped: the config's password hash proves who restores."""
    cfg_path, cfg = _backed_up_station(tmp_path)
    restore = ["catalog", "restore", "--from", str(cfg.footage), "--replace", "--config",
               str(cfg_path), "--as", "C1"]  # fmt: skip
    none = run(camdock_cmd(*restore), stdin=subprocess.DEVNULL)
    assert none.returncode == ExitCode.NOUSER, none.stderr
    wrong = run(camdock_cmd(*restore, "--password-file", str(password_file(tmp_path, "nope"))))
    assert wrong.returncode == ExitCode.NOUSER and "wrong staff id or password" in wrong.stderr
    done = run(camdock_cmd(*restore, "--password-file", str(password_file(tmp_path)), "--json"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["by"] == "陳保管 (C1)"
    [entry] = _entries(cfg.catalog, "catalog-restore")
    assert (entry["actor"], entry["channel"]) == ("陳保管 (C1)", "cli")


def test_a_restore_under_the_running_daemon_is_refused_and_changes_nothing(
    tmp_path: Path,
) -> None:
    """REG-4.3.2, review (issue 28 item 5): `catalog restore --replace` moved the catalog the
    running daemon holds open aside; what the daemon did next went into the replaced file.
    With the daemon's socket answering, a restore and a reconcile are refused (75) before
    anything is read or moved; stopped, the same command restores."""
    from stationd import control_server

    cfg_path, cfg = _backed_up_station(tmp_path)
    restore = ["catalog", "restore", "--from", str(cfg.footage), "--config", str(cfg_path),
               "--as", "C1", "--password-file", str(password_file(tmp_path))]  # fmt: skip
    inode = cfg.catalog.stat().st_ino
    with control_server(cfg_path):
        for extra in (["--replace"], ["--reconcile-only"]):
            refused = run(camdock_cmd(*restore, *extra))
            assert refused.returncode == ExitCode.TEMPFAIL, refused.stderr
            assert "the station daemon is running" in refused.stderr
    assert cfg.catalog.stat().st_ino == inode
    assert not list(tmp_path.rglob("*.replaced-*"))
    done = run(camdock_cmd(*restore, "--replace"))
    assert done.returncode == 0, done.stderr
    assert cfg.catalog.stat().st_ino != inode


def test_a_station_without_staff_lets_no_officer_act_as_anyone(tmp_path: Path) -> None:
    """The issue's second symptom: a config with officers and no ``[[staff]]`` (the Ansible
    template's) is still a station: `--by` proves nothing, so nothing acts without logging in."""
    from stationcfg import write_config

    cfg_path = write_config(tmp_path, "")
    cfg = load(cfg_path)
    make_camera(tmp_path / "cam", 1, size=8 * 1024, seed=9)
    assert offload(tmp_path / "cam", [cfg.footage, cfg.backup], cfg.catalog).ok
    args = ["request", "new", "--officer", "A12345", "--from", "2026-11-28", "--to", "2026-11-28",
            "--kind", "copy", "--reason", "r", "--purpose", "media", "--by", "A12345"]  # fmt: skip
    mine = run(camdock_cmd(*args, "--config", str(cfg_path)), stdin=subprocess.DEVNULL)
    assert mine.returncode == ExitCode.NOUSER, mine.stderr
    assert [e["actor"] for e in _entries(cfg.catalog, "refused")] == ["A12345"]
    # Staff kept in the catalog (the table issue 27 item 1 adds) make a bare --catalog a
    # station's too, before anyone has acted through the daemon.
    from camdock.catalog import staff as staff_rows

    db = open_catalog(cfg.catalog)
    try:  # as the daemon imports them at start (catalog/staff)
        assert staff_rows.sync(db, cfg.staff, cfg.password_hashes)
    finally:
        db.close()
    bare = run(camdock_cmd(*args, "--catalog", str(cfg.catalog)))
    assert bare.returncode == ExitCode.NOUSER, bare.stderr
    assert [e["actor"] for e in _entries(cfg.catalog, "refused")] == ["A12345", "A12345"]


def test_a_stations_catalog_is_not_replaced_through_a_bare_catalog_path(tmp_path: Path) -> None:
    """Hostile review (issue 27): `catalog restore --catalog <a station's catalog> --replace
    --by "王分局長 (P1)"` would let anyone at the shell roll back holds and approvals; it is
    refused (67) and the catalog is untouched. With --config the password proves who."""
    from camdock.catalog import staff as staff_rows

    cfg = load(_station(tmp_path))
    db = open_catalog(cfg.catalog)
    try:
        staff_rows.sync(db, cfg.staff, cfg.password_hashes)  # as the daemon does at its start
    finally:
        db.close()
    before = cfg.catalog.read_bytes()
    bare = run(camdock_cmd("catalog", "restore", "--from", str(tmp_path), "--catalog",
                           str(cfg.catalog), "--replace", "--by", "王分局長 (P1)"))  # fmt: skip
    assert bare.returncode == ExitCode.NOUSER, bare.stderr
    assert "restore it with --config" in bare.stderr
    assert cfg.catalog.read_bytes() == before
