"""The pre-shift function test at a bay (REG-3.2): button → test over the camera's command port
→ LED → records. On failure: the duty log, the supervisor (an event) and a tested spare.

The test itself is ``services/selftest.py``; what the verdict calls for is decided purely in
``core/preshift.py``; this module asks the camera, then writes the records in one transaction.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta
from typing import Any

from sqlite_utils import Database

from camdock import clock
from camdock.camera.driver import CameraDriver, DriverFactory, driver_for
from camdock.catalog import outbox, selftests
from camdock.catalog.db import write_txn
from camdock.clock import iso_utc
from camdock.config import Config
from camdock.core import bay as core
from camdock.core.bay import Phase
from camdock.core.preshift import Outcome, Result, Spare, decide
from camdock.core.selftest import Answers, Check, Policy, Verdict
from camdock.errors import CamdockError
from camdock.events import EventType
from camdock.services.selftest import run_function_test
from camdock.station.bays import BayRuntime, StationContext

__all__ = ["DriverFactory", "PreShift", "policy_for"]

log = logging.getLogger(__name__)

TEST_BOUND = 45.0  # seconds the whole pre-shift test may take (its self-test step alone: 20)


def policy_for(cfg: Config) -> Policy:
    """The function test's policy from a station config."""
    st = cfg.selftest
    return Policy(
        min_battery=st.min_battery,
        max_drift_after_sync=st.max_drift_after_sync,
        longest_slot_seconds=cfg.slots.longest_seconds(),
        allowed_firmware=st.allowed_firmware,
    )


class PreShift:
    """Runs the function test for a bay and records what it calls for."""

    def __init__(self, station: StationContext, drivers: DriverFactory | None = None) -> None:
        self.st = station
        self.drivers = drivers

    def _driver(self, port: str, serial: str | None) -> CameraDriver:
        """The injected factory's driver, else the registry's for the camera's model."""
        if self.drivers is not None:
            return self.drivers(port)
        camera = self.st.cfg.cameras.get(serial or "")
        return driver_for(port, model=camera.model if camera else None)

    def can_test(self, b: BayRuntime) -> bool:
        """A docked, registered camera with its command port present."""
        return b.tty is not None and b.state.docked and b.state.camera_id is not None

    async def test(self, b: BayRuntime) -> None:
        """The whole flow for one button press; never raises (the bay shows a failure)."""
        try:
            await self._test(b)
        except Exception as exc:  # bulkhead: the bay shows the failure, nothing else breaks
            log.exception("bay %d function test crashed", b.n)
            b.queue.put_nowait(core.TestFinished(False, f"test could not run: {exc!r}"))

    async def _test(self, b: BayRuntime) -> None:
        assert b.tty is not None
        cfg = self.st.cfg
        driver = self._driver(b.tty, b.state.serial)
        try:
            # An officer stands at the bay: the whole test is bounded in seconds, and a test
            # that could not run is recorded like any other failed one (REG-3.2).
            async with asyncio.timeout(TEST_BOUND):
                answers, verdict = await run_function_test(
                    driver, policy_for(cfg), cfg.cameras.__contains__
                )
        except (TimeoutError, CamdockError) as exc:
            why = f"took over {TEST_BOUND:.0f} s" if isinstance(exc, TimeoutError) else str(exc)
            answers = Answers()
            verdict = Verdict(False, (Check("test", False, "-", f"could not run: {why}"),))
        finally:
            driver.close()
        camera = cfg.cameras.get(b.state.serial or "")
        officer = cfg.officer_for(camera) if camera else None
        # Pulled mid-test: the row records the aborted test; no duty-log entry, no spare.
        interrupted = b.state.phase is not Phase.TESTING
        spare = None if verdict.passed or interrupted else await self._pick_spare(b)
        outcome = decide(
            passed=verdict.passed,
            summary=verdict.summary(),
            interrupted=interrupted,
            bay=b.n,
            camera_id=camera.id if camera else None,
            officer=officer,
            spare=Spare(spare.n, spare.state.camera_id or "") if spare else None,
        )
        slot = cfg.slots.slot_of(clock.now().astimezone(cfg.tz)).label
        await self.st.store.call(self._write, b, answers, verdict, outcome, slot)
        self.st.events.wake_publisher()
        b.queue.put_nowait(core.TestFinished(verdict.passed, verdict.summary()))
        if spare is not None and outcome.take_me_for is not None:
            spare.queue.put_nowait(core.TakeMe(outcome.take_me_for))

    def _write(
        self,
        db: Database,
        b: BayRuntime,
        answers: Answers,
        verdict: Verdict,
        outcome: Outcome,
        slot: str,
    ) -> None:
        """Catalog thread: the test row, and what the outcome calls for, in one transaction."""
        serial = b.state.serial
        camera = self.st.cfg.cameras.get(serial or "")
        camera_id = camera.id if camera else None
        officer = self.st.events.officer_json(serial)
        checks = [
            {"name": c.name, "ok": c.ok, "value": c.value, "reason": c.reason}
            for c in verdict.checks
        ]
        battery = answers.battery.percent if answers.battery is not None else None

        def event(kind: EventType, bay: int, camera: str | None, data: dict[str, Any]) -> None:
            outbox.record(
                db, self.st.events.topics, kind, bay=bay, camera=camera, officer=officer, data=data
            )

        with write_txn(db):
            test_id = selftests.add_selftest(
                db,
                selftests.NewSelfTest(
                    station=self.st.cfg.station_id,
                    bay=b.n,
                    camera_id=camera_id,
                    usb_serial=serial,
                    officer_badge=officer["badge"] if officer else None,
                    officer_name=officer["name"] if officer else None,
                    passed=int(verdict.passed),
                    checks=json.dumps(checks, ensure_ascii=False),
                    drift_before=answers.drift_before,
                    drift_after=answers.drift_after,
                    battery=battery,
                ),
            )
            if outcome.result is Result.PASSED:
                event(EventType.SELFTEST_PASSED, b.n, camera_id, {
                    "checks": checks,
                    "drift_before": answers.drift_before,
                    "drift_after": answers.drift_after,
                })  # fmt: skip
            if outcome.result is not Result.FAILED:
                return
            spare = outcome.spare
            assert outcome.duty_log is not None  # a failure always has its entry (core/preshift)
            selftests.add_duty_log(
                db,
                selftests.NewDutyEntry(
                    officer_badge=officer["badge"] if officer else None,
                    officer_name=officer["name"] if officer else None,
                    camera_id=camera_id,
                    entry=outcome.duty_log,
                    spare_camera_id=spare.camera_id if spare else None,
                    selftest_id=test_id,
                ),
            )
            event(EventType.SELFTEST_FAILED, b.n, camera_id, {
                "checks": checks,
                "failed": [c.name for c in verdict.failed],
                "supervisor_notice": outcome.notice,
                "spare": spare.camera_id if spare else None,
            })  # fmt: skip
            if outcome.loan and spare is not None and officer is not None:
                selftests.add_loan(db, spare.camera_id, officer["badge"], officer["name"], slot)
                event(EventType.SPARE_ASSIGNED, spare.bay, spare.camera_id, {
                    "for_bay": b.n, "failed_camera": camera_id, "duty_slot": slot,
                })  # fmt: skip

    async def _pick_spare(self, failing: BayRuntime) -> BayRuntime | None:
        """A docked spare, idle, that passed its own test recently with a charged battery."""
        cfg = self.st.cfg
        since = iso_utc(clock.now() - timedelta(hours=cfg.selftest.spare_max_age_hours))
        least = cfg.selftest.min_battery
        for b in self.st.bays.values():
            camera = cfg.cameras.get(b.state.serial or "")
            if b is failing or camera is None or not camera.spare or not b.state.docked:
                continue
            if b.state.phase not in (Phase.DONE, Phase.TEST_PASSED):
                continue
            last = await self.st.store.call(selftests.last_selftest, camera.id)
            if last and last.passed and (last.battery or 0) >= least and last.time >= since:
                return b
        return None
