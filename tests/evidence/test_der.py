"""The one DER reader: elements sliced by offset, every malformation a located DerError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from floodlight_trust.errors import ParseError
from floodlight_trust.evidence.der import DerError, children, expect, tlv

# SEQUENCE { OID 2.5.4.3, UTF8String "ab" }, then a long-form OCTET STRING of 130 bytes.
SEQ = bytes.fromhex("300906035504030c026162")
LONG = b"\x04\x81\x82" + bytes(130)


def test_elements_are_sliced_by_offset() -> None:
    assert tlv(SEQ, 0) == (0x30, 2, 11)
    assert children(SEQ, 2, 11) == [(0x06, 2, 4, 7), (0x0C, 7, 9, 11)]
    assert tlv(LONG, 0) == (0x04, 3, 133)
    assert expect(children(SEQ, 2, 11)[1], 0x0C, "name") == (9, 11)


@pytest.mark.parametrize(
    ("data", "start", "end", "offset", "text"),
    [
        (SEQ[:1], 0, None, 0, "cut short"),
        (SEQ, 2, 6, 2, "runs 1 bytes past its container"),  # the OID inside a shortened container
        (b"\x04\x85\x00\x00\x00\x00\x01", 0, None, 0, "bad length"),
        (b"\x04\x80", 0, None, 0, "bad length"),
        (b"\x1f\x01\x00", 0, None, 0, "multi-byte tags"),
        (b"\x30\x03\x02\x01", 0, None, 0, "runs 1 bytes past"),
    ],
)
def test_every_malformation_is_located(data: bytes, start: int, end: int | None, offset: int, text: str) -> None:
    with pytest.raises(DerError) as e:
        if end is None:
            tlv(data, start)
        else:
            children(data, start, end)
    assert e.value.location is not None and e.value.location.offset == offset
    assert text in e.value.message and f"offset {offset}" in str(e.value)
    assert isinstance(e.value, ParseError)


def test_an_unexpected_tag_names_the_field_and_its_offset() -> None:
    with pytest.raises(DerError, match=r"name: expected DER tag 0x30, found 0x0c") as e:
        expect(children(SEQ, 2, 11)[1], 0x30, "name")
    assert e.value.location is not None and e.value.location.offset == 7


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_raise_only_der_errors(data: bytes) -> None:
    try:
        for tag, at, s, e in children(data, 0, len(data)):
            assert 0 <= at < s <= e <= len(data) and tag == data[at]
    except DerError as err:
        assert err.location is not None and 0 <= (err.location.offset or 0) < len(data)
