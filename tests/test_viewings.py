"""Every viewing and every refusal on the record (REG-5.3, REG-7.1; issue 27, item 5): a
streamed viewing leaves its register line (Annex 3) and its custody entry (who, recording,
request, start, end, bytes) when the stream ends, also when the client goes away mid-stream;
a 404 is recorded as a refusal naming who tried what; and the six-monthly report's completeness
check compares the register with sources written apart from it, so it fails when a line is
missing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from camdock.catalog import open_catalog
from camdock.services import audit
from camdock.web.pages import requests as request_pages
from test_web_pages import TZ, Station, _approved, _new_request, _refused, station  # noqa: F401

CLIP = Path(__file__).parent / "data" / "testsrc.mp4"


def _rows(station: Station, sql: str) -> list[Any]:  # noqa: F811
    con = sqlite3.connect(station.cfg.catalog)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _views(station: Station) -> list[dict[str, Any]]:  # noqa: F811
    found = _rows(station, "SELECT actor, recording_id, details FROM custody_log WHERE action = "
                  "'view' ORDER BY id")  # fmt: skip
    return [{"actor": a, "recording": r, **json.loads(d)} for a, r, d in found]


def _refusals(station: Station) -> list[dict[str, Any]]:  # noqa: F811
    found = _rows(station, "SELECT actor, details FROM custody_log WHERE action = 'refused' "
                  "ORDER BY id")  # fmt: skip
    return [{"actor": a, **json.loads(d)} for a, d in found]


def _report(station: Station) -> dict[str, Any]:  # noqa: F811
    db = open_catalog(station.cfg.catalog)
    try:
        return audit.period_report(db, TZ, date(2026, 1, 1), date(2026, 12, 31),
                                   date(2026, 11, 29), [], [], "吳稽核 (A1)", False)  # fmt: skip
    finally:
        db.close()


def test_a_streamed_viewing_leaves_its_register_line_and_custody_entry(station: Station) -> None:  # noqa: F811
    number, custodian = _approved(station)
    size = len(CLIP.read_bytes())
    assert custodian.get(f"/requests/{number}/video/1").status_code == 200
    part = custodian.get(f"/requests/{number}/video/1", headers={"range": "bytes=10-19"})
    assert part.status_code == 206
    views = _views(station)
    assert [(v["actor"], v["recording"], v["request"], v["bytes"]) for v in views] == [
        ("陳保管 (C1)", 1, number, size),
        ("陳保管 (C1)", 1, number, 10),
    ]
    assert all(v["start"] <= v["end"] and v["viewer_id"] == "C1" for v in views)
    lines = _rows(station, "SELECT kind, recordings, custodian, viewing_id FROM register "
                  "ORDER BY id")  # fmt: skip
    assert lines == [("view", "[1]", "陳保管 (C1)", v["viewing"]) for v in views]
    report = _report(station)["register"]
    assert report["complete"] and report["missing"] == []
    assert report["lines"]["view"] == report["custody_entries"]["view"] == 2


def test_the_report_finds_a_viewing_without_its_register_line(station: Station) -> None:  # noqa: F811
    number, custodian = _approved(station)
    assert custodian.get(f"/requests/{number}/video/1").status_code == 200
    assert _report(station)["register"]["complete"]
    # The line removed with another tool: the stream log still has the viewing.
    con = sqlite3.connect(station.cfg.catalog)
    con.execute("DELETE FROM register")
    con.commit()
    con.close()
    report = _report(station)["register"]
    assert not report["complete"]
    assert report["missing"] and "no register line" in report["missing"][0]


def test_a_client_that_goes_away_mid_stream_still_leaves_the_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(request_pages, "CHUNK", 100)
    told: list[int] = []

    async def ended(sent: int) -> None:
        told.append(sent)

    fd = os.open(CLIP, os.O_RDONLY)

    async def play_a_little() -> None:
        response = await request_pages._stream(fd, None, ended)
        gone, chunks = asyncio.Event(), []

        async def receive() -> dict[str, Any]:
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message.get("body"):
                chunks.append(len(message["body"]))
                if len(chunks) == 2:  # the client went away after two chunks
                    gone.set()
                    await asyncio.sleep(0.5)

        # Through the response's own ASGI call, as the server runs it (issue 29: the response
        # owns the descriptor and closes it, and tells the end, however the stream ends).
        await response({"type": "http", "asgi": {"version": "3.0"}}, receive, send)
        assert chunks == [100, 100]

    asyncio.run(play_a_little())
    assert told == [200]
    held = []  # the clip's descriptor closed (its number may have been given out again)
    for f in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            held.append(os.readlink(f))
    assert str(Path(CLIP).resolve()) not in held


def test_every_not_found_is_recorded_as_a_refusal(station: Station) -> None:  # noqa: F811
    custodian = station.client("C1")
    theirs = _new_request(custodian)  # the custodian's own request
    officer = station.client("D1")
    _refused(officer.get(f"/requests/{theirs}"), 404, "No such request")
    pdf = officer.get(f"/requests/{theirs}/annex2.pdf")
    assert pdf.status_code == 404
    _refused(officer.get("/requests/2026-0999"), 404, "No such request")
    number, custodian = _approved(station)
    _refused(custodian.get(f"/requests/{number}/video/2"), 404, "Not in this request")
    said = [(r["actor"], r["attempted"], r["request"], r.get("recording"))
            for r in _refusals(station)]  # fmt: skip
    assert said == [
        ("周偵查員 (D1)", "request.get", theirs, None),
        ("周偵查員 (D1)", "request.get", theirs, None),
        ("周偵查員 (D1)", "request.get", "2026-0999", None),
        ("陳保管 (C1)", "view", number, 2),
    ]


def test_a_viewing_closed_twice_at_once_is_registered_once(station: Station) -> None:  # noqa: F811
    import threading

    from camdock.catalog import viewings
    from camdock.errors import Conflict

    number, _custodian = _approved(station)
    db = open_catalog(station.cfg.catalog)
    try:
        req_id = db.execute("SELECT id FROM requests WHERE number = ?", (number,)).fetchone()[0]
        viewing = viewings.open_viewing(db, req_id, number, 1, "陳保管 (C1)", "C1")
    finally:
        db.close()
    barrier = threading.Barrier(2, timeout=60)
    out: list[Any] = []

    def close() -> None:
        conn = open_catalog(station.cfg.catalog)
        try:
            barrier.wait()
            out.append(viewings.close(conn, viewing, "C1", 100))
        except Conflict as exc:
            out.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=close) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(type(o).__name__ for o in out) == ["Closed", "Conflict"]
    lines = _rows(station, "SELECT viewing_id FROM register")
    assert lines == [(viewing,)]
