"""What the commands share: where the catalog is, the filing zone, loading a config with every
problem printed, and printing errors as one line."""

from __future__ import annotations

import os
import sys
import unicodedata
from datetime import tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

from camdock.config import Config, ConfigError, file_problems
from camdock.config import load as load_config
from camdock.errors import UsageError

__all__ = ["NO_ROLES", "default_catalog", "load_or_report", "person", "station_tz", "tz_name"]

NO_ROLES = "no role was checked: staff roles arrive with the access workflow"


def default_catalog() -> Path:
    """/var/lib/camdock/catalog.sqlite for root (the daemon's), else the user's state dir."""
    if os.geteuid() == 0:
        return Path("/var/lib/camdock/catalog.sqlite")
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "camdock" / "catalog.sqlite"


def station_tz(name: str | None) -> tzinfo:
    """The zone recordings are filed in: --tz, else the machine's /etc/localtime, else UTC."""
    if name:
        return ZoneInfo(name)
    try:
        with open("/etc/localtime", "rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError):
        return ZoneInfo("UTC")


def tz_name(tz: tzinfo) -> str:
    """A zone's name as people write it (Asia/Taipei), or its abbreviation."""
    return str(getattr(tz, "key", None) or tz)


def load_or_report(path: Path, *, files: bool = False) -> Config | None:
    """The config, or None after printing every problem with its key path to stderr; with
    ``files``, the files it names (credentials, CA) must be there too."""
    try:
        cfg = load_config(path)
        if files and (problems := file_problems(cfg)):
            raise ConfigError(str(path), problems)
        return cfg
    except ConfigError as exc:
        print(f"camdock: invalid configuration {exc.source}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return None


def person(value: str, what: str = "--by") -> str:
    """A person's name or staff id as given on the command line, normalised (NFC), never empty,
    and printable: every manual action names who did it (REG-7.1)."""
    text = unicodedata.normalize("NFC", value.encode("utf-8", "surrogateescape").decode(
        "utf-8", "replace"))  # fmt: skip
    if not text.strip() or any(unicodedata.category(c).startswith("C") for c in text):
        raise UsageError(f"{what}: name who acts, in printable characters")
    return text.strip()
