"""Station configuration: one TOML file, validated in one pass into frozen dataclasses.

Every problem is collected with its key path (``bay 3 (bays[2]).led.red: GPIO 17 is also used
by bay 2 (bays[1]).button``) and reported together; the daemon then exits with 78 (EX_CONFIG) so
systemd does not restart-loop on a bad file. Each section has its parser in ``sections``; the
defaults are declared once, on the dataclasses in ``settings``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from camdock.config import sections
from camdock.config.reader import Reader, existing_file, topic_segment_problem
from camdock.config.settings import (
    Config,
    MqttSettings,
    SealSettings,
    SelfTestSettings,
    StationSettings,
)
from camdock.errors import ConfigError
from camdock.model import Bay, Camera, Led, Officer

__all__ = [
    "Bay",
    "Camera",
    "Config",
    "ConfigError",
    "Led",
    "MqttSettings",
    "Officer",
    "SealSettings",
    "SelfTestSettings",
    "StationSettings",
    "file_problems",
    "load",
    "parse",
    "topic_segment_problem",
]

SECTIONS = {"station", "destinations", "duty_slots", "gpio", "bays", "cameras", "officers",
            "mqtt", "selftest", "retention", "seal", "staff", "scrub"}  # fmt: skip


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
    except RecursionError as exc:  # arrays nested thousands deep: not a station config
        raise ConfigError(str(path), ["not valid TOML: nested too deep"]) from exc
    return parse(data, str(path))


def file_problems(cfg: Config) -> list[str]:
    """Files the config names that are not there (checked by check-config and at start-up,
    on the machine that runs the station; a config read elsewhere is not held to them)."""
    problems = []
    if cfg.mqtt is not None:
        for key in ("password_file", "ca_file", "cert_file", "key_file"):
            value = getattr(cfg.mqtt, key)
            if value is not None and (problem := existing_file(str(value))):
                problems.append(f"mqtt.{key}: {problem}")
    return problems


def parse(data: dict[str, Any], source: str = "<memory>") -> Config:
    """Validate parsed TOML; raises ConfigError listing every problem."""
    r = Reader()
    top = r.table(data, "", SECTIONS)
    st = sections.station(r, top.get("station", {}))
    drives, require_mounts = sections.destinations(r, top.get("destinations", {}))
    slots = sections.duty_slots(r, top.get("duty_slots", {}))
    factory = sections.pin_factory(r, top.get("gpio", {}))
    officers = sections.officers(r, top, st.unit)
    cameras = sections.cameras(r, top, officers)
    bays = sections.bays(r, top)
    mqtt = sections.mqtt(r, top["mqtt"], st.id) if "mqtt" in top else None
    selftest = sections.selftest(r, top.get("selftest", {}))
    retention = sections.retention(r, top.get("retention", {}))
    seal = sections.seal(r, top.get("seal", {}))
    staff, hashes = sections.staff(r, top, st.unit, officers)
    scrub_days = sections.scrub(r, top.get("scrub", {}))
    if r.problems:
        raise ConfigError(source, r.problems)
    assert len(drives) == 2 and st.state_dir and st.run_dir and st.max_concurrent_offloads
    assert factory
    return Config(
        station_id=st.id,
        unit=st.unit,
        tz=st.tz,
        state_dir=Path(st.state_dir),
        run_dir=Path(st.run_dir),
        drives=drives,
        slots=slots,
        max_concurrent_offloads=st.max_concurrent_offloads,
        pin_factory=factory,
        bays=bays,
        cameras=cameras,
        officers=officers,
        mqtt=mqtt,
        camera_usb_ids=st.camera_usb_ids,
        selftest=selftest,
        retention=retention,
        seal=seal,
        staff=staff,
        offloads_per_bus=st.offloads_per_bus,
        scrub_days=scrub_days,
        password_hashes=hashes,
        require_mounts=require_mounts,
        source=source,
    )
