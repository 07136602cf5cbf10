"""Two custodians in two browser sessions attributing at once (issue 26, item 2): Debian's
chromium driven by Playwright, two contexts (two logins), against a real `camdock web` process
and the daemon's side of the control socket. Each presses 歸屬 (attribute) on a different
unattributed recording at the same moment, round after round: nothing is lost (every copy on
both drives, re-hashed from disk; the audit clean) and no page is a 500 (REG-4.2.4, REG-7.1)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from camdock import passwords
from camdock.adapters.control import Server
from camdock.config import Config, load
from camdock.core.attribution import Attribution
from camdock.station.control import SOCKET, Control
from conftest import camdock_cmd, offload, run, write_recording
from stationcfg import write_config
from test_access import STAFF
from test_web import CHROMIUM, FLAGS, PASSWORD, _login, start_console

pytestmark = pytest.mark.slow

playwright_api = pytest.importorskip("playwright.sync_api")
POOL = 12  # unattributed recordings: six rounds of two at once
SECOND = '\n[[staff]]\nid = "C2"\nname = "吳保管"\ntitle = "保管人"\nroles = ["custodian"]\n'


@pytest.fixture
def two_custodians(tmp_path: Path) -> Iterator[tuple[str, Path, Config]]:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium not installed (make test as root installs it)")
    hashed = passwords.hash_password(PASSWORD)
    staff = (STAFF + SECOND).replace('roles = ["', f'password_hash = "{hashed}"\nroles = ["')
    cfg_path = write_config(tmp_path, staff)
    cfg = load(cfg_path)
    pool = tmp_path / "pool"  # a camera nobody was assigned: all its footage waits
    for n in range(POOL):
        write_recording(pool / f"DCIM/100MEDIA/20261128_{10 + n // 6:02d}{n % 6}000_{n:04d}.MP4",
                        4096 + n, n)  # fmt: skip
    assert offload(pool, [cfg.footage, cfg.backup], cfg.catalog, camera_id="POOL01",
                   attribution=Attribution("POOL01", ())).ok  # fmt: skip
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    server = Server(cfg.run_dir / SOCKET, Control(cfg).handle, frozenset({os.geteuid()}))
    server.start()
    port, proc = start_console(cfg_path)
    try:
        yield f"http://127.0.0.1:{port}", cfg_path, cfg
    finally:
        proc.terminate()
        proc.wait(10)
        server.close()


def test_two_custodians_attributing_at_once_in_two_browsers_lose_nothing(
    two_custodians: tuple[str, Path, Config],
) -> None:
    base, cfg_path, cfg = two_custodians
    statuses: list[int] = []
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        pages = []
        for who in ("C1", "C2"):
            page = browser.new_context().new_page()  # a context each: two sessions
            page.on("response", lambda r: statuses.append(r.status))
            _login(page, base, who)
            pages.append(page)
        for _round in range(POOL // 2):
            for page in pages:
                page.goto(f"{base}/attribution")
            first, last = pages[0].locator("tbody form"), pages[1].locator("tbody form")
            # Different recordings: C1 the queue's first, C2 its last (both pages show both).
            picks = [first.first, last.last]
            for form, officer in zip(picks, ("A12345", "B23456"), strict=True):
                form.locator("select[name=officer]").select_option(officer)
            # Both presses go out before either answer is awaited.
            with pages[0].expect_navigation(), pages[1].expect_navigation():
                for form in picks:
                    form.get_by_role("button", name="歸屬").click(no_wait_after=True)
            for page in pages:
                assert "已歸屬" in page.content(), page.content()
        pages[0].goto(f"{base}/attribution")
        assert "無" in pages[0].locator("tbody").inner_text()  # the queue is empty
        browser.close()
    assert statuses and not [s for s in statuses if s >= 500], statuses
    audit = run(camdock_cmd("audit", "--config", str(cfg_path), "--full", "--json"))
    assert audit.returncode == 0, audit.stdout + audit.stderr
    manual = run(["sqlite3", str(cfg.catalog), "SELECT count(*) FROM recordings WHERE "
                  "attribution = 'manual'"])  # fmt: skip
    assert manual.stdout.strip() == str(POOL), manual
