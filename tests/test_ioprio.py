"""Idle I/O priority for the background readers (adapters/ioprio.py), and only for them."""

from __future__ import annotations

import platform
from concurrent.futures import ThreadPoolExecutor

import pytest

from camdock.adapters import ioprio

IDLE = 3 << 13


@pytest.mark.skipif(platform.machine() not in ("x86_64", "aarch64"), reason="ioprio numbers")
def test_a_pool_thread_is_given_back_at_its_own_io_priority() -> None:
    """Review of this stop's changes: the chain check and the scrub set idle I/O priority on a
    pool thread (asyncio.to_thread) and left it there for whatever work came next. Now the
    priority holds inside the call (nested calls too) and is put back after it."""

    @ioprio.at_idle_io
    def inner() -> int:
        return ioprio._get()

    @ioprio.at_idle_io
    def outer() -> tuple[int, int]:
        return inner(), ioprio._get()

    with ThreadPoolExecutor(1) as pool:
        before = pool.submit(ioprio._get).result()
        assert pool.submit(outer).result() == (IDLE, IDLE)
        assert pool.submit(ioprio._get).result() == before != IDLE
