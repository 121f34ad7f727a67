"""SQLite storage: WAL journal, one connection per thread, migrations, explicit transactions.

Every multi-step change runs inside ``with db.transaction() as tx:`` so a crash at any point leaves
either all of it or none of it on disk.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from floodlight_trust.errors import InputError, Location

T = TypeVar("T")


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
        self._group = _GroupCommit(self)
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

    def write(self, fn: Callable[[sqlite3.Connection], T], *, durable: bool = True) -> T:
        """Run ``fn(tx)`` in a transaction shared with writes of other threads (group commit).

        Writes arriving together run one after another in ONE transaction with one COMMIT (one
        fsync when any of them is durable); each sits in a savepoint of its own, so an exception
        from ``fn`` undoes only its own writes and is raised to its caller. ``write`` returns only
        after the COMMIT has succeeded: nothing is acknowledged before it is on disk. ``fn`` may
        run in another thread: it must use only ``tx`` and values computed before the call.
        """
        return self._group.run(fn, durable)

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
            self._commit(group)
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
