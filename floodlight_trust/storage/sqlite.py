"""The SQLite engine: the embedded default for one host and for the demo (one file, 0600).

:class:`Database` is the connection layer (WAL journal, one connection per thread, explicit
``BEGIN IMMEDIATE`` transactions, group commit, migrations); :class:`SqliteStorage` implements the
storage Protocols (storage/stores.py) on it. Every SQL statement of the project is in this module.

Isolation: ``BEGIN IMMEDIATE`` takes SQLite's one write lock at the start, so write transactions
run one at a time, serializable by construction; reads outside a transaction see the last commit.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from floodlight_trust.clock import format_time, parse_time
from floodlight_trust.errors import ConflictError, InputError, Location, NotFoundError, StorageUnavailable
from floodlight_trust.evidence.tpm.structures import ClockInfo
from floodlight_trust.storage import rows
from floodlight_trust.storage.dialect import Dialect
from floodlight_trust.storage.leases import SQLITE_DDL as LEASES_DDL
from floodlight_trust.storage.migrations import STEPS
from floodlight_trust.storage.records import (
    AuditRecord,
    CertificateAuthorityKind,
    CertificateRecord,
    EnrollmentRecord,
    HostAttestationRecord,
    HostRecord,
    NewEnrollment,
    NonceRecord,
    TpmPin,
    VnfRecord,
    VnfRegistration,
    VnfStatus,
    normalize_reason,
)

T = TypeVar("T")

STATE_FILE = "ftrust.sqlite3"  # the deployment's state store in <state.dir> (statestore.open_state)
LEGACY_CA_FILE = "ftrust.db"  # where `ftrust ca` kept its records before there was one store
MIN_SQLITE = (3, 35, 0)  # UPDATE ... RETURNING


@dataclass(frozen=True, slots=True)
class Migration:
    """One SQLite schema step of one component: applied once, in order, recorded in ``schema_migrations``."""

    component: str
    version: int
    sql: str


# SQLite result codes (low byte) that mean the database cannot be used, not that a statement is wrong.
_UNAVAILABLE = {5: "busy", 6: "locked", 8: "read-only", 10: "disk I/O error", 11: "corrupt", 13: "disk full",
                14: "cannot open", 15: "locking protocol", 26: "not a database"}  # fmt: skip


def _unavailable(path: Path, e: sqlite3.Error) -> StorageUnavailable | None:
    code = getattr(e, "sqlite_errorcode", None)
    if code is None or code & 0xFF not in _UNAVAILABLE:
        return None
    return StorageUnavailable(f"state database {path} unavailable: {e}")


class Database:
    """A SQLite database file shared by every component of one deployment (the connection layer)."""

    def __init__(self, path: str | Path, migrations: Sequence[Migration] = ()):
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise InputError(
                f"SQLite {sqlite3.sqlite_version} is too old for the state store (needs 3.35 or later)",
                hint="use a Python built against a newer SQLite",
            )
        self.path = Path(path)
        self._local = threading.local()
        self._lock = threading.Lock()
        # Writers of this process queue here instead of in SQLite's busy handler, which sleeps in
        # steps of up to 100 ms when BEGIN IMMEDIATE finds the database locked by another thread.
        self._write_lock = threading.RLock()
        self._group = _GroupCommit(self)
        self._file: tuple[int, int] | None = None  # (st_dev, st_ino) of the file opened first
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self.transaction() as tx:
            tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " component TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (component, version))"
            )
        self.migrate(migrations)

    def _connect(self, *, durable: bool = True) -> sqlite3.Connection:
        """This thread's connection: the durable one (synchronous=FULL, also for reads), or the one
        for writes that may be lost (synchronous=NORMAL). Two connections instead of switching one
        back and forth: two PRAGMA statements less per non-durable write."""
        attr = "conn" if durable or str(self.path) == ":memory:" else "fast_conn"
        conn: sqlite3.Connection | None = getattr(self._local, attr, None)
        if conn is None:
            try:
                # Once open, never create: a new thread must not make an empty database where it was.
                target = f"file:{quote(str(self.path))}?mode=rw" if self._file is not None else str(self.path)
                conn = sqlite3.connect(
                    target, timeout=30, isolation_level=None, check_same_thread=True, uri=self._file is not None
                )
            except sqlite3.Error as e:
                if self._file is not None:  # it was open before: the database went away, not a bad path
                    raise StorageUnavailable(f"state database {self.path} unavailable: {e}") from None
                raise InputError(f"cannot open state database: {e}", location=Location(str(self.path))) from None
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL" if attr == "conn" else "PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            setattr(self._local, attr, conn)
            if str(self.path) != ":memory:":
                self.path.chmod(0o600)
                if self._file is None:
                    st = self.path.stat()
                    self._file = (st.st_dev, st.st_ino)
        return conn

    def check(self) -> None:
        """Raise :class:`StorageUnavailable` unless the database answers and is still the file that was
        opened (an open SQLite connection keeps reading and writing a file deleted or replaced under
        it: a replica on such a file would serve stale state and lose what it writes)."""
        conn = self._connect()
        self._check_file()
        try:
            conn.execute("SELECT 1").fetchone()
        except sqlite3.Error as e:
            raise _unavailable(self.path, e) or StorageUnavailable(f"state database {self.path}: {e}") from None

    def _check_file(self) -> None:
        if self._file is not None:
            try:
                st = os.stat(self.path)
            except OSError as e:
                raise StorageUnavailable(f"state database {self.path} is gone: {e.strerror}") from None
            if (st.st_dev, st.st_ino) != self._file:
                raise StorageUnavailable(f"state database {self.path} was replaced by another file") from None

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction: committed on normal exit, rolled back on any exception.

        ``durable=False`` commits without fsync (WAL, synchronous=NORMAL): safe against a crash
        of the process, may be lost on power failure. Only for state that may be lost, such as
        short-lived nonces; the next durable commit makes it durable too (it syncs the one WAL file).
        """
        conn = self._connect(durable=durable)
        with self._write_lock:
            try:
                self._check_file()  # never commit into a file that is no longer the database
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as e:
                failed = _unavailable(self.path, e)
                if failed is None:
                    raise
                if conn.in_transaction:  # COMMIT failed: nothing of it is on disk
                    with contextlib.suppress(sqlite3.Error):  # the database is gone: so is the transaction
                        conn.execute("ROLLBACK")
                raise failed from None

    def write(self, fn: Callable[[sqlite3.Connection], T], *, durable: bool = True) -> T:
        """Run ``fn(tx)`` in a transaction shared with writes of other threads (group commit).

        Writes arriving together run one after another in ONE transaction with one COMMIT (one
        fsync when any of them is durable); an exception from ``fn`` undoes only its own writes and
        is raised to its caller. ``write`` returns only after the COMMIT has succeeded: nothing is
        acknowledged before it is on disk. ``fn`` may run in another thread, and more than once (a
        group in which another write failed runs again without it): it must use only ``tx`` and
        values computed before the call, and have no effect outside ``tx``.
        """
        return self._group.run(fn, durable)

    def query(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        try:
            return list(self._connect().execute(sql, params))
        except sqlite3.Error as e:
            raise _unavailable(self.path, e) or e from None

    def migrate(self, migrations: Sequence[Migration], *, ordered: bool = False) -> None:
        """Apply the ``migrations`` not yet recorded; in the given order with ``ordered``, else
        sorted by (component, version)."""
        with self._lock, self.transaction() as tx:
            done = {(r["component"], r["version"]) for r in tx.execute("SELECT * FROM schema_migrations")}
            steps = migrations if ordered else sorted(migrations, key=lambda m: (m.component, m.version))
            for m in steps:
                if (m.component, m.version) in done:
                    continue
                for statement in m.sql.split(";"):
                    if statement.strip():
                        tx.execute(statement)
                tx.execute("INSERT INTO schema_migrations VALUES (?, ?)", (m.component, m.version))

    def close(self) -> None:
        for attr in ("conn", "fast_conn"):
            conn = getattr(self._local, attr, None)
            if conn is not None:
                conn.close()
                setattr(self._local, attr, None)


class _Write:
    __slots__ = ("done", "durable", "error", "fn", "lead", "result")

    def __init__(self, fn: Callable[[sqlite3.Connection], Any], durable: bool):
        self.fn = fn
        self.durable = durable
        self.done = threading.Event()
        self.lead = False
        self.result: Any = None
        self.error: BaseException | None = None


class _GroupCommit:
    """Leader/follower group commit: the first writer to arrive commits everything queued.

    No background thread: a caller that finds no commit in progress becomes the leader, takes the
    queue, commits it, and hands leadership to the oldest waiting writer (which then commits the
    writes that queued meanwhile, its own among them), so every caller waits at most two commits.
    A group runs without savepoints (two statements less per write); when a write raises, the
    transaction is rolled back, that write gets its exception, and the rest of the group runs
    again, each write in a savepoint of its own (so a group runs at most twice).
    """

    MAX_GROUP = 256

    def __init__(self, db: Database):
        self.db = db
        self._mutex = threading.Lock()
        self._queue: list[_Write] = []
        self._busy = False

    def run(self, fn: Callable[[sqlite3.Connection], T], durable: bool) -> T:
        item = _Write(fn, durable)
        with self._mutex:
            self._queue.append(item)
            if not self._busy:
                self._busy = item.lead = True
        if not item.lead:
            item.done.wait()
        if item.lead:
            self._lead()
        if item.error is not None:
            raise item.error
        return item.result  # type: ignore[no-any-return]

    def _lead(self) -> None:
        with self._mutex:
            group, self._queue = self._queue[: self.MAX_GROUP], self._queue[self.MAX_GROUP :]
        try:
            rest = self._commit_plain(group)
            if rest:
                self._commit(rest)
        finally:
            with self._mutex:
                if self._queue:
                    nxt = self._queue[0]
                    nxt.lead = True
                    nxt.done.set()
                else:
                    self._busy = False
            for w in group:
                w.done.set()

    def _commit_plain(self, group: list[_Write]) -> list[_Write]:
        """Commit the group in one transaction without savepoints; the writes to run again if one
        of them raised (it gets its exception; nothing of the group is on disk then)."""
        failed: _Write | None = None
        try:
            with self.db.transaction(durable=any(w.durable for w in group)) as tx:
                for w in group:
                    try:
                        w.result = w.fn(tx)
                    except Exception as e:
                        w.result, w.error, failed = None, e, w
                        raise
        except BaseException as e:
            if failed is not None and isinstance(e, Exception):
                return [w for w in group if w is not failed]
            for w in group:  # BEGIN or COMMIT failed: nothing of the group is on disk
                if w.error is None:
                    w.result, w.error = None, e
            if not isinstance(e, Exception):
                raise
        return []

    def _commit(self, group: list[_Write]) -> None:
        durable = any(w.durable for w in group)
        try:
            with self.db.transaction(durable=durable) as tx:
                for i, w in enumerate(group):
                    tx.execute(f"SAVEPOINT w{i}")
                    try:
                        w.result = w.fn(tx)
                    except Exception as e:  # the caller gets it; the others' writes stay
                        tx.execute(f"ROLLBACK TO w{i}")
                        w.error = e
                    tx.execute(f"RELEASE w{i}")
        except BaseException as e:  # BEGIN or COMMIT failed: nothing of the group is on disk
            for w in group:
                if w.error is None:
                    w.result, w.error = None, e
            if not isinstance(e, Exception):
                raise


# -- the schema: one DDL per step of storage.migrations.STEPS ----------------------------------------
DDL: Mapping[tuple[str, int], str] = {
    ("manager", 1): """
        CREATE TABLE manager_nonces (
            selector TEXT PRIMARY KEY, verifier BLOB NOT NULL, purpose TEXT NOT NULL, host TEXT NOT NULL,
            vnf TEXT, issued_at REAL NOT NULL, expires_at REAL NOT NULL, used_at REAL);
        CREATE INDEX manager_nonces_expiry ON manager_nonces (expires_at);
        CREATE TABLE manager_hosts (
            name TEXT PRIMARY KEY, agent_url TEXT, host_policy TEXT,
            status TEXT NOT NULL DEFAULT 'unknown', platform_pck_sha256 TEXT, platform_json TEXT,
            last_attested_at TEXT, last_trusted_at TEXT, last_contact_at TEXT, policy_version TEXT,
            reasons_json TEXT NOT NULL DEFAULT '[]', ima_state_json TEXT, ima_entries INTEGER NOT NULL DEFAULT 0,
            ima_list_sha256 TEXT, simulated INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL);
        CREATE TABLE manager_vnfs (
            host TEXT NOT NULL, name TEXT NOT NULL, mrenclave TEXT, status TEXT NOT NULL DEFAULT 'unknown',
            last_attested_at TEXT, public_key_sha256 TEXT, reasons_json TEXT NOT NULL DEFAULT '[]',
            PRIMARY KEY (host, name));
        CREATE TABLE manager_audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, at_ts REAL NOT NULL, actor TEXT NOT NULL,
            action TEXT NOT NULL, host TEXT, vnf TEXT, allowed INTEGER NOT NULL, policy_version TEXT,
            simulated INTEGER NOT NULL DEFAULT 0, evidence_json TEXT NOT NULL, reasons_json TEXT NOT NULL);
        CREATE INDEX manager_audit_time ON manager_audit (at_ts);
        CREATE TABLE manager_enrollments (
            id INTEGER PRIMARY KEY AUTOINCREMENT, host TEXT NOT NULL, vnf TEXT NOT NULL,
            serial TEXT NOT NULL UNIQUE, certificate_sha256 TEXT NOT NULL, public_key_sha256 TEXT NOT NULL,
            key_mode TEXT NOT NULL, mrenclave TEXT NOT NULL, policy_version TEXT,
            audit_id INTEGER NOT NULL REFERENCES manager_audit (id), issued_at TEXT NOT NULL,
            not_after TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'active', revoked_at TEXT, revoke_reason TEXT);
        CREATE INDEX manager_enrollments_vnf ON manager_enrollments (host, vnf, status)
        """,
    ("manager-lifecycle", 1): """
        ALTER TABLE manager_enrollments ADD COLUMN superseded_at TEXT;
        ALTER TABLE manager_enrollments ADD COLUMN superseded_by TEXT;
        ALTER TABLE manager_enrollments ADD COLUMN enclave_claims_json TEXT
        """,
    ("manager-agent-tls", 1): "ALTER TABLE manager_hosts ADD COLUMN agent_tls_pem TEXT",
    ("manager-platforms", 1): """
        ALTER TABLE manager_hosts ADD COLUMN platform_key TEXT;
        ALTER TABLE manager_hosts ADD COLUMN repin_requested_by TEXT;
        ALTER TABLE manager_hosts ADD COLUMN repin_requested_at TEXT;
        UPDATE manager_hosts SET platform_key = 'dcap-pck:' || platform_pck_sha256 WHERE platform_pck_sha256 IS NOT NULL;
        UPDATE manager_hosts SET platform_key = 'epid:' || json_extract(platform_json, '$.epid_group_id') || ':'
            || COALESCE(json_extract(platform_json, '$.epid_pseudonym'), '')
            WHERE platform_key IS NULL AND json_extract(platform_json, '$.epid_group_id') IS NOT NULL;
        CREATE INDEX manager_hosts_platform ON manager_hosts (platform_key);
        ALTER TABLE manager_enrollments ADD COLUMN platform_key TEXT;
        CREATE INDEX manager_enrollments_platform ON manager_enrollments (platform_key, status)
        """,
    ("manager-vnf-registry", 1): """
        ALTER TABLE manager_vnfs ADD COLUMN enroll_rule TEXT;
        ALTER TABLE manager_vnfs ADD COLUMN registered_by TEXT;
        ALTER TABLE manager_vnfs ADD COLUMN registered_at TEXT;
        ALTER TABLE manager_vnfs ADD COLUMN expected_mrenclave TEXT;
        ALTER TABLE manager_vnfs ADD COLUMN bound_public_key_sha256 TEXT;
        ALTER TABLE manager_vnfs ADD COLUMN bound_mrenclave TEXT;
        ALTER TABLE manager_vnfs ADD COLUMN bound_at TEXT;
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
            host TEXT PRIMARY KEY, ak_public BLOB NOT NULL, ak_name TEXT NOT NULL, ak_spki_sha256 TEXT NOT NULL,
            ek_spki_sha256 TEXT NOT NULL, ek_trust TEXT NOT NULL, registered_at TEXT NOT NULL,
            last_clock_json TEXT, boot_pcrs_json TEXT)
        """,
    ("pki", 1): """
        CREATE TABLE pki_certificates (
            serial TEXT PRIMARY KEY, subject TEXT NOT NULL, not_before TEXT NOT NULL, not_after TEXT NOT NULL,
            issued_at TEXT NOT NULL, sha256 TEXT NOT NULL, pem TEXT NOT NULL, revoked_at TEXT,
            revocation_reason TEXT);
        CREATE INDEX pki_certificates_revoked ON pki_certificates (revoked_at)
        """,
    ("pki-admin", 1): """
        CREATE TABLE pki_admin_certificates (
            serial TEXT PRIMARY KEY, subject TEXT NOT NULL, not_before TEXT NOT NULL, not_after TEXT NOT NULL,
            issued_at TEXT NOT NULL, sha256 TEXT NOT NULL, pem TEXT NOT NULL, revoked_at TEXT,
            revocation_reason TEXT);
        CREATE INDEX pki_admin_certificates_revoked ON pki_admin_certificates (revoked_at)
        """,
    ("reattest-leases", 1): LEASES_DDL,
}

MIGRATIONS: tuple[Migration, ...] = tuple(Migration(s.component, s.version, DDL[s.key]) for s in STEPS)


# -- the dialect: SQLite's placeholders and column types -----------------------------------------------
class SqliteDialect(Dialect):
    """SQLite keeps times as ISO 8601 text (``...Z``) and instants as epoch seconds (REAL)."""

    __slots__ = ()
    name = "sqlite"
    PARAMETER = "?"
    TEXT_PARAMETER = "?"

    @staticmethod
    def to_seconds(at: datetime) -> str:
        return format_time(at)

    @staticmethod
    def to_exact(at: datetime) -> str:
        # The CA records keep microseconds (ordering exact); parse_time reads them back.
        return at.astimezone(UTC).isoformat().replace("+00:00", "Z")

    @staticmethod
    def to_instant(at: datetime) -> float:
        return at.timestamp()

    @staticmethod
    def time(value: Any) -> datetime:
        return parse_time(value)

    @staticmethod
    def time_or_none(value: Any) -> datetime | None:
        return parse_time(value) if value else None

    @staticmethod
    def instant(value: Any) -> datetime:
        return datetime.fromtimestamp(value, UTC)

    @staticmethod
    def instant_or_none(value: Any) -> datetime | None:
        return datetime.fromtimestamp(value, UTC) if value is not None else None


SQLITE = SqliteDialect()


# -- the stores ------------------------------------------------------------------------------------------
class _Session:
    """Where a store's statements run: inside one open transaction (``conn``), or, for the
    autocommit stores of :class:`SqliteStorage`, each read on the thread's connection and each
    write in a transaction of its own."""

    __slots__ = ("conn", "db")

    def __init__(self, db: Database, conn: sqlite3.Connection | None):
        self.db = db
        self.conn = conn

    def read(self) -> sqlite3.Connection:
        return self.conn if self.conn is not None else self.db._connect()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        if self.conn is not None:
            yield self.conn
        else:
            with self.db.transaction() as conn:
                yield conn


# A host's row and one of its VNF registrations (the columns _registration reads, prefixed v_).
_HOST_WITH_VNF = (
    "SELECT h.*, v.name AS v_name, v.enroll_rule AS v_enroll_rule, v.registered_by AS v_registered_by,"
    " v.expected_mrenclave AS v_expected_mrenclave, v.bound_public_key_sha256 AS v_bound_public_key_sha256,"
    " v.bound_mrenclave AS v_bound_mrenclave, v.bound_at AS v_bound_at, v.host AS v_host"
    " FROM manager_hosts h LEFT JOIN manager_vnfs v ON v.host = h.name AND v.name = ? WHERE h.name = ?"
)


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
        with self._s.write() as c:
            exists = c.execute("SELECT 1 FROM manager_hosts WHERE name = ?", (name,)).fetchone()
            if exists and not replace:
                raise ConflictError(
                    f"host {name!r} is already registered",
                    hint="`ftrust vm hosts add NAME --replace ...` changes its agent URL; "
                    "`ftrust vm hosts remove NAME` removes it",
                )
            row = c.execute(
                "INSERT INTO manager_hosts (name, agent_url, host_policy, created_at, agent_tls_pem)"
                " VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET agent_url = excluded.agent_url,"
                " host_policy = COALESCE(excluded.host_policy, manager_hosts.host_policy),"
                " agent_tls_pem = COALESCE(excluded.agent_tls_pem, manager_hosts.agent_tls_pem) RETURNING *",
                (name, agent_url, host_policy, format_time(at), agent_tls_pem),
            ).fetchone()
            return rows.host_record(row, SQLITE)

    def remove(self, name: str) -> None:
        with self._s.write() as c:
            c.execute("DELETE FROM manager_vnfs WHERE host = ?", (name,))
            c.execute("DELETE FROM manager_hosts WHERE name = ?", (name,))

    def find(self, name: str) -> HostRecord | None:
        row = self._s.read().execute("SELECT * FROM manager_hosts WHERE name = ?", (name,)).fetchone()
        return rows.host_record(row, SQLITE) if row else None

    def find_with_vnf(self, name: str, vnf: str) -> tuple[HostRecord | None, VnfRegistration | None]:
        row = self._s.read().execute(_HOST_WITH_VNF, (vnf, name)).fetchone()
        if row is None:
            return None, None
        registration = rows.vnf_registration(row, SQLITE, "v_") if row["v_name"] is not None else None
        return rows.host_record(row, SQLITE), registration

    def get(self, name: str) -> HostRecord:
        found = self.find(name)
        if found is None:
            raise NotFoundError(
                f"unknown host {name!r}: not registered", hint="register it with `ftrust vm hosts add NAME --agent URL`"
            )
        return found

    def all(self) -> builtins.list[HostRecord]:
        return [rows.host_record(r, SQLITE) for r in self._s.read().execute("SELECT * FROM manager_hosts ORDER BY name")]

    def platform_owner(self, platform_key: str, *, other_than: str) -> str | None:
        row = (
            self._s.read()
            .execute(
                "SELECT name FROM manager_hosts WHERE platform_key = ? AND name != ? ORDER BY name LIMIT 1",
                (platform_key, other_than),
            )
            .fetchone()
        )
        return str(row[0]) if row else None

    def platform_of(self, name: str) -> str | None:
        row = self._s.read().execute("SELECT platform_key FROM manager_hosts WHERE name = ?", (name,)).fetchone()
        return str(row[0]) if row and row[0] else None

    def request_repin(self, name: str, *, by: str, at: datetime) -> None:
        with self._s.write() as c:
            c.execute(
                "UPDATE manager_hosts SET repin_requested_by = ?, repin_requested_at = ? WHERE name = ?",
                (by, format_time(at), name),
            )

    def record_attestation(self, name: str, verdict: HostAttestationRecord) -> None:
        v = verdict
        t = format_time(v.at)
        platform_json = json.dumps(v.platform) if v.platform else None
        repin = bool(v.repin and v.platform_key)
        # One statement: the pin is set when none is (or replaced on an admin's re-pin request).
        sql = (
            "UPDATE manager_hosts SET status = ?, last_attested_at = ?, last_contact_at = ?,"
            " last_trusted_at = CASE WHEN ? THEN ? ELSE last_trusted_at END,"
            " reasons_json = ?, policy_version = ?,"
            " ima_state_json = CASE WHEN ? THEN ? ELSE ima_state_json END,"
            " ima_entries = CASE WHEN ? THEN ? ELSE ima_entries END,"
            " ima_list_sha256 = COALESCE(?, ima_list_sha256), simulated = ?,"
        )
        if repin:
            sql += (
                " platform_key = ?, platform_pck_sha256 = ?, platform_json = ?,"
                " repin_requested_by = NULL, repin_requested_at = NULL WHERE name = ?"
            )
        else:
            sql += (
                " platform_key = COALESCE(platform_key, ?),"
                " platform_pck_sha256 = COALESCE(?, platform_pck_sha256),"
                " platform_json = COALESCE(?, platform_json) WHERE name = ?"
            )
        params = (
            "trusted" if v.trusted else "untrusted",
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
            int(v.simulated),
            v.platform_key,
            v.platform_pck_sha256,
            platform_json,
            name,
        )
        with self._s.write() as c:
            c.execute(sql, params)

    def mark_untrusted(self, name: str, reasons: Sequence[dict[str, Any]]) -> None:
        with self._s.write() as c:
            c.execute(
                "UPDATE manager_hosts SET status = 'untrusted', reasons_json = ? WHERE name = ?",
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
        with self._s.write() as c:
            cur = c.execute(
                "INSERT INTO manager_vnfs (host, name, status, enroll_rule, registered_by, registered_at,"
                " expected_mrenclave) VALUES (?, ?, 'registered', ?, ?, ?, ?) ON CONFLICT (host, name) DO NOTHING",
                (host, vnf, enroll_rule, by, format_time(at), expected_mrenclave),
            )
            if cur.rowcount == 1:
                return True
            if not if_absent:
                raise ConflictError(
                    f"VNF {vnf!r} is already registered on host {host!r}",
                    hint="`ftrust vm vnfs release HOST VNF` frees its enclave binding; `vnfs remove` unregisters it",
                )
            return False

    def registration(self, host: str, vnf: str) -> VnfRegistration | None:
        row = self._s.read().execute("SELECT * FROM manager_vnfs WHERE host = ? AND name = ?", (host, vnf)).fetchone()
        return rows.vnf_registration(row, SQLITE) if row else None

    def bound_name(self, public_key_sha256: str) -> tuple[str, str] | None:
        row = (
            self._s.read()
            .execute(
                "SELECT host, name FROM manager_vnfs WHERE bound_public_key_sha256 = ? ORDER BY host, name LIMIT 1",
                (public_key_sha256,),
            )
            .fetchone()
        )
        return (str(row[0]), str(row[1])) if row else None

    def bind(self, host: str, vnf: str, *, public_key_sha256: str, mrenclave: str, at: datetime) -> bool:
        # One statement: bind while unbound (and while no other name holds the key), and read back
        # what the name is bound to.
        with self._s.write() as c:
            row = c.execute(
                "UPDATE manager_vnfs SET"
                " bound_at = CASE WHEN bound_public_key_sha256 IS NULL THEN ? ELSE bound_at END,"
                " bound_mrenclave = CASE WHEN bound_public_key_sha256 IS NULL THEN ? ELSE bound_mrenclave END,"
                " bound_public_key_sha256 = COALESCE(bound_public_key_sha256, ?)"
                " WHERE host = ? AND name = ? AND NOT EXISTS (SELECT 1 FROM manager_vnfs o"
                " WHERE o.bound_public_key_sha256 = ? AND (o.host != ? OR o.name != ?))"
                " RETURNING bound_public_key_sha256, bound_mrenclave",
                (format_time(at), mrenclave, public_key_sha256, host, vnf, public_key_sha256, host, vnf),
            ).fetchone()
        return bool(row) and row[0] == public_key_sha256 and row[1] == mrenclave

    # bind_enrolled: bind (as bind) and record the enrollment (as record_vnf) in one statement; the
    # registering form inserts the row first when absent (as register_vnf if_absent). A key another
    # name holds makes it change nothing (no row from the SELECT, or the DO UPDATE's WHERE fails).
    _BIND_SET = (
        " bound_at = CASE WHEN bound_public_key_sha256 IS NULL THEN :at ELSE bound_at END,"
        " bound_mrenclave = CASE WHEN bound_public_key_sha256 IS NULL THEN :mrenclave ELSE bound_mrenclave END,"
        " bound_public_key_sha256 = COALESCE(bound_public_key_sha256, :key),"
        " mrenclave = :mrenclave, status = 'enrolled', last_attested_at = :at, public_key_sha256 = :key,"
        " reasons_json = '[]'"
    )
    _NO_OTHER_HOLDER = (
        "NOT EXISTS (SELECT 1 FROM manager_vnfs o WHERE o.bound_public_key_sha256 = :key"
        " AND (o.host != :host OR o.name != :vnf))"
    )
    _BIND_ENROLLED = (
        "UPDATE manager_vnfs SET" + _BIND_SET + " WHERE host = :host AND name = :vnf AND " + _NO_OTHER_HOLDER
        + " RETURNING bound_public_key_sha256, bound_mrenclave"
    )  # fmt: skip
    _REGISTER_BIND_ENROLLED = (
        "INSERT INTO manager_vnfs (host, name, status, enroll_rule, registered_by, registered_at, expected_mrenclave,"
        " bound_public_key_sha256, bound_mrenclave, bound_at, mrenclave, last_attested_at, public_key_sha256,"
        " reasons_json) SELECT :host, :vnf, 'enrolled', :rule, :by, :at, NULL, :key, :mrenclave, :at, :mrenclave,"
        " :at, :key, '[]' WHERE " + _NO_OTHER_HOLDER + " ON CONFLICT (host, name) DO UPDATE SET" + _BIND_SET
        + " WHERE " + _NO_OTHER_HOLDER + " RETURNING bound_public_key_sha256, bound_mrenclave"
    )  # fmt: skip

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
        params = {"host": host, "vnf": vnf, "key": public_key_sha256, "mrenclave": mrenclave, "at": format_time(at)}
        if register is not None:
            params["rule"], params["by"] = register
        with self._s.write() as c:
            sql = self._BIND_ENROLLED if register is None else self._REGISTER_BIND_ENROLLED
            row = c.execute(sql, params).fetchone()
        return bool(row) and row[0] == public_key_sha256 and row[1] == mrenclave

    def release(self, host: str, vnf: str) -> None:
        with self._s.write() as c:
            c.execute(
                "UPDATE manager_vnfs SET bound_public_key_sha256 = NULL, bound_mrenclave = NULL, bound_at = NULL"
                " WHERE host = ? AND name = ?",
                (host, vnf),
            )

    def remove_vnf(self, host: str, vnf: str) -> None:
        with self._s.write() as c:
            c.execute("DELETE FROM manager_vnfs WHERE host = ? AND name = ?", (host, vnf))

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
        with self._s.write() as c:
            c.execute(
                "UPDATE manager_vnfs SET mrenclave = COALESCE(?, mrenclave), status = ?, last_attested_at = ?,"
                " public_key_sha256 = COALESCE(?, public_key_sha256), reasons_json = ? WHERE host = ? AND name = ?",
                (mrenclave, str(status), format_time(at), public_key_sha256, json.dumps(list(reasons)), host, vnf),
            )

    def vnf_known(self, vnf: str, *, host: str | None = None) -> bool:
        row = (
            self._s.read()
            .execute(
                "SELECT 1 FROM manager_vnfs WHERE name = ? AND (? IS NULL OR host = ?)"
                " UNION ALL SELECT 1 FROM manager_enrollments WHERE vnf = ? AND (? IS NULL OR host = ?) LIMIT 1",
                (vnf, host, host, vnf, host, host),
            )
            .fetchone()
        )
        return row is not None

    def vnfs(self, host: str | None = None) -> builtins.list[VnfRecord]:
        sql = (
            "SELECT v.*, (SELECT COUNT(*) FROM manager_enrollments e WHERE e.host = v.host AND e.vnf = v.name"
            " AND e.status = 'active') AS active FROM manager_vnfs v"
        )
        found = self._s.read().execute(
            sql + (" WHERE host = ?" if host else "") + " ORDER BY host, name", (host,) if host else ()
        )
        return [rows.vnf_record(r, SQLITE) for r in found]

    def record_enrollment(self, enrollment: NewEnrollment) -> int:
        e = enrollment
        with self._s.write() as c:
            c.execute(
                "UPDATE manager_enrollments SET status = 'superseded', superseded_at = ?, superseded_by = ?"
                " WHERE host = ? AND vnf = ? AND status = 'active'",
                (format_time(e.issued_at), e.serial, e.host, e.vnf),
            )
            cur = c.execute(
                "INSERT INTO manager_enrollments (host, vnf, serial, certificate_sha256, public_key_sha256, key_mode,"
                " mrenclave, policy_version, audit_id, issued_at, not_after, enclave_claims_json, platform_key)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    format_time(e.issued_at),
                    format_time(e.not_after),
                    json.dumps(e.enclave_claims, sort_keys=True) if e.enclave_claims is not None else None,
                    e.platform_key,
                ),
            )
            return int(cur.lastrowid or 0)

    def enrollments(
        self, *, host: str | None = None, vnf: str | None = None, active_only: bool = False
    ) -> builtins.list[EnrollmentRecord]:
        found = self._s.read().execute(
            "SELECT * FROM manager_enrollments WHERE (? IS NULL OR host = ?) AND (? IS NULL OR vnf = ?)"
            " AND (? = 0 OR status = 'active') ORDER BY id",
            (host, host, vnf, vnf, int(active_only)),
        )
        return [rows.enrollment_record(r, SQLITE) for r in found]

    def live(
        self, *, host: str | None, vnf: str | None, at: datetime, platform_key: str | None = None
    ) -> builtins.list[EnrollmentRecord]:
        found = self._s.read().execute(
            "SELECT * FROM manager_enrollments WHERE"
            " (((? IS NULL OR host = ?) AND (? IS NULL OR vnf = ?)) OR (? IS NOT NULL AND platform_key = ?))"
            " AND (status = 'active' OR (status = 'superseded' AND not_after > ?)) ORDER BY id",
            (host, host, vnf, vnf, platform_key, platform_key, format_time(at)),
        )
        return [rows.enrollment_record(r, SQLITE) for r in found]

    def by_serial(self, serial: str) -> EnrollmentRecord | None:
        row = self._s.read().execute("SELECT * FROM manager_enrollments WHERE serial = ?", (serial,)).fetchone()
        return rows.enrollment_record(row, SQLITE) if row else None

    def enclave_claims(self, serial: str) -> dict[str, Any] | None:
        row = (
            self._s.read()
            .execute("SELECT enclave_claims_json FROM manager_enrollments WHERE serial = ?", (serial,))
            .fetchone()
        )
        if not row or row[0] is None:
            return None
        value: dict[str, Any] = json.loads(row[0])
        return value

    def mark_revoked(self, serial: str, *, at: datetime, reason: str) -> None:
        with self._s.write() as c:
            c.execute(
                "UPDATE manager_enrollments SET status = 'revoked', revoked_at = ?, revoke_reason = ? WHERE serial = ?",
                (format_time(at), reason, serial),
            )


_CERTIFICATE_TABLES = {
    CertificateAuthorityKind.VNF: "pki_certificates",
    CertificateAuthorityKind.ADMIN: "pki_admin_certificates",
}


class _Certificates:
    __slots__ = ("_kind", "_s", "_sql")

    def __init__(self, session: _Session, kind: CertificateAuthorityKind):
        self._s = session
        self._kind = CertificateAuthorityKind(kind)
        table = _CERTIFICATE_TABLES[self._kind]  # from the closed set, never from input
        self._sql: Callable[[str], str] = lambda statement: statement.replace("{table}", table)

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
        with self._s.write() as c:
            try:
                c.execute(
                    self._sql(
                        "INSERT INTO {table} (serial, subject, not_before, not_after, issued_at, sha256, pem)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)"
                    ),
                    (
                        format(record.serial, "x"),
                        record.subject,
                        SQLITE.to_exact(record.not_before),
                        SQLITE.to_exact(record.not_after),
                        SQLITE.to_exact(record.issued_at),
                        record.sha256,
                        record.pem,
                    ),
                )
            except sqlite3.IntegrityError:
                raise InputError(f"certificate serial {format(record.serial, 'x')} is already recorded") from None
        return record

    def revoke(self, serial: int, reason: str, at: datetime) -> CertificateRecord:
        canonical = normalize_reason(reason)
        hexserial = format(serial, "x")
        with self._s.write() as c:
            # One statement when it revokes; the first revocation stands (then it is read back).
            row = c.execute(
                self._sql(
                    "UPDATE {table} SET revoked_at = ?, revocation_reason = ? WHERE serial = ? AND revoked_at IS NULL"
                    " RETURNING *"
                ),
                (SQLITE.to_exact(at), canonical, hexserial),
            ).fetchone()
            if row is None:
                row = c.execute(self._sql("SELECT * FROM {table} WHERE serial = ?"), (hexserial,)).fetchone()
            if row is None:
                raise InputError(f"no certificate with serial {hexserial}", hint="see `ftrust ca list`")
            return rows.certificate_record(row, SQLITE)

    def get(self, serial: int) -> CertificateRecord | None:
        row = (
            self._s.read()
            .execute(self._sql("SELECT * FROM {table} WHERE serial = ?"), (format(serial, "x"),))
            .fetchone()
        )
        return rows.certificate_record(row, SQLITE) if row else None

    def list(self, *, revoked: bool | None = None, subject: str | None = None) -> builtins.list[CertificateRecord]:
        sql = "SELECT * FROM {table}"
        where: builtins.list[str] = []
        params: builtins.list[object] = []
        if revoked is True:
            where.append("revoked_at IS NOT NULL")
        elif revoked is False:
            where.append("revoked_at IS NULL")
        if subject is not None:
            where.append("subject = ?")
            params.append(subject)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY issued_at, serial"
        return [rows.certificate_record(r, SQLITE) for r in self._s.read().execute(self._sql(sql), params)]

    def revoked(self, *, unexpired_at: datetime | None = None) -> builtins.list[CertificateRecord]:
        records = self.list(revoked=True)
        if unexpired_at is not None:
            records = [r for r in records if r.not_after >= unexpired_at]
        return records

    def revocation_marker(self) -> tuple[int, datetime | None]:
        row = (
            self._s.read()
            .execute(self._sql("SELECT COUNT(*), MAX(revoked_at) FROM {table} WHERE revoked_at IS NOT NULL"))
            .fetchone()
        )
        return int(row[0]), SQLITE.time_or_none(row[1])


class _Nonces:
    __slots__ = ("_s",)

    def __init__(self, session: _Session):
        self._s = session

    def add(self, nonce: NonceRecord, *, purge_expired_before: datetime | None = None) -> None:
        n = nonce
        with self._s.write() as c:
            if purge_expired_before is not None:
                c.execute("DELETE FROM manager_nonces WHERE expires_at < ?", (purge_expired_before.timestamp(),))
            c.execute(
                "INSERT INTO manager_nonces (selector, verifier, purpose, host, vnf, issued_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    n.selector,
                    n.verifier,
                    str(n.purpose),
                    n.host,
                    n.vnf,
                    n.issued_at.timestamp(),
                    n.expires_at.timestamp(),
                ),
            )

    def find(self, selector: str) -> NonceRecord | None:
        row = self._s.read().execute("SELECT * FROM manager_nonces WHERE selector = ?", (selector,)).fetchone()
        return rows.nonce_record(row, SQLITE) if row else None

    def spend(self, nonce: NonceRecord, *, purge_expired_before: datetime | None = None) -> bool:
        n = nonce
        assert n.used_at is not None
        with self._s.write() as c:
            if purge_expired_before is not None:
                c.execute("DELETE FROM manager_nonces WHERE expires_at < ?", (purge_expired_before.timestamp(),))
            cur = c.execute(
                "INSERT INTO manager_nonces (selector, verifier, purpose, host, vnf, issued_at, expires_at, used_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (selector) DO NOTHING",
                (
                    n.selector,
                    n.verifier,
                    str(n.purpose),
                    n.host,
                    n.vnf,
                    n.issued_at.timestamp(),
                    n.expires_at.timestamp(),
                    n.used_at.timestamp(),
                ),
            )
            return cur.rowcount == 1

    def burn(self, selector: str, *, at: datetime) -> bool:
        with self._s.write() as c:
            cur = c.execute(
                "UPDATE manager_nonces SET used_at = ? WHERE selector = ? AND used_at IS NULL",
                (at.timestamp(), selector),
            )
            return cur.rowcount == 1

    def purge(self, *, expired_before: datetime) -> int:
        with self._s.write() as c:
            return c.execute("DELETE FROM manager_nonces WHERE expires_at < ?", (expired_before.timestamp(),)).rowcount


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
        with self._s.write() as c:
            cur = c.execute(
                "INSERT INTO manager_audit (at, at_ts, actor, action, host, vnf, allowed, policy_version, simulated,"
                " evidence_json, reasons_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    format_time(at),
                    at.timestamp(),
                    actor,
                    action,
                    host,
                    vnf,
                    int(allowed),
                    policy_version,
                    int(simulated),
                    json.dumps(evidence or {}, sort_keys=True),
                    json.dumps(list(reasons or [])),
                ),
            )
            return int(cur.lastrowid or 0)

    def records(self, *, since: datetime | None = None, limit: int = 1000) -> builtins.list[AuditRecord]:
        c = self._s.read()
        if since is None:
            found = c.execute("SELECT * FROM manager_audit ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        else:
            found = c.execute(
                "SELECT * FROM manager_audit WHERE at_ts >= ? ORDER BY id DESC LIMIT ?", (since.timestamp(), limit)
            ).fetchall()
        return [rows.audit_record(r, SQLITE) for r in reversed(found)]

    def get(self, audit_id: int) -> AuditRecord | None:
        row = self._s.read().execute("SELECT * FROM manager_audit WHERE id = ?", (audit_id,)).fetchone()
        return rows.audit_record(row, SQLITE) if row else None


class _Tpm:
    __slots__ = ("_s",)

    def __init__(self, session: _Session):
        self._s = session

    def get(self, host: str) -> TpmPin | None:
        row = self._s.read().execute("SELECT * FROM manager_host_tpm WHERE host = ?", (host,)).fetchone()
        return rows.tpm_pin(row, SQLITE) if row else None

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
        with self._s.write() as c:
            c.execute(
                "INSERT INTO manager_host_tpm (host, ak_public, ak_name, ak_spki_sha256, ek_spki_sha256, ek_trust,"
                " registered_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (host) DO UPDATE SET"
                " ak_public = excluded.ak_public, ak_name = excluded.ak_name, ak_spki_sha256 = excluded.ak_spki_sha256,"
                " ek_spki_sha256 = excluded.ek_spki_sha256, ek_trust = excluded.ek_trust,"
                " registered_at = excluded.registered_at, last_clock_json = NULL, boot_pcrs_json = NULL",
                (host, ak_public, ak_name, ak_spki_sha256, ek_spki_sha256, ek_trust, at.isoformat()),
            )

    def record_round(self, host: str, *, clock: ClockInfo, firmware: int, boot_pcrs: dict[str, dict[int, str]]) -> None:
        last_clock, boot = rows.tpm_round_json(clock, firmware, boot_pcrs)
        with self._s.write() as c:
            c.execute(
                "UPDATE manager_host_tpm SET last_clock_json = ?, boot_pcrs_json = COALESCE(boot_pcrs_json, ?)"
                " WHERE host = ?",
                (last_clock, boot, host),
            )


class SqliteTransaction:
    """The stores of one open SQLite transaction (or, with ``conn`` None, the autocommit stores)."""

    __slots__ = ("_session", "audit", "enrollments", "hosts", "nonces", "tpm")

    def __init__(self, db: Database, conn: sqlite3.Connection | None):
        self._session = s = _Session(db, conn)
        self.hosts = _Hosts(s)
        self.enrollments = _Enrollments(s)
        self.nonces = _Nonces(s)
        self.audit = _Audit(s)
        self.tpm = _Tpm(s)

    def certificates(self, kind: CertificateAuthorityKind = CertificateAuthorityKind.VNF) -> _Certificates:
        return _Certificates(self._session, kind)


class SqliteStorage(SqliteTransaction):
    """:class:`~floodlight_trust.storage.stores.Storage` on one SQLite file (migrated when opened)."""

    __slots__ = ("db",)

    def __init__(self, path: str | Path | Database):
        self.db = path if isinstance(path, Database) else Database(path)
        super().__init__(self.db, None)
        self.migrate()

    @property
    def path(self) -> Path:
        return self.db.path

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[SqliteTransaction]:
        with self.db.transaction(durable=durable) as conn:
            yield SqliteTransaction(self.db, conn)

    def write(self, fn: Callable[[SqliteTransaction], T], *, durable: bool = True) -> T:
        db = self.db
        return db.write(lambda conn: fn(SqliteTransaction(db, conn)), durable=durable)

    def migrate(self) -> None:
        self.db.migrate(MIGRATIONS, ordered=True)

    def close(self) -> None:
        self.db.close()

    def check(self) -> None:
        """StorageUnavailable unless the database answers and is still the file opened (health)."""
        self.db.check()

    def query(self, sql: str, params: Sequence[object] = ()) -> builtins.list[sqlite3.Row]:
        """Raw SQL for tests that inspect the rows (SQLite only; the project itself never calls it)."""
        return self.db.query(sql, params)

    def merge_legacy_certificates(self, legacy: Path) -> int:
        """Copy the VNF CA records of an older `ftrust ca` file (``ftrust.db``) in, once; how many."""
        self.db.query("ATTACH DATABASE ? AS legacy", (str(legacy),))  # SQLite attaches outside a transaction only
        try:
            with self.db.transaction() as c:
                has = c.execute("SELECT 1 FROM legacy.sqlite_master WHERE name = 'pki_certificates'").fetchone()
                return (
                    c.execute("INSERT OR IGNORE INTO pki_certificates SELECT * FROM legacy.pki_certificates").rowcount
                    if has
                    else 0
                )
        finally:
            self.db.query("DETACH DATABASE legacy")
