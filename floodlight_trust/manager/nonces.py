"""Challenge nonces: 32 random bytes, single use, short-lived, remembered only on the VM.

A nonce is stored as a selector (the first 8 bytes of its SHA-256, for the lookup) and a verifier
(the whole SHA-256, compared in constant time), so the table never holds a usable nonce and a
lookup reveals nothing about the rest of it. The workflow marks it used (``burn``) in the same
transaction that records the decision, so two concurrent uses of one nonce cannot both succeed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from floodlight_trust.clock import format_time
from floodlight_trust.protocol.binding import NONCE_BYTES
from floodlight_trust.storage.database import Database

PURPOSES = ("host", "enclave")


@dataclass(frozen=True, slots=True)
class IssuedNonce:
    value: bytes
    purpose: str
    host: str
    vnf: str | None
    expires_at: datetime

    def to_json(self) -> dict[str, str]:
        return {"nonce": self.value.hex(), "purpose": self.purpose, "expires_at": format_time(self.expires_at)}


@dataclass(frozen=True, slots=True)
class NonceRecord:
    """What the VM remembers of a nonce it issued (never the nonce itself)."""

    purpose: str
    host: str
    vnf: str | None
    expires_at: datetime
    used_at: datetime | None


def _digest(nonce: bytes) -> tuple[str, bytes]:
    d = hashlib.sha256(nonce).digest()
    return d[:8].hex(), d


class NonceStore:
    """Issue and consume nonces in the ``manager_nonces`` table (see :mod:`manager.state`)."""

    def __init__(self, db: Database, *, ttl_seconds: int):
        self.db = db
        self.ttl = timedelta(seconds=ttl_seconds)
        self._purged_at: datetime | None = None

    def issue(self, purpose: str, host: str, vnf: str | None = None, *, at: datetime) -> IssuedNonce:
        if purpose not in PURPOSES:
            raise ValueError(f"nonce purpose {purpose!r}")
        value = secrets.token_bytes(NONCE_BYTES)
        selector, verifier = _digest(value)
        expires = at + self.ttl
        # Expired nonces are forgotten once they are a TTL past expiry (until then a late answer is
        # told "expired", not "unknown"): at most once per TTL, in the same write as an issue.
        purge = self._purged_at is None or at - self._purged_at >= self.ttl
        if purge:
            self._purged_at = at
        horizon = (at - self.ttl).timestamp()

        def insert(tx: sqlite3.Connection) -> None:
            if purge:
                tx.execute("DELETE FROM manager_nonces WHERE expires_at < ?", (horizon,))
            tx.execute(
                "INSERT INTO manager_nonces (selector, verifier, purpose, host, vnf, issued_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (selector, verifier, purpose, host, vnf, at.timestamp(), expires.timestamp()),
            )

        # Not fsync'ed (and group-committed with concurrent writes): a nonce lost in a power
        # failure only makes that one attestation fail, and an unknown nonce is refused.
        self.db.write(insert, durable=False)
        return IssuedNonce(value, purpose, host, vnf, expires)

    def find(self, nonce: bytes) -> NonceRecord | None:
        """The stored record of ``nonce`` (None when this VM never issued it, or purged it). Does
        not use it up: :meth:`burn` does that inside the transaction that records the decision, so
        a decision and the consumption of its nonce are one atomic step; the judges check the
        record (``judges.protocol.check_nonce``)."""
        if len(nonce) != NONCE_BYTES:
            return None
        selector, verifier = _digest(nonce)
        rows = self.db.query("SELECT * FROM manager_nonces WHERE selector = ?", (selector,))
        row = rows[0] if rows else None
        if row is None or not hmac.compare_digest(bytes(row["verifier"]), verifier):
            return None
        used = row["used_at"]
        return NonceRecord(
            purpose=row["purpose"],
            host=row["host"],
            vnf=row["vnf"],
            expires_at=datetime.fromtimestamp(row["expires_at"], UTC),
            used_at=datetime.fromtimestamp(used, UTC) if used is not None else None,
        )

    def burn(self, tx: sqlite3.Connection, nonce: bytes, *, at: datetime) -> bool:
        """Mark ``nonce`` used inside ``tx``; False if it was already used (a concurrent replay)."""
        selector, _ = _digest(nonce)
        cur = tx.execute(
            "UPDATE manager_nonces SET used_at = ? WHERE selector = ? AND used_at IS NULL", (at.timestamp(), selector)
        )
        return cur.rowcount == 1

    def purge(self, *, before: datetime) -> int:
        """Forget nonces that expired before ``before``; returns how many."""
        with self.db.transaction() as tx:
            return tx.execute("DELETE FROM manager_nonces WHERE expires_at < ?", (before.timestamp(),)).rowcount
