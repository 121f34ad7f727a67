"""Fixtures of the storage contract tests: ``storage`` yields a fresh, migrated engine.

Every test in tests/storage/ runs once per engine in ENGINES. A new engine adds one entry (a
factory that gets pytest's ``tmp_path`` and yields a Storage) and passes the same contract.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from floodlight_trust.storage.sqlite import SqliteStorage
from floodlight_trust.storage.stores import Storage


@contextmanager
def sqlite_engine(tmp_path: Path) -> Iterator[Storage]:
    storage = SqliteStorage(tmp_path / "state.db")
    try:
        yield storage
    finally:
        storage.close()


ENGINES: dict[str, Callable[[Path], AbstractContextManager[Storage]]] = {"sqlite": sqlite_engine}


@pytest.fixture(params=sorted(ENGINES))
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    with ENGINES[request.param](tmp_path) as engine:
        yield engine
