"""Issue 29, the console as people use it: buttons only where the role and the state allow
(from the daemon's own rules, core.access.open_steps), every code in the station's words
(terms.py), names isolated, a skip link and live bay states; byte ranges as RFC 9110 says, and
the footage descriptor closed however a stream ends; a period out of range is a 400.
With Starlette's TestClient (or the ASGI app itself) against the daemon's real side of the
control socket and a real catalog (test_web_pages's station)."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Any

import anyio
import pytest

from camdock import terms
from camdock.catalog import open_catalog, selftests, write_txn
from camdock.web.pages import requests as request_pages
from camdock.web.pages.requests import byte_range
from test_web_pages import Station, _approved, _new_request, _step, _token, station

__all__ = ["station"]  # the fixture, imported for these tests

CLIP = (Path(__file__).parent / "data" / "testsrc.mp4").read_bytes()
STEP_FORMS = re.compile(r'action="/requests/[^/"]+/(\w+)"')


def _forms(html: str) -> set[str]:
    return set(STEP_FORMS.findall(html))


# --- buttons only where the role and the state allow ------------------------------------------


def test_each_role_sees_only_the_steps_it_may_take(station: Station) -> None:
    officer, approver, custodian = station.client("D1"), station.client("P1"), station.client("C1")
    number = _new_request(officer)
    page = f"/requests/{number}"
    assert _forms(officer.get(page).text) == {"submit"}
    assert _step(officer, number, "submit").status_code == 303
    assert _forms(officer.get(page).text) == set()  # nothing to do while it waits
    assert _forms(custodian.get(page).text) == set()
    assert _forms(approver.get(page).text) == {"approve", "deny"}
    r = _step(approver, number, "deny", reason="不符合規定")
    assert r.status_code == 303
    assert _forms(custodian.get(page).text) == {"close"}
    assert _step(custodian, number, "close").status_code == 303
    closed = officer.get(page).text
    # Issue 29: an officer saw Submit / Approve / Deny / Schedule / Copy on a closed request.
    assert _forms(closed) == set() and "已結案 closed" not in closed  # bilingual markup:
    assert '<span class="zh">已結案</span> <span class="en">closed</span>' in closed
    for who in (officer, approver, custodian):
        assert _forms(who.get(page).text) == set()


def test_a_scheduled_request_offers_the_custodian_the_copy_and_the_viewing(
    station: Station,
) -> None:
    number, custodian = _approved(station)
    page = custodian.get(f"/requests/{number}").text
    assert _forms(page) == {"schedule", "view", "copy"}
    assert "/video/1" in page  # the supervised viewing
    officer = station.client("D1").get(f"/requests/{number}").text
    assert _forms(officer) == set() and "/video/" not in officer


def test_the_hold_forms_show_for_the_roles_that_may_use_them(station: Station) -> None:
    custodian, supervisor = station.client("C1"), station.client("S1")
    r = custodian.post("/holds/new", data={"csrf": _token(custodian), "recording": "1",
                                            "kind": "investigation", "case": "113-1",
                                            "reason": "偵查中"})  # fmt: skip
    assert r.status_code == 303, r.text
    mine = custodian.get("/holds").text
    assert 'action="/holds/new"' in mine and "/release" not in mine  # he may place, not release
    assert "偵查犯罪 investigation" in mine or "偵查犯罪" in mine
    theirs = supervisor.get("/holds").text
    assert "/holds/1/release" in theirs


# --- every code translated; names isolated ----------------------------------------------------


def test_codes_show_in_the_station_words(station: Station) -> None:
    c = station.client("C1")
    _new_request(station.client("D1"))
    listing = c.get("/requests").text
    assert '<span class="zh">草稿</span> <span class="en">draft</span>' in listing
    assert '<span class="zh">偵查犯罪</span> <span class="en">crime investigation</span>' in listing
    history = c.get("/recordings/1").text
    assert '<span class="zh">歸檔保存</span> <span class="en">stored</span>' in history
    assert ">store<" not in history


def test_the_audit_report_prints_counts_not_python_dicts(station: Station) -> None:
    number, custodian = _approved(station)
    usb = station.tmp / "usb"
    usb.mkdir()
    assert _step(custodian, number, "copy", to=str(usb)).status_code == 303
    page = station.client("A1").get("/audit?from=2026-01-01&to=2030-12-31").text
    assert "{'" not in page and "{}" not in page
    assert "複製 copy 1" in page
    assert (
        terms.counts("count", {"copy": 1, "view": 2})
        == "複製 copy 1、監看調閱 supervised viewing 2"
    )


def test_a_right_to_left_override_in_a_name_stays_in_its_bdi(station: Station) -> None:
    """Issue 29: U+202E in an officer's name reversed the badge beside it."""
    db = open_catalog(station.cfg.catalog)
    with write_txn(db):
        selftests.add_duty_log(db, selftests.NewDutyEntry(
            officer_badge="A12345", officer_name="王\u202e小明", camera_id="CAM0001",
            entry="Camera CAM0001 of 王小明 failed its pre-shift test at bay 2: battery 12 %. "
                  "Report it for repair (REG-3.2). Spare CAM0009 (bay 3) issued."))  # fmt: skip
    db.close()
    page = station.client("C1").get("/duty").text
    assert "<bdi>王\u202e小明</bdi> <bdi>A12345</bdi>" in page
    assert "王小明 之攝影機 CAM0001 於第 2 座功能檢測未通過" in page  # the entry translated
    assert "已借用備用機 CAM0009（第 3 座）" in page


def test_the_retention_pass_alarms_read_in_chinese_too() -> None:
    text = "3 recording(s) past their destruction date (REG-4.3.1) and not held"
    assert terms.alarm_zh(text) == "3 筆影音資料已逾銷毀期限（REG-4.3.1）且未保留"
    assert terms.alarm_zh("something else") is None
    assert terms.term("phase", "storage-missing") == "儲存裝置遺失 storage missing"
    assert terms.term("state", "no-such-code") == "no-such-code"  # shown, never hidden


def test_the_skip_link_and_the_live_bay_states(station: Station) -> None:
    page = station.client("C1").get("/bays").text
    assert '<a class="skip" href="#main">' in page and '<main id="main"' in page
    assert 'aria-live="polite"' in page


OUT_OF_RANGE = ["/duty?from=0001-01-01", "/audit?from=0001-01-01", "/register?to=9999-12-31",
                "/duty?from=2026-02-01&to=2026-01-01"]  # fmt: skip


@pytest.mark.parametrize("url", OUT_OF_RANGE)
def test_a_period_out_of_range_is_a_400(station: Station, url: str) -> None:
    r = station.client("A1" if url.startswith("/audit") else "C1").get(url)
    assert r.status_code == 400, r.text


# --- byte ranges (RFC 9110, 14.2) and the footage descriptor ------------------------------------


@pytest.mark.parametrize(
    ("header", "size", "span"),
    [
        (None, 100, None),
        ("bytes=10-19", 100, (10, 19)),
        ("bytes=10-", 100, (10, 99)),
        ("bytes=-10", 100, (90, 99)),
        ("bytes=-1000", 100, (0, 99)),
        ("bytes=90-1000", 100, (90, 99)),
        ("bytes=abc", 100, None),  # invalid syntax: ignored, the whole file
        ("bytes=5-3", 100, None),  # last before first: an invalid range-spec, ignored
        ("bytes=-", 100, None),
        ("bytes=1-2,5-6", 100, None),  # several: the whole file instead
        ("items=1-2", 100, None),  # another unit: ignored
        ("bytes=²-", 100, None),  # a superscript digit (str.isdigit says yes): ignored, no 500
        ("bytes=100-", 100, False),  # unsatisfiable: 416
        ("bytes=-0", 100, False),
        ("bytes=0-", 0, False),
    ],
)
def test_byte_ranges_as_rfc_9110_says(
    header: str | None, size: int, span: tuple[int, int] | bool | None
) -> None:
    assert byte_range(header, size) == span


def _footage_fds(station: Station) -> list[str]:
    """This process's descriptors open on the footage or backup drive."""
    held = []
    for f in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(f)
            if target.startswith((str(station.cfg.footage), str(station.cfg.backup))):
                held.append(target)
    return held


def test_ranges_and_every_descriptor_closed(station: Station) -> None:
    number, custodian = _approved(station)
    url = f"/requests/{number}/video/1"
    assert _footage_fds(station) == []
    bad = custodian.get(url, headers={"range": "bytes=abc"})
    assert bad.status_code == 200 and bad.content == CLIP  # issue 29: it was a 206
    assert custodian.get(url, headers={"range": "bytes=5-3"}).status_code == 200
    part = custodian.get(url, headers={"range": "bytes=-10"})
    assert part.status_code == 206 and part.content == CLIP[-10:]
    beyond = custodian.get(url, headers={"range": f"bytes={len(CLIP)}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(CLIP)}"
    assert _footage_fds(station) == []


@pytest.mark.parametrize("gone", ["at once", "mid-stream"])
def test_a_client_that_goes_away_leaves_no_descriptor_open(
    station: Station, gone: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(request_pages, "CHUNK", 1024)  # several chunks of the 7.5 KB clip
    number, custodian = _approved(station)
    cookie = "; ".join(f"{k}={v}" for k, v in custodian.cookies.items())
    sent: list[dict[str, Any]] = []
    asked: list[bool] = []
    first_chunk = anyio.Event()

    async def receive() -> dict[str, Any]:
        if not asked:
            asked.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}
        if gone == "mid-stream":
            await first_chunk.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message.get("body"):
            first_chunk.set()
            await anyio.sleep(0.05)  # the client is slow: it goes before the rest is sent

    scope = {
        "type": "http", "method": "GET", "path": f"/requests/{number}/video/1",
        "raw_path": b"", "query_string": b"", "headers": [(b"cookie", cookie.encode())],
        "scheme": "http", "server": ("testserver", 80), "client": ("127.0.0.1", 1),
        "root_path": "", "http_version": "1.1", "asgi": {"version": "3.0"},
    }  # fmt: skip
    anyio.run(station.app, scope, receive, send)
    assert sent and sent[0]["status"] == 200
    body = b"".join(m.get("body", b"") for m in sent[1:])
    assert len(body) < len(CLIP)  # it went before the end
    assert _footage_fds(station) == []
    # The viewing's register line and custody entry are there all the same (REG-5.3).
    db = open_catalog(station.cfg.catalog)
    try:
        done = db.execute("SELECT count(*) FROM custody_log WHERE action = 'view'").fetchone()[0]
    finally:
        db.close()
    assert done >= 1
