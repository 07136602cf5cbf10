"""Small asyncio helpers the long-running tasks share."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


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


def in_daemon_thread(fn: Callable[[], T], name: str) -> asyncio.Future[T]:
    """Run blocking ``fn`` on a thread of its own; its result (or exception) as a Future.

    A daemon thread, not an executor's: a camera whose reads stall (a failing card, a
    suspended device) blocks its thread in ``read`` beyond any cancellation, and an executor's
    threads are joined at interpreter exit, so the process would outlive systemd's
    TimeoutStopSec. A daemon thread is left behind; the stop path waits a bounded time."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def body() -> None:
        try:
            result = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(settle, False, exc)
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, True, result)

    threading.Thread(target=body, name=name, daemon=True).start()
    return future
