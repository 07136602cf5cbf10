"""Two people at once (issue 26, item 1): every state change is a compare-and-set. Two
approvers, two releasers, two destroyers, two supervisors acting on the same thing at the same
moment: it happens once, the other is told who did it first and when (409 on the control
socket), and that refusal is recorded once.

The race is forced, not hoped for: a barrier holds each side just before the write it would
make, after every check it makes beforehand, so both have read the state the action depends on
before either writes. Code that checks outside its write transaction does it twice, every time;
no timing is asserted. The separate-process test races the real ``camdock`` commands."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from camdock.catalog import holds, open_catalog, seals
from camdock.catalog import requests as request_rows
from camdock.catalog import retention as retention_rows
from camdock.config import Config, load
from camdock.core.retention import HoldKind
from camdock.errors import Conflict, ExitCode
from camdock.services import access, retention
from camdock.services.seal import Sealing, confirm_day
from conftest import camdock_cmd
from stationd import control_server, password_file
from test_access import _station
from test_control import ask, daemon, login  # noqa: F401 - daemon is the fixture

TAIPEI = ZoneInfo("Asia/Taipei")
BOTH = 2


def _entries(cfg: Config, action: str) -> list[dict[str, Any]]:
    con = sqlite3.connect(cfg.catalog)
    try:
        found = con.execute("SELECT actor, time, details FROM custody_log WHERE action = ? "
                            "ORDER BY id", (action,))  # fmt: skip
        return [{"actor": a, "time": t, **json.loads(d)} for a, t, d in found]
    finally:
        con.close()


@pytest.fixture
def both_before(monkeypatch: pytest.MonkeyPatch) -> Callable[[Any, str], threading.Barrier]:
    """Make ``module.name`` wait until both sides have called it: both have checked what they
    check beforehand, neither has written."""

    def hold(module: Any, name: str) -> threading.Barrier:
        barrier = threading.Barrier(BOTH, timeout=60)
        original = getattr(module, name)

        def waiting(*args: Any, **kw: Any) -> Any:
            barrier.wait()
            return original(*args, **kw)

        monkeypatch.setattr(module, name, waiting)
        return barrier

    return hold


def _race(*sides: Callable[[], Any]) -> list[Any]:
    """Run each side on its own thread (each opens its own catalog); their results, or the
    exceptions they raised."""

    def outcome(side: Callable[[], Any]) -> Any:
        try:
            return side()
        except Exception as exc:  # noqa: BLE001 - the outcome is what is asserted
            return exc

    with ThreadPoolExecutor(len(sides)) as pool:
        return list(pool.map(outcome, sides))


def _submitted(cfg: Config, count: int) -> list[str]:
    """``count`` requests by D1, submitted, waiting for an approver."""
    db = open_catalog(cfg.catalog)
    try:
        who = access.acting(cfg, "D1", db)
        start = datetime(2026, 11, 28, tzinfo=TAIPEI)
        numbers = []
        for _ in range(count):
            form = {"kind": "copy", "reason": "傷害案調查", "purpose": "investigation",
                    "duty_item": "巡邏"}  # fmt: skip
            scope = ("A12345", None, start, start + timedelta(days=1))
            req = access.new_request(db, cfg, who, form, scope, None)
            access.step(db, who, req.number, "submit", None)
            numbers.append(req.number)
        return numbers
    finally:
        db.close()


def _on_catalog(cfg: Config, work: Callable[[Any], Any]) -> Callable[[], Any]:
    """``work(db)`` on a connection of its own, as each person's process has."""

    def act() -> Any:
        db = open_catalog(cfg.catalog)
        try:
            return work(db)
        finally:
            db.close()

    return act


def _step(cfg: Config, by: str, number: str, action: str, **kw: Any) -> Callable[[], Any]:
    return _on_catalog(
        cfg, lambda db: access.step(db, access.acting(cfg, by, db), number, action, None, **kw)
    )


def _local(at: str) -> str:
    return f"{datetime.fromisoformat(at).astimezone(TAIPEI):%H:%M}"


@pytest.fixture
def station(tmp_path: Path) -> Iterator[Config]:
    yield load(_station(tmp_path))


def test_ten_requests_approved_by_two_approvers_at_once_are_each_approved_once(
    station: Config, both_before: Any
) -> None:
    cfg = station
    numbers = _submitted(cfg, 10)
    both_before(request_rows, "change")
    for n in numbers:
        won = _race(_step(cfg, "P1", n, "approve"), _step(cfg, "P2", n, "approve"))
        lost = [r for r in won if isinstance(r, Exception)]
        assert len(lost) == 1 and isinstance(lost[0], Conflict), won
        assert lost[0].exit_code == ExitCode.NOPERM
    approvals = _entries(cfg, "approve")
    assert sorted(a["request"] for a in approvals) == sorted(numbers)  # once each
    conflicts = [r for r in _entries(cfg, "refused") if r.get("conflict")]
    assert sorted(r["request"] for r in conflicts) == sorted(numbers)  # one per losing attempt
    for r in conflicts:
        first = next(a for a in approvals if a["request"] == r["request"])
        assert (r["first_by"], r["first_at"]) == (first["actor"], first["time"])
        assert r["actor"] != first["actor"] and r["attempted"] == "approve"


def test_approve_and_deny_at_once_one_wins(station: Config, both_before: Any) -> None:
    cfg = station
    numbers = _submitted(cfg, 3)
    both_before(request_rows, "change")
    for n in numbers:
        out = _race(_step(cfg, "P1", n, "approve"), _step(cfg, "P2", n, "deny", reason="不符"))
        assert sum(isinstance(r, Conflict) for r in out) == 1, out
    decided = _entries(cfg, "approve") + _entries(cfg, "deny")
    assert sorted(d["request"] for d in decided) == sorted(numbers)
    db = open_catalog(cfg.catalog)
    try:
        for n in numbers:
            req = request_rows.get(db, n)
            assert req is not None
            assert (req.approved_by is None) != (req.denied_by is None)  # exactly one decided
    finally:
        db.close()


def test_a_second_approval_later_names_the_first_in_local_time(station: Config) -> None:
    cfg = station
    (n,) = _submitted(cfg, 1)
    _step(cfg, "P1", n, "approve")()
    with pytest.raises(Conflict) as caught:
        _step(cfg, "P2", n, "approve")()
    at = _entries(cfg, "approve")[0]["time"]
    told = caught.value.told(TAIPEI)
    assert f"request {n} is already approved by 王分局長 (P1) at {_local(at)}" in told


def test_a_hold_released_by_two_at_once_is_released_once(station: Config,
                                                          both_before: Any) -> None:  # fmt: skip
    cfg = station
    keeping = retention.Keeping()
    db = open_catalog(cfg.catalog)
    try:
        hold_id = retention.place_hold(db, keeping, "林督導 (S1)", case="113-偵-0042",
                                       kind=HoldKind.INVESTIGATION, reason="偵查中",
                                       recording=1)  # fmt: skip
    finally:
        db.close()
    both_before(holds, "release")

    def release(by: str) -> Callable[[], Any]:
        return _on_catalog(cfg, lambda db: retention.release_hold(db, keeping, hold_id, by, "結案"))

    out = _race(release("林督導 (S1)"), release("王分局長 (P1)"))
    lost = [r for r in out if isinstance(r, Exception)]
    assert len(lost) == 1 and isinstance(lost[0], Conflict), out
    released = _entries(cfg, "hold-release")
    assert len(released) == 1
    assert lost[0].by == released[0]["actor"] and lost[0].at is not None
    conflicts = [r for r in _entries(cfg, "refused") if r.get("conflict")]
    assert [(r["attempted"], r["hold"]) for r in conflicts] == [("release", hold_id)]


def test_one_recording_destroyed_by_two_at_once_is_destroyed_once(
    station: Config, both_before: Any
) -> None:
    cfg = station
    both_before(retention_rows, "plan_destruction")
    later = date(2028, 1, 1)  # past every recording's retention window

    def destroy(by: str) -> Callable[[], Any]:
        return _on_catalog(
            cfg, lambda db: retention.destroy(db, retention.Keeping(), later, by, recordings=[2])
        )

    out = _race(destroy("陳保管 (C1)"), destroy("林督導 (S1)"))
    lost = [r for r in out if isinstance(r, Exception)]
    assert len(lost) == 1 and isinstance(lost[0], Conflict), out
    gone = [d for d in _entries(cfg, "destroy")]
    assert [d["actor"] for d in gone] == [lost[0].by]  # one destruction, by the winner
    refused = [r for r in _entries(cfg, "refused") if r.get("conflict")]
    assert [(r["attempted"], r["recording"]) for r in refused] == [("destroy", 2)]


def test_a_seal_confirmed_by_two_at_once_is_confirmed_once(station: Config,
                                                           both_before: Any) -> None:  # fmt: skip
    cfg = station
    day = date(2026, 11, 28)
    db = open_catalog(cfg.catalog)
    try:  # a verified seal of the day, as the sealing records it
        row = seals.Archive(
            day.isoformat(), 1, str(cfg.footage), "2026/11/20261128-1.7z", "x", "k", "陳保管 (C1)"
        )
        sid = seals.begin(db, row)
        done = [seals.Written(sid, 1, row.destination, row.path, "k", "0" * 64, 1)]
        seals.record_sealed(db, day, done, [], "陳保管 (C1)", seals.dirty(db).get(str(day)), None)
    finally:
        db.close()
    both_before(seals, "confirm")

    def confirm(by: str) -> Callable[[], Any]:
        return _on_catalog(cfg, lambda db: confirm_day(db, Sealing(None), day, by))

    out = _race(confirm("林督導 (S1)"), confirm("王分局長 (P1)"))
    lost = [r for r in out if isinstance(r, Exception)]
    assert len(lost) == 1 and isinstance(lost[0], Conflict), out
    confirmed = _entries(cfg, "seal-confirm")
    assert len(confirmed) == 1 and lost[0].by == confirmed[0]["actor"]
    assert [r["attempted"] for r in _entries(cfg, "refused") if r.get("conflict")] == ["confirm"]


# ---------------------------------------------------------------------------------------------
# The control socket: two logged-in approvers


def test_two_approvers_on_the_console_at_once_one_is_answered_409(
    daemon: tuple[Config, Path],  # noqa: F811 - the fixture
    both_before: Any,
) -> None:
    cfg, path = daemon
    officer = login(path, "D1")
    numbers = []
    for _ in range(10):
        made = ask(path, "request.new", officer, kind="copy", reason="傷害案調查",
                   purpose="investigation", duty_item="巡邏", unit_supervisor="",
                   officer="A12345", camera="", **{"from": "2026-11-28T00:00",
                                                   "to": "2026-11-28T23:59"})  # fmt: skip
        assert made["ok"], made
        n = made["result"]["number"]
        assert ask(path, "request.step", officer, number=n, action="submit")["ok"]
        numbers.append(n)
    p1, p2 = login(path, "P1"), login(path, "P2")
    both_before(request_rows, "change")
    for n in numbers:
        out = _race(*(lambda t=t, n=n: ask(path, "request.step", t, number=n, action="approve")
                      for t in (p1, p2)))  # fmt: skip
        assert sorted(r["ok"] for r in out) == [False, True], out
        lost = next(r for r in out if not r["ok"])
        first = next(a for a in _entries(cfg, "approve") if a["request"] == n)
        assert lost["status"] == 409, lost
        assert f"already approved by {first['actor']} at {_local(first['time'])}" in lost["error"]
    assert sorted(a["request"] for a in _entries(cfg, "approve")) == sorted(numbers)
    conflicts = [r for r in _entries(cfg, "refused") if r.get("conflict")]
    assert sorted(r["request"] for r in conflicts) == sorted(numbers)


# ---------------------------------------------------------------------------------------------
# Separate processes: the real commands


@pytest.mark.slow
def test_two_approvers_running_camdock_at_once_approve_each_request_once(
    station: Config, tmp_path: Path
) -> None:
    cfg = station
    numbers = _submitted(cfg, 10)
    config = str(tmp_path / "camdock.toml")
    pw = str(password_file(tmp_path))  # issue 27: each approver authenticated by the daemon
    with control_server(Path(config)) as served:
        # Ten logins of one approver in the same 30 s: each with its own recovery code (a
        # one-time code is refused when replayed within its window).
        otp = _recovery_codes(served, tmp_path, ("P1", "P2"), len(numbers))
        procs = {(n, by): subprocess.Popen(
                     camdock_cmd("request", "approve", n, "--by", by, "--config", config,
                                 "--password-file", pw, "--otp-file", str(otp[by][i])),
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for i, n in enumerate(numbers) for by in ("P1", "P2")}  # fmt: skip
        results = {k: (p.wait(120), p.communicate()[1]) for k, p in procs.items()}
    for n in numbers:
        codes = sorted(results[(n, by)][0] for by in ("P1", "P2"))
        assert codes == [0, ExitCode.NOPERM], (n, results)
        loser = next(e for (m, _), (c, e) in results.items() if m == n and c)
        assert "already approved by" in loser and "Traceback" not in loser
    assert sorted(a["request"] for a in _entries(cfg, "approve")) == sorted(numbers)
    conflicts = [r for r in _entries(cfg, "refused") if r.get("conflict")]
    assert sorted(r["request"] for r in conflicts) == sorted(numbers)


def _recovery_codes(cfg: Config, where: Path, people: tuple[str, ...],
                    count: int) -> dict[str, list[Path]]:  # fmt: skip
    """Each of ``people`` enrolled with ``count`` recovery codes, each code in a 0600 file."""
    from camdock.catalog import staff as staff_rows
    from staffotp import secret

    files: dict[str, list[Path]] = {}
    db = open_catalog(cfg.catalog)
    try:
        for who in people:
            codes = [f"{who}-{i:04d}-recovery" for i in range(count)]
            staff_rows.enrol_totp(db, who, secret(who), codes, "test")
            files[who] = []
            for i, code in enumerate(codes):
                path = where / f"otp-{who}-{i}"
                path.write_text(code + "\n", encoding="utf-8")
                path.chmod(0o600)
                files[who].append(path)
    finally:
        db.close()
    return files
