"""The LED grammar: what each bay state looks like (firmware-notes/led-grammar.md).

Every state has its own **rhythm**, so an officer who cannot tell red from green still reads the
bay; the colour says the same thing a second time. A pattern is a cycle of (colour, seconds)
steps; ``None`` is dark. A notice is a short overlay that plays once, then the state's pattern
returns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from camdock.core.bay import Notice, Phase


class Colour(StrEnum):
    """An LED colour."""

    RED = "red"
    AMBER = "amber"
    GREEN = "green"


# Colour → (red, green, blue) duty for an RGB LED; amber is red with some green.
RGB = {Colour.RED: (1.0, 0.0, 0.0), Colour.AMBER: (1.0, 0.35, 0.0), Colour.GREEN: (0.0, 1.0, 0.0)}

Step = tuple[Colour | None, float]


@dataclass(frozen=True)
class Pattern:
    """A named LED pattern: colour steps with durations, repeated."""

    name: str  # the rhythm's name, as printed in the grammar and the simulator
    steps: tuple[Step, ...]
    repeat: bool = True

    @property
    def colour(self) -> Colour | None:
        """The pattern's main colour (its first lit step)."""
        return next((c for c, _ in self.steps if c is not None), None)


INF = math.inf


def _flashes(colour: Colour, n: int, on: float, off: float, rest: float) -> tuple[Step, ...]:
    steps: list[Step] = []
    for _ in range(n):
        steps += [(colour, on), (None, off)]
    steps[-1] = (None, off + rest)
    return tuple(steps)


PATTERNS: dict[Phase, Pattern] = {
    Phase.EMPTY: Pattern("off", ((None, INF),)),
    Phase.IDENTIFYING: Pattern("flicker", ((Colour.AMBER, 0.05), (None, 0.2))),
    Phase.UNKNOWN_DEVICE: Pattern("double flash", _flashes(Colour.RED, 2, 0.15, 0.15, 0.9)),
    Phase.OFFLOADING: Pattern("slow blink", ((Colour.AMBER, 0.5), (None, 0.5))),
    Phase.VERIFYING: Pattern("long on, short off", ((Colour.AMBER, 0.9), (None, 0.1))),
    Phase.DONE: Pattern("steady", ((Colour.GREEN, INF),)),
    Phase.FAULT: Pattern("fast blink", ((Colour.RED, 0.125), (None, 0.125))),
    Phase.INTERRUPTED: Pattern("triple flash", _flashes(Colour.AMBER, 3, 0.15, 0.15, 1.1)),
    Phase.TESTING: Pattern("heartbeat", ((Colour.GREEN, 0.25), (None, 0.75))),
    Phase.TEST_PASSED: Pattern("steady", ((Colour.GREEN, INF),)),
    Phase.TEST_FAILED: Pattern("long flash", ((Colour.RED, 1.5), (None, 0.5))),
    Phase.TAKE_ME: Pattern("quadruple flash", _flashes(Colour.GREEN, 4, 0.1, 0.1, 0.8)),
    Phase.STORAGE_MISSING: Pattern(
        "long-short", ((Colour.RED, 1.0), (None, 0.25), (Colour.RED, 0.25), (None, 1.0))
    ),
}

NOTICES: dict[Notice, Pattern] = {
    Notice.REFUSED: Pattern("three quick flashes", _flashes(Colour.RED, 3, 0.08, 0.08, 0.3), False),
    Notice.UNAVAILABLE: Pattern(
        "two long flashes", _flashes(Colour.AMBER, 2, 0.4, 0.2, 0.3), False
    ),
    Notice.ACKNOWLEDGED: Pattern("one long flash", ((Colour.GREEN, 0.6), (None, 0.3)), False),
}


def pattern_for(phase: Phase) -> Pattern:
    """The LED pattern of a bay phase (firmware-notes/led-grammar.md)."""
    return PATTERNS[phase]
