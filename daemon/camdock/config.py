"""Station configuration: one TOML file, validated in one pass into frozen dataclasses.

Every problem is collected with its key path (``bays[2].led.red: pin 17 is also used by
bays[1].button``) and reported together; the daemon then exits with 78 (EX_CONFIG) so systemd
does not restart-loop on a bad file.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path, PurePath
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from camdock.core.naming import DutySlots

EX_CONFIG = 78
FILESYSTEMS = ("vfat", "exfat", "ext4")
MAX_GPIO = 53  # BCM numbering on every Pi model

Ownership = Literal["agency", "personal"]


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` lists each one with its key path."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s)\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class Led:
    """An RGB LED (three PWM pins), separate red/amber/green LEDs, or a red/green bicolour LED
    (two pins; amber is both on) — the last fits eight bays on a 40-pin header."""

    kind: Literal["rgb", "separate", "bicolour"]
    red: int
    green: int
    amber: int | None = None  # separate LEDs only; an RGB LED mixes amber
    blue: int | None = None  # RGB only

    @property
    def pins(self) -> tuple[int, ...]:
        return tuple(p for p in (self.red, self.amber, self.green, self.blue) if p is not None)


@dataclass(frozen=True)
class Bay:
    number: int
    usb_port: str | None  # the usb_device sys_name, the physical port path (e.g. "1-1.3")
    id_path: str | None  # or a glob over udev's ID_PATH
    led: Led
    button: int

    def owns(self, port: str | None, id_path: str | None) -> bool:
        if self.usb_port is not None:
            return port == self.usb_port
        return id_path is not None and PurePath(id_path).match(self.id_path or "")


@dataclass(frozen=True)
class Officer:
    badge: str
    name: str
    unit: str


@dataclass(frozen=True)
class Camera:
    serial: str  # USB serial number
    id: str  # the agency's camera id, used in file names
    model: str
    ownership: Ownership  # REG-2: agency-owned or the officer's own, both covered
    officer: str | None  # badge of the assigned officer
    spare: bool


@dataclass(frozen=True)
class MqttSettings:
    host: str
    port: int = 1883
    prefix: str = "camdock"
    client_id: str | None = None
    username: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive: int = 30
    outbox_limit: int = 100_000  # undelivered events; beyond it the station takes no new offloads
    retention_days: int = 30  # delivered events are pruned after this


@dataclass(frozen=True)
class SelfTestSettings:
    """The pre-shift function test (REG-3.2)."""

    min_battery: int = 80
    max_drift_after_sync: float = 2.0
    allowed_firmware: tuple[str, ...] = ()
    spare_max_age_hours: float = 12.0  # a spare must have passed its own test this recently


@dataclass(frozen=True)
class Config:
    station_id: str
    unit: str
    tz: tzinfo
    state_dir: Path
    run_dir: Path
    footage: Path
    backup: Path
    slots: DutySlots
    max_concurrent_offloads: int
    pin_factory: str
    bays: tuple[Bay, ...]
    cameras: dict[str, Camera]  # by USB serial
    officers: dict[str, Officer]  # by badge
    mqtt: MqttSettings | None = None  # None: events stay in the outbox
    camera_usb_ids: tuple[str, ...] = ()  # "vendor:product" of the camera models (udev rules)
    selftest: SelfTestSettings = field(default_factory=lambda: SelfTestSettings())
    source: str = field(default="<memory>", compare=False)

    @property
    def catalog(self) -> Path:
        return self.state_dir / "catalog.sqlite"

    def bay_for(self, port: str | None, id_path: str | None) -> Bay | None:
        return next((b for b in self.bays if b.owns(port, id_path)), None)

    def officer_for(self, camera: Camera) -> Officer | None:
        return self.officers.get(camera.officer) if camera.officer else None


T = TypeVar("T")


class _Reader:
    """Walks the parsed TOML, collecting problems instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def table(self, data: Any, path: str, known: set[str]) -> dict[str, Any]:
        if not isinstance(data, dict):
            self.problem(path, f"must be a table, not {type(data).__name__}")
            return {}
        for key in sorted(set(data) - known):
            self.problem(f"{path}.{key}" if path else key, "unknown key (typo?)")
        return data

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


def _nonempty(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def topic_segment_problem(value: str) -> str | None:
    """Why ``value`` cannot be one level of an MQTT topic (the station id is), or None."""
    if not value.strip():
        return "must not be empty"
    if set(value) & set("/+#") or any(ord(c) < 0x20 for c in value):
        return "one MQTT topic level: no '/', '+', '#' or control characters"
    return None


def _absolute(value: str) -> str | None:
    return None if value.startswith("/") else "must be an absolute path"


def _pin(value: int) -> str | None:
    return None if 0 <= value <= MAX_GPIO else f"GPIO {value} is not a pin (0–{MAX_GPIO})"


def load(path: Path) -> Config:
    """Read and validate a config file; raises ConfigError listing every problem."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read: {exc.strerror}"]) from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), [f"not valid TOML: {exc}"]) from exc
    return parse(data, str(path))


def parse(data: dict[str, Any], source: str = "<memory>") -> Config:
    r = _Reader()
    top = r.table(
        data,
        "",
        {
            "station",
            "destinations",
            "duty_slots",
            "gpio",
            "bays",
            "cameras",
            "officers",
            "mqtt",
            "selftest",
        },
    )

    station_keys = {
        "id",
        "unit",
        "timezone",
        "state_dir",
        "run_dir",
        "max_concurrent_offloads",
        "camera_usb_ids",
    }
    st = r.table(top.get("station", {}), "station", station_keys)
    station_id = r.get(st, "station", "id", str, check=topic_segment_problem) or ""
    unit = r.get(st, "station", "unit", str, check=_nonempty) or ""
    tz: tzinfo = ZoneInfo("UTC")
    tz_name = r.get(st, "station", "timezone", str, default="Asia/Taipei")
    try:
        tz = ZoneInfo(tz_name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        r.problem("station.timezone", f"unknown time zone {tz_name!r}")
    state_dir = r.get(st, "station", "state_dir", str, default="/var/lib/camdock", check=_absolute)
    run_dir = r.get(st, "station", "run_dir", str, default="/run/camdock", check=_absolute)
    max_conc = r.get(
        st,
        "station",
        "max_concurrent_offloads",
        int,
        default=4,
        check=lambda v: None if v >= 1 else "must be at least 1",
    )

    usb_ids: list[str] = []
    for i, value in enumerate(r.get(st, "station", "camera_usb_ids", list, default=[]) or []):
        if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{4}:[0-9a-f]{4}", value):
            usb_ids.append(value)
        else:
            r.problem(
                f"station.camera_usb_ids[{i}]", f"{value!r} is not vendor:product (1d6b:0104)"
            )

    dst = r.table(top.get("destinations", {}), "destinations", {"footage", "backup"})
    footage = r.get(dst, "destinations", "footage", str, check=_absolute)
    backup = r.get(dst, "destinations", "backup", str, check=_absolute)
    if footage and backup and Path(footage) == Path(backup):
        r.problem("destinations.backup", "must differ from destinations.footage (REG-4.2.6)")

    ds = r.table(top.get("duty_slots", {}), "duty_slots", {"boundaries", "minutes"})
    slots = DutySlots.every(240)
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

    gp = r.table(top.get("gpio", {}), "gpio", {"pin_factory"})
    factory = r.get(
        gp,
        "gpio",
        "pin_factory",
        str,
        default="lgpio",
        check=lambda v: None if v in ("lgpio", "rpigpio", "mock") else "lgpio, rpigpio or mock",
    )

    officers: dict[str, Officer] = {}
    for i, raw_officer in enumerate(_list(r, top, "officers")):
        path = f"officers[{i}]"
        o = r.table(raw_officer, path, {"badge", "name", "unit"})
        badge = r.get(o, path, "badge", str, check=_nonempty)
        name = r.get(o, path, "name", str, check=_nonempty)
        if badge is None or name is None:
            continue
        if badge in officers:
            r.problem(f"{path}.badge", f"badge {badge!r} is listed twice")
        officers[badge] = Officer(badge, name, r.get(o, path, "unit", str, default=unit) or unit)

    cameras: dict[str, Camera] = {}
    ids: set[str] = set()
    for i, raw_camera in enumerate(_list(r, top, "cameras")):
        path = f"cameras[{i}]"
        c = r.table(raw_camera, path, {"serial", "id", "model", "ownership", "officer", "spare"})
        serial = r.get(c, path, "serial", str, check=_nonempty)
        cam_id = r.get(c, path, "id", str, check=_nonempty)
        ownership = r.get(
            c,
            path,
            "ownership",
            str,
            default="agency",
            check=lambda v: None if v in ("agency", "personal") else "agency or personal (REG-2)",
        )
        officer = r.get(c, path, "officer", str, required=False)
        if officer is not None and officer not in officers:
            r.problem(f"{path}.officer", f"badge {officer!r} is not in [[officers]]")
        if serial is None or cam_id is None:
            continue
        if serial in cameras:
            r.problem(f"{path}.serial", f"serial {serial!r} is registered twice")
        if cam_id in ids:
            r.problem(f"{path}.id", f"camera id {cam_id!r} is used twice")
        ids.add(cam_id)
        cameras[serial] = Camera(
            serial=serial,
            id=cam_id,
            model=r.get(c, path, "model", str, default="unknown") or "unknown",
            ownership="personal" if ownership == "personal" else "agency",
            officer=officer,
            spare=bool(r.get(c, path, "spare", bool, default=False)),
        )

    bays: list[Bay] = []
    pins_used: dict[int, str] = {}
    numbers: set[int] = set()
    ports: set[str] = set()
    for i, raw_bay in enumerate(_list(r, top, "bays")):
        path = f"bays[{i}]"
        b = r.table(raw_bay, path, {"number", "usb_port", "id_path", "led", "button"})
        number = r.get(b, path, "number", int, check=lambda v: None if v >= 1 else "must be ≥ 1")
        port = r.get(b, path, "usb_port", str, required=False, check=_nonempty)
        id_path = r.get(b, path, "id_path", str, required=False, check=_nonempty)
        if (port is None) == (id_path is None):
            r.problem(path, "give exactly one of usb_port or id_path")
        for key in (port, id_path):
            if key is not None:
                if key in ports:
                    r.problem(path, f"USB port {key!r} belongs to another bay too")
                ports.add(key)
        if number is not None:
            if number in numbers:
                r.problem(f"{path}.number", f"bay {number} is defined twice")
            numbers.add(number)
        led = _led(r, b.get("led"), f"{path}.led")
        button = r.get(b, path, "button", int, check=_pin)
        for pin, where in [
            *((p, f"{path}.led") for p in (led.pins if led else ())),
            (button, f"{path}.button"),
        ]:
            if pin is None:
                continue
            if pin in pins_used:
                r.problem(where, f"GPIO {pin} is also used by {pins_used[pin]}")
            pins_used[pin] = where
        if number is not None and led is not None and button is not None:
            bays.append(Bay(number, port, id_path, led, button))
    if not bays and not any("bays" in p for p in r.problems):
        r.problem("bays", "at least one [[bays]] entry is needed")

    mqtt = _mqtt(r, top["mqtt"], station_id) if "mqtt" in top else None
    stt = r.table(
        top.get("selftest", {}),
        "selftest",
        {"min_battery", "max_drift_after_sync", "allowed_firmware", "spare_max_age_hours"},
    )
    selftest = SelfTestSettings(
        min_battery=r.get(
            stt,
            "selftest",
            "min_battery",
            int,
            default=80,
            check=lambda v: None if 0 <= v <= 100 else "a percentage",
        )
        or 0,
        max_drift_after_sync=float(
            r.get(stt, "selftest", "max_drift_after_sync", float, default=2.0) or 0.0
        ),
        allowed_firmware=tuple(
            str(v) for v in (r.get(stt, "selftest", "allowed_firmware", list, default=[]) or [])
        ),
        spare_max_age_hours=float(
            r.get(stt, "selftest", "spare_max_age_hours", float, default=12.0) or 0.0
        ),
    )

    if r.problems:
        raise ConfigError(source, r.problems)
    assert footage and backup and state_dir and run_dir and max_conc and factory
    return Config(
        station_id=station_id,
        unit=unit,
        tz=tz,
        state_dir=Path(state_dir),
        run_dir=Path(run_dir),
        footage=Path(footage),
        backup=Path(backup),
        slots=slots,
        max_concurrent_offloads=max_conc,
        pin_factory=factory,
        bays=tuple(sorted(bays, key=lambda b: b.number)),
        cameras=cameras,
        officers=officers,
        mqtt=mqtt,
        camera_usb_ids=tuple(usb_ids),
        selftest=selftest,
        source=source,
    )


def _list(r: _Reader, top: dict[str, Any], key: str) -> list[Any]:
    value = top.get(key, [])
    if not isinstance(value, list):
        r.problem(key, f"must be an array of tables ([[{key}]])")
        return []
    return value


def _led(r: _Reader, data: Any, path: str) -> Led | None:
    if data is None:
        r.problem(path, "missing")
        return None
    if isinstance(data, dict) and "rgb" in data:
        r.table(data, path, {"rgb"})
        rgb = data["rgb"]
        if not (isinstance(rgb, list) and len(rgb) == 3 and all(type(p) is int for p in rgb)):
            r.problem(f"{path}.rgb", "must be three pin numbers [red, green, blue]")
            return None
        for n, p in enumerate(rgb):
            if (msg := _pin(p)) is not None:
                r.problem(f"{path}.rgb[{n}]", msg)
        return Led("rgb", red=rgb[0], green=rgb[1], blue=rgb[2])
    t = r.table(data, path, {"red", "amber", "green"})
    red = r.get(t, path, "red", int, check=_pin)
    amber = r.get(t, path, "amber", int, required=False, check=_pin)
    green = r.get(t, path, "green", int, check=_pin)
    if red is None or green is None:
        return None
    if amber is None:
        return Led("bicolour", red=red, green=green)
    return Led("separate", red=red, amber=amber, green=green)


def _mqtt(r: _Reader, data: Any, station_id: str) -> MqttSettings | None:
    keys = {
        "host",
        "port",
        "topic_prefix",
        "client_id",
        "username",
        "password_file",
        "ca_file",
        "cert_file",
        "key_file",
        "keepalive",
        "outbox_limit",
        "retention_days",
    }
    m = r.table(data, "mqtt", keys)
    host = r.get(m, "mqtt", "host", str, check=_nonempty)
    tls = "ca_file" in m
    port = r.get(
        m,
        "mqtt",
        "port",
        int,
        default=8883 if tls else 1883,
        check=lambda v: None if 0 < v < 65536 else "not a TCP port",
    )
    prefix = r.get(
        m,
        "mqtt",
        "topic_prefix",
        str,
        default="camdock",
        check=lambda v: (
            None
            if v and not set(v) & set("#+") and not v.endswith("/")
            else "no wildcards, no trailing /"
        ),
    )
    files: dict[str, Path | None] = {}
    for key in ("password_file", "ca_file", "cert_file", "key_file"):
        value = r.get(m, "mqtt", key, str, required=False, check=_absolute)
        files[key] = Path(value) if value else None
    if (files["cert_file"] is None) != (files["key_file"] is None):
        r.problem("mqtt", "cert_file and key_file go together (client certificate)")
    if files["cert_file"] is not None and files["ca_file"] is None:
        r.problem("mqtt.ca_file", "missing: a client certificate needs TLS")
    positive = lambda v: None if v > 0 else "must be positive"  # noqa: E731
    keepalive = r.get(m, "mqtt", "keepalive", int, default=30, check=positive)
    limit = r.get(m, "mqtt", "outbox_limit", int, default=100_000, check=positive)
    days = r.get(m, "mqtt", "retention_days", int, default=30, check=positive)
    if host is None or port is None:
        return None
    return MqttSettings(
        host=host,
        port=port,
        prefix=prefix or "camdock",
        client_id=r.get(m, "mqtt", "client_id", str, required=False) or f"camdock-{station_id}",
        username=r.get(m, "mqtt", "username", str, required=False),
        password_file=files["password_file"],
        ca_file=files["ca_file"],
        cert_file=files["cert_file"],
        key_file=files["key_file"],
        keepalive=keepalive or 30,
        outbox_limit=limit or 100_000,
        retention_days=days or 30,
    )
