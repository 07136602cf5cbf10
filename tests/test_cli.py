"""The ``camdock`` command line: argument parsing and dispatch (the commands are in commands/)."""

from __future__ import annotations

import argparse

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
