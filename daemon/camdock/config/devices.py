"""The config's sections that name the station's devices: its destination drives, the GPIO pin
factory, the registered cameras and the bays (USB port, LEDs, button); each notes its problems
on the shared Reader (config/sections.py has the others)."""

from __future__ import annotations

import fnmatch
import re
from datetime import date
from pathlib import Path
from typing import Any

from camdock.config.reader import (
    Reader,
    absolute,
    nonempty,
    pin,
)
from camdock.config.settings import StationSettings
from camdock.core.naming import name_problem, name_text
from camdock.model import Bay, Camera, Drive, Led, Officer, usb_device_path

__all__ = ["bays", "cameras", "check_name", "destinations", "pin_factory"]

STATION = StationSettings()


_UUID = re.compile(r"[0-9A-Fa-f][0-9A-Fa-f-]{3,35}")


def check_name(value: str) -> str | None:
    """An officer's name or badge, a camera id: they name footage (REG-4.2.4)."""
    return nonempty(value) or name_problem(value)


def _uuid(value: str) -> str | None:
    # ext4 UUIDs are 36 characters; vfat and exFAT "UUIDs" are serials like 1A2B-3C4D.
    return None if _UUID.fullmatch(value) else "not a filesystem UUID (see blkid)"


def destinations(r: Reader, data: Any) -> tuple[tuple[Drive, ...], bool]:
    """``[destinations]``: the footage and backup roots, each with the UUID (or label) of the
    drive it must be on (REG-4.2.1), on two different drives (REG-4.2.6); and whether the
    drives are proven before writing (``require_mounts``, false only for development)."""
    keys = {"footage", "backup", "require_mounts"}
    keys |= {f"{n}_{t}" for n in ("footage", "backup") for t in ("uuid", "label")}
    dst = r.table(data, "destinations", keys)
    require = bool(r.get(dst, "destinations", "require_mounts", bool, default=True))
    drives: list[Drive] = []
    for name in ("footage", "backup"):
        root = r.get(dst, "destinations", name, str, check=absolute)
        uuid = r.get(dst, "destinations", f"{name}_uuid", str, required=False, check=_uuid)
        label = r.get(dst, "destinations", f"{name}_label", str, required=False, check=nonempty)
        if uuid and label:
            r.problem(f"destinations.{name}_label", f"give {name}_uuid or {name}_label, not both")
        if require and not uuid and not label and root:
            r.problem(
                f"destinations.{name}_uuid",
                "missing: the drive this root must be on (blkid shows its UUID); "
                "require_mounts = false only on a development machine (REG-4.2.1)",
            )
        if root:
            drives.append(Drive(name, Path(root), uuid, label))
    if len(drives) == 2:
        footage, backup = drives
        if footage.root == backup.root:
            r.problem("destinations.backup", "must differ from destinations.footage (REG-4.2.6)")
        elif footage.root.is_relative_to(backup.root) or backup.root.is_relative_to(footage.root):
            r.problem("destinations.backup", "one root inside the other: two copies on one drive")
        same = (footage.uuid and footage.uuid.lower() == (backup.uuid or "").lower()) or (
            footage.label and footage.label == backup.label
        )
        if same:
            r.problem("destinations.backup_uuid", "the same drive as the footage: a backup must "
                      "be a second drive (REG-4.2.6)")  # fmt: skip
    return tuple(drives), require


def pin_factory(r: Reader, data: Any) -> str | None:
    """``[gpio]``: which gpiozero pin factory drives the bays."""
    gp = r.table(data, "gpio", {"pin_factory"})
    return r.get(
        gp, "gpio", "pin_factory", str, default=STATION.pin_factory,
        check=lambda v: None if v in ("lgpio", "rpigpio", "mock") else "lgpio, rpigpio or mock",
    )  # fmt: skip


def cameras(r: Reader, top: dict[str, Any], known: dict[str, Officer]) -> dict[str, Camera]:
    """``[[cameras]]``, by USB serial; each assigned officer must be in ``[[officers]]``."""
    found: dict[str, Camera] = {}
    ids: set[str] = set()
    for i, raw in enumerate(r.list(top, "cameras")):
        path = f"cameras[{i}]"
        c = r.table(
            raw, path, {"serial", "id", "model", "ownership", "officer", "spare", "registered"}
        )
        serial = r.get(c, path, "serial", str, check=nonempty)
        cam_id = r.get(c, path, "id", str, check=check_name)
        ownership = r.get(
            c, path, "ownership", str, default="agency",
            check=lambda v: None if v in ("agency", "personal") else "agency or personal (REG-2)",
        )  # fmt: skip
        officer = r.get(c, path, "officer", str, required=False)
        officer = name_text(officer) if officer is not None else None
        if officer is not None and officer not in known:
            r.problem(f"{path}.officer", f"badge {officer!r} is not in [[officers]]")
        if serial is None or cam_id is None:
            continue
        if serial in found:
            r.problem(f"{path}.serial", f"serial {serial!r} is registered twice")
        if cam_id in ids:
            r.problem(f"{path}.id", f"camera id {cam_id!r} is used twice")
        ids.add(cam_id)
        found[serial] = Camera(
            serial=serial,
            id=cam_id,
            model=r.get(c, path, "model", str, default="unknown") or "unknown",
            ownership="personal" if ownership == "personal" else "agency",
            officer=officer,
            spare=bool(r.get(c, path, "spare", bool, default=False)),
            registered=r.get(c, path, "registered", date, required=False),
        )
    return found


def bays(r: Reader, top: dict[str, Any]) -> tuple[Bay, ...]:
    """``[[bays]]``: number, USB port, LED and button; no pin or port used twice."""
    found: list[Bay] = []
    pins_used: dict[int, str] = {}
    numbers: set[int] = set()
    ports: set[str] = set()
    for i, raw in enumerate(r.list(top, "bays")):
        # People number bays from 1 (the label on the dock); the key path says both (issue 29).
        n = raw.get("number") if isinstance(raw, dict) else None
        path = f"bay {n} (bays[{i}])" if type(n) is int else f"bays[{i}]"
        b = r.table(raw, path, {"number", "usb_port", "id_path", "led", "button", "bus"})
        number = r.get(b, path, "number", int, check=lambda v: None if v >= 1 else "must be ≥ 1")
        port = r.get(b, path, "usb_port", str, required=False, check=nonempty)
        id_path = r.get(b, path, "id_path", str, required=False, check=nonempty)
        if (port is None) == (id_path is None):
            r.problem(path, "give exactly one of usb_port or id_path")
        if id_path is not None and (why := _interface_glob(id_path)) is not None:
            r.problem(f"{path}.id_path", why)
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
        button = r.get(b, path, "button", int, check=pin)
        for p, where in [
            *((p, f"{path}.led") for p in (led.pins if led else ())),
            (button, f"{path}.button"),
        ]:
            if p is None:
                continue
            if p in pins_used:
                r.problem(where, f"GPIO {p} is also used by {pins_used[p]}")
            pins_used[p] = where
        bus = r.get(b, path, "bus", str, required=False, check=nonempty)
        if number is not None and led is not None and button is not None:
            found.append(Bay(number, port, id_path, led, button, bus))
    if not found and not any("bays" in p for p in r.problems):
        r.problem("bays", "at least one [[bays]] entry is needed")
    _overlapping_globs(r, found)
    return tuple(sorted(found, key=lambda b: b.number))


_USB_DEVICE = re.compile(r"-usb-\d+:[^:]*")


def _interface_glob(id_path: str) -> str | None:
    """Why an id_path glob can never match, or None. Bays are matched by USB device (the
    camera's storage and serial-port interfaces both), so an ID_PATH is cut after the device's
    port path; a literal interface (``:1.0``) is cut away, but a glob over the interface
    (``…-usb-0:1:*``) survives the cut and then compares with no device at all."""
    device = usb_device_path(id_path)
    m = _USB_DEVICE.search(device)
    if m is None or m.end() == len(device):
        return None
    return (
        f"{id_path!r} names the USB interface ({device[m.end() :]!r} after the port path), "
        f"but bays are matched by USB device, so it never matches a camera: write "
        f"{device[: m.end()]!r}"
    )


def _overlapping_globs(r: Reader, bays: list[Bay]) -> None:
    """Two bays whose id_path globs can match one USB device: the second bay's camera would be
    silently ignored. Each glob is compared with the other taken literally, at device level."""
    globs = [(b.number, usb_device_path(b.id_path)) for b in bays if b.id_path]
    for i, (n, a) in enumerate(globs):
        for m, b in globs[i + 1 :]:
            if fnmatch.fnmatchcase(a, b) or fnmatch.fnmatchcase(b, a):
                r.problem(f"bays (number {m}).id_path", f"can match the same USB device as bay "
                          f"{n} ({a} / {b}): one camera in two bays")  # fmt: skip


def _led(r: Reader, data: Any, path: str) -> Led | None:
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
            if (msg := pin(p)) is not None:
                r.problem(f"{path}.rgb[{n}]", msg)
        return Led("rgb", red=rgb[0], green=rgb[1], blue=rgb[2])
    t = r.table(data, path, {"red", "amber", "green"})
    red = r.get(t, path, "red", int, check=pin)
    amber = r.get(t, path, "amber", int, required=False, check=pin)
    green = r.get(t, path, "green", int, check=pin)
    if red is None or green is None:
        return None
    if amber is None:
        return Led("bicolour", red=red, green=green)
    return Led("separate", red=red, amber=amber, green=green)
