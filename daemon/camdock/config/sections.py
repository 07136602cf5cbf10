"""One parser per section of the config file; each notes its problems on the shared Reader."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from camdock import passwords
from camdock.config.devices import bays, cameras, check_name, destinations, pin_factory
from camdock.config.reader import (
    Reader,
    absolute,
    between,
    nonempty,
    topic_segment_problem,
)
from camdock.config.settings import (
    ConsoleSettings,
    MqttSettings,
    SealSettings,
    SelfTestSettings,
    StationSettings,
)
from camdock.core.access import Person, Role
from camdock.core.naming import DutySlots, name_problem, name_text
from camdock.core.retention import MAX_DAYS, MIN_DAYS, Policy
from camdock.model import Officer

__all__ = [
    "Station",
    "access",
    "bays",
    "cameras",
    "custody",
    "destinations",
    "duty_slots",
    "mqtt",
    "officers",
    "pin_factory",
    "retention",
    "scrub",
    "seal",
    "selftest",
    "staff",
    "station",
]

STATION = StationSettings()


@dataclass(frozen=True)
class Station:
    """``[station]`` as parsed."""

    id: str
    unit: str
    tz: tzinfo
    state_dir: str | None
    run_dir: str | None
    max_concurrent_offloads: int | None
    camera_usb_ids: tuple[str, ...]
    offloads_per_bus: int = 0


def station(r: Reader, data: Any) -> Station:
    """``[station]``: id, unit, zone, state and run dirs, concurrency, camera USB ids."""
    keys = {"id", "unit", "timezone", "state_dir", "run_dir", "max_concurrent_offloads",
            "camera_usb_ids", "offloads_per_bus"}  # fmt: skip
    st = r.table(data, "station", keys)
    station_id = r.get(st, "station", "id", str, check=topic_segment_problem) or ""
    unit = r.get(st, "station", "unit", str, check=nonempty) or ""
    tz: tzinfo = ZoneInfo("UTC")
    tz_name = r.get(st, "station", "timezone", str, default=STATION.timezone)
    try:
        tz = ZoneInfo(tz_name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        r.problem("station.timezone", f"unknown time zone {tz_name!r}")
    state_dir = r.get(st, "station", "state_dir", str, default=STATION.state_dir, check=absolute)
    run_dir = r.get(st, "station", "run_dir", str, default=STATION.run_dir, check=absolute)
    max_conc = r.get(
        st, "station", "max_concurrent_offloads", int, default=STATION.max_concurrent_offloads,
        check=between(1, 64),
    )  # fmt: skip
    usb_ids: list[str] = []
    for i, value in enumerate(r.get(st, "station", "camera_usb_ids", list, default=[]) or []):
        if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{4}:[0-9a-f]{4}", value):
            usb_ids.append(value)
        else:
            r.problem(
                f"station.camera_usb_ids[{i}]", f"{value!r} is not vendor:product (1d6b:0104)"
            )
    per_bus = r.get(st, "station", "offloads_per_bus", int, default=0, check=between(0, 64))
    return Station(station_id, unit, tz, state_dir, run_dir, max_conc, tuple(usb_ids),
                   per_bus or 0)  # fmt: skip


def duty_slots(r: Reader, data: Any) -> DutySlots:
    """``[duty_slots]``: boundaries, or a slot length in minutes."""
    ds = r.table(data, "duty_slots", {"boundaries", "minutes"})
    slots = DutySlots.every(STATION.slot_minutes)
    if "boundaries" in ds:
        marks = r.get(ds, "duty_slots", "boundaries", list)
        if marks is not None:
            try:
                slots = DutySlots.parse(",".join(str(x) for x in marks))
            except ValueError as exc:
                r.problem("duty_slots.boundaries", str(exc))
    elif "minutes" in ds:
        minutes = r.get(ds, "duty_slots", "minutes", int)
        if minutes is not None:
            try:
                slots = DutySlots.every(minutes)
            except ValueError as exc:
                r.problem("duty_slots.minutes", str(exc))
    return slots


def officers(r: Reader, top: dict[str, Any], unit: str) -> dict[str, Officer]:
    """``[[officers]]``, by badge."""
    found: dict[str, Officer] = {}
    for i, raw in enumerate(r.list(top, "officers")):
        path = f"officers[{i}]"
        o = r.table(raw, path, {"badge", "name", "unit"})
        badge = r.get(o, path, "badge", str, check=check_name)
        name = r.get(o, path, "name", str, check=check_name)
        if badge is None or name is None:
            continue
        badge, name = name_text(badge), name_text(name)
        if badge in found:
            r.problem(f"{path}.badge", f"badge {badge!r} is listed twice")
        found[badge] = Officer(badge, name, r.get(o, path, "unit", str, default=unit) or unit)
    return found


def mqtt(r: Reader, data: Any, station_id: str) -> MqttSettings | None:
    """``[mqtt]``: broker, topics, TLS and credentials, outbox bounds."""
    d = MqttSettings(host="")
    keys = {"host", "hosts", "port", "topic_prefix", "client_id", "username", "password_file",
            "ca_file", "cert_file", "key_file", "keepalive", "protocol", "outbox_limit",
            "retention_days"}  # fmt: skip
    m = r.table(data, "mqtt", keys)
    port = r.get(
        m, "mqtt", "port", int, default=MqttSettings.TLS_PORT if "ca_file" in m else d.port,
        check=lambda v: None if 0 < v < 65536 else "not a TCP port",
    )  # fmt: skip
    hosts: list[tuple[str, int]] = []
    if "hosts" in m:
        if "host" in m:
            r.problem("mqtt", "give host or hosts, not both")
        listed = r.get(m, "mqtt", "hosts", list, check=lambda v: None if v else "empty")
        for i, entry in enumerate(listed or []):
            if not isinstance(entry, str) or (broker := _broker(entry, port or d.port)) is None:
                r.problem(f"mqtt.hosts[{i}]", f"not HOST or HOST:PORT: {entry!r}")
            else:
                hosts.append(broker)
        host = hosts[0][0] if hosts else None
    else:
        host = r.get(m, "mqtt", "host", str, check=nonempty)
    protocol = r.get(m, "mqtt", "protocol", str, default=d.protocol,
                     check=lambda v: None if v in ("5", "3.1.1") else '"5" or "3.1.1"')  # fmt: skip
    prefix = r.get(
        m, "mqtt", "topic_prefix", str, default=d.prefix,
        check=lambda v: (
            None if v and not set(v) & set("#+") and not v.endswith("/")
            else "no wildcards, no trailing /"
        ),
    )  # fmt: skip
    files: dict[str, Path | None] = {}
    for key in ("password_file", "ca_file", "cert_file", "key_file"):
        value = r.get(m, "mqtt", key, str, required=False, check=absolute)
        files[key] = Path(value) if value else None
    if (files["cert_file"] is None) != (files["key_file"] is None):
        r.problem("mqtt", "cert_file and key_file go together (client certificate)")
    if files["cert_file"] is not None and files["ca_file"] is None:
        r.problem("mqtt.ca_file", "missing: a client certificate needs TLS")
    # MQTT's keepalive is a 16-bit number of seconds; the others bound disk and memory.
    keepalive = r.get(m, "mqtt", "keepalive", int, default=d.keepalive,
                      check=between(1, 65535, " s"))  # fmt: skip
    limit = r.get(m, "mqtt", "outbox_limit", int, default=d.outbox_limit,
                  check=between(1, 10_000_000))  # fmt: skip
    days = r.get(m, "mqtt", "retention_days", int, default=d.retention_days,
                 check=between(1, 3650, " days"))  # fmt: skip
    if host is None or port is None:
        return None
    return MqttSettings(
        host=host,
        port=port,
        prefix=prefix or d.prefix,
        client_id=r.get(m, "mqtt", "client_id", str, required=False) or f"camdock-{station_id}",
        username=r.get(m, "mqtt", "username", str, required=False),
        password_file=files["password_file"],
        ca_file=files["ca_file"],
        cert_file=files["cert_file"],
        key_file=files["key_file"],
        keepalive=keepalive or d.keepalive,
        protocol=protocol or d.protocol,
        hosts=tuple(hosts),
        outbox_limit=limit or d.outbox_limit,
        retention_days=days or d.retention_days,
    )


def _broker(text: str, port: int) -> tuple[str, int] | None:
    """HOST, HOST:PORT or [IPv6]:PORT → (host, port); None when malformed."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d{1,5}))?|([^\s:\[\]/]+)(?::(\d{1,5}))?", text)
    if m is None:
        return None
    host, number = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    found = int(number) if number else port
    return (host, found) if 0 < found < 65536 else None


def selftest(r: Reader, data: Any) -> SelfTestSettings:
    """``[selftest]``: the pre-shift function test's policy (REG-3.2)."""
    d = SelfTestSettings()
    keys = {"min_battery", "max_drift_after_sync", "allowed_firmware", "spare_max_age_hours"}
    stt = r.table(data, "selftest", keys)
    battery = r.get(
        stt, "selftest", "min_battery", int, default=d.min_battery,
        check=lambda v: None if 0 <= v <= 100 else "a percentage",
    )  # fmt: skip
    drift = r.get(stt, "selftest", "max_drift_after_sync", float, default=d.max_drift_after_sync,
                  check=between(0.1, 3600, " s"))  # fmt: skip
    firmware = r.get(stt, "selftest", "allowed_firmware", list, default=[]) or []
    for i, fw in enumerate(firmware):
        if not isinstance(fw, str) or not fw.strip():
            r.problem(f"selftest.allowed_firmware[{i}]", "must be a version string")
    age = r.get(stt, "selftest", "spare_max_age_hours", float, default=d.spare_max_age_hours,
                check=between(0.5, 168, " h"))  # fmt: skip
    return SelfTestSettings(
        min_battery=battery or 0,
        max_drift_after_sync=float(drift or 0.0),
        allowed_firmware=tuple(str(v) for v in firmware),
        spare_max_age_hours=float(age or 0.0),
    )


def retention(r: Reader, data: Any) -> Policy:
    """``[retention]`` (REG-4.3.1): kept at least a month, destroyed within a year. A config may
    keep footage longer than 30 days and destroy it sooner than 365, never the other way."""
    d = Policy()
    keys = {"min_days", "max_days", "standing_authorisation", "authorisation_ref",
            "backup_generations"}  # fmt: skip
    t = r.table(data, "retention", keys)
    low = r.get(t, "retention", "min_days", int, default=d.min_days, check=between(
        MIN_DAYS, MAX_DAYS, " days (REG-4.3.1: at least one month)"))  # fmt: skip
    high = r.get(t, "retention", "max_days", int, default=d.max_days, check=between(
        MIN_DAYS, MAX_DAYS, " days (REG-4.3.1: at the latest one year)"))  # fmt: skip
    if low and high and high < low:
        r.problem("retention.max_days", f"{high} is less than min_days {low}")
    who = r.get(t, "retention", "standing_authorisation", str, required=False, check=lambda v:
                name_problem(v) or nonempty(v))  # fmt: skip
    ref = r.get(t, "retention", "authorisation_ref", str, required=False, check=nonempty)
    if ref and not who:
        r.problem("retention.authorisation_ref", "given without standing_authorisation")
    keep = r.get(t, "retention", "backup_generations", int, default=d.backup_generations,
                 check=between(1, 400))  # fmt: skip
    return Policy(low or d.min_days, high or d.max_days, who, ref, keep or d.backup_generations)


def seal(r: Reader, data: Any) -> SealSettings:
    """``[seal]`` (REG-4.2.5): where the password comes from (never the password itself)."""
    d = SealSettings()
    keys = {"key_id", "credential", "password_file", "sealed_by", "alarm_after_days",
            "automatic", "password", "keep_plain_days", "key_dir"}  # fmt: skip
    t = r.table(data, "seal", keys)
    if "password" in t:
        r.problem("seal.password", "the password never goes in the config: use password_file "
                  "(root-only) or the systemd credential")  # fmt: skip
    key_id = r.get(t, "seal", "key_id", str, default=d.key_id, check=nonempty)
    cred = r.get(t, "seal", "credential", str, default=d.credential,
                 check=lambda v: None if re.fullmatch(r"[A-Za-z0-9_.-]+", v) else
                 "letters, digits, '_', '.', '-' (a systemd credential name)")  # fmt: skip
    pwfile = r.get(t, "seal", "password_file", str, required=False, check=absolute)
    ring = r.get(t, "seal", "key_dir", str, required=False, check=absolute)
    who = r.get(t, "seal", "sealed_by", str, required=False, check=nonempty)
    days = r.get(t, "seal", "alarm_after_days", int, default=d.alarm_after_days,
                 check=between(1, 60, " days"))  # fmt: skip
    auto = r.get(t, "seal", "automatic", bool, default=d.automatic)
    keep = r.get(t, "seal", "keep_plain_days", int, required=False, check=between(0, 3650,
                 " days"))  # fmt: skip
    return SealSettings(key_id=key_id or d.key_id, credential=cred or d.credential,
                        password_file=Path(pwfile) if pwfile else None,
                        key_dir=Path(ring) if ring else None, sealed_by=who,
                        alarm_after_days=days or d.alarm_after_days,
                        automatic=d.automatic if auto is None else auto,
                        keep_plain_days=keep)  # fmt: skip


def staff(r: Reader, top: dict[str, Any], unit: str, officers: dict[str, Officer]
          ) -> tuple[dict[str, Person], dict[str, str]]:  # fmt: skip
    """``[[staff]]`` (REG-4.1.1): who acts at this station, with their roles, and each one's
    console password hash. Every ``[[officers]]`` entry is staff with the officer role (an
    officer may apply for a copy, and signs for it)."""
    people = {b: Person(b, o.name, frozenset({Role.OFFICER}), "", o.unit)
              for b, o in officers.items()}  # fmt: skip
    hashes: dict[str, str] = {}
    roles_known = ", ".join(r.value for r in Role)
    for i, raw in enumerate(r.list(top, "staff")):
        path = f"staff[{i}]"
        t = r.table(raw, path, {"id", "name", "title", "unit", "roles", "password_hash"})
        sid = r.get(t, path, "id", str, check=check_name)
        name = r.get(t, path, "name", str, check=check_name)
        roles = r.get(t, path, "roles", list, default=[]) or []
        got = set()
        for j, role in enumerate(roles):
            if role not in {x.value for x in Role}:
                r.problem(f"{path}.roles[{j}]", f"{role!r} is not a role ({roles_known})")
            else:
                got.add(Role(role))
        if not got:
            r.problem(f"{path}.roles", f"give at least one role ({roles_known})")
        pw = r.get(t, path, "password_hash", str, required=False, check=passwords.problem)
        if sid is None or name is None:
            continue
        sid = name_text(sid)
        if sid in hashes or (sid in people and sid not in officers):
            r.problem(f"{path}.id", f"staff id {sid!r} is listed twice")
        before = people.get(sid)
        people[sid] = Person(sid, name_text(name), frozenset(got) | (before.roles if before
                             else frozenset()), r.get(t, path, "title", str, default="") or "",
                             r.get(t, path, "unit", str, default=unit) or unit)  # fmt: skip
        if pw:
            hashes[sid] = pw
    return people, hashes


def access(r: Reader, data: Any) -> int:
    """``[access]`` (issue 27): ``draft_days``, after which an unsubmitted request expires and
    stops holding the footage it selected."""
    t = r.table(data, "access", {"draft_days"})
    return r.get(t, "access", "draft_days", int, default=7, check=between(1, 90, " days")) or 7


def scrub(r: Reader, data: Any) -> int:
    """``[scrub]`` (REG-7.2): every stored copy is read back again within ``days``."""
    t = r.table(data, "scrub", {"days"})
    return r.get(t, "scrub", "days", int, default=30, check=between(1, 365, " days")) or 30


def custody(r: Reader, data: Any) -> str | None:
    """``[custody]``: the chain key's file (catalog/chainkey), made by the daemon at its first
    start; default ``<state_dir>/chain.key``."""
    t = r.table(data, "custody", {"key_file"})
    return r.get(t, "custody", "key_file", str, required=False, check=absolute)


def console(r: Reader, data: Any) -> ConsoleSettings:
    """``[console]`` (issue 27): a session's idle timeout and absolute lifetime."""
    t = r.table(data, "console", {"idle_minutes", "absolute_hours"})
    d = ConsoleSettings()
    idle = r.get(t, "console", "idle_minutes", int, default=d.idle_minutes,
                 check=between(1, 480, " minutes"))  # fmt: skip
    absolute = r.get(t, "console", "absolute_hours", int, default=d.absolute_hours,
                     check=between(1, 24, " hours"))  # fmt: skip
    return ConsoleSettings(idle or d.idle_minutes, absolute or d.absolute_hours)
