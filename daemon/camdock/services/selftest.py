"""Running the pre-shift function test against a camera (REG-3.2).

The steps ask the camera over its command port and collect its answers; the verdict is the pure
function in core/selftest.py. A step that gets no answer, or a corrupt one, fails with a reason:
it is never taken as a pass. A camera pulled mid-test fails the remaining steps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from camdock.camera.link import CameraDriver, CameraError
from camdock.core.selftest import Answers, Policy, Verdict, verdict

log = logging.getLogger(__name__)


async def run_function_test(
    camera: CameraDriver,
    policy: Policy,
    is_registered: Callable[[str], bool] | None = None,
    selftest_timeout: float = 20.0,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> tuple[Answers, Verdict]:
    a = Answers()
    gone: str | None = None

    async def ask(
        step: str, command: str, fields: dict[str, str] | None = None, timeout: float | None = None
    ) -> dict[str, str] | None:
        nonlocal gone, a
        if gone is not None:
            a = replace(a, errors={**a.errors, step: gone})
            return None
        try:
            return await camera.request(command, fields, timeout)
        except CameraError as exc:
            message = str(exc)
            if "gone" in message or "cannot open" in message:
                gone = f"camera disconnected ({message})"
            a = replace(a, errors={**a.errors, step: message})
            return None

    identity = await ask("identity", "ID")
    if identity is not None:
        registered = None
        if is_registered is not None:
            registered = is_registered(identity.get("serial", ""))
        a = replace(a, identity=identity, registered=registered)

    # Clock: read (the drift found is recorded), set to the station's time (kept on NTP by
    # chrony), read again: what is left must be within the bound.
    t0 = now()
    before = await ask("clock", "CLOCK?")
    t1 = now()
    drift_before = _drift(before, t0, t1)
    if before is not None:
        if drift_before is None:
            a = replace(a, errors={**a.errors, "clock": "corrupt clock answer"})
        elif (
            await ask("clock", "CLOCK", {"time": now().isoformat(timespec="milliseconds")})
            is not None
        ):
            t2 = now()
            after = await ask("clock", "CLOCK?")
            drift_after = _drift(after, t2, now())
            if drift_after is not None:
                a = replace(a, drift_before=drift_before, drift_after=drift_after)
            elif after is not None:
                a = replace(a, errors={**a.errors, "clock": "corrupt clock answer"})

    a = replace(a, battery=await ask("battery", "BATTERY?"))
    storage = await ask("storage", "STORAGE?")
    a = replace(a, storage=storage)
    if storage is None:
        a = replace(a, errors={**a.errors, "offloaded": a.errors.get("storage", "no answer")})
    checks = await ask("camera self-test", "SELFTEST", timeout=selftest_timeout)
    a = replace(a, camera_checks=checks)
    return a, verdict(a, policy)


def _drift(answer: dict[str, str] | None, sent: datetime, received: datetime) -> float | None:
    """Camera time minus station time at the middle of the exchange, in seconds."""
    if answer is None:
        return None
    try:
        cam = datetime.fromisoformat(answer["time"])
    except (KeyError, ValueError):
        return None
    if cam.tzinfo is None:
        return None
    middle = sent + (received - sent) / 2
    return (cam - middle).total_seconds()
