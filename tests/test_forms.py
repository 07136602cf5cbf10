"""The printed forms' templates (camdock/templates/forms/): what a person typed is text on the
form, never markup; a field the catalog did not give is an error, not a blank (REG-4.3.2). The
forms' content as printed is read back from the PDFs in test_access.py and test_audit.py."""

from __future__ import annotations

from typing import Any

import jinja2
import pytest

from camdock import forms

TYPED = '<script>alert("x")</script> & 案'


def _request(**changed: Any) -> dict[str, Any]:
    req = dict.fromkeys(
        (
            "recorded_by",
            "window_start",
            "viewing_at",
            "acknowledged_by",
            "approved_by",
            "approved_at",
            "denied_by",
            "denied_reason",
            "pr_consulted_by",
            "handling_review",
        )
    )
    req |= {
        "number": "2026-0001",
        "state": "submitted",
        "unit_full_name": "測試分局",
        "created_at": "2026-11-28T09:00:00+08:00",
        "applicant_unit": "刑事組",
        "applicant_title": "偵查員",
        "applicant_name": "周偵查員",
        "applicant_id": "D1",
        "duty_item": "巡邏",
        "range_start": "2026-11-28 00:00",
        "range_end": "2026-11-28 23:59",
        "kind": "copy",
        "reason": TYPED,
        "purpose": "investigation",
        "unit_supervisor": "林督導",
    }
    return req | changed


def test_what_a_person_typed_prints_as_text() -> None:
    html = forms.request_html(_request(), [{"id": 1, "relpath": "2026/11/28/a<b>.mp4"}])
    assert "<script>" not in html and "&lt;script&gt;" in html and "&amp; 案" in html
    assert "a&lt;b&gt;.mp4" in html
    assert "複製 copy" in html and "偵查犯罪 crime investigation" in html  # the regulation's terms
    assert ">None<" not in html  # a field not yet filled in prints as nothing


def test_a_field_the_catalog_did_not_give_is_an_error() -> None:
    req = _request()
    del req["unit_supervisor"]
    with pytest.raises(jinja2.UndefinedError):
        forms.request_html(req, [])


def test_every_form_prints_the_stations_time_just_after_local_midnight() -> None:
    """Issue 29: a copy made at 05:39 on 3 December in Taipei (21:39 UTC on the 2nd) prints as
    3 December on the register; a request made at 06:30 is dated that day; a period prints as
    minutes, not microseconds; every form names the zone once."""
    from zoneinfo import ZoneInfo

    taipei = ZoneInfo("Asia/Taipei")
    line = {
        "id": 1,
        "number": "2026-0001",
        "time": "2026-12-02T21:39:07.123456Z",
        "applicant_unit": "刑事組",
        "applicant_title": "偵查員",
        "applicant_name": "周偵查員",
        "recordings": [1],
        "kind": "copy",
        "purpose": "investigation",
        "approved_by": "P1",
        "approved_at": "2026-12-02T16:05:00Z",
        "pr_consulted_by": None,
        "custodian": "C1",
        "medium": "USB",
        "manifest_sha256": "ab" * 32,
        "acknowledged_at": "2026-12-02T22:00:00+00:00",
        "remarks": "",
    }
    register = forms.register_html([line], "2026-12-01", "2026-12-31", "測試分局", taipei)
    assert "2026-12-03 05:39" in register and "21:39" not in register
    assert register.count("2026-12-03") == 3  # the time, the approval day, the acknowledgement
    assert "Asia/Taipei (UTC+08:00)" in register

    req = _request(created_at="2026-11-28T22:30:00.000001Z",
                   range_start="2026-11-28T00:00:00+08:00",
                   range_end="2026-11-30T23:59:59.999999+08:00",
                   approved_at="2026-11-29T16:01:00Z", approved_by="P1")  # fmt: skip
    annex2 = forms.request_html(req, [], taipei)
    assert "2026-11-29" in annex2 and "2026-11-28T22" not in annex2  # 申請日期: Taipei's day
    assert "2026-11-28 00:00 ～ 2026-11-30 23:59" in annex2 and ".999999" not in annex2
    assert "2026-11-30 00:01" in annex2

    class Rec:
        id, duty_slot, officer_name, officer_badge, camera_id = 1, "0000-0600", "王", "A1", "C1"
        duty_slot_start = "2026-12-03T00:00:00+08:00"
        recorded_start, recorded_end = "2026-12-02T16:10:00Z", "2026-12-02T16:20:30Z"
        relpath, size, sha256 = "2026/12/03/x.mp4", 1, "cd" * 32
        ingested_at, cleared_at = "2026-12-02T22:00:00Z", "2026-12-02T22:01:00Z"
        retain_until, destroy_by = "2027-01-03", "2027-12-03"
        destroyed_at, destroyed_by = None, None

    annex1 = forms.catalog_html([Rec()], "勤務日 duty day 2026-12-03", "測試分局", taipei)  # type: ignore[list-item]
    assert "00:10:00–00:20:30" in annex1 and "16:10" not in annex1
    assert "2026-12-03 06:00" in annex1 and "2026-12-03 06:01" in annex1
