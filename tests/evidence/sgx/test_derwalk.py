"""The native DER walks (floodlight_trust/evidence/_derwalk.c) give what their Python references in
x509_der.py and sgx_quote.py give, value for value and error for error: on every real certificate,
CRL and SGX extension in tests/data, and on damaged DER (bytes replaced, cut, inserted, random);
and never crash."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from floodlight_trust.clients.collateral_files import load_collateral
from floodlight_trust.clock import parse_time
from floodlight_trust.errors import ParseError
from floodlight_trust.evidence import dcap, sgx_quote, x509_der
from floodlight_trust.evidence.der import tlv as der_tlv
from floodlight_trust.evidence.sgx_quote import oid_der
from tests.evidence.sgx.test_dcap_der import CERTS, CRLS, PHALA
from tests.support.requires import missing

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def _native() -> Any:
    """The native module; without it, skipped with the reason, except under CI (``CI`` set), where
    make setup builds it: there a missing module fails, so a green CI cannot hide it."""
    try:
        from floodlight_trust.evidence import _derwalk
    except ImportError:
        missing("the native _derwalk module is not built in this environment (make setup builds it)")
    return _derwalk


def _outcome(fn: Callable[..., object], *args: object) -> tuple[str, object]:
    try:
        return "value", fn(*args)
    except ValueError as e:
        return "error", e.args


def _sgx_outcome(fn: Callable[[bytes], object], value: bytes) -> tuple[object, ...]:
    try:
        return ("value", fn(value))
    except ParseError as e:
        return ("error", type(e).__name__, e.message, e.location.offset if e.location else None)


def _layout(der: bytes) -> x509_der.Layout:
    layout = x509_der.layout(der, crl=False)
    assert layout is not None
    return layout


EXTENSIONS = [e for e in (_layout(c).extensions for c in CERTS) if e is not None]
SGX = [v for v in (x509_der.profile_py(e)[4] for e in EXTENSIONS) if v is not None]


def test_the_verifier_uses_the_native_walks() -> None:
    _native()
    assert x509_der.NATIVE and x509_der.sgx_extension is not None


@pytest.mark.parametrize("der", CERTS, ids=range(len(CERTS)))
def test_real_certificates_walk_as_the_reference(der: bytes) -> None:
    walk = _native()
    assert walk.layout(der, False) == x509_der.layout_py(der, False) is not None
    extensions = _layout(der).extensions
    assert extensions is not None
    assert walk.profile(extensions) == x509_der.profile_py(extensions)


@pytest.mark.parametrize("der", CRLS, ids=range(len(CRLS)))
def test_real_crls_walk_as_the_reference(der: bytes) -> None:
    walk = _native()
    assert walk.layout(der, True) == x509_der.layout_py(der, True) is not None


def test_real_sgx_extensions_walk_as_the_reference() -> None:
    _native()
    assert len(SGX) >= 2  # the Phala and the MobileCoin PCK certificates
    for value in SGX:
        native = sgx_quote.parse_pck_extensions(value)
        assert native == sgx_quote.parse_pck_extensions_py(value)
        assert len(native.cpu_svn_components) == 16 and len(native.fmspc) == 6


def _damaged(raw: bytes) -> st.SearchStrategy[bytes]:
    """``raw`` with a byte replaced, a span cut, bytes inserted, or cut short."""
    at = st.integers(0, max(len(raw) - 1, 0))
    return st.one_of(
        st.builds(lambda i, b: raw[:i] + bytes([b]) + raw[i + 1 :], at, st.integers(0, 255)),
        st.builds(lambda i, n: raw[:i] + raw[i + n :], at, st.integers(1, 40)),
        st.builds(lambda i, b: raw[:i] + b + raw[i:], at, st.binary(min_size=1, max_size=6)),
        st.builds(lambda i: raw[:i], at),
        st.builds(  # a length byte made long-form (0x81..0x85): the length reader's paths
            lambda i, n: raw[:i] + bytes([0x80 | n]) + raw[i + 1 :], at, st.integers(0, 5)
        ),
    )


@FUZZ
@given(data=st.data(), index=st.integers(0, len(CERTS) - 1), crl=st.booleans())
def test_damaged_certificates_and_crls_walk_as_the_reference(data: st.DataObject, index: int, crl: bool) -> None:
    walk = _native()
    raw = CRLS[index % len(CRLS)] if crl else CERTS[index]
    damaged = data.draw(_damaged(raw))
    assert _outcome(walk.layout, damaged, crl) == _outcome(x509_der.layout_py, damaged, crl)


@FUZZ
@given(data=st.data(), index=st.integers(0, len(EXTENSIONS) - 1))
def test_damaged_extensions_walk_as_the_reference(data: st.DataObject, index: int) -> None:
    walk = _native()
    damaged = data.draw(_damaged(EXTENSIONS[index]))
    assert _outcome(walk.profile, damaged) == _outcome(x509_der.profile_py, damaged)


@FUZZ
@given(data=st.data(), index=st.integers(0, len(SGX) - 1))
def test_damaged_sgx_extensions_walk_as_the_reference(data: st.DataObject, index: int) -> None:
    _native()
    damaged = data.draw(_damaged(SGX[index]))
    assert _sgx_outcome(sgx_quote.parse_pck_extensions, damaged) == _sgx_outcome(
        sgx_quote.parse_pck_extensions_py, damaged
    )


@FUZZ
@given(raw=st.binary(max_size=300), crl=st.booleans())
def test_arbitrary_bytes_walk_as_the_reference(raw: bytes, crl: bool) -> None:
    walk = _native()
    assert _outcome(walk.layout, raw, crl) == _outcome(x509_der.layout_py, raw, crl)
    assert _outcome(walk.profile, raw) == _outcome(x509_der.profile_py, raw)
    assert _sgx_outcome(sgx_quote.parse_pck_extensions, raw) == _sgx_outcome(sgx_quote.parse_pck_extensions_py, raw)


def _tlv(tag: int, contents: bytes) -> bytes:
    n = len(contents)
    length = bytes([n]) if n < 0x80 else bytes([0x82]) + n.to_bytes(2, "big")
    return bytes([tag]) + length + contents


def _extension(oid: str, value: bytes, critical: bool | None = None) -> bytes:
    flag = b"" if critical is None else _tlv(0x01, b"\xff" if critical else b"\x00")
    return _tlv(0x30, _tlv(0x06, oid_der(oid)) + flag + _tlv(0x04, value))


BC_CA = _tlv(0x30, _tlv(0x01, b"\xff"))
KU = _tlv(0x03, b"\x01\x06")


@pytest.mark.parametrize(
    "extensions",
    [
        pytest.param(b"".join(_extension(f"1.2.3.{k}", b"", k % 2 == 0) for k in range(100)), id="100-extensions"),
        pytest.param(_extension("2.5.29.19", BC_CA, True) * 2, id="listed-twice"),
        pytest.param(_extension("1.2.840.113741.1.13.1", b"\x30\x00") * 2, id="sgx-twice"),
        pytest.param(_extension("2.5.29.19", b"\x30\x03\x01\x01"), id="bc-cut"),
        pytest.param(_extension("2.5.29.19", b"\x31\x00"), id="bc-not-sequence"),
        pytest.param(_extension("2.5.29.15", b"\x03\x00"), id="ku-empty"),
        pytest.param(_extension("2.5.29.37", _tlv(0x30, _tlv(0x02, b"\x01"))), id="eku-non-oid"),
        pytest.param(_extension("2.5.29.37", _tlv(0x30, _tlv(0x06, oid_der("1.3.6.1.5.5.7.3.1")))), id="eku"),
        pytest.param(_extension("2.5.29.19", BC_CA, False) + _extension("2.5.29.15", KU, True), id="ca-ku"),
        pytest.param(_extension("2.5.29.19", b"\x30\x00\x00") + _extension("2.5.29.15", b"\x04\x00"), id="two-bad"),
        pytest.param(_tlv(0x30, _tlv(0x06, b"") + _tlv(0x04, b"")), id="empty-oid"),
        pytest.param(b"\x30\x84\xff\xff\xff\xff", id="length-past-the-end"),
        pytest.param(b"\x30\x85\x00\x00\x00\x00\x01", id="five-length-bytes"),
        pytest.param(b"\x1f\x00", id="multi-byte-tag"),
    ],
)
def test_built_extension_lists_walk_as_the_reference(extensions: bytes) -> None:
    walk = _native()
    assert _outcome(walk.profile, extensions) == _outcome(x509_der.profile_py, extensions)


def _sgx_pairs(entries: list[tuple[str, bytes]]) -> bytes:
    return b"".join(_tlv(0x30, _tlv(0x06, oid_der(oid)) + value) for oid, value in entries)


def _sgx_value(
    tcb_extra: list[tuple[str, bytes]] | None = None, top_extra: list[tuple[str, bytes]] | None = None
) -> bytes:
    base = "1.2.840.113741.1.13.1"
    tcb = [(f"{base}.2.{i}", _tlv(0x02, bytes([i]))) for i in range(1, 17)]
    tcb += [(f"{base}.2.17", _tlv(0x02, b"\x0d")), (f"{base}.2.18", _tlv(0x04, bytes(16))), *(tcb_extra or [])]
    top = [(f"{base}.1", _tlv(0x04, bytes(16))), (f"{base}.2", _tlv(0x30, _sgx_pairs(tcb)))]
    top += [(f"{base}.3", _tlv(0x04, b"\x00\x00")), (f"{base}.4", _tlv(0x04, bytes(6)))]
    top += [(f"{base}.5", _tlv(0x0A, b"\x00")), *(top_extra or [])]
    return _tlv(0x30, _sgx_pairs(top))


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(_sgx_value(), id="built"),
        pytest.param(_sgx_value([("1.2.840.113741.1.13.1.2.3", _tlv(0x02, b"\x07"))]), id="component-twice-last-wins"),
        pytest.param(_sgx_value([("1.2.840.113741.1.13.1.2.17", _tlv(0x02, b"\x01" * 40))]), id="pcesvn-320-bits"),
        pytest.param(_sgx_value(top_extra=[("1.2.840.113741.1.13.1.2", _tlv(0x30, b""))]), id="tcb-twice-empty"),
        pytest.param(_sgx_value(top_extra=[("1.2.3.4", _tlv(0x04, b""))] * 70), id="70-more-entries"),
        pytest.param(_tlv(0x31, b""), id="not-a-sequence"),
        pytest.param(_tlv(0x30, _tlv(0x02, b"\x01")), id="entry-not-a-sequence"),
        pytest.param(_tlv(0x30, _tlv(0x30, _tlv(0x06, b"\x2a"))), id="entry-without-value"),
    ],
)
def test_built_sgx_extensions_walk_as_the_reference(value: bytes) -> None:
    _native()
    native = _sgx_outcome(sgx_quote.parse_pck_extensions, value)
    assert native == _sgx_outcome(sgx_quote.parse_pck_extensions_py, value)


def test_the_last_of_a_repeated_sgx_entry_is_the_one_read() -> None:
    _native()
    pck = sgx_quote.parse_pck_extensions(_sgx_value([("1.2.840.113741.1.13.1.2.3", _tlv(0x02, b"\x07"))]))
    assert pck.cpu_svn_components[2] == 7 and pck.pce_svn == 13


def test_the_verifier_gives_the_same_verdict_on_the_python_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """An install without the native module (no C compiler) verifies the same way, at Python speed."""
    quote = (PHALA / "sgx_quote").read_bytes()
    collateral = load_collateral(PHALA / "sgx_quote_collateral.json")
    anchor = dcap.TrustAnchor.intel()
    at = parse_time("2025-06-20T00:00:00Z")  # inside the Phala collateral's windows
    dcap.clear_cache()
    native = dcap.verify_quote(quote, collateral, anchor, at=at)
    monkeypatch.setattr(x509_der, "_layout", x509_der.layout_py)
    monkeypatch.setattr(x509_der, "_profile", x509_der.profile_py)
    monkeypatch.setattr(sgx_quote, "sgx_extension", None)
    dcap.clear_cache()
    try:
        reference = dcap.verify_quote(quote, collateral, anchor, at=at)
    finally:
        dcap.clear_cache()
    assert reference.claims == native.claims and reference.pck == native.pck
    assert native.claims.tcb_status.value == "ConfigurationAndSWHardeningNeeded"


@pytest.mark.parametrize("der", CERTS, ids=range(len(CERTS)))
def test_real_certificate_fields_are_what_cryptography_reads(der: bytes) -> None:
    walk = _native()
    cert = x509.load_der_x509_certificate(der)
    expected = (cert.serial_number, cert.not_valid_before_utc, cert.not_valid_after_utc, cert.signature)
    assert walk.certificate_fields(der) == x509_der.certificate_fields_py(der) == expected


@FUZZ
@given(data=st.data(), index=st.integers(0, len(CERTS) - 1))
def test_damaged_certificate_fields_walk_as_the_reference(data: st.DataObject, index: int) -> None:
    walk = _native()
    damaged = data.draw(_damaged(CERTS[index]))
    assert _outcome(walk.certificate_fields, damaged) == _outcome(x509_der.certificate_fields_py, damaged)


def _with_validity(der: bytes, validity: bytes) -> bytes:
    """The certificate ``der`` with its Validity element replaced (lengths re-encoded)."""
    _, pos, _ = der_tlv(der, 0)
    _, start, tbs_end = der_tlv(der, pos)
    at = start
    for _ in range(4):  # version, serialNumber, signature, issuer
        _, _, at = der_tlv(der, at, tbs_end)
    _, _, end = der_tlv(der, at, tbs_end)
    tbs = der[start:at] + validity + der[end:tbs_end]
    rest = der[tbs_end:]
    return _tlv(0x30, _tlv(0x30, tbs) + rest)


@pytest.mark.parametrize(
    "validity,expected",
    [
        (
            _tlv(0x17, b"491231235959Z") + _tlv(0x17, b"500101000000Z"),
            (datetime(2049, 12, 31, 23, 59, 59), datetime(1950, 1, 1)),
        ),
        (
            _tlv(0x18, b"20500101000000Z") + _tlv(0x18, b"99991231235959Z"),
            (datetime(2050, 1, 1), datetime(9999, 12, 31, 23, 59, 59)),
        ),
        (_tlv(0x17, b"250230000000Z") + _tlv(0x17, b"260101000000Z"), None),  # February 30
        (_tlv(0x17, b"2501010000Z") + _tlv(0x17, b"260101000000Z"), None),  # no seconds
        (_tlv(0x17, b"250101000000+0100") + _tlv(0x17, b"260101000000Z"), None),  # not Z
        (_tlv(0x18, b"20250101000000.5Z") + _tlv(0x17, b"260101000000Z"), None),  # fraction
        (_tlv(0x17, b"25010100000 Z") + _tlv(0x17, b"260101000000Z"), None),  # not a digit
        (_tlv(0x0C, b"250101000000Z") + _tlv(0x17, b"260101000000Z"), None),  # not a time
        (_tlv(0x17, b"250101000000Z"), None),  # one time
        (_tlv(0x17, b"250101000000Z") * 3, None),  # three
    ],
)
def test_validity_times_read_as_the_reference(validity: bytes, expected: tuple[datetime, datetime] | None) -> None:
    walk = _native()
    der = _with_validity(CERTS[0], _tlv(0x30, validity))
    native = walk.certificate_fields(der)
    assert native == x509_der.certificate_fields_py(der)
    if expected is None:
        assert native is None
    else:
        assert native is not None and native[1:3] == tuple(t.replace(tzinfo=UTC) for t in expected)
