"""The pre-shift function test (REG-3.2): the protocol codec, the link against cameras on real
pseudo-terminals, every check's verdict, and the button → test → LED → records → spare path."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from camdock import clock
from camdock.camera.camdock_v1 import ProtocolV1Driver
from camdock.camera.link import CameraLink, LinkSettings
from camdock.camera.protocol import (
    Decoder,
    ProtocolError,
    crc16,
    encode_request,
    encode_response,
    parse_line,
)
from camdock.core.bay import Phase
from camdock.core.selftest import Answers, Policy, verdict
from camdock.errors import CameraError, CameraTimeout, ExitCode
from camdock.model import Identity
from camdock.services.selftest import run_function_test
from camdock.sim.cameras import CameraState, SimCamera
from camdock.sim.hotplug import fill_camera
from test_station import BUTTON, RED, running

BAY2_GREEN = 9  # bay 2's RGB LED is on pins 8, 9, 10 (stationcfg)

# --- the codec ---------------------------------------------------------------------------------


def test_crc_is_ccitt_false() -> None:
    assert crc16(b"123456789") == 0x29B1  # the standard check value


values = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
keys = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)


@given(
    req_id=st.integers(1, 65535), fields=st.dictionaries(keys, values, max_size=5), ok=st.booleans()
)
def test_round_trip(req_id: int, fields: dict[str, str], ok: bool) -> None:
    """Every frame the encoder builds parses back to what was encoded; one that would be longer
    than a line may be is refused by the encoder (found by this test: it used to be sent, and
    dropped as garbage by the receiver)."""
    try:
        encode_response(req_id, ok, fields)
        encode_request(req_id, "STORAGE?", fields)
    except ProtocolError as exc:
        assert "too long" in str(exc)
        return
    frame = parse_line(encode_response(req_id, ok, fields).rstrip(b"\r\n"))
    assert (frame.id, frame.ok, frame.fields) == (req_id, ok, fields)
    req = parse_line(encode_request(req_id, "STORAGE?", fields).rstrip(b"\r\n"))
    assert (req.direction, req.verb, req.fields) == (">", "STORAGE?", fields)


@given(noise=st.binary(max_size=600), fields=st.dictionaries(keys, values, max_size=3))
def test_garbage_never_becomes_a_frame_and_the_decoder_resyncs(
    noise: bytes, fields: dict[str, str]
) -> None:
    try:
        good = encode_response(7, True, fields)
    except ProtocolError:  # longer than a line: never sent (test_round_trip)
        return
    d = Decoder()
    frames = d.feed(noise + b"\n") + d.feed(good)
    assert frames[-1].fields == fields and frames[-1].id == 7
    assert all(f.id == 7 or f.direction in "<>" for f in frames)


@given(pos=st.integers(1, 30), bit=st.integers(0, 6))
def test_a_flipped_bit_is_detected(pos: int, bit: int) -> None:
    line = bytearray(encode_response(3, True, {"percent": "87", "health": "good"}).rstrip(b"\r\n"))
    pos = min(pos, len(line) - 6)
    line[pos] ^= 1 << bit
    with pytest.raises(ProtocolError):  # CRC-16 catches every single-bit error
        parse_line(bytes(line))


# --- the link against cameras on pseudo-terminals ---------------------------------------------

FAST = LinkSettings(timeout=0.4, retries=1, selftest_timeout=2)


async def test_link_survives_garbage_and_reports_silence() -> None:
    cam = SimCamera(CameraState(garbage=True))
    link = CameraLink(cam.port, FAST)
    try:
        assert (await link.request("ID"))["serial"] == "SN0001"
        assert (await link.request("BATTERY?"))["percent"] == "95"
        with pytest.raises(CameraError, match="BADCMD"):
            await link.request("FORMAT")
        cam.state.no_answer = True
        with pytest.raises(CameraTimeout, match="did not answer"):
            await link.request("ID")
        cam.state.no_answer, cam.state.slow = False, 1.0  # slower than the timeout
        with pytest.raises(CameraTimeout):
            await link.request("ID")
    finally:
        link.close()
        cam.close()


POLICY = Policy(min_battery=80, max_drift_after_sync=2.0, longest_slot_seconds=8 * 3600)


async def _test(state: CameraState) -> tuple[Answers, Any]:
    cam = SimCamera(state)
    link = CameraLink(cam.port, FAST)
    try:
        return await run_function_test(
            ProtocolV1Driver(link), POLICY, lambda s: s == "SN0001", selftest_timeout=2
        )
    finally:
        link.close()
        cam.close()


async def test_a_healthy_camera_passes_and_its_clock_is_synced() -> None:
    answers, v = await _test(CameraState(clock_offset=-187.0))  # three minutes slow
    assert v.passed, v.summary()
    assert answers.drift_before is not None and -190 < answers.drift_before < -184
    assert answers.drift_after is not None and abs(answers.drift_after) < 0.5


@pytest.mark.parametrize(
    ("state", "check", "reason"),
    [
        (CameraState(battery=42), "battery", "42% < 80%"),
        (CameraState(health="poor"), "battery", "health poor"),
        (
            CameraState(checks={"sensor": "fail", "mic": "pass", "ir": "pass", "clip": "pass"}),
            "camera self-test",
            "failed: sensor",
        ),
        (CameraState(set_error=300.0), "clock", "off after sync"),
        (CameraState(free=2 * 10**9), "storage", "not enough free storage"),
        (CameraState(errors=3), "storage", "3 errors"),
        (CameraState(pending=4), "offloaded", "dock for offload first"),
        (CameraState(serial="SN9999"), "identity", "not a registered camera"),
        (CameraState(no_answer=True), "battery", "did not answer"),
        (CameraState(unplug_after=3), "camera self-test", "camera"),
    ],
)
async def test_each_fault_fails_its_check_with_a_reason(
    state: CameraState, check: str, reason: str
) -> None:
    _, v = await _test(state)
    assert not v.passed
    failed = {c.name: c.reason for c in v.failed}
    assert check in failed and reason in failed[check], failed


async def test_garbage_on_the_line_is_no_pass_and_no_fail() -> None:
    """Noise and corrupt frames around every answer: the CRC drops them, the real answers win."""
    _, v = await _test(CameraState(garbage=True))
    assert v.passed, v.summary()


def test_firmware_allow_list() -> None:
    a = Answers(identity=Identity("X", "S", "1.0"), registered=True)
    v = verdict(a, Policy(allowed_firmware=("2.4.1",)))
    assert next(c for c in v.checks if c.name == "firmware").reason.startswith("firmware 1.0")


# --- the station: button → test → LED → records → spare → loan ---------------------------------


async def dock_and_press(h: Any, cam: SimCamera, vol: Path) -> None:
    """Dock bay 1's camera with its command port, let it offload, press the button once."""
    h.hot.dock("1-1", "SN0001", vol, tty=cam.port)
    await h.until(lambda: h.bay(1).state.phase is Phase.DONE)
    h.factory.pin(BUTTON).drive_low()
    h.factory.pin(BUTTON).drive_high()


def _rows(catalog: Path, sql: str) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(catalog)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


async def test_button_runs_the_test_and_a_failure_points_to_a_spare(tmp_path: Path) -> None:
    """REG-3.2 end to end: bay 2 holds a spare that passed its own test; bay 1's camera fails
    (sensor); the failure is in the duty log and the events, bay 2 blinks "take me", the loan is
    recorded, and the spare's footage is then filed under the borrowing officer (REG-4.2.4)."""
    extra = '\n[[cameras]]\nserial = "SPARE1"\nid = "SPARE01"\nspare = true\n'
    good = SimCamera(CameraState(serial="SPARE1"))
    bad = SimCamera(
        CameraState(checks={"sensor": "fail", "mic": "pass", "ir": "pass", "clip": "pass"})
    )
    empty1, empty2 = tmp_path / "v1", tmp_path / "v2"
    empty1.mkdir()
    empty2.mkdir()
    try:
        async with running(tmp_path, config_extra=extra) as h:
            h.hot.dock("1-2", "SPARE1", empty2, tty=good.port)
            h.hot.dock("1-1", "SN0001", empty1, tty=bad.port)
            await h.until(lambda: h.bay(1).state.phase is Phase.DONE)  # nothing to offload
            await h.until(lambda: h.bay(2).state.phase is Phase.DONE)

            def press(pin: int) -> None:
                h.factory.pin(pin).drive_low()
                h.factory.pin(pin).drive_high()

            press(11)  # bay 2's button: the spare is tested first (it passes)
            await h.until(lambda: h.bay(2).state.phase is Phase.TEST_PASSED)
            press(BUTTON)  # bay 1: the officer's own camera
            await h.until(lambda: h.bay(1).state.phase is Phase.TESTING)
            await h.until(lambda: h.bay(1).state.phase is Phase.TEST_FAILED)
            assert "sensor" in h.bay(1).state.message
            await h.until(lambda: h.bay(2).state.phase is Phase.TAKE_ME)
            since = len(h.pin_values(BAY2_GREEN))
            await h.until(lambda: 1.0 in h.pin_values(RED))  # bay 1: red long flash
            # bay 2: "take me", a quadruple green flash (on four times a cycle)
            await h.until(lambda: h.pin_values(BAY2_GREEN)[since:].count(1.0) >= 4)

            tests = _rows(h.cfg.catalog, "SELECT camera_id, passed FROM selftests ORDER BY id")
            assert tests == [("SPARE01", 1), ("CAM0001", 0)]
            log = _rows(
                h.cfg.catalog,
                "SELECT officer_name, camera_id, entry, spare_camera_id FROM duty_log",
            )
            assert log[0][:2] == ("王小明", "CAM0001") and log[0][3] == "SPARE01"
            assert "failed its pre-shift test" in log[0][2] and "REG-3.2" in log[0][2]
            loans = _rows(h.cfg.catalog, "SELECT spare_camera_id, officer_badge FROM loans")
            assert loans == [("SPARE01", "A12345")]
            events = [json.loads(p) for (p,) in _rows(h.cfg.catalog, "SELECT payload FROM outbox")]
            kinds = [e["type"] for e in events]
            assert "selftest-passed" in kinds and "spare-assigned" in kinds
            failed = next(e for e in events if e["type"] == "selftest-failed")
            assert failed["data"]["spare"] == "SPARE01"
            assert "Report it for repair" in failed["data"]["supervisor_notice"]

            # The officer takes the spare, records a shift (after the loan: attribution is by
            # the recording's time, REG-4.2.4), and docks it back.
            h.hot.undock("1-2")
            await h.until(lambda: h.bay(2).state.phase is Phase.EMPTY)
            shift = clock.now().astimezone(h.cfg.tz).replace(tzinfo=None, microsecond=0)
            fill_camera(empty2, files=1, size=1000, seed=5, start=shift + timedelta(seconds=2))
            h.hot.dock("1-2", "SPARE1", empty2, tty=good.port)
            await h.until(lambda: h.bay(2).state.phase is Phase.DONE and h.bay(2).offload.report)
        names = [p.name for p in (tmp_path / "footage").rglob("*.mp4")]
        assert names and all("_王小明_A12345_SPARE01_" in n for n in names)
        assert _rows(h.cfg.catalog, "SELECT count(*) FROM loans WHERE returned_at IS NULL") == [
            (0,)
        ]
    finally:
        good.close()
        bad.close()


async def test_no_spare_and_presses_that_cannot_test(tmp_path: Path) -> None:
    cam = SimCamera(CameraState(battery=10))
    vol = tmp_path / "v1"
    vol.mkdir()
    try:
        async with running(tmp_path) as h:
            h.factory.pin(BUTTON).drive_low()
            h.factory.pin(BUTTON).drive_high()  # empty bay: refused
            await h.until(lambda: any(s.notice for s in h.bay(1).history))
            await dock_and_press(h, cam, vol)
            await h.until(lambda: h.bay(1).state.phase is Phase.TEST_FAILED)
            assert "battery 10%" in h.bay(1).state.message
            await asyncio.sleep(0.2)
        entry = _rows(h.cfg.catalog, "SELECT entry, spare_camera_id FROM duty_log")
        assert "No tested spare was available" in entry[0][0] and entry[0][1] is None
    finally:
        cam.close()


async def test_a_camera_with_no_officer_still_gets_a_spare(tmp_path: Path) -> None:
    """REG-3.2: a pool camera (no assigned officer) that fails still points the officer at a
    tested spare; the duty log says so, and no loan is recorded (nobody to file under)."""
    extra = (
        '\n[[cameras]]\nserial = "SPARE1"\nid = "SPARE01"\nspare = true\n'
        '\n[[cameras]]\nserial = "POOL9"\nid = "CAM0009"\n'
    )
    good = SimCamera(CameraState(serial="SPARE1"))
    bad = SimCamera(
        CameraState(
            serial="POOL9", checks={"sensor": "pass", "mic": "fail", "ir": "pass", "clip": "pass"}
        )
    )
    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    v1.mkdir()
    v2.mkdir()
    try:
        async with running(tmp_path, config_extra=extra) as h:
            h.hot.dock("1-2", "SPARE1", v2, tty=good.port)
            h.hot.dock("1-1", "POOL9", v1, tty=bad.port)
            await h.until(lambda: {h.bay(1).state.phase, h.bay(2).state.phase} == {Phase.DONE})
            for pin, bay, phase in ((11, 2, Phase.TEST_PASSED), (BUTTON, 1, Phase.TEST_FAILED)):
                h.factory.pin(pin).drive_low()
                h.factory.pin(pin).drive_high()
                await h.until(lambda b=bay, p=phase: h.bay(b).state.phase is p)
            await h.until(lambda: h.bay(2).state.phase is Phase.TAKE_ME)
            assert "the officer of CAM0009" in h.bay(2).state.message
        entry = _rows(h.cfg.catalog, "SELECT entry, spare_camera_id, officer_name FROM duty_log")
        assert len(entry) == 1 and entry[0][1:] == ("SPARE01", None)
        assert "Spare SPARE01 (bay 2) issued" in entry[0][0]
        assert "No loan recorded" in entry[0][0]
        assert _rows(h.cfg.catalog, "SELECT count(*) FROM loans") == [(0,)]
    finally:
        good.close()
        bad.close()


def test_selftest_command_on_any_machine(tmp_path: Path) -> None:
    from conftest import camdock_cmd, run
    from stationcfg import write_config

    cam = SimCamera(CameraState(pending=2))
    try:
        res = run(
            camdock_cmd(
                "selftest", "--port", cam.port, "--json", "--config", str(write_config(tmp_path))
            )
        )
    finally:
        cam.close()
    assert res.returncode == 1, res.stderr
    out = json.loads(res.stdout)
    assert not out["passed"] and out["identity"]["serial"] == "SN0001"
    failed = {c["name"]: c["reason"] for c in out["checks"] if not c["ok"]}
    assert failed == {"offloaded": "dock for offload first"}
    gone = run(camdock_cmd("selftest", "--port", str(tmp_path / "no-such-tty")))
    assert gone.returncode == ExitCode.UNAVAILABLE == 69  # the README's table (issue 29)
    assert gone.stderr.count("no camera at") == 1 and gone.stdout == ""


async def test_camera_pulled_mid_test_is_interrupted_not_logged(tmp_path: Path) -> None:
    cam = SimCamera(CameraState(slow=0.3))
    vol = tmp_path / "v1"
    vol.mkdir()
    try:
        async with running(tmp_path) as h:
            await dock_and_press(h, cam, vol)
            await h.until(lambda: h.bay(1).state.phase is Phase.TESTING)
            h.hot.undock("1-1")
            cam.close()  # the cable is gone
            await h.until(lambda: h.bay(1).state.phase is Phase.INTERRUPTED)
            await h.until(lambda: bool(_rows(h.cfg.catalog, "SELECT id FROM selftests")), 15)
        assert _rows(h.cfg.catalog, "SELECT passed FROM selftests") == [(0,)]
        assert _rows(h.cfg.catalog, "SELECT count(*) FROM duty_log") == [(0,)]
    finally:
        cam.close()


@pytest.mark.parametrize(
    ("state", "check", "reason"),
    [
        (CameraState(undecodable=True), "identity", "corrupt answer"),
        (CameraState(free=10**350), "storage", "corrupt storage answer"),
        (CameraState(battery=10**300), "battery", "corrupt battery answer"),
    ],
)
def test_a_camera_answering_garbage_with_a_good_crc_fails_with_a_reason(
    state: CameraState, check: str, reason: str
) -> None:
    """Issue 12: undecodable field bytes (UnicodeDecodeError) and 300-digit numbers
    (OverflowError) ended `camdock selftest` in a traceback; they are corrupt answers."""
    from conftest import camdock_cmd, run

    cam = SimCamera(state)
    try:
        res = run(camdock_cmd("selftest", "--port", cam.port, "--json"))
    finally:
        cam.close()
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    failed = {c["name"]: c["reason"] for c in json.loads(res.stdout)["checks"] if not c["ok"]}
    assert reason in failed[check], failed


async def test_a_silent_camera_fails_in_seconds_and_is_recorded(tmp_path: Path) -> None:
    """An officer stands at the bay: a camera that never answers fails after the first
    unanswered step (not after every step's retries, ~85 s), and the outcome is recorded."""
    cam = SimCamera(CameraState(no_answer=True))
    vol = tmp_path / "v1"
    vol.mkdir()
    try:
        async with running(tmp_path) as h:
            await dock_and_press(h, cam, vol)
            await h.until(lambda: h.bay(1).state.phase is Phase.TEST_FAILED, 15)
            rows = _rows(h.cfg.catalog, "SELECT passed, checks FROM selftests")
            log = _rows(h.cfg.catalog, "SELECT entry FROM duty_log")
    finally:
        cam.close()
    assert [r[0] for r in rows] == [0]
    assert all("did not answer" in c["reason"] for c in json.loads(rows[0][1]) if not c["ok"])
    assert log and "REG-3.2" in log[0][0]
