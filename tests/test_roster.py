"""Rosters from the station server are hostile input: every malformed one is a listed
rejection, never an exception (issue 12; the contract is docs/asyncapi.yaml's Roster)."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from camdock.core.roster import MAX_BYTES, Registry, RosterError, parse

REGISTRY = Registry("Unit", frozenset({"A12345", "B23456"}), frozenset({"CAM0001", "CAM0002"}))
GOOD = {
    "version": 1,
    "date": "2026-11-29",
    "assignments": [{"camera": "CAM0001", "officer": "B23456"}],
}


def roster(**changes: object) -> bytes:
    return json.dumps({**GOOD, **changes}).encode()  # \u escapes, as a server may send


def test_a_good_roster_parses() -> None:
    r = parse(roster(), REGISTRY)
    assert r.date == "2026-11-29" and r.assignments == {"CAM0001": "B23456"}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (roster(assignments=[{"camera": ["CAM0001"], "officer": "B23456"}]), "both strings"),
        (roster(assignments=[{"camera": "CAM0001", "officer": {"b": 1}}]), "both strings"),
        (
            b'{"version": 1, "date": "2026-11-29", "assignments": '
            + b"[" * 5000
            + b"]" * 5000
            + b"}",
            "nests",
        ),
        (
            b'{"version": 1, "date": "2026-11-29", "assignments": [], "issued": '
            + b"9" * 5000
            + b"}",
            "not JSON",
        ),
        (roster(date="xxxxxxxxxx"), "date: must be a day"),
        (roster(date="2026-02-30"), "date: must be a day"),
        (roster(version=True), "version: must be 1"),
        (roster(officers=[{"badge": "C1", "name": "\ud800"}]), "not valid UTF-8"),
        (roster(officers=[{"badge": "..", "name": "x"}]), "no character a file name can keep"),
        (roster(duty_slots="08:00"), "duty_slots"),
        (b"x" * (MAX_BYTES + 1), "limit"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "JSON object"),
    ],
)
def test_malformed_rosters_are_rejected_with_a_reason(payload: bytes, expected: str) -> None:
    with pytest.raises(RosterError) as err:
        parse(payload, REGISTRY)
    assert expected in "; ".join(err.value.problems)


def test_names_are_kept_in_nfc() -> None:
    """The same officer typed two ways (NFD from one system, NFC from another) is one officer."""
    nfd = "Jose\u0301"
    r = parse(roster(officers=[{"badge": "C1", "name": nfd}], assignments=[]), REGISTRY)
    assert r.officers[0].name == "Jos\u00e9"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda c: st.lists(c) | st.dictionaries(st.text(), c),
    max_leaves=20,
)


@given(JSON)
def test_no_json_value_raises_anything_but_a_rejection(value: object) -> None:
    for payload in (value, {**GOOD, "assignments": value}, {**GOOD, "officers": value}):
        with contextlib.suppress(RosterError):
            parse(json.dumps(payload).encode(), REGISTRY)
