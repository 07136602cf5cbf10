"""The roster the station server publishes (retained): today's camera → officer assignments,
officers, and duty slots. Validated whole; a bad roster changes nothing (pure functions)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from camdock.core.naming import DutySlots, name_problem, name_text
from camdock.errors import RosterError
from camdock.model import Officer

__all__ = ["MAX_BYTES", "MAX_DEPTH", "Registry", "Roster", "RosterError", "parse"]

MAX_BYTES = 256 * 1024
MAX_DEPTH = 4  # object → assignments → assignment; deeper is not a roster


@dataclass(frozen=True)
class Registry:
    """What a roster is checked against: the station's unit, officers and cameras."""

    unit: str
    badges: frozenset[str]
    camera_ids: frozenset[str]


@dataclass(frozen=True)
class Roster:
    """A valid roster: the day's camera → officer assignments, officers and duty slots."""

    date: str
    assignments: dict[str, str]  # camera id → officer badge
    officers: tuple[Officer, ...]
    slots: DutySlots | None
    # Roles the server grants for the day (REG-4.1.1), by badge: e.g. the delegate approving
    # officer while the chief is away. Console passwords come only from the station's config.
    roles: dict[str, frozenset[str]] = field(default_factory=dict)


def parse(payload: bytes, cfg: Registry) -> Roster:
    """Validate a roster against its schema (docs/asyncapi.yaml, Roster) and this station's
    registry; every problem listed. Nothing in the payload can raise anything but RosterError:
    size and nesting are bounded before parsing, every value's type is checked before use."""
    data = _load(payload)
    problems: list[str] = []
    allowed = {"version", "date", "assignments", "officers", "duty_slots", "issued"}
    problems += [f"{k}: unknown key" for k in sorted(set(data) - allowed)]
    version = data.get("version")
    if type(version) is not int or version != 1:  # not True: bool is an int in Python
        problems.append(f"version: must be 1, not {_show(version)}")
    day = data.get("date")
    if not isinstance(day, str) or not _is_date(day):
        problems.append(f"date: must be a day YYYY-MM-DD, not {_show(day)}")
    if "issued" in data and not isinstance(data["issued"], str):
        problems.append("issued: must be a date-time string")
    officers = _officers(data, cfg, problems)
    roles = _roles(data, problems)
    assignments = _assignments(data, cfg, {o.badge for o in officers}, problems)
    slots = None
    if "duty_slots" in data:
        marks = data["duty_slots"]
        if not isinstance(marks, list) or not all(isinstance(m, str) for m in marks):
            problems.append("duty_slots: must be a list of HH:MM")
        else:
            try:
                slots = DutySlots.parse(",".join(marks))
            except ValueError as exc:
                problems.append(f"duty_slots: {exc}")
    if problems:
        raise RosterError(problems)
    assert isinstance(day, str)
    return Roster(day, assignments, tuple(officers), slots, roles)


def _load(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_BYTES:
        raise RosterError([f"roster is {len(payload)} bytes; the limit is {MAX_BYTES}"])
    if (depth := _depth(payload)) > MAX_DEPTH:
        raise RosterError([f"roster nests {depth} levels deep; a roster has {MAX_DEPTH}"])
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError also covers a number too long to convert (int digits limit).
        raise RosterError([f"not JSON: {str(exc)[:200]}"]) from exc
    if not isinstance(data, dict):
        raise RosterError(["a roster is a JSON object"])
    return data


def _depth(payload: bytes) -> int:
    """How deep the JSON nests, counted without parsing it (strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in payload:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _officers(data: dict[str, Any], cfg: Registry, problems: list[str]) -> list[Officer]:
    officers: list[Officer] = []
    for i, o in enumerate(_list(data, "officers", problems)):
        if (
            not isinstance(o, dict)
            or set(o) - {"badge", "name", "unit", "roles"}
            or not all(isinstance(o.get(k), str) and o.get(k) for k in ("badge", "name"))
            or not isinstance(o.get("unit", ""), str)
        ):
            problems.append(f"officers[{i}]: needs badge and name (strings), nothing else but unit")
            continue
        bad = [f"officers[{i}].{k}: {p}" for k in ("badge", "name", "unit")
               if k in o and (p := name_problem(o[k] or "-"))]  # fmt: skip
        if bad:
            problems += bad
            continue
        unit = name_text(o.get("unit") or "") or cfg.unit
        officers.append(Officer(name_text(o["badge"]), name_text(o["name"]), unit))
    return officers


def _roles(data: dict[str, Any], problems: list[str]) -> dict[str, frozenset[str]]:
    granted: dict[str, frozenset[str]] = {}
    known = {"officer", "custodian", "supervisor", "approver", "pr", "auditor"}
    officers = data.get("officers")
    for i, o in enumerate(officers if isinstance(officers, list) else []):
        if not isinstance(o, dict) or "roles" not in o:
            continue
        roles = o["roles"]
        if not isinstance(roles, list) or not all(isinstance(r, str) and r in known
                                                  for r in roles):  # fmt: skip
            problems.append(f"officers[{i}].roles: a list of {', '.join(sorted(known))}")
            continue
        if isinstance(o.get("badge"), str):
            granted[name_text(o["badge"])] = frozenset(roles)
    return granted


def _assignments(
    data: dict[str, Any], cfg: Registry, listed: set[str], problems: list[str]
) -> dict[str, str]:
    known_badges = set(cfg.badges) | listed
    assignments: dict[str, str] = {}
    for i, a in enumerate(_list(data, "assignments", problems)):
        if (
            not isinstance(a, dict)
            or set(a) != {"camera", "officer"}
            or not all(isinstance(a[k], str) for k in ("camera", "officer"))
        ):
            problems.append(f"assignments[{i}]: must be {{camera, officer}}, both strings")
            continue
        camera, badge = name_text(a["camera"]), name_text(a["officer"])
        if camera not in cfg.camera_ids:
            problems.append(
                f"assignments[{i}].camera: {_show(camera)} is not registered at this station"
            )
        if badge not in known_badges:
            problems.append(f"assignments[{i}].officer: unknown badge {_show(badge)}")
        if camera in assignments:
            problems.append(f"assignments[{i}].camera: {_show(camera)} is assigned twice")
        assignments[camera] = badge
    return assignments


def _is_date(text: str) -> bool:
    try:
        return len(text) == 10 and date.fromisoformat(text).isoformat() == text
    except ValueError:
        return False


def _show(value: object) -> str:
    """A value for a problem message: bounded, and printable whatever it holds."""
    text = ascii(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _list(data: dict[str, Any], key: str, problems: list[str]) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        problems.append(f"{key}: must be a list")
        return []
    return value
