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
from dataclasses import dataclass
from datetime import datetime, timedelta

from floodlight_trust.clock import format_time
from floodlight_trust.protocol.binding import NONCE_BYTES
from floodlight_trust.storage.records import NoncePurpose, NonceRecord
from floodlight_trust.storage.stores import Storage, Transaction

PURPOSES = tuple(p.value for p in NoncePurpose)


@dataclass(frozen=True, slots=True)
class IssuedNonce:
    value: bytes
    purpose: NoncePurpose
    host: str
    vnf: str | None
    expires_at: datetime

    def to_json(self) -> dict[str, str]:
        return {"nonce": self.value.hex(), "purpose": str(self.purpose), "expires_at": format_time(self.expires_at)}


def _digest(nonce: bytes) -> tuple[str, bytes]:
    d = hashlib.sha256(nonce).digest()
    return d[:8].hex(), d


class Nonces:
    """Issue, check and spend challenge nonces, kept in the storage's :class:`NonceStore`."""

    def __init__(self, storage: Storage, *, ttl_seconds: int):
        self.storage = storage
        self.ttl = timedelta(seconds=ttl_seconds)
        self._purged_at: datetime | None = None

    def issue(self, purpose: str, host: str, vnf: str | None = None, *, at: datetime) -> IssuedNonce:
        if purpose not in PURPOSES:
            raise ValueError(f"nonce purpose {purpose!r}")
        kind = NoncePurpose(purpose)
        value = secrets.token_bytes(NONCE_BYTES)
        selector, verifier = _digest(value)
        expires = at + self.ttl
        # Expired nonces are forgotten once they are a TTL past expiry (until then a late answer is
        # told "expired", not "unknown"): at most once per TTL, in the same write as an issue.
        purge = self._purged_at is None or at - self._purged_at >= self.ttl
        if purge:
            self._purged_at = at
        record = NonceRecord(selector, verifier, kind, host, vnf, at, expires)
        horizon = at - self.ttl if purge else None
        # Not fsync'ed (and group-committed with concurrent writes): a nonce lost in a power
        # failure only makes that one attestation fail, and an unknown nonce is refused.
        self.storage.write(lambda tx: tx.nonces.add(record, purge_expired_before=horizon), durable=False)
        return IssuedNonce(value, kind, host, vnf, expires)

    def find(self, nonce: bytes) -> NonceRecord | None:
        """The stored record of ``nonce`` (None when this VM never issued it, or purged it), its
        verifier compared in constant time. Does not use it up: :meth:`burn` does that inside the
        transaction that records the decision, so a decision and the consumption of its nonce are
        one atomic step; the judges check the record (``judges.protocol.check_nonce``)."""
        if len(nonce) != NONCE_BYTES:
            return None
        selector, verifier = _digest(nonce)
        row = self.storage.nonces.find(selector)
        if row is None or not hmac.compare_digest(row.verifier, verifier):
            return None
        return row

    def burn(self, tx: Transaction, nonce: bytes, *, at: datetime) -> bool:
        """Mark ``nonce`` used inside ``tx``; False if it was already used (a concurrent replay)."""
        selector, _ = _digest(nonce)
        return tx.nonces.burn(selector, at=at)

    def purge(self, *, before: datetime) -> int:
        """Forget nonces that expired before ``before``; returns how many."""
        return self.storage.nonces.purge(expired_before=before)
