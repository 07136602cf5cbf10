"""Walking parsed TOML while collecting every problem with its key path, and the small checks
the sections share."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "MAX_GPIO",
    "Reader",
    "absolute",
    "between",
    "existing_file",
    "nonempty",
    "pin",
    "topic_segment_problem",
]

T = TypeVar("T")
MAX_GPIO = 53  # BCM numbering on every Pi model


class Reader:
    """Walks the parsed TOML, collecting problems instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, path: str, message: str) -> None:
        """Note a problem at a key path."""
        self.problems.append(f"{path}: {message}")

    def table(self, data: Any, path: str, known: set[str]) -> dict[str, Any]:
        """``data`` as a table, noting unknown keys (typos) and a non-table."""
        if not isinstance(data, dict):
            self.problem(path, f"must be a table, not {type(data).__name__}")
            return {}
        for key in sorted(set(data) - known):
            self.problem(f"{path}.{key}" if path else key, "unknown key (typo?)")
        return data

    def list(self, top: dict[str, Any], key: str) -> list[Any]:
        """An array of tables (``[[key]]``), or [] with a problem noted."""
        value = top.get(key, [])
        if not isinstance(value, list):
            self.problem(key, f"must be an array of tables ([[{key}]])")
            return []
        return value

    def get(
        self,
        data: dict[str, Any],
        path: str,
        key: str,
        kind: type[T],
        default: T | None = None,
        required: bool = True,
        check: Callable[[T], str | None] | None = None,
    ) -> T | None:
        """``data[key]`` checked for type and by ``check``; the default when missing or bad."""
        where = f"{path}.{key}" if path else key
        if key not in data:
            if required and default is None:
                self.problem(where, "missing")
            return default
        value = data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # TOML writes 2 for 2.0
        if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
            self.problem(where, f"must be {kind.__name__}, not {type(value).__name__} {value!r}")
            return default
        if check is not None and (msg := check(value)) is not None:
            self.problem(where, msg)
            return default
        return value


def between(low: float, high: float, unit: str = "") -> Callable[[Any], str | None]:
    """A number from ``low`` to ``high`` (finite): a value outside it is a typo, not a wish."""

    def check(value: float) -> str | None:
        if not math.isfinite(value) or not low <= value <= high:
            return f"must be from {low:g} to {high:g}{unit}, not {value!r}"
        return None

    return check


def existing_file(value: str) -> str | None:
    """An absolute path to a file that is there now."""
    if (problem := absolute(value)) is not None:
        return problem
    return None if Path(value).is_file() else f"{value} does not exist (or is not a file)"


def nonempty(value: str) -> str | None:
    """Not blank."""
    return None if value.strip() else "must not be empty"


def topic_segment_problem(value: str) -> str | None:
    """Why ``value`` cannot be one level of an MQTT topic (the station id is), or None."""
    if not value.strip():
        return "must not be empty"
    if set(value) & set("/+#") or any(ord(c) < 0x20 for c in value):
        return "one MQTT topic level: no '/', '+', '#' or control characters"
    return None


def absolute(value: str) -> str | None:
    """An absolute path."""
    return None if value.startswith("/") else "must be an absolute path"


def pin(value: int) -> str | None:
    """A GPIO pin number."""
    return None if 0 <= value <= MAX_GPIO else f"GPIO {value} is not a pin (0–{MAX_GPIO})"
