"""Challenge nonces: authenticated tokens, single use, short-lived; issuing one writes nothing.

A nonce is 32 bytes the VM can check without having stored it::

    byte 0        version (0x10) | 0x08 when bound to one VNF | purpose (1 host, 2 enclave)
    bytes 1-7     expiry, microseconds since the Unix epoch (big-endian)
    bytes 8-15    random
    bytes 16-31   HMAC-SHA256(nonce key, label ‖ bytes 0-15 ‖ host ‖ VNF)[:16]

The key is the CA's nonce key (``CertificateAuthority.nonce_key``: derived from the CA key, so every
replica holding the CA checks every replica's nonces); nobody without it can make a nonce that
verifies, or change its purpose, expiry, host or VNF. The MAC is compared in constant time.

Single use: a nonce is spent by inserting its row (selector = the first 8 bytes of its SHA-256,
verifier = all of it; never the nonce itself) in the SAME transaction that records the decision.
The selector is the table's key, so of two uses of one nonce, concurrent or on two replicas, only
one insert succeeds; the other's transaction records nothing (``Denied``/"nonce replayed"). Before
judging, the evidence's nonce is looked up among the spent ones (one read by key), so a replay is
refused before its quote is verified. Spent rows are forgotten a TTL after their expiry (until then a
replay is told "replayed", after it "expired").

Before this (docs/benchmarks.md), every nonce was a row written when it was issued: one database
write per challenge, a third of an enrollment's writes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from floodlight_trust.clock import format_time
from floodlight_trust.protocol.binding import NONCE_BYTES
from floodlight_trust.storage.records import NoncePurpose, NonceRecord
from floodlight_trust.storage.stores import Storage, Transaction

PURPOSES = tuple(p.value for p in NoncePurpose)

_VERSION = 0x10
_VNF_BOUND = 0x08
_CODES = {NoncePurpose.HOST: 1, NoncePurpose.ENCLAVE: 2}
_PURPOSE_OF = {code: purpose for purpose, code in _CODES.items()}
_LABEL = b"floodlight-trust/nonce/v1\x00"
_HEAD = 16  # version and purpose, expiry, random: what the MAC covers besides host and VNF
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class IssuedNonce:
    value: bytes
    purpose: NoncePurpose
    host: str
    vnf: str | None
    expires_at: datetime

    def to_json(self) -> dict[str, str]:
        return {"nonce": self.value.hex(), "purpose": str(self.purpose), "expires_at": format_time(self.expires_at)}


@dataclass(frozen=True, slots=True)
class _Token:
    """What an authentic nonce says of itself (its MAC verified for the host and VNF it came with)."""

    purpose: NoncePurpose
    vnf: str | None
    expires_at: datetime


def _digest(nonce: bytes) -> tuple[str, bytes]:
    d = hashlib.sha256(nonce).digest()
    return d[:8].hex(), d


def _message(head: bytes, host: str, vnf: str | None) -> bytes:
    h, v = host.encode(), (vnf or "").encode()
    return b"".join((_LABEL, head, len(h).to_bytes(4, "big"), h, len(v).to_bytes(4, "big"), v))


class _MacKey:
    """HMAC-SHA256 under one key, its context keyed once: each MAC copies it (``hmac.HMAC.copy``)
    instead of keying a new one (which, on OpenSSL 3, also looks the digest up again): 3.3 us
    instead of 5.3 us a MAC here, three MACs an enrollment."""

    __slots__ = ("_keyed", "key")

    def __init__(self, key: bytes):
        self.key = key
        self._keyed = hmac.new(key, digestmod="sha256")

    def mac(self, head: bytes, host: str, vnf: str | None) -> bytes:
        h = self._keyed.copy()
        h.update(_message(head, host, vnf))
        return h.digest()[: NONCE_BYTES - _HEAD]


def _mac(key: bytes, head: bytes, host: str, vnf: str | None) -> bytes:
    """The nonce's MAC (bytes 16-31), as the module docstring defines it."""
    return hmac.digest(key, _message(head, host, vnf), "sha256")[: NONCE_BYTES - _HEAD]


class Nonces:
    """Issue, check and spend challenge nonces; spent ones are kept in the storage's :class:`NonceStore`.

    ``key`` gives the MAC key (the CA's nonce key; a VM without a CA has a key of its own process)."""

    def __init__(self, storage: Storage, *, ttl_seconds: int, key: Callable[[], bytes] | None = None):
        self.storage = storage
        self.ttl = timedelta(seconds=ttl_seconds)
        self._key = key or process_key
        self._purged_at: datetime | None = None
        self._mac_key: _MacKey | None = None

    def _keyed(self) -> _MacKey:
        """The MAC under the current key (keyed again when the key changes: a rotated CA key)."""
        key = self._key()
        cached = self._mac_key
        if cached is None or cached.key is not key:
            cached = self._mac_key = _MacKey(key)
        return cached

    def issue(self, purpose: str, host: str, vnf: str | None = None, *, at: datetime) -> IssuedNonce:
        """A fresh nonce for ``purpose``, ``host`` and (optionally) ``vnf``, valid for the TTL; nothing is written."""
        if purpose not in PURPOSES:
            raise ValueError(f"nonce purpose {purpose!r}")
        kind = NoncePurpose(purpose)
        micros = (at + self.ttl - _EPOCH) // _MICROSECOND
        first = _VERSION | _CODES[kind] | (_VNF_BOUND if vnf is not None else 0)
        head = bytes((first,)) + micros.to_bytes(7, "big") + secrets.token_bytes(_HEAD - 8)
        value = head + self._keyed().mac(head, host, vnf)
        return IssuedNonce(value, kind, host, vnf, _EPOCH + micros * _MICROSECOND)

    def _token(self, nonce: bytes, host: str, vnf: str | None) -> _Token | None:
        """The nonce's purpose, VNF and expiry if this VM issued it for ``host`` (and ``vnf`` when it
        was bound to one); None for anything else (forged, altered, another host or VNF, another key)."""
        if len(nonce) != NONCE_BYTES:
            return None
        first = nonce[0]
        purpose = _PURPOSE_OF.get(first & 0x07)
        if first & 0xF0 != _VERSION or purpose is None:
            return None
        bound = vnf if first & _VNF_BOUND else None
        if first & _VNF_BOUND and vnf is None:  # bound to a VNF, presented without one
            return None
        if not hmac.compare_digest(self._keyed().mac(nonce[:_HEAD], host, bound), nonce[_HEAD:]):
            return None
        return _Token(purpose, bound, _EPOCH + int.from_bytes(nonce[1:8], "big") * _MICROSECOND)

    def find(self, nonce: bytes, *, host: str, vnf: str | None = None) -> NonceRecord | None:
        """The VM's record of ``nonce`` presented by evidence for ``host`` (and ``vnf``): its
        authenticated purpose, VNF and expiry, and when it was spent if it was (one read of the spent
        nonces by key). None when this VM did not issue it for that host and VNF. Does not spend it:
        :meth:`burn` does that inside the transaction that records the decision; the judges check
        the record (``judges.protocol.check_nonce``)."""
        token = self._token(nonce, host, vnf)
        if token is None:
            return None
        selector, verifier = _digest(nonce)
        spent = self.storage.nonces.find(selector)
        used_at = spent.used_at if spent is not None and hmac.compare_digest(spent.verifier, verifier) else None
        return NonceRecord(
            selector, verifier, token.purpose, host, token.vnf, token.expires_at - self.ttl, token.expires_at, used_at
        )

    def burn(self, tx: Transaction, nonce: bytes, *, host: str, vnf: str | None = None, at: datetime) -> bool:
        """Spend ``nonce`` (issued for ``host``/``vnf``) inside ``tx``; False if it was spent already
        (a concurrent replay: the caller records nothing) or is not one of this VM's. Spent nonces
        that expired a TTL ago are forgotten in the same write, at most once per TTL."""
        token = self._token(nonce, host, vnf)
        if token is None:
            return False
        selector, verifier = _digest(nonce)
        purge = self._purged_at is None or at - self._purged_at >= self.ttl
        if purge:
            self._purged_at = at
        record = NonceRecord(
            selector, verifier, token.purpose, host, token.vnf, token.expires_at - self.ttl, token.expires_at, at
        )
        return tx.nonces.spend(record, purge_expired_before=at - self.ttl if purge else None)

    def purge(self, *, before: datetime) -> int:
        """Forget spent nonces that expired before ``before``; returns how many."""
        return self.storage.nonces.purge(expired_before=before)


_PROCESS_KEY = secrets.token_bytes(32)


def process_key() -> bytes:
    """The nonce key of a VM made without a CA (appraisal only: one process, no replicas)."""
    return _PROCESS_KEY
