"""Quote parsing: real DCAP and EPID quotes, malformed input located by byte offset."""

from __future__ import annotations

import base64
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from floodlight_trust.errors import ParseError
from floodlight_trust.evidence.sgx_quote import EpidQuote, QuoteV3, parse_quote


def dcap(testdata: Path, name: str) -> bytes:
    return (testdata / "sgx-dcap" / name).read_bytes()


def epid(testdata: Path, name: str) -> bytes:
    return base64.b64decode((testdata / "sgx-epid" / "mobilecoin" / name).read_text())


def test_phala_quote_fields(testdata: Path) -> None:
    q = parse_quote(dcap(testdata, "phala/sgx_quote"))
    assert isinstance(q, QuoteV3)
    r = q.report
    assert r.mr_enclave.hex() == "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
    assert r.mr_signer.hex() == "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6"
    assert (r.isv_prod_id, r.isv_svn, r.flags & 0xFF) == (0, 0, 0x05)
    assert not r.debug and r.mode64bit
    assert r.report_data.startswith(b"Hello, world!")
    assert q.qe_svn == 10 and q.cert_data_type == 5 and len(q.pck_chain_pem()) == 3
    assert len(q.attestation_key) == 64 and len(q.qe_auth_data) == 32


@pytest.mark.parametrize(
    ("name", "debug", "mrenclave"),
    [
        ("occlum/occlum_quote.dat", True, "8f173e4613ff05c52aaf04162d234edae8c9977eae47eb2299ae16a553011c68"),
        ("mobilecoin-sgx/hw_quote.dat", True, None),
        (
            "mobilecoin-attestation/hw_quote.dat",
            False,
            "840d61b0585dc8b4dc90f53af293c760fda06bee75978a6a86263ffb296423f4",
        ),
    ],
)
def test_debug_flag_decoded(testdata: Path, name: str, debug: bool, mrenclave: str | None) -> None:
    q = parse_quote(dcap(testdata, name))
    assert q.report.debug is debug
    if mrenclave:
        assert q.report.mr_enclave.hex() == mrenclave


def test_occlum_report_data_and_attributes(testdata: Path) -> None:
    q = parse_quote(dcap(testdata, "occlum/occlum_quote.dat"))
    assert q.report.flags & 0xFF == 0x07
    assert q.report.report_data.startswith(b"test")


def test_epid_quotes_parse_and_match_ias_body(testdata: Path) -> None:
    sent = parse_quote(epid(testdata, "core_to_ias.txt"))
    returned = parse_quote(epid(testdata, "core_from_ias.txt"))
    assert isinstance(sent, EpidQuote) and isinstance(returned, EpidQuote)
    assert len(sent.raw) == 1116 and sent.signature is not None and len(sent.signature) == 680
    assert returned.signature is None
    assert sent.body == returned.body
    assert sent.report == returned.report
    for name in ("core_quote_ok.txt", "verifier_quote_configuration_needed.txt"):
        q = parse_quote(epid(testdata, name))
        assert isinstance(q, EpidQuote) and q.sign_type == 0 and q.report.debug


def test_truncated_quote_names_offset(testdata: Path) -> None:
    raw = dcap(testdata, "phala/sgx_quote")
    with pytest.raises(ParseError) as info:
        parse_quote(raw[:-10])
    assert info.value.location is not None and info.value.location.offset == 432
    assert "does not match" in info.value.message


def test_wrong_version_and_key_type(testdata: Path) -> None:
    raw = bytearray(dcap(testdata, "phala/sgx_quote"))
    raw[0] = 4
    with pytest.raises(ParseError, match="unsupported quote version 4") as info:
        parse_quote(bytes(raw))
    assert info.value.location.offset == 0  # type: ignore[union-attr]
    raw[0] = 3
    raw[2] = 3
    with pytest.raises(ParseError, match="attestation key type 3") as info:
        parse_quote(bytes(raw))
    assert info.value.location.offset == 2  # type: ignore[union-attr]


def test_certification_data_type_other_than_5(testdata: Path) -> None:
    raw = bytearray(dcap(testdata, "phala/sgx_quote"))
    q = parse_quote(bytes(raw))
    assert isinstance(q, QuoteV3)
    offset = 432 + 4 + 64 + 64 + 384 + 64 + 2 + len(q.qe_auth_data)
    assert struct.unpack_from("<H", raw, offset)[0] == 5
    raw[offset] = 3
    with pytest.raises(ParseError, match="certification data type 3") as info:
        parse_quote(bytes(raw))
    assert info.value.location.offset == offset  # type: ignore[union-attr]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_only_raise_parse_error(data: bytes) -> None:
    try:
        parse_quote(data)
    except ParseError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=4, max_size=600), st.sampled_from([b"\x03\x00\x02\x00", b"\x02\x00\x00\x00"]))
def test_arbitrary_bytes_after_valid_header_only_raise_parse_error(tail: bytes, head: bytes) -> None:
    try:
        parse_quote(head + tail)
    except ParseError:
        pass
