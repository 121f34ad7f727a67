"""The throwaway cluster the PostgreSQL tests run on (tests/support/postgres.py) is a real server."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

from floodlight_trust.storage.migrations import STEPS
from tests.support.postgres import LocalCluster, PgDatabase, find_bindir


def test_cluster_serves_sql_over_tcp_with_a_password(pg_database: PgDatabase) -> None:
    with psycopg.connect(pg_database.url) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()
        fsync = conn.execute("SHOW fsync").fetchone()
        db = conn.execute("SELECT current_database()").fetchone()
    assert version is not None and int(version[0]) >= 120000
    assert fsync == ("off",)  # throwaway: speed over durability
    assert db == (pg_database.name,)


def test_tcp_without_the_password_is_refused(pg_database: PgDatabase) -> None:
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(pg_database.url_without_password, connect_timeout=10).close()


def test_each_test_gets_a_fresh_migrated_database(pg_database: PgDatabase) -> None:
    """A copy of the cluster's migrated template: every step applied, every table empty."""
    with psycopg.connect(pg_database.url) as conn:
        steps = {tuple(r) for r in conn.execute("SELECT component, version FROM schema_migrations")}
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        rows = {
            t: conn.execute(f"SELECT count(*) FROM {t}".encode()).fetchone() for t in tables if t != "schema_migrations"
        }
    assert steps == {s.key for s in STEPS}
    assert "manager_enrollments" in tables and "reattest_leases" in tables
    assert set(rows.values()) == {(0,)}


def test_a_blank_database_has_no_tables(pg_blank_database: PgDatabase) -> None:
    with psycopg.connect(pg_blank_database.url) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    assert tables == (0,)


def test_the_template_is_closed_to_connections(pg_database: PgDatabase) -> None:
    """No session can sit on the template (which would make the next copy of it fail)."""
    template = pg_database.cluster.migrated_template()
    with pytest.raises(psycopg.OperationalError, match="not currently accepting connections"):
        psycopg.connect(pg_database.cluster.url(template), connect_timeout=10).close()


def test_a_cluster_stops_and_leaves_nothing_behind(pg_cluster: LocalCluster) -> None:
    bindir = find_bindir()
    assert bindir is not None  # pg_cluster found it
    cluster = LocalCluster(bindir).start()
    root, port = cluster.root, cluster.port
    with psycopg.connect(cluster.url()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    if os.geteuid() == 0:  # initdb refuses root: the server runs as nobody
        assert Path(cluster.data).stat().st_uid != 0
    cluster.stop()
    assert not root.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(f"postgresql://ftrust@127.0.0.1:{port}/postgres", connect_timeout=5).close()


def test_missing_binaries_fail_under_ci_and_skip_saying_so_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support import postgres

    monkeypatch.setattr(postgres, "find_bindir", lambda: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="initdb, pg_ctl"):
        postgres.require_postgres()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="apt-get install postgresql"):
        postgres.require_postgres()
