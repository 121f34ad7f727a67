"""Durable state behind one small interface (SQLite by default).

Components (the CA's certificate records, the Verification Manager's hosts, enrollments, nonces
and audit) register their schema as named migrations and get transactions from :class:`Database`.
"""

from __future__ import annotations

from floodlight_trust.storage.database import Database, Migration

__all__ = ["Database", "Migration"]
