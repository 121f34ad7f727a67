"""Re-attestation leases completed in batches (storage/leases.py ``complete_many``), on every engine:
one transaction completes a batch, and a host whose lease was taken over is left to its new holder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from floodlight_trust.storage.leases import lease_store
from floodlight_trust.storage.stores import Storage

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=10)
INTERVAL = timedelta(seconds=30)


def test_a_batch_completes_only_the_leases_its_owner_still_holds(storage: Storage) -> None:
    a, b = lease_store(storage), lease_store(storage)
    hosts = [f"h{i}" for i in range(5)]
    a.sync(hosts, at=T0, first_due=T0)
    assert a.claim_due("A", at=T0, until=T0 + LEASE, limit=10) == hosts
    # A is slow: its lease on h4 expires and B takes the host over before A completes its batch.
    assert b.claim("B", ["h4"], at=T0 + LEASE, until=T0 + 2 * LEASE) == ["h4"]
    attested = {h: T0 + timedelta(seconds=i + 1) for i, h in enumerate(hosts)}
    assert a.complete_many("A", attested, next_due=T0 + INTERVAL) == {"h0", "h1", "h2", "h3"}
    rows = {r.host: r for r in a.leases()}
    for i, h in enumerate(hosts[:4]):
        r = rows[h]
        assert (r.owner, r.lease_until, r.attested_by, r.rounds) == (None, None, "A", 1)
        assert r.attested_at == T0 + timedelta(seconds=i + 1) and r.due_at == T0 + INTERVAL
    assert (rows["h4"].owner, rows["h4"].rounds, rows["h4"].attested_at) == ("B", 0, None)  # B's, untouched
    # B's completion of h4 counts; completed hosts are not due again before the interval.
    assert b.complete_many("B", {"h4": T0 + LEASE + timedelta(seconds=1)}, next_due=T0 + INTERVAL) == {"h4"}
    assert b.claim_due("B", at=T0 + INTERVAL - timedelta(seconds=1), until=T0 + INTERVAL, limit=10) == []
    assert a.claim_due("A", at=T0 + INTERVAL, until=T0 + INTERVAL + LEASE, limit=10) == hosts
    assert a.complete_many("A", {}, next_due=T0 + 2 * INTERVAL) == set()
