"""The bay state machine and the LED grammar (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from camdock.core import bay as core
from camdock.core.bay import BUSY, BayState, Notice, Phase, step
from camdock.core.indicators import NOTICES, PATTERNS, Pattern


def run(*events: core.Event, start: BayState | None = None) -> BayState:
    s = start or BayState(1)
    for e in events:
        s = step(s, e)
    return s


DOCK = core.Docked("SN0001", "CAM0001", "王小明")


def test_dock_offload_done_undock() -> None:
    s = run(DOCK)
    assert s.phase is Phase.IDENTIFYING and s.camera_id == "CAM0001"
    s = run(core.OffloadStarted(3, 300), start=s)
    assert s.phase is Phase.OFFLOADING and s.bytes_total == 300
    s = run(core.CopyProgress(150, 1), start=s)
    assert s.phase is Phase.OFFLOADING and s.progress == 0.5
    s = run(core.CopyProgress(300, 2), start=s)
    assert s.phase is Phase.VERIFYING  # all read; read-back still running
    s = run(core.OffloadFinished(True), start=s)
    assert s.phase is Phase.DONE and s.files_done == 3
    assert run(core.Undocked(), start=s) == BayState(1)


def test_unregistered_device_reg_2() -> None:
    """REG-2: a USB device that is not a registered camera is shown, never offloaded."""
    s = run(core.Docked("STICK", None))
    assert s.phase is Phase.UNKNOWN_DEVICE and "not a registered camera" in s.message
    assert run(core.OffloadStarted(1, 1), start=s).phase is Phase.UNKNOWN_DEVICE
    assert run(core.Undocked(), start=s).phase is Phase.EMPTY


def test_pulled_mid_offload_is_interrupted_and_redock_resumes() -> None:
    s = run(DOCK, core.OffloadStarted(3, 300), core.CopyProgress(100, 0), core.Undocked())
    assert s.phase is Phase.INTERRUPTED and not s.docked
    assert run(core.OffloadFinished(False, "EIO"), start=s).phase is Phase.INTERRUPTED
    assert run(DOCK, start=s).phase is Phase.IDENTIFYING


def test_storage_missing_waits_and_resumes_by_itself() -> None:
    """REG-4.2.1: a missing drive is not a fault for the officer to acknowledge; the camera
    keeps its footage, and the bay goes back to identifying (a new offload) when it returns."""
    s = run(DOCK, core.StorageLost("footage drive missing: /srv/camdock/footage"))
    assert s.phase is Phase.STORAGE_MISSING and "the camera keeps its footage" in s.message
    assert run(core.StorageBack(), start=s).phase is Phase.IDENTIFYING
    assert run(core.Undocked(), start=s) == BayState(1)
    # Only a docked camera waiting for its offload is affected.
    assert run(core.StorageLost("x")).phase is Phase.EMPTY
    done = run(DOCK, core.OffloadStarted(1, 1), core.OffloadFinished(True))
    assert run(core.StorageLost("x"), start=done).phase is Phase.DONE
    assert run(core.StorageBack(), start=done).phase is Phase.DONE


def test_fault_needs_a_long_press() -> None:
    s = run(DOCK, core.Failed("mount failed"))
    assert s.phase is Phase.FAULT
    assert run(core.Undocked(), start=s).phase is Phase.FAULT  # still visible
    acked = run(core.Undocked(), core.LongPress(), start=s)
    assert acked.phase is Phase.EMPTY and acked.notice is Notice.ACKNOWLEDGED
    docked_ack = run(core.LongPress(), start=s)
    assert docked_ack.phase is Phase.INTERRUPTED and "re-dock" in docked_ack.message


def test_button_presses_are_refused_politely() -> None:
    busy = run(DOCK, core.OffloadStarted(1, 10))
    pressed = run(core.ShortPress(), start=busy)
    assert pressed.phase is Phase.OFFLOADING and pressed.notice is Notice.REFUSED
    assert run(core.LongPress(), start=busy).notice is Notice.REFUSED
    assert run(core.ShortPress()).notice is Notice.REFUSED  # empty bay
    done = run(DOCK, core.OffloadStarted(1, 10), core.OffloadFinished(True))
    assert run(core.ShortPress(), start=done).notice is Notice.UNAVAILABLE
    assert run(core.ShortPress(selftest_available=True), start=done).phase is Phase.TESTING


def test_same_camera_announced_twice_is_idempotent() -> None:
    s = run(DOCK, core.OffloadStarted(2, 20))
    assert run(DOCK, start=s) == s


events = st.one_of(
    st.just(DOCK),
    st.just(core.Docked("X", None)),
    st.just(core.Undocked()),
    st.builds(core.OffloadStarted, st.integers(0, 5), st.integers(0, 100)),
    st.builds(core.CopyProgress, st.integers(0, 100), st.integers(0, 5)),
    st.builds(core.OffloadFinished, st.booleans()),
    st.builds(core.Failed, st.text(max_size=5)),
    st.builds(core.ShortPress, st.booleans()),
    st.just(core.LongPress()),
)


@given(st.lists(events, max_size=40))
def test_any_event_sequence_keeps_the_machine_sound(seq: list[core.Event]) -> None:
    s = BayState(3)
    for e in seq:
        before, s = s, step(s, e)
        assert s.number == 3
        if before.phase in BUSY and isinstance(e, core.ShortPress | core.LongPress):
            assert s.phase is before.phase  # a button never disturbs an offload
        if isinstance(e, core.Undocked):
            assert not s.docked
        assert s.phase in PATTERNS


def _rhythm(p: Pattern) -> tuple[tuple[bool, float], ...]:
    return tuple((c is not None, t) for c, t in p.steps)


def test_led_grammar_readable_without_colour() -> None:
    """States differ in rhythm, not only colour; only DONE and TEST_PASSED share one (both
    mean: take the camera, all is well)."""
    seen: dict[tuple[tuple[bool, float], ...], Phase] = {}
    for phase, pattern in PATTERNS.items():
        r = _rhythm(pattern)
        if r in seen:
            assert {phase, seen[r]} == {Phase.DONE, Phase.TEST_PASSED}
        seen[r] = phase
    for notice in NOTICES.values():
        assert not notice.repeat and _rhythm(notice) not in seen
    assert PATTERNS[Phase.FAULT].colour is not PATTERNS[Phase.DONE].colour


def test_led_grammar_document_matches_the_code() -> None:
    from pathlib import Path

    doc = (Path(__file__).parent.parent / "firmware-notes" / "led-grammar.md").read_text()
    for phase, pattern in PATTERNS.items():
        row = next(line for line in doc.splitlines() if line.startswith(f"| `{phase.value}` |"))
        assert f"| {pattern.name} |" in row
        assert (pattern.colour.value if pattern.colour else "—") in row
    for notice, pattern in NOTICES.items():
        row = next(line for line in doc.splitlines() if line.startswith(f"| `{notice.value}` |"))
        assert f"| {pattern.name} |" in row
