"""SQLite storage: WAL journal, one connection per thread, migrations, explicit transactions.

Every multi-step change runs inside ``with db.transaction() as tx:`` so a crash at any point leaves
either all of it or none of it on disk.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from floodlight_trust.errors import InputError, Location


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step of one component: applied once, in order, recorded in ``schema_migrations``."""

    component: str
    version: int
    sql: str


class Database:
    """A SQLite database file shared by every component of one deployment."""

    def __init__(self, path: str | Path, migrations: Sequence[Migration] = ()):
        self.path = Path(path)
        self._local = threading.local()
        self._lock = threading.Lock()
        # Writers of this process queue here instead of in SQLite's busy handler, which sleeps in
        # steps of up to 100 ms when BEGIN IMMEDIATE finds the database locked by another thread.
        self._write_lock = threading.RLock()
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self.transaction() as tx:
            tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " component TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (component, version))"
            )
        self.migrate(migrations)

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=True)
            except sqlite3.Error as e:
                raise InputError(f"cannot open state database: {e}", location=Location(str(self.path))) from None
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
            if str(self.path) != ":memory:":
                self.path.chmod(0o600)
        return conn

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction: committed on normal exit, rolled back on any exception.

        ``durable=False`` commits without fsync (WAL, synchronous=NORMAL): safe against a crash
        of the process, may be lost on power failure. Only for state that may be lost, such as
        short-lived nonces; the next durable commit makes it durable too.
        """
        conn = self._connect()
        with self._write_lock:
            if not durable:
                conn.execute("PRAGMA synchronous=NORMAL")
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            finally:
                if not durable:
                    conn.execute("PRAGMA synchronous=FULL")

    def query(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        return list(self._connect().execute(sql, params))

    def migrate(self, migrations: Sequence[Migration]) -> None:
        with self._lock, self.transaction() as tx:
            done = {(r["component"], r["version"]) for r in tx.execute("SELECT * FROM schema_migrations")}
            for m in sorted(migrations, key=lambda m: (m.component, m.version)):
                if (m.component, m.version) in done:
                    continue
                for statement in m.sql.split(";"):
                    if statement.strip():
                        tx.execute(statement)
                tx.execute("INSERT INTO schema_migrations VALUES (?, ?)", (m.component, m.version))

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
