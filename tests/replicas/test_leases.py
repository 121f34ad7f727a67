"""Re-attestation leases (storage/leases.py): atomic claims across processes, expiry and takeover,
and rounds shared by two replicas so that each host is attested once per interval."""

from __future__ import annotations

import itertools
import multiprocessing
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from floodlight_trust import clock
from floodlight_trust.storage.leases import LeaseStore, lease_store
from floodlight_trust.storage.sqlite import SqliteStorage
from tests.replicas.cluster import Cluster, wait_for

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=10)


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[LeaseStore, LeaseStore]]:
    # Two Database objects: two connections to one file, as two replicas have.
    one, two = SqliteStorage(tmp_path / "s.sqlite3"), SqliteStorage(tmp_path / "s.sqlite3")
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
    assert sorted(b.claim_due("B", at=T0 + timedelta(seconds=30), until=T0 + timedelta(seconds=40), limit=100)) == sorted(first)


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


def _claimer(path: str, owner: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = lease_store(SqliteStorage(path))
    got: list[str] = []
    at = T0
    while True:
        batch = store.claim_due(owner, at=at, until=at + LEASE, limit=3)
        if not batch:
            break
        got += batch
    out.put(got)


def test_concurrent_claims_from_processes_never_overlap(tmp_path: Path) -> None:
    path = tmp_path / "p.sqlite3"
    hosts = [f"host-{i:03d}" for i in range(300)]
    lease_store(SqliteStorage(path)).sync(hosts, at=T0, first_due=T0)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claimer, args=(str(path), f"P{i}", out)) for i in range(4)]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    claimed = [h for r in results for h in r]
    assert sorted(claimed) == hosts  # every host once, none twice


def test_two_replicas_share_rounds_and_a_killed_ones_hosts_are_taken_over(tmp_path: Path) -> None:
    """Interval 2 s, lease 1 s: each host attested once per interval by one replica; after A is
    killed holding leases (its hosts' agents are slow), B attests them within one interval."""
    c = Cluster(tmp_path, reattest_interval=2, extra_config="reattest_lease_seconds = 1")
    try:
        a = c.start_replica("a")
        hosts = [c.start_host(host_evidence_delay=0.3) for _ in range(6)]
        for h in hosts:
            a.admin.add_host(h.name, h.url)
            assert a.admin.attest(h.name)["trusted"]
        b = c.start_replica("b")
        store = lease_store(SqliteStorage(tmp_path / "state" / "ftrust.sqlite3"))
        owners = {r.health().json()["reattest"]["replica"]: r for r in (a, b)}
        owner_a = next(o for o, r in owners.items() if r is a)
        owner_b = next(o for o, r in owners.items() if r is b)

        def a_holds() -> list[str]:
            return [lease.host for lease in store.leases() if lease.owner == owner_a]

        held = wait_for(a_holds, timeout=30, what="replica A to hold a lease")
        killed_at = datetime.now(UTC)
        a.kill()
        # Within one interval (plus the time its slow agent takes), B has attested A's hosts.
        def taken_over() -> bool:
            rows = {lease.host: lease for lease in store.leases()}
            return all(
                rows[h].attested_by == owner_b and (rows[h].attested_at or killed_at) > killed_at for h in held
            )

        wait_for(taken_over, timeout=2 + 1 + 6 * 0.3 + 3, what="replica B to take over A's hosts")
        # Each host attested once per interval: the due times stay an interval apart and every
        # host was attested in the rounds so far, none left behind.
        wait_for(lambda: all(lease.rounds >= 2 for lease in store.leases()), timeout=15, what="two rounds each")
        rows = store.leases()
        assert {r.host for r in rows} == {h.name for h in hosts}
        assert all(r.due_at > killed_at for r in rows)
        # Once per interval: after the takeover, a host's re-attestations are an interval apart
        # (two replicas attesting one host in one interval would show as a short gap).
        settled = killed_at + timedelta(seconds=1 + 6 * 0.3)
        for h in hosts:
            times = sorted(
                clock.parse_time(r["at"]) for r in b.admin.audit()
                if r["host"] == h.name and r["actor"] == "reattest" and r["action"] == "attest-host"
            )  # fmt: skip
            later = [t for t in times if t > settled]
            assert all((y - x).total_seconds() > 2 * 0.7 for x, y in itertools.pairwise(later)), (h.name, times)
        assert b.stop() == 0
        assert all(r.owner is None for r in store.leases())  # a clean stop frees B's leases
    finally:
        c.close()
