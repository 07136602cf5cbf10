"""The console's handlers, every route, with Starlette's TestClient against the daemon's real
side of the control socket (services/control.py over adapters/control.py, a real catalog): each
page renders for a staff member whose role may see it, a forged post (no CSRF token, or another
one) is refused before the daemon is asked, and what the daemon refuses shows as its message
and its status (invariant 9; REG-5). The same flows in a real browser: tests/test_web.py."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import anyio
import pytest
from starlette.testclient import TestClient

from camdock import clock, passwords
from camdock.adapters.control import Server
from camdock.catalog import open_catalog, selftests, write_txn
from camdock.config import Config, load
from camdock.core.attribution import Attribution
from camdock.services.seal import Key, Sealing, seal_day
from camdock.station.control import SOCKET, Control
from camdock.web.app import CSP, make_app
from conftest import TZ, offload, write_recording
from staffotp import code, enrol
from stationcfg import write_config
from test_access import STAFF

PASSWORD = "a long console password"  # noqa: S105 - the test's own
DAY = "2026-11-28"  # the recordings'
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
FORGED = "The form expired or was forged"


@dataclass
class Station:
    """The station's config, its daemon (the control socket's server) and the console app."""

    cfg: Config
    tmp: Path
    server: Server
    app: Any

    def client(self, staff: str | None = None) -> TestClient:
        """A browser session, logged in as ``staff`` when given."""
        c = TestClient(self.app, follow_redirects=False)
        if staff is not None:
            login = c.get("/login")
            form = {"csrf": _csrf(login.text), "staff": staff, "password": PASSWORD}
            done = c.post("/login", data=form)
            if done.status_code == 401 and "one-time code" in done.text:  # issue 27
                done = c.post("/login", data={**form, "otp": code(self.cfg.catalog, staff)})
            assert (done.status_code, done.headers["location"]) == (303, "/"), done.text
        return c

    def restart_daemon(self) -> None:
        """A new daemon process: its sessions are gone."""
        self.server.close()
        self.server = Server(
            self.cfg.run_dir / SOCKET,
            Control(self.cfg, (self.tmp,)).handle,
            frozenset({os.geteuid()}),
        )
        self.server.start()


@pytest.fixture
def station(tmp_path: Path) -> Iterator[Station]:
    hashed = passwords.hash_password(PASSWORD)
    staff = STAFF.replace('roles = ["', f'password_hash = "{hashed}"\nroles = ["')
    staff += '\n[[staff]]\nid = "A1"\nname = "吳稽核"\nroles = ["auditor"]\n'
    staff = staff.replace('roles = ["auditor"]', f'password_hash = "{hashed}"\nroles = ["auditor"]')
    cfg = load(write_config(tmp_path, staff))
    cam = tmp_path / "cam"
    clip = (Path(__file__).parent / "data" / "testsrc.mp4").read_bytes()
    (cam / "DCIM" / "100MEDIA").mkdir(parents=True)
    (cam / "DCIM/100MEDIA/20261128_090000_0000.MP4").write_bytes(clip)
    assert offload(cam, [cfg.footage, cfg.backup], cfg.catalog).ok
    pool = tmp_path / "pool"  # a camera nobody was assigned: its recording waits to be attributed
    write_recording(pool / "DCIM/100MEDIA/20261128_100000_0002.MP4", 4096, 4)
    assert offload(
        pool,
        [cfg.footage, cfg.backup],
        cfg.catalog,
        camera_id="POOL01",
        attribution=Attribution("POOL01", ()),
    ).ok
    db = open_catalog(cfg.catalog)
    with write_txn(db):
        selftests.add_duty_log(
            db,
            selftests.NewDutyEntry(
                officer_badge="A12345",
                officer_name="王小明",
                camera_id="CAM0001",
                entry="攝影機功能檢測未通過：電量不足",
                selftest_id=None,
            ),
        )
    db.close()
    enrol(cfg)
    server = Server(
        cfg.run_dir / SOCKET, Control(cfg, (tmp_path,)).handle, frozenset({os.geteuid()})
    )
    server.start()
    found = Station(cfg, tmp_path, server, make_app(cfg, secret=b"a test's session key"))
    try:
        yield found
    finally:
        found.server.close()


def _csrf(html: str) -> str:
    m = CSRF.search(html)
    assert m is not None, html
    return m.group(1)


def _token(c: TestClient) -> str:
    """This session's CSRF token, as every form carries it."""
    return _csrf(c.get("/requests").text)


def _to(r: Any) -> str:
    """Where a redirect goes, as the page's author wrote it."""
    return unquote(str(r.headers["location"]))


def _refused(r: Any, status: int, why: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    assert "無法執行" in r.text and why in r.text, r.text


def _new_request(c: TestClient, kind: str = "both") -> str:
    r = c.post(
        "/requests/new",
        data={
            "csrf": _token(c),
            "officer": "A12345",
            "kind": kind,
            "from": f"{DAY}T00:00",
            "to": f"{DAY}T23:59",
            "reason": "傷害案調查",
            "purpose": "investigation",
            "duty_item": "巡邏",
        },
    )
    assert r.status_code == 303, r.text
    return str(r.headers["location"]).rsplit("/", 1)[1]


def _step(c: TestClient, number: str, action: str, **form: str) -> Any:
    return c.post(f"/requests/{number}/{action}", data={"csrf": _token(c), **form})


def _approved(station: Station) -> tuple[str, TestClient]:
    """A request by D1, approved by P1 and scheduled for now by C1 (C1's session returned)."""
    officer = station.client("D1")
    number = _new_request(officer)
    assert _step(officer, number, "submit").status_code == 303
    assert _step(station.client("P1"), number, "approve").status_code == 303
    custodian = station.client("C1")
    at = (clock.now().astimezone(TZ) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M")
    assert _step(custodian, number, "schedule", at=at, minutes="120").status_code == 303
    return number, custodian


# --- every page renders for someone who may see it -------------------------------------------

PAGES = [
    ("C1", "/", "充電座"),
    ("C1", "/catalog?officer=A12345", "CAM0001_090000.mp4"),
    ("C1", "/recordings/1", "影音資料"),
    ("D1", "/requests", "調閱／複製申請"),
    ("S1", "/seals", "每日封存"),
    ("C1", "/holds", "保留"),
    ("C1", "/retention", "保存與銷毀"),
    ("C1", "/attribution", "POOL01"),
    ("A1", "/audit?from=2026-01-01&to=2030-12-31", "查核報告"),
    ("C1", "/duty", "電量不足"),
    ("C1", "/register?from=2026-01-01&to=2030-12-31", "調閱／複製紀錄清冊"),
]


@pytest.mark.parametrize(("staff", "url", "shows"), PAGES)
def test_each_page_renders_for_a_role_that_may_see_it(
    station: Station, staff: str, url: str, shows: str
) -> None:
    r = station.client(staff).get(url)
    assert r.status_code == 200, r.text
    assert shows in r.text
    assert r.headers["content-security-policy"] == CSP
    assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("url", ["/", "/catalog", "/requests", "/seals", "/audit", "/duty"])
def test_without_a_session_every_page_goes_to_the_login(station: Station, url: str) -> None:
    r = station.client().get(url)
    assert (r.status_code, r.headers["location"]) == (303, "/login")


def test_what_the_daemon_refuses_shows_its_reason_and_status(station: Station) -> None:
    officer = station.client("D1")
    for url in (
        "/catalog",
        "/recordings/1",
        "/holds",
        "/retention",
        "/attribution",
        "/duty",
        "/register",
        "/register.pdf",
    ):
        _refused(officer.get(url), 403, "Your role may not see this page")
    _refused(officer.get("/seals"), 403, "Your role may not see this page")
    _refused(station.client("C1").get("/audit"), 403, "Your role may not see this page")
    _refused(station.client("C1").get("/recordings/999"), 404, "No recording 999")
    _refused(officer.get("/requests/2026-9999"), 404, "No such request")


def test_a_daemon_that_is_not_running_is_a_503_page(station: Station) -> None:
    c = station.client("C1")
    station.server.close()
    _refused(c.get("/catalog"), 503, "The station daemon is not running")
    login = station.client()
    r = login.post(
        "/login",
        data={"csrf": _csrf(login.get("/login").text), "staff": "C1", "password": PASSWORD},
    )
    assert r.status_code == 503 and "The station daemon is not running" in r.text


def test_a_session_the_daemon_forgot_logs_out(station: Station) -> None:
    c = station.client("C1")
    station.restart_daemon()
    r = c.get("/catalog")
    assert (r.status_code, r.headers["location"]) == (303, "/login")
    assert c.get("/").headers["location"] == "/login"  # the console's session went too


# --- logging in and out, the language ---------------------------------------------------------


def test_login_checks_the_form_and_the_password(station: Station) -> None:
    c = station.client()
    page = c.get("/login")
    assert page.status_code == 200 and "員工編號" in page.text
    forged = c.post("/login", data={"csrf": "nope", "staff": "C1", "password": PASSWORD})
    assert forged.status_code == 403 and "The form expired" in forged.text
    wrong = c.post("/login", data={"csrf": _csrf(page.text), "staff": "C1", "password": "no"})
    assert wrong.status_code == 401 and "Wrong staff id or password" in wrong.text
    assert c.get("/").headers["location"] == "/login"


def test_logout_ends_the_session_here_and_at_the_daemon(station: Station) -> None:
    c = station.client("C1")
    assert c.get("/").status_code == 200
    r = c.post("/logout", data={"csrf": _token(c)})
    assert (r.status_code, r.headers["location"]) == (303, "/login")
    assert c.get("/").headers["location"] == "/login"


def test_the_language_is_the_sessions_and_only_a_local_page_is_gone_back_to(
    station: Station,
) -> None:
    c = station.client("C1")
    r = c.get("/lang/en?back=/catalog")
    assert (r.status_code, r.headers["location"]) == (303, "/catalog")
    assert 'lang="en"' in c.get("/").text or "lang-en" in c.get("/").text
    assert c.get("/lang/en?back=//elsewhere.example").headers["location"] == "/"
    assert c.get("/lang/xx").status_code == 303


# --- every post: refused when forged, and what it does when not --------------------------------

POSTS = [
    "/requests/new",
    "/requests/2026-0001/submit",
    "/requests/2026-0001/copy",
    f"/seals/{DAY}/confirm",
    "/holds/new",
    "/holds/1/release",
    "/retention/destroy",
    "/retention/propose",
    "/retention/lists/1/approve",
    "/attribution",
]


@pytest.mark.parametrize("url", POSTS)
@pytest.mark.parametrize("csrf", [None, "forged"])
def test_a_forged_post_is_refused_before_the_daemon_is_asked(
    station: Station, url: str, csrf: str | None
) -> None:
    c = station.client("C1")
    before = _custody(station.cfg)
    r = c.post(
        url,
        data={
            "recording": "2",
            "officer": "B23456",
            "kind": "case",
            "case": "x",
            **({"csrf": csrf} if csrf else {}),
        },
    )
    _refused(r, 403, FORGED)
    # Nothing done; the attempt itself recorded under the session's person, and the page says
    # so because it was (issue 29: it said "recorded" when nothing was).
    assert _custody(station.cfg) == before + 1
    assert _last_refusal(station.cfg) == ("陳保管 (C1)", "form", url)
    assert "This attempt was recorded in the custody log" in r.text


def test_a_forged_post_without_a_session_says_it_was_not_recorded(station: Station) -> None:
    """Issue 29: a forged post nobody logged in made cannot be attributed, and the page says
    so; a login form without its token is refused too."""
    c = station.client()
    c.get("/login")
    before = _custody(station.cfg)
    r = c.post("/login", data={"staff": "C1", "password": PASSWORD})
    assert r.status_code == 403 and "The form expired" in r.text
    assert _custody(station.cfg) == before


def test_logout_needs_the_forms_token(station: Station) -> None:
    """Issue 29: /logout took no token, so any page could log a custodian out."""
    c = station.client("C1")
    r = c.post("/logout")
    _refused(r, 403, FORGED)
    assert c.get("/").status_code == 200  # still logged in
    assert _last_refusal(station.cfg)[1:] == ("form", "/logout")
    r = c.post("/logout", data={"csrf": _token(c)})
    assert (r.status_code, r.headers["location"]) == (303, "/login")


def _last_refusal(cfg: Config) -> tuple[str, str, str]:
    db = open_catalog(cfg.catalog)
    try:
        actor, details = db.execute(
            "SELECT actor, details FROM custody_log WHERE action = 'refused' ORDER BY id DESC"
        ).fetchone()
    finally:
        db.close()
    d = json.loads(details)
    return actor, d.get("attempted") or d.get("action"), d.get("path")


def test_a_request_from_new_to_a_verified_copy(station: Station) -> None:
    number, custodian = _approved(station)
    page = custodian.get(f"/requests/{number}")
    assert page.status_code == 200 and "scheduled" in page.text
    pdf = custodian.get(f"/requests/{number}/annex2.pdf")
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content[:5] == b"%PDF-"
    usb = station.tmp / "usb"
    usb.mkdir()
    r = _step(custodian, number, "copy", to=str(usb))
    assert r.status_code == 303 and "copied and verified" in _to(r)
    assert (usb / number / "MANIFEST.sha256").exists()
    outside = _step(custodian, number, "copy", to="/etc")
    _refused(outside, 400, "the copy goes onto export media")


def test_a_step_the_role_may_not_take_shows_the_daemons_reason(station: Station) -> None:
    officer = station.client("D1")
    number = _new_request(officer)
    _refused(_step(officer, number, "approve"), 403, "needs the role approver")
    bad = officer.post("/requests/new", data={"csrf": _token(officer), "from": "yesterday"})
    _refused(bad, 400, "a time YYYY-MM-DDTHH:MM is needed")


def test_an_approved_viewing_streams_with_ranges(station: Station) -> None:
    number, custodian = _approved(station)
    clip = (Path(__file__).parent / "data" / "testsrc.mp4").read_bytes()
    whole = custodian.get(f"/requests/{number}/video/1")
    assert whole.status_code == 200 and whole.content == clip
    assert whole.headers["content-type"] == "video/mp4"
    part = custodian.get(f"/requests/{number}/video/1", headers={"range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == clip[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(clip)}"
    beyond = custodian.get(f"/requests/{number}/video/1", headers={"range": "bytes=999999999-"})
    assert beyond.status_code == 416
    # Not the custodian of the viewing, or a recording the request does not cover: no.
    _refused(station.client("D1").get(f"/requests/{number}/video/1"), 403, "may not view")
    _refused(custodian.get(f"/requests/{number}/video/2"), 404, "Not in this request")


def test_a_supervisor_confirms_a_sealed_day(station: Station) -> None:
    supervisor = station.client("S1")
    unsealed = supervisor.post(f"/seals/{DAY}/confirm", data={"csrf": _token(supervisor)})
    _refused(unsealed, 403, f"duty day {DAY} is not sealed")
    db = open_catalog(station.cfg.catalog)
    seal_day(
        db, Sealing(Key("1", "a seal password of the test")), date.fromisoformat(DAY), "陳保管 (C1)"
    )
    db.close()
    custodian = station.client("C1")
    by_custodian = custodian.post(f"/seals/{DAY}/confirm", data={"csrf": _token(custodian)})
    _refused(by_custodian, 403, "may not confirm: that needs the role approver or supervisor")
    r = supervisor.post(f"/seals/{DAY}/confirm", data={"csrf": _token(supervisor)})
    assert (r.status_code, _to(r)) == (303, f"/seals?m=已確認 confirmed {DAY}")
    assert "林督導 (S1)" in supervisor.get("/seals").text


def test_holds_are_placed_and_released(station: Station) -> None:
    custodian, supervisor = station.client("C1"), station.client("S1")
    r = custodian.post(
        "/holds/new",
        data={
            "csrf": _token(custodian),
            "kind": "investigation",
            "case": "刑案 115-7",
            "reason": "investigation",
            "recording": "1",
        },
    )
    assert r.status_code == 303 and _to(r).startswith("/holds?m=已保留 placed: ")
    assert "刑案 115-7" in custodian.get("/holds").text
    hold_id = _to(r).rsplit(" ", 1)[1]
    refused = custodian.post(
        f"/holds/{hold_id}/release", data={"csrf": _token(custodian), "reason": "done"}
    )
    _refused(refused, 403, "may not release: that needs the role approver or supervisor")
    bad = custodian.post("/holds/new", data={"csrf": _token(custodian), "kind": "nonsense"})
    _refused(bad, 400, "nonsense")
    done = supervisor.post(
        f"/holds/{hold_id}/release", data={"csrf": _token(supervisor), "reason": "case closed"}
    )
    assert (done.status_code, _to(done)) == (303, "/holds?m=已解除 released")


def test_retention_destroys_only_an_approved_list(station: Station) -> None:
    custodian = station.client("C1")
    r = custodian.post("/retention/destroy", data={"csrf": _token(custodian)})
    _refused(r, 403, "needs an approved destruction list")  # REG-4.3.1, issue 27
    supervisor = station.client("S1")
    refused = supervisor.post("/retention/destroy", data={"csrf": _token(supervisor)})
    _refused(refused, 403, "may not destroy: that needs the role custodian")


def test_a_recording_is_attributed_to_its_officer(station: Station) -> None:
    custodian = station.client("C1")
    r = custodian.post(
        "/attribution", data={"csrf": _token(custodian), "recording": "2", "officer": "B23456"}
    )
    assert r.status_code == 303 and _to(r).startswith("/attribution?m=已歸屬 attributed: ")
    assert "B23456" in _to(r)
    unknown = custodian.post(
        "/attribution", data={"csrf": _token(custodian), "recording": "2", "officer": "Z99999"}
    )
    _refused(unknown, 400, "is not an officer of this station")


def test_the_audit_report_and_the_register_print(station: Station) -> None:
    auditor = station.client("A1")
    for url in (
        "/audit.pdf?from=2026-01-01&to=2030-12-31",
        "/register.pdf?from=2026-01-01&to=2030-12-31",
    ):
        r = auditor.get(url) if url.startswith("/audit") else station.client("C1").get(url)
        assert r.headers["content-type"] == "application/pdf" and r.content[:5] == b"%PDF-"


def test_the_bays_stream_sends_what_the_daemon_wrote(station: Station) -> None:
    """Server-sent events, read off the ASGI app directly: the stream ends only when the peer
    goes, which TestClient cannot say."""
    c = station.client("C1")
    bays = [
        {
            "bay": 1,
            "phase": "offloading",
            "camera": "CAM0001",
            "officer": "王小明",
            "bytes_total": 100,
            "bytes_done": 40,
            "message": "",
        }
    ]
    station.cfg.run_dir.mkdir(parents=True, exist_ok=True)
    (station.cfg.run_dir / "bays.json").write_text(json.dumps(bays), encoding="utf-8")
    cookie = "; ".join(f"{k}={v}" for k, v in c.cookies.items())
    sent: list[dict[str, Any]] = []
    asked: list[bool] = []
    event = anyio.Event()

    async def receive() -> dict[str, Any]:
        if not asked:
            asked.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}
        await event.wait()
        return {"type": "http.disconnect"}  # gone once the first event arrived

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message.get("body"):
            event.set()

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/bays/stream",
        "raw_path": b"",
        "query_string": b"",
        "headers": [(b"cookie", cookie.encode())],
        "scheme": "http",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 1),
        "root_path": "",
        "http_version": "1.1",
        "asgi": {"version": "3.0"},
    }
    anyio.run(station.app, scope, receive, send)
    assert sent[0]["status"] == 200
    assert (b"content-type", b"text/event-stream; charset=utf-8") in sent[0]["headers"]
    body = b"".join(m.get("body", b"") for m in sent[1:]).decode()
    # What the daemon wrote, each phase also in the station's words (issue 29, terms.py).
    sent_bays = json.loads(body[6:].strip())
    assert (
        body.startswith("data: ")
        and [b | {"phase_text": "上傳中 offloading"} for b in bays] == sent_bays
    )


def test_the_script_and_the_style_are_served_locally(station: Station) -> None:
    c = station.client()
    assert c.get("/static/console.js").status_code == 200
    assert c.get("/static/console.css").status_code == 200


def _custody(cfg: Config) -> int:
    db = open_catalog(cfg.catalog)
    try:
        return int(db.execute("SELECT count(*) FROM custody_log").fetchone()[0])
    finally:
        db.close()


def test_the_bays_page_tells_when_the_daemon_stopped(station: Station) -> None:
    """Issue 29: the daemon writes the bays with a heartbeat; three missed beats and the page
    says when it stopped, instead of the last progress it wrote ("offloading 35 %")."""
    from camdock.station.rundir import HEARTBEAT

    running = clock._clock
    assert isinstance(running, clock.RunningClock)
    beat = running.now()
    doc = {"heartbeat": clock.iso_utc(beat), "pid": 1, "bays": [
        {"bay": 1, "phase": "offloading", "camera": "CAM0001", "officer": "王小明",
         "bytes_total": 100, "bytes_done": 35, "message": ""}]}  # fmt: skip
    station.cfg.run_dir.mkdir(parents=True, exist_ok=True)
    (station.cfg.run_dir / "bays.json").write_text(json.dumps(doc), encoding="utf-8")
    c = station.client("C1")
    alive = c.get("/bays").text
    assert "offloading" in alive and "停止" not in alive
    running.at += timedelta(seconds=4 * HEARTBEAT)
    stopped = c.get("/bays").text
    when = clock.local_text(beat, station.cfg.tz)
    assert f"the daemon stopped at {when}" in stopped and "offloading" not in stopped


# --- sessions in the daemon, the second factor, HSTS (issue 27) -----------------------------------


def test_a_cookie_replayed_after_logout_opens_nothing(station: Station) -> None:
    """Issue 27: the console's signed cookie alone opened `/` and `/bays/stream` after logout."""
    c = station.client("C1")
    kept = dict(c.cookies.items())
    assert c.get("/").status_code == 200
    assert c.post("/logout", data={"csrf": _token(c)}).status_code == 303
    replay = station.client()
    for k, v in kept.items():
        replay.cookies.set(k, v)
    for url in ("/", "/bays/stream", "/catalog"):
        r = replay.get(url)
        assert (r.status_code, r.headers["location"]) == (303, "/login"), url


def test_an_idle_console_session_ends(station: Station) -> None:
    """Issue 27: 15 minutes without a request end the session (the project's clock moves)."""
    c = station.client("C1")
    assert c.get("/").status_code == 200
    running = clock._clock
    assert isinstance(running, clock.RunningClock)
    running.at += timedelta(minutes=10)
    assert c.get("/").status_code == 200  # a request: the idle clock starts again
    running.at += timedelta(minutes=16)
    assert c.get("/").headers["location"] == "/login"


def test_the_login_asks_an_approver_for_the_one_time_code(station: Station) -> None:
    c = station.client()
    form = {"csrf": _csrf(c.get("/login").text), "staff": "P1", "password": PASSWORD}
    asked = c.post("/login", data=form)
    assert asked.status_code == 401 and "one-time code" in asked.text
    assert 'name="otp"' in asked.text and 'value="P1"' in asked.text
    wrong = c.post("/login", data={**form, "otp": "000000"})
    assert wrong.status_code == 401 and "Wrong staff id or password" in wrong.text
    done = c.post("/login", data={**form, "otp": code(station.cfg.catalog, "P1")})
    assert (done.status_code, done.headers["location"]) == (303, "/")
    assert "王分局長" in c.get("/").text


def test_hsts_over_https_only(station: Station) -> None:
    plain = station.client()
    assert "strict-transport-security" not in plain.get("/login").headers
    tls = TestClient(make_app(station.cfg, secret=b"k", https=True), base_url="https://testserver")
    assert tls.get("/login").headers["strict-transport-security"] == "max-age=31536000"


def test_a_live_bays_stream_ends_when_its_session_does(
    station: Station, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 27: the stream asks the daemon again while it runs; a logout elsewhere ends it."""
    import base64

    from camdock.adapters.control import call
    from camdock.web.pages import bays as bays_page

    monkeypatch.setattr(bays_page, "RECHECK", 0.0)
    c = station.client("C1")
    cookie = "; ".join(f"{k}={v}" for k, v in c.cookies.items())
    signed = c.cookies["camdock"].split(".")[0]
    token = json.loads(base64.b64decode(signed + "=" * (-len(signed) % 4)))["token"]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message.get("body") and len(sent) == 2:  # the first event: now log out elsewhere
            await anyio.to_thread.run_sync(
                lambda: call(station.cfg.run_dir / SOCKET, {"op": "logout", "token": token})
            )

    scope = {
        "type": "http", "method": "GET", "path": "/bays/stream", "raw_path": b"",
        "query_string": b"", "headers": [(b"cookie", cookie.encode())], "scheme": "http",
        "server": ("testserver", 80), "client": ("127.0.0.1", 1), "root_path": "",
        "http_version": "1.1", "asgi": {"version": "3.0"},
    }  # fmt: skip

    async def main() -> None:
        with anyio.fail_after(30):
            await station.app(scope, receive, send)

    anyio.run(main)
    assert sent[0]["status"] == 200 and sent[-1].get("more_body") is False


def test_a_request_approved_in_sqlite_streams_nothing(station: Station) -> None:
    """Hostile review (issue 27): a draft an insider marked scheduled and approved in sqlite3
    (no camdock triggers) must not open footage: the request is checked against the chain."""
    officer = station.client("D1")
    number = _new_request(officer)
    start, end = clock.now() - timedelta(minutes=5), clock.now() + timedelta(hours=2)
    con = sqlite3.connect(station.cfg.catalog)
    con.execute("UPDATE requests SET state = 'scheduled', approved_by = '王分局長 (P1)', "
                "approved_by_id = 'P1', approved_at = ?, window_start = ?, window_end = ? "
                "WHERE number = ?", (start.isoformat(), start.isoformat(), end.isoformat(),
                                     number))  # fmt: skip
    con.commit()
    con.close()
    r = station.client("C1").get(f"/requests/{number}/video/1")
    assert r.status_code != 200 and r.content[:4] != b"\x00\x00\x00\x18"
