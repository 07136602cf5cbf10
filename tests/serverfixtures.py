"""The station server's engines for the tests, a pytest plugin loaded by the modules that need
them (``pytest_plugins = ["serverfixtures"]``, imported by nothing else so that pytest
rewrites its asserts): one PostgreSQL and one three-node RabbitMQ cluster for the whole
session, started by the first test that asks and stopped when the session ends, so nothing
is left running (no postgres, beam.smp or epmd: README, "Station server")."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from camdock.server.engines import Postgres, RabbitCluster
from serverengines import need_engines

__all__ = ["cluster", "pg"]


@pytest.fixture(scope="session")
def pg() -> Iterator[Postgres]:
    """PostgreSQL 15 on loopback (fsync off: a test's throwaway index), for the session."""
    need_engines()
    engine = Postgres()
    try:
        engine.start()
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="session")
def cluster() -> Iterator[RabbitCluster]:
    """Three RabbitMQ nodes on loopback, one cluster, for the session: starting it is most of
    a minute on a busy machine, so every cluster test shares it (each its own queue and
    database); the test that kills a node runs last and restarts nothing."""
    need_engines()
    c = RabbitCluster(3)
    try:
        c.start()
        yield c
    finally:
        c.stop()
