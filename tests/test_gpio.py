"""Bay lights and buttons as devices: context managers, closable twice, refusing use after close
(gpiozero's own rules, on its MockFactory)."""

from __future__ import annotations

import asyncio

import pytest

from camdock.adapters.gpio import BayButton, BayLight, DeviceClosed, make_pin_factory
from camdock.core.indicators import Colour
from camdock.model import Led


def test_light_is_a_context_manager_and_refuses_use_after_close() -> None:
    factory = make_pin_factory("mock")
    try:
        with BayLight(Led("separate", red=4, amber=5, green=6), factory) as light:
            light.show(Colour.GREEN)
            assert factory.pin(6).state == 1 and not light.closed
        assert light.closed
        light.close()  # twice: no harm
        with pytest.raises(DeviceClosed):
            light.show(Colour.RED)
        # The pins were released: they can be opened again.
        BayLight(Led("separate", red=4, amber=5, green=6), factory).close()
    finally:
        factory.close()


async def test_button_closes_twice_and_releases_its_pin() -> None:
    factory = make_pin_factory("mock")
    loop = asyncio.get_running_loop()
    try:
        with BayButton(7, factory, loop, on_short=lambda: None, on_long=lambda: None) as button:
            assert not button.closed
        assert button.closed
        button.close()
        BayButton(7, factory, loop, on_short=lambda: None, on_long=lambda: None).close()
    finally:
        factory.close()
