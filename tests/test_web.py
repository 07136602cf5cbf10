"""The custodian's console in a real browser: Debian's chromium driven by Playwright against a
real `camdock web` process (invariant 9: refusal is the default; REG-5)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from camdock import clock, passwords
from camdock.adapters.control import Server
from camdock.catalog import open_catalog, selftests, write_txn
from camdock.config import load
from camdock.core.attribution import Attribution
from camdock.services.seal import Key, Sealing, seal_day
from camdock.station.control import SOCKET, Control
from conftest import TZ, camdock_cmd, offload, write_recording
from staffotp import code, enrol
from stationcfg import write_config
from test_access import STAFF

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright_api = pytest.importorskip("playwright.sync_api")
PASSWORD = "a long console password"  # noqa: S105 - the test's own
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--autoplay-policy=no-user-gesture-required"]  # fmt: skip


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_console(cfg_path: Path) -> tuple[int, subprocess.Popen[str]]:
    """``camdock web`` for this config on a free loopback port, once it accepts connections."""
    port = _port()
    cmd = camdock_cmd("web", "--config", str(cfg_path), "--listen", f"127.0.0.1:{port}")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return port, proc
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout
            time.sleep(0.1)


@pytest.fixture
def console(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium not installed (make test as root installs it)")
    hashed = passwords.hash_password(PASSWORD)
    staff = STAFF.replace('roles = ["', f'password_hash = "{hashed}"\nroles = ["')
    cfg_path = write_config(tmp_path, staff)
    cfg = load(cfg_path)
    cam = tmp_path / "cam"
    clip = (Path(__file__).parent / "data" / "testsrc.mp4").read_bytes()
    (cam / "DCIM" / "100MEDIA").mkdir(parents=True)
    (cam / "DCIM/100MEDIA/20261128_090000_0000.MP4").write_bytes(clip)
    write_recording(cam / "DCIM/100MEDIA/20261128_091000_0001.MP4", 8192, 3)
    assert offload(cam, [cfg.footage, cfg.backup], cfg.catalog).ok
    pool = tmp_path / "pool"  # a camera nobody was assigned: its recording waits to be attributed
    write_recording(pool / "DCIM/100MEDIA/20261128_100000_0002.MP4", 4096, 4)
    assert offload(pool, [cfg.footage, cfg.backup], cfg.catalog, camera_id="POOL01",
                   attribution=Attribution("POOL01", ())).ok  # fmt: skip
    db = open_catalog(cfg.catalog)  # a failed pre-shift test, as the bay button records one
    with write_txn(db):
        test_id = selftests.add_selftest(
            db,
            selftests.NewSelfTest(
                bay=1,
                camera_id="CAM0001",
                passed=0,
                officer_badge="A12345",
                officer_name="王小明",
                battery=12,
                checks=json.dumps([{"name": "battery", "ok": False}]),
            ),
        )
        selftests.add_duty_log(
            db,
            selftests.NewDutyEntry(
                officer_badge="A12345",
                officer_name="王小明",
                camera_id="CAM0001",
                entry="攝影機功能檢測未通過：電量不足",
                selftest_id=test_id,
            ),
        )
    db.close()
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    enrol(cfg)
    # The daemon's side of the control socket, as `camdock run` serves it: the console asks it
    # for every page and every action (it has no catalog connection of its own).
    daemon = Control(cfg, export_roots=(tmp_path,))
    server = Server(cfg.run_dir / SOCKET, daemon.handle, frozenset({os.geteuid()}))
    server.start()
    port, proc = start_console(cfg_path)
    try:
        yield f"http://127.0.0.1:{port}", cfg_path
        # The console never held the catalog or a recording open itself: it asked the daemon
        # (and the viewing's descriptor was closed when the stream ended).
        held = set()
        for f in Path(f"/proc/{proc.pid}/fd").iterdir():
            with contextlib.suppress(FileNotFoundError):
                held.add(os.readlink(f))
        kept = [cfg.state_dir, cfg.footage, cfg.backup]
        assert not [h for h in held if any(h.startswith(str(k)) for k in kept)], held
    finally:
        proc.terminate()
        proc.wait(10)
        server.close()


def _login(page: Any, base: str, staff: str, catalog: Path | None = None) -> None:
    """Log in; with ``catalog``, the one-time code too (approvers, supervisors, auditors)."""
    page.goto(f"{base}/login")
    page.get_by_label("員工編號").fill(staff)
    page.get_by_label("密碼").fill(PASSWORD)
    if catalog is not None:
        page.get_by_label("一次性驗證碼").fill(code(catalog, staff))
    page.get_by_role("button", name="登入").click()
    page.wait_for_url(f"{base}/")


def _logout(page: Any, base: str) -> None:
    page.get_by_role("button", name="登出").click()
    page.wait_for_url(f"{base}/login")


def test_a_request_from_creation_to_a_verified_copy_in_the_browser(
    console: tuple[str, Path], tmp_path: Path
) -> None:
    base, cfg_path = console
    cfg = load(cfg_path)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        # bypass_csp: Playwright's own waits evaluate strings, which the console's policy
        # forbids (asserted on the response headers below).
        page = browser.new_page(locale="zh-TW", bypass_csp=True)
        # Nothing but the login page without a session; a wrong password is refused.
        page.goto(f"{base}/catalog")
        assert page.url == f"{base}/login"
        page.get_by_label("員工編號").fill("D1")
        page.get_by_label("密碼").fill("wrong password")
        page.get_by_role("button", name="登入").click()
        assert "帳號或密碼錯誤" in page.content()
        # An officer may not see the catalog: the daemon says so, and records who tried.
        _login(page, base, "D1")
        page.goto(f"{base}/catalog")
        assert "無權" in page.content()
        assert ("D1", "catalog.find") in _refusals(cfg)
        page.goto(f"{base}/audit")
        assert "無權" in page.content()
        assert ("D1", "audit.report") in _refusals(cfg)
        # The officer applies: the form resolves the selection against the catalog.
        page.goto(f"{base}/requests")
        page.get_by_label("攝錄員警編號").fill("A12345")
        page.get_by_label("起").fill("2026-11-28T00:00")
        page.get_by_label("迄").fill("2026-11-28T23:59")
        page.get_by_label("調閱或複製").select_option("both")
        page.get_by_label("事由").fill("傷害案調查")
        page.get_by_role("button", name="建立申請").click()
        page.wait_for_url(f"{base}/requests/*")
        number = page.url.rsplit("/", 1)[1]
        # Another officer's footage is not shown to the applicant before approval (issue 27).
        assert "2026/11/28" not in page.content()
        page.get_by_role("button", name="送出").click()
        assert "submitted" in page.locator("#state").text_content()
        # An officer is offered no step but her own (issue 29); posted anyway, the daemon says no.
        assert page.get_by_role("button", name="核准").count() == 0
        token = page.locator("input[name=csrf]").first.get_attribute("value")
        tried = page.request.post(f"{base}/requests/{number}/approve", form={"csrf": str(token)})
        assert tried.status == 403 and "needs the role approver" in tried.text()
        _logout(page, base)
        _login(page, base, "P1", cfg.catalog)
        page.goto(f"{base}/requests/{number}")
        page.get_by_role("button", name="核准").click()
        assert "approved" in page.locator("#state").text_content()
        _logout(page, base)
        # The custodian schedules, supervises the viewing (the video plays), makes the copy.
        _login(page, base, "C1")
        page.goto(f"{base}/requests/{number}")
        at = (clock.now().astimezone(TZ) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M")
        page.get_by_label("時間").fill(at)
        page.get_by_role("button", name="排定").click()
        page.wait_for_load_state("load")  # the deferred script has bound the link: plays in page
        page.locator("a.watch").first.click()
        page.wait_for_function("document.querySelector('video') && "
                               "document.querySelector('video').currentTime > 0.2",
                               timeout=20000)  # fmt: skip
        export = tmp_path / "usb"
        export.mkdir()
        page.get_by_label("匯出位置").fill(str(export))
        page.get_by_role("button", name="複製並驗證").click()
        assert "已複製並驗證" in page.content()
        folder = export / number
        check = subprocess.run(["sha256sum", "-c", "MANIFEST.sha256"], cwd=folder,
                               capture_output=True, text=True)  # fmt: skip
        assert check.returncode == 0 and check.stdout.count(": OK") == 2
        # A forged post (no CSRF token) is refused.
        forged = page.request.post(f"{base}/requests/{number}/close", form={"csrf": "nope"})
        assert forged.status == 403
        # The bays page follows the daemon live.
        page.goto(f"{base}/bays")
        (cfg.run_dir / "bays.json").write_text(json.dumps([{"bay": 1, "phase": "offloading",
            "camera": "CAM0001", "officer": "王小明", "bytes_total": 100, "bytes_done": 40,
            "message": ""}]), encoding="utf-8")  # fmt: skip
        page.wait_for_function("document.querySelector('tr[data-bay=\"1\"] .phase')"
                               ".textContent === '上傳中 offloading'", timeout=10000)  # fmt: skip
        shots = Path(os.environ.get("CAMDOCK_SCREENSHOTS", tmp_path / "shots"))
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "console-bays.png"))
        page.goto(f"{base}/requests/{number}")
        page.screenshot(path=str(shots / "console-request.png"), full_page=True)
        # A supervisor confirms the day's seal (REG-4.2.5); the custodian sealed it.
        db = open_catalog(cfg.catalog)
        seal_day(db, Sealing(Key("1", "a seal password of the test")), date(2026, 11, 28),
                 "陳保管 (C1)")  # fmt: skip
        db.close()
        _logout(page, base)
        _login(page, base, "S1", cfg.catalog)
        page.goto(f"{base}/seals")
        page.get_by_role("button", name="確認").click()
        assert "已確認" in page.content() and "林督導 (S1)" in page.content()
        page.screenshot(path=str(shots / "console-seals.png"), full_page=True)
        # The register has the copy; holds can be placed and released; the retention plan shows.
        page.goto(f"{base}/register?from=2026-01-01&to=2030-12-31")
        assert number in page.content()
        page.goto(f"{base}/holds")
        page.get_by_label("影音資料序號").fill("1")
        page.get_by_label("案號").fill("刑案 115-7")
        page.get_by_label("理由").first.fill("investigation pending")
        page.get_by_role("button", name="保留").last.click()
        assert "刑案 115-7" in page.content()
        page.goto(f"{base}/retention")
        assert "到期但保留中" in page.content()
        headers = page.request.get(f"{base}/").headers
        assert "script-src 'self'" in headers["content-security-policy"]
        # The unattributed queue: the custodian files a recording under its officer (REG-4.2.4).
        _logout(page, base)
        _login(page, base, "C1")
        page.goto(f"{base}/attribution")
        page.locator("select[name=officer]").first.select_option("B23456")
        page.screenshot(path=str(shots / "console-attribution.png"), full_page=True)
        page.get_by_role("button", name="歸屬").first.click()
        assert "已歸屬" in page.content() and "B23456" in page.content()
        # English alone, for whoever prefers it: the Chinese is hidden, not merely beside it.
        page.goto(f"{base}/duty")  # REG-3.2: the duty log and the function tests
        assert "電量不足" in page.content() and "battery" in page.content()
        page.get_by_role("link", name="English only").click()
        page.goto(f"{base}/catalog")
        assert page.get_by_role("link", name="Catalog").is_visible()
        assert not page.get_by_text("目錄清冊").first.is_visible()
        page.screenshot(path=str(shots / "console-catalog-en.png"), full_page=True)
        page.get_by_role("link", name="中文").click()
        _logout(page, base)
        # The supervisor reads the audit report (REG-7.2) as a page and as a PDF.
        _login(page, base, "S1", cfg.catalog)
        page.goto(f"{base}/audit?from=2026-01-01&to=2030-12-31")
        assert "查核報告" in page.content() and "每日加密封存" in page.content()
        page.screenshot(path=str(shots / "console-audit.png"), full_page=True)
        pdf = page.request.get(f"{base}/audit.pdf?from=2026-01-01&to=2030-12-31")
        assert pdf.headers["content-type"] == "application/pdf" and pdf.body()[:5] == b"%PDF-"
        # Issue 29: usable on a phone, nothing wider than 390 px; the skip link comes first.
        page.set_viewport_size({"width": 390, "height": 844})
        for url in ("/", "/catalog?officer=A12345", "/recordings/1", "/requests",
                    f"/requests/{number}", "/seals", "/holds", "/retention", "/duty",
                    "/register?from=2026-01-01&to=2030-12-31",
                    "/audit?from=2026-01-01&to=2030-12-31"):  # fmt: skip
            page.goto(f"{base}{url}")
            wide = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            assert wide[0] <= wide[1], (url, wide)
        page.screenshot(path=str(shots / "console-audit-390px.png"), full_page=True)
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip"
        browser.close()


def _refusals(cfg: Any) -> list[tuple[str, str]]:
    """(staff id, what they tried) of every refusal in the custody log."""
    db = open_catalog(cfg.catalog)
    try:
        found = db.execute("SELECT actor, details FROM custody_log WHERE action = 'refused'")
        return [(a.rsplit("(", 1)[-1].rstrip(")"), json.loads(d)["attempted"]) for a, d in found]
    finally:
        db.close()
