"""SHA-256 whose intermediate state can be saved and restored (hashlib's can do neither).

The Verification Manager binds a host's quote to the SHA-256 of the host's whole IMA list, which
only grows. With the state of SHA-256 after the list's first N bytes saved with the host's
appraisal state, a VM that restarted extends that hash with the tail the agent sends from byte N
instead of asking for (and hashing) the whole list again (docs/protocol.md, "Incremental IMA
transfer").

A saved state is implementation-independent: the eight 32-bit chaining words after the last whole
64-byte block (big-endian, 32 bytes), the number of bytes hashed (8 bytes, big-endian), then the
``count % 64`` bytes not yet compressed. It is only as trustworthy as where it is kept: the VM keeps
it in its own database, and :func:`restore` accepts only a state whose own digest is the one the
caller expects.

The arithmetic is libcrypto's (``_bulkhash.sha256_resume``/``sha256_final``). Without the native
module (an install without a C compiler) :class:`Sha256State` falls back to hashlib and cannot be
saved: :attr:`Sha256State.saved` is None and the VM asks for the whole list after a restart, as it
did before states were saved. Pure: bytes in, bytes out.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from floodlight_trust.errors import InputError

try:
    from floodlight_trust.evidence.ima._bulkhash import sha256_final, sha256_resume
except ImportError:  # not built: hashlib, without saved states
    NATIVE = False
else:
    NATIVE = True

# The SHA-256 initial chaining value (FIPS 180-4, 5.3.3) and a count of 0: the state of b"".
INITIAL = bytes.fromhex("6a09e667bb67ae853c6ef372a54ff53a510e527f9b05688c1f83d9ab5be0cd19") + bytes(8)
_HEAD = 40


class Sha256State:
    """A running SHA-256 with hashlib's ``update``/``copy``/``digest``/``hexdigest``, plus
    :attr:`length` and :attr:`saved` (the state as bytes, to persist) when the native module is built."""

    __slots__ = ("_hash", "_length", "_state")

    def __init__(self, data: bytes | memoryview = b"") -> None:
        self._state: bytes | None = INITIAL if NATIVE else None
        self._hash: Any = None if NATIVE else hashlib.sha256()
        self._length = 0
        if data:
            self.update(data)

    @classmethod
    def restore(cls, saved: bytes, *, length: int, sha256_hex: str) -> Sha256State:
        """The hash whose saved state is ``saved``; InputError unless that state covers exactly
        ``length`` bytes and its digest is ``sha256_hex`` (a state that does not match the
        appraisal state it was saved with is never used), or when states cannot be restored here."""
        if not NATIVE:
            raise InputError("SHA-256 states cannot be restored without the native module (_bulkhash)")
        if len(saved) < _HEAD or int.from_bytes(saved[32:_HEAD], "big") != length:
            raise InputError(f"the saved SHA-256 state does not cover {length} bytes")
        try:
            digest = sha256_final(saved)
        except ValueError as e:
            raise InputError(f"malformed SHA-256 state: {e}") from None
        if not hmac.compare_digest(digest.hex().encode(), sha256_hex.lower().encode()):
            raise InputError("the saved SHA-256 state does not hash to the saved digest")
        h = cls.__new__(cls)
        h._state, h._hash, h._length = bytes(saved), None, length
        return h

    @property
    def length(self) -> int:
        """Bytes hashed so far."""
        return self._length

    @property
    def saved(self) -> bytes | None:
        """The state to persist (None without the native module)."""
        return self._state

    def update(self, data: bytes | memoryview) -> None:
        if self._state is not None:
            self._state = sha256_resume(self._state, data)
        else:
            self._hash.update(data)
        self._length += len(data) if isinstance(data, bytes) else data.nbytes

    def copy(self) -> Sha256State:
        h = Sha256State.__new__(Sha256State)
        h._state, h._length = self._state, self._length  # immutable bytes: shared
        h._hash = self._hash.copy() if self._hash is not None else None
        return h

    def digest(self) -> bytes:
        return sha256_final(self._state) if self._state is not None else bytes(self._hash.digest())

    def hexdigest(self) -> str:
        return self.digest().hex()
