"""One control operation's context (``Call``) and the table of handlers: each operation of the
protocol that needs a session, and the function in ``ops_read`` or ``ops_act`` that answers it
(station/control.py looks them up)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlite_utils import Database

from camdock import clock, protocol
from camdock.config import Config
from camdock.core.access import Person
from camdock.services import access

if TYPE_CHECKING:
    from camdock.station.control import Control

__all__ = ["HANDLERS", "Call", "Handler", "fields_of", "handles", "person_json"]


@dataclass(frozen=True)
class Call:
    """One operation's context: the station, the staff member who asked, the catalog."""

    ctl: Control
    me: Person
    db: Database
    channel: str = "console"  # what the request came through: console or cli (issue 27)

    @property
    def cfg(self) -> Config:
        """The station's config."""
        return self.ctl.cfg

    @property
    def who(self) -> access.Acting:
        """The staff member as the services name them."""
        return access.Acting(self.me, self.me.label, self.channel)

    def local(self, moment: datetime) -> datetime:
        """A local date and time (YYYY-MM-DDTHH:MM) in the station's zone."""
        return moment.replace(tzinfo=self.cfg.tz)

    def today(self) -> date:
        """Today in the station's zone."""
        return clock.now().astimezone(self.cfg.tz).date()


A = TypeVar("A", bound=protocol.Args)
R = TypeVar("R")
Handler = Callable[[Call, Any], object]  # the answer: a typed value (answers.py), JSON on the wire
# Each operation of the protocol that needs a session, and the function that answers it.
HANDLERS: dict[str, Handler] = {}


def handles(args: type[A]) -> Callable[[Callable[[Call, A], R]], Callable[[Call, A], R]]:
    """Bind a handler to the operation the protocol declares for ``args``."""

    def register(fn: Callable[[Call, A], R]) -> Callable[[Call, A], R]:
        HANDLERS[args.op.name] = fn
        return fn

    return register


def person_json(p: Person) -> dict[str, Any]:
    """A staff member as the console shows them."""
    return {"id": p.id, "name": p.name, "roles": sorted(r.value for r in p.roles),
            "label": p.label}  # fmt: skip


def fields_of(obj: Any) -> dict[str, Any]:
    """A dataclass's fields by name (one level: nested values stay as they are)."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}
