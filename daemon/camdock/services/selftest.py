"""Running the pre-shift function test against a camera (REG-3.2).

The steps ask the camera through its semantic driver and collect its answers; the verdict is
the pure function in core/selftest.py. A step that gets no answer, or a corrupt one, fails with
a reason: it is never taken as a pass. A camera pulled mid-test fails the remaining steps.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import TypeVar

from camdock import clock
from camdock.camera.driver import CameraDriver
from camdock.core.selftest import Answers, Policy, Verdict, verdict
from camdock.errors import CameraError, CameraGone, CameraTimeout

__all__ = ["run_function_test"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class _Steps:
    """Asks the camera step by step, noting each step's error; after the camera is gone,
    every later step fails with that reason without asking."""

    def __init__(self) -> None:
        self.answers = Answers()
        self.gone: str | None = None

    def fail(self, step: str, message: str) -> None:
        self.answers = replace(self.answers, errors={**self.answers.errors, step: message})

    async def ask(self, step: str, call: Callable[[], Awaitable[T]]) -> T | None:
        if self.gone is not None:
            self.fail(step, self.gone)
            return None
        try:
            return await call()
        except CameraError as exc:
            if isinstance(exc, CameraGone):
                self.gone = f"camera disconnected ({exc})"
            elif isinstance(exc, CameraTimeout):
                # Silent or garbling: asking the next steps would only make the officer wait
                # (each ask is retried); they fail with the same reason at once.
                self.gone = str(exc)
            self.fail(step, str(exc))
            return None


async def run_function_test(
    camera: CameraDriver,
    policy: Policy,
    is_registered: Callable[[str], bool] | None = None,
    selftest_timeout: float = 20.0,
    now: Callable[[], datetime] = lambda: clock.now(),
) -> tuple[Answers, Verdict]:
    """Ask the camera everything the test needs, then judge; never raises for the camera."""
    s = _Steps()
    identity = await s.ask("identity", camera.identify)
    if identity is not None:
        registered = is_registered(identity.serial) if is_registered is not None else None
        s.answers = replace(s.answers, identity=identity, registered=registered)

    # Clock: read (the drift found is recorded), set to the station's time (kept on NTP by
    # chrony), read again: what is left must be within the bound.
    t0 = now()
    before = await s.ask("clock", camera.read_clock)
    if before is not None:
        drift_before = _drift(before, t0, now())
        if await s.ask("clock", lambda: _set(camera, now())) is not None:
            t2 = now()
            after = await s.ask("clock", camera.read_clock)
            if after is not None:
                drift_after = _drift(after, t2, now())
                s.answers = replace(s.answers, drift_before=drift_before, drift_after=drift_after)

    s.answers = replace(s.answers, battery=await s.ask("battery", camera.battery))
    storage = await s.ask("storage", camera.storage)
    s.answers = replace(s.answers, storage=storage)
    if storage is None:
        s.fail("offloaded", s.answers.errors.get("storage", "no answer"))
    checks = await s.ask("camera self-test", lambda: camera.self_test(selftest_timeout))
    s.answers = replace(s.answers, camera_checks=checks)
    return s.answers, verdict(s.answers, policy)


async def _set(camera: CameraDriver, moment: datetime) -> bool:
    await camera.set_clock(moment)
    return True


def _drift(camera_time: datetime, sent: datetime, received: datetime) -> float:
    """Camera time minus station time at the middle of the exchange, in seconds."""
    middle = sent + (received - sent) / 2
    return (camera_time - middle).total_seconds()
