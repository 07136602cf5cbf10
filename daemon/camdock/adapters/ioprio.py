"""A thread's I/O priority (ioprio_set): the seal, the scrub and the chain check read at idle
priority so they never slow an offload. Best effort: not every kernel or architecture has it."""

from __future__ import annotations

import ctypes
import functools
import platform
from collections.abc import Callable
from typing import ParamSpec, TypeVar

__all__ = ["at_idle_io", "idle_io_priority"]

P = ParamSpec("P")
R = TypeVar("R")

# ioprio_set's and ioprio_get's numbers (the latter one more) per architecture
_IOPRIO_SET = {"x86_64": 251, "aarch64": 30, "armv7l": 314, "armv6l": 314}
_IDLE = 3 << 13  # IOPRIO_CLASS_IDLE


def _set(value: int) -> None:
    nr = _IOPRIO_SET.get(platform.machine())
    if nr is not None:
        ctypes.CDLL(None, use_errno=True).syscall(nr, 1, 0, value)  # IOPRIO_WHO_PROCESS, us


def _get() -> int:
    nr = _IOPRIO_SET.get(platform.machine())
    if nr is None:
        return 0
    found = ctypes.CDLL(None, use_errno=True).syscall(nr + 1, 1, 0)
    return max(int(found), 0)  # -1: not known; 0 is the default (follows the CPU nice)


def idle_io_priority() -> None:
    """This thread's I/O at idle priority, for good (a thread of its own)."""
    _set(_IDLE)


def at_idle_io(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn`` with its thread's I/O at idle priority, put back after: the thread may be a
    pool's (asyncio.to_thread) that later runs work that must not wait (review: the chain
    check and the scrub left a pool thread at idle priority for whatever came next)."""

    @functools.wraps(fn)
    def at_idle(*args: P.args, **kwargs: P.kwargs) -> R:
        before = _get()
        _set(_IDLE)
        try:
            return fn(*args, **kwargs)
        finally:
            _set(before)

    return at_idle
