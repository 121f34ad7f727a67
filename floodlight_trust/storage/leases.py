"""Re-attestation leases: which replica attests which host, and when each host is next due.

Several ``vm serve`` processes on one database share the re-attestation work through one table,
one row per host: ``due_at`` (when the host must next be attested) and a lease (``owner``,
``lease_until``). A replica claims due hosts whose lease is free or expired, attests them, and
completes each, which moves ``due_at`` one interval on and frees the lease. A claim is atomic
(SQLite: inside ``BEGIN IMMEDIATE``, which serialises writers across processes; PostgreSQL:
``SELECT ... FOR UPDATE SKIP LOCKED``), so two replicas never hold the same host; a replica that
dies holds its hosts only until its leases expire, then any other replica claims them.

:class:`LeaseStore` is the seam (a Protocol); :class:`SqliteLeaseStore` and
:class:`PostgresLeaseStore` the engines (their SQL is here, beside the Protocol, so the lease
table is one module; the schema is the step ``("reattest-leases", 1)`` of storage/migrations.py).
Times are stored as seconds since the epoch (UTC), read back as aware datetimes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from floodlight_trust.storage.sqlite import Database
    from floodlight_trust.storage.stores import Storage

# The schema of the step ("reattest-leases", 1) of storage/migrations.py, per engine (the engine
# modules' DDL maps take it from here).
SQLITE_DDL = """
    CREATE TABLE reattest_leases (
        host TEXT PRIMARY KEY,
        due_at REAL NOT NULL,
        owner TEXT,
        lease_until REAL,
        attested_at REAL,
        attested_by TEXT,
        rounds INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX reattest_leases_due ON reattest_leases (due_at)
    """


@dataclass(frozen=True, slots=True)
class Lease:
    """One host's row: when it is due, who holds it until when, who attested it last."""

    host: str
    due_at: datetime
    owner: str | None
    lease_until: datetime | None
    attested_at: datetime | None
    attested_by: str | None
    rounds: int


class LeaseStore(Protocol):
    """The re-attestation schedule shared by every replica."""

    def sync(self, hosts: Collection[str], *, at: datetime, first_due: datetime) -> None:
        """Make the schedule hold exactly ``hosts``: new ones due at ``first_due``; others dropped
        unless a live lease (at ``at``) still holds them."""
        ...

    def claim_due(self, owner: str, *, at: datetime, until: datetime, limit: int) -> list[str]:
        """Lease to ``owner`` until ``until`` at most ``limit`` hosts due at ``at`` and not held by a
        live lease of anyone (soonest due first); returns them."""
        ...

    def claim(self, owner: str, hosts: Sequence[str], *, at: datetime, until: datetime) -> list[str]:
        """Lease ``hosts`` to ``owner`` whether due or not (an admin's round), except those another
        owner holds with a live lease; returns the hosts leased."""
        ...

    def complete(self, owner: str, host: str, *, at: datetime, next_due: datetime) -> bool:
        """``owner`` attested ``host`` at ``at``: due again at ``next_due``, lease freed. False when
        ``owner`` no longer held the lease (it expired and another replica claimed the host)."""
        ...

    def complete_many(self, owner: str, attested: Mapping[str, datetime], *, next_due: datetime) -> set[str]:
        """:meth:`complete` for each host of ``attested`` (host -> when it was attested), in ONE
        transaction; returns the hosts completed (those ``owner`` still held)."""
        ...

    def release(self, owner: str) -> int:
        """Free every lease of ``owner`` (a replica stopping cleanly); returns how many."""
        ...

    def leases(self) -> list[Lease]:
        """Every row, by host."""
        ...


def _ts(at: datetime) -> float:
    return at.timestamp()


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _lease(r: Any) -> Lease:
    """A lease row of either engine (sqlite3.Row or psycopg's dict row) as a :class:`Lease`."""
    return Lease(
        host=r["host"],
        due_at=datetime.fromtimestamp(r["due_at"], UTC),
        owner=r["owner"],
        lease_until=_dt(r["lease_until"]),
        attested_at=_dt(r["attested_at"]),
        attested_by=r["attested_by"],
        rounds=int(r["rounds"]),
    )


class SqliteLeaseStore:
    """:class:`LeaseStore` on the deployment's SQLite :class:`Database`."""

    def __init__(self, db: Database):
        self.db = db
        self._synced: frozenset[str] | None = None  # what this process last wrote (skip idle rewrites)

    def sync(self, hosts: Collection[str], *, at: datetime, first_due: datetime) -> None:
        wanted = frozenset(hosts)
        if wanted == self._synced:
            return
        with self.db.transaction() as tx:
            tx.executemany(
                "INSERT OR IGNORE INTO reattest_leases (host, due_at) VALUES (?, ?)",
                [(h, _ts(first_due)) for h in sorted(wanted)],
            )
            tx.execute(
                "DELETE FROM reattest_leases WHERE host NOT IN (SELECT value FROM json_each(?))"
                " AND (lease_until IS NULL OR lease_until <= ?)",
                (json.dumps(sorted(wanted)), _ts(at)),
            )
        self._synced = wanted

    def claim_due(self, owner: str, *, at: datetime, until: datetime, limit: int) -> list[str]:
        with self.db.transaction() as tx:
            rows = tx.execute(
                "UPDATE reattest_leases SET owner = ?, lease_until = ? WHERE host IN ("
                " SELECT host FROM reattest_leases WHERE due_at <= ? AND (lease_until IS NULL OR lease_until <= ?)"
                " ORDER BY due_at, host LIMIT ?) RETURNING host",
                (owner, _ts(until), _ts(at), _ts(at), max(0, limit)),
            ).fetchall()
        return sorted(r[0] for r in rows)

    def claim(self, owner: str, hosts: Sequence[str], *, at: datetime, until: datetime) -> list[str]:
        names = json.dumps(list(dict.fromkeys(hosts)))
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT OR IGNORE INTO reattest_leases (host, due_at) SELECT value, ? FROM json_each(?)",
                (_ts(until), names),
            )
            rows = tx.execute(
                "UPDATE reattest_leases SET owner = ?, lease_until = ?"
                " WHERE host IN (SELECT value FROM json_each(?))"
                " AND (lease_until IS NULL OR lease_until <= ? OR owner = ?) RETURNING host",
                (owner, _ts(until), names, _ts(at), owner),
            ).fetchall()
        held = {r[0] for r in rows}
        return [h for h in dict.fromkeys(hosts) if h in held]

    def complete(self, owner: str, host: str, *, at: datetime, next_due: datetime) -> bool:
        return host in self.complete_many(owner, {host: at}, next_due=next_due)

    def complete_many(self, owner: str, attested: Mapping[str, datetime], *, next_due: datetime) -> set[str]:
        if not attested:
            return set()
        done: set[str] = set()
        with self.db.transaction() as tx:
            for host, at in attested.items():
                if tx.execute(
                    "UPDATE reattest_leases SET due_at = ?, owner = NULL, lease_until = NULL, attested_at = ?,"
                    " attested_by = ?, rounds = rounds + 1 WHERE host = ? AND owner = ?",
                    (_ts(next_due), _ts(at), owner, host, owner),
                ).rowcount:
                    done.add(host)
        return done

    def release(self, owner: str) -> int:
        with self.db.transaction() as tx:
            return int(
                tx.execute(
                    "UPDATE reattest_leases SET owner = NULL, lease_until = NULL WHERE owner = ?", (owner,)
                ).rowcount
            )

    def leases(self) -> list[Lease]:
        return [_lease(r) for r in self.db.query("SELECT * FROM reattest_leases ORDER BY host")]


# -- PostgreSQL -------------------------------------------------------------------------------------

POSTGRES_DDL = """
CREATE TABLE reattest_leases (
    host TEXT PRIMARY KEY,
    due_at DOUBLE PRECISION NOT NULL,
    owner TEXT,
    lease_until DOUBLE PRECISION,
    attested_at DOUBLE PRECISION,
    attested_by TEXT,
    rounds INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX reattest_leases_due ON reattest_leases (due_at)
"""


class PostgresLeaseStore:
    """:class:`LeaseStore` on PostgreSQL. ``transaction`` opens one transaction on a connection of
    the engine's pool (a psycopg connection, dict rows). Claims take the due rows with
    ``FOR UPDATE SKIP LOCKED``: two replicas claiming at once each get other hosts, none waits."""

    def __init__(self, transaction: Callable[[], AbstractContextManager[Any]]):
        self._transaction = transaction
        self._synced: frozenset[str] | None = None

    def sync(self, hosts: Collection[str], *, at: datetime, first_due: datetime) -> None:
        wanted = frozenset(hosts)
        if wanted == self._synced:
            return
        names = sorted(wanted)
        with self._transaction() as c:
            c.execute(
                "INSERT INTO reattest_leases (host, due_at) SELECT unnest(%s::text[]), %s ON CONFLICT DO NOTHING",
                (names, _ts(first_due)),
            )
            c.execute(
                "DELETE FROM reattest_leases WHERE NOT (host = ANY(%s::text[]))"
                " AND (lease_until IS NULL OR lease_until <= %s)",
                (names, _ts(at)),
            )
        self._synced = wanted

    def claim_due(self, owner: str, *, at: datetime, until: datetime, limit: int) -> list[str]:
        with self._transaction() as c:
            rows = c.execute(
                "WITH due AS (SELECT host FROM reattest_leases WHERE due_at <= %s"
                " AND (lease_until IS NULL OR lease_until <= %s) ORDER BY due_at, host LIMIT %s"
                " FOR UPDATE SKIP LOCKED)"
                " UPDATE reattest_leases l SET owner = %s, lease_until = %s FROM due WHERE l.host = due.host"
                " RETURNING l.host",
                (_ts(at), _ts(at), max(0, limit), owner, _ts(until)),
            ).fetchall()
        return sorted(r["host"] for r in rows)

    def claim(self, owner: str, hosts: Sequence[str], *, at: datetime, until: datetime) -> list[str]:
        names = list(dict.fromkeys(hosts))
        with self._transaction() as c:
            c.execute(
                "INSERT INTO reattest_leases (host, due_at) SELECT unnest(%s::text[]), %s ON CONFLICT DO NOTHING",
                (names, _ts(until)),
            )
            rows = c.execute(
                "WITH free AS (SELECT host FROM reattest_leases WHERE host = ANY(%s::text[])"
                " AND (lease_until IS NULL OR lease_until <= %s OR owner = %s) FOR UPDATE SKIP LOCKED)"
                " UPDATE reattest_leases l SET owner = %s, lease_until = %s FROM free WHERE l.host = free.host"
                " RETURNING l.host",
                (names, _ts(at), owner, owner, _ts(until)),
            ).fetchall()
        held = {r["host"] for r in rows}
        return [h for h in names if h in held]

    def complete(self, owner: str, host: str, *, at: datetime, next_due: datetime) -> bool:
        return host in self.complete_many(owner, {host: at}, next_due=next_due)

    def complete_many(self, owner: str, attested: Mapping[str, datetime], *, next_due: datetime) -> set[str]:
        if not attested:
            return set()
        hosts = list(attested)
        with self._transaction() as c:
            rows = c.execute(
                "UPDATE reattest_leases l SET due_at = %s, owner = NULL, lease_until = NULL, attested_at = d.at,"
                " attested_by = %s, rounds = l.rounds + 1"
                " FROM unnest(%s::text[], %s::double precision[]) AS d (host, at)"
                " WHERE l.host = d.host AND l.owner = %s RETURNING l.host",
                (_ts(next_due), owner, hosts, [_ts(attested[h]) for h in hosts], owner),
            ).fetchall()
        return {r["host"] for r in rows}

    def release(self, owner: str) -> int:
        with self._transaction() as c:
            return int(
                c.execute("UPDATE reattest_leases SET owner = NULL, lease_until = NULL WHERE owner = %s", (owner,)).rowcount
            )

    def leases(self) -> list[Lease]:
        with self._transaction() as c:
            rows = c.execute("SELECT * FROM reattest_leases ORDER BY host").fetchall()
        return [_lease(r) for r in rows]


def lease_store(storage: Storage) -> LeaseStore:
    """The lease store on ``storage``'s engine (the same database as every other store)."""
    from floodlight_trust.storage.sqlite import SqliteStorage

    if isinstance(storage, SqliteStorage):
        return SqliteLeaseStore(storage.db)
    from floodlight_trust.storage.postgres import PostgresStorage

    if isinstance(storage, PostgresStorage):
        return PostgresLeaseStore(storage.connection_transaction)
    raise TypeError(f"no lease store for {type(storage).__name__}")
