"""Re-attestation leases (storage/leases.py) on each engine: atomic claims across processes
(SQLite: BEGIN IMMEDIATE; PostgreSQL: FOR UPDATE SKIP LOCKED), expiry and takeover, admin rounds
and the schedule's sync. Rounds shared by two real replicas, and a killed one's hosts taken over,
are in test_faults.py."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from floodlight_trust.secrets import Secret
from floodlight_trust.storage.leases import LeaseStore, lease_store
from floodlight_trust.storage.postgres import PostgresStorage
from floodlight_trust.storage.sqlite import SqliteStorage
from floodlight_trust.storage.stores import Storage
from floodlight_trust.storage.url import PostgresUrl, parse_storage_url
from tests.replicas.conftest import ENGINES

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=10)


def _open(where: str, password: str | None) -> Storage:
    """The state of one replica: a SQLite path, or a PostgreSQL URL and its password."""
    if password is None:
        return SqliteStorage(Path(where))
    url = parse_storage_url(where)
    assert isinstance(url, PostgresUrl)
    return PostgresStorage(url.with_password(Secret(password, "test")), pool_size=2)


@pytest.fixture(params=ENGINES)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None]:
    """Where the replicas' shared state is: (path or URL without password, password or None)."""
    if request.param == "postgresql":
        db = request.getfixturevalue("pg_database")
        return db.url_without_password, db.password
    return str(tmp_path / "s.sqlite3"), None


@pytest.fixture
def stores(database: tuple[str, str | None]) -> Iterator[tuple[LeaseStore, LeaseStore]]:
    # Two engines, two connections (pools) to one database, as two replicas have.
    one, two = _open(*database), _open(*database)
    yield lease_store(one), lease_store(two)
    one.close()
    two.close()


def test_a_due_host_is_claimed_by_exactly_one_replica(stores: tuple[LeaseStore, LeaseStore]) -> None:
    a, b = stores
    hosts = [f"h{i}" for i in range(10)]
    a.sync(hosts, at=T0, first_due=T0)
    b.sync(hosts, at=T0, first_due=T0)
    first = a.claim_due("A", at=T0, until=T0 + LEASE, limit=4)
    second = b.claim_due("B", at=T0, until=T0 + LEASE, limit=100)
    assert len(first) == 4 and len(second) == 6 and not set(first) & set(second)
    assert b.claim_due("B", at=T0, until=T0 + LEASE, limit=100) == []  # all held
    # A completes its hosts: due again one interval later, not before.
    for h in first:
        assert a.complete("A", h, at=T0 + timedelta(seconds=1), next_due=T0 + timedelta(seconds=30))
    assert b.claim_due("B", at=T0 + timedelta(seconds=2), until=T0 + LEASE, limit=100) == []
    for h in second:
        assert b.complete("B", h, at=T0 + timedelta(seconds=2), next_due=T0 + timedelta(seconds=60))
    assert sorted(
        b.claim_due("B", at=T0 + timedelta(seconds=30), until=T0 + timedelta(seconds=40), limit=100)
    ) == sorted(first)


def test_a_dead_replicas_leases_expire_and_are_taken_over(stores: tuple[LeaseStore, LeaseStore]) -> None:
    a, b = stores
    a.sync(["x", "y"], at=T0, first_due=T0)
    assert a.claim_due("A", at=T0, until=T0 + LEASE, limit=10) == ["x", "y"]
    # A dies. Until its leases expire nobody else may take the hosts; then B does.
    assert b.claim_due("B", at=T0 + LEASE - timedelta(seconds=1), until=T0 + 2 * LEASE, limit=10) == []
    assert b.claim_due("B", at=T0 + LEASE, until=T0 + 2 * LEASE, limit=10) == ["x", "y"]
    # A comes back late: its completion is refused (B holds the lease now), B's is accepted.
    assert not a.complete("A", "x", at=T0 + LEASE, next_due=T0 + timedelta(seconds=30))
    assert b.complete("B", "x", at=T0 + LEASE, next_due=T0 + timedelta(seconds=30))
    rows = {r.host: r for r in a.leases()}
    assert rows["x"].attested_by == "B" and rows["x"].owner is None and rows["x"].rounds == 1
    assert rows["y"].owner == "B"


def test_an_admin_round_skips_hosts_another_replica_holds(stores: tuple[LeaseStore, LeaseStore]) -> None:
    a, b = stores
    a.sync(["p", "q"], at=T0, first_due=T0 + timedelta(seconds=30))
    assert a.claim("A", ["p"], at=T0, until=T0 + LEASE) == ["p"]  # not due: an admin's round anyway
    assert b.claim("B", ["p", "q", "new"], at=T0, until=T0 + LEASE) == ["q", "new"]
    assert a.release("A") == 1
    assert b.claim("B", ["p"], at=T0, until=T0 + LEASE) == ["p"]


def test_sync_drops_hosts_no_longer_trusted_unless_leased(stores: tuple[LeaseStore, LeaseStore]) -> None:
    a, b = stores
    a.sync(["m", "n", "o"], at=T0, first_due=T0)
    assert b.claim_due("B", at=T0, until=T0 + LEASE, limit=1) == ["m"]
    a.sync(["o"], at=T0, first_due=T0)
    assert [r.host for r in a.leases()] == ["m", "o"]  # n dropped; m is still held by B


def _claimer(where: str, password: str | None, owner: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    storage = _open(where, password)
    store = lease_store(storage)
    got: list[str] = []
    while batch := store.claim_due(owner, at=T0, until=T0 + LEASE, limit=3):
        got += batch
    storage.close()
    out.put(got)


def test_concurrent_claims_from_processes_never_overlap(database: tuple[str, str | None]) -> None:
    hosts = [f"host-{i:03d}" for i in range(300)]
    storage = _open(*database)
    lease_store(storage).sync(hosts, at=T0, first_due=T0)
    storage.close()
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claimer, args=(*database, f"P{i}", out)) for i in range(4)]
    for p in procs:
        p.start()
    results = [out.get(timeout=90) for _ in procs]
    for p in procs:
        p.join(30)
    claimed = [h for r in results for h in r]
    assert sorted(claimed) == hosts  # every host once, none twice
