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
