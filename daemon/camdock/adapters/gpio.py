"""Bay LEDs and buttons through gpiozero.

The pin factory is always passed explicitly (``lgpio`` on a Pi 5, ``MockFactory`` in tests and
the simulator), never set globally. gpiozero calls back on its own threads (``when_held`` on the
``held`` thread, the others on whichever thread changed the pin); those callbacks reach the
event loop only through ``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Self

from gpiozero import LED, RGBLED, Button
from gpiozero.exc import PinInvalidPin

from camdock.aio import wait_event
from camdock.config import Config
from camdock.core.indicators import RGB, Colour, Pattern
from camdock.errors import CamdockError
from camdock.model import Led

__all__ = [
    "HOLD_SECONDS",
    "BayButton",
    "BayLight",
    "DeviceClosed",
    "PatternPlayer",
    "PinFactory",
    "factory_problem",
    "make_pin_factory",
    "pin_problems",
]

log = logging.getLogger(__name__)

# gpiozero's pin factory (gpiozero.pins.Factory); gpiozero ships no type hints.
PinFactory = Any

HOLD_SECONDS = 1.5  # a press this long acknowledges a fault


MOCK_BOARD = "a020a0"  # Compute Module 3


def pin_problems(cfg: Config, factory: PinFactory) -> list[str]:
    """Configured pins that this board does not have, with their key paths."""
    problems = []
    for bay in cfg.bays:
        named = [("led." + k, getattr(bay.led, k)) for k in ("red", "amber", "green", "blue")]
        for key, pin in [*named, ("button", bay.button)]:
            if pin is None:
                continue
            try:
                factory.board_info.to_gpio(pin)
            except PinInvalidPin:
                problems.append(
                    f"bay {bay.number}.{key}: GPIO {pin} is not a pin on this board "
                    f"({factory.board_info.model})"
                )
    return problems


# The module each pin factory lives in, and the one it needs (lgpio: the PyPI wheel on aarch64
# and x86_64, Raspberry Pi OS's python3-lgpio on armv7l; rpigpio: RPi.GPIO).
FACTORY_MODULES = {
    "lgpio": "gpiozero.pins.lgpio",
    "rpigpio": "gpiozero.pins.rpigpio",
    "mock": "gpiozero.pins.mock",
}


def factory_problem(name: str) -> str | None:
    """Why the pin factory ``name`` cannot even be loaded here (its module or the library it
    wraps is missing), or None. Opening the chip is left to ``run``: that needs the board."""
    import importlib

    try:
        importlib.import_module(FACTORY_MODULES[name])
    except ImportError as exc:
        return f"pin factory {name!r} cannot be loaded: {exc}"
    return None


def make_pin_factory(name: str) -> PinFactory:
    """The gpiozero pin factory for ``name`` (lgpio, rpigpio or mock)."""
    if name == "mock":
        from gpiozero.pins.mock import MockFactory, MockPWMPin

        # A Compute Module 3 board (GPIO 0–45): an 8-bay layout with four pins per bay fits,
        # which a 40-pin header (GPIO 2–27) cannot hold.
        return MockFactory(revision=MOCK_BOARD, pin_class=MockPWMPin)
    if name == "lgpio":
        from gpiozero.pins.lgpio import LGPIOFactory

        return LGPIOFactory()
    from gpiozero.pins.rpigpio import RPiGPIOFactory

    return RPiGPIOFactory()


class DeviceClosed(CamdockError):
    """A bay's light or button was used after it was closed."""


class _Closable:
    """Close twice without harm; use as a context manager; refuse use after close."""

    _closed = False

    @property
    def closed(self) -> bool:
        """Whether the device has been closed."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise DeviceClosed(f"{type(self).__name__} is closed")

    def close(self) -> None:
        """Release the pins; safe to call twice."""
        self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BayLight(_Closable):
    """One bay's indicator: an RGB LED or separate red/amber/green LEDs, showing one colour."""

    def __init__(self, cfg: Led, factory: PinFactory) -> None:
        self._rgb: RGBLED | None = None
        self._leds: dict[Colour, LED] = {}
        self._bicolour = cfg.kind == "bicolour"
        if cfg.kind == "rgb":
            assert cfg.blue is not None
            self._rgb = RGBLED(cfg.red, cfg.green, cfg.blue, pin_factory=factory)
        elif self._bicolour:
            self._leds = {
                Colour.RED: LED(cfg.red, pin_factory=factory),
                Colour.GREEN: LED(cfg.green, pin_factory=factory),
            }
        else:
            assert cfg.amber is not None
            self._leds = {
                Colour.RED: LED(cfg.red, pin_factory=factory),
                Colour.AMBER: LED(cfg.amber, pin_factory=factory),
                Colour.GREEN: LED(cfg.green, pin_factory=factory),
            }
        self.colour: Colour | None = None

    def show(self, colour: Colour | None) -> None:
        """Light ``colour`` (None: off)."""
        self._check_open()
        self.colour = colour
        if self._rgb is not None:
            self._rgb.value = RGB[colour] if colour else (0.0, 0.0, 0.0)
            return
        for c, led in self._leds.items():
            # A bicolour LED shows amber as red and green together.
            led.value = c is colour or (self._bicolour and colour is Colour.AMBER)

    def close(self) -> None:
        """Turn off and release the pins; safe to call twice."""
        if self._rgb is not None:
            self._rgb.close()
        for led in self._leds.values():
            led.close()
        self._leds.clear()
        self._rgb = None
        super().close()


class PatternPlayer:
    """Plays a bay's pattern on its light in an asyncio task; ``play`` switches at once."""

    def __init__(self, light: BayLight, on_change: Callable[[str], None] | None = None) -> None:
        self.light = light
        self.pattern: Pattern | None = None
        self._wake = asyncio.Event()
        self._overlay: Pattern | None = None
        self._on_change = on_change

    def play(self, pattern: Pattern, overlay: Pattern | None = None) -> None:
        """Show ``pattern`` from now on, after one cycle of ``overlay`` when given."""
        if pattern == self.pattern and overlay is None:
            return
        self.pattern, self._overlay = pattern, overlay
        self._wake.set()

    async def run(self) -> None:
        """Play until cancelled."""
        while True:
            self._wake.clear()
            overlay, self._overlay = self._overlay, None
            if overlay is not None and await self._cycle(overlay):
                continue  # a newer play() interrupted the overlay
            pattern = self.pattern
            if pattern is None:
                await self._wake.wait()
                continue
            if self._on_change is not None:
                self._on_change(pattern.name)
            while not await self._cycle(pattern):
                pass

    async def _cycle(self, pattern: Pattern) -> bool:
        """Play one cycle; True when a new pattern interrupted it."""
        for colour, seconds in pattern.steps:
            self.light.show(colour)
            if seconds == float("inf"):
                await self._wake.wait()
                return True
            if await wait_event(self._wake, seconds):
                return True
        return False


class BayButton(_Closable):
    """A bay's push button: a short press and a long press, delivered on the event loop."""

    def __init__(
        self,
        pin: int,
        factory: PinFactory,
        loop: asyncio.AbstractEventLoop,
        on_short: Callable[[], None],
        on_long: Callable[[], None],
        hold_seconds: float = HOLD_SECONDS,
    ) -> None:
        self._held = False
        self.button = Button(
            pin, pull_up=True, bounce_time=None, hold_time=hold_seconds, pin_factory=factory
        )

        def pressed() -> None:
            self._held = False

        def held() -> None:
            self._held = True
            loop.call_soon_threadsafe(on_long)  # gpiozero's "held" thread → the loop

        def released() -> None:
            if not self._held:
                loop.call_soon_threadsafe(on_short)  # the thread that moved the pin → the loop

        self.button.when_pressed = pressed
        self.button.when_held = held
        self.button.when_released = released

    def close(self) -> None:
        """Detach the callbacks and release the pin; safe to call twice."""
        if self.closed:
            return
        # Callbacks after the loop closes raise "Event loop is closed": detach them first.
        self.button.when_pressed = self.button.when_held = self.button.when_released = None
        self.button.close()
        super().close()
