"""The station's periodic jobs: each owns its interval, its work and its alarm.

- ``DriveWatch``: the state disk and the destination drives proven every few seconds
  (REG-4.2.1); a missing drive is an alarm at once, its return resumes waiting bays.
- ``DailyPass``: once a day the retention pass (REG-4.3.1), the catalog backup (REG-4.3.2, in
  the same pass: its failures are that day's alarms) and the seal (REG-4.2.5), which gives way
  to a dock and is taken up again when the bays are idle.
- ``Scrub``: while no bay offloads, a step a minute at idle I/O priority (REG-7.2).
- ``ChainWarm``: while no bay offloads, the audit's chain check of the catalog as it is now
  (station/consoleday.ChainMemo), in the background at idle I/O priority, so an auditor's page
  is served from it (issue 29).
- ``HeadWatch``: a new custody head (any process's entries: the daemon's, the console's, a
  command's) goes to both drives and out to the station server within ``HEAD_POLL`` seconds.

A job sees the station only through ``JobHost``; its ``alarm`` stays in STATUS= until it clears.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from typing import Protocol

from camdock.adapters import ioprio
from camdock.adapters.drives import StorageMissing, prove, prove_all, state_disk
from camdock.catalog import custody
from camdock.catalog.db import Store, open_catalog
from camdock.catalog.retention import alarm as record_alarm
from camdock.catalog.scrub import totals as scrub_totals
from camdock.catalog.seals import dirty as dirty_days
from camdock.clock import Clock
from camdock.config import Config
from camdock.events import EventType
from camdock.services.audit import heads_to
from camdock.services.retention import Keeping, PassResult, daily_pass, plan_for
from camdock.services.scrub import ScrubResult, scrub_step
from camdock.services.seal import Sealing, seal_pass
from camdock.station.bays import Events
from camdock.station.consoleday import ChainMemo

__all__ = [
    "CHAIN_POLL",
    "DRIVE_POLL",
    "HEAD_POLL",
    "RETENTION_POLL",
    "SCRUB_MIN_STEP",
    "SCRUB_POLL",
    "ChainWarm",
    "DailyPass",
    "DriveWatch",
    "HeadWatch",
    "JobHost",
    "Scrub",
]

log = logging.getLogger(__name__)

DRIVE_POLL = 5.0  # seconds between proofs of the destination drives (REG-4.2.1)
RETENTION_POLL = 60.0  # seconds between looks at the date (a new day: a new pass)
SCRUB_POLL = 60.0  # seconds between scrub steps (each reads its share of the footage)
SCRUB_MIN_STEP = 64 << 20  # bytes a step reads at least
# The longest a new custody head is only on the state disk: a tail of the chain cut within
# this window (plus the broker's delivery) is the only cut the heads cannot show (invariant 6).
HEAD_POLL = 2.0
CHAIN_POLL = 60.0  # seconds between looks at whether the catalog changed since the last check


class JobHost(Protocol):
    """The station as its jobs see it."""

    @property
    def cfg(self) -> Config:
        """The configuration in force."""
        ...

    def busy(self) -> bool:
        """Whether any bay is offloading (called from the jobs' threads too)."""
        ...

    def status_changed(self) -> None:
        """A job's alarm came or went: STATUS= anew."""
        ...


class DriveWatch:
    """Proves the state disk and the destination drives now and every ``DRIVE_POLL``; its alarm
    is why a drive is missing, while it is."""

    name = "drives"

    def __init__(
        self,
        host: JobHost,
        events: Events,
        *,
        broker_alarm: Callable[[str | None], None],
        storage_back: Callable[[], None],
    ) -> None:
        self.host = host
        self.events = events
        self._broker_alarm = broker_alarm  # published directly (retained): the disk is full
        self._storage_back = storage_back  # the waiting bays resume
        self.alarm: str | None = None
        self._unrecorded: list[dict[str, str]] = []  # state-disk alarms to record later

    def changed(self, problem: Exception | None) -> None:
        """A drive went missing (``problem``: a destination, or the state disk the catalog is
        on) or all are well again: recorded once per change, in STATUS=, and waiting bays
        resume when it is back. A full state disk cannot record its own alarm: the alarm is
        published directly (retained) and recorded once space returns."""
        why = str(problem) if problem is not None else None
        if why == self.alarm:
            return
        self.alarm = why
        if isinstance(problem, StorageMissing):
            log.error("%s", problem)
            drive = problem.drive
            data = {"drive": drive.name, "root": str(drive.root), "reason": str(problem)}
            if drive.name == "state":
                self._unrecorded.append(data)
                self._broker_alarm(str(problem))
            else:
                self._record_missing(data)
        else:
            log.info("storage is well again")
            for data in self._unrecorded:
                self._record_missing(data)
            self._unrecorded.clear()
            self._broker_alarm(None)
            drives = [d.name for d in self.host.cfg.drives]
            self.events.record(EventType.STORAGE_RESTORED, drives=drives)
            self._storage_back()
        self.host.status_changed()

    def _record_missing(self, data: dict[str, str]) -> None:
        self.events.record(EventType.STORAGE_MISSING, drive=data["drive"], root=data["root"],
                           reason=data["reason"])  # fmt: skip

    async def run(self) -> None:
        """Check the state disk and prove the destination drives now and every few seconds
        (REG-4.2.1): a missing drive, or a state disk too full to record an offload, is an
        alarm at once, not at the next dock; its return resumes waiting bays."""
        cfg = self.host.cfg
        if not cfg.require_mounts:
            log.warning(
                "development mode ([destinations] require_mounts = false): destinations are "
                "plain directories, not proven drives, and one filesystem may hold both copies"
            )
        drives = cfg.drives if cfg.require_mounts else ()
        loop = asyncio.get_running_loop()
        while True:
            try:
                await loop.run_in_executor(None, state_disk, cfg.state_dir)
                await loop.run_in_executor(None, prove_all, drives)
                self.changed(None)
            except StorageMissing as exc:
                self.changed(exc)
            except Exception:  # bulkhead: the watcher must not stop the station
                log.exception("checking the destination drives failed")
            await asyncio.sleep(DRIVE_POLL)


class DailyPass:
    """The daily retention pass, catalog backup and seal: once a day, in the station's zone,
    when no bay is offloading; the first ``first`` seconds after start so that docking comes
    first. Its alarm is the last pass's, until the next."""

    name = "retention"

    def __init__(self, host: JobHost, clock: Clock, *, first: float) -> None:
        self.host = host
        self.clock = clock
        self.first = first
        self.alarm: str | None = None
        self.last_pass: PassResult | None = None
        self._seal_paused = False  # the last seal gave way to a dock: take it up when idle

    async def run(self) -> None:
        """Wait ``first``, then look at the date every ``RETENTION_POLL``: a new day, a pass."""
        await asyncio.sleep(self.first)
        done: date | None = None
        while True:
            today = self.clock.now().astimezone(self.host.cfg.tz).date()
            if not self.host.busy():
                if today != done:
                    self.last_pass = await asyncio.to_thread(self.once, today)
                    done = today
                    self.alarm = "; ".join(self.last_pass.alarms) or None
                    self.host.status_changed()
                elif self._seal_paused:  # a seal that gave way to a dock, taken up again
                    await asyncio.to_thread(self.once, today, True)
            await asyncio.sleep(RETENTION_POLL)

    def once(self, today: date, seal_only: bool = False) -> PassResult:
        """One pass on its own connection (a thread of its own: removing copies and backing up
        the catalog must not hold up the catalog thread the bays record through). The seal
        gives way as soon as a bay starts offloading, and is taken up again when all are idle."""
        cfg = self.host.cfg
        db = open_catalog(cfg.catalog)
        try:
            keeping = Keeping.from_config(cfg)
            # The pass expires approvals and drafts itself (issue 28): no command need run.
            result = (PassResult(plan_for(db, today, cfg.draft_days)) if seal_only else
                      daily_pass(db, cfg.catalog, keeping, today, self.clock.now()))  # fmt: skip
            if cfg.seal.automatic:  # REG-4.2.5: every past duty day, sealed
                # Made as the station, a fixed identity no staff member has (issue 27): any
                # supervisor confirms it, nobody's name is borrowed.
                by = f"station:{cfg.station_id}"
                sealing = replace(Sealing.from_config(cfg), pause=self.host.busy)
                self._seal_paused = False
                sealed, alarms = seal_pass(db, sealing, today, by, cfg.seal.alarm_after_days,
                                           cfg.seal.keep_plain_days)  # fmt: skip
                self._seal_paused = self.host.busy() and bool(dirty_days(db))
                result.sealed, result.alarms = sealed, result.alarms + alarms
                if alarms:
                    log.warning("seal: %s", "; ".join(alarms))
                    record_alarm(db, cfg.topics, EventType.SEAL_ALARM, {"alarms": alarms})
            return result
        finally:
            db.close()


class ChainWarm:
    """The audit page's chain check kept warm (issue 29): after the day's pass and whenever
    the bays are idle, a catalog changed since the last check is checked again in the
    background (one check at a time: ChainMemo), at idle I/O priority on a read-only
    connection of its own. It never starts while a bay offloads; a check that a dock finds
    running only reads, on a snapshot, and gives way in I/O."""

    name = "chain"

    def __init__(self, host: JobHost, memo: ChainMemo, *, first: float) -> None:
        self.host = host
        self.memo = memo
        self.first = first
        self.alarm: str | None = None

    async def run(self) -> None:
        """Wait ``first``, then look every ``CHAIN_POLL``."""
        await asyncio.sleep(self.first)
        while True:
            await asyncio.to_thread(self.once)
            await asyncio.sleep(CHAIN_POLL)

    @ioprio.at_idle_io
    def once(self) -> bool:
        """Check the catalog if the bays are idle and it changed since the last check: whether
        the memo is now of the catalog as it is."""
        if self.host.busy():
            return False
        cfg = self.host.cfg
        return self.memo.warm(cfg) and not self.host.busy()


class Scrub:
    """The background scrub (REG-7.2): while no bay offloads, a step every ``SCRUB_POLL`` at
    idle I/O priority, each reading its share so every copy is proven again within [scrub]
    days. Its alarm is the damage it found, until repaired."""

    name = "scrub"

    def __init__(self, host: JobHost, *, first: float) -> None:
        self.host = host
        self.first = first
        self.alarm: str | None = None

    async def run(self) -> None:
        """Wait ``first``, then a step every ``SCRUB_POLL`` while the bays are idle."""
        await asyncio.sleep(self.first)
        while True:
            if not self.host.busy():
                result = await asyncio.to_thread(self.step)
                if result.lost:
                    self.alarm = f"{len(result.lost)} recording(s) with no good copy left"
                elif result.frozen:
                    self.alarm = (f"{len(result.frozen)} recording(s) frozen: the catalog and "
                                  "the custody chain disagree (camdock audit)")  # fmt: skip
                elif result.damaged and len(result.repaired) < len(result.damaged):
                    self.alarm = f"{len(result.damaged)} damaged cop(ies) not repaired"
                elif result.proven or result.repaired:
                    self.alarm = None
                self.host.status_changed()
            await asyncio.sleep(SCRUB_POLL)

    @ioprio.at_idle_io
    def step(self) -> ScrubResult:
        """One step on its own connection, reading its budget's share of the footage."""
        cfg = self.host.cfg
        db = open_catalog(cfg.catalog)
        try:
            _, total = scrub_totals(db)
            budget = max(SCRUB_MIN_STEP, int(total * SCRUB_POLL / (cfg.scrub_days * 86400)))
            present = {str(d.root) for d in cfg.drives}
            return scrub_step(db, budget, cfg.topics, present)
        finally:
            db.close()


class HeadWatch:
    """The custody chain's head leaves the station promptly (invariant 6; issue 26): every
    ``HEAD_POLL`` seconds, a head the drives and the server have not seen is appended to both
    drives' heads files and sent in a ``custody-head`` event (every event carries the head).
    Entries come from the daemon, the console and the commands alike: the chain is read, not
    told. No alarm of its own: a drive that is away is the drive watch's."""

    name = "heads"

    def __init__(self, host: JobHost, events: Events, store: Store) -> None:
        self.host = host
        self.events = events
        self.store = store
        self.alarm: str | None = None
        self.published: tuple[int, str] | None = None

    async def run(self) -> None:
        """Publish each new head, now and every ``HEAD_POLL``."""
        while True:
            head = await self.store.call(custody.head)
            if head != self.published:
                await asyncio.to_thread(heads_to, self._proven_roots(), *head)
                self.events.record(EventType.CUSTODY_HEAD)
                self.published = head
            await asyncio.sleep(HEAD_POLL)

    def _proven_roots(self) -> list[str]:
        """The drives a head may be written to: each proven to be its drive (REG-4.2.1), never
        an empty mount point on the SD card; in development mode, the plain directories."""
        cfg = self.host.cfg
        roots = []
        for d in cfg.drives:
            if cfg.require_mounts:
                try:
                    prove(d)
                except StorageMissing:
                    continue  # the drive watch's alarm; the next head follows when it is back
            roots.append(str(d.root))
        return roots
