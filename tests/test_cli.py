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
