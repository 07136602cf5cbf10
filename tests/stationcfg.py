"""Station configs for tests, written as real TOML files."""

from __future__ import annotations

from pathlib import Path

TEMPLATE = """
[station]
id = "test-01"
unit = "Test Precinct"
timezone = "Asia/Taipei"
state_dir = "{root}/state"
run_dir = "{root}/run"
max_concurrent_offloads = 4

[destinations]
footage = "{root}/footage"
backup = "{root}/backup"

[duty_slots]
boundaries = ["00:00", "08:00", "16:00"]

[gpio]
pin_factory = "mock"

[[officers]]
badge = "A12345"
name = "王小明"

[[officers]]
badge = "B23456"
name = "李美玲"

[[cameras]]
serial = "SN0001"
id = "CAM0001"
model = "BWC-X1"
officer = "A12345"

[[cameras]]
serial = "SN0002"
id = "CAM0002"
ownership = "personal"
officer = "B23456"

[[bays]]
number = 1
usb_port = "1-1"
led = {{ red = 4, amber = 5, green = 6 }}
button = 7

[[bays]]
number = 2
usb_port = "1-2"
led = {{ rgb = [8, 9, 10] }}
button = 11
"""


def write_config(root: Path, extra: str = "") -> Path:
    for d in ("footage", "backup"):
        (root / d).mkdir(parents=True, exist_ok=True)
    path = root / "camdock.toml"
    path.write_text(TEMPLATE.format(root=root) + extra)
    return path
