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
require_mounts = false  # plain directories: the drive-proof tests build real filesystems
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


def write_config(root: Path, extra: str = "", drives: tuple[str, str] | None = None) -> Path:
    """The test station's config; with ``drives`` (footage UUID, backup UUID) its destinations
    are proven drives, as on a station, instead of plain directories."""
    for d in ("footage", "backup"):
        (root / d).mkdir(parents=True, exist_ok=True)
    text = TEMPLATE.format(root=root)
    if drives is not None:
        text = text.replace("require_mounts = false  ", "# ")
        text = text.replace('footage = "', f'footage_uuid = "{drives[0]}"\nfootage = "', 1)
        text = text.replace('backup = "', f'backup_uuid = "{drives[1]}"\nbackup = "', 1)
    path = root / "camdock.toml"
    path.write_text(text + extra)
    return path
