"""Small asyncio helpers the long-running tasks share."""

from __future__ import annotations

import asyncio
import contextlib


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``event``; True when it was set.

    Not ``asyncio.wait_for``: on Python 3.11 (Bookworm's) it swallows a cancellation that
    arrives in the same loop turn as the event (CPython gh-86296, fixed in 3.12). A task that
    swallows its cancellation keeps its ``TaskGroup``, and so the daemon's shutdown, waiting
    forever. ``asyncio.timeout`` re-raises the cancellation.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
            return True
    return False
