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
from floodlight_trust.errors import VerificationError
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

    def check(self, nonce: bytes, *, purpose: str, host: str, vnf: str | None = None, at: datetime) -> None:
        """Raise VerificationError unless ``nonce`` is a fresh, unused nonce for this purpose/host/VNF.

        Does not use it up: :meth:`burn` does that inside the transaction that records the decision,
        so a decision and the consumption of its nonce are one atomic step.
        """
        if len(nonce) != NONCE_BYTES:
            raise VerificationError(f"nonce must be {NONCE_BYTES} bytes, got {len(nonce)}")
        selector, verifier = _digest(nonce)
        rows = self.db.query("SELECT * FROM manager_nonces WHERE selector = ?", (selector,))
        row = rows[0] if rows else None
        if row is None or not hmac.compare_digest(bytes(row["verifier"]), verifier):
            raise VerificationError(
                "nonce unknown: it was not issued by this Verification Manager (or was purged)",
                hint="ask for a fresh nonce and attest again",
            )
        if row["used_at"] is not None:
            used = datetime.fromtimestamp(row["used_at"], UTC)
            raise VerificationError(
                f"nonce replayed: it was already used at {format_time(used)}",
                hint="every attestation needs a fresh nonce",
            )
        self._check(row, purpose=purpose, host=host, vnf=vnf, at=at)

    def burn(self, tx: sqlite3.Connection, nonce: bytes, *, at: datetime) -> bool:
        """Mark ``nonce`` used inside ``tx``; False if it was already used (a concurrent replay)."""
        selector, _ = _digest(nonce)
        cur = tx.execute(
            "UPDATE manager_nonces SET used_at = ? WHERE selector = ? AND used_at IS NULL", (at.timestamp(), selector)
        )
        return cur.rowcount == 1

    def consume(self, nonce: bytes, *, purpose: str, host: str, vnf: str | None = None, at: datetime) -> None:
        """:meth:`check` then :meth:`burn` in a transaction of its own."""
        self.check(nonce, purpose=purpose, host=host, vnf=vnf, at=at)
        with self.db.transaction(durable=False) as tx:
            if not self.burn(tx, nonce, at=at):
                raise VerificationError("nonce replayed: it was used concurrently")

    @staticmethod
    def _check(row: sqlite3.Row, *, purpose: str, host: str, vnf: str | None, at: datetime) -> None:
        expires = datetime.fromtimestamp(row["expires_at"], UTC)
        if at.timestamp() >= row["expires_at"]:
            raise VerificationError(
                f"nonce expired at {format_time(expires)} (verification at {format_time(at)})",
                hint="evidence must come back within vm.nonce_ttl_seconds",
            )
        if row["purpose"] != purpose:
            raise VerificationError(f"nonce was issued for {row['purpose']} evidence, not {purpose} evidence")
        if row["host"] != host:
            raise VerificationError(f"nonce was issued for host {row['host']!r}, not {host!r}")
        if purpose == "enclave" and row["vnf"] is not None and row["vnf"] != vnf:
            raise VerificationError(f"nonce was issued for VNF {row['vnf']!r}, not {vnf!r}")

    def purge(self, *, before: datetime) -> int:
        """Forget nonces that expired before ``before``; returns how many."""
        with self.db.transaction() as tx:
            return tx.execute("DELETE FROM manager_nonces WHERE expires_at < ?", (before.timestamp(),)).rowcount
