"""The PostgreSQL engine: several VM replicas (``ftrust vm serve`` on one or more machines) on one database.

:class:`PostgresStorage` implements the storage Protocols (storage/stores.py) with psycopg 3 and a
bounded connection pool per process (psycopg-pool) that checks a connection before handing it out,
so a replica reconnects by itself after the database restarts. Every PostgreSQL statement of the
project is in this module.

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
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
import psycopg.errors
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from psycopg import sql
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from floodlight_trust.errors import ConflictError, InputError, NotFoundError, StorageUnavailable
from floodlight_trust.evidence.tpm.structures import ClockInfo
from floodlight_trust.storage import rows
from floodlight_trust.storage.dialect import Dialect
from floodlight_trust.storage.leases import POSTGRES_DDL as LEASES_DDL
from floodlight_trust.storage.migrations import STEPS, Step
from floodlight_trust.storage.records import (
    AuditRecord,
    CertificateAuthorityKind,
    CertificateRecord,
    EnrollmentRecord,
    HostAttestationRecord,
    HostRecord,
    HostStatus,
    NewEnrollment,
    NonceRecord,
    TpmPin,
    VnfRecord,
    VnfRegistration,
    VnfStatus,
    normalize_reason,
)
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
_seconds, _exact = POSTGRES.to_seconds, POSTGRES.to_exact


# -- the stores ------------------------------------------------------------------------------------------
class _Session:
    """Where a store's statements run: inside one open transaction (``conn``), or, for the
    autocommit stores of :class:`PostgresStorage`, each write in a transaction of its own and each
    one-statement read on a pooled connection in autocommit (no BEGIN/COMMIT round trips)."""

    __slots__ = ("conn", "storage")

    def __init__(self, storage: PostgresStorage, conn: Connection | None):
        self.storage = storage
        self.conn = conn

    @property
    def in_transaction(self) -> bool:
        return self.conn is not None

    @contextmanager
    def use(self) -> Iterator[Connection]:
        """A connection inside a transaction: the open one, or a new one committed at the end."""
        if self.conn is not None:
            yield self.conn
        else:
            with self.storage._transaction() as conn:
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for one read statement (which alone is atomic)."""
        if self.conn is not None:
            yield self.conn
        else:
            with self.storage._connection() as conn:
                yield conn

    def one(self, query: str | sql.Composed, params: Sequence[object] = ()) -> DictRow | None:
        with self.read() as c:
            return c.execute(query, params).fetchone()

    def all(self, query: str | sql.Composed, params: Sequence[object] = ()) -> builtins.list[DictRow]:
        with self.read() as c:
            return c.execute(query, params).fetchall()

    def write_one(self, query: str | sql.Composed, params: Sequence[object] = ()) -> DictRow | None:
        with self.use() as c:
            return c.execute(query, params).fetchone()

    def run(self, query: str | sql.Composed, params: Sequence[object] = ()) -> int:
        with self.use() as c:
            return c.execute(query, params).rowcount


def _guard(c: Connection, what: str, key: str) -> None:
    """Hold a transaction-scoped lock on ``what``/``key`` (see the module docstring: a read that
    guards a write to another row), released when the transaction ends."""
    c.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, %s))", (f"{what}:{key}", _LOCK_SEED))


class _Hosts:
    __slots__ = ("_s",)

    def __init__(self, session: _Session):
        self._s = session

    def add(
        self,
        name: str,
        agent_url: str | None,
        host_policy: str | None,
        *,
        at: datetime,
        agent_tls_pem: str | None = None,
        replace: bool = False,
    ) -> HostRecord:
        insert = (
            "INSERT INTO manager_hosts (name, agent_url, host_policy, created_at, agent_tls_pem)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (name) "
        )
        params = (name, agent_url, host_policy, _seconds(at), agent_tls_pem)
        with self._s.use() as c:
            if replace:
                row = c.execute(
                    insert + "DO UPDATE SET agent_url = excluded.agent_url,"
                    " host_policy = COALESCE(excluded.host_policy, manager_hosts.host_policy),"
                    " agent_tls_pem = COALESCE(excluded.agent_tls_pem, manager_hosts.agent_tls_pem) RETURNING *",
                    params,
                ).fetchone()
            else:  # one statement decides between two admins adding one name at once
                row = c.execute(insert + "DO NOTHING RETURNING *", params).fetchone()
            if row is None:
                raise ConflictError(
                    f"host {name!r} is already registered",
                    hint="`ftrust vm hosts add NAME --replace ...` changes its agent URL; "
                    "`ftrust vm hosts remove NAME` removes it",
                )
            return rows.host_record(row, POSTGRES)

    def remove(self, name: str) -> None:
        with self._s.use() as c:
            c.execute("DELETE FROM manager_vnfs WHERE host = %s", (name,))
            c.execute("DELETE FROM manager_hosts WHERE name = %s", (name,))

    def find(self, name: str) -> HostRecord | None:
        row = self._s.one("SELECT * FROM manager_hosts WHERE name = %s", (name,))
        return rows.host_record(row, POSTGRES) if row else None

    def find_with_vnf(self, name: str, vnf: str) -> tuple[HostRecord | None, VnfRegistration | None]:
        host = self.find(name)
        if host is None:
            return None, None
        row = self._s.one("SELECT * FROM manager_vnfs WHERE host = %s AND name = %s", (name, vnf))
        return host, rows.vnf_registration(row, POSTGRES) if row else None

    def get(self, name: str) -> HostRecord:
        found = self.find(name)
        if found is None:
            raise NotFoundError(
                f"unknown host {name!r}: not registered", hint="register it with `ftrust vm hosts add NAME --agent URL`"
            )
        return found

    def all(self) -> builtins.list[HostRecord]:
        return [rows.host_record(r, POSTGRES) for r in self._s.all("SELECT * FROM manager_hosts ORDER BY name")]

    def platform_owner(self, platform_key: str, *, other_than: str) -> str | None:
        with self._s.read() as c:
            if self._s.in_transaction:  # the pin this read guards is another host's row
                _guard(c, "platform", platform_key)
            row = c.execute(
                "SELECT name FROM manager_hosts WHERE platform_key = %s AND name <> %s ORDER BY name LIMIT 1",
                (platform_key, other_than),
            ).fetchone()
        return str(row["name"]) if row else None

    def platform_of(self, name: str) -> str | None:
        row = self._s.one("SELECT platform_key FROM manager_hosts WHERE name = %s", (name,))
        return str(row["platform_key"]) if row and row["platform_key"] else None

    def request_repin(self, name: str, *, by: str, at: datetime) -> None:
        self._s.run(
            "UPDATE manager_hosts SET repin_requested_by = %s, repin_requested_at = %s WHERE name = %s",
            (by, _seconds(at), name),
        )

    def record_attestation(self, name: str, verdict: HostAttestationRecord) -> None:
        v = verdict
        t = _seconds(v.at)
        platform_json = json.dumps(v.platform) if v.platform else None
        repin = bool(v.repin and v.platform_key)
        query = (
            "UPDATE manager_hosts SET status = %s, last_attested_at = %s, last_contact_at = %s,"
            " last_trusted_at = CASE WHEN %s THEN %s ELSE last_trusted_at END,"
            " reasons_json = %s, policy_version = %s,"
            " ima_state_json = CASE WHEN %s THEN %s ELSE ima_state_json END,"
            " ima_entries = CASE WHEN %s THEN %s ELSE ima_entries END,"
            " ima_list_sha256 = COALESCE(%s, ima_list_sha256), simulated = %s,"
        )
        if repin:
            query += (
                " platform_key = %s, platform_pck_sha256 = %s, platform_json = %s,"
                " repin_requested_by = NULL, repin_requested_at = NULL WHERE name = %s"
            )
        else:
            query += (
                " platform_key = COALESCE(platform_key, %s),"
                " platform_pck_sha256 = COALESCE(%s, platform_pck_sha256),"
                " platform_json = COALESCE(%s, platform_json) WHERE name = %s"
            )
        params = (
            str(HostStatus.TRUSTED if v.trusted else HostStatus.UNTRUSTED),
            t,
            t,
            v.trusted,
            t,
            json.dumps(list(v.reasons)),
            v.policy_version,
            v.trusted,
            v.ima_state_json,
            v.trusted,
            v.ima_entries,
            v.ima_list_sha256,
            v.simulated,
            v.platform_key,
            v.platform_pck_sha256,
            platform_json,
            name,
        )
        with self._s.use() as c:
            if v.platform_key:
                _guard(c, "platform", v.platform_key)
            c.execute(query, params)

    def mark_untrusted(self, name: str, reasons: Sequence[dict[str, Any]]) -> None:
        self._s.run(
            "UPDATE manager_hosts SET status = 'untrusted', reasons_json = %s WHERE name = %s",
            (json.dumps(list(reasons), sort_keys=True), name),
        )


class _Enrollments:
    __slots__ = ("_s",)

    def __init__(self, session: _Session):
        self._s = session

    def register_vnf(
        self,
        host: str,
        vnf: str,
        *,
        enroll_rule: str,
        by: str,
        at: datetime,
        expected_mrenclave: str | None = None,
        if_absent: bool = False,
    ) -> bool:
        inserted = self._s.run(
            "INSERT INTO manager_vnfs (host, name, status, enroll_rule, registered_by, registered_at,"
            " expected_mrenclave) VALUES (%s, %s, 'registered', %s, %s, %s, %s) ON CONFLICT (host, name) DO NOTHING",
            (host, vnf, enroll_rule, by, _seconds(at), expected_mrenclave),
        )
        if inserted == 1:
            return True
        if not if_absent:
            raise ConflictError(
                f"VNF {vnf!r} is already registered on host {host!r}",
                hint="`ftrust vm vnfs release HOST VNF` frees its enclave binding; `vnfs remove` unregisters it",
            )
        return False

    def registration(self, host: str, vnf: str) -> VnfRegistration | None:
        row = self._s.one("SELECT * FROM manager_vnfs WHERE host = %s AND name = %s", (host, vnf))
        return rows.vnf_registration(row, POSTGRES) if row else None

    def bound_name(self, public_key_sha256: str) -> tuple[str, str] | None:
        with self._s.read() as c:
            if self._s.in_transaction:  # a key binds one name: the bind this read guards is another row's
                _guard(c, "enclave-key", public_key_sha256)
            row = c.execute(
                "SELECT host, name FROM manager_vnfs WHERE bound_public_key_sha256 = %s ORDER BY host, name LIMIT 1",
                (public_key_sha256,),
            ).fetchone()
        return (str(row["host"]), str(row["name"])) if row else None

    def bind(self, host: str, vnf: str, *, public_key_sha256: str, mrenclave: str, at: datetime) -> bool:
        # One statement: bind while unbound and while no other name holds the key, and read back what
        # the name is bound to. A concurrent bind of the same row waits for its row lock and then
        # keeps the first binding (COALESCE on the committed row); a concurrent bind of the same key
        # to another name waits for the key's lock and then sees that binding (NOT EXISTS).
        with self._s.use() as c:
            _guard(c, "enclave-key", public_key_sha256)
            row = c.execute(
                "UPDATE manager_vnfs SET"
                " bound_at = CASE WHEN bound_public_key_sha256 IS NULL THEN %s ELSE bound_at END,"
                " bound_mrenclave = CASE WHEN bound_public_key_sha256 IS NULL THEN %s ELSE bound_mrenclave END,"
                " bound_public_key_sha256 = COALESCE(bound_public_key_sha256, %s)"
                " WHERE host = %s AND name = %s AND NOT EXISTS (SELECT 1 FROM manager_vnfs o"
                " WHERE o.bound_public_key_sha256 = %s AND (o.host <> %s OR o.name <> %s))"
                " RETURNING bound_public_key_sha256, bound_mrenclave",
                (_seconds(at), mrenclave, public_key_sha256, host, vnf, public_key_sha256, host, vnf),
            ).fetchone()
        return (
            row is not None
            and row["bound_public_key_sha256"] == public_key_sha256
            and row["bound_mrenclave"] == mrenclave
        )

    def bind_enrolled(
        self,
        host: str,
        vnf: str,
        *,
        public_key_sha256: str,
        mrenclave: str,
        at: datetime,
        register: tuple[str, str] | None = None,
    ) -> bool:
        # The three steps as they are (their locks and guards unchanged): on PostgreSQL the
        # statements' round trips are the database's, not this process's CPU.
        if register is not None:
            self.register_vnf(host, vnf, enroll_rule=register[0], by=register[1], at=at, if_absent=True)
        if not self.bind(host, vnf, public_key_sha256=public_key_sha256, mrenclave=mrenclave, at=at):
            return False
        self.record_vnf(
            host, vnf, status=VnfStatus.ENROLLED, at=at, mrenclave=mrenclave, public_key_sha256=public_key_sha256,
            reasons=[],
        )  # fmt: skip
        return True

    def release(self, host: str, vnf: str) -> None:
        self._s.run(
            "UPDATE manager_vnfs SET bound_public_key_sha256 = NULL, bound_mrenclave = NULL, bound_at = NULL"
            " WHERE host = %s AND name = %s",
            (host, vnf),
        )

    def remove_vnf(self, host: str, vnf: str) -> None:
        self._s.run("DELETE FROM manager_vnfs WHERE host = %s AND name = %s", (host, vnf))

    def record_vnf(
        self,
        host: str,
        vnf: str,
        *,
        status: VnfStatus,
        at: datetime,
        mrenclave: str | None,
        public_key_sha256: str | None,
        reasons: Sequence[dict[str, Any]],
    ) -> None:
        self._s.run(
            "UPDATE manager_vnfs SET mrenclave = COALESCE(%s, mrenclave), status = %s, last_attested_at = %s,"
            " public_key_sha256 = COALESCE(%s, public_key_sha256), reasons_json = %s WHERE host = %s AND name = %s",
            (mrenclave, str(status), _seconds(at), public_key_sha256, json.dumps(list(reasons)), host, vnf),
        )

    def vnf_known(self, vnf: str, *, host: str | None = None) -> bool:
        row = self._s.one(
            "SELECT 1 AS known FROM manager_vnfs WHERE name = %s AND (%s::text IS NULL OR host = %s)"
            " UNION ALL SELECT 1 FROM manager_enrollments WHERE vnf = %s AND (%s::text IS NULL OR host = %s) LIMIT 1",
            (vnf, host, host, vnf, host, host),
        )
        return row is not None

    def vnfs(self, host: str | None = None) -> builtins.list[VnfRecord]:
        query = (
            "SELECT v.*, (SELECT COUNT(*) FROM manager_enrollments e WHERE e.host = v.host AND e.vnf = v.name"
            " AND e.status = 'active') AS active FROM manager_vnfs v"
        )
        found = self._s.all(
            query + (" WHERE host = %s" if host else "") + " ORDER BY host, name", (host,) if host else ()
        )
        return [rows.vnf_record(r, POSTGRES) for r in found]

    def record_enrollment(self, enrollment: NewEnrollment) -> int:
        e = enrollment
        with self._s.use() as c:
            # One active certificate per VNF: the second of two concurrent enrollments waits here, and
            # its UPDATE (a new snapshot at READ COMMITTED) then supersedes the first one's certificate.
            _guard(c, "enrollment", json.dumps([e.host, e.vnf]))
            c.execute(
                "UPDATE manager_enrollments SET status = 'superseded', superseded_at = %s, superseded_by = %s"
                " WHERE host = %s AND vnf = %s AND status = 'active'",
                (_seconds(e.issued_at), e.serial, e.host, e.vnf),
            )
            try:
                row = c.execute(
                    "INSERT INTO manager_enrollments (host, vnf, serial, certificate_sha256, public_key_sha256,"
                    " key_mode, mrenclave, policy_version, audit_id, issued_at, not_after, enclave_claims_json,"
                    " platform_key) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                    (
                        e.host,
                        e.vnf,
                        e.serial,
                        e.certificate_sha256,
                        e.public_key_sha256,
                        e.key_mode,
                        e.mrenclave,
                        e.policy_version,
                        e.audit_id,
                        _seconds(e.issued_at),
                        _seconds(e.not_after),
                        json.dumps(e.enclave_claims, sort_keys=True) if e.enclave_claims is not None else None,
                        e.platform_key,
                    ),
                ).fetchone()
            except psycopg.errors.UniqueViolation:
                raise InputError(f"an enrollment with certificate serial {e.serial} is already recorded") from None
            assert row is not None
            return int(row["id"])

    def enrollments(
        self, *, host: str | None = None, vnf: str | None = None, active_only: bool = False
    ) -> builtins.list[EnrollmentRecord]:
        found = self._s.all(
            "SELECT * FROM manager_enrollments WHERE (%s::text IS NULL OR host = %s) AND (%s::text IS NULL OR vnf = %s)"
            " AND (NOT %s OR status = 'active') ORDER BY id",
            (host, host, vnf, vnf, active_only),
        )
        return [rows.enrollment_record(r, POSTGRES) for r in found]

    def live(
        self, *, host: str | None, vnf: str | None, at: datetime, platform_key: str | None = None
    ) -> builtins.list[EnrollmentRecord]:
        found = self._s.all(
            "SELECT * FROM manager_enrollments WHERE"
            " (((%s::text IS NULL OR host = %s) AND (%s::text IS NULL OR vnf = %s))"
            " OR (%s::text IS NOT NULL AND platform_key = %s))"
            " AND (status = 'active' OR (status = 'superseded' AND not_after > %s)) ORDER BY id",
            (host, host, vnf, vnf, platform_key, platform_key, _seconds(at)),
        )
        return [rows.enrollment_record(r, POSTGRES) for r in found]

    def by_serial(self, serial: str) -> EnrollmentRecord | None:
        row = self._s.one("SELECT * FROM manager_enrollments WHERE serial = %s", (serial,))
        return rows.enrollment_record(row, POSTGRES) if row else None

    def enclave_claims(self, serial: str) -> dict[str, Any] | None:
        row = self._s.one("SELECT enclave_claims_json FROM manager_enrollments WHERE serial = %s", (serial,))
        if not row or row["enclave_claims_json"] is None:
            return None
        value: dict[str, Any] = json.loads(row["enclave_claims_json"])
        return value

    def mark_revoked(self, serial: str, *, at: datetime, reason: str) -> None:
        self._s.run(
            "UPDATE manager_enrollments SET status = 'revoked', revoked_at = %s, revoke_reason = %s WHERE serial = %s",
            (_seconds(at), reason, serial),
        )


_CERTIFICATE_TABLES = {
    CertificateAuthorityKind.VNF: sql.Identifier("pki_certificates"),
    CertificateAuthorityKind.ADMIN: sql.Identifier("pki_admin_certificates"),
}


class _Certificates:
    __slots__ = ("_kind", "_s", "_table")

    def __init__(self, session: _Session, kind: CertificateAuthorityKind):
        self._s = session
        self._kind = CertificateAuthorityKind(kind)
        self._table = _CERTIFICATE_TABLES[self._kind]  # from the closed set, never from input

    def _sql(self, statement: str) -> sql.Composed:
        return sql.SQL(statement).format(table=self._table)

    @property
    def kind(self) -> CertificateAuthorityKind:
        return self._kind

    def record_issued(self, certificate: x509.Certificate, *, at: datetime) -> CertificateRecord:
        record = CertificateRecord(
            serial=certificate.serial_number,
            subject=certificate.subject.rfc4514_string(),
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            issued_at=at.astimezone(UTC),
            sha256=certificate.fingerprint(hashes.SHA256()).hex(),
            pem=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        )
        inserted = self._s.run(
            self._sql(
                "INSERT INTO {table} (serial, subject, not_before, not_after, issued_at, sha256, pem)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (serial) DO NOTHING"
            ),
            (
                format(record.serial, "x"),
                record.subject,
                record.not_before,
                record.not_after,
                record.issued_at,
                record.sha256,
                record.pem,
            ),
        )
        if inserted != 1:  # serials are unique by construction: the primary key, across replicas
            raise InputError(f"certificate serial {format(record.serial, 'x')} is already recorded")
        return record

    def revoke(self, serial: int, reason: str, at: datetime) -> CertificateRecord:
        canonical = normalize_reason(reason)
        hexserial = format(serial, "x")
        with self._s.use() as c:
            # One statement when it revokes; the first revocation stands (then it is read back).
            row = c.execute(
                self._sql(
                    "UPDATE {table} SET revoked_at = %s, revocation_reason = %s"
                    " WHERE serial = %s AND revoked_at IS NULL RETURNING *"
                ),
                (_exact(at), canonical, hexserial),
            ).fetchone()
            if row is None:
                row = c.execute(self._sql("SELECT * FROM {table} WHERE serial = %s"), (hexserial,)).fetchone()
            if row is None:
                raise InputError(f"no certificate with serial {hexserial}", hint="see `ftrust ca list`")
            return rows.certificate_record(row, POSTGRES)

    def get(self, serial: int) -> CertificateRecord | None:
        row = self._s.one(self._sql("SELECT * FROM {table} WHERE serial = %s"), (format(serial, "x"),))
        return rows.certificate_record(row, POSTGRES) if row else None

    def list(self, *, revoked: bool | None = None, subject: str | None = None) -> builtins.list[CertificateRecord]:
        query = "SELECT * FROM {table}"
        where: builtins.list[str] = []
        params: builtins.list[object] = []
        if revoked is True:
            where.append("revoked_at IS NOT NULL")
        elif revoked is False:
            where.append("revoked_at IS NULL")
        if subject is not None:
            where.append("subject = %s")
            params.append(subject)
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY issued_at, serial"
        return [rows.certificate_record(r, POSTGRES) for r in self._s.all(self._sql(query), params)]

    def revoked(self, *, unexpired_at: datetime | None = None) -> builtins.list[CertificateRecord]:
        records = self.list(revoked=True)
        if unexpired_at is not None:
            records = [r for r in records if r.not_after >= unexpired_at]
        return records

    def revocation_marker(self) -> tuple[int, datetime | None]:
        row = self._s.one(
            self._sql("SELECT COUNT(*) AS n, MAX(revoked_at) AS latest FROM {table} WHERE revoked_at IS NOT NULL")
        )
        assert row is not None
        return int(row["n"]), POSTGRES.time_or_none(row["latest"])


class _Nonces:
    __slots__ = ("_s",)

    def __init__(self, session: _Session):
        self._s = session

    def add(self, nonce: NonceRecord, *, purge_expired_before: datetime | None = None) -> None:
        n = nonce
        with self._s.use() as c:
            if purge_expired_before is not None:
                c.execute("DELETE FROM manager_nonces WHERE expires_at < %s", (_exact(purge_expired_before),))
            c.execute(
                "INSERT INTO manager_nonces (selector, verifier, purpose, host, vnf, issued_at, expires_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (n.selector, n.verifier, str(n.purpose), n.host, n.vnf, _exact(n.issued_at), _exact(n.expires_at)),
            )

    def find(self, selector: str) -> NonceRecord | None:
        row = self._s.one("SELECT * FROM manager_nonces WHERE selector = %s", (selector,))
        return rows.nonce_record(row, POSTGRES) if row else None

    def spend(self, nonce: NonceRecord, *, purge_expired_before: datetime | None = None) -> bool:
        n = nonce
        assert n.used_at is not None
        with self._s.use() as c:
            if purge_expired_before is not None:
                c.execute("DELETE FROM manager_nonces WHERE expires_at < %s", (_exact(purge_expired_before),))
        # One insert keyed by the selector: of two replicas spending one nonce, the second waits for
        # the first's uncommitted row, then inserts nothing (or inserts, if the first rolled back).
        spent = self._s.run(
            "INSERT INTO manager_nonces (selector, verifier, purpose, host, vnf, issued_at, expires_at, used_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (selector) DO NOTHING",
            (
                n.selector,
                n.verifier,
                str(n.purpose),
                n.host,
                n.vnf,
                _exact(n.issued_at),
                _exact(n.expires_at),
                _exact(n.used_at),
            ),
        )
        return spent == 1

    def burn(self, selector: str, *, at: datetime) -> bool:
        # One conditional update: of two replicas burning one nonce, the second waits for the first's
        # row lock, re-checks used_at on the committed row and updates nothing.
        burnt = self._s.run(
            "UPDATE manager_nonces SET used_at = %s WHERE selector = %s AND used_at IS NULL", (_exact(at), selector)
        )
        return burnt == 1

    def purge(self, *, expired_before: datetime) -> int:
        return self._s.run("DELETE FROM manager_nonces WHERE expires_at < %s", (_exact(expired_before),))


class _Audit:
    __slots__ = ("_s",)

    def __init__(self, session: _Session):
        self._s = session

    def record(
        self,
        *,
        at: datetime,
        actor: str,
        action: str,
        allowed: bool,
        host: str | None = None,
        vnf: str | None = None,
        policy_version: str | None = None,
        simulated: bool = False,
        evidence: dict[str, Any] | None = None,
        reasons: Sequence[dict[str, Any]] | None = None,
    ) -> int:
        row = self._s.write_one(
            "INSERT INTO manager_audit (at, at_ts, actor, action, host, vnf, allowed, policy_version, simulated,"
            " evidence_json, reasons_json) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                _seconds(at),
                _exact(at),
                actor,
                action,
                host,
                vnf,
                allowed,
                policy_version,
                simulated,
                json.dumps(evidence or {}, sort_keys=True),
                json.dumps(list(reasons or [])),
            ),
        )
        assert row is not None
        return int(row["id"])

    def records(self, *, since: datetime | None = None, limit: int = 1000) -> builtins.list[AuditRecord]:
        if since is None:
            found = self._s.all("SELECT * FROM manager_audit ORDER BY id DESC LIMIT %s", (limit,))
        else:
            found = self._s.all(
                "SELECT * FROM manager_audit WHERE at_ts >= %s ORDER BY id DESC LIMIT %s", (_exact(since), limit)
            )
        return [rows.audit_record(r, POSTGRES) for r in reversed(found)]

    def get(self, audit_id: int) -> AuditRecord | None:
        row = self._s.one("SELECT * FROM manager_audit WHERE id = %s", (audit_id,))
        return rows.audit_record(row, POSTGRES) if row else None


class _Tpm:
    __slots__ = ("_s",)

    def __init__(self, session: _Session):
        self._s = session

    def get(self, host: str) -> TpmPin | None:
        row = self._s.one("SELECT * FROM manager_host_tpm WHERE host = %s", (host,))
        return rows.tpm_pin(row, POSTGRES) if row else None

    def pin(
        self,
        host: str,
        *,
        ak_public: bytes,
        ak_name: str,
        ak_spki_sha256: str,
        ek_spki_sha256: str,
        ek_trust: str,
        at: datetime,
    ) -> None:
        self._s.run(
            "INSERT INTO manager_host_tpm (host, ak_public, ak_name, ak_spki_sha256, ek_spki_sha256, ek_trust,"
            " registered_at) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (host) DO UPDATE SET"
            " ak_public = excluded.ak_public, ak_name = excluded.ak_name, ak_spki_sha256 = excluded.ak_spki_sha256,"
            " ek_spki_sha256 = excluded.ek_spki_sha256, ek_trust = excluded.ek_trust,"
            " registered_at = excluded.registered_at, last_clock_json = NULL, boot_pcrs_json = NULL",
            (host, ak_public, ak_name, ak_spki_sha256, ek_spki_sha256, ek_trust, _exact(at)),
        )

    def record_round(self, host: str, *, clock: ClockInfo, firmware: int, boot_pcrs: dict[str, dict[int, str]]) -> None:
        last_clock, boot = rows.tpm_round_json(clock, firmware, boot_pcrs)
        self._s.run(
            "UPDATE manager_host_tpm SET last_clock_json = %s, boot_pcrs_json = COALESCE(boot_pcrs_json, %s)"
            " WHERE host = %s",
            (last_clock, boot, host),
        )


class PostgresTransaction:
    """The stores of one open PostgreSQL transaction (or, with ``conn`` None, the autocommit stores)."""

    __slots__ = ("_session", "audit", "enrollments", "hosts", "nonces", "tpm")

    def __init__(self, storage: PostgresStorage, conn: Connection | None):
        self._session = s = _Session(storage, conn)
        self.hosts = _Hosts(s)
        self.enrollments = _Enrollments(s)
        self.nonces = _Nonces(s)
        self.audit = _Audit(s)
        self.tpm = _Tpm(s)

    def certificates(self, kind: CertificateAuthorityKind = CertificateAuthorityKind.VNF) -> _Certificates:
        return _Certificates(self._session, kind)


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
