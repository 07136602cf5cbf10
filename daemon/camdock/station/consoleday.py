"""What the console's day asks of the daemon (issue 29): the home view's counts and alarms, the
catalog search and the custody-log search. station/ops_read.py binds them to the protocol's
operations; here they take the catalog, the config and the staff member, and answer JSON.

Each answer is bounded (a page, capped counts) and served from indexes (catalog/search.py),
so the daemon's part of a page stays in milliseconds on a year's catalog
(bench/console_bench.py)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from camdock import clock, protocol
from camdock.adapters import drives, heads
from camdock.catalog import custody, open_readonly, search
from camdock.catalog import staff as staff_rows
from camdock.catalog.custody import Action
from camdock.config import Config
from camdock.core.access import Person, Role
from camdock.protocol import BadRequest
from camdock.services import audit, retention

__all__ = [
    "MAX_PAGE",
    "PER_PAGE",
    "ChainMemo",
    "custody_page",
    "find",
    "first_row",
    "home",
    "utc_bounds",
]

MAX_PAGE = 100_000  # past this a page number is a typo, not a page (and never an overflow)
PER_PAGE = 50
LOW_SPACE = 0.05  # a drive with less than this share free is an alarm: the next day may not fit
# Who sees which of the day's waiting work on the home view (the daemon still decides each act).
WAITS_FOR = {
    "submitted": frozenset({Role.APPROVER}),
    "media_unconsulted": frozenset({Role.PR}),
    "lists_proposed": frozenset({Role.APPROVER}),
    "seals_unconfirmed": frozenset({Role.SUPERVISOR}),
}


def utc_bounds(first: date | None, last: date | None, tz: Any) -> tuple[str | None, str | None]:
    """Days in the station's zone as UTC ISO bounds (what the catalog's times are); a day
    beyond what a datetime holds is no bound on that side."""
    lo = hi = None
    try:
        if first is not None:
            lo = clock.iso_utc(datetime.combine(first, datetime.min.time(), tz).astimezone(UTC))
    except OverflowError:
        lo = None
    try:
        if last is not None:
            hi = clock.iso_utc(datetime.combine(last, datetime.max.time(), tz).astimezone(UTC))
    except OverflowError:
        hi = None
    return lo, hi


def first_row(page: int, per: int = PER_PAGE) -> int:
    """The first row of page ``page`` (from 1) of ``per`` rows; a page out of bounds is a 400."""
    if not 1 <= page <= MAX_PAGE:
        raise BadRequest(f"a page from 1 to {MAX_PAGE} is needed", "page")
    return (page - 1) * per


def find(db: Database, a: protocol.CatalogFind) -> dict[str, Any]:
    """A page of the catalog search."""
    if not 1 <= a.per <= search.MAX_PER_PAGE:
        raise BadRequest(f"from 1 to {search.MAX_PER_PAGE} rows a page", "per")
    offset = first_row(a.page, a.per)
    if a.first is not None and a.last is not None and a.first > a.last:
        raise BadRequest("the first day comes after the last", "from")
    found = search.recordings(
        db, officer=a.officer, camera=a.camera, case=a.case, first=a.first, last=a.last,
        sort=search.SortKey(a.sort.value), descending=bool(a.desc),
        offset=offset, limit=a.per,
    )  # fmt: skip
    return {"total": found.total, "more": found.more, "offset": found.offset,
            "per": a.per, "rows": found.rows}  # fmt: skip


def custody_page(db: Database, cfg: Config, a: protocol.CustodySearch) -> dict[str, Any]:
    """A page of the custody log: a person is a staff id (every label the log gave them: the
    name they had then) or the start of a name."""
    if a.action is not None and a.action not in Action.__members__.values():
        raise BadRequest(f"{a.action!r} is no custody action", "action")
    if a.first is not None and a.last is not None and a.first > a.last:
        raise BadRequest("the first day comes after the last", "from")
    offset = first_row(a.page)
    actors: tuple[str, ...] = ()
    prefix = staff_id = None
    if a.person:
        known = staff_rows.get(db, a.person)
        if known is not None:  # their entries under every name they had (a rename since)
            actors, staff_id = (f"{known.name} ({known.id})",), known.id
        prefix = a.person
    start, end = utc_bounds(a.first, a.last, cfg.tz)
    found = search.custody_entries(
        db, actors=actors, actor_prefix=prefix, staff_id=staff_id, action=a.action,
        recording=a.recording,
        start=start, end=end, offset=offset, limit=PER_PAGE,
    )  # fmt: skip
    return {"total": found.total, "more": found.more, "offset": found.offset,
            "per": PER_PAGE, "rows": found.rows,
            "actions": sorted(x.value for x in Action)}  # fmt: skip


def _storage_alarms(cfg: Config) -> list[str]:
    """Each destination drive that is not there as configured, or nearly full."""
    out = []
    for d in cfg.drives:
        try:
            if cfg.require_mounts:
                drives.prove(d)
            st = os.statvfs(d.root)
        except (drives.StorageMissing, OSError) as exc:
            out.append(f"儲存裝置異常 {d.name}: {exc}")
            continue
        usage = st.f_bavail / st.f_blocks if st.f_blocks else 1.0
        if usage < LOW_SPACE:
            out.append(f"儲存空間不足 {d.name}: {usage:.0%} free")
    return out


def home(db: Database, cfg: Config, me: Person, today: date) -> dict[str, Any]:
    """The home view: the day's failures, what waits for this staff member's roles, the
    alarms (retention, seal, storage, scrub) and the days not sealed yet."""
    start, end = utc_bounds(today, today, cfg.tz)
    counts = asdict(search.today(db, start or "", end or "", me.id))
    for key, roles in WAITS_FOR.items():
        if not me.roles & roles:
            counts[key] = None  # not theirs to act on: not shown
    sees = bool(me.roles - {Role.OFFICER, Role.PR})
    alarms: dict[str, list[str]] = {"retention": [], "seal": [], "storage": [], "scrub": []}
    unsealed: list[str] = []
    if sees:
        alarms["retention"] = retention.plan_for(db, today).alarms
        unsealed = search.unsealed_days(db, today)
        if unsealed:
            alarms["seal"].append(f"{len(unsealed)} 日未封存 duty day(s) not sealed (REG-4.2.5)")
        alarms["storage"] = _storage_alarms(cfg)
        if counts["damaged"]:
            alarms["scrub"].append(f"{counts['damaged']} 份複本受損 damaged copies found today")
        if counts["frozen"]:
            alarms["scrub"].append(f"{counts['frozen']} 筆紀錄凍結 recordings frozen "
                                   "(catalog and custody log disagree)")  # fmt: skip
    return {
        "today": counts,
        "alarms": alarms,
        "unsealed": unsealed[-31:],
        "unsealed_total": len(unsealed),
        "sees_station": sees,
        "day": today.isoformat(),
    }


def _stamp(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    # ctime too: ``touch -d`` (utime) can put an edited file's mtime back, never its ctime.
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _wal_index(catalog: Path) -> bytes:
    """The WAL index's header (the -shm file's first 48 bytes, not the readers' marks after
    it): its change counter and frame count move with every commit by any connection, also
    one in the same clock tick, or one that reuses the WAL at the same size (review F5)."""
    try:
        with open(catalog.with_name(catalog.name + "-shm"), "rb") as f:
            return f.read(48)
    except OSError:
        return b""


class ChainMemo:
    """The audit page's report (services/audit: the custody chain checked, every entry
    re-hashed, its MACs, the catalog against it, the heads on the drives; the period's
    figures), kept until anything it read changes: the chain's head, the catalog's file or its
    WAL (any write, an edit behind camdock's back included), a heads file on a drive (issue 29:
    the page took 14-25 s on a year's catalog, every time). ``camdock audit`` checks
    everything every time.

    The daemon keeps it warm (station/jobs.ChainWarm: when the bays are idle, each change is
    checked in the background), so the page is served from here. One check at a time: an
    auditor who asks while one runs gets the last result, marked as of when it was made and
    that a newer check is running ("checking…"), not a wait; with no result yet, he waits for
    the running one. An auditor who asks when no check runs and the catalog changed since the
    last one has it checked now (an edit is named on the next load: review F5)."""

    KEEP = 8  # periods kept per state of the catalog

    def __init__(self, now: Callable[[], datetime] = clock.now) -> None:
        self._now = now
        self._lock = threading.Lock()  # the fields below
        self._checking = threading.Lock()  # held while a check runs: one at a time
        self._key: tuple[Any, ...] | None = None
        self._problems: list[str] = []
        self._checked_at: datetime | None = None  # when the kept result's check began
        self._since: datetime | None = None  # when the running check began
        self._docs: dict[tuple[date, date, date], dict[str, Any]] = {}

    def _key_of(self, db: Database, catalog: Path, roots: list[str]) -> tuple[Any, ...]:
        # Not the WAL file's times: SQLite truncates it as connections come and go (its ctime
        # moved on every page load, so the check was never kept); a commit moves the WAL
        # index's counter, and a checkpoint (the WAL index gone with the last connection)
        # writes the catalog's file, whose ctime nobody can set back.
        files = [catalog, *(Path(r, heads.FOLDER, heads.NAME) for r in roots)]
        return (custody.head(db), _wal_index(catalog), *(_stamp(f) for f in files))

    def fresh(self, db: Database, cfg: Config) -> bool:
        """Whether the kept result is of the catalog as it is now."""
        key = self._key_of(db, cfg.catalog, [str(d.root) for d in cfg.drives])
        with self._lock:
            return key == self._key

    def check(self, db: Database, cfg: Config) -> bool:
        """Check the chain unless nothing it reads changed since the last check; False (and
        nothing done) when another check is running."""
        if not self._checking.acquire(blocking=False):
            return False
        try:
            roots = [str(d.root) for d in cfg.drives]
            key = self._key_of(db, cfg.catalog, roots)  # before the check: a write during it
            with self._lock:  # leaves the next asker a new check
                if key == self._key:
                    return True
                self._since = self._now()
            problems = audit.chain(db, roots)
            with self._lock:
                self._key, self._problems, self._docs = key, problems, {}
                self._checked_at = self._since
        finally:
            with self._lock:
                self._since = None
            self._checking.release()
        return True

    def warm(self, cfg: Config) -> bool:
        """The daemon's background check (station/jobs.ChainWarm), on a read-only connection
        of its own; False when another check was running."""
        db = open_readonly(cfg.catalog)
        try:
            return self.check(db, cfg)
        finally:
            db.close()

    def report(self, db: Database, cfg: Config, first: date, last: date, today: date,
               by: str) -> dict[str, Any]:  # fmt: skip
        """The period's report (services/audit.period_report) by ``by``, with when the chain
        was checked (``chain_checked_at``) and whether a newer check is running
        (``chain_checking``): checked now only when no check runs and something changed."""
        while not self.fresh(db, cfg) and not self.check(db, cfg):
            with self._lock:
                kept = self._checked_at is not None
            if kept:  # the last result, while a newer one is made
                return self._doc(db, cfg, (first, last, today), by, keep=False)
            with self._checking:  # no result yet: wait for the running check
                pass
        return self._doc(db, cfg, (first, last, today), by, keep=True)

    def _doc(self, db: Database, cfg: Config, period: tuple[date, date, date], by: str, *,
             keep: bool) -> dict[str, Any]:  # fmt: skip
        with self._lock:
            doc = self._docs.get(period)
            problems, checked, since = list(self._problems), self._checked_at, self._since
        if doc is None:
            doc = audit.period_report(db, cfg.tz, *period, problems, [], None, False)
            with self._lock:
                if keep and checked == self._checked_at:
                    if len(self._docs) >= self.KEEP:
                        self._docs.pop(next(iter(self._docs)))
                    self._docs[period] = doc
        return {
            **doc,
            "by": by,
            "chain_checked_at": clock.iso_local(checked, cfg.tz),
            "chain_checking": None if since is None else clock.iso_local(since, cfg.tz),
        }
