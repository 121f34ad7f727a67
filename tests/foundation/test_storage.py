"""Storage: migrations apply once; a failing transaction leaves nothing behind."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from floodlight_trust.storage import Database, Migration

M = Migration("test", 1, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")


def test_migration_applies_once(tmp_path: Path) -> None:
    db = Database(tmp_path / "state.db", [M])
    db.migrate([M])  # again: no error, no duplicate
    rows = db.query("SELECT * FROM schema_migrations WHERE component = 'test'")
    assert [(r["component"], r["version"]) for r in rows] == [("test", 1)]
    assert oct((tmp_path / "state.db").stat().st_mode & 0o777) == "0o600"


def test_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    db = Database(tmp_path / "state.db", [M])
    with pytest.raises(RuntimeError), db.transaction() as tx:
        tx.execute("INSERT INTO t (v) VALUES ('a')")
        raise RuntimeError("crash mid-change")
    assert db.query("SELECT COUNT(*) AS n FROM t")[0]["n"] == 0
    with db.transaction() as tx:
        tx.execute("INSERT INTO t (v) VALUES ('b')")
    # a second connection (another process in real life) sees the committed row
    other = Database(tmp_path / "state.db")
    assert [r["v"] for r in other.query("SELECT v FROM t")] == ["b"]


def test_group_commit_isolates_a_failing_write_and_keeps_the_others(tmp_path: Path) -> None:
    import threading

    db = Database(tmp_path / "g.db")
    with db.transaction() as tx:
        tx.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)")
    errors: list[BaseException] = []
    results: list[int] = []

    def writer(k: int) -> None:
        def fn(tx: sqlite3.Connection) -> int:
            tx.execute("INSERT INTO t VALUES (?)", (k,))
            if k % 5 == 0:
                raise ValueError(f"refused {k}")  # undoes only this write
            return k

        try:
            results.append(db.write(fn))
        except ValueError as e:
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(1, 41)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    on_disk = sorted(r["k"] for r in Database(tmp_path / "g.db").query("SELECT k FROM t"))
    assert on_disk == sorted(results) == [k for k in range(1, 41) if k % 5]
    assert sorted(str(e) for e in errors) == sorted(f"refused {k}" for k in range(5, 41, 5))
