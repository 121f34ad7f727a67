"""The one DER reader: tag-length-value elements sliced from bytes, bounds checked once.

Evidence carries small DER structures that ``cryptography`` does not decode for us (the SGX
extension of a PCK certificate, the PKCS#7 of an IMA appended signature). They are walked here,
by offset, without building an object per element. Offsets are into the bytes given.
"""

from __future__ import annotations

from floodlight_trust.errors import Location, ParseError


class DerError(ParseError):
    """Malformed DER; ``location.offset`` is the element's byte offset (the message says it too)."""

    def __init__(self, message: str, offset: int):
        super().__init__(message, location=Location(offset=offset))

    def __str__(self) -> str:
        return self.message


def tlv(data: bytes, pos: int, end: int | None = None) -> tuple[int, int, int]:
    """(tag, start of contents, end of contents) of the DER element at ``pos``, which must lie
    within ``data[:end]`` (``end`` defaults to the end of ``data``). Single-byte tags only (all that
    evidence uses), definite lengths of up to four length bytes."""
    if end is None:
        end = len(data)
    if pos + 2 > end:
        raise DerError(f"DER element at offset {pos} is cut short", pos)
    at = pos
    tag, first = data[pos], data[pos + 1]
    if tag & 0x1F == 0x1F:
        raise DerError(f"DER element at offset {pos}: multi-byte tags are not supported", pos)
    pos += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or pos + n > end:
            raise DerError(f"DER element at offset {at}: bad length", at)
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    if pos + length > end:
        raise DerError(f"DER element at offset {at} runs {pos + length - end} bytes past its container", at)
    return tag, pos, pos + length


def children(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(tag, element start, contents start, contents end) of every element in ``data[start:end]``."""
    out = []
    while start < end:
        tag, s, e = tlv(data, start, end)
        out.append((tag, start, s, e))
        start = e
    return out


def expect(element: tuple[int, int, int, int], tag: int, what: str) -> tuple[int, int]:
    """The contents (start, end) of ``element`` (from :func:`children`), which must have ``tag``."""
    if element[0] != tag:
        raise DerError(f"{what}: expected DER tag 0x{tag:02x}, found 0x{element[0]:02x}", element[1])
    return element[2], element[3]
