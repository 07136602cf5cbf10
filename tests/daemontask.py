"""Stopping a daemon task in a test (tests/conftest.py re-exports it; the udev tests, which have
a conftest of their own, import it from here)."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["stop"]


async def stop(task: asyncio.Task[Any], within: float = 30) -> None:
    """Cancel a daemon task and wait for it to end; a shutdown that hangs fails here, at once,
    rather than at the suite's per-test timeout."""
    task.cancel()
    # asyncio.wait, not a timeout around ``await task``: a cancel of ours that the timeout
    # raised would be swallowed with the task's own, and a hung stop would pass unnoticed.
    done, _ = await asyncio.wait({task}, timeout=within)
    if not done:
        stuck = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        raise AssertionError(f"the daemon did not stop within {within:.0f} s: {stuck}")
    if not task.cancelled():
        task.result()  # what it ended with, if not the cancel
