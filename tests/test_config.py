"""Configuration: validated in one pass, every problem with its key path, exit 78."""

from __future__ import annotations

from pathlib import Path

import pytest

from camdock.config import ConfigError, load
from camdock.errors import ExitCode
from conftest import camdock_cmd, run
from stationcfg import write_config


def test_valid_config_loads(tmp_path: Path) -> None:
    cfg = load(write_config(tmp_path))
    assert cfg.station_id == "test-01" and [b.number for b in cfg.bays] == [1, 2]
    assert cfg.bays[0].led.kind == "separate" and cfg.bays[1].led.kind == "rgb"
    assert cfg.cameras["SN0002"].ownership == "personal"  # REG-2: personal cameras are covered
    assert cfg.officer_for(cfg.cameras["SN0001"]).name == "王小明"  # type: ignore[union-attr]
    assert cfg.bay_for("1-2", None) is cfg.bays[1] and cfg.bay_for("1-3", None) is None
    assert cfg.catalog == tmp_path / "state" / "catalog.sqlite"


def test_every_problem_is_listed_with_its_key_path(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    text = path.read_text()
    text = text.replace('timezone = "Asia/Taipei"', 'timezone = "Mars/Olympus"')
    text = text.replace('backup = "', 'backup = "relative/')
    text = text.replace("button = 11", "button = 4")  # also bay 1's red LED
    text = text.replace('officer = "B23456"', 'officer = "Z99999"')
    text = text.replace("max_concurrent_offloads = 4", 'max_concurrent_offloads = "four"')
    text += '\n[[bays]]\nnumber = 1\nusb_port = "1-1"\nled = { red = 60, amber = 1, green = 2 }\n'
    text += "colour = 3\n"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load(path)
    problems = "\n".join(err.value.problems)
    for expected in (
        "station.timezone: unknown time zone 'Mars/Olympus'",
        "destinations.backup: must be an absolute path",
        "bay 2 (bays[1]).button: GPIO 4 is also used by bay 1 (bays[0]).led",
        "cameras[1].officer: badge 'Z99999' is not in [[officers]]",
        "station.max_concurrent_offloads: must be int",
        "bay 1 (bays[2]).number: bay 1 is defined twice",
        "bay 1 (bays[2]): USB port '1-1' belongs to another bay too",
        "bay 1 (bays[2]).led.red: GPIO 60 is not a pin",
        "bay 1 (bays[2]).colour: unknown key (typo?)",
        "bay 1 (bays[2]).button: missing",
    ):
        assert expected in problems, problems
    assert len(err.value.problems) >= 10


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        (lambda t: t + "\n[extra]\n", "extra: unknown key"),
        (lambda t: t.replace("[[bays]]", "[[bayz]]"), "bayz: unknown key"),
        (lambda t: t.replace('"00:00", ', '"25:00", '), "duty_slots.boundaries"),
        (lambda t: t.replace('footage = "', 'footage = "/same"\nxfootage = "'), "xfootage"),
        (lambda t: t.replace('serial = "SN0002"', 'serial = "SN0001"'), "registered twice"),
        (lambda t: "not = [toml", "not valid TOML"),
        (lambda t: t.replace('id = "test-01"', 'id = "hq/1"'), "station.id: one MQTT topic level"),
    ],
)
def test_single_problems(tmp_path: Path, mutation: object, expected: str) -> None:
    path = write_config(tmp_path)
    path.write_text(mutation(path.read_text()))  # type: ignore[operator]
    with pytest.raises(ConfigError) as err:
        load(path)
    assert expected in str(err.value)


def test_same_footage_and_backup_is_refused(tmp_path: Path) -> None:
    """REG-4.2.6: the backup is a second copy, somewhere else."""
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace(f'{tmp_path}/backup"', f'{tmp_path}/footage"'))
    with pytest.raises(ConfigError, match=r"must differ from destinations\.footage"):
        load(path)


def test_check_config_command(tmp_path: Path) -> None:
    good = write_config(tmp_path)
    res = run(camdock_cmd("check-config", str(good)))
    assert res.returncode == 0 and "2 bays, 2 cameras, 2 officers" in res.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text().replace("button = 7", "button = -1"))
    res = run(camdock_cmd("check-config", str(bad)))
    assert res.returncode == ExitCode.CONFIG == 78
    assert "bay 1 (bays[0]).button: GPIO -1 is not a pin" in res.stderr
    assert "Traceback" not in res.stderr
    res = run(camdock_cmd("run", "--config", str(tmp_path / "missing.toml")))
    assert res.returncode == 78 and "cannot read" in res.stderr


def test_run_refuses_pins_the_board_does_not_have(tmp_path: Path) -> None:
    """Checked against the real pin factory at start-up (here gpiozero's mock Compute Module 3,
    GPIO 0–45), before any device is opened: exit 78, no traceback."""
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace("button = 11", "button = 50"))
    res = run(camdock_cmd("run", "--config", str(path)))
    assert res.returncode == ExitCode.CONFIG
    assert "bay 2.button: GPIO 50 is not a pin on this board (CM3)" in res.stderr
    assert "Traceback" not in res.stderr


def test_the_example_config_in_docs_is_valid() -> None:
    example = Path(__file__).parent.parent / "docs" / "camdock.example.toml"
    cfg = load(example)
    assert len(cfg.bays) == 4 and cfg.cameras["BWC2024A0099"].spare


def _production(text: str) -> str:
    """The test config as a station would have it: destinations proven by their drives."""
    return text.replace("require_mounts = false  ", "# ")


def test_each_destination_names_its_drive(tmp_path: Path) -> None:
    """REG-4.2.1: a station's destinations are drives, named by filesystem UUID (or label)."""
    path = write_config(tmp_path)
    path.write_text(_production(path.read_text()))
    with pytest.raises(ConfigError) as err:
        load(path)
    problems = "\n".join(err.value.problems)
    assert "destinations.footage_uuid: missing" in problems
    assert "destinations.backup_uuid: missing" in problems
    res = run(camdock_cmd("check-config", str(path)))
    assert res.returncode == ExitCode.CONFIG and "footage_uuid" in res.stderr


@pytest.mark.parametrize(
    ("drives", "expected"),
    [
        (
            ('footage_uuid = "1111-2222"', 'backup_uuid = "1111-2222"'),
            r"second drive \(REG-4\.2\.6\)",
        ),
        (
            ('footage_label = "CAMDOCK"', 'backup_label = "CAMDOCK"'),
            r"second drive \(REG-4\.2\.6\)",
        ),
        (('footage_uuid = "x"', 'backup_uuid = "3333-4444"'), "not a filesystem UUID"),
        (
            ('footage_uuid = "1111-2222"\nfootage_label = "A"', 'backup_uuid = "3333-4444"'),
            "not both",
        ),
    ],
)
def test_the_two_drives_must_be_two(tmp_path: Path, drives: tuple[str, str], expected: str) -> None:
    path = write_config(tmp_path)
    text = _production(path.read_text())
    text = text.replace('footage = "', drives[0] + '\nfootage = "', 1)
    text = text.replace('backup = "', drives[1] + '\nbackup = "', 1)
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected):
        load(path)


def test_backup_inside_footage_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace(f'{tmp_path}/backup"', f'{tmp_path}/footage/b"'))
    with pytest.raises(ConfigError, match="one root inside the other"):
        load(path)


def test_drives_given_load(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    text = _production(path.read_text())
    text = text.replace(
        'footage = "', 'footage_uuid = "0b1c7a3e-5d2f-4e8a-9c1b-2f3e4d5c6b7a"\nfootage = "'
    )
    text = text.replace('backup = "', 'backup_label = "CAMDOCK-B"\nbackup = "')
    path.write_text(text)
    cfg = load(path)
    assert cfg.require_mounts
    assert [(d.name, d.uuid, d.label) for d in cfg.drives] == [
        ("footage", "0b1c7a3e-5d2f-4e8a-9c1b-2f3e4d5c6b7a", None),
        ("backup", None, "CAMDOCK-B"),
    ]


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("[selftest]\nmax_drift_after_sync = -1.0\n", "selftest.max_drift_after_sync: must be"),
        ("[selftest]\nmax_drift_after_sync = nan\n", "selftest.max_drift_after_sync: must be"),
        ("[selftest]\nmax_drift_after_sync = inf\n", "selftest.max_drift_after_sync: must be"),
        ("[selftest]\nspare_max_age_hours = -3.0\n", "selftest.spare_max_age_hours: must be"),
        ("[selftest]\nspare_max_age_hours = 100000.0\n", "selftest.spare_max_age_hours"),
        ('[mqtt]\nhost = "b"\nkeepalive = 1000000000000\n', "mqtt.keepalive: must be"),
        ('[mqtt]\nhost = "b"\nretention_days = 1000000000\n', "mqtt.retention_days: must be"),
        ('[mqtt]\nhost = "b"\noutbox_limit = 1000000000000000000\n', "mqtt.outbox_limit"),
    ],
)
def test_values_that_would_crash_or_mislead_are_config_errors(
    tmp_path: Path, setting: str, expected: str
) -> None:
    """Issue 12: every number has a sane range; check-config says so (78), not the daemon later."""
    path = write_config(tmp_path, "\n" + setting)
    res = run(camdock_cmd("check-config", str(path)))
    assert res.returncode == ExitCode.CONFIG and expected in res.stderr, res.stderr


def test_concurrency_and_files_and_depth(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    text = path.read_text()
    path.write_text(text.replace("max_concurrent_offloads = 4", "max_concurrent_offloads = 10000"))
    res = run(camdock_cmd("check-config", str(path)))
    assert res.returncode == ExitCode.CONFIG and "max_concurrent_offloads" in res.stderr
    missing = tmp_path / "nowhere" / "ca.pem"
    path.write_text(text + f'\n[mqtt]\nhost = "b"\nca_file = "{missing}"\n')
    res = run(camdock_cmd("check-config", str(path)))
    assert res.returncode == ExitCode.CONFIG and "mqtt.ca_file" in res.stderr
    assert "does not exist" in res.stderr
    deep = tmp_path / "deep.toml"
    deep.write_text("x = " + "[" * 20000 + "]" * 20000 + "\n")
    res = run(camdock_cmd("check-config", str(deep)))
    assert res.returncode == ExitCode.CONFIG and "Traceback" not in res.stderr


PI4 = "platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.4"
PI5 = "platform-xhci-hcd.1-usb-0:2"


@pytest.mark.parametrize(
    ("glob", "device"),
    [
        ("platform-*-usb-0:1.4:1.0*", PI4),  # the documented form, written for the storage
        ("platform-*-usb-0:1.4", PI4),
        ("platform-xhci-hcd.1-usb-0:2", PI5),
        ("platform-*-usb-0:2:1.0*", PI5),
    ],
)
def test_a_bay_owns_its_camera_s_storage_and_serial_port(glob: str, device: str) -> None:
    """Issue 12: the glob matched the storage interface (:1.0) but not the camera's serial
    port (:1.1), so the pre-shift test was 'unavailable'. Bays own USB devices."""
    from camdock.model import Bay, Led

    bay = Bay(1, None, glob, Led("bicolour", red=4, green=5), 6)
    assert bay.owns(None, f"{device}:1.0-scsi-0:0:0:0")  # the storage
    assert bay.owns(None, f"{device}:1.1")  # the serial port
    assert not bay.owns(None, f"{device}9:1.0-scsi-0:0:0:0")  # another port


def test_overlapping_bays_are_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    text = path.read_text()
    text = text.replace('usb_port = "1-1"', 'id_path = "platform-*-usb-0:1.4:1.0*"')
    text = text.replace('usb_port = "1-2"', 'id_path = "platform-fd500000*-usb-0:1.4"')
    path.write_text(text)
    res = run(camdock_cmd("check-config", str(path)))
    assert res.returncode == ExitCode.CONFIG and "one camera in two bays" in res.stderr


def test_an_interface_level_glob_is_refused_with_the_device_to_write(tmp_path: Path) -> None:
    """Issue 30: ``…-usb-0:1:*`` passed check-config but never matched (bays own USB devices,
    and a glob over the interface survives the cut to the device): refused, with the fix."""
    path = write_config(tmp_path)
    text = path.read_text().replace('usb_port = "1-1"', 'id_path = "platform-xhci-hcd.0-usb-0:1:*"')
    path.write_text(text)
    res = run(camdock_cmd("check-config", str(path)))
    assert res.returncode == ExitCode.CONFIG, res.stdout
    assert "bay 1 (bays[0]).id_path: 'platform-xhci-hcd.0-usb-0:1:*' names the USB" in res.stderr
    assert "write 'platform-xhci-hcd.0-usb-0:1'" in res.stderr
    path.write_text(text.replace("usb-0:1:*", "usb-0:1"))  # the device itself: accepted
    assert run(camdock_cmd("check-config", str(path))).returncode == 0


def test_check_config_loads_the_pin_factory_as_run_would(tmp_path: Path) -> None:
    """Issue 30: the role's config said lgpio, the venv had no lgpio; check-config passed and
    run exited 78. Now the factory's library is imported by check-config too: RPi.GPIO is not
    installed here (no wheel outside a Pi), so rpigpio fails in both, with the same cause."""
    pytest.importorskip("lgpio")  # a dependency wherever PyPI has a wheel (not armv7l)
    path = write_config(tmp_path)
    text = path.read_text()
    assert 'pin_factory = "mock"' in text
    path.write_text(text.replace('pin_factory = "mock"', 'pin_factory = "lgpio"'))
    assert run(camdock_cmd("check-config", str(path))).returncode == 0
    try:
        __import__("RPi.GPIO")
        pytest.skip("RPi.GPIO is installed here: no unloadable factory to try")
    except ImportError:
        pass
    path.write_text(text.replace('pin_factory = "mock"', 'pin_factory = "rpigpio"'))
    checked = run(camdock_cmd("check-config", str(path)))
    assert checked.returncode == ExitCode.CONFIG
    assert "gpio.pin_factory: pin factory 'rpigpio' cannot be loaded: No module named 'RPi'" in (
        checked.stderr
    )
    started = run(camdock_cmd("run", "--config", str(path)))
    assert started.returncode == ExitCode.CONFIG and "No module named 'RPi'" in started.stderr
