"""The roster the station server publishes (retained): today's camera → officer assignments,
officers, and duty slots. Validated whole; a bad roster changes nothing (pure functions)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from camdock.core.naming import DutySlots
from camdock.errors import RosterError
from camdock.model import Officer

__all__ = ["MAX_BYTES", "Registry", "Roster", "RosterError", "parse"]

MAX_BYTES = 256 * 1024


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


def parse(payload: bytes, cfg: Registry) -> Roster:
    """Validate a roster against its schema and this station's registry; every problem listed."""
    if len(payload) > MAX_BYTES:
        raise RosterError([f"roster is {len(payload)} bytes; the limit is {MAX_BYTES}"])
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RosterError([f"not JSON: {exc}"]) from exc
    if not isinstance(data, dict):
        raise RosterError(["a roster is a JSON object"])
    problems: list[str] = []
    allowed = {"version", "date", "assignments", "officers", "duty_slots", "issued"}
    problems += [f"{k}: unknown key" for k in sorted(set(data) - allowed)]
    if data.get("version") != 1:
        problems.append(f"version: must be 1, not {data.get('version')!r}")
    date = data.get("date")
    if not isinstance(date, str) or len(date) != 10:
        problems.append("date: must be YYYY-MM-DD")
    officers: list[Officer] = []
    for i, o in enumerate(_list(data, "officers", problems)):
        if (
            not isinstance(o, dict)
            or set(o) - {"badge", "name", "unit"}
            or not all(isinstance(o.get(k), str) and o.get(k) for k in ("badge", "name"))
        ):
            problems.append(f"officers[{i}]: needs badge and name (strings), nothing else but unit")
            continue
        officers.append(Officer(o["badge"], o["name"], str(o.get("unit") or cfg.unit)))
    known_badges = set(cfg.badges) | {o.badge for o in officers}
    known_cameras = cfg.camera_ids
    assignments: dict[str, str] = {}
    for i, a in enumerate(_list(data, "assignments", problems)):
        if not isinstance(a, dict) or set(a) != {"camera", "officer"}:
            problems.append(f"assignments[{i}]: must be {{camera, officer}}")
            continue
        camera, badge = a["camera"], a["officer"]
        if camera not in known_cameras:
            problems.append(
                f"assignments[{i}].camera: {camera!r} is not registered at this station"
            )
        if badge not in known_badges:
            problems.append(f"assignments[{i}].officer: unknown badge {badge!r}")
        if camera in assignments:
            problems.append(f"assignments[{i}].camera: {camera!r} is assigned twice")
        assignments[str(camera)] = str(badge)
    slots = None
    if "duty_slots" in data:
        try:
            marks = data["duty_slots"]
            if not isinstance(marks, list) or not all(isinstance(m, str) for m in marks):
                raise ValueError("must be a list of HH:MM")
            slots = DutySlots.parse(",".join(marks))
        except ValueError as exc:
            problems.append(f"duty_slots: {exc}")
    if problems:
        raise RosterError(problems)
    return Roster(str(date), assignments, tuple(officers), slots)


def _list(data: dict[str, Any], key: str, problems: list[str]) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        problems.append(f"{key}: must be a list")
        return []
    return value
