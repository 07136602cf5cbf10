"""A roster from the station server, taken whole or not at all (REG-4.1.1, REG-4.2.4).

A roster re-assigns cameras to officers for a duty day and grants roles. It is applied whole, or
rejected with the old one kept; the catalog keeps each roster's assignments from its duty day
on (attribution by time) and the roles it grants, for the commands to check.
"""

from __future__ import annotations

import logging

from sqlite_utils import Database

from camdock.catalog import assignments, requests
from camdock.catalog import staff as staff_rows
from camdock.catalog.db import Store, write_txn
from camdock.config import Config
from camdock.core import roster
from camdock.errors import RosterError
from camdock.events import EventType
from camdock.model import Officer
from camdock.station.bays import Events
from camdock.station.recorder import log_failure

__all__ = ["take"]

log = logging.getLogger(__name__)


def take(cfg: Config, payload: bytes, store: Store, events: Events) -> Config | None:
    """The configuration with the roster in ``payload`` in force, its assignments and roles
    kept in the catalog; None when it is rejected (recorded; ``cfg`` stays in force)."""
    try:
        new = roster.parse(payload, cfg.roster_registry())
    except RosterError as exc:
        log.error("roster rejected: %s", exc)
        events.record(EventType.ROSTER_REJECTED, problems=exc.problems)
        return None
    on_staff = frozenset(cfg.staff)  # the config's, before the roster: it adds no staff
    cfg = cfg.with_roster(new)
    officers = cfg.officers
    history = {cam: officers[badge] for cam, badge in new.assignments.items()}
    granted = {o.badge: (o.name, o.unit, sorted(new.roles.get(o.badge, ())))
               for o in new.officers if o.badge in new.roles}  # fmt: skip
    store.submit(_keep, new.date, history, granted, cfg, on_staff).add_done_callback(log_failure)
    log.info("roster for %s applied: %d assignments", new.date, len(new.assignments))
    events.record(
        EventType.ROSTER_APPLIED,
        date=new.date,
        assignments=len(new.assignments),
        officers=len(new.officers),
        slots=new.slots is not None,
    )
    return cfg


def _keep(db: Database, duty_day: str, history: dict[str, Officer],
          granted: dict[str, tuple[str, str, list[str]]], cfg: Config,
          on_staff: frozenset[str]) -> None:  # fmt: skip
    """The roster's assignments from its duty day on (REG-4.2.4: attribution by time), and the
    roles it grants (REG-4.1.1) for that duty day only, for the commands to check. A grant to
    someone not on the station's staff (the catalog's, else the config's) is refused, and the
    refusal recorded (issue 27, item 7): a roster names officers, it does not make staff."""
    staff = staff_rows.active_ids(db) or on_staff
    refused = sorted(b for b in granted if b not in staff)
    for badge in refused:
        requests.record_refusal(db, "roster", "grant", None, f"{badge} is not on station "
                                f"{cfg.station_id}'s staff: no role granted", cfg.topics,
                                {"badge": badge, "roles": granted[badge][2],
                                 "duty_day": duty_day})  # fmt: skip
        log.warning("roster for %s: %s is not on the staff; no role granted", duty_day, badge)
    with write_txn(db):
        assignments.record_roster(db, duty_day, history)
        assignments.record_roles(db, duty_day, {b: g for b, g in granted.items()
                                                if b not in refused}, cfg.tz)  # fmt: skip
