"""udev tests run in their own pytest invocation under ``umockdev-wrapper`` (make test does it):
under a testbed /sys is redirected, which the loop-device and mount tests must not see."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

UNDER_UMOCKDEV = "libumockdev-preload" in os.environ.get("LD_PRELOAD", "")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if UNDER_UMOCKDEV:
        return
    skip = pytest.mark.skip(reason="needs umockdev-wrapper (make test runs it so)")
    for item in items:
        item.add_marker(skip)


@pytest.fixture
def testbed() -> Iterator[Any]:
    import gi

    gi.require_version("UMockdev", "1.0")
    from gi.repository import UMockdev

    tb = UMockdev.Testbed.new()
    yield tb
    tb.clear()  # remove every device, so the next test starts from an empty /sys
