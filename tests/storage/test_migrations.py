"""One versioned migration set: every engine covers every step, and older databases continue."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from floodlight_trust.storage import sqlite as sqlite_engine
from floodlight_trust.storage.migrations import STEPS
from floodlight_trust.storage.records import HostStatus, VnfStatus
from floodlight_trust.storage.sqlite import DDL, SqliteStorage
from floodlight_trust.storage.stores import Storage

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_steps_are_unique_and_the_sqlite_engine_has_ddl_for_exactly_them() -> None:
    keys = [s.key for s in STEPS]
    assert len(keys) == len(set(keys))
    assert set(DDL) == set(keys)


def test_migrating_twice_changes_nothing(storage: Storage) -> None:
    storage.hosts.add("h1", None, None, at=AT)
    storage.migrate()
    storage.migrate()
    assert [h.name for h in storage.hosts.all()] == ["h1"]


def test_a_database_of_the_first_layout_is_migrated_keeping_its_rows(tmp_path: Path) -> None:
    """A state file written before any later step (only ``manager`` 1 and ``pki`` 1 applied)."""
    path = tmp_path / "old.db"
    first = sqlite_engine.Database(
        path, [m for m in sqlite_engine.MIGRATIONS if (m.component, m.version) in {("manager", 1), ("pki", 1)}]
    )
    with first.transaction() as c:
        c.execute(
            "INSERT INTO manager_hosts (name, agent_url, status, platform_pck_sha256, created_at, last_trusted_at)"
            " VALUES ('h1', 'http://h1', 'trusted', 'aa', '2026-03-01T12:00:00Z', '2026-03-01T12:00:00Z')"
        )
        c.execute(
            "INSERT INTO manager_vnfs (host, name, mrenclave, status, last_attested_at, public_key_sha256)"
            " VALUES ('h1', 'fw', 'mm', 'enrolled', '2026-03-01T12:00:00Z', 'kk'),"
            " ('h1', 'ghost', NULL, 'denied', '2026-03-01T12:00:00Z', NULL)"
        )
        c.execute(
            "INSERT INTO manager_audit (at, at_ts, actor, action, allowed, evidence_json, reasons_json)"
            " VALUES ('2026-03-01T12:00:00Z', 0, 'a', 'enroll', 1, '{}', '[]')"
        )
        c.execute(
            "INSERT INTO manager_enrollments (host, vnf, serial, certificate_sha256, public_key_sha256, key_mode,"
            " mrenclave, audit_id, issued_at, not_after) VALUES ('h1', 'fw', '0a', 'c', 'kk', 'enclave', 'mm', 1,"
            " '2026-03-01T12:00:00Z', '2026-03-01T13:00:00Z')"
        )
    first.close()
    storage = SqliteStorage(path)
    h1 = storage.hosts.get("h1")
    assert h1.status is HostStatus.TRUSTED and h1.platform_key == "dcap-pck:aa" and h1.last_trusted_at == AT
    assert [v.name for v in storage.enrollments.vnfs()] == ["fw"]  # denied-only rows are dropped
    reg = storage.enrollments.registration("h1", "fw")
    assert reg is not None and (reg.bound_public_key_sha256, reg.bound_mrenclave, reg.bound_at) == ("kk", "mm", AT)
    assert storage.enrollments.vnfs()[0].status is VnfStatus.ENROLLED
    [e] = storage.enrollments.enrollments()
    assert e.serial == "0a" and e.superseded_at is None and e.not_after == datetime(2026, 3, 1, 13, tzinfo=UTC)
    with sqlite3.connect(path) as con:
        applied = {tuple(r) for r in con.execute("SELECT component, version FROM schema_migrations")}
    assert applied == {s.key for s in STEPS}
