"""What retention's parts share (REG-4.3.1): the rules and drives it acts under (``Keeping``),
the holds in force (placed ones and open access/copy requests), and the plan of a day: what is
due, held, late, being destroyed, and what each request holds until when."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from camdock.adapters import fsio
from camdock.catalog import holds, requests
from camdock.catalog import retention as catalog
from camdock.config import Config
from camdock.core.access import OPEN, State
from camdock.core.retention import Hold, HoldKind, Plan, Policy, RequestHold, plan
from camdock.errors import Conflict
from camdock.events import Topics
from camdock.model import Drive
from camdock.services.seal import Sealing, seal_day

__all__ = ["Keeping", "in_force", "keeping_footage", "plan_for", "refused", "request_holds"]


@dataclass(frozen=True)
class Keeping:
    """Where and under which rules retention acts: the policy, the destination drives to prove
    (empty on a development machine or a bare catalog), the destination roots copies may be
    removed from (None: as the catalog records them) and where events go (None: nowhere)."""

    policy: Policy = field(default_factory=Policy)
    drives: tuple[Drive, ...] = ()
    roots: frozenset[str] | None = None
    topics: Topics | None = None
    # Seals a day again without what was destroyed (REG-4.2.5): (db, day, who). None: no seal
    # key here, so footage of a sealed day is not destroyed.
    reseal: Callable[[Database, date, str], object] | None = None
    # The station's registry, for a hold's scope: each camera's USB serial → its agency id
    # (one identity, as `offload --camera` takes either), and the badges on its rolls.
    cameras: Mapping[str, str] = field(default_factory=dict)
    badges: frozenset[str] = frozenset()
    draft_days: int = 7  # [access] draft_days: an unsubmitted request expires after this

    @classmethod
    def from_config(cls, cfg: Config, password_file: Path | None = None) -> Keeping:
        """The station's rules, drives, topics, seal key and registry."""
        sealing = Sealing.from_config(cfg, password_file)
        return cls(
            cfg.retention,
            cfg.drives if cfg.require_mounts else (),
            frozenset(str(d.root) for d in cfg.drives),
            cfg.topics,
            _resealer(sealing) if sealing.key is not None else None,
            {c.serial: c.id for c in cfg.cameras.values()},
            frozenset(cfg.officers) | frozenset(cfg.staff),
            cfg.draft_days,
        )

    def drive_name(self, root: str) -> str:
        """How an alarm names the drive at ``root``: its configured name and root."""
        name = next((d.name for d in self.drives if str(d.root) == root), None)
        return f"{name} ({root})" if name else root


@contextlib.contextmanager
def keeping_footage(db: Database) -> Iterator[None]:
    """Around a write that starts keeping footage (a hold placed, a request made; REG-4.3.1,
    REG-7.1): the destruction runner's lock, shared, so the runner's check of holds and its
    unlink of a copy are one step to it. Its transaction commits either before the runner
    looks (the runner sees it and keeps every copy) or after the runner is done with that
    recording (destroyed: the write sees it gone). The wait is bounded: the runner holds the
    lock for one recording at a time (its copies removed, then recorded), never a whole pass.
    Taken before the write transaction, never inside it: the runner writes while holding it."""
    with fsio.exclusive(catalog.runner_lock(db), shared=True):
        yield


def _resealer(sealing: Sealing) -> Callable[[Database, date, str], object]:
    return lambda db, day, by: seal_day(db, sealing, day, by)


def in_force(db: Database) -> list[Hold]:
    """Every hold in force: those placed, and each open access/copy request, which holds what
    it covers (REG-4.3.1: footage under a request is not destroyed)."""
    by_request: dict[str, set[int]] = {}
    for rec_id, numbers in requests.held_recordings(db, sorted(OPEN)).items():
        for n in numbers:
            by_request.setdefault(n, set()).add(rec_id)
    made = [Hold(-i, HoldKind.REQUEST, number, "an open access/copy request", "camdock",
                 recordings=frozenset(ids))
            for i, (number, ids) in enumerate(sorted(by_request.items()), 1)]  # fmt: skip
    return holds.active(db) + made


def request_holds(db: Database, draft_days: int) -> tuple[RequestHold, ...]:
    """What each open request holds and until when (issue 28: the plan shows it)."""
    held: dict[str, list[int]] = {}
    for rec_id, numbers in requests.held_recordings(db, sorted(OPEN)).items():
        for n in numbers:
            held.setdefault(n, []).append(rec_id)
    out = []
    for req in sorted(requests.listing(db), key=lambda r: r.number):
        if req.number not in held:
            continue
        until: str | None = None
        if req.state is State.DRAFT:
            until = (
                datetime.fromisoformat(req.created_at) + timedelta(days=draft_days)
            ).isoformat()
            note = f"expires unless submitted within {draft_days} days"
        elif req.state in (State.APPROVED, State.SCHEDULED):
            until, note = req.approved_until, "the approval expires unused"
        elif req.state is State.SUBMITTED:
            note = "until approved (then until the approval expires) or denied"
        else:
            note = "until the request is closed"
        out.append(RequestHold(req.number, req.state.value, tuple(sorted(held[req.number])),
                               until, note))  # fmt: skip
    return tuple(out)


def plan_for(db: Database, today: date, draft_days: int = 7) -> Plan:
    """The retention pass for ``today``, without acting on it: with every recording being
    destroyed (and why one stopped) and what each open request holds until when."""
    destroyable, becoming, live = catalog.counts(db, today)
    going = catalog.destroying(db)
    made = plan(today, catalog.due(db, today), in_force(db), destroyable=destroyable,
                becomes_destroyable=becoming, live=live,
                pending=tuple(d.recording for d in going))  # fmt: skip
    return dataclasses.replace(made, stopped=tuple(d.alarm for d in going if d.stopped_reason),
                               requests=request_holds(db, draft_days))  # fmt: skip


def refused(db: Database, by: str, action: str, exc: Conflict, topics: Topics | None,
            extra: dict[str, Any]) -> None:  # fmt: skip
    """A conflict (someone did it first) into the custody log as a refusal, once."""
    requests.record_refusal(db, by, action, None, exc.what, topics,
                            {**extra, "conflict": True, "first_by": exc.by,
                             "first_at": exc.at})  # fmt: skip
