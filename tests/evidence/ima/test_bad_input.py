"""Malformed lists: precise, located errors (or findings where the kernel tolerates the defect)."""

from __future__ import annotations

import hashlib

import pytest

from floodlight_trust.errors import ParseError
from floodlight_trust.evidence.ima import (
    FindingKind,
    appraise_measurement_list,
    format_ascii_line,
    make_entry,
    serialize_ascii,
    serialize_binary,
)


def entries(n: int = 3) -> list:
    return [make_entry(f"/usr/bin/tool{i}", hashlib.sha256(b"%d" % i).digest(), pcr=10) for i in range(n)]


def test_truncated_final_binary_record_is_a_located_finding() -> None:
    data = serialize_binary(entries())
    cut = data[:-7]
    a = appraise_measurement_list(cut, source="list.bin")
    assert a.entry_count == 2 and a.ok
    (f,) = a.findings
    assert f.kind is FindingKind.PARTIAL_RECORD
    second_end = len(serialize_binary(entries(2)))
    assert (f.location.file, f.location.index, f.location.offset) == ("list.bin", 2, second_end)
    assert "template data needs" in f.message and "remain" in f.message
    assert a.state.byte_length == second_end


def test_truncated_final_ascii_line_is_a_finding_and_not_consumed() -> None:
    data = serialize_ascii(entries())
    a = appraise_measurement_list(data[:-10], source="list.txt")
    assert a.entry_count == 2
    (f,) = a.findings
    assert f.kind is FindingKind.PARTIAL_RECORD and f.location.line == 3 and f.location.index == 2
    assert str(f).startswith("list.txt:3:entry 2")


def test_field_length_past_the_end_of_template_data() -> None:
    data = bytearray(serialize_binary(entries(2)))
    # First record: pcr(4) hash(20) name_len(4) "ima-ng"(6) data_len(4), then the d-ng field length.
    field_len_at = 4 + 20 + 4 + 6 + 4
    data[field_len_at : field_len_at + 4] = (5000).to_bytes(4, "little")
    with pytest.raises(ParseError) as info:
        appraise_measurement_list(bytes(data), source="list.bin")
    e = info.value
    assert e.location is not None
    assert (e.location.index, e.location.offset) == (0, field_len_at)
    assert "length 5000 points past the end of the template data" in e.message
    assert str(e).startswith("list.bin:entry 0 offset 38:")


def test_template_data_length_past_the_end_of_the_list() -> None:
    data = bytearray(serialize_binary(entries(2)))
    data[34:38] = (0x7FFFFFFF).to_bytes(4, "little")
    with pytest.raises(ParseError, match="points past the end of the data") as info:
        appraise_measurement_list(bytes(data))
    assert info.value.location is not None and info.value.location.offset == 34


def test_unknown_template_binary_and_ascii() -> None:
    data = bytearray(serialize_binary(entries(2)))
    second = len(serialize_binary(entries(1)))
    data[second + 28 : second + 34] = b"ima-xx"
    with pytest.raises(ParseError, match="unknown template 'ima-xx'") as info:
        appraise_measurement_list(bytes(data))
    assert info.value.location is not None
    assert (info.value.location.index, info.value.location.offset) == (1, second + 28)
    text = serialize_ascii(entries(2)).replace(b" ima-ng ", b" ima-zz ", 1)
    with pytest.raises(ParseError, match="unknown template 'ima-zz'") as info:
        appraise_measurement_list(text)
    assert info.value.location is not None and info.value.location.line == 1


def test_non_hex_digest() -> None:
    lines = serialize_ascii(entries()).split(b"\n")
    lines[1] = lines[1].replace(b"sha256:", b"sha256:zz", 1)
    with pytest.raises(ParseError) as info:
        appraise_measurement_list(b"\n".join(lines), source="m.txt")
    assert str(info.value).startswith("m.txt:2:entry 1: field d-ng is 'sha256:zz")
    assert "expected hex digits" in info.value.message


def test_non_hex_template_hash() -> None:
    lines = serialize_ascii(entries()).split(b"\n")
    lines[2] = b"10 xyz" + lines[2][6:]
    with pytest.raises(ParseError, match="template hash 'xyz") as info:
        appraise_measurement_list(b"\n".join(lines))
    assert info.value.location is not None and info.value.location.line == 3


def test_too_few_fields() -> None:
    line = format_ascii_line(entries(1)[0]).rsplit(" ", 1)[0] + "\n"
    with pytest.raises(ParseError) as info:
        appraise_measurement_list(line.encode(), source="m.txt")
    assert str(info.value) == "m.txt:1:entry 0: template ima-ng has 2 fields (d-ng|n-ng), the line has 1"
    with pytest.raises(ParseError, match="expected at least PCR, template hash and template name"):
        appraise_measurement_list(b"10 abcd\n")


def test_wrong_digest_size_for_algorithm() -> None:
    line = format_ascii_line(entries(1)[0]).replace("sha256:", "sha1:")
    with pytest.raises(ParseError, match="a sha1 digest has 20 bytes, got 32"):
        appraise_measurement_list(line.encode())


def test_template_hash_mismatch_is_a_finding_naming_entry_and_line() -> None:
    es = entries(4)
    text = serialize_ascii(es).replace(b"/usr/bin/tool2", b"/usr/bin/evil2")
    a = appraise_measurement_list(text, source="m.txt")
    assert not a.ok
    (f,) = a.findings
    assert f.kind is FindingKind.TEMPLATE_HASH_MISMATCH
    assert (f.location.line, f.location.index) == (3, 2)
    assert "/usr/bin/evil2" in f.message
    binary = bytearray(serialize_binary(es))
    binary[-3] ^= 1  # inside the last file name
    b = appraise_measurement_list(bytes(binary))
    assert not b.ok and b.findings[0].location.index == 3
    assert b.findings[0].location.offset == len(serialize_binary(es[:3]))


def test_bad_bank_and_not_a_list() -> None:
    from floodlight_trust.errors import InputError

    with pytest.raises(InputError, match="unknown PCR bank 'md5'"):
        appraise_measurement_list(b"", banks=("md5",))
    with pytest.raises(ParseError, match="not an IMA measurement list"):
        appraise_measurement_list(b"\x00\x01\x02\x03" * 20)
