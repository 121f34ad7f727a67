"""Open the engine a ``storage.url`` names, and migrate it (`ftrust vm migrate`).

SQLite is the embedded default; PostgreSQL (several VM replicas on one database) is imported only
when a ``postgresql://`` URL asks for it, so commands on SQLite never load the driver.
"""

from __future__ import annotations

from dataclasses import dataclass

from floodlight_trust.storage.migrations import STEPS, Step
from floodlight_trust.storage.sqlite import Database, SqliteStorage
from floodlight_trust.storage.stores import Storage
from floodlight_trust.storage.url import PostgresUrl, SqliteUrl, StorageUrl


@dataclass(frozen=True, slots=True)
class MigrationReport:
    """What `ftrust vm migrate` did: the database (shown without its password) and the steps applied."""

    database: str
    applied: tuple[Step, ...]
    total: int  # steps of this version, all applied now

    def to_json(self) -> dict[str, object]:
        return {
            "database": self.database,
            "applied": [{"component": s.component, "version": s.version, "purpose": s.purpose} for s in self.applied],
            "steps": self.total,
        }


def open_storage(url: StorageUrl, *, pool_size: int = 10, connect_timeout_seconds: int = 10) -> Storage:
    """The storage at ``url``, migrated (at start, every process migrates: under a lock on PostgreSQL)."""
    if isinstance(url, SqliteUrl):
        return SqliteStorage(url.path)
    from floodlight_trust.storage.postgres import PostgresStorage

    return PostgresStorage(url, pool_size=pool_size, connect_timeout_seconds=connect_timeout_seconds)


def migrate_storage(url: StorageUrl, *, pool_size: int = 2, connect_timeout_seconds: int = 10) -> MigrationReport:
    """Apply the steps of storage.migrations.STEPS that ``url``'s database lacks; report which."""
    if isinstance(url, PostgresUrl):
        from floodlight_trust.storage.postgres import PostgresStorage

        pg = PostgresStorage(url, pool_size=pool_size, connect_timeout_seconds=connect_timeout_seconds, migrate=False)
        try:
            applied = pg.migrate_steps()
        finally:
            pg.close()
        return MigrationReport(url.display, tuple(applied), len(STEPS))
    db = Database(url.path)  # creates only the migrations table
    try:
        before = {
            (r["component"], int(r["version"])) for r in db.query("SELECT component, version FROM schema_migrations")
        }
        SqliteStorage(db).close()
    finally:
        db.close()
    return MigrationReport(url.display, tuple(s for s in STEPS if s.key not in before), len(STEPS))
