"""A roster from the station server, taken whole or not at all (REG-4.1.1, REG-4.2.4).

A roster re-assigns cameras to officers for a duty day and grants roles. It is applied whole, or
rejected with the old one kept; the catalog keeps each roster's assignments from its duty day
on (attribution by time) and the roles it grants, for the commands to check.
"""

from __future__ import annotations

import logging

from sqlite_utils import Database

from camdock.catalog import assignments
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
    cfg = cfg.with_roster(new)
    officers = cfg.officers
    history = {cam: officers[badge] for cam, badge in new.assignments.items()}
    granted = {o.badge: (o.name, o.unit, sorted(new.roles.get(o.badge, ())))
               for o in new.officers if o.badge in new.roles}  # fmt: skip
    store.submit(_keep, new.date, history, granted).add_done_callback(log_failure)
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
          granted: dict[str, tuple[str, str, list[str]]]) -> None:  # fmt: skip
    """The roster's assignments from its duty day on (REG-4.2.4: attribution by time), and the
    roles it grants (REG-4.1.1), for the commands to check."""
    with write_txn(db):
        assignments.record_roster(db, duty_day, history)
        assignments.record_roles(db, duty_day, granted)
