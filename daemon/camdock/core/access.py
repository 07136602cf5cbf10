"""Who may do what (REG-4.1.1, REG-5, REG-6) and how an access/copy request moves (Annex 2).
Pure: people, roles and states in, decisions out. Refusal is the default (invariant 9).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

__all__ = [
    "ACTIONS",
    "NO_ROLES",
    "OPEN",
    "STEPS",
    "Person",
    "Purpose",
    "Request",
    "Role",
    "State",
    "needs_pr",
    "open_steps",
    "overtaken",
    "refusal",
    "transition",
]


NO_ROLES = (
    "unverified actor: no role was checked (a development catalog: no station config "
    "with a staff list, no staff in the catalog)"
)


class Role(StrEnum):
    """The station's people (REG-4.1.1)."""

    OFFICER = "officer"
    CUSTODIAN = "custodian"  # keeps the footage, supervises viewing, makes copies
    SUPERVISOR = "supervisor"  # the unit supervisor: confirms seals, places holds
    APPROVER = "approver"  # the precinct chief or a delegate: approves requests (REG-5.1)
    PR = "pr"  # the public-relations unit: consulted for media use (REG-6)
    AUDITOR = "auditor"  # REG-7.2


# A declarative table: every manual action and the roles that may take it.
ACTIONS: dict[str, frozenset[Role]] = {
    "attribute": frozenset({Role.CUSTODIAN}),
    "hold": frozenset({Role.CUSTODIAN, Role.SUPERVISOR, Role.APPROVER}),
    "release": frozenset({Role.SUPERVISOR, Role.APPROVER}),
    "destroy": frozenset({Role.CUSTODIAN}),  # executes an approved list (issue 27)
    "destroy-propose": frozenset({Role.CUSTODIAN}),  # proposes a destruction list
    "destroy-approve": frozenset({Role.APPROVER}),  # approves someone else's list (REG-4.3.1)
    "authorise": frozenset({Role.APPROVER}),  # a standing authorisation to destroy what is due
    "revoke-authorisation": frozenset({Role.APPROVER}),  # ends one at once (issue 27, gap 3)
    "seal": frozenset({Role.CUSTODIAN}),
    "confirm": frozenset({Role.SUPERVISOR, Role.APPROVER}),
    "restore": frozenset({Role.CUSTODIAN}),
    "audit": frozenset({Role.AUDITOR, Role.SUPERVISOR}),
    # Lifting a freeze puts a recording back as the chain has it: the auditor alone, never
    # someone whose own approvals or confirmations the freeze may be about (issue 26).
    "resolve": frozenset({Role.AUDITOR}),
    "request": frozenset(set(Role)),  # anyone on the staff may apply
    "submit": frozenset(set(Role)),  # the applicant, checked below
    "approve": frozenset({Role.APPROVER}),
    "deny": frozenset({Role.APPROVER}),
    "consult": frozenset({Role.PR}),
    "schedule": frozenset({Role.CUSTODIAN}),
    "view": frozenset({Role.CUSTODIAN}),  # the custodian who supervises the viewing
    "copy": frozenset({Role.CUSTODIAN}),
    "acknowledge": frozenset(set(Role)),  # the applicant, checked by name below
    "close": frozenset({Role.CUSTODIAN, Role.SUPERVISOR}),
}


@dataclass(frozen=True)
class Person:
    """A member of the station's staff."""

    id: str
    name: str
    roles: frozenset[Role]
    title: str = ""
    unit: str = ""

    @property
    def label(self) -> str:
        """How the custody log names them: ``王小明 (A12345)``."""
        return f"{self.name} ({self.id})"


class Purpose(StrEnum):
    """Why footage is viewed or copied (REG-5.2, REG-6)."""

    INVESTIGATION = "investigation"  # crime investigation
    COMPLAINT = "complaint"  # a citizen's complaint
    OFFICIAL = "official"  # other official need
    MEDIA = "media"  # REG-6: media statements
    CAMPAIGN = "campaign"  # REG-6: crime-prevention campaigns
    TRAINING = "training"  # REG-6: training


def needs_pr(purpose: Purpose) -> bool:
    """Media or external disclosure: the public-relations unit is consulted (Annex 2 note)."""
    return purpose in (Purpose.MEDIA, Purpose.CAMPAIGN)


class State(StrEnum):
    """An Annex 2 request's states."""

    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    DENIED = "denied"
    SCHEDULED = "scheduled"
    DONE = "done"  # viewed and/or copied as approved
    ACKNOWLEDGED = "acknowledged"  # the applicant signed for it
    CLOSED = "closed"
    EXPIRED = "expired"  # approved, never used in time


# Requests in these states hold the footage they cover (REG-4.3.1).
OPEN = frozenset({State.DRAFT, State.SUBMITTED, State.APPROVED, State.SCHEDULED, State.DONE,
                  State.ACKNOWLEDGED})  # fmt: skip

_NEXT: dict[str, tuple[frozenset[State], State | None]] = {
    "submit": (frozenset({State.DRAFT}), State.SUBMITTED),
    "consult": (frozenset({State.SUBMITTED}), None),
    "approve": (frozenset({State.SUBMITTED}), State.APPROVED),
    "deny": (frozenset({State.SUBMITTED}), State.DENIED),
    "schedule": (frozenset({State.APPROVED, State.SCHEDULED}), State.SCHEDULED),
    "view": (frozenset({State.SCHEDULED, State.DONE}), State.DONE),
    "copy": (frozenset({State.SCHEDULED, State.DONE}), State.DONE),
    "acknowledge": (frozenset({State.DONE}), State.ACKNOWLEDGED),
    "close": (frozenset({State.ACKNOWLEDGED, State.DENIED, State.EXPIRED}), State.CLOSED),
}


# How far along the workflow a state is: an action whose states are all behind the request's
# was overtaken (someone else moved it on first), not asked too early.
_STAGE = {State.DRAFT: 0, State.SUBMITTED: 1, State.APPROVED: 2, State.DENIED: 2,
          State.SCHEDULED: 3, State.EXPIRED: 3, State.DONE: 4, State.ACKNOWLEDGED: 5,
          State.CLOSED: 6}  # fmt: skip


def overtaken(state: State, action: str) -> bool:
    """Whether ``action`` no longer applies because the request moved past it (approved twice,
    denied while being approved): a conflict, answered with who moved it and when."""
    allowed, _ = _NEXT[action]
    return state not in allowed and _STAGE[state] > max(_STAGE[s] for s in allowed)


def transition(state: State, action: str) -> State:
    """The state after ``action``; raises ValueError (with why) when it does not apply."""
    allowed, after = _NEXT[action]
    if state not in allowed:
        names = " or ".join(sorted(s.value for s in allowed))
        raise ValueError(f"the request is {state.value}; {action} needs it {names}")
    return after or state


@dataclass(frozen=True)
class Request:
    """What the rules need of a request."""

    number: str
    state: State
    applicant: str  # staff id
    created_by: str
    kind: str  # view | copy | both
    purpose: Purpose
    approved_by: str | None = None
    approved_until: datetime | None = None
    pr_consulted: bool = False
    window_start: datetime | None = None  # the scheduled viewing/copy time
    window_end: datetime | None = None
    approved_by_id: str | None = None  # staff id: duties are separated by identity (issue 27)


def refusal(person: Person | None, action: str, request: Request | None = None,
            now: datetime | None = None) -> str | None:  # fmt: skip
    """Why ``person`` may not take ``action`` (on ``request``), or None. ``person`` None: the
    station has no staff list (a bare catalog): nothing but the request's own rules apply."""
    if person is not None and not (ACTIONS[action] & person.roles):
        need = " or ".join(sorted(r.value for r in ACTIONS[action]))
        return f"{person.label} may not {action}: that needs the role {need}"
    if request is None:
        return None
    who = person.id if person is not None else None
    try:
        transition(request.state, action)
    except ValueError as exc:
        return f"request {request.number}: {exc}"
    if action in ("approve", "deny") and who in (request.applicant, request.created_by):
        return f"request {request.number}: nobody approves or denies their own request"
    if action == "approve" and needs_pr(request.purpose) and not request.pr_consulted:
        return (f"request {request.number}: a {request.purpose.value} request is approved only "
                "after the public-relations unit is consulted (REG-6)")  # fmt: skip
    if action == "submit" and who is not None and who not in (request.applicant,
                                                              request.created_by):  # fmt: skip
        return f"request {request.number}: only its applicant submits it"
    if action == "acknowledge" and who is not None and who != request.applicant:
        return f"request {request.number}: only the applicant signs for it"
    if action in ("view", "copy") and who is not None and who in (
            request.applicant, request.created_by, request.approved_by_id):  # fmt: skip
        return (f"request {request.number}: nobody supervises a viewing of, or copies, a "
                "request they applied for or approved (separated duties, REG-5.1)")  # fmt: skip
    if action in ("view", "copy"):
        if request.kind not in ("both", action):
            return f"request {request.number} approves a {request.kind}, not a {action}"
        if now is not None and request.approved_until and now > request.approved_until:
            return f"request {request.number}: its approval expired at {request.approved_until}"
        if now is not None and request.window_start and request.window_end and not (
                request.window_start <= now <= request.window_end):  # fmt: skip
            start = request.window_start.strftime("%Y-%m-%d %H:%M")
            end = request.window_end.strftime("%H:%M")
            return f"request {request.number}: scheduled for {start}–{end}, not now"
    return None


# The steps of a request, in the order the console offers them (Annex 2).
STEPS = ("submit", "consult", "approve", "deny", "schedule", "view", "copy", "acknowledge",
         "close")  # fmt: skip


def open_steps(
    person: Person | None, request: Request, now: datetime | None = None
) -> tuple[str, ...]:
    """The steps ``person`` may take on ``request`` now: exactly those ``refusal`` lets
    through, so the console offers a button only where the daemon would act (issue 29)."""
    return tuple(a for a in STEPS if refusal(person, a, request, now) is None)
