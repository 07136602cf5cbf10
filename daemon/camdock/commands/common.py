"""What the commands share: where the catalog is, the filing zone, loading a config with every
problem printed, a HOST[:PORT] address, and printing errors as one line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from camdock import clock
from camdock.catalog import chainkey, open_catalog, open_readonly
from camdock.catalog.db import DatabaseError, Row, catalog_error
from camdock.config import Config, ConfigError, file_problems
from camdock.config import load as load_config
from camdock.core.access import NO_ROLES
from camdock.errors import CamdockError, ExitCode, NotAuthenticated, UsageError

__all__ = [
    "NO_ROLES",
    "Where",
    "act",
    "act_as",
    "broker_address",
    "by_from",
    "check_person",
    "day_arg",
    "day_text",
    "default_catalog",
    "direct",
    "int_between",
    "load_or_report",
    "moment_arg",
    "opened",
    "output",
    "person",
    "seal_key",
    "slot_minutes_arg",
    "station_tz",
    "text_arg",
    "through_cli",
    "through_daemon",
    "tz_name",
    "where_from",
]


def default_catalog() -> Path:
    """/var/lib/camdock/catalog.sqlite for root (the daemon's), else the user's state dir."""
    if os.geteuid() == 0:
        return Path("/var/lib/camdock/catalog.sqlite")
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "camdock" / "catalog.sqlite"


def station_tz(name: str | None) -> tzinfo:
    """The zone recordings are filed in: --tz, else the machine's /etc/localtime, else UTC."""
    return ZoneInfo(name) if name else clock.machine_zone()


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


def broker_address(text: str) -> tuple[str, int]:
    """HOST[:PORT] (an IPv6 address in brackets) → (host, port)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 1883
    host, sep, port = text.rpartition(":")
    return (host, int(port)) if sep else (text, 1883)


def person(value: str, what: str = "--by") -> str:
    """A person's name or staff id as given on the command line, normalised (NFC), never empty,
    and printable: every manual action names who did it (REG-7.1)."""
    text = unicodedata.normalize("NFC", value.encode("utf-8", "surrogateescape").decode(
        "utf-8", "replace"))  # fmt: skip
    if not text.strip() or any(unicodedata.category(c).startswith("C") for c in text):
        raise UsageError(f"{what}: name who acts, in printable characters")
    return text.strip()


STATION_CONFIG = Path("/etc/camdock/camdock.toml")


@dataclass(frozen=True)
class Where:
    """What a custodian's command works on: the station's config (or none: a bare catalog),
    the catalog, and today in the station's zone."""

    cfg: Config | None
    catalog: Path
    tz: tzinfo
    today: date


def where_from(args: argparse.Namespace) -> Where:
    """``--config FILE`` (default the station's, when there and no ``--catalog``) or a bare
    ``--catalog FILE``."""
    cfg = None
    path = args.config
    if path is None and args.catalog is None and STATION_CONFIG.is_file():
        path = STATION_CONFIG
    if path is not None:
        cfg = load_or_report(path)
        if cfg is None:
            raise CamdockError(f"invalid configuration {path}", ExitCode.CONFIG)
    catalog = args.catalog or (cfg.catalog if cfg else default_catalog())
    if cfg is not None and (key := chainkey.load(cfg.chain_key)) is not None:
        chainkey.use(key)  # run as the daemon's user: this command's entries are keyed too
    tz = cfg.tz if cfg else station_tz(None)
    return Where(cfg, catalog, tz, clock.now().astimezone(tz).date())


@contextmanager
def opened(where: Where, *, write: bool) -> Iterator[Database]:
    """The catalog, migrated for writing or read-only; SQLite errors in words."""
    if not where.catalog.is_file():
        raise CamdockError(f"no catalog at {where.catalog}", ExitCode.NOINPUT)
    try:
        db = open_catalog(where.catalog) if write else open_readonly(where.catalog)
    except (DatabaseError, CamdockError, OSError):
        if write and _a_station(where):  # issue 27: what matters is who, not file modes
            raise NotAuthenticated(
                "not authenticated: on a station every acting command goes through the "
                "running daemon (--config FILE --as STAFF); this catalog is not writable here, "
                "so the attempt is not recorded"
            ) from None
        raise
    try:
        yield db
    except DatabaseError as exc:
        raise catalog_error(where.catalog, exc) from exc
    finally:
        db.close()


def _a_station(where: Where) -> bool:
    """Whether the catalog (read-only) or the config say this is a station's (issue 27)."""
    from camdock.commands.remote import is_station

    try:
        ro = open_readonly(where.catalog)
    except (DatabaseError, CamdockError, OSError):
        return is_station(where.cfg, None)
    try:
        return is_station(where.cfg, ro)
    except DatabaseError:
        return is_station(where.cfg, None)
    finally:
        ro.close()


def by_from(args: argparse.Namespace) -> str:
    """``--by STAFF``, required and printable: every manual action names its person."""
    by = args.by or getattr(args, "as_", None)
    if not by:
        raise UsageError("--by STAFF: name who does this (recorded in the custody log)")
    return person(by)


def output(args: argparse.Namespace, doc: dict[str, Any], text: Callable[[], list[str]]) -> int:
    """One JSON document on stdout with ``--json``, else the text lines."""
    if args.json:
        print(json.dumps(doc, ensure_ascii=False, default=_plain))
    else:
        print("\n".join(text()))
    return ExitCode.OK


def _plain(value: object) -> object:
    """A catalog row as its columns; anything else json cannot take as its text."""
    return value.as_dict() if isinstance(value, Row) else str(value)


def moment_arg(text: str | None, where: Where, what: str, *, end: bool = False
               ) -> datetime | None:  # fmt: skip
    """YYYY-MM-DD (the whole day: its first or, with ``end``, its last moment) or a date and
    time, in the station's zone unless it says otherwise; None stays None."""
    if text is None:
        return None
    try:
        if len(text) == 10:
            moment = datetime.combine(date.fromisoformat(text), time.max if end else time.min)
        else:
            moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
    if not 2000 <= moment.year <= 9998:  # year 1 or 9999 overflow on the way to UTC
        raise UsageError(f"{what}: {text!r}: a time between the years 2000 and 9998")
    return moment if moment.tzinfo else moment.replace(tzinfo=where.tz)


def day_arg(text: str) -> date:
    """A duty day on the command line: YYYY-MM-DD, a day that exists, in years camdock can
    reach (2000-9998: a UTC conversion of year 1 or 9999 overflows)."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day (YYYY-MM-DD)") from None
    if not 2000 <= day.year <= 9998:
        raise argparse.ArgumentTypeError(f"{text!r}: a day between 2000 and 9998")
    return day


def day_text(text: str) -> str:
    """``day_arg`` as the catalog's text (YYYY-MM-DD)."""
    return day_arg(text).isoformat()


def slot_minutes_arg(text: str) -> int:
    """A duty slot's length in minutes: 1 to 1440 and a divisor of a day."""
    try:
        minutes = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of minutes") from None
    if not 1 <= minutes <= 24 * 60 or (24 * 60) % minutes:
        raise argparse.ArgumentTypeError(f"{minutes}: minutes that divide a day (240, 480 …)")
    return minutes


def text_arg(text: str) -> str:
    """A text an acting command records (a reason, a badge, a case): never empty, printable,
    UTF-8 (issue 29: ``--reason ''`` and ``--officer ''`` were accepted)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8 arrive as surrogates: cli.main
        return text  # refuses them after parsing, with --json's document (_text_arguments)
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty text: say it")
    if any(unicodedata.category(c) in ("Cc", "Cs", "Co", "Cn") for c in text):
        raise argparse.ArgumentTypeError("control characters are not allowed")
    return text.strip()


def int_between(lo: int, hi: int, what: str) -> Callable[[str], int]:
    """An argparse type: an integer from ``lo`` to ``hi`` (``what`` says what it counts)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value}: {what} from {lo} to {hi}")
        return value

    parse.__name__ = what  # argparse names the type in its message
    return parse


def act(
    where: Where, db: Database, args: argparse.Namespace, action: str
) -> tuple[str, str | None]:
    """The person ``--by`` names, checked (``check_person``)."""
    return check_person(where.cfg, db, by_from(args), action)


def act_as(
    where: Where, db: Database, args: argparse.Namespace, action: str
) -> tuple[str, str, str | None]:
    """``act``, with the person's staff id: duties are separated by identity, never by a name
    (issue 27); without a staff list the name given is all there is, and serves as both."""
    from camdock.services.access import authorize

    topics = where.cfg.topics if where.cfg else None
    who = direct(where.cfg, db, by_from(args), action)  # a station's acts go through its daemon
    authorize(db, who, action, topics)
    ident = who.person.id if who.person is not None else who.label
    return who.label, ident, None if who.checked else NO_ROLES


def check_person(cfg: Config | None, db: Database, by: str, action: str) -> tuple[str, str | None]:
    """``by`` acting directly on a development catalog (``direct``), with the rules' check of
    ``action``. Returns how the custody log names them ("… (unverified actor)") and the note
    every output carries."""
    from camdock.services.access import authorize

    who = direct(cfg, db, by, action)
    authorize(db, who, action, cfg.topics if cfg else None)
    return who.label, None if who.checked else NO_ROLES


def direct(cfg: Config | None, db: Database, by: str, action: str) -> Any:
    """Who acts on a catalog opened by the command itself (services.access.Acting): on a
    station (staff in its config or its catalog) nobody — acting goes through the daemon, and
    the attempt is refused and recorded (REG-4.1.1, REG-7.1); on a development catalog ``by``,
    as an unverified actor."""
    from camdock.commands.remote import is_station, refuse_direct
    from camdock.services.access import identify

    if is_station(cfg, db):
        raise refuse_direct(db, cfg, by, action)
    return identify(db, cfg, by, action, cfg.topics if cfg else None)


def through_cli() -> AbstractContextManager[None]:
    """What this command writes by itself names the channel ``cli`` (issue 27)."""
    from camdock.catalog import custody

    return custody.through("cli")


def through_daemon(where: Where) -> Config | None:
    """The station's config when acting must go through its daemon (it names staff), else
    None: a development catalog, acted on directly."""
    from camdock.commands.remote import is_station

    return where.cfg if is_station(where.cfg, None) else None


def seal_key(where: Where, password_file: Path | None, key_dir: Path | None = None) -> Any:
    """The seal password for a command (services.seal.Key), or None: ``--password-file`` or
    ``--key-dir`` (their problems are errors), else the station's credential or ``[seal]
    password_file`` (and ``key_dir``) if there."""
    from camdock.config import SealSettings
    from camdock.services.seal import SealKeyMissing, load_key

    settings = where.cfg.seal if where.cfg is not None else SealSettings()
    if password_file is not None or key_dir is not None:
        return load_key(settings, password_file, key_dir)
    if where.cfg is None:
        return None
    try:
        return load_key(settings)
    except SealKeyMissing:
        return None
