"""Every operation of the control protocol (camdock/protocol.py), driven through the real socket
against a real catalog: a role it allows gets an answer (or one of its declared error kinds), a
role it does not is refused with 403 and the refusal recorded (REG-7.1), and a malformed argument
is a 400 naming the field. The declarations, the daemon's handlers and the status table agree."""

from __future__ import annotations

import os
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from camdock import passwords, protocol
from camdock.adapters.control import Server
from camdock.config import Config, load
from camdock.core.access import Role
from camdock.station.control import HANDLERS, SOCKET, Control
from conftest import offload, write_recording
from staffotp import enrol
from stationcfg import write_config
from test_access import STAFF
from test_control import PASSWORD, ask, login, refusals

DAY = "2026-11-28"
SPAN = {"start": "2026-01-01T00:00:00+00:00", "end": "2027-01-01T00:00:00+00:00"}
NEW = {"from": f"{DAY}T09:00", "to": f"{DAY}T10:00", "officer": "A12345", "kind": "view",
       "purpose": "complaint", "reason": "a complaint", "unit_supervisor": "S1"}  # fmt: skip

# op → (who asks, arguments it accepts, malformed arguments, the field the 400 names)
CASES: dict[str, tuple[str | None, dict[str, Any], dict[str, Any], str]] = {
    "login": (None, {"staff": "C1", "password": PASSWORD}, {"staff": 1, "password": "x"}, "staff"),
    "logout": (None, {}, {"everything": True}, "everything"),
    "session": ("D1", {"active": 0}, {"active": "many"}, "active"),
    "form.forged": ("D1", {"url": "/logout"}, {"url": 5}, "url"),
    "catalog.search": ("C1", {"officer": "A12345"}, {"day": 5}, "day"),
    "recording.get": ("C1", {"id": 1}, {"id": "x"}, "id"),
    "requests.list": ("D1", {}, {"mine": "yes"}, "mine"),
    "request.get": ("C1", {"number": "2026-0999"}, {"number": 5}, "number"),
    "seals.list": ("S1", {}, {"day": DAY}, "day"),
    "holds.list": ("C1", {}, {"id": 1}, "id"),
    "retention.plan": ("C1", {}, {"today": DAY}, "today"),
    "attribution.queue": ("C1", {}, {"officer": "A12345"}, "officer"),
    "duty.log": ("C1", SPAN, {"start": 1, "end": "x"}, "start"),
    "register": ("C1", SPAN, {"start": "x"}, "end"),
    "audit.report": (
        "S1",
        {"from": "2026-01-01", "to": "2026-12-31"},
        {"from": "yesterday", "to": "2026-12-31"},
        "from",
    ),
    "video.open": ("C1", {"number": "2026-0999", "id": 1}, {"number": "n", "id": "x"}, "id"),
    "video.done": ("C1", {"viewing": 999, "sent": 0}, {"viewing": "x", "sent": 0}, "viewing"),
    "request.new": ("D1", NEW, {**NEW, "purpose": "review"}, "purpose"),
    "request.step": (
        "D1",
        {"number": "2026-0999", "action": "submit"},
        {"number": "n", "action": "schedule", "minutes": "many"},
        "minutes",
    ),
    "request.copy": ("C1", {"number": "2026-0999", "to": "/media/usb"}, {"number": "n"}, "to"),
    "seal.confirm": ("S1", {"day": DAY}, {"day": "28/11/2026"}, "day"),
    "hold.place": (
        "S1",
        {"kind": "investigation", "case": "115-7", "reason": "r", "recording": 1},
        {"kind": "nonsense"},
        "kind",
    ),
    "hold.release": ("P1", {"id": 999, "reason": "done"}, {"id": "one"}, "id"),
    "retention.destroy": ("C1", {"list": 1}, {"list": "all"}, "list"),
    "retention.propose": ("C1", {}, {"everything": True}, "everything"),
    "retention.approve": ("P1", {"list": 999}, {"list": "x"}, "list"),
    "retention.authorise": (
        "P1",
        {"ref": "115-3", "custodian": "C1", "until": "2026-01-01"},
        {"ref": "r", "custodian": "C1", "until": "x"},
        "until",
    ),
    "retention.revoke": ("P1", {"ref": "115-404", "reason": "r"}, {"ref": 5}, "ref"),
    "attribute": (
        "C1",
        {"recording": 1, "officer": "A12345"},
        {"recording": "r", "officer": "A12345"},
        "recording",
    ),
    # Issue 27: what the acting commands ask (commands/remote.py).
    "seal.create": ("C1", {"day": DAY}, {"day": "yesterday"}, "day"),
    "audit.resolve": ("A1", {"recording": 1, "reason": "r"}, {"recording": "one"}, "recording"),
    "audit.record": ("A1", {"problems": 0, "full": 1}, {"problems": "none"}, "problems"),
    # Issue 29: the console's day.
    "home": ("D1", {}, {"day": DAY}, "day"),
    "catalog.find": ("C1", {"officer": "王小", "from": DAY, "page": 1}, {"to": "2026"}, "to"),
    "custody.search": ("A1", {"person": "C1", "action": "view"}, {"recording": "x"}, "recording"),
}
AUDITOR = """
[[staff]]
id = "A1"
name = "吳稽核"
roles = ["auditor"]
"""
# Operations every role may call whose service still says no to an officer (and records it).
SERVICE_REFUSES = {
    "hold.place",
    "hold.release",
    "retention.destroy",
    "attribute",
    "seal.confirm",
    "seal.create",
    "retention.propose",
    "retention.approve",
    "retention.authorise",
}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Config, Path]]:
    tmp = tmp_path_factory.mktemp("ops")
    hashed = passwords.hash_password(PASSWORD)
    cfg = load(
        write_config(
            tmp, (STAFF + AUDITOR).replace('roles = ["', f'password_hash = "{hashed}"\nroles = ["')
        )
    )
    write_recording(tmp / "cam/DCIM/100MEDIA/20261128_091000_0001.MP4", 8192, 3)
    assert offload(tmp / "cam", [cfg.footage, cfg.backup], cfg.catalog).ok
    path = cfg.run_dir / SOCKET
    enrol(cfg)
    server = Server(path, Control(cfg).handle, frozenset({0, os.geteuid()}), slow=protocol.SLOW_OPS)
    server.start()
    try:
        yield cfg, path
    finally:
        server.close()


def _ask(path: Path, name: str, who: str | None, args: dict[str, Any]) -> dict[str, Any]:
    return ask(path, name, login(path, who) if who else None, **args)


def test_declarations_handlers_and_statuses_agree() -> None:
    assert set(HANDLERS) == {name for name, op in protocol.OPS.items() if op.session}
    assert set(CASES) == set(protocol.OPS), "every operation has its case here"
    assert set(protocol.STATUS) == set(protocol.ErrorKind)
    assert all(op.args.op is op for op in protocol.OPS.values())
    assert {"request.copy", "retention.destroy", "attribute", "audit.report",
            "seal.create"} == protocol.SLOW_OPS  # fmt: skip


def test_every_handler_declares_what_it_answers() -> None:
    """Issue 25: an operation's answer is typed on the daemon's side (station/answers.py, the
    catalog's rows), never a bare Any; mypy checks each handler against it."""
    for name, handler in HANDLERS.items():
        answer = typing.get_type_hints(handler)["return"]
        assert answer is not Any, f"{name}: {handler.__name__} answers Any"


@pytest.mark.parametrize("name", sorted(CASES))
def test_an_allowed_role_is_answered(daemon: tuple[Config, Path], name: str) -> None:
    _, path = daemon
    who, good, _, _ = CASES[name]
    doc = _ask(path, name, who, good)
    declared = {protocol.STATUS[k] for k in protocol.OPS[name].errors}
    assert doc["ok"] or (doc["status"] in declared and doc["kind"]), doc


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_malformed_argument_is_a_400_naming_the_field(
    daemon: tuple[Config, Path], name: str
) -> None:
    _, path = daemon
    who, _, bad, field = CASES[name]
    doc = _ask(path, name, who, bad)
    assert doc["status"] == 400 and doc["kind"] == "bad_request", doc
    assert doc["error"].startswith(f"{field}: "), doc


@pytest.mark.parametrize(
    "name",
    sorted(n for n, op in protocol.OPS.items() if Role.OFFICER not in op.roles)
    + sorted(SERVICE_REFUSES),
)
def test_a_role_not_allowed_is_refused_and_recorded(daemon: tuple[Config, Path], name: str) -> None:
    cfg, path = daemon
    before = len(refusals(cfg))
    doc = _ask(path, name, "D1", CASES[name][1])  # an officer
    assert doc["status"] == 403 and doc["kind"] == "forbidden", doc
    found = refusals(cfg)
    assert len(found) == before + 1 and found[-1]["actor"] == "周偵查員 (D1)"


def test_wire_arguments_round_trip() -> None:
    for name, (_, good, _, _) in CASES.items():
        args = protocol.OPS[name].args.parse(good)
        assert protocol.OPS[name].args.parse(args.args()) == args


def test_each_custody_entry_names_its_channel(daemon: tuple[Config, Path]) -> None:
    """Issue 27: the console's acts are channel console (the default), the CLI's say cli, a
    channel the daemon keeps for itself cannot be claimed; the channel is in the entry's hash."""
    from camdock.adapters.control import call
    from camdock.catalog import custody, open_readonly

    cfg, path = daemon
    token = login(path, "A1")
    doc, _ = call(path, {"op": "audit.record", "token": token, "args": {"problems": 0},
                         "channel": "cli"})  # fmt: skip
    assert doc["ok"], doc
    assert ask(path, "audit.record", token, problems=1)["ok"]
    claimed, _ = call(path, {"op": "audit.record", "token": token, "args": {"problems": 2},
                             "channel": "daemon"})  # fmt: skip
    assert claimed["status"] == 400 and claimed["error"].startswith("channel")
    db = open_readonly(cfg.catalog)
    try:
        got = db.execute("SELECT actor, channel, details FROM custody_log WHERE action = 'audit' "
                         "ORDER BY id").fetchall()  # fmt: skip
        assert [(a, c) for a, c, _ in got][-2:] == [
            ("吳稽核 (A1)", "cli"),
            ("吳稽核 (A1)", "console"),
        ]
        assert '"problems":2' not in "".join(d.replace(" ", "") for _, _, d in got)
        assert custody.verify(db) == []
    finally:
        db.close()
