"""Hashing a batch of IMA records in one call: template hashes, and PCR 10 replayed over them.

Three functions, each over a whole batch (the appraisal calls them once per batch and bank):

- ``digests(algo, items, prefix=b"")``: ``prefix + H(item)`` for every item, concatenated; with the
  reader's ``hash_prefix`` this is laid out exactly as the batch's logged hashes, so checking every
  template hash of a batch is one ``bytes`` comparison.
- ``extend(algo, value, data, stride=0, skip=0)``: PCR ``value`` extended (``value = H(value ||
  digest)``) with the digest at ``skip`` in every ``stride`` bytes of ``data`` (``stride`` 0: the
  digests are back to back).
- ``replay(algo, value, items)``: ``value`` extended with ``H(item)`` of every item (another bank's
  template hashes, never held as objects).

The native module ``_bulkhash`` (C over libcrypto's SHA functions, built with the package) does
the loops at C speed: hashlib's per-call overhead was most of the appraisal of a long list. The
pure-Python functions here are the reference: the same results, used when the module was not built
(``NATIVE`` says which is in use), and compared with it by the tests on real lists and fuzzed input.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

_HASHERS: dict[str, Callable[..., Any]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}
_SIZES = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}


def _hasher(algo: str) -> Callable[..., Any]:
    h = _HASHERS.get(algo)
    if h is None:
        raise ValueError(f"unknown bank {algo}")
    return h


def digests_py(algo: str, items: Sequence[bytes], prefix: bytes = b"") -> bytes:
    h = _hasher(algo)
    return prefix.join([b"", *(h(x).digest() for x in items)]) if prefix else b"".join(h(x).digest() for x in items)


def extend_py(algo: str, value: bytes, data: bytes, stride: int = 0, skip: int = 0) -> bytes:
    h, size = _hasher(algo), _SIZES[algo]
    stride = stride or size
    if len(value) != size or skip < 0 or stride < skip + size or len(data) % stride:
        raise ValueError("value must be one digest and data whole strides holding one")
    for k in range(skip, len(data), stride):
        value = h(value + data[k : k + size]).digest()
    return value


def replay_py(algo: str, value: bytes, items: Sequence[bytes]) -> bytes:
    h = _hasher(algo)
    if len(value) != _SIZES[algo]:
        raise ValueError("value must be one digest of the bank")
    for x in items:
        value = h(value + h(x).digest()).digest()
    return value


digests: Callable[..., bytes]
extend: Callable[..., bytes]
replay: Callable[[str, bytes, Sequence[bytes]], bytes]
try:
    from floodlight_trust.evidence.ima import _bulkhash
except ImportError:  # not built (an install without a C compiler): the reference, at Python speed
    digests, extend, replay, NATIVE = digests_py, extend_py, replay_py, False
else:
    digests, extend, replay, NATIVE = _bulkhash.digests, _bulkhash.extend, _bulkhash.replay, True
