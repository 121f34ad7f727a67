"""SQLite storage: WAL journal, one connection per thread, migrations, explicit transactions.

Every multi-step change runs inside ``with db.transaction() as tx:`` so a crash at any point leaves
either all of it or none of it on disk.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from floodlight_trust.errors import InputError, Location, StorageUnavailable

T = TypeVar("T")

# SQLite result codes (low byte) that mean the database cannot be used, not that a statement is wrong.
_UNAVAILABLE = {5: "busy", 6: "locked", 8: "read-only", 10: "disk I/O error", 11: "corrupt", 13: "disk full",
                14: "cannot open", 15: "locking protocol", 26: "not a database"}  # fmt: skip


def _unavailable(path: Path, e: sqlite3.Error) -> StorageUnavailable | None:
    code = getattr(e, "sqlite_errorcode", None)
    if code is None or code & 0xFF not in _UNAVAILABLE:
        return None
    return StorageUnavailable(f"state database {path} unavailable: {e}")


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
        self._file: tuple[int, int] | None = None  # (st_dev, st_ino) of the file opened first
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
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
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
        short-lived nonces; the next durable commit makes it durable too.
        """
        conn = self._connect()
        with self._write_lock:
            try:
                self._check_file()  # never commit into a file that is no longer the database
                if not durable:
                    conn.execute("PRAGMA synchronous=NORMAL")
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        yield conn
                    except BaseException:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        raise
                    conn.execute("COMMIT")
                finally:
                    if not durable:
                        conn.execute("PRAGMA synchronous=FULL")
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
        fsync when any of them is durable); each sits in a savepoint of its own, so an exception
        from ``fn`` undoes only its own writes and is raised to its caller. ``write`` returns only
        after the COMMIT has succeeded: nothing is acknowledged before it is on disk. ``fn`` may
        run in another thread: it must use only ``tx`` and values computed before the call.
        """
        return self._group.run(fn, durable)

    def query(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        try:
            return list(self._connect().execute(sql, params))
        except sqlite3.Error as e:
            raise _unavailable(self.path, e) or e from None

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
