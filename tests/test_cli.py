"""The ``camdock`` command line: argument parsing and dispatch (the commands are in commands/)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from camdock import cli
from camdock.commands.common import broker_address


def test_every_command_has_its_runner() -> None:
    """A command the parser knows and nothing runs would exit 64 without a word."""
    sub = next(a for a in cli._parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(cli._RUN)


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("broker.local", ("broker.local", 1883)),
        ("127.0.0.1:8883", ("127.0.0.1", 8883)),
        ("[::1]", ("::1", 1883)),
        ("[::1]:8443", ("::1", 8443)),
    ],
)
def test_broker_address(text: str, address: tuple[str, int]) -> None:
    """HOST[:PORT], an IPv6 address in brackets."""
    assert broker_address(text) == address


def test_version_and_one_command_load_only_what_they_need() -> None:
    """Issue 30: every command module was imported at start (~0.4 s CPU, ~3x on a Pi 4).
    ``--version`` loads none; a command loads its own module alone."""
    import subprocess
    import sys

    probe = (
        "import sys\nfrom camdock import cli\n"
        "try:\n    cli.main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('camdock.commands.')))"
    )
    out = subprocess.run([sys.executable, "-c", probe, "--version"], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    assert out.splitlines()[-1] == "[]" and "sqlite_utils" not in out
    out = subprocess.run([sys.executable, "-c", probe, "udev-rules", "--help"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    loaded = {m.removeprefix("camdock.commands.") for m in eval(out.splitlines()[-1])}  # noqa: S307
    assert loaded & set(cli._RUN.values()) == {"udev"}, out


HUGE = str(2**70)


@pytest.mark.parametrize(
    "argv",
    [
        ["request", "show", HUGE],
        ["register", "export", "--from", "0001-01-01", "--to", "2026-12-31"],
        ["audit", "report", "--from", "0001-01-01", "--to", "0001-12-31"],
        ["catalog", "export", "--day", "2026-02-30"],
        [
            "hold",
            "place",
            "--recording",
            HUGE,
            "--kind",
            "complaint",
            "--case",
            "c",
            "--reason",
            "r",
            "--by",
            "x",
        ],
        ["hold", "release", HUGE, "--reason", "r", "--by", "x"],
        ["retention", "propose", "--recording", HUGE, "--by", "x"],
        ["retention", "execute", "--list", HUGE, "--by", "x"],
        ["retention", "approve", HUGE, "--by", "x"],
        ["request", "schedule", "2026-0001", "--at", "9999-12-31T23:00", "--by", "x"],
        ["catalog", "export", "--day", "0001-01-01"],
        # Issue 29 item 5: accepted with exit 0 before.
        [
            "request",
            "new",
            "--officer",
            "",
            "--from",
            "2026-11-28",
            "--to",
            "2026-11-28",
            "--kind",
            "view",
            "--reason",
            "r",
            "--purpose",
            "investigation",
            "--by",
            "x",
        ],
        [
            "request",
            "new",
            "--officer",
            "A1",
            "--from",
            "2026-11-28",
            "--to",
            "2026-11-28",
            "--kind",
            "view",
            "--reason",
            "",
            "--purpose",
            "investigation",
            "--by",
            "x",
        ],
        [
            "hold",
            "place",
            "--recording",
            "1",
            "--kind",
            "complaint",
            "--case",
            "c",
            "--reason",
            " ",
            "--by",
            "x",
        ],
        ["hold", "release", "1", "--reason", "", "--by", "x"],
        ["request", "deny", "2026-0001", "--reason", "", "--by", "x"],
        ["request", "approve", "2026-0001", "--valid-days", "-5", "--by", "x"],
        ["request", "approve", "2026-0001", "--valid-days", "99999999", "--by", "x"],
        [
            "request",
            "schedule",
            "2026-0001",
            "--at",
            "2026-12-01T10:00",
            "--minutes",
            "-60",
            "--by",
            "x",
        ],
        ["offload", "/nonexistent", "--camera", "C", "--officer", "O", "--slot-minutes", "0"],
        ["offload", "/nonexistent", "--camera", "C", "--officer", ""],
        ["catalog", "export", "--officer", "", "--from", "2026-11-01", "--to", "2026-11-30"],
        [
            "hold",
            "place",
            "--officer",
            "A1",
            "--from",
            "0001-01-01",
            "--kind",
            "complaint",
            "--case",
            "c",
            "--reason",
            "r",
            "--by",
            "x",
        ],
    ],
)
def test_bad_input_is_one_line_and_a_usage_or_data_exit(tmp_path: Path, argv: list[str]) -> None:
    """Issue 29: extreme numbers and dates are answered with one line on stderr and exit
    64/65/66, never a traceback, nothing changed."""
    from conftest import camdock_cmd, make_camera, offload, run

    d1, d2, catalog = tmp_path / "d1", tmp_path / "d2", tmp_path / "c.db"
    d1.mkdir(), d2.mkdir()
    make_camera(tmp_path / "cam", 1)
    assert offload(tmp_path / "cam", [d1, d2], catalog).ok
    before = catalog.read_bytes()
    res = run(camdock_cmd(*argv, "--catalog", str(catalog)))
    assert res.returncode in (64, 65, 66), (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and not ln.startswith("usage:")]
    assert len(lines) == 1, res.stderr
    assert catalog.read_bytes() == before
