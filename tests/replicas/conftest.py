"""``make_cluster``: replicas on each engine, SQLite (one file) and PostgreSQL (the engine replicas
are for: a fresh migrated database of the session's cluster, tests/support/postgres.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.replicas.cluster import DB_PASSWORD, Cluster
from tests.support.postgres import PgDatabase

ENGINES = ("sqlite", "postgresql")


@pytest.fixture(params=ENGINES)
def make_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    """A factory of :class:`Cluster` (keyword arguments as its own) on the parametrized engine;
    every cluster made is closed after the test."""
    made: list[Cluster] = []
    # Asked for now, not in make(): the database is then set up before and dropped after the clusters.
    db: PgDatabase | None = request.getfixturevalue("pg_database") if request.param == "postgresql" else None

    def make(**kw: Any) -> Cluster:
        if db is not None:
            kw = {"database_url": db.url_without_password, "env": {DB_PASSWORD: db.password}, **kw}
        root = tmp_path / f"deployment-{len(made)}"
        root.mkdir()
        cluster = Cluster(root, **kw)
        made.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.close()
