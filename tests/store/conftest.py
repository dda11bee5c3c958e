"""Fixtures for the trade store tests: a store URL on each backend (a fresh
PostgreSQL database, or a SQLite file), a chain built with the engine, and
the real-cluster fixtures (`cluster`, `cluster_config`) with their log check,
shared with tests/cluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dex.store.synthetic import ChainBuilder
from tests import kit
from tests.cluster.conftest import *  # noqa: F403 - cluster, cluster_config and the log-check hooks
from tests.store.pg import FreshDatabase, shared_server_or_skip


@pytest.fixture
def pg_url() -> Iterator[str]:
    shared_server_or_skip()
    database = FreshDatabase()
    try:
        yield database.url
    finally:
        database.drop()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'store' / 'trades.sqlite'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return request.getfixturevalue(name)


@pytest.fixture
def builder(tmp_path) -> Iterator[ChainBuilder]:
    b = ChainBuilder(tmp_path / "chain" / "blocks.dat", kit.markets())
    yield b
    b.close()
