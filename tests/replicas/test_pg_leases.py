"""The PostgreSQL lease store: claims from several processes at once never overlap
(FOR UPDATE SKIP LOCKED), expiry and takeover as on SQLite."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta

from floodlight_trust.secrets import Secret
from floodlight_trust.storage.leases import lease_store
from floodlight_trust.storage.postgres import PostgresStorage
from floodlight_trust.storage.url import parse_storage_url
from tests.support.postgres import PgDatabase

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=10)


def _open(url: str, password: str) -> object:
    parsed = parse_storage_url(url)
    return lease_store(PostgresStorage(parsed.with_password(Secret(password, "test"))))  # type: ignore[union-attr]


def _claimer(url: str, password: str, owner: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = _open(url, password)
    got: list[str] = []
    while batch := store.claim_due(owner, at=T0, until=T0 + LEASE, limit=3):  # type: ignore[attr-defined]
        got += batch
    out.put(got)


def test_postgres_claims_from_processes_never_overlap(pg_database: PgDatabase) -> None:
    url, password = pg_database.url_without_password, pg_database.password
    hosts = [f"host-{i:03d}" for i in range(300)]
    store = _open(url, password)
    store.sync(hosts, at=T0, first_due=T0)  # type: ignore[attr-defined]
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claimer, args=(url, password, f"P{i}", out)) for i in range(4)]
    for p in procs:
        p.start()
    results = [out.get(timeout=90) for _ in procs]
    for p in procs:
        p.join(30)
    assert sorted(h for r in results for h in r) == hosts


def test_postgres_lease_expiry_and_takeover(pg_database: PgDatabase) -> None:
    a = _open(pg_database.url_without_password, pg_database.password)
    b = _open(pg_database.url_without_password, pg_database.password)
    a.sync(["x", "y"], at=T0, first_due=T0)  # type: ignore[attr-defined]
    assert a.claim_due("A", at=T0, until=T0 + LEASE, limit=10) == ["x", "y"]  # type: ignore[attr-defined]
    assert b.claim_due("B", at=T0 + LEASE - timedelta(seconds=1), until=T0 + 2 * LEASE, limit=10) == []  # type: ignore[attr-defined]
    assert b.claim_due("B", at=T0 + LEASE, until=T0 + 2 * LEASE, limit=10) == ["x", "y"]  # type: ignore[attr-defined]
    assert not a.complete("A", "x", at=T0 + LEASE, next_due=T0 + timedelta(seconds=30))  # type: ignore[attr-defined]
    assert b.complete("B", "x", at=T0 + LEASE, next_due=T0 + timedelta(seconds=30))  # type: ignore[attr-defined]
    assert b.claim("B", ["x"], at=T0 + LEASE, until=T0 + 2 * LEASE) == ["x"]  # type: ignore[attr-defined]
    assert a.claim("A", ["x", "y", "z"], at=T0 + LEASE, until=T0 + 2 * LEASE) == ["z"]  # type: ignore[attr-defined]
    assert a.release("A") == 1  # type: ignore[attr-defined]
