"""DER writing for the few structures the CA encodes itself: the REST grants extension
(``pki/grants.py``) and the parts of a certificate that change from one VNF certificate to the next
(``pki/ca.py``). DER has one encoding per value; tests/pki/test_ca.py checks each certificate
against cryptography's builder byte for byte.
"""

from __future__ import annotations

import functools
from datetime import datetime

from floodlight_trust.evidence.sgx_quote import oid_der

SEQUENCE = 0x30
SET = 0x31


def der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes((tag, n)) + body
    return bytes((tag,)) + der_length(n) + body


def integer(n: int) -> bytes:
    """A non-negative INTEGER (the shortest two's complement: a leading zero byte only before a high bit)."""
    if n < 0:
        raise ValueError("a negative INTEGER is never written here")
    return tlv(0x02, n.to_bytes(n.bit_length() // 8 + 1, "big"))


@functools.lru_cache(maxsize=64)
def oid(dotted: str) -> bytes:
    """An OBJECT IDENTIFIER (the few this CA writes, each encoded once)."""
    return tlv(0x06, oid_der(dotted))


def time(at: datetime) -> bytes:
    """RFC 5280 section 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; whole seconds
    (``at`` in UTC; its microseconds are not written)."""
    if at.year < 2050:
        return tlv(0x17, b"%02d%02d%02d%02d%02d%02dZ" % (at.year % 100, at.month, at.day, at.hour, at.minute, at.second))
    return tlv(0x18, b"%04d%02d%02d%02d%02d%02dZ" % (at.year, at.month, at.day, at.hour, at.minute, at.second))


def extension(dotted: str, critical: bool, value: bytes) -> bytes:
    """An ``Extension`` (``critical`` omitted when false: DER leaves out a DEFAULT value)."""
    return tlv(SEQUENCE, oid(dotted) + (b"\x01\x01\xff" if critical else b"") + tlv(0x04, value))


def bit_string_bits(spki: bytes) -> bytes:
    """The subject public key bits of a SubjectPublicKeyInfo DER (``SEQUENCE { algorithm, BIT STRING }``):
    what RFC 5280's key identifier method 1 hashes."""
    pos = _inside(spki, 0, SEQUENCE)
    pos = _skip(spki, pos)
    start = _inside(spki, pos, 0x03)
    if spki[start] != 0:
        raise ValueError("a public key BIT STRING with unused bits")
    return spki[start + 1 : _end(spki, pos)]


def _header(data: bytes, pos: int) -> tuple[int, int]:
    """(start of the content, content length) of the TLV at ``pos``."""
    first = data[pos + 1]
    if first < 0x80:
        return pos + 2, first
    size = first & 0x7F
    return pos + 2 + size, int.from_bytes(data[pos + 2 : pos + 2 + size], "big")


def _inside(data: bytes, pos: int, tag: int) -> int:
    if data[pos] != tag:
        raise ValueError(f"expected DER tag {tag:#x} at offset {pos}, got {data[pos]:#x}")
    return _header(data, pos)[0]


def _end(data: bytes, pos: int) -> int:
    start, length = _header(data, pos)
    return start + length


def _skip(data: bytes, pos: int) -> int:
    return _end(data, pos)
