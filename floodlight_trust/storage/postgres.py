"""The PostgreSQL engine: several VM replicas (``ftrust vm serve`` on one or more machines) on one database.

:class:`PostgresStorage` implements the storage Protocols (storage/stores.py) with psycopg 3 and a
bounded connection pool per process (psycopg-pool) that checks a connection before handing it out,
so a replica reconnects by itself after the database restarts. The stores' statements are shared
with every engine (storage/sqlstores.py, spelled for psycopg by :class:`PostgresDialect`); this
module keeps PostgreSQL's own: the pool, transactions and their retries, the advisory locks
(:meth:`_Session.lock`), the DDL and the migration runner.

Isolation. Transactions run at READ COMMITTED, and every place where two replicas could race
(the "Race:" notes of storage/stores.py) is closed by the statement or lock that decides it, so
a transaction never fails for a serialization conflict (a ``with storage.transaction()`` block
cannot be re-run by the engine; SERIALIZABLE would turn contention into errors there):

- one conditional statement decides: a nonce is burnt by ``UPDATE ... WHERE used_at IS NULL`` and a
  name bound by ``UPDATE ... SET bound = COALESCE(bound, new) ... RETURNING``: the second of two
  concurrent updates waits for the first's row lock, then re-evaluates on the committed row
  (PostgreSQL's READ COMMITTED update rule), so exactly one wins; likewise first revocations;
- keys decide: a host name, a (host, VNF) registration, a certificate serial and an enrollment's
  serial are primary keys or unique, inserted with ``ON CONFLICT DO NOTHING`` where a repeat is a
  conflict the caller reports; audit and enrollment ids come from identity sequences;
- a read that guards a write to ANOTHER row (a platform pinned by one host only, an enclave key
  bound to one name only, one active certificate per VNF) first takes a transaction-scoped
  advisory lock on what it guards (``pg_advisory_xact_lock``), so the second replica's read waits
  for the first's commit and then sees it.

``write()`` still retries a callback on a serialization failure or a detected deadlock (SQLSTATE
40001/40P01), which the locks above make rare but cannot rule out for every future statement.

Migrations: the steps of storage/migrations.py, each with its PostgreSQL DDL here (``DDL``), all
applied in ONE transaction under an advisory lock, so replicas starting together never migrate at
once and a failed step leaves the schema as it was (PostgreSQL's DDL is transactional).
"""

from __future__ import annotations

import builtins
import json
import logging
import random
import select
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
import psycopg.errors
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from floodlight_trust.errors import StorageUnavailable
from floodlight_trust.storage.dialect import Dialect
from floodlight_trust.storage.leases import POSTGRES_DDL as LEASES_DDL
from floodlight_trust.storage.migrations import STEPS, Step
from floodlight_trust.storage.sqlstores import Params, SqlTransaction
from floodlight_trust.storage.url import PostgresUrl

T = TypeVar("T")
log = logging.getLogger("floodlight_trust.storage.postgres")

Connection = psycopg.Connection[DictRow]

# pg_advisory_xact_lock key of the migration runner (any constant no other lock of ours hashes to:
# the other locks take hashtextextended of a prefixed text with a different seed).
MIGRATION_LOCK = 0x66747275_73746D67  # "ftrustmg"
_LOCK_SEED = 0x6674  # hashtextextended seed of the row-guard locks
WRITE_RETRIES = 8  # serialization failures / deadlocks before write() gives up
# psycopg-pool retries a failed connection attempt with exponential backoff (1, 2, 4, 8... s) until
# its reconnect_timeout (default 5 min): after an outage of T seconds its next attempt could come up
# to T seconds after the database is back, the replica unhealthy all that while. Giving an attempt
# up after a few seconds makes the next request start a fresh one (at most 2 s between attempts).
RECONNECT_SECONDS = 5.0
# The server ends a session idle inside a transaction this long, releasing its locks. A replica whose
# machine dies mid-transaction sends no FIN: without this its session would hold its row and advisory
# locks until TCP keepalive notices (two hours by default), every other replica's write to those rows
# waiting as long and every lease claim skipping those hosts. No transaction of ours waits for its
# own client that long between two statements (signing and agent calls happen outside them).
IDLE_IN_TRANSACTION_SECONDS = 10.0
RETRYABLE = (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected)


# -- the schema: one DDL per step of storage.migrations.STEPS ----------------------------------------
# Native types where SQLite has text or numbers: TIMESTAMPTZ for times, BOOLEAN for flags, BYTEA for
# bytes, identity columns for ids. JSON documents stay TEXT (the records parse them, as on SQLite).
DDL: Mapping[tuple[str, int], str] = {
    ("manager", 1): """
        CREATE TABLE manager_nonces (
            selector TEXT PRIMARY KEY, verifier BYTEA NOT NULL, purpose TEXT NOT NULL, host TEXT NOT NULL,
            vnf TEXT, issued_at TIMESTAMPTZ NOT NULL, expires_at TIMESTAMPTZ NOT NULL, used_at TIMESTAMPTZ);
        CREATE INDEX manager_nonces_expiry ON manager_nonces (expires_at);
        CREATE TABLE manager_hosts (
            name TEXT PRIMARY KEY, agent_url TEXT, host_policy TEXT,
            status TEXT NOT NULL DEFAULT 'unknown', platform_pck_sha256 TEXT, platform_json TEXT,
            last_attested_at TIMESTAMPTZ, last_trusted_at TIMESTAMPTZ, last_contact_at TIMESTAMPTZ,
            policy_version TEXT, reasons_json TEXT NOT NULL DEFAULT '[]', ima_state_json TEXT,
            ima_entries BIGINT NOT NULL DEFAULT 0, ima_list_sha256 TEXT, simulated BOOLEAN NOT NULL DEFAULT FALSE,
            created_at TIMESTAMPTZ NOT NULL);
        CREATE TABLE manager_vnfs (
            host TEXT NOT NULL, name TEXT NOT NULL, mrenclave TEXT, status TEXT NOT NULL DEFAULT 'unknown',
            last_attested_at TIMESTAMPTZ, public_key_sha256 TEXT, reasons_json TEXT NOT NULL DEFAULT '[]',
            PRIMARY KEY (host, name));
        CREATE TABLE manager_audit (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at TIMESTAMPTZ NOT NULL, at_ts TIMESTAMPTZ NOT NULL,
            actor TEXT NOT NULL, action TEXT NOT NULL, host TEXT, vnf TEXT, allowed BOOLEAN NOT NULL,
            policy_version TEXT, simulated BOOLEAN NOT NULL DEFAULT FALSE, evidence_json TEXT NOT NULL,
            reasons_json TEXT NOT NULL);
        CREATE INDEX manager_audit_time ON manager_audit (at_ts);
        CREATE TABLE manager_enrollments (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, host TEXT NOT NULL, vnf TEXT NOT NULL,
            serial TEXT NOT NULL UNIQUE, certificate_sha256 TEXT NOT NULL, public_key_sha256 TEXT NOT NULL,
            key_mode TEXT NOT NULL, mrenclave TEXT NOT NULL, policy_version TEXT,
            audit_id BIGINT NOT NULL REFERENCES manager_audit (id), issued_at TIMESTAMPTZ NOT NULL,
            not_after TIMESTAMPTZ NOT NULL, status TEXT NOT NULL DEFAULT 'active', revoked_at TIMESTAMPTZ,
            revoke_reason TEXT);
        CREATE INDEX manager_enrollments_vnf ON manager_enrollments (host, vnf, status)
        """,
    ("manager-lifecycle", 1): """
        ALTER TABLE manager_enrollments ADD COLUMN superseded_at TIMESTAMPTZ;
        ALTER TABLE manager_enrollments ADD COLUMN superseded_by TEXT;
        ALTER TABLE manager_enrollments ADD COLUMN enclave_claims_json TEXT
        """,
    ("manager-agent-tls", 1): "ALTER TABLE manager_hosts ADD COLUMN agent_tls_pem TEXT",
    ("manager-platforms", 1): """
        ALTER TABLE manager_hosts ADD COLUMN platform_key TEXT;
        ALTER TABLE manager_hosts ADD COLUMN repin_requested_by TEXT;
        ALTER TABLE manager_hosts ADD COLUMN repin_requested_at TIMESTAMPTZ;
        UPDATE manager_hosts SET platform_key = 'dcap-pck:' || platform_pck_sha256 WHERE platform_pck_sha256 IS NOT NULL;
        UPDATE manager_hosts SET platform_key = 'epid:' || (platform_json::jsonb ->> 'epid_group_id') || ':'
            || COALESCE(platform_json::jsonb ->> 'epid_pseudonym', '')
            WHERE platform_key IS NULL AND (platform_json::jsonb ->> 'epid_group_id') IS NOT NULL;
        CREATE INDEX manager_hosts_platform ON manager_hosts (platform_key);
        ALTER TABLE manager_enrollments ADD COLUMN platform_key TEXT;
        CREATE INDEX manager_enrollments_platform ON manager_enrollments (platform_key, status)
        """,
    ("manager-vnf-registry", 1): """
        ALTER TABLE manager_vnfs ADD COLUMN enroll_rule TEXT;
        ALTER TABLE manager_vnfs ADD COLUMN registered_by TEXT;
        ALTER TABLE manager_vnfs ADD COLUMN registered_at TIMESTAMPTZ;
        ALTER TABLE manager_vnfs ADD COLUMN expected_mrenclave TEXT;
        ALTER TABLE manager_vnfs ADD COLUMN bound_public_key_sha256 TEXT;
        ALTER TABLE manager_vnfs ADD COLUMN bound_mrenclave TEXT;
        ALTER TABLE manager_vnfs ADD COLUMN bound_at TIMESTAMPTZ;
        DELETE FROM manager_vnfs WHERE NOT EXISTS
            (SELECT 1 FROM manager_enrollments e WHERE e.host = manager_vnfs.host AND e.vnf = manager_vnfs.name);
        UPDATE manager_vnfs SET registered_by = 'migrated (enrolled before registration existed)',
            registered_at = last_attested_at;
        UPDATE manager_vnfs SET bound_public_key_sha256 = public_key_sha256, bound_mrenclave = mrenclave,
            bound_at = last_attested_at WHERE status = 'enrolled';
        CREATE INDEX manager_vnfs_bound_key ON manager_vnfs (bound_public_key_sha256)
        """,
    ("manager-tpm", 1): """
        CREATE TABLE manager_host_tpm (
            host TEXT PRIMARY KEY, ak_public BYTEA NOT NULL, ak_name TEXT NOT NULL, ak_spki_sha256 TEXT NOT NULL,
            ek_spki_sha256 TEXT NOT NULL, ek_trust TEXT NOT NULL, registered_at TIMESTAMPTZ NOT NULL,
            last_clock_json TEXT, boot_pcrs_json TEXT)
        """,
    ("pki", 1): """
        CREATE TABLE pki_certificates (
            serial TEXT PRIMARY KEY, subject TEXT NOT NULL, not_before TIMESTAMPTZ NOT NULL,
            not_after TIMESTAMPTZ NOT NULL, issued_at TIMESTAMPTZ NOT NULL, sha256 TEXT NOT NULL, pem TEXT NOT NULL,
            revoked_at TIMESTAMPTZ, revocation_reason TEXT);
        CREATE INDEX pki_certificates_revoked ON pki_certificates (revoked_at)
        """,
    ("pki-admin", 1): """
        CREATE TABLE pki_admin_certificates (
            serial TEXT PRIMARY KEY, subject TEXT NOT NULL, not_before TIMESTAMPTZ NOT NULL,
            not_after TIMESTAMPTZ NOT NULL, issued_at TIMESTAMPTZ NOT NULL, sha256 TEXT NOT NULL, pem TEXT NOT NULL,
            revoked_at TIMESTAMPTZ, revocation_reason TEXT);
        CREATE INDEX pki_admin_certificates_revoked ON pki_admin_certificates (revoked_at)
        """,
    ("reattest-leases", 1): LEASES_DDL,
}


# -- the dialect: psycopg's placeholders, PostgreSQL's column types ----------------------------------------
class PostgresDialect(Dialect):
    """PostgreSQL (psycopg: ``%s`` parameters) keeps every time as TIMESTAMPTZ; a manager time is
    kept to the second (as clock.format_time on SQLite), so a record reads back the same from each."""

    __slots__ = ()
    name = "postgresql"
    PARAMETER = "%s"
    TEXT_PARAMETER = "%s::text"

    @staticmethod
    def to_seconds(at: datetime) -> datetime:
        return at.astimezone(UTC).replace(microsecond=0)

    @staticmethod
    def to_exact(at: datetime) -> datetime:
        return at.astimezone(UTC)

    @staticmethod
    def to_instant(at: datetime) -> datetime:
        return at.astimezone(UTC)

    @staticmethod
    def time(value: Any) -> datetime:
        return value.astimezone(UTC)  # type: ignore[no-any-return]

    @staticmethod
    def time_or_none(value: Any) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    instant = time
    instant_or_none = time_or_none


POSTGRES = PostgresDialect()


# -- the stores (storage/sqlstores.py) on PostgreSQL sessions ------------------------------------------------
class _Session:
    """Where a store's statements run (storage.sqlstores.Session): inside one open transaction
    (``conn``), or, for the autocommit stores of :class:`PostgresStorage`, each write in a
    transaction of its own and each one-statement read on a pooled connection in autocommit (no
    BEGIN/COMMIT round trips)."""

    __slots__ = ("conn", "storage")

    dialect: Dialect = POSTGRES

    def __init__(self, storage: PostgresStorage, conn: Connection | None):
        self.storage = storage
        self.conn = conn

    @property
    def in_transaction(self) -> bool:
        return self.conn is not None

    @contextmanager
    def _use(self) -> Iterator[Connection]:
        """A connection inside a transaction: the open one, or a new one committed at the end."""
        if self.conn is not None:
            yield self.conn
        else:
            with self.storage._transaction() as conn:
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A connection for one read statement (which alone is atomic)."""
        if self.conn is not None:
            yield self.conn
        else:
            with self.storage._connection() as conn:
                yield conn

    def one(self, query: str, params: Params = ()) -> DictRow | None:
        with self._read() as c:
            return c.execute(query, params).fetchone()

    def all(self, query: str, params: Params = ()) -> builtins.list[DictRow]:
        with self._read() as c:
            return c.execute(query, params).fetchall()

    def write_one(self, query: str, params: Params = ()) -> DictRow | None:
        with self._use() as c:
            return c.execute(query, params).fetchone()

    def run(self, query: str, params: Params = ()) -> int:
        with self._use() as c:
            return c.execute(query, params).rowcount

    @contextmanager
    def transaction(self) -> Iterator[_Session]:
        if self.conn is not None:
            yield self
        else:
            with self.storage._transaction() as conn:
                yield _Session(self.storage, conn)

    def lock(self, what: str, *key: str) -> None:
        """A transaction-scoped advisory lock on ``what``/``key`` (see the module docstring: a read
        that guards a write to another row), released when the transaction ends; nothing outside one.
        Its text (``what:key``; a key of several parts as a JSON list) is kept as it always was:
        replicas of two versions during an upgrade must take the same lock for the same guard."""
        if self.conn is not None:
            text = key[0] if len(key) == 1 else json.dumps(list(key))
            self.conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, %s))", (f"{what}:{text}", _LOCK_SEED))

    def is_duplicate_key(self, error: Exception) -> bool:
        return isinstance(error, psycopg.errors.UniqueViolation)


class PostgresTransaction(SqlTransaction):
    """The stores of one open PostgreSQL transaction (or, with ``conn`` None, the autocommit stores)."""

    __slots__ = ()

    def __init__(self, storage: PostgresStorage, conn: Connection | None):
        super().__init__(_Session(storage, conn))


HEALTH_TIMEOUT_SECONDS = 2.0


def _unavailable(url: PostgresUrl, error: BaseException) -> StorageUnavailable:
    # libpq's messages name host, port and user, never the password.
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return StorageUnavailable(
        f"database unavailable ({url.display}): {detail}",
        hint="check storage.url, that PostgreSQL runs and accepts this user (storage.password_env/_file)",
    )


class PostgresStorage(PostgresTransaction):
    """:class:`~floodlight_trust.storage.stores.Storage` on one PostgreSQL database (migrated when opened).

    Thread-safe: each transaction takes a connection of the pool for its duration. A database that
    cannot be reached raises :class:`~floodlight_trust.errors.StorageUnavailable` (the VM answers
    503 and reports itself unhealthy); the pool replaces broken connections by itself.
    """

    __slots__ = ("_idle_in_transaction_ms", "_kwargs", "_pool", "_pool_lock", "_pool_options", "url")

    def __init__(
        self,
        url: PostgresUrl,
        *,
        pool_size: int = 10,
        connect_timeout_seconds: int = 10,
        migrate: bool = True,
        idle_in_transaction_seconds: float = IDLE_IN_TRANSACTION_SECONDS,
    ) -> None:
        self.url = url
        self._idle_in_transaction_ms = int(idle_in_transaction_seconds * 1000)
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "row_factory": dict_row,
            "connect_timeout": connect_timeout_seconds,
        }
        if url.password is not None:
            kwargs["password"] = url.password.reveal()  # to libpq in memory: never argv, never a log line
        self._kwargs = kwargs
        self._pool_options = {"max_size": pool_size, "timeout": float(connect_timeout_seconds)}
        self._pool_lock = threading.Lock()
        # One direct connection first: a wrong URL or password fails here with libpq's own message
        # (a pool would only time out).
        try:
            psycopg.connect(url.conninfo, **kwargs).close()
        except psycopg.Error as e:
            raise _unavailable(url, e) from None
        self._pool: ConnectionPool[Connection] | None = None
        super().__init__(self, None)
        if migrate:
            self.migrate()

    def _open_pool(self) -> ConnectionPool[Connection]:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ConnectionPool(
                    self.url.conninfo,
                    kwargs=self._kwargs,
                    min_size=1,
                    max_size=int(self._pool_options["max_size"]),
                    timeout=self._pool_options["timeout"],
                    open=True,
                    # A connection is checked when handed out: after a database restart the pool
                    # replaces the broken ones instead of failing the next requests with them.
                    check=_check_idle,
                    configure=self._configure,
                    reconnect_timeout=RECONNECT_SECONDS,
                    name="ftrust-state",
                )
            return self._pool

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        pool = self._pool or self._open_pool()
        try:
            with pool.connection() as conn:
                yield conn
        except RETRYABLE:
            raise  # write() runs the callback again; transaction() reports it
        except PoolTimeout as e:
            raise _unavailable(self.url, e) from None
        except psycopg.OperationalError as e:  # connection refused or lost, server shutting down
            raise _unavailable(self.url, e) from None

    @contextmanager
    def _transaction(self, *, durable: bool = True) -> Iterator[Connection]:
        with self._connection() as conn, conn.transaction():
            if not durable:  # commit without waiting for the WAL flush (state that may be lost)
                conn.execute("SET LOCAL synchronous_commit TO off")
            yield conn

    def connection_transaction(self, *, durable: bool = True) -> AbstractContextManager[Connection]:
        """One transaction on a pooled connection (dict rows), for the storage package's own tables
        beyond the stores (the re-attestation leases); driver errors as in :meth:`transaction`."""
        return self._transaction(durable=durable)

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[PostgresTransaction]:
        try:
            with self._transaction(durable=durable) as conn:
                yield PostgresTransaction(self, conn)
        except RETRYABLE as e:  # rolled back; a block cannot be re-run here: the caller may retry
            raise StorageUnavailable(
                f"database busy: the transaction was rolled back ({e.sqlstate}), nothing of it is recorded",
                hint="retry the request",
            ) from None

    def write(self, fn: Callable[[PostgresTransaction], T], *, durable: bool = True) -> T:
        for attempt in range(WRITE_RETRIES):
            try:
                with self._transaction(durable=durable) as conn:
                    return fn(PostgresTransaction(self, conn))
            except RETRYABLE:
                if attempt == WRITE_RETRIES - 1:
                    raise
                time.sleep(random.uniform(0, 0.005 * 2**attempt))  # jitter, not a secret
        raise AssertionError("unreachable")

    # -- migrations --------------------------------------------------------------------------------
    def applied_steps(self) -> set[tuple[str, int]]:
        with self._connection() as conn:
            if conn.execute("SELECT to_regclass('schema_migrations') AS t").fetchone() == {"t": None}:
                return set()
            return {(r["component"], int(r["version"])) for r in conn.execute("SELECT * FROM schema_migrations")}

    def migrate(self) -> None:
        self.migrate_steps()

    def migrate_steps(self) -> builtins.list[Step]:
        """Apply the steps not yet applied, in order, in one transaction under the migration lock;
        the steps this call applied (none when another replica got there first)."""
        applied: builtins.list[Step] = []
        with self._transaction() as c:
            c.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            c.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (component TEXT NOT NULL, version INTEGER NOT NULL,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (component, version))"
            )
            done = {(r["component"], int(r["version"])) for r in c.execute("SELECT * FROM schema_migrations")}
            for step in STEPS:
                if step.key in done:
                    continue
                for statement in DDL[step.key].split(";"):
                    if statement.strip():
                        c.execute(statement.encode())  # our own DDL (bytes: no %-placeholder parsing)
                c.execute("INSERT INTO schema_migrations (component, version) VALUES (%s, %s)", step.key)
                applied.append(step)
            unknown = done - {s.key for s in STEPS}
        if unknown:
            log.warning("the database has migrations this version does not know: %s", sorted(unknown))
        for step in applied:
            log.info("applied migration %s %d: %s", step.component, step.version, step.purpose)
        return applied

    def _configure(self, conn: Connection) -> None:
        # Times come back in UTC whatever the server's default zone (records are compared across
        # replicas); a session idle inside a transaction ends (IDLE_IN_TRANSACTION_SECONDS).
        conn.execute(
            "SELECT set_config('TimeZone', 'UTC', false),"
            " set_config('idle_in_transaction_session_timeout', %s, false)",
            (str(self._idle_in_transaction_ms),),
        )

    def check(self) -> None:
        """StorageUnavailable unless the database answers within HEALTH_TIMEOUT_SECONDS (a replica's
        health: answered quickly, not after the pool's full connect timeout)."""
        pool = self._pool or self._open_pool()
        try:
            with pool.connection(timeout=HEALTH_TIMEOUT_SECONDS) as conn:
                conn.execute("SELECT 1").fetchone()
        except (PoolTimeout, psycopg.OperationalError) as e:
            raise _unavailable(self.url, e) from None

    def close(self) -> None:
        """Close the pool's connections; the next use opens a new pool (as the Protocol asks)."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()


def _check_idle(conn: Connection) -> None:
    """The pool's check of a connection it hands out, without a round trip while the connection is
    quiet. A server that shuts down or restarts sends each session its termination notice and closes
    the socket, so an idle connection's socket turns readable; only then is the connection checked
    with a round trip (psycopg-pool's own check: an empty query), which fails on a broken one and
    makes the pool replace it. A quiet socket answers as the round trip would, one round trip per
    transaction cheaper (it was half of a re-attestation round's transactions). A session cut in
    the instant before it is handed out (its notice not yet arrived) fails that one request with
    StorageUnavailable, as it would if cut just after a round-trip check, and is then replaced."""
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("the connection is closed")
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    if readable:
        ConnectionPool.check_connection(conn)
