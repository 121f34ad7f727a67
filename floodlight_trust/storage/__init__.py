"""Durable state behind one interface (storage/stores.py), on an engine module (SQLite by default).

The CA's certificate records, the Verification Manager's hosts, VNFs, enrollments, nonces, audit
records and TPM pins are typed records (storage/records.py) reached through the Protocols of
storage/stores.py; one versioned migration set (storage/migrations.py) builds the schema on every
engine. All SQL of the project lives in this package.
"""

from __future__ import annotations

from floodlight_trust.storage.sqlite import Database, Migration, SqliteStorage
from floodlight_trust.storage.stores import (
    AuditLog,
    CertificateStore,
    EnrollmentStore,
    HostStore,
    NonceStore,
    Storage,
    TpmStore,
    Transaction,
)

__all__ = [
    "AuditLog",
    "CertificateStore",
    "Database",
    "EnrollmentStore",
    "HostStore",
    "Migration",
    "NonceStore",
    "SqliteStorage",
    "Storage",
    "TpmStore",
    "Transaction",
]
