"""What a day's seal must hold (REG-4.2.5), and when a day needs a person. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, timedelta

__all__ = ["alarms", "check", "due_days"]


def check(
    expected: Mapping[str, tuple[str, int]], found: Mapping[str, tuple[str, int]]
) -> list[str]:
    """Every way an archive read back from disk differs from the catalog's list for its day:
    nothing missing, nothing extra, every member's SHA-256 and size equal."""
    problems = [f"{name}: missing from the archive" for name in sorted(set(expected) - set(found))]
    problems += [f"{name}: in the archive, not in the catalog"
                 for name in sorted(set(found) - set(expected))]  # fmt: skip
    for name in sorted(set(expected) & set(found)):
        if found[name] != expected[name]:
            (want, size), (got, got_size) = expected[name], found[name]
            problems.append(f"{name}: SHA-256 {got} ({got_size} bytes) in the archive, "
                            f"{want} ({size}) in the catalog")  # fmt: skip
    return problems


def due_days(dirty: Iterable[str], today: date) -> list[date]:
    """The days to seal now: changed since their seal (or never sealed), and over."""
    return sorted(d for d in (date.fromisoformat(x) for x in dirty) if d < today)


def alarms(
    today: date,
    dirty: Iterable[str],
    unconfirmed: Iterable[str],
    after_days: int,
) -> list[str]:
    """Days unsealed, or sealed and unconfirmed, ``after_days`` after they ended."""
    late = today - timedelta(days=after_days)
    out = [f"duty day {d} not sealed (REG-4.2.5)" for d in sorted(dirty) if d < late.isoformat()]
    out += [f"duty day {d} sealed but not confirmed by a supervisor (REG-4.2.5)"
            for d in sorted(unconfirmed) if d < late.isoformat()]  # fmt: skip
    return out
