"""The SQLite engine: the embedded default for one host and for the demo (one file, 0600).

:class:`Database` is the connection layer (WAL journal, one connection per thread, explicit
``BEGIN IMMEDIATE`` transactions, group commit, migrations); :class:`SqliteStorage` implements the
storage Protocols (storage/stores.py) on it: the stores' statements are shared with every engine
(storage/sqlstores.py, spelled for SQLite by :class:`SqliteDialect`); this module keeps SQLite's
own: connections, transactions and group commit, the DDL, and the two calls an agent makes on
every request, each one statement here (a host read with its VNF registration, and an
enrollment's bind-and-record upsert).

Isolation: ``BEGIN IMMEDIATE`` takes SQLite's one write lock at the start, so write transactions
run one at a time, serializable by construction; reads outside a transaction see the last commit.
"""

from __future__ import annotations

import builtins
import contextlib
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

from floodlight_trust.clock import format_time, parse_time
from floodlight_trust.errors import InputError, Location, StorageUnavailable
from floodlight_trust.storage import rows
from floodlight_trust.storage.dialect import Dialect
from floodlight_trust.storage.leases import SQLITE_DDL as LEASES_DDL
from floodlight_trust.storage.migrations import STEPS
from floodlight_trust.storage.records import HostRecord, VnfRegistration
from floodlight_trust.storage.sqlstores import Params, SqlEnrollments, SqlHosts, SqlTransaction

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
        """Raise :class:`StorageUnavailable` unless this thread's connection opens and the database is
        still the file that was opened (an open SQLite connection keeps reading and writing a file deleted or replaced under
        it: a replica on such a file would serve stale state and lose what it writes).

        The thread's connection is opened if it is not (which reads the file), and no statement runs:
        a statement that reads no table, such as ``SELECT 1``, touches no page of the file on SQLite
        and proves no more (it was one statement more in every nonce request)."""
        self._connect()
        self._check_file()

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
def _stored_time(value: str) -> datetime:
    """A time column as parse_time reads it; what to_seconds and to_exact wrote (``...Z``, which
    fromisoformat reads as UTC since Python 3.11) without parse_time's rewriting and conversion."""
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return parse_time(value)
    return parsed if parsed.tzinfo is UTC else parse_time(value)


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
        if at.tzinfo is not UTC:
            at = at.astimezone(UTC)
        return at.isoformat()[:-6] + "Z"  # less "+00:00"

    @staticmethod
    def to_instant(at: datetime) -> float:
        return at.timestamp()

    @staticmethod
    def time(value: Any) -> datetime:
        return _stored_time(value)

    @staticmethod
    def time_or_none(value: Any) -> datetime | None:
        return _stored_time(value) if value else None

    @staticmethod
    def instant(value: Any) -> datetime:
        return datetime.fromtimestamp(value, UTC)

    @staticmethod
    def instant_or_none(value: Any) -> datetime | None:
        return datetime.fromtimestamp(value, UTC) if value is not None else None


SQLITE = SqliteDialect()


# -- the stores (storage/sqlstores.py) on SQLite sessions ----------------------------------------------------
class _Session:
    """Where a store's statements run (storage.sqlstores.Session): inside one open transaction
    (``conn``), or, for the autocommit stores of :class:`SqliteStorage`, each read on the thread's
    connection and each write in a transaction of its own."""

    __slots__ = ("conn", "db")

    dialect: Dialect = SQLITE

    def __init__(self, db: Database, conn: sqlite3.Connection | None):
        self.db = db
        self.conn = conn

    @property
    def in_transaction(self) -> bool:
        return self.conn is not None

    def one(self, query: str, params: Params = ()) -> Any:
        return (self.conn if self.conn is not None else self.db._connect()).execute(query, params).fetchone()

    def all(self, query: str, params: Params = ()) -> builtins.list[Any]:
        return (self.conn if self.conn is not None else self.db._connect()).execute(query, params).fetchall()

    def run(self, query: str, params: Params = ()) -> int:
        if self.conn is not None:
            return self.conn.execute(query, params).rowcount
        with self.db.transaction() as conn:
            return conn.execute(query, params).rowcount

    def write_one(self, query: str, params: Params = ()) -> Any:
        if self.conn is not None:
            return self.conn.execute(query, params).fetchone()
        with self.db.transaction() as conn:
            return conn.execute(query, params).fetchone()

    @contextmanager
    def transaction(self) -> Iterator[_Session]:
        if self.conn is not None:
            yield self
        else:
            with self.db.transaction() as conn:
                yield _Session(self.db, conn)

    def lock(self, what: str, *key: str) -> None:
        """Nothing to lock: BEGIN IMMEDIATE already runs one writer at a time."""

    def is_duplicate_key(self, error: Exception) -> bool:
        return isinstance(error, sqlite3.IntegrityError) and getattr(error, "sqlite_errorname", None) in (
            "SQLITE_CONSTRAINT_UNIQUE",
            "SQLITE_CONSTRAINT_PRIMARYKEY",
        )


class _Hosts(SqlHosts):
    __slots__ = ()

    # A host's row and one of its VNF registrations (the columns rows.vnf_registration reads, prefixed v_).
    _WITH_VNF = (
        "SELECT h.*, v.host AS v_host, v.name AS v_name, v.enroll_rule AS v_enroll_rule,"
        " v.registered_by AS v_registered_by, v.expected_mrenclave AS v_expected_mrenclave,"
        " v.bound_public_key_sha256 AS v_bound_public_key_sha256, v.bound_mrenclave AS v_bound_mrenclave,"
        " v.bound_at AS v_bound_at"
        " FROM manager_hosts h LEFT JOIN manager_vnfs v ON v.host = h.name AND v.name = ? WHERE h.name = ?"
    )

    def find_with_vnf(self, name: str, vnf: str) -> tuple[HostRecord | None, VnfRegistration | None]:
        """One statement (an agent's every nonce request and enrollment reads both)."""
        found = self._s.one(self._WITH_VNF, (vnf, name))
        if found is None:
            return None, None
        row = rows.by_name(found)
        registration = rows.vnf_registration(row, SQLITE, "v_") if row["v_name"] is not None else None
        return rows.host_record(row, SQLITE), registration


class _Enrollments(SqlEnrollments):
    __slots__ = ()

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
        """One statement (an upsert that binds and records)."""
        params = {"host": host, "vnf": vnf, "key": public_key_sha256, "mrenclave": mrenclave, "at": format_time(at)}
        if register is not None:
            params["rule"], params["by"] = register
        row = self._s.write_one(self._BIND_ENROLLED if register is None else self._REGISTER_BIND_ENROLLED, params)
        return self.bound_to(row, public_key_sha256, mrenclave)


class SqliteTransaction(SqlTransaction):
    """The stores of one open SQLite transaction (or, with ``conn`` None, the autocommit stores)."""

    __slots__ = ()

    HOSTS = _Hosts
    ENROLLMENTS = _Enrollments

    def __init__(self, db: Database, conn: sqlite3.Connection | None):
        super().__init__(_Session(db, conn))


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
