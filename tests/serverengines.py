"""Helpers for the station server's tests: a fresh database per test, and waiting on the
index. The engines themselves are session fixtures (serverfixtures.py)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
import pytest

from camdock.server.config import ServerConfig
from camdock.server.consumer import Server
from camdock.server.engines import Postgres, missing

_names = itertools.count(1)


def need_engines() -> None:
    """Skip (with the reason) where PostgreSQL or RabbitMQ is not installed."""
    if why := missing():
        pytest.skip(why)


def fresh_db(pg: Postgres) -> str:
    """A new empty database in ``pg``; its DSN."""
    name = f"t{next(_names)}_{int(time.monotonic() * 1000) % 100000}"
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return pg.dsn.replace("dbname=camdock", f"dbname={name}")


def query(dsn: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of one query."""
    with psycopg.connect(dsn) as conn:
        return list(conn.execute(sql, args or None).fetchall())  # type: ignore[arg-type]


async def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait (without blocking the loop) until ``check()`` holds."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.3)


@contextlib.asynccontextmanager
async def serving(cfg: ServerConfig) -> AsyncIterator[Server]:
    """``camdock server`` in this loop, consuming, until the block ends."""
    server = Server(cfg)
    task = asyncio.create_task(server.run(), name="test.server")
    try:
        await asyncio.wait_for(server.ready.wait(), 60)
        yield server
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
