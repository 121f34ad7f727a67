"""Fixtures of the storage contract tests: ``storage`` yields a fresh, migrated engine.

Every test in tests/storage/ runs once per engine in ENGINES. A new engine adds one entry (a
factory that gets the test's fixture request, for ``tmp_path`` or a database of the throwaway
PostgreSQL cluster, and yields a Storage) and passes the same contract.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from floodlight_trust.storage.postgres import PostgresStorage
from floodlight_trust.storage.sqlite import SqliteStorage
from floodlight_trust.storage.stores import Storage
from floodlight_trust.storage.url import PostgresUrl, parse_storage_url
from tests.support.postgres import PgDatabase


@contextmanager
def sqlite_engine(request: pytest.FixtureRequest) -> Iterator[Storage]:
    tmp_path: Path = request.getfixturevalue("tmp_path")
    storage = SqliteStorage(tmp_path / "state.db")
    try:
        yield storage
    finally:
        storage.close()


@contextmanager
def postgres_engine(request: pytest.FixtureRequest) -> Iterator[Storage]:
    """A fresh database of the session's cluster (tests/support/postgres.py), over TCP with its password."""
    database: PgDatabase = request.getfixturevalue("pg_database")
    url = parse_storage_url(database.url)
    assert isinstance(url, PostgresUrl)
    storage = PostgresStorage(url, pool_size=4)
    try:
        yield storage
    finally:
        storage.close()


ENGINES: dict[str, Callable[[pytest.FixtureRequest], AbstractContextManager[Storage]]] = {
    "sqlite": sqlite_engine,
    "postgresql": postgres_engine,
}


@pytest.fixture(params=sorted(ENGINES))
def storage(request: pytest.FixtureRequest) -> Iterator[Storage]:
    with ENGINES[request.param](request) as engine:
        yield engine
